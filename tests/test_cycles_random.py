"""The cycle model against Amaranth simulation on random convolutional geometries.

Every case draws, from its seed, a network of one or two convolutions (kernel 1..4 per axis,
stride 1..3 per axis, also larger than the kernel, padding 0..2 per axis and below the kernel,
odd and even image sizes), some followed by a max-pool (kernel 2 or 3, stride 1..3), then a
dense layer and sometimes an argmax, with random MAC kinds, channels and folding (PE and SIMD
among the divisors, fully folded and fully parallel too). It asserts that the estimate's
interval and latency are exactly what the simulation measures with no stalls, and that the
plan's interval is too wherever blocks do not slow each other down (see gen/chainsim.py).

Replay a case with ``pytest tests/test_cycles_random.py -k "seed-<n>"``; a failure prints the
seed, the geometry and the folding.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.chainsim import steady_interval
from gen.estimate import estimate_network
from gen.ir import Conv2d, Dense, MaxPool2d
from gen.load import network_from_dict
from gen.plan import divisors, plan_network
from hw.dtypes import DType
from hw.swu import SlidingWindow, WindowTiming, swu_cycles
from sim import golden
from sim.golden import im2col
from sim.randnet import MAC_TYPES, random_network, random_values
from sim.streamsim import StreamSink, StreamSource, measure_accelerator, pack, unpack

KINDS = tuple(MAC_TYPES)
FAST_SEEDS = range(48)
SLOW_SEEDS = range(1000, 1600)


def draw_case(seed: int):
    """``(random_network arguments, network seed, folding seed)`` of case ``seed``."""
    rng = np.random.default_rng(seed)
    nconv = int(rng.integers(1, 3))
    macs = [KINDS[(seed + i) % len(KINDS)] if i == 0 else str(rng.choice(KINDS))
            for i in range(nconv + 1)]
    c = int(rng.integers(1, 4))
    h, w = (int(x) for x in rng.integers(3, 10, size=2))
    geometry = []
    for _ in range(nconv):
        k = [int(x) for x in rng.integers(1, 5, size=2)]
        if rng.random() < 0.5:
            k = [k[0], k[0]]
        s = [int(x) for x in rng.integers(1, 4, size=2)]
        if rng.random() < 0.5:
            s = [s[0], s[0]]
        p = [int(rng.integers(0, min(2, kk - 1) + 1)) for kk in k]
        pool = False
        if rng.random() < 0.3:
            pool = {"kernel": int(rng.integers(2, 4)), "stride": int(rng.integers(1, 4))}
        geometry.append({"kernel": k, "stride": s, "padding": p, "pool": pool})
    geometry.append(None)
    widths = [int(x) for x in rng.integers(1, 7, size=len(macs))]
    kw = dict(macs=macs, conv=True, in_shape=[c, h, w], widths=widths, geometry=geometry,
              argmax=bool(rng.random() < 0.4))
    return kw, int(rng.integers(1 << 31)), int(rng.integers(1 << 31))


def random_folding(net, seed: int, max_cycles: int) -> dict:
    """PE and SIMD of every compute layer: fully folded, fully parallel, or random divisors;
    drawn again (up to 20 times, then fully parallel) while the plan needs more than
    ``max_cycles`` per frame, to keep each simulation short."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        fold = _draw_folding(net, rng)
        if plan_network(net, fold=fold).interval <= max_cycles:
            return fold
    return {layer.name: {"pe": layer.mh, "simd": layer.mw} for layer in net.layers
            if isinstance(layer, (Dense, Conv2d))}


def _draw_folding(net, rng) -> dict:
    fold = {}
    for layer in net.layers:
        if isinstance(layer, (Dense, Conv2d)):
            r = rng.random()
            if r < 0.2:
                pe, simd = 1, 1
            elif r < 0.35:
                pe, simd = layer.mh, layer.mw
            else:
                pe, simd = int(rng.choice(divisors(layer.mh))), int(rng.choice(divisors(layer.mw)))
            fold[layer.name] = {"pe": pe, "simd": simd}
    return fold


def describe(net, fold) -> str:
    rows = []
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            rows.append(f"{layer.name}: conv2d {layer.mac} in {layer.in_shape} kernel {layer.kernel} "
                        f"stride {layer.stride} padding {layer.padding} -> {layer.out_shape} "
                        f"{fold.get(layer.name)}")
        elif isinstance(layer, MaxPool2d):
            rows.append(f"{layer.name}: maxpool2d in {layer.in_shape} kernel {layer.kernel} "
                        f"stride {layer.stride} -> {layer.out_shape}")
        elif isinstance(layer, Dense):
            rows.append(f"{layer.name}: dense {layer.mac} {layer.mw} -> {layer.mh} "
                        f"{fold.get(layer.name)}")
        else:
            rows.append(f"{layer.name}: {layer.kind}")
    return "\n".join(rows)


def measure(accel, frames: int = 4) -> tuple[int, int]:
    """``(latency, interval)`` in Amaranth's simulator with no stalls; the interval must be the
    same between every two frames after the first, and the outputs the golden model's."""
    x = random_values(np.random.default_rng(0), accel.net.input.dtype, (frames, *accel.net.input.shape))
    latency, interval, got = measure_accelerator(accel, x)
    np.testing.assert_array_equal(got, golden.run(accel.net, x).outputs)
    return latency, interval


def check_case(seed: int, max_cycles: int = 600):
    """Asserts the model on case ``seed``; returns whether the plan's interval was exact too."""
    kw, net_seed, fold_seed = draw_case(seed)
    doc, arrays = random_network(np.random.default_rng(net_seed), **kw)
    net = network_from_dict(doc, arrays=arrays)
    fold = random_folding(net, fold_seed, max_cycles)
    est = estimate_network(net, fold=fold, count_registers=False)
    where = f"seed {seed}:\n{describe(net, fold)}\n"
    try:
        latency, interval = measure(est.accel)
    except AssertionError as e:
        raise AssertionError(f"{where}{e}") from None
    assert (est.interval, est.latency) == (interval, latency), (
        f"{where}model interval {est.interval}, latency {est.latency}; simulation {interval}, "
        f"{latency}")
    # the plan counts each block on its own: exact unless blocks slow each other down
    assert est.plan.interval <= interval, where
    return est.plan.interval == interval


@pytest.mark.parametrize("seed", FAST_SEEDS, ids=[f"seed-{s}" for s in FAST_SEEDS])
def test_random_geometry(seed):
    check_case(seed)


@pytest.mark.parametrize("seed", [1378, 4310])
def test_blocks_that_slow_each_other_down(seed):
    """Two of the cases where the plan's per-layer interval is short of the truth and only the
    whole-chain model is exact: 1378, a 3×3 max-pool of stride 1 whose window stops taking
    pixels while it reads the last output row, so that the convolution before it stalls
    (plan 54, measured 56); 4310, a 3×3 max-pool of stride 1, the bottleneck, fed by a
    convolution that sends a pixel every 3 cycles: at the start of every frame its window waits
    for rows that arrive at that rate, not at one pixel per cycle (plan 181, measured 197)."""
    assert not check_case(seed, max_cycles=4000)


@pytest.mark.slow
def test_random_geometry_sweep():
    inexact_plans = [s for s in SLOW_SEEDS if not check_case(s, max_cycles=4000)]
    # every interval and latency matched (the asserts in check_case); the plan's per-layer
    # interval missed the coupling of blocks in a few (printed with -s)
    print(f"{len(SLOW_SEEDS)} geometries exact; plan interval below it in seeds {inexact_plans}")


# -- the sliding window on its own ----------------------------------------------------------------
def _window_cases(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = tuple(int(x) for x in rng.integers(1, 5, size=2))
        s = tuple(int(x) for x in rng.integers(1, 4, size=2))
        p = tuple(int(rng.integers(0, min(2, kk - 1) + 1)) for kk in k)
        h, w = (max(int(x), k[i] - 2 * p[i]) for i, x in enumerate(rng.integers(2, 10, size=2)))
        yield (1, h, w), k, s, p


WINDOWS = list(_window_cases(40))


def window_interval(in_shape, kernel, stride, padding) -> int:
    """Cycles per frame of a lone sliding window in simulation, input always valid and output
    always ready (the same between every two frames after the first)."""
    dut = SlidingWindow(width=2, in_shape=in_shape, kernel=kernel, stride=stride, padding=padding)
    frames = 5
    beats = list(np.random.default_rng(0).integers(0, 4, size=frames * in_shape[1] * in_shape[2]))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    src = StreamSource(dut.i_stream, beats)
    sink = StreamSink(dut.o_stream, frames * dut.beats_per_frame)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    intervals = set(np.diff(sink.transfer_cycles[::dut.beats_per_frame][1:]).tolist())
    assert len(intervals) == 1
    return intervals.pop()


@pytest.mark.parametrize("geometry", WINDOWS, ids=[f"{g[0][1]}x{g[0][2]}-k{g[1]}-s{g[2]}-p{g[3]}"
                                                   for g in WINDOWS])
def test_window_interval(geometry):
    """:func:`hw.swu.swu_cycles` is the sliding window's cycles per frame (seed 7 draws the
    geometries)."""
    assert window_interval(*geometry) == swu_cycles(*geometry)


@pytest.mark.parametrize(("geometry", "cycles"), [
    # 13·13·9 = 1,521 beats; it waited 23 cycles a frame (1,544) while row 27, below the last
    # window, took one of the two buffer rows free during the last output row
    (((1, 28, 28), (3, 3), (2, 2), (0, 0)), 1521),
    (((1, 28, 28), (3, 3), (2, 2), (1, 1)), 1764),
    # stride 1: the writer takes ph + 1 rows of the next frame early, the first windows need
    # kh - ph, so without padding each frame waits for a row (441 beats)
    (((1, 9, 9), (3, 3), (1, 1), (0, 0)), 445),
    (((1, 9, 9), (3, 3), (1, 1), (1, 1)), 729),
    # one output row of a 4-row kernel: it waits for three rows of the next frame (48 beats)
    (((1, 4, 7), (4, 2), (1, 1), (0, 0)), 57),
])
def test_window_interval_examples(geometry, cycles):
    assert window_interval(*geometry) == swu_cycles(*geometry) == cycles


@pytest.mark.parametrize("geometry", WINDOWS, ids=[f"{g[0][1]}x{g[0][2]}-k{g[1]}-s{g[2]}-p{g[3]}"
                                                   for g in WINDOWS])
def test_window_bit_exact(geometry):
    """The window pixels, with random gaps and stalls over three frames, are im2col's (the rows
    below the last window, taken without a buffer row, included)."""
    (_, h, w), kernel, stride, padding = geometry
    c, frames, dt = 2, 3, DType.uint(2)
    rng = np.random.default_rng(h * 1000 + w)
    x = random_values(rng, dt, (frames, c, h, w))
    dut = SlidingWindow(width=2, in_shape=(c, h, w), kernel=kernel, stride=stride, padding=padding,
                        pad_code=3)
    beats = [pack(p, 2) for p in dt.encode(x.transpose(0, 2, 3, 1).reshape(-1, c))]
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    src = StreamSource(dut.i_stream, beats, rng=rng, gap=0.3)
    sink = StreamSink(dut.o_stream, frames * dut.beats_per_frame, rng=rng, stall=0.3)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    got = np.array([unpack(b, 2, c) for b in sink.beats])
    cols = im2col(x, kernel, stride, padding, 3)
    n, oh, ow, _ = cols.shape
    kh, kw = kernel
    want = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 1, 2, 4, 5, 3).reshape(-1, c)
    np.testing.assert_array_equal(got, want)


# -- the reported case: a Brevitas-like stride-2 network ------------------------------------------
def _strided_net(padding: int):
    macs = ["int", "xnor", "xnor"]
    geometry = [{"kernel": 3, "stride": 2, "padding": padding}, {"kernel": 3, "stride": 1,
                                                                  "padding": 1}, None]
    doc, arrays = random_network(np.random.default_rng(28), macs, conv=True, in_shape=[1, 28, 28],
                                 widths=[4, 4, 10], geometry=geometry, argmax=True)
    return network_from_dict(doc, arrays=arrays)


@pytest.mark.parametrize(("padding", "interval"), [(0, 1521), (1, 1764)])
def test_stride2_network(padding, interval):
    """1×28×28, conv 3×3 stride 2, conv 3×3, dense, argmax, the first window the bottleneck.
    Without padding (the reported case) it ran 1,544 cycles per frame against the plan's 1,521
    window beats: it waited at the start of every frame for two image rows that its 5-row
    buffer had not taken, one of its free rows going to row 27, below the last window. Such rows
    now take no buffer row, and it runs the 1,521 planned."""
    net = _strided_net(padding)
    est = estimate_network(net, fold={"layer1": {"pe": 2, "simd": 12}}, count_registers=False)
    assert est.plan.interval == est.interval == interval
    assert steady_interval(est.accel) == interval
    latency, measured = measure(est.accel, frames=3)
    assert (measured, latency) == (interval, est.latency)


@pytest.mark.parametrize("geometry", WINDOWS, ids=[f"{g[0][1]}x{g[0][2]}-k{g[1]}-s{g[2]}-p{g[3]}"
                                                        for g in WINDOWS])
def test_window_handshakes_match_model(geometry):
    """The sliding window's ``i_stream.ready`` and ``o_stream.valid`` equal those of its cycle
    model (hw.swu.WindowTiming, which gen.chainsim runs) in every cycle, under random input
    gaps and output stalls over several frames: a retimed window must not move a handshake."""
    in_shape, kernel, stride, padding = geometry
    seed = in_shape[1] * 100 + in_shape[2]
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut = SlidingWindow(width=2, in_shape=in_shape, kernel=kernel, stride=stride, padding=padding)
    model = WindowTiming(in_shape, kernel, stride, padding)
    cycles = 3 * max(in_shape[1] * in_shape[2], dut.beats_per_frame) * 3

    async def bench(ctx):
        for t in range(cycles):
            i_valid, o_ready = int(rng.random() < 0.7), int(rng.random() < 0.7)
            ctx.set(dut.i_stream.valid, i_valid)
            ctx.set(dut.o_stream.ready, o_ready)
            got = (ctx.get(dut.i_stream.ready), ctx.get(dut.o_stream.valid))
            want = (int(model.ready(o_ready)), int(model.valid()))
            assert got == want, f"cycle {t}: (ready, valid) {got}, model {want}"
            model.step(i_valid, want[0], o_ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert model.frames >= 2, f"only {model.frames} frames in {cycles} cycles"
