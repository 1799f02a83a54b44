"""Generated accelerators co-simulated in cocotb against the golden model, bit-exact.

Every MAC kind, as a dense network (ending in argmax) and as a convolutional one (conv, max-pool,
dense), with random gaps on the input and random back-pressure on the output, and a reset in
the middle of a frame; the measured steady-state cycles per frame must equal the plan's. The
default run uses few frames; the ``slow`` ones use 200+ and run on Verilator too.
"""

from __future__ import annotations

import numpy as np
import pytest

from gen.load import network_from_dict
from sim import golden
from sim.randnet import random_network, random_values
from sim.runner import cosimulate, generate

MACS = ["xnor", "and", "ternary", "onehot", "int", "adder"]


def make_network(mac: str, kind: str, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "dense":
        doc, arrays = random_network(rng, [mac, mac, mac], in_shape=[16], widths=[8, 6, 5], argmax=True)
        fold = {"layer0": {"pe": 2, "simd": 4}, "layer1": {"pe": 2, "simd": 2}}
    else:
        doc, arrays = random_network(rng, [mac, mac], conv=True, in_shape=[2, 4, 4], widths=[3, 4],
                                     pool=True)
        fold = None
    return network_from_dict(doc, arrays=arrays), fold


def run_case(tmp_path, mac, kind, *, frames, sim="icarus", seed=0, stall=0.3, reset=True, waves=None):
    seed = seed + 100 * MACS.index(mac) + (0 if kind == "dense" else 50)
    net, fold = make_network(mac, kind, seed)
    x = random_values(np.random.default_rng(seed + 1), net.input.dtype, (frames, *net.input.shape))
    want = golden.run(net, x).outputs
    src, streams = generate(net, tmp_path / "gen", fold=fold)
    timing = 8 if kind == "dense" else 6
    r = cosimulate(src, streams, x, want, build_dir=tmp_path / sim, sim=sim, seed=seed, stall=stall,
                   timing_frames=timing, reset_at_frame=(timing + frames) // 2 if reset else None,
                   waves=waves)
    print(f"seed {seed}: {r.frames} frames checked, {r.frames_dropped_by_reset} dropped by the reset, "
          f"{r.cycles_per_frame} cycles/frame (plan {r.expected_cycles_per_frame}), "
          f"latency {r.latency_cycles}")
    assert not r.timeout, f"seed {seed}: the accelerator hung"
    assert r.mismatches == 0, f"seed {seed}: " + "; ".join(r.mismatch_report)
    assert r.frames == frames - r.frames_dropped_by_reset
    if reset:
        assert r.frames_dropped_by_reset >= 1
    assert r.cycles_per_frame == r.expected_cycles_per_frame
    return r


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("mac", MACS)
def test_bit_exact(tmp_path, mac, kind):
    run_case(tmp_path, mac, kind, frames=20 if kind == "dense" else 8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("mac", MACS)
def test_bit_exact_long(tmp_path, mac, kind):
    run_case(tmp_path, mac, kind, frames=220, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("mac,kind", [("xnor", "dense"), ("int", "conv"), ("adder", "dense"),
                                      ("onehot", "conv")])
def test_bit_exact_verilator(tmp_path, mac, kind):
    run_case(tmp_path, mac, kind, frames=220, sim="verilator", seed=2)


def test_no_stalls_and_waves(tmp_path):
    waves = tmp_path / "out" / "waves.vcd"
    r = run_case(tmp_path, "xnor", "dense", frames=12, stall=0.0, reset=False, waves=waves)
    assert r.frames == 12
    assert waves.read_text().startswith("$date")
