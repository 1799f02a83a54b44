"""Threshold and requantization units as stream components, against the golden model."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.ir import MultiThreshold, Requant
from hw.activation import RequantUnit, ThresholdUnit
from hw.dtypes import DType, bits_for_range
from sim import golden
from sim.randnet import random_activation
from sim.streamsim import StreamSink, StreamSource, pack, unpack


def run_unit(unit, acc, rng, *, gap=0.3, stall=0.3):
    """acc: (N, channels) accumulator values; returns output values (N, channels)."""
    n, c = acc.shape
    aw = bits_for_range(*unit.acc_range)[0]
    codes = acc.astype(np.int64) & ((1 << aw) - 1)
    pe = unit.pe
    beats = [pack(codes[i, f * pe:(f + 1) * pe], aw) for i in range(n) for f in range(c // pe)]
    sim = Simulator(unit)
    sim.add_clock(1e-8)
    src = StreamSource(unit.i_stream, beats, rng=rng, gap=gap)
    sink = StreamSink(unit.o_stream, len(beats), rng=rng, stall=stall)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    od = unit.out_dtype
    out = np.array([od.decode(unpack(b, od.code_width, pe)) for b in sink.beats])
    return out.reshape(n, c), src, sink


def accs(rng, lo, hi, n, c):
    a = rng.integers(lo, hi + 1, size=(n, c))
    a[0], a[1] = lo, hi
    return a


@pytest.mark.parametrize("pe", [1, 2, 3, 6])
def test_threshold_random(pe):
    for k in range(6):
        seed = 10 * pe + k
        print(f"seed={seed}")
        rng = np.random.default_rng(seed)
        lo, hi = sorted(int(v) for v in rng.integers(-40, 40, size=2))
        act = random_activation(rng, "threshold", lo, hi, 6)
        unit = ThresholdUnit(activation=act, channels=6, pe=pe, acc_range=(lo, hi))
        acc = accs(rng, lo, hi, 5, 6)
        got, _, _ = run_unit(unit, acc, rng)
        np.testing.assert_array_equal(got, golden.threshold(acc, act))


def test_threshold_extreme_thresholds():
    """Thresholds far outside the accumulator range (clamped without changing results)."""
    rng = np.random.default_rng(77)
    thr = np.array([[-10**9, -3, 2, 10**9], [-5, -5, -5, -5], [4, 4, 10**6, 10**6]])
    act = MultiThreshold(thr, np.arange(5) - 2, DType.int(3))
    unit = ThresholdUnit(activation=act, channels=3, pe=3, acc_range=(-6, 6))
    acc = np.repeat(np.arange(-6, 7)[:, None], 3, axis=1)
    got, _, _ = run_unit(unit, acc, rng)
    np.testing.assert_array_equal(got, golden.threshold(acc, act))


@pytest.mark.parametrize("rounding", ["floor", "ceil", "half-up", "half-even"])
@pytest.mark.parametrize("pe", [1, 4])
def test_requant_random(rounding, pe):
    for k, shift in enumerate([0, 1, 3]):
        seed = 1000 + 10 * pe + k + 100 * ["floor", "ceil", "half-up", "half-even"].index(rounding)
        print(f"seed={seed}")
        rng = np.random.default_rng(seed)
        lo, hi = -50, 70
        clip = (-8, 7) if k % 2 else (0, 15)
        act = Requant(rng.integers(-4, 8, size=4), shift, rounding, clip, DType.for_range(*clip))
        unit = RequantUnit(activation=act, channels=4, pe=pe, acc_range=(lo, hi))
        acc = accs(rng, lo, hi, 8, 4)
        got, _, _ = run_unit(unit, acc, rng)
        np.testing.assert_array_equal(got, golden.requant(acc, act))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_requant_wide_multipliers(seed):
    """Multipliers of up to 16 bits, of both signs and zero, constant and per channel, on wide
    accumulators: the product tree of partial products against numpy."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << 17), (1 << 17) - 5
    for mult in (rng.integers(-(1 << 15), 1 << 15, size=6), np.array([-(1 << 15)]),
                 np.array([0, 1, -1, (1 << 15) - 1, 3, -(1 << 15)]), np.array([12345])):
        pe = int(rng.choice([1, 2, 3, 6]))
        act = Requant(mult, 14, str(rng.choice(["floor", "half-even"])), (-128, 127), DType.int(8))
        unit = RequantUnit(activation=act, channels=6, pe=pe, acc_range=(lo, hi))
        acc = accs(rng, lo, hi, 12, 6)
        got, _, _ = run_unit(unit, acc, rng)
        np.testing.assert_array_equal(got, golden.requant(acc, act), err_msg=f"mult={mult} pe={pe}")


def test_requant_ties():
    """Every residue of a shift by 2, for every rounding, on negative and positive values."""
    rng = np.random.default_rng(5)
    acc = np.arange(-12, 13)[:, None]
    for rounding in ["floor", "ceil", "half-up", "half-even"]:
        act = Requant(np.array([1]), 2, rounding, (-100, 100), DType.for_range(-100, 100))
        unit = RequantUnit(activation=act, channels=1, pe=1, acc_range=(-12, 12))
        got, _, _ = run_unit(unit, acc, rng, gap=0, stall=0)
        np.testing.assert_array_equal(got, golden.requant(acc, act))


def test_unit_latency():
    rng = np.random.default_rng(6)
    act = Requant(np.array([3]), 1, "floor", (0, 7), DType.uint(3))
    unit = RequantUnit(activation=act, channels=2, pe=1, acc_range=(0, 9))
    _, src, sink = run_unit(unit, accs(rng, 0, 9, 3, 2), rng, gap=0, stall=0)
    # 3 = 0b11: two partial products, one adder level
    assert sink.valid_cycles[0] - src.accept_cycles[0] == unit.latency == 3
    act = Requant(np.array([-6, 5, 0, 17]), 2, "floor", (-8, 7), DType.int(4))
    unit = RequantUnit(activation=act, channels=4, pe=1, acc_range=(-100, 100))
    _, src, sink = run_unit(unit, accs(rng, -100, 100, 3, 4), rng, gap=0, stall=0)
    # a table of multipliers: 6-bit codes, every bit set in some channel: 6 terms, 3 levels
    assert unit.product_levels == 3
    assert sink.valid_cycles[0] - src.accept_cycles[0] == unit.latency == 5
    thr = MultiThreshold(np.array([[3]]), np.array([-1, 1]), DType.bipolar())
    unit = ThresholdUnit(activation=thr, channels=2, pe=2, acc_range=(0, 9))
    _, src, sink = run_unit(unit, accs(rng, 0, 9, 3, 2), rng, gap=0, stall=0)
    assert sink.valid_cycles[0] - src.accept_cycles[0] == unit.latency == 1
    assert sink.transfer_cycles == [sink.transfer_cycles[0] + k for k in range(3)]


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_unit_bad_parameters():
    thr = MultiThreshold(np.array([[3], [4]]), np.array([0, 1]), DType.uint(1))
    with pytest.raises(ValueError, match=r"^PE must be a positive divisor of the 2 channels, "
                                         r"not 3$"):
        ThresholdUnit(activation=thr, channels=2, pe=3, acc_range=(0, 9))
    with pytest.raises(ValueError, match=r"^Thresholds must have shape \(3, T\) or \(1, T\), "
                                         r"not \(2, 1\)$"):
        ThresholdUnit(activation=thr, channels=3, pe=1, acc_range=(0, 9))
    with pytest.raises(TypeError, match=r"^Activation must be a Requant, not MultiThreshold$"):
        RequantUnit(activation=thr, channels=2, pe=1, acc_range=(0, 9))


# -- binary-search threshold mode -------------------------------------------------------------
def search_activation(rng, t, channels, lo, hi, *, out="levels", shared=False, dups=False):
    """T thresholds per channel (or shared), sorted, some outside [lo, hi] on both sides."""
    rows = 1 if shared else channels
    if dups:   # few distinct values: long runs of equal thresholds
        pool = rng.integers(lo - 3, hi + 4, size=max(2, t // 8))
        thr = rng.choice(pool, size=(rows, t))
    else:
        thr = rng.integers(lo - 3, hi + 4, size=(rows, t))
    thr = np.sort(thr, axis=1)
    if out == "bipolar":
        return MultiThreshold(thr, np.array([-1, 1]), DType.bipolar())
    if out == "onehot":
        return MultiThreshold(thr, np.array([0] + [1 << e for e in range(t)]), DType.onehot(t))
    if out == "int":
        levels = np.arange(t + 1) - (t + 1) // 2
        return MultiThreshold(thr, levels, DType.for_range(int(levels[0]), int(levels[-1])))
    levels = np.sort(rng.integers(0, 2 * t + 2, size=t + 1))   # not the identity
    return MultiThreshold(thr, levels, DType.for_range(0, 2 * t + 1))


SEARCH_CASES = [  # (T, channels, pe, output, shared, duplicates)
    (1, 4, 1, "bipolar", False, False), (1, 4, 4, "levels", True, False),
    (3, 6, 2, "onehot", False, True), (3, 6, 3, "int", True, False),
    (7, 4, 1, "onehot", False, False), (7, 8, 2, "levels", False, True),
    (15, 6, 3, "int", False, False), (15, 4, 4, "levels", True, True),
    (31, 4, 2, "levels", False, True), (31, 3, 1, "int", True, False),
    (255, 4, 1, "levels", False, False), (255, 4, 2, "int", False, True),
    (255, 2, 2, "levels", True, True),
]


@pytest.mark.parametrize("t,channels,pe,out,shared,dups", SEARCH_CASES)
def test_threshold_search(t, channels, pe, out, shared, dups):
    """Binary-search mode bit-exact against the golden model, with random gaps and stalls."""
    for k in range(2):
        seed = 5000 + 100 * SEARCH_CASES.index((t, channels, pe, out, shared, dups)) + k
        print(f"seed={seed}")
        rng = np.random.default_rng(seed)
        lo, hi = sorted(int(v) for v in rng.integers(-3 * t - 20, 3 * t + 20, size=2))
        act = search_activation(rng, t, channels, lo, hi, out=out, shared=shared, dups=dups)
        unit = ThresholdUnit(activation=act, channels=channels, pe=pe, acc_range=(lo, hi),
                             threshold_mode="search")
        assert unit.mode == "search" and unit.latency == max(1, t.bit_length())
        acc = accs(rng, lo, hi, 12, channels)
        got, _, _ = run_unit(unit, acc, rng)
        np.testing.assert_array_equal(got, golden.threshold(acc, act))


def test_threshold_search_every_accumulator():
    """Every accumulator value against thresholds with duplicates, beyond the range on both
    sides and T not of the form 2^k - 1, in both modes."""
    rng = np.random.default_rng(78)
    thr = np.array([[-10**9, -3, -3, 2, 2, 2, 10**9, 10**9, 10**9, 10**9],
                    [-5, -5, -5, -5, -5, -5, -5, -5, -5, -5],
                    [4, 4, 6, 6, 6, 10**6, 10**6, 10**6, 10**6, 10**6],
                    [-6, -5, -4, -3, -2, -1, 0, 1, 2, 6]])
    act = MultiThreshold(thr, np.arange(11) - 5, DType.int(4))
    acc = np.repeat(np.arange(-6, 7)[:, None], 4, axis=1)
    for mode, pe in [("search", 1), ("search", 2), ("search", 4), ("parallel", 2)]:
        unit = ThresholdUnit(activation=act, channels=4, pe=pe, acc_range=(-6, 6),
                             threshold_mode=mode)
        got, _, _ = run_unit(unit, acc, rng)
        np.testing.assert_array_equal(got, golden.threshold(acc, act))


@pytest.mark.parametrize("t", [1, 2, 3, 4, 15, 16, 255])
def test_threshold_search_latency(t):
    """Exact latency in both modes, and full throughput; auto searches above 15 thresholds."""
    rng = np.random.default_rng(300 + t)
    act = search_activation(rng, t, 2, 0, 40)
    auto = ThresholdUnit(activation=act, channels=2, pe=1, acc_range=(0, 40))
    assert auto.mode == ("search" if t > 15 else "parallel")
    auto._MustUse__silence = True
    for mode, latency in [("parallel", 1 if t == 1 else 2), ("search", t.bit_length())]:
        unit = ThresholdUnit(activation=act, channels=2, pe=1, acc_range=(0, 40),
                             threshold_mode=mode)
        acc = accs(rng, 0, 40, 4, 2)
        got, src, sink = run_unit(unit, acc, rng, gap=0, stall=0)
        np.testing.assert_array_equal(got, golden.threshold(acc, act))
        assert sink.valid_cycles[0] - src.accept_cycles[0] == unit.latency == latency
        assert sink.transfer_cycles == [sink.transfer_cycles[0] + k for k in range(8)]


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_threshold_bad_mode():
    thr = MultiThreshold(np.array([[3], [4]]), np.array([0, 1]), DType.uint(1))
    with pytest.raises(ValueError, match=r"^Threshold mode must be auto, parallel or search, "
                                         r"not 'binary'$"):
        ThresholdUnit(activation=thr, channels=2, pe=1, acc_range=(0, 9), threshold_mode="binary")
