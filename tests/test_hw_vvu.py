"""The depthwise window buffer and the vector-vector unit against numpy, in Amaranth's
simulator with random stalls on input and output."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen import macs
from hw.dtypes import DType
from hw.params import MultiThreshold, Requant
from hw.vvu import VVU, DepthwiseWindow
from sim import golden
from sim.randnet import LANE_TYPES as TYPES
from sim.randnet import random_activation, random_values
from sim.streamsim import pack, stream_run, unpack

KINDS = list(TYPES)
ACTS = ["none", "threshold", "requant"]


def depthwise_dot(mac, X, W, shift):
    """Per channel dot products, written out term by term: X (N, C, K), W (C, K) -> (N, C)."""
    if mac == "adder":
        return -np.abs(X - (W << shift)[None]).sum(axis=2)
    return (X * W[None]).sum(axis=2)


def reorder(X, pe, simd):
    """Windows (N, C, K) in the VVU's beat order: (N, C/PE, K/SIMD, SIMD, PE)."""
    n, c, k = X.shape
    return X.reshape(n, c // pe, pe, k // simd, simd).transpose(0, 1, 3, 4, 2)


def test_window_reorder():
    for seed, (c, k, pe, simd) in enumerate([(4, 9, 2, 3), (6, 4, 1, 2), (3, 9, 3, 9),
                                             (4, 6, 4, 1), (2, 1, 1, 1), (8, 9, 2, 1)]):
        rng = np.random.default_rng(500 + seed)
        dt = DType.uint(3)
        n = 5
        X = random_values(rng, dt, (n, c, k))
        dut = DepthwiseWindow(width=3, channels=c, kernel_elems=k, pe=pe, simd=simd)
        beats = [pack(X[i, :, j], 3) for i in range(n) for j in range(k)]
        got = stream_run(dut, beats, n * dut.beats_per_window, seed=500 + seed)
        got = np.array([unpack(b, 3, pe * simd) for b in got])
        np.testing.assert_array_equal(got.reshape(-1), reorder(X, pe, simd).reshape(-1))


def test_window_rejects_bad_folding():
    with pytest.raises(ValueError, match=r"^PE must be a positive divisor of the 4 channels, not 3$"):
        DepthwiseWindow(width=2, channels=4, kernel_elems=9, pe=3, simd=1)
    with pytest.raises(ValueError, match=r"^SIMD must be a positive divisor of the 9 kernel elements, not 2$"):
        DepthwiseWindow(width=2, channels=4, kernel_elems=9, pe=1, simd=2)


class _Chain(wiring.Component):
    """A window buffer followed by a vector-vector unit."""

    def __init__(self, win, vvu):
        self.win, self.vvu = win, vvu
        super().__init__({"i_stream": In(win.i_stream.signature.flip()),
                          "o_stream": Out(vvu.o_stream.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.win, m.submodules.vvu = self.win, self.vvu
        wiring.connect(m, wiring.flipped(self.i_stream), self.win.i_stream)
        wiring.connect(m, self.win.o_stream, self.vvu.i_stream)
        wiring.connect(m, self.vvu.o_stream, wiring.flipped(self.o_stream))
        return m


def check(seed, mac, types, c, k, pe, simd, act_kind, *, n=4, depth=1, worst=False, **kw):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    wdt, adt, shift = types
    W = random_values(rng, wdt, (c, k))
    if worst:
        W[:] = np.where(rng.random((c, 1)) < 0.5, wdt.min, wdt.max)
    bias = rng.integers(-3, 4, size=c) if rng.random() < 0.5 else None
    b = np.zeros(c, dtype=np.int64) if bias is None else bias
    lo, hi = macs.acc_bounds(mac, W, adt.min, adt.max, shift, b)
    act = random_activation(rng, act_kind, int(lo.min()), int(hi.max()), c)
    vvu = VVU(weights=W, mac=mac, w_dtype=wdt, in_dtype=adt, w_shift=shift, bias=bias,
              activation=act, acc_range=(int(lo.min()), int(hi.max())), pe=pe, simd=simd,
              depth=depth, **kw)
    X = random_values(rng, adt, (n, c, k))
    if worst:
        X[0], X[1] = adt.min, adt.max
    acw = adt.code_width
    codes = adt.encode(X)
    win = DepthwiseWindow(width=acw, channels=c, kernel_elems=k, pe=pe, simd=simd)
    beats = [pack(codes[i, :, j], acw) for i in range(n) for j in range(k)]
    got = stream_run(_Chain(win, vvu), beats, n * c // pe, seed=seed)
    od, cw = vvu.out_dtype, vvu.out_dtype.code_width
    got = np.array([od.decode(unpack(x, cw, pe)) for x in got]).reshape(n, c)
    acc = depthwise_dot(mac, X, W, shift) + b
    assert (acc >= lo).all() and (acc <= hi).all()
    if isinstance(act, MultiThreshold):
        want = golden.threshold(acc, act)
    elif isinstance(act, Requant):
        want = golden.requant(acc, act)
    else:
        want = acc
    np.testing.assert_array_equal(got, want)


FOLDINGS = [(4, 9, 1, 1), (4, 9, 4, 9), (4, 9, 2, 3), (6, 4, 3, 2), (3, 9, 1, 9)]


@pytest.mark.parametrize("mac", KINDS)
@pytest.mark.parametrize("fold", range(len(FOLDINGS)))
def test_vvu_random(mac, fold):
    seed = 6000 + 17 * KINDS.index(mac) + fold
    rng = np.random.default_rng(seed)
    types = TYPES[mac][int(rng.integers(len(TYPES[mac])))]
    act = ACTS[(KINDS.index(mac) + fold) % 3]
    check(seed, mac, types, *FOLDINGS[fold], act, depth=fold % 3)


@pytest.mark.parametrize("mac", KINDS)
def test_vvu_every_type(mac):
    for j, types in enumerate(TYPES[mac]):
        seed = 7000 + 31 * KINDS.index(mac) + j
        check(seed, mac, types, 4, 4, 2, 2, ACTS[j % 3], n=3, depth=j % 2,
              weight_register=bool(j % 2))


@pytest.mark.parametrize("mac", KINDS)
def test_vvu_worst_case(mac):
    for j, types in enumerate(TYPES[mac]):
        check(8000 + 31 * KINDS.index(mac) + j, mac, types, 4, 8, 2, 4, "none", n=3, worst=True)


def test_vvu_rejects_bad_folding():
    from hw.params import NoActivation

    with pytest.raises(ValueError, match=r"^SIMD must be a positive divisor of K = 9, not 2$"):
        VVU(weights=np.ones((4, 9), dtype=np.int64), mac="xnor", w_dtype=DType.bipolar(),
            in_dtype=DType.bipolar(), activation=NoActivation(DType.int(5)), acc_range=(-9, 9),
            pe=2, simd=2)


def test_narrow_accumulator_is_sign_extended():
    """An accumulator range of [-1, 0] is a 1-bit signed accumulator and a 2-bit int output:
    the code must be sign-extended (the MVU had the same fault before the VVU found it)."""
    from hw.mvu import MVU
    from hw.params import NoActivation

    W = -np.ones((2, 1), dtype=np.int64)
    kw = dict(weights=W, mac="and", w_dtype=DType.bipolar(), in_dtype=DType.uint(1),
              activation=NoActivation(DType.int(2)), acc_range=(-1, 0))
    X = np.array([0, 1, 1, 0, 1])
    want = (X[:, None] * W[:, 0][None]).reshape(-1)
    for dut, beats in ((MVU(**kw, pe=2), [int(v) for v in X]),            # one input, 2 rows
                       (VVU(**kw, pe=2), [pack([v, v], 1) for v in X])):  # 2 channels, K = 1
        got = stream_run(dut, beats, len(X), seed=1)
        got = np.array([DType.int(2).decode(unpack(b, 2, 2)) for b in got]).reshape(-1)
        np.testing.assert_array_equal(got, want)
