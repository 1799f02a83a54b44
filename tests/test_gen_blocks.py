"""Amaranth-simulator checks of the dataflow blocks against the golden model, with random
valid gaps and ready stalls (seeds printed, replay with the same seed)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.argmax import Argmax
from hw.dtypes import DType, pack_words, unpack_words
from hw.dwc import DataWidthConverter
from hw.pool import MaxPool2d
from hw.swu import SlidingWindow
from sim.golden import im2col
from sim.randnet import random_values
from sim.streamsim import stream_run

SEEDS = [1, 2]


# -- stream helpers --------------------------------------
def pack(codes, width: int) -> list[int]:
    """Rows of element codes (beats, elems) to packed payload integers (element 0 in the LSBs)."""
    return pack_words(np.asarray(codes, dtype=np.uint64).reshape(len(codes), -1), width)


def unpack(words, width: int, elems: int) -> np.ndarray:
    return unpack_words(words, width, elems)


# -- data-width converter --------------------------------------------------------------------
@pytest.mark.parametrize("i_elems,o_elems", [(1, 1), (4, 1), (1, 4), (6, 4), (4, 6), (3, 2)])
@pytest.mark.parametrize("seed", SEEDS)
def test_dwc(i_elems, o_elems, seed):
    width, n = 3, 12 * 3
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << width, size=n).astype(np.uint64)
    dut = DataWidthConverter(width=width, i_elems=i_elems, o_elems=o_elems)
    got = stream_run(dut, pack(codes.reshape(-1, i_elems), width), n // o_elems, seed=seed)
    np.testing.assert_array_equal(unpack(got, width, o_elems).reshape(-1), codes)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_dwc_bad():
    with pytest.raises(TypeError, match=r"^Input elements per beat must be a positive integer, not 0$"):
        DataWidthConverter(width=2, i_elems=0, o_elems=1)


# -- sliding window --------------------------------------------------------------------------
SWU_CASES = [
    # (C, H, W), kernel, stride, padding, dtype
    ((2, 5, 6), (3, 3), (1, 1), (1, 1), DType.bipolar()),
    ((1, 6, 5), (3, 2), (2, 1), (0, 1), DType.int(3)),
    ((3, 4, 4), (2, 2), (2, 2), (0, 0), DType.uint(2)),
    ((2, 7, 7), (3, 3), (2, 2), (1, 1), DType.ternary()),
    ((1, 3, 3), (3, 3), (1, 1), (2, 2), DType.uint(2)),
    ((2, 3, 8), (1, 1), (1, 3), (0, 0), DType.uint(1)),
]


@pytest.mark.parametrize("case", range(len(SWU_CASES)))
@pytest.mark.parametrize("seed", SEEDS)
def test_sliding_window(case, seed):
    (c, h, w), kernel, stride, padding, dt = SWU_CASES[case]
    frames = 2
    rng = np.random.default_rng(seed)
    x = random_values(rng, dt, (frames, c, h, w))
    pad_value = int(dt.values()[rng.integers(len(dt.values()))])
    kh, kw = kernel
    dut = SlidingWindow(width=dt.code_width, in_shape=(c, h, w), kernel=kernel, stride=stride,
                        padding=padding, pad_code=int(dt.encode(pad_value)))
    beats = pack(dt.encode(x.transpose(0, 2, 3, 1).reshape(-1, c)), dt.code_width)
    got = stream_run(dut, beats, frames * dut.beats_per_frame, seed=seed, check_extra=False)
    got = dt.decode(unpack(got, dt.code_width, c))
    cols = im2col(x, kernel, stride, padding, pad_value)       # (N, OH, OW, C·KH·KW)
    n, oh, ow, _ = cols.shape
    want = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 1, 2, 4, 5, 3).reshape(-1, c)
    np.testing.assert_array_equal(got, want)


def test_sliding_window_back_to_back():
    """No stalls: one window pixel per cycle once the buffer has filled (throughput)."""
    (c, h, w) = (1, 6, 6)
    dut = SlidingWindow(width=2, in_shape=(c, h, w), kernel=3, padding=1)
    x = np.arange(3 * h * w) % 4
    got = stream_run(dut, [int(v) for v in x], 3 * dut.beats_per_frame, seed=0, gap=0, stall=0,
                     check_extra=False)
    assert len(got) == 3 * 36 * 9


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sliding_window_bad():
    with pytest.raises(ValueError, match=r"^Padding \(3, 3\) must be smaller than the kernel \(3, 3\)$"):
        SlidingWindow(width=1, in_shape=(1, 4, 4), kernel=3, padding=3)


# -- max-pool --------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [DType.int(4), DType.bipolar(), DType.onehot(3, signed=True),
                                DType.uint(2)], ids=str)
@pytest.mark.parametrize("seed", SEEDS)
def test_maxpool(dt, seed):
    c, h, w, k, s = 3, 6, 5, (2, 2), (2, 1)
    rng = np.random.default_rng(seed)
    x = random_values(rng, dt, (2, c, h, w))
    dut = MaxPool2d(dtype=dt, in_shape=(c, h, w), kernel=k, stride=s)
    oh, ow = dut.out_hw
    beats = pack(dt.encode(x.transpose(0, 2, 3, 1).reshape(-1, c)), dt.code_width)
    got = stream_run(dut, beats, 2 * oh * ow, seed=seed)
    got = dt.decode(unpack(got, dt.code_width, c)).reshape(2, oh, ow, c).transpose(0, 3, 1, 2)
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    np.testing.assert_array_equal(got, win.max(axis=(4, 5)))


# -- argmax ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,elems,dt", [
    ((10,), 1, DType.int(3)), ((12,), 4, DType.uint(2)), ((9,), 3, DType.onehot(2, signed=True)),
    ((4, 2, 3), 2, DType.uint(2)), ((3, 2, 2), 3, DType.bipolar()), ((7,), 7, DType.int(12)),
    ((20,), 10, DType.uint(1)), ((4, 1, 2), 4, DType.int(2)),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_argmax_ties(shape, elems, dt, seed):
    """Few distinct values, so ties are frequent: the first index (CHW order) must win."""
    rng = np.random.default_rng(seed)
    frames = 12
    vals = dt.values()
    x = rng.choice(vals[-3:] if len(vals) > 3 else vals, size=(frames, *shape))
    dut = Argmax(dtype=dt, elems=elems, in_shape=shape)
    stream_x = x.transpose(0, 2, 3, 1) if len(shape) == 3 else x
    beats = pack(dt.encode(stream_x.reshape(-1, elems)), dt.code_width)
    got = stream_run(dut, beats, frames, seed=seed)
    np.testing.assert_array_equal(np.array(got), np.argmax(x.reshape(frames, -1), axis=1))
