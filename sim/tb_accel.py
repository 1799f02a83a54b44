"""cocotb testbench of any generated accelerator, driven by a configuration file.

Not a pytest module: :mod:`sim.runner` runs it in the simulator. Its parameters come from the
JSON file named by ``NOMUL_TB_CONFIG`` (the runner writes it into the build directory and sets
the variable through ``extra_env``); the stimulus and the expected outputs come from the
``.npz`` that the configuration names. The test writes what it measured to the configuration's
``result`` file.

Phases:

1. reset, then ``timing_frames`` extra frames (copies of the inputs, taken in turn) with no
   stalls on either side: the steady-state interval between output frames and the latency of
   the first frame are measured on them (they are checked too, but not counted as frames);
2. every input frame, with random gaps on the input (``stall_in``) and random back-pressure
   on the output (``stall_out``); at each frame of ``reset_at_frames`` a reset is applied
   halfway through sending that frame (for one-beat frames: once it is sent), and the frames
   in flight are dropped (counted, not checked); a frame the driver had taken but not started
   is sent again after the reset;
3. every received frame is compared with the golden model's, in order. Every input frame is
   accounted for: ``frames_checked + frames_dropped_by_reset + frames_lost == frames_sent``,
   and ``frames_lost`` (neither checked nor dropped by a reset) must be 0.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from hw.dtypes import DType
from sim.cocotb_parts import ClockLoop, GapSource, Scoreboard, StreamDriver, StreamLayout, StreamMonitor


def _layout(spec: dict) -> StreamLayout:
    d = spec["dtype"]
    dtype = DType(d["encoding"], d["bits"], narrow=d.get("narrow", False), signed=d.get("signed", False))
    return StreamLayout(tuple(spec["shape"]), dtype, spec["elems_per_beat"], spec.get("order", "flat"))


def _handle(dut, name):
    return None if name is None else getattr(dut, name)


def _steady_interval(starts: list[int]) -> Fraction | None:
    """Mean interval between frame starts over the second half of a run with no stalls."""
    if len(starts) < 3:
        return None
    h = len(starts) // 2
    return Fraction(starts[-1] - starts[h], len(starts) - 1 - h)


@cocotb.test()
async def accelerator_matches_golden(dut):
    cfg_path = Path(os.environ["NOMUL_TB_CONFIG"])
    cfg = json.loads(cfg_path.read_text())
    base = cfg_path.parent
    with np.load(base / cfg["stimulus"], allow_pickle=False) as z:
        inputs, expected = z["inputs"], z["expected"]
    n = inputs.shape[0]
    lin, lout = _layout(cfg["input"]), _layout(cfg["output"])
    frames_in = lin.pack(inputs)
    expected = expected.reshape(n, *lout.shape)

    rng = np.random.default_rng(cfg["seed"])
    gaps_in = GapSource(np.random.default_rng(rng.integers(1 << 63)), 0.0)
    gaps_out = GapSource(np.random.default_rng(rng.integers(1 << 63)), 0.0)
    scoreboard = Scoreboard(lout)
    scoreboard.keep_outputs = bool(cfg.get("keep_outputs"))
    progress_file = base / cfg["progress"] if cfg.get("progress") else None
    progress_every = max(1, n // 200)
    in_starts: dict[int, int] = {}
    out_frames = []
    n_timing = max(0, int(cfg["timing_frames"]))
    # frame ids: 0..n-1 the inputs, n..n+n_timing-1 the timing frames (copies of inputs k % n)
    source = {n + k: k % n for k in range(n_timing)}
    scoreboard.counted = lambda frame_no: frame_no < n

    def frame_started(frame_no, cycle):
        in_starts[frame_no] = cycle
        scoreboard.expect(frame_no, expected[source.get(frame_no, frame_no)])

    def frame_received(frame):
        out_frames.append(frame)
        scoreboard.check(frame)
        if progress_file is not None and scoreboard.frames_checked % progress_every == 0:
            progress_file.write_text(str(sum(1 for i in scoreboard.checked if i < n)))

    pi, po = cfg["input"]["ports"], cfg["output"]["ports"]
    driver = StreamDriver(_handle(dut, pi["payload"]), _handle(dut, pi["valid"]), _handle(dut, pi["ready"]),
                          _handle(dut, pi.get("last")), last_bit=pi.get("last_bit"), gaps=gaps_in,
                          on_frame_start=frame_started)
    monitor = StreamMonitor(_handle(dut, po["payload"]), _handle(dut, po["valid"]),
                            _handle(dut, po["ready"]), _handle(dut, po.get("last")),
                            last_bit=po.get("last_bit"),
                            beats_per_frame=lout.beats_per_frame, gaps=gaps_out,
                            on_frame=frame_received, on_framing_error=scoreboard.framing_error)
    clk = _handle(dut, cfg["clock"])
    rst = _handle(dut, cfg["reset"])
    loop = ClockLoop(clk, [driver, monitor])

    async def reset(cycles=2):
        driver.abort()
        monitor.flush()
        rst.value = 1
        for _ in range(cycles):
            await RisingEdge(clk)
        rst.value = 0
        loop.cycle += cycles

    Clock(clk, 10, unit="ns").start()
    await reset(3)

    # Phase 1: extra frames with no stalls, for timing.
    for k in range(n_timing):
        driver.append(n + k, frames_in[k % n])
    budget = cfg["max_cycles"]
    start = loop.cycle
    ok = await loop.run(budget, stop=lambda: len(out_frames) >= n_timing)
    timeout = not ok and n_timing > 0
    starts = [f.first_cycle for f in out_frames]
    cpf = _steady_interval(starts)
    latency = None
    if out_frames and n in in_starts:
        latency = out_frames[0].first_valid_cycle - in_starts[n]

    # Phase 2: every input frame, random stalls, resets in the middle of frames.
    gaps_in.p, gaps_out.p = cfg["stall_in"], cfg["stall_out"]
    resets = sorted({int(r) for r in cfg.get("reset_at_frames") or () if 0 <= int(r) < n})
    dropped = 0
    if not timeout:
        for i in range(n):
            driver.append(i, frames_in[i])
        half = max(1, lin.beats_per_frame // 2)
        for reset_at in resets:
            # Halfway through sending the frame, or (one-beat frames) once it is sent.
            ok = await loop.run(budget, stop=lambda r=reset_at: r in in_starts and (
                driver.current_frame != r or driver.beat >= half))
            if not ok:
                timeout = True
                break
            dropped += scoreboard.pending  # the frames in flight, the interrupted one included
            scoreboard.flush()
            await reset()
        if not timeout:
            ok = await loop.run(budget, stop=lambda: driver.idle and scoreboard.pending == 0)
            timeout = not ok
    # A few idle cycles: an output frame that no input explains would show up here.
    if not timeout:
        await loop.run(max(16, 2 * (latency or 0)))
    checked = sum(1 for i in scoreboard.checked if i < n)
    lost = n - checked - dropped

    result = {
        "frames_sent": n,
        "frames_checked": checked,
        "frames_lost": lost,
        "timing_frames_bad": scoreboard.uncounted_bad,
        "frames_bad": scoreboard.frames_bad,
        "frames_dropped_by_reset": dropped,
        "mismatches": scoreboard.mismatch_count,
        "mismatch_report": [str(m) for m in scoreboard.mismatches],
        "cycles_per_frame": None if cpf is None else (int(cpf) if cpf.denominator == 1 else float(cpf)),
        "latency_cycles": latency,
        "timing_frames": n_timing,
        "timeout": timeout,
        "cycles": loop.cycle - start,
        "python_s": loop.python_s,
        "loop_s": loop.total_s,
    }
    if scoreboard.keep_outputs:
        outputs = np.zeros_like(expected)
        received = np.zeros(n, dtype=bool)
        for i, v in scoreboard.outputs.items():
            if i < n:
                outputs[i], received[i] = v, True
        np.savez(base / "tb_outputs.npz", outputs=outputs, received=received)
    (base / cfg["result"]).write_text(json.dumps(result, indent=1))
    assert not timeout, f"timeout: the accelerator stopped after {checked} frames"
    assert scoreboard.uncounted_bad == 0, f"{scoreboard.uncounted_bad} timing frames differ"
    assert lost == 0, f"{lost} frames were neither checked nor dropped by a reset"
    assert scoreboard.mismatch_count == 0, (
        f"{scoreboard.mismatch_count} mismatches; first: " + "; ".join(map(str, scoreboard.mismatches[:5])))
