"""hw.trees.adder_tree: the sum of shifted terms with exact widths and, with ``lsb``, the bits
below it dropped where they only pass through an addition; simulated against Python integers
on random terms, shifts, ranges and depths (a seed per case, printed)."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.pipeline import StallPipeline
from hw.trees import _needed_bits, adder_tree


def _case(seed: int):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    terms = []
    for _ in range(n):
        w = rng.randint(1, 9)
        sg = rng.random() < 0.5
        shift = rng.randint(0, 12)
        full = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if sg else (0, (1 << w) - 1)
        if rng.random() < 0.4:   # a narrower range than the shape, given explicitly
            lo = rng.randint(full[0], full[1])
            hi = rng.randint(lo, full[1])
            rng_ = (lo, hi)
        else:
            rng_ = None
        terms.append((w, sg, shift, rng_ or full, rng_ is not None))
    return rng, terms, rng.randint(0, 3), rng.randint(0, 16)


@pytest.mark.parametrize("seed", range(40))
def test_adder_tree_is_the_sum_from_lsb_up(seed):
    print("seed", seed)
    rng, spec, depth, lsb = _case(seed)
    m = Module()
    pipe = StallPipeline("t")
    m.d.comb += pipe.en.eq(1)
    ins = [Signal(signed(w) if sg else unsigned(w), name=f"x{i}") for i, (w, sg, *_r) in enumerate(spec)]
    terms = [(x, sh, *r) if explicit else (x, sh) for x, (_, _, sh, r, explicit) in zip(ins, spec, strict=True)]
    out = adder_tree(m, pipe, terms, depth=depth, name="t", lsb=lsb)
    probe = Signal(out.shape(), name="out")
    ticks = Signal(8)
    m.d.comb += probe.eq(out)
    m.d.sync += ticks.eq(ticks + 1)   # a clock domain also where the tree has no register
    vectors = [[rng.randint(*r) for (_, _, _, r, _) in spec] for _ in range(30)]
    got = []

    async def bench(ctx):
        for vec in vectors + [vectors[-1]] * depth:
            for x, v in zip(ins, vec, strict=True):
                ctx.set(x, v)
            await ctx.tick()
            got.append(ctx.get(probe))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = [sum(v << sh for v, (_, _, sh, _, _) in zip(vec, spec, strict=True)) for vec in vectors]
    # registered: the result of the inputs set before tick k is read after tick k + depth - 1
    got = got[max(0, depth - 1):][:len(want)]
    mask = ~((1 << lsb) - 1)
    assert [g & mask for g in got] == [w & mask for w in want], (spec, depth, lsb)
    assert all(g & ((1 << lsb) - 1) == 0 for g in got)


def test_a_pass_through_bit_is_dropped_and_an_overlapping_one_kept():
    # (a, 0) + (b, 8), result used from bit 6: a's bits 0..5 only pass through
    assert _needed_bits([0, 8], 1, 6) == [[6, 8], [6]]
    # from bit 12: a is needed from b's shift (its bits 8.. carry into the sum)
    assert _needed_bits([0, 8], 1, 12) == [[8, 8], [12]]
    # equal shifts: every bit of both can carry
    assert _needed_bits([3, 3, 9], 2, 20) == [[3, 3, 9], [9, 9], [20]]
