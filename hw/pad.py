"""Vector padding and trimming: the stream side of a folding that does not divide a layer.

A matrix-vector unit folded with a SIMD that does not divide its dot-product length ``MW``
reads vectors of ``ceil(MW / SIMD) · SIMD`` elements: :class:`PadGather` gathers each vector
into SIMD-element beats and fills the last beat's missing elements with code 0, in the cycle
its last real part arrives (no extra cycles). One folded with a PE that does not divide its
output channels ``MH`` sends ``ceil(MH / PE)`` beats of PE outputs per vector:
:class:`VectorTrim` gathers them and sends the first ``MH`` as one beat. Both are gather stages
of a width converter (:mod:`hw.dwc`): a registered output, valid the cycle after a beat's last
part, so they never hold the unit before them longer than a converter would.
"""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .dwc import _Gather

__all__ = ["PadGather", "VectorTrim", "pad_gather_counts"]


def _check(name, value, low=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")


def pad_gather_counts(parts: int, ratio: int) -> list[int]:
    """Input beats gathered into each output beat of a vector of ``parts`` input beats, at
    ``ratio`` input beats per full output beat (the last one may have fewer)."""
    full, rest = divmod(parts, ratio)
    return [ratio] * full + ([rest] if rest else [])


class PadGather(wiring.Component):
    """Vectors of ``parts`` beats of ``elems`` elements into beats of ``ratio · elems``, the last
    beat of each vector completed with zero codes.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(width · elems)))
        ``parts`` beats per vector.
    o_stream : Out(stream.Signature(unsigned(width · elems · ratio)))
        ``ceil(parts / ratio)`` beats per vector.
    """

    def __init__(self, *, width: int, elems: int, ratio: int, parts: int):
        for name, v in (("Width", width), ("Elements per beat", elems), ("Ratio", ratio),
                        ("Beats per vector", parts)):
            _check(name, v)
        self._width, self._elems, self._ratio, self._parts = width, elems, ratio, parts
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * elems))),
            "o_stream": Out(stream.Signature(unsigned(width * elems * ratio))),
        })

    width = property(lambda self: self._width)
    elems = property(lambda self: self._elems)
    ratio = property(lambda self: self._ratio)
    parts = property(lambda self: self._parts)

    @property
    def counts(self) -> list[int]:
        """Input beats gathered into each output beat of a vector."""
        return pad_gather_counts(self._parts, self._ratio)

    def elaborate(self, platform):
        m = Module()
        counts = self.counts
        beats, last = len(counts), counts[-1]
        word = self._width * self._elems
        buf = Signal(word * self._ratio, name="pad_buf")
        full = Signal(name="pad_full")
        idx = Signal(range(self._ratio), name="pad_part")
        beat = Signal(range(beats), name="pad_beat")
        in_last = beat == beats - 1
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
                m.d.sync += [idx.eq(0), full.eq(1), beat.eq(beat + 1)]
            if last < self._ratio:
                with m.If(in_last & (idx == last - 1)):   # the vector's last part: pad with zeros
                    m.d.sync += [idx.eq(0), full.eq(1), beat.eq(0)]
                    m.d.sync += [buf.word_select(q, word).eq(0) for q in range(last, self._ratio)]
            else:
                with m.If(in_last & (idx == self._ratio - 1)):
                    m.d.sync += beat.eq(0)
        return m


class VectorTrim(wiring.Component):
    """Vectors of ``ratio`` beats of ``elems`` elements into one beat of their first ``keep``
    elements.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(width · elems)))
        ``ratio`` beats per vector.
    o_stream : Out(stream.Signature(unsigned(width · keep)))
        One beat per vector.
    """

    def __init__(self, *, width: int, elems: int, ratio: int, keep: int):
        for name, v in (("Width", width), ("Elements per beat", elems), ("Ratio", ratio),
                        ("Elements kept", keep)):
            _check(name, v)
        if keep > elems * ratio:
            raise ValueError(f"Elements kept must be at most {elems * ratio}, not {keep}")
        self._width, self._elems, self._ratio, self._keep = width, elems, ratio, keep
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * elems))),
            "o_stream": Out(stream.Signature(unsigned(width * keep))),
        })

    width = property(lambda self: self._width)
    elems = property(lambda self: self._elems)
    ratio = property(lambda self: self._ratio)
    keep = property(lambda self: self._keep)

    def elaborate(self, platform):
        m = Module()
        # a width converter's gather stage, its word cut to the first ``keep`` elements
        m.submodules.gather = gather = _Gather(width=self._width, elems=self._elems, ratio=self._ratio)
        wiring.connect(m, wiring.flipped(self.i_stream), gather.i_stream)
        m.d.comb += [
            self.o_stream.valid.eq(gather.o_stream.valid),
            self.o_stream.payload.eq(gather.o_stream.payload[:self._width * self._keep]),
            gather.o_stream.ready.eq(self.o_stream.ready),
        ]
        return m
