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
from amaranth import ClockDomain, Module
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hw.dtypes import pack_words, unpack_words

__all__ = ["StreamSource", "StreamSink", "pack", "unpack", "stream_run", "measure_accelerator"]


def _target(payload):
    return payload if isinstance(payload, Value) else Value.cast(payload)


def pack(codes, width: int) -> int:
    """Codes (element 0 first) packed into one integer, element 0 in the LSBs."""
    return pack_words([list(codes)], width)[0]


def unpack(word: int, width: int, count: int) -> list[int]:
    return [int(c) for c in unpack_words([word], width, count)[0]]


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


def stream_run(dut, beats, n_out, *, seed, gap=0.3, stall=0.3, field=None, timeout=200_000,
               check_extra=True):
    """Send ``beats`` into ``dut.i_stream``, collect ``n_out`` payloads from ``dut.o_stream``.

    ``gap`` and ``stall`` are the probabilities of an idle cycle on either side. ``field``
    selects a member of a struct payload (``None``: the whole payload as an integer).
    ``check_extra``: no further beat may come out (a sliding window may legitimately start
    the next frame's padding beats early).
    Returns the payloads as Python integers (or tuples when ``field`` is a tuple of names).
    """
    print(f"stream_run seed={seed}")
    rng = np.random.default_rng(seed)
    gaps = rng.random(len(beats) * 4 + 16)
    stalls = rng.random(n_out * 4 + 16)
    got = []
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def source(ctx):
        g = 0
        for b in beats:
            while gaps[g % len(gaps)] < gap:
                g += 1
                await ctx.tick()
            g += 1
            if isinstance(b, dict):
                for k, v in b.items():
                    ctx.set(getattr(dut.i_stream.payload, k), v)
            else:
                ctx.set(dut.i_stream.payload, b)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)

    async def sink(ctx):
        s = 0
        cycles = 0
        while len(got) < n_out:
            ready = bool(stalls[s % len(stalls)] >= stall)
            s += 1
            ctx.set(dut.o_stream.ready, ready)
            if field is None:
                sig = (dut.o_stream.payload,)
            else:
                names = field if isinstance(field, tuple) else (field,)
                sig = tuple(getattr(dut.o_stream.payload, f) for f in names)
            _, _, *vals, valid = await ctx.tick().sample(*sig, dut.o_stream.valid)
            cycles += 1
            assert cycles < timeout, f"timeout after {len(got)} of {n_out} beats"
            if ready and valid:
                if field is None or not isinstance(field, tuple):
                    got.append(int(vals[0]) if not hasattr(vals[0], "as_value") else vals[0])
                else:
                    got.append(tuple(int(v) for v in vals))
        for _ in range(20 if check_extra else 0):  # nothing more may come out
            _, _, valid = await ctx.tick().sample(dut.o_stream.valid)
            assert not valid, "an extra output beat"

    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    return got


def measure_accelerator(accel, x) -> tuple[int, int, np.ndarray]:
    """Run frames ``x`` through a :class:`gen.top.Accelerator` in Amaranth's simulator with no
    gaps or stalls: ``(latency, interval, outputs)``. The interval must be the same between every
    two frames after the first (asserted); outputs are decoded to the golden model's layout."""
    from gen.top import decode_outputs, encode_frames

    frames = len(x)
    n_in = accel.in_beats_per_frame
    w = len(accel.i_stream.payload.data)
    beats = [d | (int(j % n_in == n_in - 1) << w) for j, d in enumerate(encode_frames(accel, x))]
    src = StreamSource(accel.i_stream, beats)
    per = accel.out_beats_per_frame
    sink = StreamSink(accel.o_stream, frames * per)
    sim = Simulator(accel)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    starts = sink.transfer_cycles[::per]
    intervals = set(np.diff(starts[1:]).tolist())
    assert len(intervals) == 1, f"no steady state: frame starts {starts}"
    wo = len(accel.o_stream.payload.data)
    got = decode_outputs(accel, [b & ((1 << wo) - 1) for b in sink.beats], frames)
    return sink.valid_cycles[0] - src.accept_cycles[0], intervals.pop(), got
