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
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dtypes import DType, bits_for_range
from .params import ROUNDINGS, MultiThreshold, Requant
from .pipeline import StallPipeline
from .trees import adder_tree

__all__ = ["ThresholdUnit", "RequantUnit", "acc_shape", "fold_table", "THRESHOLD_MODES",
           "SEARCH_ABOVE"]

#: How a :class:`ThresholdUnit` compares: ``"parallel"`` (all thresholds at once), ``"search"``
#: (a binary search, one threshold per pipeline stage) or ``"auto"`` (search above
#: :data:`SEARCH_ABOVE` thresholds).
THRESHOLD_MODES = ("auto", "parallel", "search")
SEARCH_ABOVE = 15
#: Search-stage tables with more entries than this are ROMs rather than multiplexers of constants.
ROM_ABOVE = 64


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

    Two exact datapaths:

    - ``"parallel"``: T comparators per PE (each threshold looked up by channel fold); with
      T > 1 their hits are registered, then counted, the count mapped to its level and
      registered (latency 2, so that no path holds both a comparator's carry chain and the
      count); with T = 1 the one hit selects the level, registered (latency 1).
    - ``"search"``: a binary search over the channel's sorted thresholds, one pipeline stage per
      bit of the count (``S = ceil(log2(T + 1))`` stages, MSB first). Stage ``s`` compares the
      accumulator with the single threshold selected by the channel fold and the ``s`` count bits
      decided so far (a table of ``folds · 2^s`` entries) and registers the accumulator, the fold
      and the new count bits; the last stage registers the level instead. The thresholds are
      padded to ``2^S - 1`` with a value above the accumulator's maximum (never reached), so
      duplicates and any T give exactly the count of reached thresholds. Latency ``S``.

    Parameters
    ----------
    activation : hw.params.MultiThreshold
        Thresholds (channels or 1 rows, sorted), levels and output type.
    channels : int
        Number of output channels.
    pe : int
        Channels per beat.
    acc_range : tuple[int, int]
        Range of the accumulators (thresholds beyond it are clamped; results do not change).
    threshold_mode : str
        ``"parallel"``, ``"search"`` or ``"auto"`` (search when T > :data:`SEARCH_ABOVE`).

    Members
    -------
    mode : str
        The datapath chosen, ``"parallel"`` or ``"search"``.
    latency : int
        In parallel mode 2 (1 with a single threshold), in search mode ``ceil(log2(T + 1))``
        (at least 1).
    """

    def __init__(self, *, activation: MultiThreshold, channels: int, pe: int, acc_range,
                 threshold_mode: str = "auto"):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        if not isinstance(activation, MultiThreshold):
            raise TypeError(f"Activation must be a MultiThreshold, not {type(activation).__name__}")
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"Threshold mode must be auto, parallel or search, "
                             f"not {threshold_mode!r}")
        t = np.asarray(activation.thresholds, dtype=np.int64)
        if t.ndim != 2 or t.shape[0] not in (1, channels):
            raise ValueError(f"Thresholds must have shape ({channels}, T) or (1, T), not {t.shape}")
        self._activation = activation
        super().__init__(channels=channels, pe=pe, acc_range=acc_range,
                         out_dtype=activation.out_dtype)
        lo, hi = self.acc_range
        # the count of reached thresholds does not depend on their order: sorting is exact
        t = np.sort(np.clip(t, lo, hi + 1), axis=1)
        self._thresholds = np.broadcast_to(t, (channels, t.shape[1]))
        if threshold_mode == "auto":
            threshold_mode = "search" if t.shape[1] > SEARCH_ABOVE else "parallel"
        self._mode = threshold_mode

    activation = property(lambda self: self._activation)
    mode = property(lambda self: self._mode)

    @property
    def search_stages(self) -> int:
        """Stages of the binary search: ``ceil(log2(T + 1))``, at least 1."""
        return max(1, int(self._thresholds.shape[1]).bit_length())

    @property
    def latency(self) -> int:
        if self._mode == "parallel":
            return 1 if self._thresholds.shape[1] <= 1 else 2
        return self.search_stages

    def _level_table(self):
        codes = [int(c) for c in self._out_dtype.encode(self._activation.levels)]
        cw = self._out_dtype.code_width
        return Array([Const(c, unsigned(cw)) for c in codes])

    def _tshape(self):
        lo, hi = self.acc_range
        return signed(max(bits_for_range(lo, hi + 1)[0] + 1, 2))

    def build(self, m, pipe: StallPipeline, accs: list, fold: Value, fold_early=None) -> list:
        """Output codes of ``accs`` (PE accumulator values of channel fold ``fold``).

        ``fold_early``: the fold index one pipeline stage before ``fold`` (where the caller has
        it): the thresholds are then looked up from it and registered, so that the compares
        start from flip-flops rather than from a multiplexer of constants."""
        if self._mode == "search":
            return self._build_search(m, pipe, accs, fold)
        tshape = self._tshape()
        table = self._level_table()
        out = []

        bit_regs: dict = {}   # a bit column's values over the folds -> its flip-flop

        def threshold(values):
            if fold_early is None or len(set(int(v) for v in values)) == 1:
                return fold_table(values, fold, tshape)
            # registered bit by bit: a bit that is the same in every fold is a constant, and
            # bits with the same column of values (in any threshold of any PE) share a register
            w = tshape.width
            codes = [int(v) % (1 << w) for v in values]
            bits = []
            for b in range(w):
                col = tuple((c >> b) & 1 for c in codes)
                if len(set(col)) == 1:
                    bits.append(Const(col[0], 1))
                    continue
                if col not in bit_regs:
                    bit_regs[col] = pipe.reg(m, fold_table(col, fold_early, unsigned(1)),
                                             name=f"thr_bit{len(bit_regs)}")
                bits.append(bit_regs[col])
            return Cat(*bits).as_signed()

        for p, acc in enumerate(accs):
            rows = self._thresholds[p::self._pe]                       # (folds, T)
            hits = [acc >= threshold(rows[:, k]) for k in range(rows.shape[1])]
            if len(hits) > 1:
                hits = [pipe.reg(m, h, name=f"thr_hit{p}_{k}") for k, h in enumerate(hits)]
            count = _tree_sum(hits)
            out.append(pipe.reg(m, table[count], name=f"thr_out{p}"))
        return out

    def _build_search(self, m, pipe: StallPipeline, accs: list, fold: Value) -> list:
        lo, hi = self.acc_range
        S = self.search_stages
        n = (1 << S) - 1
        ch, T = self._thresholds.shape
        padded = np.full((ch, n), hi + 1, dtype=np.int64)   # never reached: acc <= hi
        padded[:, :T] = self._thresholds
        tshape = self._tshape()
        table = self._level_table()
        accs = list(accs)
        prefixes = [None] * len(accs)          # count bits decided so far, MSB first
        out = []
        for s in range(S):
            # candidate count c = (prefix·2 + 1)·2^(S-1-s) is reached iff acc >= sorted[c - 1]
            cols = [(((q << 1) | 1) << (S - 1 - s)) - 1 for q in range(1 << s)]
            last = s == S - 1
            for p, acc in enumerate(accs):
                vals = padded[p::self._pe][:, cols]                       # (folds, 2^s)
                thr = _stage_table(m, vals, fold, prefixes[p], tshape, name=f"thr_rom{p}_s{s}")
                bit = acc >= thr
                prefix = bit if prefixes[p] is None else Cat(bit, prefixes[p])
                if last:
                    out.append(pipe.reg(m, table[prefix], name=f"thr_out{p}"))
                else:
                    prefixes[p] = pipe.reg(m, prefix, name=f"thr_s{s + 1}_bits{p}")
                    accs[p] = pipe.reg(m, acc, name=f"thr_s{s + 1}_acc{p}")
            if not last and self.folds > 1:
                fold = pipe.reg(m, fold, name=f"thr_s{s + 1}_fold")
        return out


def _tree_sum(values: list) -> Value:
    """Sum of 1-bit values as a balanced tree (a chain of T adds is T deep: the simulator's
    compiler recurses through it)."""
    values = [Value.cast(v).as_unsigned() for v in values]
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _stage_table(m, vals: np.ndarray, fold: Value, prefix, shape, *, name: str):
    """``vals[fold, prefix]`` as hardware (``vals`` of shape (folds, 2^s), ``prefix`` of s bits
    or None for s = 0): a constant, a lookup by fold or by prefix only when the other does not
    matter, else a lookup by both (index ``fold·2^s + prefix``). Lookups of more than
    :data:`ROM_ABOVE` entries are asynchronous-read ROMs (an ``Array`` of thousands of constants
    takes Amaranth minutes to convert)."""
    flat = [int(v) for v in vals.reshape(-1)]
    if len(set(flat)) == 1:
        return Const(flat[0], shape)
    by_fold = vals.shape[0] > 1 and not (vals == vals[:1]).all()
    by_prefix = prefix is not None and not (vals == vals[:, :1]).all()
    if not by_prefix:
        entries, index = [int(v) for v in vals[:, 0]], fold
    elif not by_fold:
        entries, index = [int(v) for v in vals[0]], prefix
    else:
        entries, index = flat, Cat(prefix, fold)
    if len(entries) <= ROM_ABOVE:
        return Array([Const(v, shape) for v in entries])[index]
    rom = memory.Memory(shape=shape, depth=len(entries), init=entries)
    m.submodules[name] = rom
    port = rom.read_port(domain="comb")
    m.d.comb += port.addr.eq(index)
    return port.data


class RequantUnit(_ChannelUnit):
    """Integer requantization: ``out = clip(round_shift(acc · multiplier[c], shift), *clip)``,
    rounding as :func:`sim.golden.round_shift` (floor, ceil, half-up, half-even).

    Parameters
    ----------
    activation : hw.params.Requant
    channels, pe, acc_range
        As for :class:`ThresholdUnit`.

    Members
    -------
    latency : int
        ``levels + 2``: the accumulator and the channel's multiplier registered, the product as a
        tree of its partial products (one per multiplier bit that some channel sets) with a
        register after every adder level (``levels``, :attr:`product_levels`), then rounding and
        clipping. No path holds more than one carry chain: the product is the clock limit of a
        requantizing unit otherwise (one stage: 71-80 MHz on ECP5).
    """

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
        mlo, mhi = int(self._mult.min()), int(self._mult.max())
        self._mshape = signed(max(bits_for_range(min(mlo, 0), max(mhi, 0))[0] + 1, 2))
        groups = [[int(v) for v in self._mult[p::pe]] for p in range(pe)]
        #: per PE: the same multiplier for every channel (its partial products are constant)
        self._constant = [len(set(g)) == 1 for g in groups]
        self._terms = [self._product_terms(g, c) for g, c in zip(groups, self._constant, strict=True)]
        self.product_levels = max(0, max((len(t) - 1).bit_length() for t in self._terms))
        self.latency = self.product_levels + 2

    @staticmethod
    def _product_terms(values: list[int], constant: bool) -> list[tuple[int, int]]:
        """``[(bit, sign)]``: the partial products of a PE's multiplier, one per bit of its
        two's complement code (:attr:`_mshape`) that some channel of the PE sets; ``sign`` -1
        for the sign bit. A multiplier that is the same for every channel of the PE is a
        constant: its partial products are the set bits of ``|m|``, with the sign of ``m``."""
        if constant:
            c = values[0]
            return [(i, -1 if c < 0 else 1) for i in range(abs(c).bit_length()) if abs(c) >> i & 1]
        if min(values) >= 0:
            return [(i, 1) for i in range(max(values).bit_length()) if any(v >> i & 1 for v in values)]
        w = max(max(values).bit_length(), (-min(values) - 1).bit_length()) + 1   # two's complement
        codes = [v % (1 << w) for v in values]
        return [(i, -1 if i == w - 1 else 1) for i in range(w) if any(c >> i & 1 for c in codes)]

    activation = property(lambda self: self._activation)

    def build(self, m, pipe: StallPipeline, accs: list, fold: Value, fold_early=None) -> list:
        act = self._activation
        s = act.shift
        clo, chi = act.clip
        cw = self._out_dtype.code_width
        out = []
        for p, acc in enumerate(accs):
            values, terms = self._mult[p::self._pe], self._terms[p]
            # stage 1: the accumulator (and its negation, for a negative partial product) and
            # the channel's multiplier
            lo, hi = self.acc_range
            a = pipe.reg(m, acc, name=f"rq_a{p}")
            na = pipe.reg(m, -acc, name=f"rq_na{p}") if any(sg < 0 for _, sg in terms) else None
            ranges = {1: (lo, hi), -1: (-hi, -lo)}
            if self._constant[p]:
                parts = [(na if sg < 0 else a, i, *ranges[sg]) for i, sg in terms]
            else:
                mult = pipe.reg(m, fold_table(values, fold, self._mshape), name=f"rq_m{p}")
                parts = [(Mux(mult[i], na if sg < 0 else a, 0), i, min(0, ranges[sg][0]), max(0, ranges[sg][1]))
                         for i, sg in terms]
            # the partial products summed, a register after every adder level; the product's
            # bits that rounding does not look at are not kept
            lsb = {"floor": s, "half-up": max(0, s - 1)}.get(act.rounding, 0)
            prod = adder_tree(m, pipe, parts or [Const(0, 1)], depth=self.product_levels,
                              name=f"rq_prod{p}", lsb=lsb)
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
