"""The fork and join blocks (hw/streams.py) and the pooling sums (hw/avgpool.py), bit-exact
against numpy in Amaranth simulation with random gaps on every input and random stalls on every
output, and their latency against the cycle model's rules."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from hw.avgpool import AvgPool2d, ChannelSum, WindowSum, sum_range
from hw.dtypes import DType, pack_words, unpack_words
from hw.streams import AddJoin, ConcatJoin, Fork, add_range
from sim.randnet import random_values
from sim.streamsim import StreamSink, StreamSource


def run(dut, sources, sinks):
    """``sources``: [(port, beats, gap)], ``sinks``: [(port, count, stall)]; returns the sinks."""
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    rng = np.random.default_rng(0)
    outs = []
    for port, beats, gap in sources:
        src = StreamSource(port, beats, rng=np.random.default_rng(rng.integers(1 << 30)), gap=gap)
        sim.add_testbench(src.testbench, background=True)
    for port, count, stall in sinks:
        sink = StreamSink(port, count, rng=np.random.default_rng(rng.integers(1 << 30)), stall=stall,
                          timeout=20_000)
        sim.add_testbench(sink.testbench)
        outs.append(sink)
    sim.run()
    return outs


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("count", [2, 3])
def test_fork_every_reader_gets_every_beat(seed, count):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    beats = rng.integers(0, 1 << 8, 60).tolist()
    fork = Fork(width=8, count=count)
    stalls = rng.uniform(0, 0.7, count)
    sinks = run(fork, [(fork.i_stream, beats, 0.3)], [(o, len(beats), s) for o, s in
                                                     zip(fork.o_streams, stalls, strict=True)])
    for s in sinks:
        assert s.beats == beats


def test_fork_has_no_latency():
    fork = Fork(width=4, count=2)
    beats = list(range(10))
    sinks = run(fork, [(fork.i_stream, beats, 0.0)], [(o, 10, 0.0) for o in fork.o_streams])
    assert all(s.transfer_cycles == list(range(10)) for s in sinks)


def test_fork_rejects_one_reader():
    with pytest.raises(ValueError, match=r"^Reader count must be an integer of at least 2, not 1$"):
        Fork(width=4, count=1)


TYPES = [DType.int(4), DType.uint(3), DType.bipolar(), DType.ternary(), DType.int(2)]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_add_join_is_exact_with_stalls(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    d0, d1 = (TYPES[i] for i in rng.choice(len(TYPES), 2))
    mults = (int(rng.choice([1, 2, 3, -1, 5])), int(rng.choice([1, -2, 4, 7])))
    k = int(rng.choice([1, 2, 4]))
    n = 24
    x0 = random_values(rng, d0, (n, k))
    x1 = random_values(rng, d1, (n, k))
    dut = AddJoin(dtypes=(d0, d1), multipliers=mults, elems=k)
    sinks = run(dut, [(dut.i_stream0, pack_words(d0.encode(x0), d0.code_width), 0.4),
                      (dut.i_stream1, pack_words(d1.encode(x1), d1.code_width), 0.2)],
                [(dut.o_stream, n, 0.4)])
    lo, hi = dut.acc_range
    want = mults[0] * x0 + mults[1] * x1
    assert (lo, hi) == add_range((d0, d1), mults)
    assert lo <= want.min() and want.max() <= hi
    acc = DType.for_range(lo, hi)
    got = acc.decode(unpack_words(sinks[0].beats, dut.acc_width, k))
    np.testing.assert_array_equal(got, want)


def test_add_join_latency_is_one():
    d = DType.uint(2)
    dut = AddJoin(dtypes=(d, d), multipliers=(1, 1), elems=1)
    sinks = run(dut, [(dut.i_stream0, [1] * 8, 0.0), (dut.i_stream1, [2] * 8, 0.0)],
                [(dut.o_stream, 8, 0.0)])
    assert sinks[0].valid_cycles[0] == 1 and sinks[0].beats == [3] * 8


@pytest.mark.parametrize("seed", [6, 7])
def test_concat_join_is_exact_with_stalls(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 6, 40).tolist()
    b = rng.integers(0, 1 << 3, 40).tolist()
    dut = ConcatJoin(widths=(6, 3))
    sinks = run(dut, [(dut.i_stream0, a, 0.5), (dut.i_stream1, b, 0.1)], [(dut.o_stream, 40, 0.4)])
    assert sinks[0].beats == [x | (y << 6) for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize("seed", [16, 17])
def test_concat_join_of_three_is_exact_with_stalls(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    ins = [rng.integers(0, 1 << w, 30).tolist() for w in (2, 5, 3)]
    dut = ConcatJoin(widths=(2, 5, 3))
    gaps = rng.uniform(0, 0.6, 3)
    sinks = run(dut, [(getattr(dut, f"i_stream{k}"), ins[k], gaps[k]) for k in range(3)],
                [(dut.o_stream, 30, 0.4)])
    assert sinks[0].beats == [x | (y << 2) | (z << 7) for x, y, z in zip(*ins, strict=True)]


@pytest.mark.parametrize("seed", [8, 9])
def test_window_sum_is_exact(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dt = TYPES[int(rng.integers(len(TYPES)))]
    k, count, n = 3, int(rng.integers(1, 6)), 5
    x = random_values(rng, dt, (n * count, k))
    dut = WindowSum(dtype=dt, elems=k, count=count)
    sinks = run(dut, [(dut.i_stream, pack_words(dt.encode(x), dt.code_width), 0.3)], [(dut.o_stream, n, 0.4)])
    got = DType.for_range(*dut.acc_range).decode(unpack_words(sinks[0].beats, dut.acc_width, k))
    np.testing.assert_array_equal(got, x.reshape(n, count, k).sum(axis=1))


@pytest.mark.parametrize("seed", [10, 11])
def test_avgpool2d_window_sums_are_exact(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dt = DType.int(3)
    c, h, w, kern, stride = 2, 5, 6, (2, 3), (1, 2)
    frames = 2
    x = random_values(rng, dt, (frames, c, h, w))
    dut = AvgPool2d(dtype=dt, in_shape=(c, h, w), kernel=kern, stride=stride)
    words = pack_words(dt.encode(x.transpose(0, 2, 3, 1).reshape(-1, c)), dt.code_width)
    win = np.lib.stride_tricks.sliding_window_view(x, kern, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    want = win.sum(axis=(4, 5))                       # (N, C, OH, OW)
    n_out = want.shape[2] * want.shape[3] * frames
    sinks = run(dut, [(dut.i_stream, words, 0.3)], [(dut.o_stream, n_out, 0.3)])
    got = DType.for_range(*dut.acc_range).decode(unpack_words(sinks[0].beats, dut.acc_width, c))
    np.testing.assert_array_equal(got, want.transpose(0, 2, 3, 1).reshape(-1, c))


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_channel_sum_is_exact(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dt = TYPES[int(rng.integers(len(TYPES)))]
    k = int(rng.choice([1, 2]))
    channels, pixels, frames = k * int(rng.integers(1, 4)), int(rng.integers(1, 7)), 3
    x = random_values(rng, dt, (frames, pixels, channels))
    dut = ChannelSum(dtype=dt, elems=k, channels=channels, pixels=pixels)
    words = pack_words(dt.encode(x.reshape(-1, k)), dt.code_width)
    sinks = run(dut, [(dut.i_stream, words, 0.3)], [(dut.o_stream, frames * channels // k, 0.4)])
    assert dut.acc_range == sum_range(dt, pixels)
    got = DType.for_range(*dut.acc_range).decode(unpack_words(sinks[0].beats, dut.acc_width, k))
    np.testing.assert_array_equal(got.reshape(frames, channels), x.sum(axis=1))


def test_channel_sum_rejects_bad_channels():
    with pytest.raises(ValueError, match=r"^Channels must be a positive multiple of the 2 elements "
                                         r"per beat, not 3$"):
        ChannelSum(dtype=DType.uint(2), elems=2, channels=3, pixels=4)
