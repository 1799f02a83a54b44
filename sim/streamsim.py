"""Stream drivers and monitors for Amaranth's simulator, with random gaps and stalls.

Used by the unit tests of the hardware library::

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    src = StreamSource(dut.i_stream, beats, rng=rng, gap=0.3)
    sink = StreamSink(dut.o_stream, len(expected), rng=rng, stall=0.3)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    assert sink.beats == expected

Cycle numbers count clock periods from 0; a beat "at cycle c" is transferred (or, for
:attr:`StreamSink.valid_cycles`, first seen valid) at the clock edge that ends period c.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Value

__all__ = ["StreamSource", "StreamSink", "pack", "unpack"]


def _target(payload):
    return payload if isinstance(payload, Value) else Value.cast(payload)


def pack(codes, width: int) -> int:
    """Codes (element 0 first) packed into one integer, element 0 in the LSBs."""
    word = 0
    for k, c in enumerate(codes):
        word |= int(c) << (k * width)
    return word


def unpack(word: int, width: int, count: int) -> list[int]:
    mask = (1 << width) - 1
    return [(int(word) >> (k * width)) & mask for k in range(count)]


class StreamSource:
    """Sends ``beats`` (integers) on a stream, idling before each with probability ``gap``.

    Members
    -------
    accept_cycles : list[int]
        The cycle at which each beat was taken.
    """

    def __init__(self, port, beats, *, rng: np.random.Generator | None = None, gap: float = 0.0):
        self.port = port
        self.beats = [int(b) for b in beats]
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.gap = gap
        self.accept_cycles: list[int] = []

    async def testbench(self, ctx):
        port, cycle = self.port, 0
        payload = _target(port.payload)
        for beat in self.beats:
            while self.gap and self.rng.random() < self.gap:
                ctx.set(port.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(payload, beat)
            ctx.set(port.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(port.ready)
                cycle += 1
                if ready:
                    self.accept_cycles.append(cycle - 1)
                    break
            ctx.set(port.valid, 0)


class StreamSink:
    """Receives ``count`` beats, lowering ready each cycle with probability ``stall``.

    Members
    -------
    beats : list[int]
        The payloads received.
    transfer_cycles : list[int]
        The cycle of each transfer.
    valid_cycles : list[int]
        The cycle at which each beat was first seen valid (before any stall).
    """

    def __init__(self, port, count: int, *, rng: np.random.Generator | None = None,
                 stall: float = 0.0, timeout: int = 1_000_000):
        self.port = port
        self.count = count
        self.rng = rng if rng is not None else np.random.default_rng(1)
        self.stall = stall
        self.timeout = timeout
        self.beats: list[int] = []
        self.transfer_cycles: list[int] = []
        self.valid_cycles: list[int] = []

    async def testbench(self, ctx):
        port, cycle, waiting = self.port, 0, False
        payload = _target(port.payload)
        while len(self.beats) < self.count:
            if cycle > self.timeout:
                raise AssertionError(f"Timeout: {len(self.beats)} of {self.count} beats "
                                     f"after {cycle} cycles")
            ready = not (self.stall and self.rng.random() < self.stall)
            ctx.set(port.ready, ready)
            _, _, valid, data = await ctx.tick().sample(port.valid, payload)
            if valid and not waiting:
                self.valid_cycles.append(cycle)
                waiting = True
            if valid and ready:
                self.beats.append(int(data))
                self.transfer_cycles.append(cycle)
                waiting = False
            cycle += 1
        ctx.set(port.ready, 0)
