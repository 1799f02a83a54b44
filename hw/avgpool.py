"""Average pooling as integer sums: the window sum of 2-D pooling, and the per-channel sum of
global pooling. Both send accumulator codes (two's complement when the range has negative
values) for an activation unit (:mod:`hw.activation`) that divides, so that the division is
exactly the one of the source model (a requantization or thresholds)."""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .activation import acc_shape
from .dtypes import DType
from .lanes import element_value
from .pipeline import StallPipeline
from .streams import refused
from .swu import SlidingWindow

__all__ = ["WindowSum", "AvgPool2d", "ChannelSum", "sum_range"]


def sum_range(dtype: DType, count: int) -> tuple[int, int]:
    """The exact range of a sum of ``count`` elements of ``dtype``."""
    return count * dtype.min, count * dtype.max


def _positive(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return v


class WindowSum(wiring.Component):
    """Element-wise sum over every ``count`` consecutive beats of ``elems`` elements.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(elems · dtype.code_width)))
    o_stream : Out(stream.Signature(unsigned(elems · acc_width)))
        One beat the cycle after the last beat of every ``count``.
    """

    def __init__(self, *, dtype: DType, elems: int, count: int):
        with refused(self):
            _positive("Count", count)
            _positive("Elements per beat", elems)
        self._dtype, self._elems, self._count = dtype, elems, count
        self._acc_range = sum_range(dtype, count)
        self._acc_shape = acc_shape(self._acc_range)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(elems * dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(elems * self._acc_shape.width))),
        })

    acc_range = property(lambda self: self._acc_range)
    acc_width = property(lambda self: self._acc_shape.width)

    def elaborate(self, platform):
        m = Module()
        cw, aw = self._dtype.code_width, self._acc_shape.width
        accs = [Signal(self._acc_shape, name=f"sum{j}") for j in range(self._elems)]
        n = Signal(range(self._count))
        full = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(full),
            self.o_stream.payload.eq(Cat(*[a[:aw] for a in accs])),
            self.i_stream.ready.eq(~full | self.o_stream.ready),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            for j, a in enumerate(accs):
                x = element_value(self.i_stream.payload[j * cw:(j + 1) * cw], self._dtype)
                m.d.sync += a.eq(Mux(n == 0, x, a + x))
            m.d.sync += n.eq(n + 1)
            with m.If(n == self._count - 1):
                m.d.sync += [n.eq(0), full.eq(1)]
        return m


class AvgPool2d(wiring.Component):
    """Window sums of 2-D pooling (no padding) over an image streamed one pixel per beat.

    Parameters
    ----------
    dtype : DType
    in_shape : (C, H, W)
    kernel, stride : int or (int, int)

    Members
    -------
    i_stream : In(stream.Signature(unsigned(C · dtype.code_width)))
    o_stream : Out(stream.Signature(unsigned(C · acc_width)))
        One output pixel of window sums per beat, raster order.
    """

    def __init__(self, *, dtype: DType, in_shape, kernel, stride=None):
        self._dtype = dtype
        self._swu = SlidingWindow(width=dtype.code_width, in_shape=in_shape, kernel=kernel,
                                  stride=kernel if stride is None else stride)
        kh, kw = self._swu.kernel
        self._sum = WindowSum(dtype=dtype, elems=in_shape[0], count=kh * kw)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(in_shape[0] * dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(in_shape[0] * self._sum.acc_width))),
        })

    dtype = property(lambda self: self._dtype)
    in_shape = property(lambda self: self._swu.in_shape)
    kernel = property(lambda self: self._swu.kernel)
    stride = property(lambda self: self._swu.stride)
    acc_range = property(lambda self: self._sum.acc_range)
    acc_width = property(lambda self: self._sum.acc_width)
    buffer_rows = property(lambda self: self._swu.buffer_rows)

    def elaborate(self, platform):
        m = Module()
        m.submodules.swu = self._swu
        m.submodules.sum = self._sum
        wiring.connect(m, wiring.flipped(self.i_stream), self._swu.i_stream)
        wiring.connect(m, self._swu.o_stream, self._sum.i_stream)
        wiring.connect(m, self._sum.o_stream, wiring.flipped(self.o_stream))
        return m


class ChannelSum(wiring.Component):
    """Per-channel sums over the ``pixels`` pixels of a frame (global pooling): a running
    accumulator per channel.

    The input streams ``elems`` channels per beat, channel-minor (HWC): beat ``b`` holds
    channels ``(b mod F)·elems …`` with ``F = channels / elems`` channel folds. During the
    frame's last pixel each beat leaves as the ``elems`` finished sums of its channels.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(elems · dtype.code_width)))
        ``pixels · F`` beats per frame.
    o_stream : Out(stream.Signature(unsigned(elems · acc_width)))
        ``F`` beats per frame, one cycle after the last pixel's beats (latency 1).
    """

    latency = 1

    def __init__(self, *, dtype: DType, elems: int, channels: int, pixels: int):
        with refused(self):
            _positive("Elements per beat", elems)
            _positive("Pixels", pixels)
            if not isinstance(channels, int) or channels < 1 or channels % elems:
                raise ValueError(f"Channels must be a positive multiple of the {elems} elements per "
                                 f"beat, not {channels!r}")
        self._dtype, self._elems, self._channels, self._pixels = dtype, elems, channels, pixels
        self._acc_range = sum_range(dtype, pixels)
        self._acc_shape = acc_shape(self._acc_range)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(elems * dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(elems * self._acc_shape.width))),
        })

    acc_range = property(lambda self: self._acc_range)
    acc_width = property(lambda self: self._acc_shape.width)
    folds = property(lambda self: self._channels // self._elems)
    dtype = property(lambda self: self._dtype)
    elems = property(lambda self: self._elems)
    channels = property(lambda self: self._channels)
    pixels = property(lambda self: self._pixels)

    def elaborate(self, platform):
        m = Module()
        F, P, k = self.folds, self._pixels, self._elems
        cw, aw = self._dtype.code_width, self._acc_shape.width
        pipe = StallPipeline("gap")
        fold = Signal(range(max(2, F)))
        pixel = Signal(range(max(2, P)))
        accs = [[Signal(self._acc_shape, name=f"acc{f}_{j}") for j in range(k)] for f in range(F)]
        sums = []
        for j in range(k):
            x = element_value(self.i_stream.payload[j * cw:(j + 1) * cw], self._dtype)
            prev = Array(accs[f][j] for f in range(F))[fold] if F > 1 else accs[0][j]
            s = Signal(self._acc_shape, name=f"s{j}")
            m.d.comb += s.eq(Mux(pixel == 0, x, prev + x))
            sums.append(s)
        outs = [pipe.reg(m, s[:aw], name=f"gap_out{j}") for j, s in enumerate(sums)]
        last = pixel == P - 1
        en, o_valid, _ = pipe.connect(m, latency=1, i_valid=self.i_stream.valid,
                                      o_ready=self.o_stream.ready, gates={0: last})
        m.d.comb += [self.i_stream.ready.eq(en), self.o_stream.valid.eq(o_valid),
                     self.o_stream.payload.eq(Cat(*outs))]
        with m.If(en & self.i_stream.valid):
            for f in range(F):
                with m.If(fold == f):
                    m.d.sync += [accs[f][j].eq(sums[j]) for j in range(k)]
            with m.If(fold == F - 1):
                m.d.sync += [fold.eq(0), pixel.eq(Mux(last, 0, pixel + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)
        return m
