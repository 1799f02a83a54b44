"""Data-width converter: re-packs a stream of packed elements into beats of another size.

Elements keep their order: element 0 of the first input beat becomes element 0 of the first
output beat (see docs/contracts.md, packed vectors on streams). A converter from ``i_elems`` to
``o_elems`` elements per beat goes through ``gcd(i_elems, o_elems)`` elements per beat (a split
stage, then a gather stage), so it moves that many elements per cycle at most.
"""

from __future__ import annotations

from math import gcd

from amaranth import Elaboratable, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DataWidthConverter", "dwc_cycles"]


def dwc_cycles(elements: int, i_elems: int, o_elems: int) -> int:
    """Cycles a converter needs, with no stalls, to move ``elements`` elements."""
    if i_elems == o_elems:
        return elements // i_elems
    return elements // gcd(i_elems, o_elems)


def _check(name, value):
    if not isinstance(value, int) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


class _Split(wiring.Component):
    """``ratio * elems`` elements per input beat into ``elems`` per output beat."""

    def __init__(self, *, width: int, elems: int, ratio: int):
        self._width, self._elems, self._ratio = width, elems, ratio
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * elems * ratio))),
            "o_stream": Out(stream.Signature(unsigned(width * elems))),
        })

    def elaborate(self, platform):
        m = Module()
        word = self._width * self._elems
        buf = Signal(word * self._ratio)
        full = Signal()
        idx = Signal(range(self._ratio))
        at_end = idx == self._ratio - 1
        m.d.comb += [
            self.o_stream.valid.eq(full),
            self.o_stream.payload.eq(buf.word_select(idx, word)),
            self.i_stream.ready.eq(~full | (self.o_stream.ready & at_end)),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += idx.eq(idx + 1)
            with m.If(at_end):
                m.d.sync += [idx.eq(0), full.eq(0)]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [buf.eq(self.i_stream.payload), full.eq(1), idx.eq(0)]
        return m


class _Gather(wiring.Component):
    """``elems`` elements per input beat into ``ratio * elems`` per output beat."""

    def __init__(self, *, width: int, elems: int, ratio: int):
        self._width, self._elems, self._ratio = width, elems, ratio
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * elems))),
            "o_stream": Out(stream.Signature(unsigned(width * elems * ratio))),
        })

    def elaborate(self, platform):
        m = Module()
        word = self._width * self._elems
        buf = Signal(word * self._ratio)
        full = Signal()
        idx = Signal(range(self._ratio))
        m.d.comb += [
            self.o_stream.valid.eq(full),
            self.o_stream.payload.eq(buf),
            self.i_stream.ready.eq(~full | self.o_stream.ready),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [buf.word_select(idx, word).eq(self.i_stream.payload), idx.eq(idx + 1)]
            with m.If(idx == self._ratio - 1):
                m.d.sync += [idx.eq(0), full.eq(1)]
        return m


class DataWidthConverter(wiring.Component):
    """Re-packs ``i_elems`` elements per beat into ``o_elems`` elements per beat.

    The number of elements of a frame must be a multiple of both, so that frames stay aligned
    to beats; the converter itself does not need to know it.

    Parameters
    ----------
    width : int
        Code width of one element.
    i_elems, o_elems : int
        Elements per input and per output beat.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(width * i_elems)))
    o_stream : Out(stream.Signature(unsigned(width * o_elems)))
    """

    def __init__(self, *, width: int, i_elems: int, o_elems: int):
        for name, v in (("Width", width), ("Input elements per beat", i_elems),
                        ("Output elements per beat", o_elems)):
            _check(name, v)
        self._width, self._i_elems, self._o_elems = width, i_elems, o_elems
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * i_elems))),
            "o_stream": Out(stream.Signature(unsigned(width * o_elems))),
        })

    width = property(lambda self: self._width)
    i_elems = property(lambda self: self._i_elems)
    o_elems = property(lambda self: self._o_elems)

    def elaborate(self, platform):
        m = Module()
        i, o, w = self._i_elems, self._o_elems, self._width
        if i == o:
            wiring.connect(m, wiring.flipped(self.i_stream), wiring.flipped(self.o_stream))
            return m
        g = gcd(i, o)
        stages: list[Elaboratable] = []
        if i != g:
            stages.append(_Split(width=w, elems=g, ratio=i // g))
        if o != g:
            stages.append(_Gather(width=w, elems=g, ratio=o // g))
        for n, s in enumerate(stages):
            m.submodules[f"stage{n}"] = s
        wiring.connect(m, wiring.flipped(self.i_stream), stages[0].i_stream)
        for a, b in zip(stages, stages[1:], strict=False):
            wiring.connect(m, a.o_stream, b.i_stream)
        wiring.connect(m, stages[-1].o_stream, wiring.flipped(self.o_stream))
        return m
