"""The ``dwconv2d`` layer: loading and errors, the golden model against a direct numpy
computation, the whole accelerator (sliding window, depthwise window buffer, vector-vector
unit) bit-exact in Amaranth's simulator with random stalls, and the cycle model (interval and
latency) against simulation over random kernels, strides, paddings, sizes and foldings."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import macs
from gen.errors import NetworkError
from gen.estimate import estimate_network
from gen.load import network_from_dict
from gen.top import decode_outputs, encode_frames
from hw.dtypes import DType
from sim import golden
from sim.randnet import MAC_TYPES, random_values
from sim.streamsim import StreamSink, StreamSource

KINDS = list(MAC_TYPES)


def _dtype_of(spec: dict) -> DType:
    """The element type of a type spec dict of the file format."""
    bits = spec.get("bits", {"bipolar": 1, "ternary": 2}.get(spec["encoding"]))
    return DType(spec["encoding"], bits, narrow=spec.get("narrow", False),
                 signed=spec.get("signed", False))


def dw_layer(rng, mac, c, kernel, stride, padding, in_spec, arrays, *, act="threshold", key="dw",
             shift=0, pad_value=None):
    """A random dwconv2d layer entry (its arrays into ``arrays``)."""
    wspec = dict(MAC_TYPES[mac][0])
    kh, kw = kernel
    w = random_values(rng, wspec, (c, 1, kh, kw)).astype(np.int64)
    arrays[f"{key}_w"] = w
    layer = {"type": "dwconv2d", "name": key, "mac": mac, "weights": {"key": f"{key}_w", **wspec},
             "kernel": list(kernel), "stride": list(stride), "padding": list(padding)}
    if shift:
        layer["weights"]["shift"] = shift
    adt = _dtype_of(in_spec)
    if pad_value is not None:
        layer["pad_value"] = pad_value
    elif any(padding) and not adt.contains(0):
        layer["pad_value"] = int(adt.min)
    bias = None
    if rng.random() < 0.5:
        bias = rng.integers(-3, 4, size=c)
        arrays[f"{key}_b"] = bias
        layer["bias"] = f"{key}_b"
    lo, hi = macs.acc_bounds(mac, w.reshape(c, -1), adt.min, adt.max, shift, bias)
    if act == "threshold":
        t = np.sort(rng.integers(lo[:, None] - 1, hi[:, None] + 2, size=(c, 3)), axis=1)
        arrays[f"{key}_t"] = t
        layer["activation"] = {"type": "multithreshold", "thresholds": f"{key}_t"}
    elif act == "requant":
        layer["activation"] = {"type": "requant", "multiplier": int(rng.integers(1, 4)),
                               "shift": int(rng.integers(0, 3)), "rounding": "half-even",
                               "clip": [-4, 5]}
    return layer


def dw_network(seed, mac, c, h, w, kernel, stride, padding, *, act="threshold", shift=0):
    rng = np.random.default_rng(seed)
    in_spec = dict(MAC_TYPES[mac][1])
    arrays: dict = {}
    layer = dw_layer(rng, mac, c, kernel, stride, padding, in_spec, arrays, act=act, shift=shift)
    doc = {"version": 1, "name": "dw", "input": {"shape": [c, h, w], **in_spec}, "layers": [layer]}
    return network_from_dict(doc, arrays=arrays), arrays, rng


def direct_dwconv(mac, x, w, shift, kernel, stride, padding, pad_value):
    """Depthwise convolution, one kernel position at a time: x (N, C, H, W), w (C, 1, KH, KW)."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), pad_value, dtype=np.int64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    acc = np.zeros((n, c, oh, ow), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            a = xp[:, :, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw]
            wk = w[:, 0, ky, kx].reshape(1, c, 1, 1)
            acc += -np.abs(a - (wk << shift)) if mac == "adder" else a * wk
    return acc


# -- loading -------------------------------------------------------------------------------------
def test_load_shapes_and_bounds():
    net, arrays, _ = dw_network(1, "int", 4, 7, 6, (3, 3), (2, 1), (1, 0), act="none")
    layer = net.layers[0]
    assert layer.kind == "dwconv2d"
    assert layer.out_shape == (4, 4, 4)
    assert (layer.mh, layer.mw) == (4, 9)
    assert layer.macs == 4 * 9 * 4 * 4
    lo, hi = macs.acc_bounds("int", arrays["dw_w"].reshape(4, 9), 0, 15, 0, arrays.get("dw_b"))
    np.testing.assert_array_equal(layer.acc_lo, lo)
    np.testing.assert_array_equal(layer.acc_hi, hi)


def _doc(layer, shape=(4, 5, 5)):
    return {"version": 1, "input": {"shape": list(shape), "encoding": "uint", "bits": 4},
            "layers": [layer]}


def _layer(**kw):
    return {"type": "dwconv2d", "mac": "int", "kernel": 3,
            "weights": {"key": "w", "encoding": "int", "bits": 4}, **kw}


def test_errors():
    ok = np.ones((4, 1, 3, 3), dtype=np.int64)
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.weights: expected shape \(4, 1, 3, 3\) "
                                           r"\(one kernel per input channel\), found \(4, 4, 3, 3\)$"):
        network_from_dict(_doc(_layer()), arrays={"w": np.ones((4, 4, 3, 3), dtype=np.int64)})
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.mask: a dwconv2d layer takes no mask"):
        network_from_dict(_doc(_layer(mask="m")), arrays={"w": ok, "m": np.ones(4, dtype=np.int64)})
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.simd: 2 does not divide the 9 inputs"):
        network_from_dict(_doc(_layer(simd=2)), arrays={"w": ok})
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.pe: 3 does not divide the 4 output"):
        network_from_dict(_doc(_layer(pe=3)), arrays={"w": ok})
    with pytest.raises(NetworkError, match=r"^layers\[0\]: dwconv2d needs a C×H×W input"):
        network_from_dict(_doc(_layer(), shape=(4,)), arrays={"w": ok})
    masked = {"type": "conv2d", "mac": "int", "kernel": 1, "mask": "m",
              "weights": {"key": "c", "encoding": "int", "bits": 4}}
    doc = _doc(masked)
    doc["layers"].append(_layer())
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.mask: a mask needs a dense or conv2d "
                                           r"layer after it"):
        network_from_dict(doc, arrays={"w": ok, "c": np.ones((4, 4, 1, 1), dtype=np.int64),
                                       "m": np.array([1, 0, 1, 1])})


# -- golden model --------------------------------------------------------------------------------
@pytest.mark.parametrize("mac", KINDS)
def test_golden_matches_direct(mac):
    seed = 40 + KINDS.index(mac)
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    for _ in range(4):
        kernel = tuple(int(v) for v in rng.integers(1, 4, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        shift = int(rng.integers(0, 2)) if mac == "adder" else 0
        net, arrays, _ = dw_network(int(rng.integers(1 << 30)), mac, 3, 6, 5, kernel, stride,
                                    padding, act="none", shift=shift)
        layer = net.layers[0]
        x = random_values(rng, net.input.dtype, (5, 3, 6, 5))
        want = direct_dwconv(mac, x, arrays["dw_w"], shift, kernel, stride, padding,
                             layer.pad_value)
        if "dw_b" in arrays:
            want = want + arrays["dw_b"].reshape(1, -1, 1, 1)
        r = golden.run(net, x)
        np.testing.assert_array_equal(r.outputs, want)


# -- hardware and the cycle model ---------------------------------------------------------------
def run_accel(accel, x, *, gap=0.0, stall=0.0, seed=0):
    """Outputs, ``(latency, interval)`` of an accelerator in Amaranth's simulator."""
    frames = x.shape[0]
    rng = np.random.default_rng(seed)
    n_in = accel.in_beats_per_frame
    wd = len(accel.i_stream.payload.data)
    beats = [d | (int(j % n_in == n_in - 1) << wd) for j, d in enumerate(encode_frames(accel, x))]
    src = StreamSource(accel.i_stream, beats, rng=rng, gap=gap)
    per = accel.out_beats_per_frame
    sink = StreamSink(accel.o_stream, frames * per, rng=rng, stall=stall)
    sim = Simulator(accel)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    words = [b & ((1 << (len(accel.o_stream.payload.data))) - 1) for b in sink.beats]
    out = decode_outputs(accel, words, frames)
    starts = sink.transfer_cycles[::per]
    return out, sink.valid_cycles[0] - src.accept_cycles[0], np.diff(starts[1:]).tolist()


def random_case(seed):
    rng = np.random.default_rng(seed)
    mac = KINDS[seed % len(KINDS)]
    kernel = tuple(int(v) for v in rng.integers(1, 4, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
    padding = tuple(int(rng.integers(0, k)) for k in kernel)
    if seed % 7 == 0:            # a per-channel scale: no window
        kernel, stride, padding = (1, 1), (1, 1), (0, 0)
    elif rng.random() < 0.5:     # symmetric
        kernel, stride, padding = (kernel[0],) * 2, (stride[0],) * 2, (padding[0],) * 2
    c = int(rng.choice([2, 3, 4, 6]))
    h, w = (int(v) for v in rng.integers(max(kernel), 8, size=2))
    pes = [d for d in range(1, c + 1) if c % d == 0]
    k = kernel[0] * kernel[1]
    simds = [d for d in range(1, k + 1) if k % d == 0]
    fold = {"dw": {"pe": int(rng.choice(pes)), "simd": int(rng.choice(simds))}}
    act = str(rng.choice(["threshold", "requant", "none"]))
    shift = seed % 3 if mac == "adder" else 0
    return mac, c, h, w, kernel, stride, padding, fold, act, shift


@pytest.mark.parametrize("seed", range(14))
def test_accelerator_exact_and_cycle_model(seed):
    """Bit-exact with random stalls on both sides; with none, the measured latency and
    steady-state interval equal the model's (gen.cycles, gen.plan)."""
    seed = 900 + seed
    mac, c, h, w, kernel, stride, padding, fold, act, shift = random_case(seed)
    print(f"seed={seed} {mac} C={c} {h}x{w} kernel={kernel} stride={stride} padding={padding} "
          f"fold={fold} act={act}")
    net, _, rng = dw_network(seed, mac, c, h, w, kernel, stride, padding, act=act, shift=shift)
    est = estimate_network(net, fold=fold, count_registers=False)
    x = random_values(rng, net.input.dtype, (4, c, h, w))
    want = golden.run(net, x).outputs
    out, _, _ = run_accel(est.accel, x, gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(out, want)
    out, latency, intervals = run_accel(est.accel, x)
    np.testing.assert_array_equal(out, want)
    assert set(intervals) == {est.interval}, (intervals, est.plan.report())
    assert latency == est.latency


@pytest.mark.parametrize("seed", range(3))
def test_window_interval_matches_simulation(seed):
    """hw.swu.swu_cycles (the sliding window's steady state, used by conv2d and dwconv2d)
    against the unit alone, input always offered, output always taken."""
    from hw.swu import SlidingWindow, swu_cycles

    seed = 300 + seed
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    for _ in range(5):
        k = tuple(int(v) for v in rng.integers(1, 5, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        p = tuple(int(rng.integers(0, kk)) for kk in k)
        h, w = (int(v) for v in rng.integers(max(k), 10, size=2))
        dut = SlidingWindow(width=2, in_shape=(1, h, w), kernel=k, stride=s, padding=p)
        frames = 4
        src = StreamSource(dut.i_stream, [i % 4 for i in range(h * w * frames)])
        n = dut.beats_per_frame
        sink = StreamSink(dut.o_stream, n * frames)
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(src.testbench)
        sim.add_testbench(sink.testbench)
        sim.run()
        ends = sink.transfer_cycles[n - 1::n]
        assert set(np.diff(ends[1:]).tolist()) == {swu_cycles((1, h, w), k, s, p)}


def test_area_parameters():
    """The VVU is priced with the MVU's lane features (its own coefficients, ``vvu_<feature>``),
    built once per PE (its lanes share nothing); the window buffer's memory and selects are
    counted."""
    from gen import area

    net, _, _ = dw_network(5, "and", 4, 6, 6, (3, 3), (1, 1), (1, 1))
    est = estimate_network(net, fold={"dw": {"pe": 2, "simd": 3}}, count_registers=False)
    lay = est.layers[0]
    blocks = {b.block: b for b in lay.blocks}
    assert {"swu", "dwwin", "vvu"} <= set(blocks)
    p = blocks["vvu"].params
    assert (p["mh"], p["mw"], p["pe"], p["simd"]) == (4, 9, 2, 3)
    f = area.features(p, "xilinx")
    assert f["vvu_popcount"] == 2 * 2 * 3        # popcount(a ∧ w⁺) and popcount(a) per PE
    assert blocks["vvu"].lut > 0 and blocks["dwwin"].lut > 0
    assert lay.weight_bits == 4 * 9 * 1
    assert lay.buffer_bits >= 2 * 9 * 4 * 1  # the window buffer: two windows of C·K codes
    assert blocks["dwwin"].lutram == 3        # ECP5: 6 words × 12 bits in TRELLIS_DPR16X4


def pointwise_network(seed, mac, c, oc, h, w):
    rng = np.random.default_rng(seed)
    wspec, in_spec = (dict(s) for s in MAC_TYPES[mac])
    arrays = {"pw_w": random_values(rng, wspec, (oc, c, 1, 1)).astype(np.int64)}
    layer = {"type": "conv2d", "name": "pw", "mac": mac, "weights": {"key": "pw_w", **wspec},
             "kernel": 1}
    doc = {"version": 1, "name": "pw", "input": {"shape": [c, h, w], **in_spec}, "layers": [layer]}
    return network_from_dict(doc, arrays=arrays), rng


@pytest.mark.parametrize("mac", KINDS)
def test_pointwise_conv_has_no_window(mac):
    """A 1×1 conv2d (stride 1, no padding) is a width converter and an MVU: no line buffer;
    bit-exact with random stalls, and latency and interval as the model says."""
    seed = 60 + KINDS.index(mac)
    rng = np.random.default_rng(seed)
    c, oc = int(rng.choice([2, 4, 6])), int(rng.choice([2, 3, 4]))
    net, rng = pointwise_network(seed, mac, c, oc, 3, 4)
    pe = int(rng.choice([d for d in range(1, oc + 1) if oc % d == 0]))
    simd = int(rng.choice([d for d in range(1, c + 1) if c % d == 0]))
    print(f"seed={seed} C={c} OC={oc} pe={pe} simd={simd}")
    est = estimate_network(net, fold={"pw": {"pe": pe, "simd": simd}}, count_registers=False)
    kinds = [b.block for b in est.layers[0].blocks]
    assert "swu" not in kinds and kinds[-1] == "mvu"
    assert est.layers[0].buffer_bits == (simd * net.input.dtype.code_width * (c // simd)
                                         if oc // pe > 1 else 0)
    x = random_values(rng, net.input.dtype, (4, c, 3, 4))
    want = golden.run(net, x).outputs
    out, _, _ = run_accel(est.accel, x, gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(out, want)
    out, latency, intervals = run_accel(est.accel, x)
    assert set(intervals) == {est.interval}
    assert latency == est.latency


# -- a MobileNet-style chain, generated and co-simulated in cocotb --------------------------------
def documented_network(name: str):
    """The example network ``name`` of docs/format.md (its yaml block and the python after it)."""
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text()
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", doc, re.S | re.M)
    for (lang, text), (_, code) in zip(blocks, blocks[1:], strict=False):
        if lang == "yaml" and yaml.safe_load(text).get("name") == name:
            scope = {"np": np}
            exec(code, scope)  # noqa: S102 - the document's own example code
            return network_from_dict(yaml.safe_load(text), arrays=scope["arrays"])
    raise KeyError(name)


def test_mobilenet_example_plan():
    net = documented_network("mobilenet-block")
    assert [layer.kind for layer in net.layers] == ["conv2d", "dwconv2d", "conv2d", "dense", "argmax"]
    est = estimate_network(net, count_registers=False)
    blocks = [[b.block for b in lay.blocks] for lay in est.layers]
    assert "dwwin" in blocks[1] and "vvu" in blocks[1]
    assert "swu" not in blocks[2]                 # the pointwise convolution has no window
    assert est.layers[1].pe == 4 and est.layers[1].simd == 3


def test_mobilenet_chain_cosim(tmp_path):
    """conv → dwconv2d → 1×1 conv → dense → argmax: generated by gen.emit.build, co-simulated in
    cocotb (Icarus): 6 frames with no stalls (cycles per frame and latency), then 10 with random
    stalls on input and output; bit-exact, and measured interval and latency == the model
    (measured: 576 cycles per frame, latency 949; about 15 s)."""
    pytest.importorskip("cocotb")
    from gen.plan import plan_network
    from sim.runner import cosimulate, generate

    net = documented_network("mobilenet-block")
    est = estimate_network(net, target="xc7z020", count_registers=False)   # generate's family
    sources, streams = generate(net, tmp_path / "gen")
    x = random_values(np.random.default_rng(11), net.input.dtype, (16, *net.input.shape))
    r = cosimulate(sources, streams, x, golden.run(net, x).outputs, build_dir=tmp_path / "sim",
                   seed=11, stall=0.3, timing_frames=6)
    print(f"cocotb: {r.frames} frames, {r.mismatches} mismatches, {r.cycles_per_frame} cycles "
          f"per frame (plan {est.interval}), latency {r.latency_cycles} (model {est.latency})")
    assert r.passed and r.frames == 16 and r.mismatches == 0
    assert r.cycles_per_frame == est.interval == plan_network(net).interval
    assert r.latency_cycles == est.latency
