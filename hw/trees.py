"""Reduction trees: a popcount built as a compressor tree of generalized parallel counters, and a
pipelined adder tree.

Yosys flattens a design and re-synthesises every ``+`` it sees into carry chains, so a popcount
written as a sum of bits (or as a sum of small group counts) becomes a tree of ripple adders
(about 2.2 LUT6 per input bit); written as flat logic, ABC restructures it and does no better.
Here every counter (up to six inputs) is a small submodule whose outputs are *truth tables*
(a constant indexed by the counter's inputs), named ``gpc_*``. :func:`keep_counter_hierarchy`
marks those modules ``keep_hierarchy`` in RTLIL text, so that synthesis maps each output bit of
a counter to one LUT6 instead of flattening and re-synthesising the tree. The first level can
merge the XNOR (or AND) of an activation and a weight bit into 3:2 counters (six inputs, one
LUT6 per output). Only the last two rows of the compressed columns go through a real adder.

Six-input truth tables suit LUT6 fabrics (7-series) only: on the LUT4 families each costs several
LUT4s. ``style`` chooses the tree per family (:attr:`gen.targets.Family.popcount_style`), measured on a 64-bit
XNOR popcount with Yosys 0.70 (``docs/benchmarks.md``):

=========  ==========================================================================  =======
style      tree                                                                        family
=========  ==========================================================================  =======
``gpc6``   3:2 counters with the XNOR merged (six inputs), then 6:3 counters            xilinx
``fa``     2-pair counters with the XNOR merged (four inputs), then 3:2 full adders     ecp5
           (two LUT4s each; ECP5 maps adders of up to 4 bits to LUTs, not carry cells)
``carry``  2-pair counters with the XNOR merged, then a balanced tree of ripple adders  ice40
           kept as separate modules, so each maps onto the carry chain (one LUT4 and
           one SB_CARRY per bit); leftover XNOR bits enter the adders' carry-ins
=========  ==========================================================================  =======
"""

from __future__ import annotations

import re

from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal, Value, unsigned

from .dtypes import signed_width
from .pipeline import StallPipeline, spread_registers

__all__ = ["popcount", "adder_tree", "counter_levels", "tree_depth", "LEVELS_PER_STAGE", "Counter", "CarryAdder",
           "keep_counter_hierarchy", "keep_counter_hierarchy_verilog", "exact_width", "shape_range", "COUNTER_OPS",
           "POPCOUNT_STYLES"]

COUNTER_OPS = ("none", "xnor", "and")
POPCOUNT_STYLES = ("gpc6", "fa", "carry")


def _counter_table(n: int, bit: int) -> Const:
    """Truth table of output ``bit`` of an ``n``-input counter, as a 2**n-bit constant."""
    table = 0
    for x in range(1 << n):
        if (bin(x).count("1") >> bit) & 1:
            table |= 1 << x
    return Const(table, unsigned(1 << n))


class Counter(Elaboratable):
    """An n:clog2(n+1) counter (n <= 6 inputs, after ``op``) written as truth tables.

    ``op`` is applied bitwise to ``x`` and ``y`` first: ``"none"`` (``y`` unused), ``"xnor"``
    or ``"and"``. Ports ``x``, ``y`` (n bits each) and ``o`` (the count).
    """

    def __init__(self, n: int, op: str = "none"):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        if op not in COUNTER_OPS:
            raise ValueError(f"Counter op must be none, xnor or and, not {op!r}")
        if not 1 <= n * (1 if op == "none" else 2) <= 6:
            raise ValueError(f"A counter takes 1 to 6 input signals, not {n} bits with op {op!r}")
        self._MustUse__silence = False
        self.n, self.op = n, op
        self.x = Signal(n)
        self.y = Signal(n)
        self.o = Signal(n.bit_length())

    def elaborate(self, platform):
        m = Module()
        n = self.n
        if self.op == "none":
            table_x = Cat(self.x)
            bits_per = 1
        else:
            table_x = Cat(*[Cat(self.x[i], self.y[i]) for i in range(n)])
            bits_per = 2
        k = n * bits_per
        for b in range(len(self.o)):
            table = 0
            for v in range(1 << k):
                ins = [(v >> (i * bits_per)) & ((1 << bits_per) - 1) for i in range(n)]
                if self.op == "xnor":
                    bits = [1 - ((t & 1) ^ (t >> 1)) for t in ins]
                elif self.op == "and":
                    bits = [(t & 1) & (t >> 1) for t in ins]
                else:
                    bits = ins
                if (sum(bits) >> b) & 1:
                    table |= 1 << v
            m.d.comb += self.o[b].eq(Const(table, unsigned(1 << k)).bit_select(table_x, 1))
        return m


class CarryAdder(Elaboratable):
    """``o = a + b + c`` as a submodule of its own (named ``gpc_*`` so that it is kept too).

    Kept apart, the sum stays one ``$alu`` that Yosys maps onto the carry chain, with ``c`` as
    its carry-in; flattened into a tree it would be merged with the others into a ``$macc`` and
    rebuilt from full adders in LUTs. ``o`` has ``o_width`` bits, enough for the sum's bound.
    """

    def __init__(self, a_width: int, b_width: int, o_width: int, carry_in: bool):
        self.a = Signal(a_width)
        self.b = Signal(b_width)
        self.c = Signal(1 if carry_in else 0)
        self.o = Signal(o_width)

    def elaborate(self, platform):
        m = Module()
        total = self.a + self.b + self.c if len(self.c) else self.a + self.b
        m.d.comb += self.o.eq(total)
        return m


def _counter(m, bits: list, name: str, pairs=None, op: str = "none") -> list:
    """Instantiate a :class:`Counter` submodule over ``bits`` (or over ``op`` of ``pairs``)."""
    if pairs is not None:
        c = Counter(len(pairs), op)
        m.submodules[name] = c
        m.d.comb += [c.x.eq(Cat(*[p[0] for p in pairs])), c.y.eq(Cat(*[p[1] for p in pairs]))]
    else:
        c = Counter(len(bits))
        m.submodules[name] = c
        m.d.comb += c.x.eq(Cat(*bits))
    return [c.o[b] for b in range(len(c.o))]


def keep_counter_hierarchy(rtlil_text: str) -> str:
    """Mark every counter module (``gpc_*``) of Amaranth's RTLIL output ``keep_hierarchy``.

    Synthesis then maps each counter on its own instead of flattening the compressor tree into
    arithmetic that it re-synthesises (see the module docstring). Apply it to the text from
    ``amaranth.back.rtlil.convert`` before handing it to Yosys.
    """
    return re.sub(r"^(module \\\S*\.gpc_\S*)$", r"attribute \\keep_hierarchy 1\n\1", rtlil_text,
                  flags=re.M)


def keep_counter_hierarchy_verilog(verilog_text: str) -> str:
    """Mark every counter module (``gpc_*``) of Amaranth's Verilog output ``keep_hierarchy``,
    exactly as Yosys writes the attribute of :func:`keep_counter_hierarchy`'s RTLIL (for text
    from the public ``amaranth.back.verilog.convert``)."""
    return re.sub(r"^((?:\(\*[^\n]*\*\)\n)*module \\\S*\.gpc_)", r"(* keep_hierarchy =  1  *)\n\1",
                  verilog_text, flags=re.M)


def _plan_level(heights: dict[int, int], group: int) -> list[tuple[int, int]]:
    """Counters of one compression level: a list of (column weight, number of inputs)."""
    plan = []
    for w in sorted(heights):
        h = heights[w]
        while h >= group:
            plan.append((w, group))
            h -= group
        if h >= 3:
            plan.append((w, h))
    return plan


def _apply_plan(heights: dict[int, int], plan) -> dict[int, int]:
    new = dict(heights)
    for w, n in plan:
        new[w] -= n
        for b in range((n).bit_length()):
            new[w + b] = new.get(w + b, 0) + 1
    return {w: h for w, h in new.items() if h}


def counter_levels(n: int, first_group: int = 6, group: int = 6) -> int:
    """Number of compression levels a popcount of ``n`` bits needs before its final adder, with
    counters of ``first_group`` inputs on the first level and ``group`` after it."""
    heights = {0: n} if n else {}
    levels = 0
    while heights and max(heights.values()) > 2:
        heights = _apply_plan(heights, _plan_level(heights, first_group if levels == 0 else group))
        levels += 1
    return levels


#: Levels of a reduction tree (each a counter or an adder over the terms of the level below) that
#: one pipeline stage holds, by LUT size: a LUT4 level of counters or of short adders is about a
#: LUT and a route, a LUT6 level about as much, and three of them fit the cycle of the
#: accelerator's other registered paths on 7-series.
LEVELS_PER_STAGE = {4: 2, 6: 3}


def tree_depth(width: int, lut_inputs: int, pre_levels: int = 0) -> int:
    """Pipeline registers for a reduction tree over ``width`` terms (bits of a popcount or
    terms of an adder tree) on a family of ``lut_inputs``-input LUTs: its ``ceil(log2(width))``
    levels (at least one), and the ``pre_levels`` of logic that make its terms
    (:func:`hw.lanes.term_levels`), :data:`LEVELS_PER_STAGE` to a stage."""
    if lut_inputs not in LEVELS_PER_STAGE:
        raise ValueError(f"LUT inputs must be 4 or 6, not {lut_inputs!r}")
    levels = max(1, (max(1, width) - 1).bit_length()) + max(0, pre_levels)
    return -(-levels // LEVELS_PER_STAGE[lut_inputs])


def popcount(m, pipe: StallPipeline, bits, *, depth: int = 0, op: str = "none",
             style: str = "gpc6", name: str = "pc") -> Value:
    """Number of set bits of ``bits``, with ``depth`` pipeline registers (loaded on
    ``pipe.en``).

    ``bits`` is a Value or a list of 1-bit Values; with ``op`` ``"xnor"`` or ``"and"`` it is a
    list of (x, y) pairs and the bits counted are ``op(x, y)``, merged into the counters of the
    first level (three pairs, one LUT6 per output, in style ``gpc6``; two pairs, one LUT4 per
    output, in the LUT4 styles). ``style`` is one of :data:`POPCOUNT_STYLES` (see the module
    docstring); every style computes the same value with the same latency.
    """
    if style not in POPCOUNT_STYLES:
        raise ValueError(f"Popcount style must be gpc6, fa or carry, not {style!r}")
    if isinstance(bits, Value):
        bits = [bits[i] for i in range(len(bits))]
    bits = list(bits)
    n = len(bits)
    pairs = None
    group = 6 if style == "gpc6" else 3
    first_group = group
    if op != "none":
        pairs, first_group = bits, (3 if style == "gpc6" else 2)
        fn = (lambda p: ~(p[0] ^ p[1])) if op == "xnor" else (lambda p: p[0] & p[1])
        bits = [fn(p) for p in pairs]
    if style == "carry":
        return _popcount_carry(m, pipe, bits, pairs, op, depth=depth, name=name)
    width = max(1, n.bit_length())
    levels = counter_levels(n, first_group, group)
    regs = spread_registers(levels + 1, depth)   # compression levels, then the final adder
    cols: dict[int, list] = {0: bits} if n else {}
    for lvl in range(levels):
        plan = _plan_level({w: len(c) for w, c in cols.items()},
                           first_group if lvl == 0 else group)
        new: dict[int, list] = {}
        taken: dict[int, int] = {}
        for i, (w, k) in enumerate(plan):
            start = taken.get(w, 0)
            taken[w] = start + k
            cname = f"gpc_{name}_l{lvl}_{i}"
            if lvl == 0 and pairs is not None:
                outs = _counter(m, None, cname, pairs=pairs[start:start + k], op=op)
            else:
                outs = _counter(m, cols[w][start:start + k], cname)
            for b, o in enumerate(outs):
                new.setdefault(w + b, []).append(o)
        for w, c in cols.items():
            for bit in c[taken.get(w, 0):]:
                new.setdefault(w, []).append(bit)
        cols = new
        for _r in range(regs[lvl]):
            cols = {w: [pipe.reg(m, b, name=f"{name}_l{lvl}_w{w}_{i}") for i, b in enumerate(c)]
                    for w, c in cols.items()}
    if not cols:
        total = Const(0, unsigned(1))
    else:
        top = max(cols) + 1
        rows = [Cat(*[cols[w][i] if i < len(cols.get(w, [])) else Const(0, 1)
                      for w in range(top)]) for i in range(max(len(c) for c in cols.values()))]
        total = rows[0]
        for row in rows[1:]:
            total = total + row
        total = total[:width]
    return pipe.delay(m, total, regs[-1], name=f"{name}_sum")


def _popcount_carry(m, pipe, bits, pairs, op, *, depth, name) -> Value:
    """Style ``carry``: counters of ``k`` inputs (two pairs with ``op``, else three bits) as
    leaves, a balanced tree of :class:`CarryAdder` over them, and the remaining bits as the
    adders' carry-ins. With ``t`` leaves the tree has ``t - 1`` carry-ins, so ``t`` is the
    smallest number with ``k·t + t - 1 >= n``."""
    n = len(bits)
    if n == 0:
        return pipe.delay(m, Const(0, 1), depth, name=f"{name}_sum")
    k = 2 if pairs is not None else 3
    t = max(1, -(-(n + 1) // (k + 1)))
    terms = []   # (value, maximum)
    for i in range(t):
        lo, hi = i * k, min(n, (i + 1) * k)
        if hi - lo > 1:
            if pairs is not None:
                outs = _counter(m, None, f"gpc_{name}_c{i}", pairs=pairs[lo:hi], op=op)
            else:
                outs = _counter(m, bits[lo:hi], f"gpc_{name}_c{i}")
            terms.append((Cat(*outs), hi - lo))
        elif hi > lo:
            terms.append((bits[lo], 1))
    spare = bits[t * k:]
    levels = max(0, (len(terms) - 1).bit_length())
    regs = spread_registers(1 + levels, depth)   # the leaf counters, then each adder level

    def register(lvl, terms, spare):
        for r in range(regs[lvl]):
            terms = [(pipe.reg(m, v, name=f"{name}_l{lvl}_{i}_{r}"), hi)
                     for i, (v, hi) in enumerate(terms)]
            spare = [pipe.reg(m, b, name=f"{name}_l{lvl}_s{i}_{r}") for i, b in enumerate(spare)]
        return terms, spare

    terms, spare = register(0, terms, spare)
    for lvl in range(levels):
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            (a, ha), (b, hb) = terms[i], terms[i + 1]
            c = spare.pop(0) if spare else None
            hi = ha + hb + (c is not None)
            add = CarryAdder(len(a), len(b), hi.bit_length(), c is not None)
            m.submodules[f"gpc_{name}_a{lvl}_{i // 2}"] = add
            m.d.comb += [add.a.eq(a), add.b.eq(b)]
            if c is not None:
                m.d.comb += add.c.eq(c)
            nxt.append((add.o, hi))
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, spare = register(1 + lvl, nxt, spare)
    assert not spare
    value, hi = terms[0]
    return Value.cast(value)[:max(1, hi.bit_length())]


def _shifted(v: Value, k: int) -> Value:
    return v << k if k else v


def exact_width(term, lo: int, hi: int) -> Value:
    """``term`` cut to the width its range ``[lo, hi]`` needs: signed for a range with negative
    values, else unsigned. A registered term then has no flip-flop that only repeats its sign
    (Yosys would merge those, and the register count of the RTL would overstate it)."""
    term = Value.cast(term)
    if lo < 0:
        w = signed_width(lo, hi)
        return term.as_signed()[:w].as_signed() if len(term) > w else term
    w = max(1, int(hi).bit_length())
    return term[:w] if len(term) > w else term


def shape_range(v: Value) -> tuple[int, int]:
    """The range of values of ``v``'s shape."""
    w, sg = len(v), v.shape().signed
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if sg else (0, (1 << w) - 1)


def adder_tree(m, pipe: StallPipeline, terms: list, *, depth: int = 0, name: str = "add",
               pre_levels: int = 0, lsb: int = 0) -> Value:
    """Sum of ``terms`` (Values of any shape) as a balanced binary tree with ``depth`` pipeline
    registers; every sum is as wide as its range needs, so it never overflows and no register
    holds a bit that only repeats the sign (or a constant 0 above the top).

    ``pre_levels``: levels of logic that make the terms (e.g. ``|a - w|``: a subtraction and a
    select); the registers are spread over those and the tree's levels, so that some may fall
    on the terms themselves.

    A term may be a pair ``(value, shift)``, meaning ``value << shift`` (a partial product), or
    ``(value, shift, lo, hi)`` with the range of ``value`` when it is narrower than its shape:
    the tree keeps each sum's trailing zeros as a shift, so that no register holds a constant 0.

    ``lsb``: the result's bits below this one are not used (a product shifted right). A bit
    that only passes through an addition (below the other term's shift) is then dropped
    where it enters the tree, and so is every flip-flop that would have carried it; the
    result's bits from ``lsb`` up are exact, those below it are 0."""
    nodes = []
    for t in terms:
        if isinstance(t, tuple):
            v = Value.cast(t[0])
            lo, hi = (int(t[2]), int(t[3])) if len(t) == 4 else shape_range(v)
            nodes.append((exact_width(v, lo, hi), int(t[1]), lo, hi))
        else:
            v = Value.cast(t)
            nodes.append((v, 0, *shape_range(v)))
    if not nodes:
        return pipe.delay(m, Const(0, 1), depth, name=name)
    levels = max(0, (len(nodes) - 1).bit_length())
    pre = max(0, pre_levels)
    regs = spread_registers(max(1, pre + levels), depth)
    need = _needed_bits([s for _, s, _, _ in nodes], levels, lsb)

    def cut(node, k):
        """``node`` without its bits below ``k`` (absolute), which nothing uses."""
        v, s, lo, hi = node
        if k <= s:
            return node
        d = k - s
        lo, hi = lo >> d, hi >> d
        if len(v) > d:
            v = exact_width(v >> d, lo, hi)
        else:   # every bit dropped: what is left is the sign
            v = v[-1:].as_signed() if v.shape().signed else Const(0, 1)
        return v, k, lo, hi

    def register(ts, fmt):
        return [(pipe.reg(m, v, name=fmt.format(i)), s, lo, hi) for i, (v, s, lo, hi) in enumerate(ts)]

    def add(a, b):
        s = min(a[1], b[1])
        da, db = a[1] - s, b[1] - s
        lo, hi = (a[2] << da) + (b[2] << db), (a[3] << da) + (b[3] << db)
        return exact_width(_shifted(a[0], da) + _shifted(b[0], db), lo, hi), s, lo, hi

    nodes = [cut(n, k) for n, k in zip(nodes, need[0], strict=True)]
    for _ in range(sum(regs[:pre])):
        nodes = register(nodes, f"{name}_t_{{}}")
    regs = regs[pre:] or [0]
    for lvl in range(levels):
        nxt = [cut(add(nodes[i], nodes[i + 1]), need[lvl + 1][i // 2]) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
        for _ in range(regs[lvl]):
            nodes = register(nodes, f"{name}_l{lvl}_{{}}")
    v, s, _, _ = nodes[0]
    if levels == 0:
        v = pipe.delay(m, v, regs[0], name=name)
    return _shifted(v, s)


def _needed_bits(shifts: list[int], levels: int, lsb: int) -> list[list[int]]:
    """Per tree level and node, the lowest bit (absolute) of the node that the tree's result
    from bit ``lsb`` up depends on. In ``a + b`` with ``a``'s shift below ``b``'s, the sum's bits
    under ``b``'s shift are ``a``'s own bits, passed through with no carry: ``a`` is needed
    from ``min(need, b's shift)``, ``b`` whole."""
    level_shifts = [list(shifts)]
    for _ in range(levels):
        cur = level_shifts[-1]
        nxt = [min(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        level_shifts.append(nxt + cur[len(cur) - 1:] if len(cur) % 2 else nxt)
    need = [[0] * len(ls) for ls in level_shifts]
    need[-1] = [max(lsb, level_shifts[-1][0])]
    for lvl in reversed(range(levels)):
        cur = level_shifts[lvl]
        for i in range(0, len(cur) - 1, 2):
            k, (sa, sb) = need[lvl + 1][i // 2], (cur[i], cur[i + 1])
            need[lvl][i] = max(sa, min(k, sb)) if sa < sb else sa
            need[lvl][i + 1] = max(sb, min(k, sa)) if sb < sa else sb
        if len(cur) % 2:
            need[lvl][-1] = need[lvl + 1][-1]
    return need
