"""Threshold and requantization units as stream components, against the golden model."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from test_hw_mvu import random_activation  # noqa: E402

from gen.dtypes import DType, bits_for_range
from gen.ir import MultiThreshold, Requant
from hw.activation import RequantUnit, ThresholdUnit
from hw.streamsim import StreamSink, StreamSource, pack, unpack
from sim import golden


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
    assert sink.valid_cycles[0] - src.accept_cycles[0] == unit.latency == 2
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
