"""Reduction trees: a popcount built as a compressor tree of generalized parallel counters, and a
pipelined adder tree.

Yosys flattens a design and re-synthesises every ``+`` it sees into carry chains, so a popcount
written as a sum of bits (or as a sum of small group counts) becomes a tree of ripple adders
(about 2.2 LUT6 per input bit). Here the counters are written as *truth tables* (a constant
indexed by the counter's inputs): Yosys sees plain logic, not arithmetic, and ABC maps every
output bit of a counter of up to six inputs to one LUT6. Only the last two rows of the
compressed columns go through a real adder (a carry chain).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Value, unsigned

from .pipeline import StallPipeline, spread_registers

__all__ = ["popcount", "adder_tree", "counter_levels"]


def _counter_table(n: int, bit: int) -> Const:
    """Truth table of output ``bit`` of an ``n``-input counter, as a 2**n-bit constant."""
    table = 0
    for x in range(1 << n):
        if (bin(x).count("1") >> bit) & 1:
            table |= 1 << x
    return Const(table, unsigned(1 << n))


def _counter(bits: list) -> list:
    """An n:clog2(n+1) counter (n <= 6) written as LUT-sized truth tables."""
    n = len(bits)
    x = Cat(*bits)
    outs = (n).bit_length()
    return [_counter_table(n, b).bit_select(x, 1) for b in range(outs)]


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


def popcount(m, pipe: StallPipeline, bits, *, depth: int = 0, first_group: int = 6,
             name: str = "pc") -> Value:
    """Number of set bits of ``bits`` (a Value or a list of 1-bit Values), with ``depth``
    pipeline registers (loaded on ``pipe.en``).

    ``first_group`` is the size of the counters of the first level: 6 for raw bits, 3 when each
    input bit is itself a function of two signals (an XNOR or an AND of an activation and a
    weight), so that the function merges into the counter's LUT6.
    """
    if isinstance(bits, Value):
        bits = [bits[i] for i in range(len(bits))]
    bits = list(bits)
    n = len(bits)
    width = max(1, n.bit_length())
    levels = counter_levels(n, first_group)
    regs = spread_registers(levels + 1, depth)   # compression levels, then the final adder
    cols: dict[int, list] = {0: bits} if n else {}
    for lvl in range(levels):
        plan = _plan_level({w: len(c) for w, c in cols.items()}, first_group if lvl == 0 else 6)
        new: dict[int, list] = {}
        taken: dict[int, int] = {}
        for w, k in plan:
            start = taken.get(w, 0)
            taken[w] = start + k
            for b, o in enumerate(_counter(cols[w][start:start + k])):
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
