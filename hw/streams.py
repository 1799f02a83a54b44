"""Stream forks and joins: one stream to several readers, two streams into one.

* :class:`Fork` duplicates a stream to ``count`` readers (FINN's DuplicateStreams). It has no
  register and no latency: a beat is offered to every reader at once, each reader that takes
  it is remembered, and the input beat is released on the cycle the last reader takes it. A
  slow reader therefore holds the others back by at most one beat.
* :class:`AddJoin` takes two streams in lock-step (beat ``j`` of one with beat ``j`` of the
  other: the same element positions) and sends ``m0·x0 + m1·x1`` per element, as accumulator
  codes for an activation unit (:mod:`hw.activation`). Latency 1.
* :class:`ConcatJoin` takes two streams in lock-step and sends each pair of beats as one beat,
  the first stream's elements first (channel concatenation of whole pixels). No latency.

Every join transfers its two inputs on the same cycle: neither input is taken alone.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .activation import acc_shape
from .dtypes import DType
from .lanes import element_value
from .pipeline import StallPipeline, mark_used

__all__ = ["Fork", "AddJoin", "ConcatJoin", "add_range", "refused"]


@contextmanager
def refused(block):
    """No "never used" warning for a block whose parameters are refused."""
    try:
        yield
    except (TypeError, ValueError):
        mark_used(block, silence=True)
        raise


def _positive(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return v


class Fork(wiring.Component):
    """One stream to ``count`` readers; every reader gets every beat, in order.

    Parameters
    ----------
    width : int
        Payload bits.
    count : int
        Number of readers (at least 2).

    Members
    -------
    i_stream : In(stream.Signature(unsigned(width)))
    o_streams : Out(stream.Signature(unsigned(width))).array(count)
    """

    def __init__(self, *, width: int, count: int):
        with refused(self):
            _positive("Width", width)
            if not isinstance(count, int) or isinstance(count, bool) or count < 2:
                raise ValueError(f"Reader count must be an integer of at least 2, not {count!r}")
        self._width, self._count = width, count
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width))),
            "o_streams": Out(stream.Signature(unsigned(width))).array(count),
        })

    width = property(lambda self: self._width)
    count = property(lambda self: self._count)

    def elaborate(self, platform):
        m = Module()
        done = Signal(self._count)        # readers that already took the current beat
        outs = list(self.o_streams)
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(self.i_stream.payload), o.valid.eq(self.i_stream.valid & ~done[k])]
        release = Signal()
        m.d.comb += release.eq(Cat(*[done[k] | o.ready for k, o in enumerate(outs)]).all())
        m.d.comb += self.i_stream.ready.eq(release)
        with m.If(self.i_stream.valid):
            with m.If(release):
                m.d.sync += done.eq(0)
            with m.Else():
                m.d.sync += done.eq(done | Cat(*[o.ready for o in outs]))
        return m


def add_range(dtypes, multipliers) -> tuple[int, int]:
    """The exact range of ``m0·x0 + m1·x1`` over every value of the element types."""
    lo = hi = 0
    for dt, mult in zip(dtypes, multipliers, strict=True):
        a, b = mult * dt.min, mult * dt.max
        lo, hi = lo + min(a, b), hi + max(a, b)
    return lo, hi


class AddJoin(wiring.Component):
    """Element-wise ``m0·x0 + m1·x1`` of two streams in lock-step.

    Parameters
    ----------
    dtypes : (DType, DType)
        Element types of the two inputs.
    multipliers : (int, int)
        The integer multiplier of each input (constants: shifts and adds in logic).
    elems : int
        Elements per beat (the same on both inputs and the output).

    Members
    -------
    i_stream0, i_stream1 : In(stream.Signature(unsigned(elems · dtypes[k].code_width)))
    o_stream : Out(stream.Signature(unsigned(elems · acc_width)))
        Accumulator codes (two's complement when the range has negative values), one beat per
        pair of input beats.
    acc_range : (int, int)
        The exact range of the sums (:func:`add_range`).
    latency : int
        1.
    """

    latency = 1

    def __init__(self, *, dtypes, multipliers, elems: int):
        dtypes, multipliers = tuple(dtypes), tuple(multipliers)
        with refused(self):
            if len(dtypes) != 2 or not all(isinstance(d, DType) for d in dtypes):
                raise TypeError(f"Element types must be two DTypes, not {dtypes!r}")
            if len(multipliers) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                 for v in multipliers):
                raise TypeError(f"Multipliers must be two integers, not {multipliers!r}")
            _positive("Elements per beat", elems)
        self._dtypes, self._mults, self._elems = dtypes, multipliers, elems
        self._acc_range = add_range(dtypes, multipliers)
        self._acc_shape = acc_shape(self._acc_range)
        super().__init__({
            "i_stream0": In(stream.Signature(unsigned(elems * dtypes[0].code_width))),
            "i_stream1": In(stream.Signature(unsigned(elems * dtypes[1].code_width))),
            "o_stream": Out(stream.Signature(unsigned(elems * self._acc_shape.width))),
        })

    dtypes = property(lambda self: self._dtypes)
    multipliers = property(lambda self: self._mults)
    elems = property(lambda self: self._elems)
    acc_range = property(lambda self: self._acc_range)
    acc_width = property(lambda self: self._acc_shape.width)

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline("add")
        a, b = self.i_stream0, self.i_stream1
        out = []
        for j in range(self._elems):
            terms = []
            for port, dt, mult in ((a, self._dtypes[0], self._mults[0]), (b, self._dtypes[1], self._mults[1])):
                cw = dt.code_width
                if mult:
                    terms.append(element_value(port.payload[j * cw:(j + 1) * cw], dt) * mult)
            total = sum(terms[1:], terms[0]) if terms else Const(0, self._acc_shape)
            out.append(pipe.reg(m, _as_shape(total, self._acc_shape), name=f"add_sum{j}"))
        en, o_valid, _ = pipe.connect(m, latency=1, i_valid=a.valid & b.valid, o_ready=self.o_stream.ready)
        m.d.comb += [
            a.ready.eq(en & b.valid),
            b.ready.eq(en & a.valid),
            self.o_stream.valid.eq(o_valid),
            self.o_stream.payload.eq(Cat(*out)),
        ]
        return m


def _as_shape(value, shape):
    """``value`` truncated or extended to ``shape`` (exact: the range fits by construction)."""
    from amaranth.hdl import Value

    return Value.cast(value)[:shape.width]


class ConcatJoin(wiring.Component):
    """Two or more streams in lock-step into one: each output beat is the first stream's beat in
    the low bits, the second's above it, and so on.

    Parameters
    ----------
    widths : tuple of int
        Payload bits of the inputs (at least two).

    Members
    -------
    i_stream0, i_stream1, … : In(stream.Signature(unsigned(widths[k])))
    o_stream : Out(stream.Signature(unsigned(sum(widths))))
    """

    latency = 0

    def __init__(self, *, widths):
        widths = tuple(widths)
        with refused(self):
            if len(widths) < 2:
                raise ValueError(f"Concat takes two or more inputs, not {len(widths)}")
            for w in widths:
                _positive("Width", w)
        self._widths = widths
        ports = {f"i_stream{k}": In(stream.Signature(unsigned(w))) for k, w in enumerate(widths)}
        super().__init__({**ports, "o_stream": Out(stream.Signature(unsigned(sum(widths))))})

    widths = property(lambda self: self._widths)

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"i_stream{k}") for k in range(len(self._widths))]
        o = self.o_stream
        m.d.comb += [o.payload.eq(Cat(*(i.payload for i in ins))),
                     o.valid.eq(Cat(*(i.valid for i in ins)).all())]
        for k, i in enumerate(ins):   # each input is taken when every other one is valid too
            others = [x.valid for j, x in enumerate(ins) if j != k]
            m.d.comb += i.ready.eq(o.ready & Cat(*others).all())
        return m
