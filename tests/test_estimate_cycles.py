"""The cycle model (gen/estimate.py, gen/plan.py) against simulation: the steady-state interval
and the first-frame latency of whole accelerators, in Amaranth's simulator with no stalls, and
once through cocotb (`nomul sim`)."""

from __future__ import annotations

import numpy as np
import pytest

from gen.estimate import estimate_network
from gen.load import network_from_dict
from sim.randnet import random_network, random_values
from sim.streamsim import measure_accelerator

_TWO = {"layer0": {"pe": 2, "simd": 3}, "layer1": {"pe": 2, "simd": 2}}

# (name, seed, random_network arguments, folding)
CASES = [
    *[(f"mlp-{mac}", 10, dict(macs=[mac, mac], in_shape=[12], widths=[6, 4]), _TWO)
      for mac in ("xnor", "and", "ternary", "onehot", "int", "adder")],
    ("mlp-3-folded", 7, dict(macs=["xnor", "ternary", "int"], in_shape=[16], widths=[8, 8, 4]),
     {"layer0": {"pe": 2, "simd": 4}, "layer1": {"pe": 4, "simd": 2}, "layer2": {"pe": 2, "simd": 8}}),
    ("cnn-pool-argmax", 4, dict(macs=["xnor", "xnor", "xnor"], conv=True, in_shape=[2, 6, 6],
                                widths=[4, 4, 3], pool=True, argmax=True), None),
    ("cnn-unfolded", 6, dict(macs=["and", "xnor"], conv=True, in_shape=[2, 5, 5], widths=[4, 3]),
     {"layer0": {"pe": 4, "simd": 18}}),
]
# two that gen/plan.py's interval missed before the matrix-vector units got their input FIFOs
CASES += [
    ("mlp-requant-argmax", 3, dict(macs=["int", "int", "int"], in_shape=[8], widths=[8, 6, 5],
                                   style="requant", argmax=True), None),
    ("cnn-folded", 5, dict(macs=["ternary", "int"], conv=True, in_shape=[2, 5, 5], widths=[4, 3]),
     {"layer0": {"pe": 1, "simd": 2}}),
]


def network(case):
    name, seed, kw, fold = case
    doc, arrays = random_network(np.random.default_rng(seed), **kw)
    return network_from_dict(doc, arrays=arrays), fold


def measure(accel, frames: int = 4) -> tuple[int, int]:
    """``(latency, interval)`` of an accelerator in Amaranth's simulator, no stalls."""
    x = random_values(np.random.default_rng(0), accel.net.input.dtype, (frames, *accel.net.input.shape))
    latency, interval, _ = measure_accelerator(accel, x)
    return latency, interval


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_model_matches_simulation(case):
    net, fold = network(case)
    est = estimate_network(net, fold=fold, count_registers=False)
    latency, interval = measure(est.accel)
    assert est.interval == interval
    assert est.latency == latency


def test_layer_timings_are_ordered():
    net, fold = network(CASES[7])
    est = estimate_network(net, fold=fold, count_registers=False)
    firsts = [lay.first_out for lay in est.layers]
    assert firsts == sorted(firsts)
    assert est.latency == est.layers[-1].first_out
    assert all(lay.latency >= 0 for lay in est.layers)


@pytest.mark.slow
def test_cocotb_measurement_matches_model(tmp_path):
    pytest.importorskip("cocotb")
    from gen.plan import plan_network
    from sim import golden
    from sim.runner import cosimulate, generate

    net, fold = network(CASES[6])
    est = estimate_network(net, fold=fold, count_registers=False)
    sources, streams = generate(net, tmp_path / "gen", fold=fold)
    x = random_values(np.random.default_rng(1), net.input.dtype, (12, *net.input.shape))
    r = cosimulate(sources, streams, x, golden.run(net, x).outputs, build_dir=tmp_path / "sim",
                   stall=0.0, timing_frames=10)
    assert r.passed
    assert r.cycles_per_frame == est.interval == plan_network(net, fold=fold).interval
    assert r.latency_cycles == est.latency
