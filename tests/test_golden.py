"""The golden model against a naive per-element reference written from the spec (DESIGN.md).

The reference below loops over Python ints, one element at a time, and shares no code with
:mod:`sim.golden`. Random cases are drawn by hypothesis with ``derandomize=True``: a failure
prints the falsifying ``seed`` and replays identically.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gen.ir import ROUNDINGS, Argmax, Conv2d, Dense, MaxPool2d, MultiThreshold, Requant
from gen.load import network_from_dict
from gen.macs import mac_names
from hw.dtypes import ENCODINGS, DType
from sim import golden
from sim.randnet import random_network

MAC_KINDS = mac_names()

SETTINGS = settings(max_examples=30, derandomize=True, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)

# Weight and activation types each MAC kind accepts (several per kind, not only the defaults).
TYPES = {
    "xnor": [({"encoding": "bipolar"}, {"encoding": "bipolar"})],
    "and": [({"encoding": "bipolar"}, {"encoding": "uint", "bits": 1})],
    "ternary": [({"encoding": "ternary"}, {"encoding": "ternary"}),
                ({"encoding": "ternary"}, {"encoding": "uint", "bits": 3}),
                ({"encoding": "ternary"}, {"encoding": "int", "bits": 4}),
                ({"encoding": "bipolar"}, {"encoding": "int", "bits": 3, "narrow": True}),
                ({"encoding": "ternary"}, {"encoding": "bipolar"})],
    "onehot": [({"encoding": "onehot", "bits": 4, "signed": True}, {"encoding": "onehot", "bits": 3}),
               ({"encoding": "onehot", "bits": 3}, {"encoding": "onehot", "bits": 4, "signed": True}),
               ({"encoding": "onehot", "bits": 5, "signed": True}, {"encoding": "uint", "bits": 3})],
    "int": [({"encoding": "int", "bits": 4}, {"encoding": "uint", "bits": 4}),
            ({"encoding": "int", "bits": 3, "narrow": True}, {"encoding": "int", "bits": 5}),
            ({"encoding": "uint", "bits": 2}, {"encoding": "ternary"}),
            ({"encoding": "ternary"}, {"encoding": "int", "bits": 8})],
    "adder": [({"encoding": "int", "bits": 4}, {"encoding": "uint", "bits": 4}),
              ({"encoding": "int", "bits": 3, "shift": 2}, {"encoding": "int", "bits": 6}),
              ({"encoding": "uint", "bits": 3, "shift": 1}, {"encoding": "uint", "bits": 5}),
              ({"encoding": "int", "bits": 5, "narrow": True}, {"encoding": "int", "bits": 3})],
}
CASES = [(mac, i) for mac in MAC_KINDS for i in range(len(TYPES[mac]))]


def dtype_of(spec: dict) -> DType:
    enc = spec["encoding"]
    bits = spec.get("bits", {"bipolar": 1, "ternary": 2}.get(enc))
    return DType(enc, bits, narrow=spec.get("narrow", False), signed=spec.get("signed", False))


def draw(rng, dt: DType, shape) -> np.ndarray:
    return rng.choice(dt.values(), size=shape).astype(np.int64)


# -- the naive reference -----------------------------------------------------------------------
def ref_product(mac: str, a: int, w: int, shift: int) -> int:
    """One term of the dot product, written per MAC kind as the spec words it."""
    if mac == "xnor":
        assert a in (-1, 1) and w in (-1, 1)
        return 1 if a == w else -1
    if mac == "and":
        assert a in (0, 1) and w in (-1, 1)
        return w if a == 1 else 0
    if mac == "ternary":
        if w == 0:
            return 0
        return a if w > 0 else -a
    if mac == "onehot":
        if w == 0 or a == 0:
            return 0
        sign = (1 if w > 0 else -1) * (1 if a > 0 else -1)
        ew = abs(w).bit_length() - 1
        if abs(a) & (abs(a) - 1) == 0:  # a power of two: exponents add
            return sign * 2 ** (ew + abs(a).bit_length() - 1)
        return sign * abs(a) * 2 ** ew  # unsigned-int activation: a shift
    if mac == "int":
        return a * w
    if mac == "adder":
        return -abs(a - w * 2 ** shift)
    raise AssertionError(mac)


def ref_round(v: Fraction, rounding: str) -> int:
    if rounding == "floor":
        return math.floor(v)
    if rounding == "ceil":
        return math.ceil(v)
    if rounding == "half-up":
        return math.floor(v + Fraction(1, 2))
    if rounding == "half-even":
        return round(v)  # Fraction rounds halves to even
    raise AssertionError(rounding)


def ref_activation(act, c: int, acc: int) -> int:
    if isinstance(act, MultiThreshold):
        row = act.thresholds[c if act.thresholds.shape[0] > 1 else 0].tolist()
        return int(act.levels[sum(1 for t in row if acc >= t)])
    if isinstance(act, Requant):
        q = ref_round(Fraction(acc * int(act.multiplier[c]), 2 ** act.shift), act.rounding)
        return min(max(q, act.clip[0]), act.clip[1])
    return acc


def flat(x) -> list:
    return [v for row in x for v in flat(row)] if isinstance(x, list) else [x]


def ref_layer(layer, x):
    """One layer on one sample ``x`` (nested lists of ints). Returns (acc, out)."""
    if isinstance(layer, Dense):
        a = flat(x)
        acc, out = [], []
        for c in range(layer.mh):
            s = sum(ref_product(layer.mac, a[j], int(layer.matrix[c, j]), layer.w_shift)
                    for j in range(layer.mw))
            s += int(layer.bias[c]) if layer.bias is not None else 0
            acc.append(s)
            out.append(ref_activation(layer.activation, c, s))
        return acc, out
    if isinstance(layer, Conv2d):
        ic, h, w = len(x), len(x[0]), len(x[0][0])
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
        oc, oh, ow = layer.out_shape

        def pixel(c, y, z):
            y, z = y - ph, z - pw
            return x[c][y][z] if 0 <= y < h and 0 <= z < w else layer.pad_value

        acc = [[[0] * ow for _ in range(oh)] for _ in range(oc)]
        out = [[[0] * ow for _ in range(oh)] for _ in range(oc)]
        for o in range(oc):
            for y in range(oh):
                for z in range(ow):
                    s = 0
                    for c in range(ic):
                        for i in range(kh):
                            for j in range(kw):
                                s += ref_product(layer.mac, pixel(c, y * sh + i, z * sw + j),
                                                 int(layer.weights[o, c, i, j]), layer.w_shift)
                    s += int(layer.bias[o]) if layer.bias is not None else 0
                    acc[o][y][z] = s
                    out[o][y][z] = ref_activation(layer.activation, o, s)
        return acc, out
    if isinstance(layer, MaxPool2d):
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        c, oh, ow = layer.out_shape
        return None, [[[max(x[k][y * sh + i][z * sw + j] for i in range(kh) for j in range(kw))
                        for z in range(ow)] for y in range(oh)] for k in range(c)]
    if isinstance(layer, Argmax):
        v = flat(x)
        best = 0
        for i in range(1, len(v)):
            if v[i] > v[best]:
                best = i
        return None, [best]
    raise AssertionError(layer)


def ref_run(net, xs: np.ndarray):
    """Every layer's (accs, outs) over a batch, as nested lists."""
    per_layer = [([], []) for _ in net.layers]
    for x in xs.tolist():
        for k, layer in enumerate(net.layers):
            acc, x = ref_layer(layer, x)
            per_layer[k][0].append(acc)
            per_layer[k][1].append(x)
    return per_layer


def assert_matches_ref(net, xs):
    res = golden.run(net, xs)
    ref = ref_run(net, xs)
    for layer, got, (acc, out) in zip(net.layers, res.layers, ref):
        if got.acc is not None:
            np.testing.assert_array_equal(got.acc, np.array(acc), err_msg=f"{layer.name} acc")
        np.testing.assert_array_equal(got.out, np.array(out), err_msg=f"{layer.name} out")
    return res


# -- builders ----------------------------------------------------------------------------------
def dense_doc(mac, wspec, aspec, w, *, bias=None, activation=None, extra_arrays=None):
    arrays = {"w": w, **(extra_arrays or {})}
    layer = {"type": "dense", "mac": mac, "weights": {"key": "w", **wspec}}
    if bias is not None:
        arrays["b"] = bias
        layer["bias"] = "b"
    if activation is not None:
        layer["activation"] = activation
    doc = {"version": 1, "input": {"shape": [w.shape[1]], **aspec}, "layers": [layer]}
    return doc, arrays


def random_activation(rng, kind: str, mh: int, acc_lo: int, acc_hi: int, arrays: dict) -> dict:
    """A random activation of one of the kinds the tests cover."""
    if kind == "none":
        return {"type": "none"}
    if kind.startswith("requant"):
        rounding = kind.split(":")[1]
        lo = int(rng.integers(-20, 5))
        mult = rng.integers(-7, 8, size=mh)
        arrays["m"] = mult
        return {"type": "requant", "multiplier": "m", "shift": int(rng.integers(0, 5)),
                "rounding": rounding, "clip": [lo, lo + int(rng.integers(0, 30))]}
    shared = rng.random() < 0.3
    n = {"mt": 3, "mt-offset": 4, "mt-bipolar": 1, "mt-levels": 3, "mt-onehot": 4}[kind]
    t = np.sort(rng.integers(acc_lo - 1, acc_hi + 2, size=(1 if shared else mh, n)), axis=1)
    arrays["t"] = t
    act = {"type": "multithreshold", "thresholds": "t"}
    if kind == "mt-offset":
        act["offset"] = int(rng.integers(-3, 3))
    elif kind == "mt-bipolar":
        act["bipolar"] = True
    elif kind == "mt-levels":
        act["levels"] = sorted(rng.integers(-9, 10, size=4).tolist())
    elif kind == "mt-onehot":
        act["levels"] = [-4, 0, 1, 2, 8]
        act["encoding"] = "onehot"
    return act


ACTIVATIONS = (["none", "mt", "mt-offset", "mt-bipolar", "mt-levels", "mt-onehot"]
               + [f"requant:{r}" for r in ROUNDINGS])


# -- dot products and activations against the reference ----------------------------------------
@SETTINGS
@given(case=st.sampled_from(CASES), seed=SEEDS, mh=st.integers(1, 6), mw=st.integers(1, 12),
       use_bias=st.booleans())
def test_dense_mac_matches_reference(case, seed, mh, mw, use_bias):
    mac, i = case
    wspec, aspec = TYPES[mac][i]
    rng = np.random.default_rng(seed)
    w = draw(rng, dtype_of(wspec), (mh, mw))
    bias = rng.integers(-20, 21, size=mh) if use_bias else None
    doc, arrays = dense_doc(mac, wspec, aspec, w, bias=bias)
    net = network_from_dict(doc, arrays=arrays)
    assert_matches_ref(net, draw(rng, dtype_of(aspec), (7, mw)))


@SETTINGS
@given(kind=st.sampled_from(ACTIVATIONS), mac=st.sampled_from(MAC_KINDS), seed=SEEDS,
       mh=st.integers(1, 5), mw=st.integers(1, 10))
def test_activation_matches_reference(kind, mac, seed, mh, mw):
    wspec, aspec = TYPES[mac][0]
    rng = np.random.default_rng(seed)
    w = draw(rng, dtype_of(wspec), (mh, mw))
    doc, arrays = dense_doc(mac, wspec, aspec, w)
    probe = network_from_dict(doc, arrays=arrays).layers[0]
    act = random_activation(rng, kind, mh, int(probe.acc_lo.min()), int(probe.acc_hi.max()), arrays)
    doc["layers"][0]["activation"] = act
    net = network_from_dict(doc, arrays=arrays)
    res = assert_matches_ref(net, draw(rng, dtype_of(aspec), (16, mw)))
    out = res.outputs
    assert net.layers[0].out_dtype.contains(out).all()
    assert (out >= net.layers[0].out_range.lo).all() and (out <= net.layers[0].out_range.hi).all()


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_round_shift_every_remainder(rounding):
    v = np.arange(-70, 71)
    for shift in range(0, 5):
        got = golden.round_shift(v, shift, rounding)
        want = [ref_round(Fraction(int(x), 2 ** shift), rounding) for x in v]
        np.testing.assert_array_equal(got, want)


def test_round_shift_examples():
    v = np.array([-6, -5, -3, -2, 2, 3, 5, 6])  # /4: -1.5 -1.25 -.75 -.5 .5 .75 1.25 1.5
    assert golden.round_shift(v, 2, "floor").tolist() == [-2, -2, -1, -1, 0, 0, 1, 1]
    assert golden.round_shift(v, 2, "ceil").tolist() == [-1, -1, 0, 0, 1, 1, 2, 2]
    assert golden.round_shift(v, 2, "half-up").tolist() == [-1, -1, -1, 0, 1, 1, 1, 2]
    assert golden.round_shift(v, 2, "half-even").tolist() == [-2, -1, -1, 0, 0, 1, 1, 2]


def test_round_shift_bad_rounding():
    with pytest.raises(ValueError, match=r"^Rounding must be floor, ceil, half-up or half-even, "
                                         r"not 'up'$"):
        golden.round_shift(np.array([5]), 1, "up")


# -- closed forms ------------------------------------------------------------------------------
def popcount(v: int) -> int:
    return bin(v).count("1")


@SETTINGS
@given(seed=SEEDS, n=st.integers(1, 64))
def test_xnor_closed_form(seed, n):
    rng = np.random.default_rng(seed)
    bip = DType.bipolar()
    a, w = draw(rng, bip, n), draw(rng, bip, n)
    ca = sum(int(c) << j for j, c in enumerate(bip.encode(a)))
    cw = sum(int(c) << j for j, c in enumerate(bip.encode(w)))
    xnor = ~(ca ^ cw) & ((1 << n) - 1)
    want = 2 * popcount(xnor) - n
    assert golden.dot("xnor", a[None], w[None])[0, 0] == want
    assert want == sum(int(x) * int(y) for x, y in zip(a, w))


@SETTINGS
@given(seed=SEEDS, n=st.integers(1, 64))
def test_and_closed_form(seed, n):
    rng = np.random.default_rng(seed)
    a, w = draw(rng, DType.uint(1), n), draw(rng, DType.bipolar(), n)
    ca = sum(int(c) << j for j, c in enumerate(DType.uint(1).encode(a)))
    wplus = sum(int(c) << j for j, c in enumerate(DType.bipolar().encode(w)))
    want = 2 * popcount(ca & wplus) - popcount(ca)
    assert golden.dot("and", a[None], w[None])[0, 0] == want


# -- accumulator ranges: exact and tight -------------------------------------------------------
def min_width(lo: int, hi: int) -> int:
    """The fewest bits of an unsigned (lo >= 0) or two's complement type holding [lo, hi]."""
    for bits in range(1, 80):
        if lo >= 0 and hi < 2 ** bits:
            return bits
        if lo < 0 and -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return bits
    raise AssertionError


@pytest.mark.parametrize("mac,i", CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dense_worst_case_reaches_acc_range(mac, i, seed):
    wspec, aspec = TYPES[mac][i]
    rng = np.random.default_rng(seed)
    adt = dtype_of(aspec)
    mh, mw = 4, int(rng.integers(1, 40))
    w = draw(rng, dtype_of(wspec), (mh, mw))
    bias = rng.integers(-50, 51, size=mh) if seed != 1 else None
    doc, arrays = dense_doc(mac, wspec, aspec, w, bias=bias)
    layer = network_from_dict(doc, arrays=arrays).layers[0]
    shift = wspec.get("shift", 0)
    values = adt.values().tolist()
    # brute force over every legal value, term by term (the sum is separable)
    lo_x, hi_x, lo_want, hi_want = [], [], [], []
    for r in range(mh):
        terms = [{v: ref_product(mac, v, int(w[r, j]), shift) for v in values} for j in range(mw)]
        lo_x.append([min(t, key=t.get) for t in terms])
        hi_x.append([max(t, key=t.get) for t in terms])
        b = int(bias[r]) if bias is not None else 0
        lo_want.append(sum(min(t.values()) for t in terms) + b)
        hi_want.append(sum(max(t.values()) for t in terms) + b)
    assert layer.acc_lo.tolist() == lo_want
    assert layer.acc_hi.tolist() == hi_want
    acc = golden.run(network_from_dict(doc, arrays=arrays), np.array(lo_x + hi_x)).layers[0].acc
    assert [acc[r, r] for r in range(mh)] == lo_want
    assert [acc[mh + r, r] for r in range(mh)] == hi_want
    lo, hi = min(lo_want), max(hi_want)
    assert layer.acc_range.lo == lo and layer.acc_range.hi == hi
    assert layer.acc_width == min_width(lo, hi)
    if lo < 0:
        assert -(2 ** (layer.acc_width - 1)) <= acc.min() and acc.max() < 2 ** (layer.acc_width - 1)
    else:
        assert acc.max() < 2 ** layer.acc_width


@pytest.mark.parametrize("lo,hi,width", [(0, 0, 1), (0, 1, 1), (0, 255, 8), (0, 256, 9), (-1, 0, 1),
                                         (-128, 127, 8), (-129, 127, 9), (-128, 128, 9),
                                         (-1, 1, 2), (-64, 0, 7)])
def test_min_width_examples(lo, hi, width):
    from gen.ir import ValueRange
    assert ValueRange(lo, hi).width == width == min_width(lo, hi)


@SETTINGS
@given(lo=st.integers(-(2**40), 2**40), span=st.integers(0, 2**40))
def test_width_is_minimal(lo, span):
    from gen.ir import ValueRange
    assert ValueRange(lo, lo + span).width == min_width(lo, lo + span)


# -- whole random networks (conv, pool, requant, argmax) ---------------------------------------
@settings(max_examples=12, derandomize=True, deadline=None)
@given(mac=st.sampled_from(MAC_KINDS), seed=SEEDS, conv=st.booleans(), pool=st.booleans(),
       style=st.sampled_from(["multithreshold", "requant"]), argmax=st.booleans())
def test_random_network_matches_reference(mac, seed, conv, pool, style, argmax):
    rng = np.random.default_rng(seed)
    macs = [mac, str(rng.choice(MAC_KINDS)), mac]
    doc, arrays = random_network(rng, macs, conv=conv, pool=pool, style=style, argmax=argmax,
                                 widths=[3, 4, 5], padding=int(rng.integers(0, 2)),
                                 in_shape=[2, 9, 9] if conv else None)
    net = network_from_dict(doc, arrays=arrays)
    assert_matches_ref(net, draw(rng, net.input.dtype, (3, *net.input.shape)))


# -- convolution -------------------------------------------------------------------------------
@settings(max_examples=25, derandomize=True, deadline=None)
@given(case=st.sampled_from(CASES), seed=SEEDS, kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 1)))
def test_conv2d_matches_loops_and_im2col(case, seed, kernel, stride, padding):
    mac, i = case
    wspec, aspec = TYPES[mac][i]
    rng = np.random.default_rng(seed)
    adt, wdt = dtype_of(aspec), dtype_of(wspec)
    c, h, wd, oc = int(rng.integers(1, 3)), int(rng.integers(3, 6)), int(rng.integers(3, 6)), 3
    w = draw(rng, wdt, (oc, c, *kernel))
    pad_value = int(rng.choice(adt.values()))
    arrays = {"w": w, "b": rng.integers(-5, 6, size=oc)}
    layer = {"type": "conv2d", "mac": mac, "weights": {"key": "w", **wspec}, "bias": "b",
             "kernel": list(kernel), "stride": list(stride), "padding": list(padding),
             "pad_value": pad_value}
    doc = {"version": 1, "input": {"shape": [c, h, wd], **aspec}, "layers": [layer]}
    net = network_from_dict(doc, arrays=arrays)
    xs = draw(rng, adt, (2, c, h, wd))
    res = assert_matches_ref(net, xs)  # naive loops, with the pad value
    # the same as a dense layer over the im2col windows
    cols = golden.im2col(xs, kernel, stride, padding, pad_value)
    n, oh, ow, k = cols.shape
    ddoc, darr = dense_doc(mac, wspec, aspec, w.reshape(oc, -1), bias=arrays["b"])
    dense = golden.run(network_from_dict(ddoc, arrays=darr), cols.reshape(-1, k))
    np.testing.assert_array_equal(res.outputs,
                                  dense.outputs.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2))


def test_conv2d_pad_value_matters():
    wspec, aspec = {"encoding": "bipolar"}, {"encoding": "bipolar"}
    w = np.ones((1, 1, 3, 3), dtype=np.int64)
    outs = {}
    for pv in (-1, 1):
        doc = {"version": 1, "input": {"shape": [1, 2, 2], **aspec},
               "layers": [{"type": "conv2d", "mac": "xnor", "weights": {"key": "w", **wspec},
                           "kernel": 3, "padding": 1, "pad_value": pv}]}
        net = network_from_dict(doc, arrays={"w": w})
        outs[pv] = golden.run(net, np.ones((1, 1, 2, 2), dtype=np.int64)).outputs
    # each 3×3 window holds the 4 ones of the image and 5 pad elements
    np.testing.assert_array_equal(outs[1], np.full((1, 1, 2, 2), 9))
    np.testing.assert_array_equal(outs[-1], np.full((1, 1, 2, 2), 4 - 5))


# -- maxpool and argmax ------------------------------------------------------------------------
@SETTINGS
@given(seed=SEEDS, kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)), argmax=st.booleans())
def test_maxpool_and_argmax(seed, kernel, stride, argmax):
    rng = np.random.default_rng(seed)
    layers = [{"type": "maxpool2d", "kernel": list(kernel)}]
    if stride is not None:
        layers[0]["stride"] = list(stride)
    if argmax:
        layers.append({"type": "argmax"})
    doc = {"version": 1, "input": {"shape": [2, 5, 4], "encoding": "int", "bits": 3}, "layers": layers}
    net = network_from_dict(doc)
    xs = draw(rng, net.input.dtype, (8, 2, 5, 4))  # 3-bit values: many ties
    assert_matches_ref(net, xs)


def test_argmax_first_index_wins_ties():
    doc = {"version": 1, "input": {"shape": [6], "encoding": "uint", "bits": 2},
           "layers": [{"type": "argmax"}]}
    net = network_from_dict(doc)
    xs = np.array([[0, 3, 1, 3, 3, 0], [2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 1, 1], [3, 0, 0, 0, 0, 3]])
    assert golden.run(net, xs).top1.tolist() == [1, 0, 4, 0]


@SETTINGS
@given(seed=SEEDS)
def test_argmax_over_image_flattens_chw(seed):
    rng = np.random.default_rng(seed)
    doc = {"version": 1, "input": {"shape": [2, 3, 2], "encoding": "uint", "bits": 2},
           "layers": [{"type": "argmax"}]}
    net = network_from_dict(doc)
    xs = draw(rng, net.input.dtype, (5, 2, 3, 2))
    assert_matches_ref(net, xs)


# -- input quantizers --------------------------------------------------------------------------
def ref_quantize(x: float, scale: float, zp: int, rounding: str, clip) -> int:
    s = Fraction(x / scale)  # the quotient is a float64, then rounded exactly
    return min(max(ref_round(s, rounding) + zp, clip[0]), clip[1])


FLOATS = st.floats(-40, 40, allow_nan=False) | st.integers(-80, 80).map(lambda k: k / 2) | st.sampled_from(
    [0.49999999999999994, -0.49999999999999994, 1.4999999999999998, 2.5000000000000004, -2.5])


@pytest.mark.parametrize("rounding", ROUNDINGS)
@SETTINGS
@given(xs=st.lists(FLOATS, min_size=1, max_size=8), scale=st.sampled_from([1.0, 0.5, 0.25, 3.0, 0.1]),
       zp=st.integers(-3, 3))
def test_quantize_input_affine(rounding, xs, scale, zp):
    doc = {"version": 1, "input": {"shape": [len(xs)], "encoding": "int", "bits": 6,
                                   "quantizer": {"scale": scale, "zero_point": zp,
                                                 "rounding": rounding, "clip": [-20, 25]}},
           "layers": [{"type": "argmax"}]}
    net = network_from_dict(doc)
    got = golden.quantize_input(net, np.array([xs]))
    assert got.tolist() == [[ref_quantize(x, scale, zp, rounding, (-20, 25)) for x in xs]]


def test_quantize_input_default_clip_is_type_range():
    doc = {"version": 1, "input": {"shape": [4], "encoding": "uint", "bits": 3,
                                   "quantizer": {"scale": 1.0}},
           "layers": [{"type": "argmax"}]}
    net = network_from_dict(doc)
    assert golden.quantize_input(net, np.array([[-5.0, 2.5, 3.5, 100.0]])).tolist() == [[0, 2, 4, 7]]


@SETTINGS
@given(xs=st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=8),
       t=st.floats(-1, 1, allow_nan=False))
def test_quantize_input_threshold(xs, t):
    doc = {"version": 1, "input": {"shape": [len(xs)], "encoding": "bipolar",
                                   "quantizer": {"threshold": t}},
           "layers": [{"type": "argmax"}]}
    net = network_from_dict(doc)
    got = golden.quantize_input(net, np.array([xs]))
    assert got.tolist() == [[1 if x >= t else -1 for x in xs]]
    edge = golden.quantize_input(net, np.full((1, len(xs)), t))
    assert (edge == 1).all()


def test_quantize_input_errors():
    doc = {"version": 1, "input": {"shape": [2], "encoding": "uint", "bits": 3},
           "layers": [{"type": "argmax"}]}
    from gen.errors import NetworkError
    with pytest.raises(NetworkError, match=r"^input\.quantizer: the network has no input quantizer"):
        golden.quantize_input(network_from_dict(doc), np.zeros((1, 2)))
    doc["input"]["quantizer"] = {"scale": 1.0}
    with pytest.raises(NetworkError, match=r"^input: inputs must be finite$"):
        golden.quantize_input(network_from_dict(doc), np.array([[np.nan, 0.0]]))
    with pytest.raises(NetworkError, match=r"^input: value 9 at index \[0, 1\] is not a uint3 value$"):
        golden.run(network_from_dict(doc), np.array([[1, 9]]))
    with pytest.raises(NetworkError, match=r"^input: expected shape \(N, 2\), found \(1, 3\)$"):
        golden.run(network_from_dict(doc), np.array([[1, 2, 3]]))


# -- pruning masks -----------------------------------------------------------------------------
@settings(max_examples=15, derandomize=True, deadline=None)
@given(seed=SEEDS, conv=st.booleans(), requant=st.booleans())
def test_mask_equals_network_without_channels(seed, conv, requant):
    rng = np.random.default_rng(seed)
    oc0, oc1 = 6, 4
    mask = rng.integers(0, 2, size=oc0)
    mask[int(rng.integers(0, oc0))] = 1
    keep = np.flatnonzero(mask)
    ispec = {"encoding": "uint", "bits": 3}
    wspec = {"encoding": "int", "bits": 3}
    if conv:
        shape, w0 = [2, 4, 4], rng.integers(-4, 4, size=(oc0, 2, 3, 3))
        w1 = rng.integers(-4, 4, size=(oc1, oc0, 2, 2))
        w2 = rng.integers(-4, 4, size=(3, oc1 * 1 * 1))
    else:
        shape, w0 = [7], rng.integers(-4, 4, size=(oc0, 7))
        w1 = rng.integers(-4, 4, size=(oc1, oc0))
        w2 = rng.integers(-4, 4, size=(3, oc1))
    b0 = rng.integers(-9, 10, size=oc0)
    t0 = np.sort(rng.integers(-30, 30, size=(oc0, 7)), axis=1)
    m0 = rng.integers(1, 5, size=oc0)

    def build(w0, b0, t0, m0, w1, mask):
        arrays = {"w0": w0, "b0": b0, "t0": t0, "m0": m0, "w1": w1, "w2": w2}
        act = ({"type": "requant", "multiplier": "m0", "shift": 2, "clip": [0, 7]} if requant
               else {"type": "multithreshold", "thresholds": "t0"})
        l0 = {"type": "conv2d" if conv else "dense", "mac": "int", "weights": {"key": "w0", **wspec},
              "bias": "b0", "activation": act}
        if conv:
            l0.update(kernel=3, padding=1)
        if mask is not None:
            arrays["mask"] = mask
            l0["mask"] = "mask"
        l1 = {"type": "conv2d" if conv else "dense", "mac": "int", "weights": {"key": "w1", **wspec},
              "activation": {"type": "requant", "multiplier": 1, "shift": 3, "clip": [0, 7]}}
        layers = [l0]
        if conv:
            l1.update(kernel=2, stride=2)
            layers.append({"type": "maxpool2d", "kernel": 2})
        layers += [l1, {"type": "dense", "mac": "int", "weights": {"key": "w2", **wspec}}]
        doc = {"version": 1, "input": {"shape": shape, **ispec}, "layers": layers}
        return network_from_dict(doc, arrays=arrays)

    masked = build(w0, b0, t0, m0, w1, mask)
    pruned = build(w0[keep], b0[keep], t0[keep], m0[keep], w1[:, keep], None)
    assert masked.layers[0].kept_channels == tuple(keep.tolist())
    assert masked.layers[0].out_shape == pruned.layers[0].out_shape
    xs = draw(rng, DType.uint(3), (6, *shape))
    a, b = golden.run(masked, xs), golden.run(pruned, xs)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.out, lb.out)


def test_mask_on_dense_after_image_drops_chw_columns():
    # conv (3 channels, 2×2 out) with channel 1 masked, then dense over the 12 flattened values
    rng = np.random.default_rng(7)
    w0 = rng.integers(-2, 2, size=(3, 1, 1, 1))
    w1 = rng.integers(-2, 2, size=(2, 12))
    base = {"version": 1, "input": {"shape": [1, 2, 2], "encoding": "uint", "bits": 2}}
    wspec = {"encoding": "int", "bits": 2}
    conv = {"type": "conv2d", "mac": "int", "weights": {"key": "w0", **wspec}, "kernel": 1,
            "activation": {"type": "requant", "multiplier": 1, "clip": [0, 3]}}
    masked = network_from_dict({**base, "layers": [{**conv, "mask": "m"}, {
        "type": "dense", "mac": "int", "weights": {"key": "w1", **wspec}}]},
        arrays={"w0": w0, "w1": w1, "m": np.array([True, False, True])})
    cols = np.r_[0:4, 8:12]  # channel 1 occupies columns 4..7 in C, H, W order
    pruned = network_from_dict({**base, "layers": [conv, {
        "type": "dense", "mac": "int", "weights": {"key": "w1", **wspec}}]},
        arrays={"w0": w0[[0, 2]], "w1": w1[:, cols]})
    xs = draw(rng, DType.uint(2), (9, 1, 2, 2))
    np.testing.assert_array_equal(golden.run(masked, xs).outputs, golden.run(pruned, xs).outputs)


# -- element types -----------------------------------------------------------------------------
@st.composite
def dtypes(draw_):
    enc = draw_(st.sampled_from(ENCODINGS))
    if enc == "bipolar":
        return DType.bipolar()
    if enc == "ternary":
        return DType.ternary()
    if enc == "uint":
        return DType.uint(draw_(st.integers(1, 32)))
    if enc == "int":
        return DType.int(draw_(st.integers(2, 32)), narrow=draw_(st.booleans()))
    return DType.onehot(draw_(st.integers(1, 32)), signed=draw_(st.booleans()))


@settings(max_examples=80, derandomize=True, deadline=None)
@given(dt=dtypes(), data=st.data())
def test_dtype_encode_decode_round_trip(dt, data):
    if dt.encoding in ("bipolar", "ternary", "onehot"):
        vals = dt.values().tolist()
        values = data.draw(st.lists(st.sampled_from(vals), min_size=1, max_size=20))
        values += vals
    else:
        values = data.draw(st.lists(st.integers(dt.min, dt.max), min_size=1, max_size=20))
        values += [dt.min, dt.max, max(dt.min, 0)]
    v = np.array(values, dtype=np.int64)
    assert dt.contains(v).all()
    codes = dt.encode(v)
    assert codes.dtype == np.uint64
    assert (codes < (1 << dt.code_width)).all()
    np.testing.assert_array_equal(dt.decode(codes), v)
    # distinct values, distinct codes
    pairs = dict(zip(v.tolist(), codes.tolist()))
    assert len(set(pairs.values())) == len(pairs)


def test_dtype_codes_examples():
    assert DType.bipolar().encode([-1, 1]).tolist() == [0, 1]
    assert DType.ternary().encode([-1, 0, 1]).tolist() == [3, 0, 1]
    assert DType.int(4).encode([-8, -1, 7]).tolist() == [8, 15, 7]
    assert DType.uint(4).encode([0, 15]).tolist() == [0, 15]
    oh = DType.onehot(4, signed=True)  # 2 exponent bits, non-zero bit, sign bit
    assert oh.code_width == 4
    assert oh.encode([0, 1, 2, 8, -1, -8]).tolist() == [0, 0b0100, 0b0101, 0b0111, 0b1100, 0b1111]
    assert DType.onehot(1).code_width == 2 and DType.onehot(1).encode([0, 1]).tolist() == [0, 2]
    assert DType.onehot(5).exp_bits == 3


def test_dtype_contains():
    assert DType.int(3, narrow=True).contains([-4, -3, 3, 4]).tolist() == [False, True, True, False]
    assert DType.onehot(3, signed=True).contains([-4, -3, 0, 3, 4, 8]).tolist() == [
        True, False, True, False, True, False]
    assert DType.bipolar().contains([-1, 0, 1]).tolist() == [True, False, True]


# -- the BLAS fast path ------------------------------------------------------------------------
def _near(rng, n, k, target, wmax):
    """a (n, k), w (m, k) with max|a| · max row Σ|w| close to ``target``, odd values."""
    w = rng.integers(-wmax, wmax + 1, size=(5, k)) | 1
    rowsum = int(np.abs(w).sum(axis=1).max())
    amax = max(1, target // rowsum)
    a = rng.integers(-amax, amax + 1, size=(n, k)) | 1
    a[0] = amax if amax % 2 else amax - 1
    return a, w


@pytest.mark.parametrize("target", [2**24 - 1, 2**24, 2**24 + 1, 2**25, 2**53 - 1, 2**53, 2**53 + 2**20,
                                    2**60])
@pytest.mark.parametrize("seed", [0, 1])
def test_dot_fast_path_is_exact(target, seed):
    rng = np.random.default_rng(seed)
    k = 7
    a, w = _near(rng, 9, k, target, 2**12 if target < 2**30 else 2**20)
    bound = int(np.abs(a).max()) * int(np.abs(w).sum(axis=1).max())
    assert bound <= target
    # make a row that reaches the bound exactly (all terms the same sign, full magnitude)
    a[1] = int(np.abs(a).max()) * np.sign(w[int(np.abs(w).sum(axis=1).argmax())])
    exact = a @ w.T
    for mac in ("int", "ternary", "onehot", "xnor", "and"):
        np.testing.assert_array_equal(golden.dot(mac, a, w), exact)
        np.testing.assert_array_equal(golden.dot(mac, a, w, bound=bound), exact)


def test_dot_float32_switch_point():
    # Σ = 2^24 - 1 is exact in float32, and must come out exact through the float32 path;
    # 2^24 + 1 is not representable in float32 and must take the float64 path.
    for total in (2**24 - 1, 2**24 + 1, 2**53 - 1, 2**53 + 1):
        a = np.array([[total // 3, total // 3, total - 2 * (total // 3)]], dtype=np.int64)
        w = np.ones((1, 3), dtype=np.int64)
        assert golden.dot("int", a, w)[0, 0] == total
        assert golden.dot("int", a, w, bound=total)[0, 0] == total


@SETTINGS
@given(seed=SEEDS, shift=st.integers(0, 3))
def test_dot_adder_matches_reference(seed, shift):
    rng = np.random.default_rng(seed)
    a = rng.integers(-100, 100, size=(4, 9))
    w = rng.integers(-16, 16, size=(3, 9))
    want = [[sum(ref_product("adder", int(x), int(y), shift) for x, y in zip(ar, wr)) for wr in w]
            for ar in a]
    assert golden.dot("adder", a, w, shift=shift).tolist() == want
