"""MAC lanes (one per kind) against the golden model's dot product, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from gen.targets import FAMILIES
from hw.dtypes import DType
from hw.lanes import Lane, lane_term_range
from hw.pipeline import spread_registers
from hw.trees import POPCOUNT_STYLES, Counter, counter_levels, keep_counter_hierarchy
from sim import golden
from sim.randnet import LANE_TYPES as TYPES
from sim.randnet import random_values
from sim.streamsim import StreamSink, StreamSource, pack

KINDS = list(TYPES)


def run_lane(lane: Lane, A, W, rng, *, gap=0.3, stall=0.3):
    acw, wcw = lane.a_dtype.code_width, lane.w_dtype.code_width
    ac, wc = lane.a_dtype.encode(A), lane.w_dtype.encode(W)
    shift = lane.simd * acw
    beats = [pack(ac[i], acw) | (pack(wc[i], wcw) << shift) for i in range(len(A))]
    top = Module()   # a lane of depth 0 has no clock domain of its own
    top.domains.sync = ClockDomain()
    top.submodules.lane = lane
    sim = Simulator(top)
    sim.add_clock(1e-8)
    src = StreamSource(lane.i_stream, beats, rng=rng, gap=gap)
    sink = StreamSink(lane.o_stream, len(A), rng=rng, stall=stall)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    got = np.array(sink.beats)   # the payload is signed: the simulator samples it signed
    return got, src, sink


def expected(kind, A, W, shift):
    return np.array([golden.dot(kind, A[i:i + 1], W[i:i + 1], shift=shift)[0, 0]
                     for i in range(len(A))])


def check(seed, kind, types, simd, depth, n=12, worst=False, **kw):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    wdt, adt, shift = types
    lane = Lane(kind=kind, simd=simd, w_dtype=wdt, a_dtype=adt, w_shift=shift, depth=depth, **kw)
    A = random_values(rng, adt, (n, simd))
    W = random_values(rng, wdt, (n, simd))
    if worst:  # every combination of extreme activations and weights
        for i, (a, w) in enumerate([(adt.min, wdt.min), (adt.min, wdt.max), (adt.max, wdt.min),
                                    (adt.max, wdt.max)]):
            A[i], W[i] = a, w
    got, _, _ = run_lane(lane, A, W, rng)
    want = expected(kind, A, W, shift)
    np.testing.assert_array_equal(got, want)
    lo, hi = lane.value_range
    assert lo <= want.min() and want.max() <= hi


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("simd,depth", [(1, 0), (5, 1), (8, 3)])
def test_lane_random(kind, simd, depth):
    for k, types in enumerate(TYPES[kind]):
        check(100 + 10 * KINDS.index(kind) + simd + k, kind, types, simd, depth)


@pytest.mark.parametrize("kind", KINDS)
def test_lane_worst_case(kind):
    for k, types in enumerate(TYPES[kind]):
        check(200 + 10 * KINDS.index(kind) + k, kind, types, 7, 1, n=6, worst=True)


@pytest.mark.parametrize("depth", [0, 2, 4])
def test_lane_onehot_counters(depth):
    for k, types in enumerate(TYPES["onehot"]):
        check(300 + depth + k, "onehot", types, 6, depth, onehot_mode="counters")


@pytest.mark.parametrize("sizes", [
    [*range(1, 14), 18, 27, 64],
    pytest.param([*range(14, 65)], marks=pytest.mark.slow)])
def test_lane_popcount_sizes(sizes):
    """The compressor tree for many sizes, with extreme inputs."""
    for simd in sizes:
        for kind in ("xnor", "and"):
            check(400 + simd, kind, TYPES[kind][0], simd, simd % 4, n=6, worst=True)


LUT4_STYLES = [s for s in POPCOUNT_STYLES if s != "gpc6"]


@pytest.mark.parametrize("style", LUT4_STYLES)
@pytest.mark.parametrize("sizes", [
    [*range(1, 14), 18, 27, 64],
    pytest.param([*range(14, 65)], marks=pytest.mark.slow)])
def test_lane_popcount_style_sizes(style, sizes):
    """The LUT4 popcount trees for many sizes and depths, with extreme inputs."""
    for simd in sizes:
        for kind in ("xnor", "and"):
            check(450 + simd, kind, TYPES[kind][0], simd, (simd + 1) % 5, n=6, worst=True,
                  popcount_style=style)


@pytest.mark.parametrize("style", LUT4_STYLES)
def test_lane_popcount_style_kinds(style):
    """The other kinds that count bits: ternary with magnitude-1 inputs, onehot counters."""
    for k, types in enumerate(TYPES["ternary"]):
        check(470 + k, "ternary", types, 11, k, popcount_style=style)
    for k, types in enumerate(TYPES["onehot"]):
        check(480 + k, "onehot", types, 9, 2 + k, onehot_mode="counters", popcount_style=style)


def test_family_popcount():
    assert set(FAMILIES) == {"xilinx", "ecp5", "ice40"}
    assert {f.popcount_style for f in FAMILIES.values()} <= set(POPCOUNT_STYLES)
    assert FAMILIES["xilinx"].popcount_style == "gpc6"


def test_lane_backpressure_counts():
    """Heavy stalls on both sides lose and duplicate nothing."""
    rng = np.random.default_rng(500)
    print("seed=500")
    wdt, adt, _ = TYPES["int"][0]
    lane = Lane(kind="int", simd=3, w_dtype=wdt, a_dtype=adt, depth=3)
    A = random_values(rng, adt, (40, 3))
    W = random_values(rng, wdt, (40, 3))
    got, src, sink = run_lane(lane, A, W, rng, gap=0.6, stall=0.8)
    np.testing.assert_array_equal(got, expected("int", A, W, 0))
    assert len(src.accept_cycles) == len(sink.transfer_cycles) == 40


@pytest.mark.parametrize("style", POPCOUNT_STYLES)
def test_lane_latency(style):
    rng = np.random.default_rng(600)
    print("seed=600")
    for depth in range(4):
        lane = Lane(kind="xnor", simd=16, w_dtype=DType.bipolar(), a_dtype=DType.bipolar(),
                    depth=depth, popcount_style=style)
        assert lane.latency == depth
        A = random_values(rng, DType.bipolar(), (5, 16))
        W = random_values(rng, DType.bipolar(), (5, 16))
        got, src, sink = run_lane(lane, A, W, rng, gap=0, stall=0)
        np.testing.assert_array_equal(got, expected("xnor", A, W, 0))
        assert [v - a for v, a in zip(sink.valid_cycles, src.accept_cycles, strict=True)] == [depth] * 5
        assert src.accept_cycles == list(range(5))


def test_lane_term_range():
    assert lane_term_range("adder", DType.int(4), DType.uint(4), 1) == (-31, 0)
    assert lane_term_range("int", DType.int(4), DType.uint(4)) == (-120, 105)
    assert lane_term_range("xnor", DType.bipolar(), DType.bipolar()) == (-1, 1)


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_lane_bad_parameters():
    b = DType.bipolar()
    with pytest.raises(ValueError, match=r"^MAC kind must be one of xnor, and, ternary, onehot, "
                                         r"int, adder, not 'mul'$"):
        Lane(kind="mul", simd=1, w_dtype=b, a_dtype=b)
    with pytest.raises(ValueError, match=r"^MAC kind 'and' takes activations uint1, not bipolar$"):
        Lane(kind="and", simd=1, w_dtype=b, a_dtype=b)
    with pytest.raises(ValueError, match=r"^SIMD must be a positive integer, not 0$"):
        Lane(kind="xnor", simd=0, w_dtype=b, a_dtype=b)
    with pytest.raises(ValueError, match=r"^Only adder lanes take a weight shift, not 'xnor'$"):
        Lane(kind="xnor", simd=1, w_dtype=b, a_dtype=b, w_shift=1)
    with pytest.raises(ValueError, match=r"^Onehot mode must be shift or counters, not 'x'$"):
        Lane(kind="xnor", simd=1, w_dtype=b, a_dtype=b, onehot_mode="x")
    with pytest.raises(ValueError, match=r"^Popcount style must be gpc6, fa or carry, "
                                         r"not 'lut4'$"):
        Lane(kind="xnor", simd=1, w_dtype=b, a_dtype=b, popcount_style="lut4")


def test_spread_registers():
    for levels in range(1, 8):
        for depth in range(0, 12):
            counts = spread_registers(levels, depth)
            assert len(counts) == levels and sum(counts) == depth
            assert max(counts, default=0) <= max(1, depth - levels + 1)


def test_counter_levels():
    assert counter_levels(1) == 0
    assert counter_levels(2) == 0
    assert counter_levels(6) == 1
    assert counter_levels(64, 3) == 5
    assert counter_levels(64, 2, 3) > counter_levels(64, 3)


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_counter_bad_parameters():
    with pytest.raises(ValueError, match=r"^A counter takes 1 to 6 input signals, not 4 bits "
                                         r"with op 'xnor'$"):
        Counter(4, "xnor")
    with pytest.raises(ValueError, match=r"^Counter op must be none, xnor or and, not 'or'$"):
        Counter(2, "or")


@pytest.mark.parametrize("style", POPCOUNT_STYLES)
def test_keep_counter_hierarchy(style):
    lane = Lane(kind="xnor", simd=12, w_dtype=DType.bipolar(), a_dtype=DType.bipolar(),
                popcount_style=style)
    text = rtlil.convert(lane, name="top")
    kept = keep_counter_hierarchy(text)
    modules = [line for line in text.splitlines() if line.startswith("module \\top.gpc_")]
    assert modules
    assert kept.count("attribute \\keep_hierarchy 1\nmodule \\top.gpc_") == len(modules)
    assert "keep_hierarchy" not in text
