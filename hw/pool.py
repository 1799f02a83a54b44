"""2-D max-pooling over an HWC pixel stream: a sliding window and an element-wise max."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import order_key
from .dtypes import DType
from .swu import SlidingWindow

__all__ = ["MaxPool2d", "WindowMax"]


class WindowMax(wiring.Component):
    """Element-wise maximum over every ``count`` consecutive beats.

    Parameters
    ----------
    dtype : DType
        Element type (the maximum is taken over values, not codes).
    elems : int
        Elements per beat.
    count : int
        Beats per window.
    """

    def __init__(self, *, dtype: DType, elems: int, count: int):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"Count must be a positive integer, not {count!r}")
        self._dtype, self._elems, self._count = dtype, elems, count
        word = elems * dtype.code_width
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(word))),
            "o_stream": Out(stream.Signature(unsigned(word))),
        })

    def elaborate(self, platform):
        m = Module()
        cw = self._dtype.code_width
        acc = Signal(unsigned(self._elems * cw))
        n = Signal(range(self._count))
        full = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(full),
            self.o_stream.payload.eq(acc),
            self.i_stream.ready.eq(~full | self.o_stream.ready),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            for j in range(self._elems):
                a = acc[j * cw:(j + 1) * cw]
                b = self.i_stream.payload[j * cw:(j + 1) * cw]
                bigger = order_key(self._dtype, b) > order_key(self._dtype, a)
                m.d.sync += a.eq(Mux((n == 0) | bigger, b, a))
            m.d.sync += n.eq(n + 1)
            with m.If(n == self._count - 1):
                m.d.sync += [n.eq(0), full.eq(1)]
        return m


class MaxPool2d(wiring.Component):
    """Max-pooling of an image streamed one pixel (``C`` elements) per beat.

    Parameters
    ----------
    dtype : DType
    in_shape : (C, H, W)
    kernel, stride : int or (int, int)

    Members
    -------
    i_stream : In(stream.Signature(unsigned(C * dtype.code_width)))
    o_stream : Out(stream.Signature(unsigned(C * dtype.code_width)))
        One output pixel per beat, raster order.
    """

    def __init__(self, *, dtype: DType, in_shape, kernel, stride=None):
        self._dtype = dtype
        self._swu = SlidingWindow(width=dtype.code_width, in_shape=in_shape, kernel=kernel,
                                  stride=kernel if stride is None else stride)
        kh, kw = self._swu.kernel
        self._max = WindowMax(dtype=dtype, elems=in_shape[0], count=kh * kw)
        word = in_shape[0] * dtype.code_width
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(word))),
            "o_stream": Out(stream.Signature(unsigned(word))),
        })

    out_hw = property(lambda self: self._swu.out_hw)
    dtype = property(lambda self: self._dtype)
    in_shape = property(lambda self: self._swu.in_shape)
    kernel = property(lambda self: self._swu.kernel)
    stride = property(lambda self: self._swu.stride)

    def elaborate(self, platform):
        m = Module()
        m.submodules.swu = self._swu
        m.submodules.max = self._max
        wiring.connect(m, wiring.flipped(self.i_stream), self._swu.i_stream)
        wiring.connect(m, self._swu.o_stream, self._max.i_stream)
        wiring.connect(m, self._max.o_stream, wiring.flipped(self.o_stream))
        return m
