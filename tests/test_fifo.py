"""hw.fifo.StreamFIFO against amaranth.lib.fifo.SyncFIFOBuffered, cycle for cycle: the same
ready, valid and payload at every cycle under random writes and reads (the cycle model,
gen.chainsim, mirrors SyncFIFOBuffered's handshakes), with the ready from a flip-flop."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.lib import fifo
from amaranth.sim import Simulator

from hw.fifo import StreamFIFO


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 8, 13])
@pytest.mark.parametrize("seed", [0, 1])
def test_same_handshakes_as_sync_fifo_buffered(depth, seed):
    print(f"seed={seed} depth={depth}")
    rng = np.random.default_rng(seed)
    width, cycles = 7, 600
    # bursts of writes and of stalls, so that the FIFO runs full and empty many times
    p_write = rng.choice([0.2, 0.5, 0.9], size=cycles // 50).repeat(50)
    p_read = rng.choice([0.2, 0.5, 0.9], size=cycles // 50).repeat(50)
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut = StreamFIFO(width=width, depth=depth)
    top.submodules.ref = ref = fifo.SyncFIFOBuffered(width=width, depth=depth)
    trace = []

    async def bench(ctx):
        prev_next = None
        for t in range(cycles):
            valid, ready = int(rng.random() < p_write[t]), int(rng.random() < p_read[t])
            data = int(rng.integers(1 << width))
            for port, value in ((dut.i_stream.valid, valid), (ref.w_en, valid),
                                (dut.i_stream.payload, data), (ref.w_data, data),
                                (dut.o_stream.ready, ready), (ref.r_en, ready)):
                ctx.set(port, value)
            got = (ctx.get(dut.i_stream.ready), ctx.get(dut.o_stream.valid))
            want = (ctx.get(ref.w_rdy), ctx.get(ref.r_rdy))
            assert got == want, f"cycle {t}: (ready, valid) {got}, SyncFIFOBuffered {want}"
            if want[1]:
                assert ctx.get(dut.o_stream.payload) == ctx.get(ref.r_data), f"cycle {t}: payload"
            if t and prev_next is not None:
                assert got[0] == prev_next, f"cycle {t}: ready {got[0]}, w_rdy_next before {prev_next}"
            prev_next = ctx.get(dut.w_rdy_next)
            trace.append(want)
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    full, empty = sum(1 for r, _ in trace if not r), sum(1 for _, v in trace if not v)
    assert full > 10 and empty > 10, f"the run must fill and drain the FIFO ({full}, {empty})"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unit_with_registered_enable_into_a_fifo(seed):
    """A matrix-vector unit that takes the FIFO's next-cycle ready (hw.fifo.ready_ahead: its
    stall enable a flip-flop) moves every beat in the same cycle as the same unit with the
    combinational enable, and sends the same values, under random input gaps and output
    stalls."""
    from hw.fifo import ready_ahead
    from sim.randnet import random_values
    from sim.streamsim import StreamSink, StreamSource, pack
    from tests.test_hw_mvu import TYPES, make_mvu

    print(f"seed={seed}")
    runs = []
    for ahead in (False, True):
        rng = np.random.default_rng(seed)
        mac = ["xnor", "int", "ternary"][seed]
        types = TYPES[mac][0]
        mvu, _, _, _ = make_mvu(rng, mac, types, 6, 8, 2, 4, "threshold", depth=1)
        q = StreamFIFO(width=len(mvu.o_stream.payload), depth=3)
        if ahead:
            ready_ahead(mvu, q)
        assert (mvu.o_ready_next is not None) == ahead
        top = Module()
        top.domains.sync = ClockDomain()
        top.submodules.mvu, top.submodules.q = mvu, q
        top.d.comb += [q.i_stream.payload.eq(mvu.o_stream.payload),
                       q.i_stream.valid.eq(mvu.o_stream.valid),
                       mvu.o_stream.ready.eq(q.i_stream.ready)]
        X = random_values(rng, types[1], (5, 8))
        codes = types[1].encode(X)
        beats = [pack(codes[i, s * 4:(s + 1) * 4], types[1].code_width) for i in range(5) for s in range(2)]
        sim = Simulator(top)
        sim.add_clock(1e-8)
        src = StreamSource(mvu.i_stream, beats, rng=np.random.default_rng(seed + 10), gap=0.3)
        sink = StreamSink(q.o_stream, 5 * 3, rng=np.random.default_rng(seed + 20), stall=0.6)
        sim.add_testbench(src.testbench)
        sim.add_testbench(sink.testbench)
        sim.run()
        runs.append((src.accept_cycles, sink.transfer_cycles, sink.beats))
    assert runs[0] == runs[1]
