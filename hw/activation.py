"""Activation units after the accumulator: multi-threshold and integer requantization.

Both work on PE accumulators per beat, for channels ``[f·PE, (f+1)·PE)`` of channel fold ``f``.
Their datapath (:meth:`build`) is used by the matrix-vector unit with the fold index it carries
down its pipeline; as stream components (:class:`ThresholdUnit`, :class:`RequantUnit`) they count
channel folds themselves, so beat ``k`` of the stream belongs to fold ``k mod (channels/PE)``.

Accumulators travel as ``acc_width``-bit two's complement codes (unsigned when the accumulator
range has no negative value); outputs are codes of the activation's output type.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gen.dtypes import DType, bits_for_range
from gen.ir import ROUNDINGS, MultiThreshold, Requant

from .pipeline import StallPipeline

__all__ = ["ThresholdUnit", "RequantUnit", "acc_shape", "fold_table"]


def acc_shape(acc_range: tuple[int, int]):
    """Shape of an accumulator of the given range (exact width, signed if it can be negative)."""
    width, is_signed = bits_for_range(*acc_range)
    return signed(width) if is_signed else unsigned(width)


def fold_table(values, fold: Value, shape):
    """``values[fold]`` as hardware: a constant if all entries are equal, else a lookup."""
    values = [int(v) for v in values]
    if len(set(values)) == 1 or len(values) == 1:
        return Const(values[0], shape)
    return Array([Const(v, shape) for v in values])[fold]


class _ChannelUnit(wiring.Component):
    """Common parts of the stream components: packed PE accumulators in, PE codes out."""

    def __init__(self, *, channels: int, pe: int, acc_range, out_dtype: DType):
        if not isinstance(pe, int) or pe < 1 or channels % pe:
            raise ValueError(f"PE must be a positive divisor of the {channels} channels, not {pe!r}")
        lo, hi = int(acc_range[0]), int(acc_range[1])
        if lo > hi:
            raise ValueError(f"Accumulator range must not be empty, not [{lo}, {hi}]")
        self._channels, self._pe, self._acc_range = channels, pe, (lo, hi)
        self._acc_shape = acc_shape((lo, hi))
        self._out_dtype = out_dtype
        self._MustUse__silence = False
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(pe * self._acc_shape.width))),
            "o_stream": Out(stream.Signature(unsigned(pe * out_dtype.code_width))),
        })

    channels = property(lambda self: self._channels)
    pe = property(lambda self: self._pe)
    acc_range = property(lambda self: self._acc_range)
    out_dtype = property(lambda self: self._out_dtype)

    @property
    def folds(self) -> int:
        return self._channels // self._pe

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(type(self).__name__.lower())
        aw = self._acc_shape.width
        fold = Signal(range(max(2, self.folds)))
        accs = [self.i_stream.payload[p * aw:(p + 1) * aw] for p in range(self._pe)]
        accs = [a.as_signed() if self._acc_shape.signed else a for a in accs]
        codes = self.build(m, pipe, accs, fold)
        m.d.comb += self.o_stream.payload.eq(Cat(*codes))
        en, o_valid, _ = pipe.connect(m, latency=self.latency, i_valid=self.i_stream.valid,
                                      o_ready=self.o_stream.ready)
        m.d.comb += [self.i_stream.ready.eq(en), self.o_stream.valid.eq(o_valid)]
        with m.If(en & self.i_stream.valid):
            m.d.sync += fold.eq(Mux(fold == self.folds - 1, 0, fold + 1))
        return m


class ThresholdUnit(_ChannelUnit):
    """Multi-threshold activation: ``out = levels[#{t : acc >= thresholds[c, t]}]``.

    Parameters
    ----------
    activation : gen.ir.MultiThreshold
        Thresholds (channels or 1 rows, sorted), levels and output type.
    channels : int
        Number of output channels.
    pe : int
        Channels per beat.
    acc_range : tuple[int, int]
        Range of the accumulators (thresholds beyond it are clamped; results do not change).

    Members
    -------
    latency : int
        1 (compare and count, then a register).
    """

    latency = 1

    def __init__(self, *, activation: MultiThreshold, channels: int, pe: int, acc_range):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        if not isinstance(activation, MultiThreshold):
            raise TypeError(f"Activation must be a MultiThreshold, not {type(activation).__name__}")
        t = np.asarray(activation.thresholds, dtype=np.int64)
        if t.ndim != 2 or t.shape[0] not in (1, channels):
            raise ValueError(f"Thresholds must have shape ({channels}, T) or (1, T), not {t.shape}")
        self._activation = activation
        super().__init__(channels=channels, pe=pe, acc_range=acc_range,
                         out_dtype=activation.out_dtype)
        lo, hi = self.acc_range
        t = np.clip(t, lo, hi + 1)
        self._thresholds = np.broadcast_to(t, (channels, t.shape[1]))

    activation = property(lambda self: self._activation)

    def build(self, m, pipe: StallPipeline, accs: list, fold: Value) -> list:
        """Output codes of ``accs`` (PE accumulator values of channel fold ``fold``)."""
        lo, hi = self.acc_range
        tshape = signed(max(bits_for_range(lo, hi + 1)[0] + 1, 2))
        levels = self._activation.levels
        codes = [int(c) for c in self._out_dtype.encode(levels)]
        cw = self._out_dtype.code_width
        table = Array([Const(c, unsigned(cw)) for c in codes])
        out = []
        for p, acc in enumerate(accs):
            rows = self._thresholds[p::self._pe]                       # (folds, T)
            hits = [acc >= fold_table(rows[:, k], fold, tshape) for k in range(rows.shape[1])]
            count = sum(hits[1:], hits[0].as_unsigned()) if len(hits) > 1 else hits[0]
            out.append(pipe.reg(m, table[count], name=f"thr_out{p}"))
        return out


class RequantUnit(_ChannelUnit):
    """Integer requantization: ``out = clip(round_shift(acc · multiplier[c], shift), *clip)``,
    rounding as :func:`sim.golden.round_shift` (floor, ceil, half-up, half-even).

    Parameters
    ----------
    activation : gen.ir.Requant
    channels, pe, acc_range
        As for :class:`ThresholdUnit`.

    Members
    -------
    latency : int
        2 (the product, then rounding and clipping).
    """

    latency = 2

    def __init__(self, *, activation: Requant, channels: int, pe: int, acc_range):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        if not isinstance(activation, Requant):
            raise TypeError(f"Activation must be a Requant, not {type(activation).__name__}")
        mult = np.asarray(activation.multiplier, dtype=np.int64).reshape(-1)
        if mult.shape[0] not in (1, channels):
            raise ValueError(f"Multipliers must have {channels} entries, not {mult.shape[0]}")
        if activation.rounding not in ROUNDINGS:
            raise ValueError(f"Rounding must be floor, ceil, half-up or half-even, "
                             f"not {activation.rounding!r}")
        if activation.shift < 0:
            raise ValueError(f"Shift must be non-negative, not {activation.shift}")
        self._activation = activation
        self._mult = np.broadcast_to(mult, (channels,))
        super().__init__(channels=channels, pe=pe, acc_range=acc_range,
                         out_dtype=activation.out_dtype)

    activation = property(lambda self: self._activation)

    def build(self, m, pipe: StallPipeline, accs: list, fold: Value) -> list:
        act = self._activation
        s = act.shift
        mlo, mhi = int(self._mult.min()), int(self._mult.max())
        mshape = signed(max(bits_for_range(min(mlo, 0), max(mhi, 0))[0] + 1, 2))
        clo, chi = act.clip
        cw = self._out_dtype.code_width
        out = []
        for p, acc in enumerate(accs):
            mult = fold_table(self._mult[p::self._pe], fold, mshape)
            prod = pipe.reg(m, acc * mult, name=f"rq_prod{p}")
            q = prod >> s
            if s:
                rem = prod[:s]
                half = 1 << (s - 1)
                if act.rounding == "ceil":
                    q = q + (rem != 0)
                elif act.rounding == "half-up":
                    q = q + rem[s - 1]
                elif act.rounding == "half-even":
                    q = q + ((rem > half) | ((rem == half) & q[0]))
            clipped = Mux(q < clo, Const(clo, signed(max(2, bits_for_range(clo, chi)[0] + 1))),
                          Mux(q > chi, chi, q))
            out.append(pipe.reg(m, clipped[:cw], name=f"rq_out{p}"))
        return out
