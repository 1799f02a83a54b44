"""A stream FIFO: :class:`amaranth.lib.fifo.SyncFIFOBuffered` behind stream ports."""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out buffer of ``depth`` beats of ``width`` bits.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(width)))
    o_stream : Out(stream.Signature(unsigned(width)))
    """

    def __init__(self, *, width: int, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Depth must be a positive integer, not {depth!r}")
        self._width, self._depth = width, depth
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width))),
            "o_stream": Out(stream.Signature(unsigned(width))),
        })

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=self._width, depth=self._depth)
        m.d.comb += [
            q.w_data.eq(self.i_stream.payload),
            q.w_en.eq(self.i_stream.valid),
            self.i_stream.ready.eq(q.w_rdy),
            self.o_stream.payload.eq(q.r_data),
            self.o_stream.valid.eq(q.r_rdy),
            q.r_en.eq(self.o_stream.ready),
        ]
        return m
