"""A stream FIFO with the handshakes of :class:`amaranth.lib.fifo.SyncFIFOBuffered` and a
registered ``i_stream.ready``.

``SyncFIFOBuffered`` (an inner FIFO of ``depth - 1`` words in memory and an output register)
drives ``w_rdy`` from a compare of its fill level. That compare is the head of the longest
path of a whole accelerator: the producer's stall enable, which fans out to every register of
the producer, and its ``i_ready`` into the FIFO before it. :class:`StreamFIFO` computes the
same ``ready`` one cycle ahead, exactly (from the level and both handshakes), and keeps it in a
flip-flop; every signal at its ports is the same, cycle for cycle, as ``SyncFIFOBuffered``'s
(the cycle model, :mod:`gen.chainsim`, mirrors it).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO", "ready_ahead"]


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
        #: ``i_stream.ready`` of the next cycle (a combinational signal of this cycle's level and
        #: handshakes), for a producer that keeps its stall enable in a flip-flop
        #: (:meth:`hw.pipeline.StallPipeline.connect`)
        self.w_rdy_next = Signal(name="w_rdy_next")
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width))),
            "o_stream": Out(stream.Signature(unsigned(width))),
        })

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        if self._depth == 1:   # one register: full or empty (SyncFIFOBuffered's own case)
            m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=self._width, depth=1)
            m.d.comb += [
                q.w_data.eq(self.i_stream.payload),
                q.w_en.eq(self.i_stream.valid),
                self.i_stream.ready.eq(q.w_rdy),
                self.o_stream.payload.eq(q.r_data),
                self.o_stream.valid.eq(q.r_rdy),
                q.r_en.eq(self.o_stream.ready),
                # empty next cycle: empty and not written, or full and read
                self.w_rdy_next.eq(((q.level == 0) & ~(q.w_en & q.w_rdy))
                                   | ((q.level == 1) & q.r_en & q.r_rdy)),
            ]
            return m

        inner = self._depth - 1
        level = Signal(range(inner + 1), name="inner_level")
        w_rdy = Signal(init=1, name="w_rdy")        # == (level != inner), one cycle ahead
        r_rdy = Signal(name="r_rdy")                # the output register holds a word
        inner_r_rdy = level != 0
        do_write = Signal()
        do_inner_read = Signal()
        m.d.comb += [
            do_write.eq(w_rdy & self.i_stream.valid),
            do_inner_read.eq(inner_r_rdy & (~r_rdy | self.o_stream.ready)),
            self.i_stream.ready.eq(w_rdy),
            self.o_stream.valid.eq(r_rdy),
        ]

        storage = m.submodules.storage = Memory(shape=unsigned(self._width), depth=inner, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="sync")
        produce = Signal(range(inner), name="produce")
        consume = Signal(range(inner), name="consume")

        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.i_stream.payload),
                     w_port.en.eq(do_write),
                     r_port.addr.eq(consume), r_port.en.eq(do_inner_read),
                     self.o_stream.payload.eq(r_port.data)]
        with m.If(do_write):
            m.d.sync += produce.eq(_incr(produce, inner))
        with m.If(do_inner_read):
            m.d.sync += consume.eq(_incr(consume, inner))
        with m.If(do_write & ~do_inner_read):
            m.d.sync += level.eq(level + 1)
        with m.If(do_inner_read & ~do_write):
            m.d.sync += level.eq(level - 1)
        with m.If(do_inner_read):
            m.d.sync += r_rdy.eq(1)
        with m.Elif(self.o_stream.ready):
            m.d.sync += r_rdy.eq(0)

        # full next cycle: full now, or one short and written, and no word leaves the memory;
        # the consumer's ready (the late input) meets the rest in one LUT
        full_after_write = Signal()
        m.d.comb += full_after_write.eq((level == inner) | ((level == inner - 1) & do_write))
        m.d.comb += self.w_rdy_next.eq(~(full_after_write & ~do_inner_read))
        m.d.sync += w_rdy.eq(self.w_rdy_next)
        return m


def _incr(p, modulo):
    """``p + 1`` modulo ``modulo``, as :mod:`amaranth.lib.fifo` steps its pointers."""
    if modulo == 1 << len(p):
        return (p + 1)[:len(p)]
    return Mux(p == modulo - 1, 0, p + 1)


def ready_ahead(producer, fifo: StreamFIFO) -> None:
    """``producer`` writes straight into ``fifo``: a unit that can take the FIFO's ``ready`` of
    the next cycle (an ``o_ready_next`` attribute, :class:`hw.mvu.MVU`) gets it, so that its stall
    enable is a flip-flop, and the path from the FIFO's fill level through the unit's enable to
    the FIFO before it is cut."""
    if hasattr(producer, "o_ready_next"):
        producer.o_ready_next = fifo.w_rdy_next
