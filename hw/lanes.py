"""MAC lanes: a SIMD-wide partial dot product for every MAC kind.

A lane takes ``simd`` activation codes and ``simd`` weight codes (packed, element 0 in the LSBs,
codes as :meth:`hw.dtypes.DType.encode` makes them) and computes ``Σ a_j·w_j`` (or
``-Σ|a_j - (w_j << shift)|`` for ``adder``) exactly as :func:`sim.golden.dot` does.

=========  =====================================================================================
kind       datapath
=========  =====================================================================================
xnor       XNOR merged into the first level of a compressor-tree popcount; ``2·pc - simd``
and        SI-BNN: ``2·popcount(a ∧ w⁺) - popcount(a)``; the second popcount does not depend on
           the weights, so a matrix-vector unit computes it once for all its PEs
ternary    add, subtract or skip; with activations of magnitude <= 1 two popcounts (STTN)
onehot     ``mode="shift"``: exponent addition and a shift, then an adder tree;
           ``mode="counters"``: one pair of popcounts per exponent sum, folded at the end
int        an ordinary multiplier per element and an adder tree (the baseline)
adder      sum of absolute differences ``-Σ|a - (w << shift)|``
=========  =====================================================================================

Each lane is a stream component, and its datapath is also available as :meth:`Lane.build`, which
the matrix-vector unit calls for each of its PEs under its own pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .dtypes import DType, signed_width
from .pipeline import StallPipeline
from .trees import POPCOUNT_STYLES, adder_tree, exact_width, popcount, shape_range

__all__ = ["Lane", "LaneResult", "ONEHOT_MODES", "MAC_KINDS", "element_value", "lane_term_range", "term_levels",
           "signed_width", "MAC_DTYPES", "exact_width"]

ONEHOT_MODES = ("shift", "counters")

#: Which weight and activation encodings each lane datapath takes ("uint1": 1-bit unsigned
#: activations); the MAC-kind registry (:mod:`gen.macs`) reads its type rules from here.
MAC_DTYPES = {
    "xnor": ({"bipolar"}, {"bipolar"}),
    "and": ({"bipolar"}, {"uint1"}),
    "ternary": ({"ternary", "bipolar"}, {"uint", "int", "ternary", "bipolar"}),
    "onehot": ({"onehot"}, {"onehot", "uint"}),
    "int": ({"int", "uint", "ternary"}, {"uint", "int", "ternary"}),
    "adder": ({"int", "uint"}, {"uint", "int"}),
}
MAC_KINDS = tuple(MAC_DTYPES)


def lane_term_range(kind: str, w_dtype: DType, a_dtype: DType, w_shift: int = 0) -> tuple[int, int]:
    """Exact range of one term ``a·w`` (or ``-|a - (w << shift)|``) over all legal values."""
    avs = (a_dtype.min, a_dtype.max)
    wvs = (w_dtype.min, w_dtype.max)
    if kind == "adder":
        worst = max(abs(a - (w << w_shift)) for a in avs for w in wvs)
        lo_w, hi_w = w_dtype.min << w_shift, w_dtype.max << w_shift
        best = max(0, a_dtype.min - hi_w, lo_w - a_dtype.max)
        return -worst, -best
    prods = [a * w for a in avs for w in wvs]
    return min(prods), max(prods)


def term_levels(kind: str, w_dtype: DType, a_dtype: DType, onehot_mode: str = "shift") -> int:
    """Levels of logic (a LUT, or a short carry chain, each) that make a lane's terms before its
    reduction tree (:func:`hw.trees.adder_tree`'s ``pre_levels``), 0 where they merge into the
    tree's first counters (xnor, and, ternary on magnitude-1 inputs, onehot counters): ternary
    ``a``/``~a``/0 one LUT; onehot shift a shift (and a negation when the activation's sign is
    data; with onehot activations the exponents' sum first); adder ``|a - w|`` a subtraction
    each way and a select; int the partial products of the weight's bits and their sum."""
    if kind == "ternary":
        return 0 if max(abs(a_dtype.min), abs(a_dtype.max)) <= 1 else 1
    if kind == "onehot":
        if onehot_mode == "counters":
            return 0
        if a_dtype.encoding == "onehot":   # the exponents' sum, its decode (and a negation)
            return 3 if a_dtype.signed else 2
        return 1
    if kind == "adder":
        return 2
    if kind == "int":   # the partial products (an AND each), then their sum per element
        return 1 + max(0, (w_dtype.code_width - 1).bit_length())
    return 0


def element_value(code: Value, dtype: DType) -> Value:
    """The value of one element code, as an Amaranth value (signed unless it cannot be negative).

    Onehot codes are expanded to ``±2^e`` (used by the ``ternary`` and ``int`` kinds only)."""
    if dtype.encoding == "bipolar":
        return Mux(code[0], Const(1, signed(2)), Const(-1, signed(2)))
    if dtype.encoding == "uint":
        return code.as_unsigned()
    if dtype.encoding in ("int", "ternary"):
        return code.as_signed()
    eb = dtype.exp_bits
    mag = Mux(code[eb], Const(1, unsigned(dtype.bits)) << code[:eb], 0)
    if dtype.signed:
        return Mux(code[eb + 1], -mag, mag)
    return mag


@dataclass(frozen=True)
class LaneResult:
    """What :meth:`Lane.build` returns: the lane's value is
    ``offset + neg_weights · n ± (raw << shift)``, ``n`` the number of negative weights among
    the lane's SIMD weights.

    Keeping the affine part out of the lane lets an accumulator fold ``offset`` into its initial
    value and add or subtract ``raw`` directly; a unit whose weights are constants folds the
    per-row sum of ``neg_weights · n`` into it too (the ternary kind's ``-a = ~a + 1``: the
    ``+ 1`` of every negated term is counted there, not by a carry chain per term).
    """

    raw: Value
    negate: bool
    shift: int
    offset: int
    neg_weights: int = 0


class Lane(wiring.Component):
    """A SIMD-wide partial dot product of one MAC kind.

    Parameters
    ----------
    kind : str
        One of ``xnor``, ``and``, ``ternary``, ``onehot``, ``int``, ``adder``.
    simd : int
        Number of elements per beat.
    w_dtype, a_dtype : DType
        Weight and activation element types.
    w_shift : int
        ``adder`` only: the weights are used as ``w << w_shift``.
    depth : int
        Pipeline registers in the reduction tree (the lane's latency).
    onehot_mode : str
        ``onehot`` only: ``"shift"`` or ``"counters"``.
    popcount_style : str
        How popcounts are built: ``"gpc6"`` (LUT6 families), ``"fa"`` or ``"carry"`` (LUT4
        families); the target family (:mod:`gen.targets`) gives the best one per Yosys family. The
        value and latency do not depend on it.

    Members
    -------
    i_stream : In(stream.Signature(data.StructLayout({"a": ..., "w": ...})))
        Packed activation and weight codes.
    o_stream : Out(stream.Signature(signed(value_width)))
        The partial dot product.
    latency : int
        Cycles from input to output (equal to ``depth``).
    value_range : tuple[int, int]
        Exact range of the output.

    Raises
    ------
    ValueError
        On an unknown kind, a type the kind does not take, or a bad parameter.
    """

    def __init__(self, *, kind: str, simd: int, w_dtype: DType, a_dtype: DType, w_shift: int = 0,
                 depth: int = 0, onehot_mode: str = "shift", popcount_style: str = "gpc6"):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        if kind not in MAC_KINDS:
            raise ValueError(f"MAC kind must be one of {', '.join(MAC_KINDS)}, not {kind!r}")
        w_ok, a_ok = MAC_DTYPES[kind]
        if w_dtype.encoding not in w_ok:
            raise ValueError(f"MAC kind {kind!r} takes weights {' or '.join(sorted(w_ok))}, "
                             f"not {w_dtype}")
        a_name = "uint1" if (a_dtype.encoding == "uint" and a_dtype.bits == 1) else a_dtype.encoding
        if a_name not in a_ok and not (a_name == "uint1" and "uint" in a_ok):
            raise ValueError(f"MAC kind {kind!r} takes activations {' or '.join(sorted(a_ok))}, "
                             f"not {a_dtype}")
        if not isinstance(simd, int) or simd < 1:
            raise ValueError(f"SIMD must be a positive integer, not {simd!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"Pipeline depth must be a non-negative integer, not {depth!r}")
        if w_shift and kind != "adder":
            raise ValueError(f"Only adder lanes take a weight shift, not {kind!r}")
        if w_shift < 0:
            raise ValueError(f"Weight shift must be non-negative, not {w_shift}")
        if onehot_mode not in ONEHOT_MODES:
            raise ValueError(f"Onehot mode must be shift or counters, not {onehot_mode!r}")
        if popcount_style not in POPCOUNT_STYLES:
            raise ValueError(f"Popcount style must be gpc6, fa or carry, not {popcount_style!r}")
        self._popcount_style = popcount_style
        self._kind, self._simd, self._depth = kind, simd, depth
        self._w_dtype, self._a_dtype, self._w_shift = w_dtype, a_dtype, w_shift
        self._onehot_mode = onehot_mode
        tlo, thi = lane_term_range(kind, w_dtype, a_dtype, w_shift)
        self._range = (simd * tlo, simd * thi)
        self._MustUse__silence = False
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({
                "a": unsigned(simd * a_dtype.code_width),
                "w": unsigned(simd * w_dtype.code_width)}))),
            "o_stream": Out(stream.Signature(signed(signed_width(*self._range)))),
        })

    kind = property(lambda self: self._kind)
    simd = property(lambda self: self._simd)
    depth = property(lambda self: self._depth)
    w_dtype = property(lambda self: self._w_dtype)
    a_dtype = property(lambda self: self._a_dtype)
    w_shift = property(lambda self: self._w_shift)
    onehot_mode = property(lambda self: self._onehot_mode)
    popcount_style = property(lambda self: self._popcount_style)
    latency = property(lambda self: self._depth)
    value_range = property(lambda self: self._range)

    @property
    def term_levels(self) -> int:
        """:func:`term_levels` of this lane."""
        return term_levels(self._kind, self._w_dtype, self._a_dtype, self._onehot_mode)

    @property
    def shares_activation_count(self) -> bool:
        """True when :meth:`build` can take a shared ``popcount(a)`` (the ``and`` kind)."""
        return self._kind == "and"

    def _elements(self, vec: Value, dtype: DType) -> list[Value]:
        cw = dtype.code_width
        return [vec[j * cw:(j + 1) * cw] for j in range(self._simd)]

    def activation_count(self, m, pipe: StallPipeline, a: Value, *, name: str = "acnt") -> Value:
        """``popcount(a)`` with the lane's latency: the ``and`` kind's weight-free term."""
        return popcount(m, pipe, a, depth=self._depth, style=self._popcount_style,
                        name=name)

    def build(self, m, pipe: StallPipeline, a: Value, w: Value, *, a_count: Value | None = None,
              name: str = "lane") -> LaneResult:
        """Build the datapath in module ``m``; registers load on ``pipe.en``.

        ``a`` and ``w`` are the packed codes; after :attr:`latency` stages the lane's value is
        ``offset ± (raw << shift)`` as the returned :class:`LaneResult` says. ``a_count`` (``and``
        only) is a ``popcount(a)`` already delayed by the latency, shared between lanes.
        """
        kind, d = self._kind, self._depth
        A = self._elements(a, self._a_dtype)
        W = self._elements(w, self._w_dtype)
        if kind == "xnor":
            pairs = [(x[0], y[0]) for x, y in zip(A, W, strict=True)]
            pc = popcount(m, pipe, pairs, depth=d, op="xnor", style=self._popcount_style,
                          name=f"{name}_pc")
            return LaneResult(pc, False, 1, -self._simd)
        if kind == "and":
            pairs = [(x[0], y[0]) for x, y in zip(A, W, strict=True)]
            pc = popcount(m, pipe, pairs, depth=d, op="and", style=self._popcount_style,
                          name=f"{name}_pc")
            if a_count is None:
                a_count = self.activation_count(m, pipe, a, name=f"{name}_acnt")
            return LaneResult((pc << 1) - a_count, False, 0, 0)
        if kind == "ternary":
            return self._build_ternary(m, pipe, A, W, name)
        if kind == "onehot":
            if self._onehot_mode == "counters":
                return self._build_onehot_counters(m, pipe, A, W, name)
            return self._build_onehot_shift(m, pipe, A, W, name)
        pre = self.term_levels
        tlo, thi = lane_term_range(kind, self._w_dtype, self._a_dtype, self._w_shift)
        if kind == "int":
            return self._build_int(m, pipe, A, W, name)
        # adder: |a - w| as a select between a - w and w - a, two carry chains side by side
        terms = []
        for x, y in zip(A, W, strict=False):
            av = element_value(x, self._a_dtype)
            wv = element_value(y, self._w_dtype) << self._w_shift
            diff = av - wv
            terms.append(exact_width(Mux(diff[-1], wv - av, diff), -thi, -tlo))   # |a - w|
        return LaneResult(adder_tree(m, pipe, terms, depth=d, name=f"{name}_add", pre_levels=pre),
                          True, 0, 0)

    def _build_ternary(self, m, pipe, A, W, name):
        adt = self._a_dtype

        w_parts = self._ternary_parts

        if max(abs(adt.min), abs(adt.max)) <= 1:
            pos, neg = [], []
            for x, y in zip(A, W, strict=False):
                wnz, wneg = w_parts(y)
                if adt.encoding == "bipolar":
                    anz, aneg = Const(1, 1), ~x[0]
                elif adt.encoding == "uint":
                    anz, aneg = x[0], Const(0, 1)
                else:  # ternary or int of 2 bits: two's complement
                    anz, aneg = x[0] | x[1], x[1]
                nz = wnz & anz
                pos.append(nz & ~(wneg ^ aneg))
                neg.append(nz & (wneg ^ aneg))
            p = popcount(m, pipe, pos, depth=self._depth, style=self._popcount_style,
                         name=f"{name}_pos")
            n = popcount(m, pipe, neg, depth=self._depth, style=self._popcount_style,
                         name=f"{name}_neg")
            return LaneResult(p - n, False, 0, 0)
        # w·a for w in {-1, 0, +1}: a, 0, or ~a = -a - 1 (one LUT per bit, no carry chain); the
        # -1 of every negative weight comes back as LaneResult.neg_weights
        tlo, thi = lane_term_range("ternary", self._w_dtype, adt)
        terms = []
        for x, y in zip(A, W, strict=False):
            wnz, wneg = w_parts(y)
            av = Value.cast(element_value(x, adt))
            if not av.shape().signed:
                av = Cat(av, Const(0, 1)).as_signed()
            flipped = (av.as_unsigned() ^ wneg.replicate(len(av))).as_signed()
            terms.append(exact_width(Mux(wnz, flipped, 0), tlo - 1, thi))
        return LaneResult(adder_tree(m, pipe, terms, depth=self._depth, name=f"{name}_add",
                                     pre_levels=self.term_levels), False, 0, 0, neg_weights=1)

    def _build_int(self, m, pipe, A, W, name):
        """``a · w`` as the partial products of the weight's code bits, fed to the reduction
        tree with every other term (no multiplier of its own, whose carry chains in a row were
        the int kind's clock limit): bit ``i`` adds ``a << i``; a signed weight's sign bit adds
        ``~a << (n - 1)`` (``-a - 1``), and the ``2^(n-1)`` of every negative weight comes back
        as :attr:`LaneResult.neg_weights`."""
        wdt = self._w_dtype
        n, signed_w = wdt.code_width, wdt.encoding in ("int", "ternary")
        terms = []
        for x, y in zip(A, W, strict=False):
            av = Value.cast(element_value(x, self._a_dtype))
            sg = av.shape().signed
            alo, ahi = shape_range(av)
            for i in range(n):
                if signed_w and i == n - 1:   # ~a = -a - 1, a signed value
                    sa = av if sg else Cat(av, Const(0, 1)).as_signed()
                    terms.append((Mux(y[i], (~sa.as_unsigned()).as_signed(), 0), i, min(0, -ahi - 1),
                                  max(0, -alo - 1)))
                else:
                    terms.append((Mux(y[i], av, 0), i, min(0, alo), max(0, ahi)))
        raw = adder_tree(m, pipe, terms, depth=self._depth, name=f"{name}_add", pre_levels=1)
        return LaneResult(raw, False, 0, 0, neg_weights=(1 << (n - 1)) if signed_w else 0)

    def _ternary_parts(self, y):
        """(nonzero, negative) of a ternary kind's weight code ``y`` (bipolar or ternary)."""
        if self._w_dtype.encoding == "bipolar":
            return Const(1, 1), ~y[0]
        return y[0] | y[1], y[1]

    def negative_weights(self, w: Value) -> list[Value]:
        """One bit per SIMD weight of ``w`` (packed codes): the weight is negative (the count
        :attr:`LaneResult.neg_weights` is of; ternary and onehot kinds)."""
        if self._kind == "onehot":
            return [p[1] & p[2] for p in (self._onehot_parts(y, self._w_dtype)
                                         for y in self._elements(w, self._w_dtype))]
        if self._kind == "int":   # the sign bit of a two's complement code
            return [y[-1] for y in self._elements(w, self._w_dtype)]
        return [self._ternary_parts(y)[1] for y in self._elements(w, self._w_dtype)]

    def _onehot_parts(self, y, dt):
        eb = dt.exp_bits
        neg = y[eb + 1] if dt.signed else Const(0, 1)
        return y[:eb], y[eb], neg

    def _build_onehot_shift(self, m, pipe, A, W, name):
        adt, wdt = self._a_dtype, self._w_dtype
        tlo, thi = lane_term_range("onehot", wdt, adt)
        terms = []
        for x, y in zip(A, W, strict=False):
            we, wnz, wneg = self._onehot_parts(y, wdt)
            if adt.encoding == "onehot":
                ae, anz, aneg = self._onehot_parts(x, adt)
                mag = Mux(wnz & anz, Const(1, unsigned(adt.bits + wdt.bits)) << (ae + we), 0)
                sign = wneg ^ aneg
            else:
                mag = Mux(wnz, x.as_unsigned() << we, 0)
                sign = wneg
            mag = exact_width(mag, 0, max(abs(tlo), abs(thi)))
            if adt.encoding == "onehot" and adt.signed:   # the sign is data: negate
                terms.append(exact_width(Mux(sign, -mag, mag), tlo, thi))
            elif wdt.signed:   # the weight's sign alone: ~mag = -mag - 1, the -1 counted apart
                flip = (wneg & wnz).replicate(len(mag) + 1)
                terms.append(exact_width((Cat(mag, Const(0, 1)) ^ flip).as_signed(), tlo - 1, thi))
            else:
                terms.append(exact_width(mag, tlo, thi))
        neg = 1 if (wdt.signed and not (adt.encoding == "onehot" and adt.signed)) else 0
        return LaneResult(adder_tree(m, pipe, terms, depth=self._depth, name=f"{name}_add",
                                     pre_levels=self.term_levels), False, 0, 0, neg_weights=neg)

    def _build_onehot_counters(self, m, pipe, A, W, name):
        adt, wdt = self._a_dtype, self._w_dtype
        # per element: a list of (weight k, bit) contributions of magnitude 2^k, and a sign
        kmax = (adt.bits - 1) + (wdt.bits - 1)
        pos = {k: [] for k in range(kmax + 1)}
        neg = {k: [] for k in range(kmax + 1)}
        for x, y in zip(A, W, strict=False):
            we, wnz, wneg = self._onehot_parts(y, wdt)
            if adt.encoding == "onehot":
                ae, anz, aneg = self._onehot_parts(x, adt)
                s = ae + we
                sign = wneg ^ aneg
                for k in range(kmax + 1):
                    hit = wnz & anz & (s == k)
                    pos[k].append(hit & ~sign)
                    neg[k].append(hit & sign)
            else:
                for k in range(kmax + 1):
                    bits = [x[b] & (we == k - b) for b in range(adt.bits) if 0 <= k - b < wdt.bits]
                    for bit in bits:
                        pos[k].append(wnz & bit & ~wneg)
                        neg[k].append(wnz & bit & wneg)
        has_neg = wdt.signed or (adt.encoding == "onehot" and adt.signed)
        parts = []
        for k in range(kmax + 1):
            if not pos[k]:
                continue
            p = popcount(m, pipe, pos[k], depth=self._depth, style=self._popcount_style,
                         name=f"{name}_p{k}")
            if has_neg:
                n = popcount(m, pipe, neg[k], depth=self._depth, style=self._popcount_style,
                             name=f"{name}_n{k}")
                parts.append((p - n) << k)
            else:
                parts.append(p << k)
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return LaneResult(total, False, 0, 0)

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline("lane")
        res = self.build(m, pipe, self.i_stream.payload.a, self.i_stream.payload.w)
        raw = res.raw << res.shift
        value = res.offset + (-raw if res.negate else raw)
        if res.neg_weights:   # the weights are data here: count the negative ones
            negs = self.negative_weights(self.i_stream.payload.w)
            n = pipe.delay(m, sum(negs[1:], negs[0]) if negs else Const(0, 1), self.latency,
                           name="negw")
            value = value + res.neg_weights * n
        m.d.comb += self.o_stream.payload.eq(value)
        en, o_valid, _ = pipe.connect(m, latency=self.latency, i_valid=self.i_stream.valid,
                                      o_ready=self.o_stream.ready)
        m.d.comb += [self.i_stream.ready.eq(en), self.o_stream.valid.eq(o_valid)]
        return m
