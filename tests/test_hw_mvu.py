"""The matrix-vector unit against the golden model, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import macs
from gen.ir import MultiThreshold, NoActivation, Requant
from gen.load import network_from_dict
from gen.ops.compute import mvu_for
from hw.dtypes import DType
from hw.mvu import MVU
from sim import golden
from sim.randnet import LANE_TYPES as TYPES
from sim.randnet import random_activation, random_network, random_values
from sim.streamsim import StreamSink, StreamSource, pack, unpack

KINDS = list(TYPES)


def acc_bounds(mac, w, shift, lo, hi, bias):
    """Exact accumulator range per row (the registry's, checked by brute force in
    tests/test_graph_ir.py)."""
    return macs.acc_bounds(mac, w, lo, hi, shift, bias)


def expected(mac, W, X, shift, bias, act):
    acc = golden.dot(mac, X, W, shift=shift) + bias
    if isinstance(act, MultiThreshold):
        return golden.threshold(acc, act)
    if isinstance(act, Requant):
        return golden.requant(acc, act)
    return acc


def run_mvu(dut: MVU, X, rng, *, gap=0.0, stall=0.0):
    """Stream the rows of X through the MVU; returns (output values (N, MH), source, sink)."""
    n = X.shape[0]
    acw = dut.in_dtype.code_width
    codes = dut.in_dtype.encode(X)
    beats = [pack(codes[i, s * dut.simd:(s + 1) * dut.simd], acw)
             for i in range(n) for s in range(dut.synapse_folds)]
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    src = StreamSource(dut.i_stream, beats, rng=rng, gap=gap)
    sink = StreamSink(dut.o_stream, n * dut.neuron_folds, rng=rng, stall=stall)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    od, cw = dut.out_dtype, dut.out_dtype.code_width
    out = np.array([od.decode(unpack(b, cw, dut.pe)) for b in sink.beats])
    return out.reshape(n, dut.mh), src, sink


def make_mvu(rng, mac, types, mh, mw, pe, simd, act_kind, *, depth=1, worst=False, **kw):
    wdt, adt, shift = types
    W = random_values(rng, wdt, (mh, mw))
    if worst:  # extreme weights: every row all-min or all-max
        W[:] = np.where(rng.random((mh, 1)) < 0.5, wdt.min, wdt.max)
    bias = rng.integers(-3, 4, size=mh) if rng.random() < 0.5 else None
    b = np.zeros(mh, dtype=np.int64) if bias is None else bias
    lo, hi = acc_bounds(mac, W, shift, adt.min, adt.max, b)
    act = random_activation(rng, act_kind, int(lo.min()), int(hi.max()), mh)
    dut = MVU(weights=W, mac=mac, w_dtype=wdt, in_dtype=adt, w_shift=shift, bias=bias,
              activation=act, acc_range=(int(lo.min()), int(hi.max())), pe=pe, simd=simd,
              depth=depth, **kw)
    return dut, W, b, act


def check(seed, mac, types, mh, mw, pe, simd, act_kind, n=4, gap=0.3, stall=0.3, worst=False,
          **kw):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut, W, b, act = make_mvu(rng, mac, types, mh, mw, pe, simd, act_kind, worst=worst, **kw)
    adt = types[1]
    X = random_values(rng, adt, (n, mw))
    if worst:  # rows of extreme inputs reach the accumulator's bounds
        X[0], X[1] = adt.min, adt.max
    got, _, _ = run_mvu(dut, X, rng, gap=gap, stall=stall)
    np.testing.assert_array_equal(got, expected(mac, W, X, types[2], b, act))


FOLDINGS = [(4, 6, 1, 1), (4, 6, 4, 6), (4, 6, 2, 3), (6, 4, 3, 2)]
ACTS = ["none", "threshold", "requant"]


@pytest.mark.parametrize("mac", KINDS)
@pytest.mark.parametrize("fold", range(len(FOLDINGS)))
def test_mvu_random(mac, fold):
    seed = 1000 + 17 * KINDS.index(mac) + fold
    rng = np.random.default_rng(seed)
    types = TYPES[mac][int(rng.integers(len(TYPES[mac])))]
    act = ACTS[(KINDS.index(mac) + fold) % 3]
    check(seed, mac, types, *FOLDINGS[fold], act, depth=fold % 3)


@pytest.mark.parametrize("mac", KINDS)
def test_mvu_every_type(mac):
    for k, types in enumerate(TYPES[mac]):
        seed = 2000 + 31 * KINDS.index(mac) + k
        check(seed, mac, types, 4, 4, 2, 2, ACTS[k % 3], n=3, depth=k % 2)


@pytest.mark.parametrize("mac", KINDS)
def test_mvu_worst_case(mac):
    for k, types in enumerate(TYPES[mac]):
        seed = 3000 + 31 * KINDS.index(mac) + k
        check(seed, mac, types, 4, 8, 2, 4, "none", n=3, worst=True, gap=0.2, stall=0.2)


def test_mvu_onehot_counters():
    for k, types in enumerate(TYPES["onehot"]):
        check(4000 + k, "onehot", types, 4, 6, 2, 3, ACTS[k % 3], onehot_mode="counters",
              depth=k)


@pytest.mark.parametrize("style", ["fa", "carry"])
@pytest.mark.parametrize("mac", ["xnor", "and", "ternary"])
def test_mvu_popcount_style(style, mac):
    """The LUT4 popcount styles, with stalls, worst-case inputs and every pipeline depth."""
    for depth in range(3):
        seed = 4100 + 10 * ["xnor", "and", "ternary"].index(mac) + 3 * (style == "carry") + depth
        types = TYPES[mac][-1 if mac == "ternary" else 0]   # ternary × bipolar: two popcounts
        check(seed, mac, types, 4, 24, 2, 12, ACTS[depth], depth=depth, worst=depth == 0,
              popcount_style=style)


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_mvu_popcount_style_member():
    rng = np.random.default_rng(4200)
    dut, *_ = make_mvu(rng, "xnor", TYPES["xnor"][0], 2, 4, 1, 4, "none",
                       popcount_style="carry")
    assert dut.popcount_style == "carry"


@pytest.mark.parametrize("ram_style", ["block", "distributed", "logic", None])
def test_mvu_ram_style(ram_style):
    check(5000, "int", TYPES["int"][0], 4, 4, 2, 2, "threshold", ram_style=ram_style, n=2)


def test_mvu_heavy_backpressure():
    check(6000, "xnor", TYPES["xnor"][0], 4, 8, 2, 2, "threshold", n=6, gap=0.7, stall=0.8)
    check(6001, "adder", TYPES["adder"][0], 4, 8, 1, 4, "none", n=6, gap=0.0, stall=0.9)


def test_mvu_without_weight_register():
    """``weight_register=False``: the read data goes straight to the lanes, bit-exact."""
    check(6002, "xnor", TYPES["xnor"][0], 4, 8, 2, 2, "threshold", n=6, gap=0.5, stall=0.5,
          weight_register=False)
    check(6003, "int", TYPES["int"][0], 4, 6, 2, 3, "requant", n=4, weight_register=False)


@pytest.mark.parametrize("mh,mw,pe,simd,act,depth", [
    (4, 6, 2, 3, "none", 0), (4, 6, 1, 1, "threshold", 2), (4, 6, 4, 6, "requant", 1),
    (2, 8, 2, 2, "threshold", 3)])
@pytest.mark.parametrize("weight_register", [True, False, 2])
def test_mvu_cycles(mh, mw, pe, simd, act, depth, weight_register):
    """No stalls: a vector every (MH/PE)·(MW/SIMD) cycles, first output after `latency`."""
    seed = 7000 + mh * 100 + pe * 10 + simd
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut, W, b, a = make_mvu(rng, "xnor", TYPES["xnor"][0], mh, mw, pe, simd, act, depth=depth,
                            weight_register=weight_register)
    assert dut.weight_register == int(weight_register)
    assert dut.read_stages == 1 + int(weight_register)
    assert dut.cycles_per_vector == (mh // pe) * (mw // simd)
    n = 4
    X = random_values(rng, DType.bipolar(), (n, mw))
    got, src, sink = run_mvu(dut, X, rng)
    np.testing.assert_array_equal(got, expected("xnor", W, X, 0, b, a))
    cpv, sf, nf = dut.cycles_per_vector, dut.synapse_folds, dut.neuron_folds
    starts = src.accept_cycles[::sf]
    assert starts == [src.accept_cycles[0] + v * cpv for v in range(n)]
    assert src.accept_cycles[:sf] == list(range(src.accept_cycles[0], src.accept_cycles[0] + sf))
    assert sink.valid_cycles[0] - src.accept_cycles[0] == dut.latency
    # one output beat per neuron fold, every MW/SIMD cycles, without a gap between vectors
    t0 = sink.transfer_cycles[0]
    assert sink.transfer_cycles == [t0 + k * sf for k in range(n * nf)]




@pytest.mark.parametrize("conv", [False, True])
def test_mvu_from_layer(conv):
    seed = 8000 + conv
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    macs = ["int", "ternary"] if conv else ["and", "xnor"]
    doc, arrays = random_network(rng, macs, conv=conv, in_shape=[2, 3, 3] if conv else [6],
                                 widths=[4, 2], kernel=2, padding=0)
    net = network_from_dict(doc, arrays=arrays)
    layer = net.layers[0]
    x = random_values(rng, net.input.dtype, (2, *net.input.shape))
    res = golden.run(net, x)
    if conv:
        matrix = layer.weights.transpose(0, 2, 3, 1).reshape(layer.mh, -1)
        dut = mvu_for(layer, pe=2, simd=4, matrix=matrix)
        win = golden.im2col(x, layer.kernel, layer.stride, layer.padding, layer.pad_value)
        n, oh, ow, k = win.shape
        c = net.input.shape[0]
        kh, kw = layer.kernel
        # reorder each window from (c, kh, kw) to (kh, kw, c)
        X = win.reshape(n * oh * ow, c, kh, kw).transpose(0, 2, 3, 1).reshape(-1, k)
        want = res.layers[0].out.transpose(0, 2, 3, 1).reshape(-1, layer.mh)
    else:
        dut = mvu_for(layer, pe=2, simd=3)
        X = x.reshape(2, -1)
        want = res.layers[0].out
    assert dut.out_dtype == layer.out_dtype
    got, _, _ = run_mvu(dut, X, rng, gap=0.2, stall=0.2)
    np.testing.assert_array_equal(got, want)


def test_mvu_last_layer_accumulator_code():
    """With activation none the output is the accumulator in out_dtype.code_width bits."""
    rng = np.random.default_rng(8100)
    doc, arrays = random_network(rng, ["adder"], in_shape=[5], widths=[3])
    net = network_from_dict(doc, arrays=arrays)
    layer = net.layers[0]
    dut = mvu_for(layer, pe=3, simd=5)
    assert len(dut.o_stream.payload) == 3 * layer.out_dtype.code_width
    x = random_values(rng, net.input.dtype, (3, 5))
    got, _, _ = run_mvu(dut, x, rng)
    np.testing.assert_array_equal(got, golden.run(net, x).outputs)


def test_mvu_bad_parameters():
    W = np.ones((4, 6), dtype=np.int64)
    kw = dict(weights=W, mac="int", w_dtype=DType.int(2), in_dtype=DType.uint(2),
              activation=NoActivation(DType.int(8)), acc_range=(-30, 30))
    with pytest.raises(ValueError, match=r"^PE must be a positive divisor of MH = 4, not 3$"):
        MVU(**kw, pe=3)
    with pytest.raises(ValueError, match=r"^SIMD must be a positive divisor of MW = 6, not 4$"):
        MVU(**kw, simd=4)
    with pytest.raises(ValueError, match=r"^RAM style must be block, distributed or logic, "
                                         r"not 'ultra'$"):
        MVU(**kw, ram_style="ultra")
    with pytest.raises(ValueError, match=r"^Weights must be int2 values$"):
        MVU(**{**kw, "weights": W * 2})
    with pytest.raises(ValueError, match=r"^MAC kind 'xnor' takes weights bipolar, not int2$"):
        MVU(**{**kw, "mac": "xnor"})
    with pytest.raises(ValueError, match=r"^Threshold mode must be auto, parallel or search, "
                                         r"not 'tree'$"):
        MVU(**kw, threshold_mode="tree")


def wide_thresholds(rng, t, mh, lo, hi, *, shared=False, dups=False, out="levels"):
    """T sorted thresholds per row (or shared), some beyond [lo, hi], optionally with runs."""
    pool = rng.integers(lo - 3, hi + 4, size=max(2, t // 8)) if dups else None
    size = (1 if shared else mh, t)
    thr = np.sort(rng.choice(pool, size=size) if dups else rng.integers(lo - 3, hi + 4, size=size),
                  axis=1)
    if out == "bipolar":
        return MultiThreshold(thr, np.array([-1, 1]), DType.bipolar())
    if out == "onehot":
        return MultiThreshold(thr, np.array([0] + [1 << e for e in range(t)]), DType.onehot(t))
    levels = np.sort(rng.integers(-t, t + 1, size=t + 1))
    return MultiThreshold(thr, levels, DType.for_range(-t, t))


# (T, MH, MW, PE, SIMD, output, shared, duplicates)
SEARCH_MVU = [(1, 4, 6, 2, 3, "bipolar", False, False), (3, 4, 6, 1, 2, "onehot", True, False),
              (7, 6, 4, 3, 2, "levels", False, True), (15, 4, 6, 4, 6, "onehot", False, False),
              (31, 4, 6, 2, 1, "levels", True, True), (255, 4, 8, 1, 4, "levels", False, False),
              (255, 6, 4, 2, 2, "levels", False, True)]


@pytest.mark.parametrize("case", range(len(SEARCH_MVU)))
def test_mvu_threshold_search(case):
    """Binary-search thresholds in the MVU: bit-exact with stalls, exact latency without."""
    t, mh, mw, pe, simd, out, shared, dups = SEARCH_MVU[case]
    seed = 9100 + case
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    wdt, adt = DType.int(4), DType.uint(4)
    W = random_values(rng, wdt, (mh, mw))
    b = rng.integers(-5, 6, size=mh)
    lo, hi = acc_bounds("int", W, 0, adt.min, adt.max, b)
    lo, hi = int(lo.min()), int(hi.max())
    act = wide_thresholds(rng, t, mh, lo, hi, shared=shared, dups=dups, out=out)
    kw = dict(weights=W, mac="int", w_dtype=wdt, in_dtype=adt, bias=b, activation=act,
              acc_range=(lo, hi), pe=pe, simd=simd)
    par = MVU(**kw, threshold_mode="parallel")
    par._MustUse__silence = True
    auto = MVU(**kw)
    auto._MustUse__silence = True
    assert auto.threshold_mode == ("search" if t > 15 else "parallel")
    dut = MVU(**kw, threshold_mode="search")
    assert dut.threshold_mode == "search" and par.threshold_mode == "parallel"
    assert dut.activation_latency == t.bit_length()
    assert dut.latency == par.latency - par.activation_latency + t.bit_length()
    X = random_values(rng, adt, (6, mw))
    X[0], X[1] = adt.min, adt.max
    got, _, _ = run_mvu(dut, X, rng, gap=0.3, stall=0.3)
    np.testing.assert_array_equal(got, expected("int", W, X, 0, b, act))
    dut = MVU(**kw, threshold_mode="search")
    got, src, sink = run_mvu(dut, X[:3], rng)
    np.testing.assert_array_equal(got, expected("int", W, X[:3], 0, b, act))
    assert sink.valid_cycles[0] - src.accept_cycles[0] == dut.latency
    sf, nf = dut.synapse_folds, dut.neuron_folds
    assert sink.transfer_cycles == [sink.transfer_cycles[0] + k * sf for k in range(3 * nf)]
