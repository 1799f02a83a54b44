"""Graph accelerators (gen/top.py with forks and joins) in Amaranth's simulator: residual blocks,
concatenated branches and average pooling, bit-exact against the golden model with random
gaps on the input and stalls on the output; with no stalls, the measured interval equals the
plan's and the latency gen/cycles.py's model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.errors import NetworkError
from gen.estimate import estimate_network
from gen.load import network_from_dict
from gen.top import decode_outputs, encode_frames
from sim import golden
from sim.randgraph import concat_network, residual_network
from sim.randnet import random_values
from sim.streamsim import StreamSink, StreamSource


def simulate(accel, x, *, seed: int, gap: float, stall: float):
    """``(outputs, sink, source)`` of frames ``x`` through the accelerator."""
    print(f"simulate seed={seed} gap={gap} stall={stall}")
    rng = np.random.default_rng(seed)
    n_in = accel.in_beats_per_frame
    w = len(accel.i_stream.payload.data)
    beats = [d | (int(j % n_in == n_in - 1) << w) for j, d in enumerate(encode_frames(accel, x))]
    src = StreamSource(accel.i_stream, beats, rng=np.random.default_rng(rng.integers(1 << 30)), gap=gap)
    per = accel.out_beats_per_frame
    sink = StreamSink(accel.o_stream, len(x) * per, rng=np.random.default_rng(rng.integers(1 << 30)),
                      stall=stall, timeout=200_000)
    sim = Simulator(accel)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench, background=True)
    sim.add_testbench(sink.testbench)
    sim.run()
    data = [b & ((1 << len(accel.o_stream.payload.data)) - 1) for b in sink.beats]
    return decode_outputs(accel, data, len(x)), sink, src


def measured(accel, x):
    """``(latency, interval)`` with no gaps or stalls (the interval must be steady)."""
    _, sink, src = simulate(accel, x, seed=0, gap=0.0, stall=0.0)
    per = accel.out_beats_per_frame
    starts = sink.transfer_cycles[::per]
    intervals = set(np.diff(starts[1:]).tolist())
    assert len(intervals) == 1, f"no steady state: frame starts {starts}"
    return sink.valid_cycles[0] - src.accept_cycles[0], intervals.pop()


def check(doc, arrays, *, seed, frames=3, timing_frames=5, fold=None):
    net = network_from_dict(doc, arrays=arrays)
    est = estimate_network(net, fold=fold, count_registers=False)
    accel = est.accel
    rng = np.random.default_rng(seed)
    x = random_values(rng, net.input.dtype, (frames, *net.input.shape))
    want = golden.run(net, x).outputs
    got, _, _ = simulate(accel, x, seed=seed, gap=0.4, stall=0.5)
    np.testing.assert_array_equal(got, want)
    latency, interval = measured(accel, random_values(rng, net.input.dtype,
                                                      (timing_frames, *net.input.shape)))
    print(f"latency {latency} (model {est.latency}), interval {interval} (plan {est.plan.interval})")
    assert interval == est.plan.interval
    assert latency == est.latency
    return est


RESIDUAL = [
    # (seed, mac, in_shape, multipliers, style, gap, fold)
    (1, "int", (4, 6, 6), (1, 1), "multithreshold", False, None),
    (2, "int", (4, 5, 7), (2, -1), "requant", True, None),
    (3, "xnor", (4, 6, 6), (1, 1), "multithreshold", False,
     {"b0c0": {"pe": 2, "simd": 4}, "b0c1": {"pe": 4, "simd": 36}}),
    (4, "ternary", (2, 4, 5), (3, 1), "multithreshold", True, {"b0c1": {"pe": 1, "simd": 2}}),
]


@pytest.mark.parametrize("case", RESIDUAL, ids=[f"{c[1]}-{c[0]}" for c in RESIDUAL])
def test_residual_block_is_exact_and_timed(case):
    seed, mac, shape, mults, style, gap, fold = case
    doc, arrays = residual_network(np.random.default_rng(seed), mac, in_shape=shape, multipliers=mults,
                                   style=style, gap=gap, fold=fold)
    est = check(doc, arrays, seed=seed)
    add = next(s for s in est.accel.stages if s.kind == "add")
    assert add.join_fifo_depths[0] is None and add.join_fifo_depths[1] is not None  # the skip path
    print(f"skip FIFO depth {add.join_fifo_depths[1]}, {est.accel.join_fifo_bits} bits")
    assert est.accel.join_fifo_bits == sum(lay.fifo_bits for lay in est.layers if lay.kind == "add")


def test_two_residual_blocks_with_pooling():
    doc, arrays = residual_network(np.random.default_rng(5), "int", in_shape=(3, 5, 5), blocks=2, gap=True)
    check(doc, arrays, seed=5)


@pytest.mark.parametrize("seed,kernels,fold", [
    (6, (3, 3), None),
    (7, (3, 1), {"a": {"pe": 1, "simd": 2}}),   # a slow 3×3 branch beside a fast 1×1 one
    (8, (1, 3), {"b": {"pe": 2, "simd": 9}}),
])
def test_concat_branches_are_exact_and_timed(seed, kernels, fold):
    doc, arrays = concat_network(np.random.default_rng(seed), "int", in_shape=(2, 5, 5), widths=(3, 2),
                                 kernels=kernels, fold=fold)
    est = check(doc, arrays, seed=seed)
    print(f"join FIFO depths {est.accel.stages[2].join_fifo_depths}")


@pytest.mark.parametrize("seed,kernels,fold", [
    (9, (3, 1, 3), {"c": {"pe": 1, "simd": 3}}),
    (10, (1, 3, 1, 1), None),
])
def test_concat_of_more_branches(seed, kernels, fold):
    """Three and four branches joined by one concat: exact, with the cycle model's timing."""
    widths = (3, 2, 1, 2)[:len(kernels)]
    doc, arrays = concat_network(np.random.default_rng(seed), "int", in_shape=(2, 4, 4), widths=widths,
                                 kernels=kernels, fold=fold)
    est = check(doc, arrays, seed=seed)
    depths = est.accel.stages[len(kernels)].join_fifo_depths
    print(f"join FIFO depths {depths}")
    assert len(depths) == len(kernels)


@pytest.mark.parametrize("seed", [40, 41, 42, 43])
def test_random_residual_blocks(seed):
    """Random shapes, MAC kinds, multipliers, activations and foldings."""
    from gen.plan import divisors

    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    mac = str(rng.choice(["int", "xnor", "ternary", "and"]))
    c, h, w = int(rng.choice([2, 3, 4])), int(rng.integers(3, 7)), int(rng.integers(3, 7))
    mults = (int(rng.choice([1, 2, -1])), int(rng.choice([1, 3, -2])))
    fold = {n: {"pe": int(rng.choice(divisors(c))), "simd": int(rng.choice(divisors(9 * c)))}
            for n in ("b0c0", "b0c1") if rng.random() < 0.7}
    style = str(rng.choice(["multithreshold", "requant"]))
    print(mac, (c, h, w), mults, fold, style)
    doc, arrays = residual_network(rng, mac, in_shape=(c, h, w), multipliers=mults, style=style, fold=fold,
                                   gap=bool(rng.random() < 0.5))
    check(doc, arrays, seed=seed)


def _shallow(slack, monkeypatch):
    from gen import cycles

    doc, arrays = residual_network(np.random.default_rng(1), "int", in_shape=(4, 6, 6))
    net = network_from_dict(doc, arrays=arrays)
    monkeypatch.setattr(cycles, "JOIN_FIFO_SLACK", slack)
    est = estimate_network(net, count_registers=False)
    return net, est


def test_skip_fifo_depth_is_what_the_interval_needs(monkeypatch):
    """Measured: the model's occupancy (17 here; depth 19 with the slack) keeps the plan's
    interval; 2 beats less slows the steady state down."""
    net, est = _shallow(-2, monkeypatch)
    assert est.accel.stages[2].join_fifo_depths == (None, 15)
    x = random_values(np.random.default_rng(0), net.input.dtype, (5, *net.input.shape))
    assert measured(est.accel, x)[1] > est.plan.interval


def test_skip_fifo_too_shallow_deadlocks(monkeypatch):
    """4 beats less than the occupancy stalls the fork for good (the convolutions wait for rows
    that the full skip FIFO keeps from them)."""
    net, est = _shallow(-4, monkeypatch)
    assert est.accel.stages[2].join_fifo_depths == (None, 13)
    x = random_values(np.random.default_rng(0), net.input.dtype, (2, *net.input.shape))
    src = StreamSource(est.accel.i_stream, encode_frames(est.accel, x))
    sink = StreamSink(est.accel.o_stream, len(x) * est.accel.out_beats_per_frame, timeout=3000)
    sim = Simulator(est.accel)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench, background=True)
    sim.add_testbench(sink.testbench)
    with pytest.raises(AssertionError, match="^Timeout: 0 of"):
        sim.run()


def test_dangling_layer_is_one_line_error():
    doc, arrays = residual_network(np.random.default_rng(1), "int", in_shape=(4, 6, 6))
    doc["outputs"] = ["fc"]
    doc["layers"].append({"type": "maxpool2d", "name": "extra", "inputs": ["b0add"], "kernel": 2})
    net = network_from_dict(doc, arrays=arrays)
    est = estimate_network(net, count_registers=False)
    with pytest.raises(NetworkError, match=r"^layers\[4\]: 'extra' is read by no layer and is not the output"):
        est.accel.require_chain()


@pytest.mark.parametrize("mac,seed", [("int", 30), ("xnor", 31)])
def test_small_resnet_with_projection_shortcut(mac, seed):
    """Stem, identity block, downsampling block (stride 2 beside a 1×1 stride-2 projection on
    the skip path: both inputs of that add come through convolutions), global pooling."""
    from sim.randgraph import resnet_network

    doc, arrays = resnet_network(np.random.default_rng(seed), mac)
    est = check(doc, arrays, seed=seed, frames=2, timing_frames=4)
    depths = {s.name: s.join_fifo_depths for s in est.accel.stages if s.kind == "add"}
    print(f"join FIFO depths {depths}, {est.accel.join_fifo_bits} bits")
    assert depths["b0"][0] is None and depths["b0"][1] is not None
