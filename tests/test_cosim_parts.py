"""The co-simulation testbench itself, on small stream designs made here with Amaranth.

These check the testbench (driver, monitor, scoreboard, timing, reset, runners) independently
of the generator: a stream "add one" unit whose exact behaviour is known, and a broken variant
that the scoreboard must catch.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dtypes import DType
from sim.cocotb_parts import StreamLayout
from sim.runner import TbStreams, cosimulate


class AddOne(wiring.Component):
    """Adds one to each of ``elems`` uint elements per beat, through ``depth`` register stages.

    ``bug`` (an input value) makes the element that has it come out as 0 (for the tests
    that the scoreboard catches a mismatch).
    """

    def __init__(self, *, width: int, elems: int, depth: int = 1, bug: int | None = None):
        self._w, self._k, self._depth, self._bug = width, elems, depth, bug
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(width * elems))),
            "o_stream": Out(stream.Signature(unsigned((width + 1) * elems))),
        })

    def elaborate(self, platform):
        m = Module()
        w, k = self._w, self._k
        payload = Signal(unsigned((w + 1) * k))
        for j in range(k):
            x = self.i_stream.payload[j * w:(j + 1) * w]
            y = payload[j * (w + 1):(j + 1) * (w + 1)]
            if self._bug is None:
                m.d.comb += y.eq(x + 1)
            else:
                m.d.comb += y.eq(((x + 1) * (x != self._bug))[:w + 1])
        valid, data = self.i_stream.valid, payload
        ready = self.o_stream.ready
        # A chain of pipeline stages, each registered and stalled only when full and blocked.
        readies = []
        for _ in range(self._depth):
            v = Signal()
            d = Signal.like(payload)
            r = Signal()
            readies.append((r, v))
            with m.If(r):
                m.d.sync += [v.eq(valid), d.eq(data)]
            valid, data = v, d
        # Stage i is ready when it is empty or the next one takes its value.
        nxt_ready = ready
        for r, v in reversed(readies):
            m.d.comb += r.eq(~v | nxt_ready)
            nxt_ready = r
        m.d.comb += [
            self.i_stream.ready.eq(nxt_ready),
            self.o_stream.valid.eq(valid),
            self.o_stream.payload.eq(data),
        ]
        return m


def _design(tmp_path, *, width=4, elems=2, depth=2, bug=None, shape=(12,), order="flat"):
    dut = AddOne(width=width, elems=elems, depth=depth, bug=bug)
    src = tmp_path / "addone.v"
    src.write_text(verilog.convert(dut, name="addone"))
    ports = {"payload": "{}__payload", "valid": "{}__valid", "ready": "{}__ready"}
    n_el = int(np.prod(shape))
    streams = TbStreams(
        toplevel="addone", clock="clk", reset="rst",
        input={"ports": {k: v.format("i_stream") for k, v in ports.items()}, "shape": list(shape),
               "dtype": {"encoding": "uint", "bits": width}, "elems_per_beat": elems, "order": order},
        output={"ports": {k: v.format("o_stream") for k, v in ports.items()}, "shape": list(shape),
                "dtype": {"encoding": "uint", "bits": width + 1}, "elems_per_beat": elems,
                "order": order},
        expected_cycles_per_frame=n_el // elems, expected_latency=depth)
    return [src], streams


def _frames(seed, n, shape, width=4):
    x = np.random.default_rng(seed).integers(0, 1 << width, size=(n, *shape))
    return x, x + 1


# -- host-side packing (no simulator) ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [DType.bipolar(), DType.ternary(), DType.uint(3), DType.int(7),
                                   DType.onehot(4, signed=True), DType.int(32)])
@pytest.mark.parametrize("shape,order,k", [((12,), "flat", 3), ((3, 2, 4), "HWC", 3),
                                           ((2, 2, 2), "HWC", 8), ((5,), "flat", 1)])
def test_pack_unpack_round_trip(dtype, shape, order, k):
    rng = np.random.default_rng(1)
    layout = StreamLayout(shape, dtype, k, order)
    x = rng.choice(dtype.values() if dtype.bits < 20 else np.arange(dtype.min, dtype.min + 99),
                   size=(4, *shape))
    beats = layout.pack(x)
    assert all(len(b) == layout.beats_per_frame for b in beats)
    assert all(0 <= v < 1 << layout.beat_width for b in beats for v in b)
    for i in range(4):
        np.testing.assert_array_equal(layout.unpack(beats[i]), x[i])


def test_pack_follows_contract():
    """Element 0 in the LSBs; images in HWC order (channels innermost)."""
    layout = StreamLayout((2, 1, 2), DType.uint(4), 2, "HWC")
    x = np.array([[[[1, 2]], [[3, 4]]]])  # c0: (1, 2), c1: (3, 4)
    assert layout.pack(x) == [[0x31, 0x42]]
    assert layout.golden_index(1) == (1, 0, 0)
    assert layout.golden_index(2) == (0, 0, 1)


# -- co-simulation of the small design ------------------------------------------------------------
@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_addone_exact_with_stalls_and_reset(tmp_path, sim):
    src, streams = _design(tmp_path, shape=(3, 2, 2), order="HWC", depth=3)
    x, y = _frames(5, 60, (3, 2, 2))
    r = cosimulate(src, streams, x, y, build_dir=tmp_path / "build", sim=sim, seed=11, stall=0.4,
                   reset_at_frame=30)
    assert r.passed, r.mismatch_report
    assert r.cycles_per_frame == streams.expected_cycles_per_frame
    assert r.latency_cycles == streams.expected_latency
    assert r.frames_dropped_by_reset >= 1
    assert r.frames == 60 - r.frames_dropped_by_reset


def test_addone_mismatch_is_reported(tmp_path):
    src, streams = _design(tmp_path, bug=7, depth=1)
    x, y = _frames(6, 20, (12,))
    r = cosimulate(src, streams, x, y, build_dir=tmp_path / "build", seed=3, stall=0.2)
    assert not r.passed
    bad = np.argwhere(x == 7)
    assert r.mismatches == len(bad)
    f, i = bad[0]
    assert r.mismatch_report[0] == f"frame {f}, output [{i}]: expected 8, got 0"
