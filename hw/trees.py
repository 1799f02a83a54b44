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
"""

from __future__ import annotations

import re

from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal, Value, unsigned

from .pipeline import StallPipeline, spread_registers

__all__ = ["popcount", "adder_tree", "counter_levels", "Counter", "keep_counter_hierarchy",
           "COUNTER_OPS"]

COUNTER_OPS = ("none", "xnor", "and")


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
        if op not in COUNTER_OPS:
            raise ValueError(f"Counter op must be none, xnor or and, not {op!r}")
        if not 1 <= n * (1 if op == "none" else 2) <= 6:
            raise ValueError(f"A counter takes 1 to 6 input signals, not {n} bits with op {op!r}")
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


def counter_levels(n: int, first_group: int = 6) -> int:
    """Number of compression levels a popcount of ``n`` bits needs before its final adder."""
    heights = {0: n} if n else {}
    levels = 0
    while heights and max(heights.values()) > 2:
        heights = _apply_plan(heights, _plan_level(heights, first_group if levels == 0 else 6))
        levels += 1
    return levels


def popcount(m, pipe: StallPipeline, bits, *, depth: int = 0, op: str = "none",
             name: str = "pc") -> Value:
    """Number of set bits of ``bits``, with ``depth`` pipeline registers (loaded on
    ``pipe.en``).

    ``bits`` is a Value or a list of 1-bit Values; with ``op`` ``"xnor"`` or ``"and"`` it is a
    list of (x, y) pairs and the bits counted are ``op(x, y)``, merged into the 3:2 counters of
    the first level (six inputs each, one LUT6 per output).
    """
    if isinstance(bits, Value):
        bits = [bits[i] for i in range(len(bits))]
    bits = list(bits)
    n = len(bits)
    pairs = None
    first_group = 6
    if op != "none":
        pairs, first_group = bits, 3
        fn = (lambda p: ~(p[0] ^ p[1])) if op == "xnor" else (lambda p: p[0] & p[1])
        bits = [fn(p) for p in pairs]
    width = max(1, n.bit_length())
    levels = counter_levels(n, first_group)
    regs = spread_registers(levels + 1, depth)   # compression levels, then the final adder
    cols: dict[int, list] = {0: bits} if n else {}
    for lvl in range(levels):
        plan = _plan_level({w: len(c) for w, c in cols.items()}, first_group if lvl == 0 else 6)
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


def adder_tree(m, pipe: StallPipeline, terms: list, *, depth: int = 0, name: str = "add") -> Value:
    """Sum of ``terms`` (Values of any shape) as a balanced binary tree with ``depth`` pipeline
    registers. Amaranth widens every sum by one bit, so it never overflows."""
    terms = [Value.cast(t) for t in terms]
    if not terms:
        return pipe.delay(m, Const(0, 1), depth, name=name)
    levels = max(0, (len(terms) - 1).bit_length())
    regs = spread_registers(max(1, levels), depth)
    for lvl in range(levels):
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        for _ in range(regs[lvl]):
            terms = [pipe.reg(m, t, name=f"{name}_l{lvl}_{i}") for i, t in enumerate(terms)]
    if levels == 0:
        terms = [pipe.delay(m, terms[0], regs[0], name=name)]
    return terms[0]
