"""The graph layer ops (add, concat, avgpool2d, globalavgpool): loading with exact ranges and
one-line errors naming the field, golden functions against independent numpy computations, and
each layer alone in hardware (bit-exact with random gaps and stalls, interval = plan, latency =
model) over random shapes."""

from __future__ import annotations

import numpy as np
import pytest

from gen.errors import NetworkError
from gen.estimate import estimate_network
from gen.load import network_from_dict
from sim import golden
from sim.randnet import random_values


def image_input(shape, encoding="int", bits=4):
    return {"shape": list(shape), "encoding": encoding, **({"bits": bits} if bits else {})}


def add_net(shape=(3, 4, 4), mults=(1, 1), activation=None, enc=("int", 4), enc2=None):
    """input → maxpool 1×1 (a second tensor of the same values) and the input into an add."""
    doc = {"version": 2, "input": image_input(shape, *enc),
           "layers": [{"type": "maxpool2d", "name": "p", "kernel": 1},
                      {"type": "add", "name": "s", "inputs": ["p", "input"], "multipliers": list(mults)}]}
    if activation is not None:
        doc["layers"][1]["activation"] = activation
    return doc


def test_add_range_is_exact_and_golden_matches_numpy():
    net = network_from_dict(add_net(mults=(3, -2)), arrays={})
    add = net.layers[1]
    # x in [-8, 7]: 3x in [-24, 21], -2x in [-14, 16]
    assert (add.acc_lo, add.acc_hi) == (-38, 37) and str(add.out_dtype) == "int7"
    x = random_values(np.random.default_rng(0), net.input.dtype, (5, 3, 4, 4))
    np.testing.assert_array_equal(golden.run(net, x).outputs, 3 * x - 2 * x)


def test_add_requant_rounds_like_requant():
    act = {"type": "requant", "multiplier": 3, "shift": 2, "rounding": "half-even", "clip": [-4, 3]}
    net = network_from_dict(add_net(activation=act), arrays={})
    x = np.arange(-8, 8).repeat(3).reshape(1, 3, 4, 4)
    acc = 2 * x * 3
    q = np.floor(acc / 4)
    r = acc / 4 - q
    want = np.clip(q + ((r > 0.5) | ((r == 0.5) & (q % 2 == 1))), -4, 3)
    np.testing.assert_array_equal(golden.run(net, x).outputs, want)


@pytest.mark.parametrize("change,pattern", [
    (lambda d: d["layers"][1].update(multipliers=[0, 1]),
     r"^layers\[1\]\.multipliers: multipliers must not be 0, found \[0, 1\]$"),
    (lambda d: d["layers"][1].update(inputs=["p"]), r"^layers\[1\]\.inputs: a add layer takes 2 inputs, not 1$"),
    (lambda d: d["layers"][0].update(kernel=2),
     r"^layers\[1\]\.inputs: add needs inputs of the same shape, found \(3, 2, 2\) and \(3, 4, 4\)$"),
    (lambda d: d["layers"][1].update(multipliers=[1 << 17, 1]),
     r"^layers\[1\]\.multipliers\[0\]: input should be less than or equal to 65536, got 131072$"),
    (lambda d: d["layers"][1].update(activation={"type": "none"}, multipliers=[1 << 16, 1 << 16],
                                     ) or d["input"].update(bits=32),
     r"^layers\[1\]\.activation: the accumulator range \[-\d+, \d+\] needs 49 bits"),
])
def test_add_errors_name_the_field(change, pattern):
    doc = add_net()
    change(doc)
    with pytest.raises(NetworkError, match=pattern):
        network_from_dict(doc, arrays={})


def test_concat_golden_and_errors():
    doc = {"version": 2, "input": image_input((2, 3, 3)),
           "layers": [{"type": "maxpool2d", "name": "p", "kernel": 1},
                      {"type": "concat", "name": "c", "inputs": ["input", "p"]}]}
    net = network_from_dict(doc, arrays={})
    assert net.layers[1].out_shape == (4, 3, 3)
    x = random_values(np.random.default_rng(1), net.input.dtype, (3, 2, 3, 3))
    np.testing.assert_array_equal(golden.run(net, x).outputs, np.concatenate([x, x], axis=1))
    doc["layers"][0]["kernel"] = 2
    with pytest.raises(NetworkError, match=r"^layers\[1\]\.inputs: concat needs inputs of the same spatial "
                                           r"size, found \(2, 3, 3\) and \(2, 1, 1\)$"):
        network_from_dict(doc, arrays={})


def test_concat_needs_one_element_type():
    doc = {"version": 2, "input": image_input((2, 3, 3)),
           "layers": [{"type": "globalavgpool", "name": "g"},
                      {"type": "avgpool2d", "name": "a", "inputs": ["input"], "kernel": 3},
                      {"type": "concat", "name": "c", "inputs": ["g", "a"]}]}
    doc["layers"][1]["activation"] = {"type": "requant", "multiplier": 1, "shift": 0, "clip": [0, 3]}
    with pytest.raises(NetworkError, match=r"^layers\[2\]\.inputs: concat needs inputs of the same element "
                                           r"type, found int8 and uint2$"):
        network_from_dict(doc, arrays={})


def test_avgpool_golden_matches_numpy():
    # Brevitas' TruncAvgPool: sum of a 2×2 window, then drop 2 bits (floor); ONNX AveragePool
    # then Quant: round half to even
    for rounding, fn in (("floor", np.floor), ("half-even", np.rint)):
        act = {"type": "requant", "multiplier": 1, "shift": 2, "rounding": rounding, "clip": [-8, 7]}
        doc = {"version": 1, "input": image_input((2, 4, 6)),
               "layers": [{"type": "avgpool2d", "kernel": 2, "activation": act}]}
        net = network_from_dict(doc, arrays={})
        assert (net.layers[0].acc_lo, net.layers[0].acc_hi) == (-32, 28)
        x = random_values(np.random.default_rng(2), net.input.dtype, (4, 2, 4, 6))
        mean = x.reshape(4, 2, 2, 2, 3, 2).mean(axis=(3, 5))
        np.testing.assert_array_equal(golden.run(net, x).outputs, fn(mean).astype(np.int64))


def test_globalavgpool_golden_and_thresholds():
    # a mean over 9 pixels, rounded half up, by thresholds: level k once the sum reaches 9k - 4.5
    levels = np.arange(-8, 8)
    t = np.ceil(9 * (levels[1:] - 0.5)).astype(np.int64)
    doc = {"version": 1, "input": image_input((3, 3, 3)),
           "layers": [{"type": "globalavgpool",
                       "activation": {"type": "multithreshold", "thresholds": "t", "offset": -8}}]}
    net = network_from_dict(doc, arrays={"t": t})
    assert net.layers[0].out_shape == (3, 1, 1)
    x = random_values(np.random.default_rng(3), net.input.dtype, (20, 3, 3, 3))
    want = np.floor(x.mean(axis=(2, 3), keepdims=True) + 0.5).astype(np.int64)
    np.testing.assert_array_equal(golden.run(net, x).outputs, want)


def test_pool_needs_an_image():
    doc = {"version": 1, "input": {"shape": [8], "encoding": "int", "bits": 4},
           "layers": [{"type": "globalavgpool"}]}
    with pytest.raises(NetworkError, match=r"^layers\[0\]: globalavgpool needs a C×H×W input, found shape \(8,\)$"):
        network_from_dict(doc, arrays={})


# -- each layer alone in hardware, over random shapes -------------------------------------------
def hw_check(doc, arrays, seed, fold=None):
    from amaranth.sim import Simulator

    from gen.top import decode_outputs, encode_frames
    from sim.streamsim import StreamSink, StreamSource

    net = network_from_dict(doc, arrays=arrays)
    est = estimate_network(net, fold=fold, count_registers=False)
    accel = est.accel
    results = {}
    for name, gap, stall, frames in (("stalls", 0.4, 0.4, 3), ("timing", 0.0, 0.0, 5)):
        rng = np.random.default_rng(seed)
        x = random_values(rng, net.input.dtype, (frames, *net.input.shape))
        src = StreamSource(accel.i_stream, encode_frames(accel, x), rng=np.random.default_rng(seed), gap=gap)
        per = accel.out_beats_per_frame
        sink = StreamSink(accel.o_stream, frames * per, rng=np.random.default_rng(seed + 1), stall=stall)
        sim = Simulator(accel)
        sim.add_clock(1e-8)
        sim.add_testbench(src.testbench, background=True)
        sim.add_testbench(sink.testbench)
        sim.run()
        mask = (1 << len(accel.o_stream.payload.data)) - 1
        got = decode_outputs(accel, [b & mask for b in sink.beats], frames)
        np.testing.assert_array_equal(got, golden.run(net, x).outputs)
        results[name] = (sink, src)
    sink, src = results["timing"]
    starts = sink.transfer_cycles[::accel.out_beats_per_frame]
    intervals = set(np.diff(starts[1:]).tolist())
    latency = sink.valid_cycles[0] - src.accept_cycles[0]
    print(f"latency {latency} (model {est.latency}), intervals {intervals} (plan {est.plan.interval})")
    assert intervals == {est.plan.interval}
    assert latency == est.latency


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_pool_layers_in_hardware(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    style = ["requant", "multithreshold", "none"][seed % 3]
    n = kh * kw
    act = {"requant": {"type": "requant", "multiplier": 1, "shift": 1, "rounding": "half-up", "clip": [-4, 3]},
           "multithreshold": {"type": "multithreshold", "thresholds": "t", "offset": -1},
           "none": {"type": "none"}}[style]
    arrays = {"t": np.sort(rng.integers(-8 * n, 8 * n, size=(c, 3)), axis=1)}
    doc = {"version": 1, "input": image_input((c, h, w), "int", 4),
           "layers": [{"type": "avgpool2d", "kernel": [kh, kw], "stride": [sh, sw], "activation": act},
                      {"type": "globalavgpool", "activation": act}]}
    if style == "multithreshold":
        doc["layers"][1]["activation"] = {"type": "multithreshold", "thresholds": "t2", "offset": -1}
        arrays["t2"] = np.sort(rng.integers(-8, 8, size=(c, 3)), axis=1)
    print(doc["layers"])
    hw_check(doc, arrays, seed)


@pytest.mark.parametrize("seed", [23, 24])
def test_add_and_concat_of_folded_layers_in_hardware(seed):
    """The two inputs of each join come at different elements per beat (dense layers of
    different PE): width converters bring them to a common one."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n = 12
    wa = rng.integers(-2, 2, size=(n, 8))
    wb = rng.integers(-2, 2, size=(n, 8))
    ta = np.sort(rng.integers(-12, 12, size=(n, 3)), axis=1)
    tb = np.sort(rng.integers(-12, 12, size=(n, 3)), axis=1)
    act = {"type": "multithreshold", "offset": -2}
    doc = {"version": 2, "input": {"shape": [8], "encoding": "int", "bits": 3},
           "layers": [
               {"type": "dense", "name": "a", "mac": "int", "weights": {"key": "wa", "encoding": "int", "bits": 2},
                "activation": {**act, "thresholds": "ta"}, "pe": int(rng.choice([2, 3])), "simd": 4},
               {"type": "dense", "name": "b", "inputs": ["input"], "mac": "int",
                "weights": {"key": "wb", "encoding": "int", "bits": 2},
                "activation": {**act, "thresholds": "tb"}, "pe": 4, "simd": 2},
               {"type": "add", "name": "s", "inputs": ["a", "b"], "multipliers": [1, -3],
                "activation": {"type": "requant", "multiplier": 1, "shift": 1, "rounding": "ceil",
                               "clip": [-2, 1]}},
               {"type": "concat", "name": "c", "inputs": ["s", "a"]}]}
    hw_check(doc, {"wa": wa, "wb": wb, "ta": ta, "tb": tb}, seed)
