"""Readable waveforms: the streams between the accelerator's blocks are named after the blocks
(``l0_mvu__o_valid``), not ``i_stream__valid$10`` (issue #16), in Amaranth's simulator's VCD
and in the generated Verilog that ``nomul sim --waves`` simulates."""

from __future__ import annotations

import re

import numpy as np
from amaranth.sim import Simulator

from gen.emit import verilog_text
from gen.load import network_from_dict
from gen.plan import plan_network
from gen.top import Accelerator, encode_frames
from sim.randnet import random_network, random_values
from sim.streamsim import StreamSink, StreamSource

SEED = 3


def _accelerator(seed: int = SEED):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    doc, arrays = random_network(rng, ["xnor", "int"], in_shape=[8], widths=[4, 3], argmax=True)
    net = network_from_dict(doc, arrays=arrays)
    return Accelerator(net, plan_network(net, fold={"layer0": {"pe": 2, "simd": 4}}))


def _vcd_scopes(text: str) -> dict[str, set[str]]:
    """The variable names of each scope of a VCD header, scopes joined with dots."""
    scopes: dict[str, set[str]] = {}
    path: list[str] = []
    for line in text.split("$enddefinitions")[0].splitlines():
        words = line.split()
        if words[:1] == ["$scope"]:
            path.append(words[2])
            scopes.setdefault(".".join(path), set())
        elif words[:1] == ["$upscope"]:
            path.pop()
        elif words[:1] == ["$var"]:
            scopes[".".join(path)].add(words[4])
    return scopes


def test_vcd_names_the_streams_between_blocks(tmp_path):
    acc = _accelerator()
    first = acc.blocks[0][0]
    x = random_values(np.random.default_rng(SEED), acc.net.input.dtype, (2, *acc.net.input.shape))
    n_in = acc.in_beats_per_frame
    w = len(acc.i_stream.payload.data)
    beats = [d | (int(j % n_in == n_in - 1) << w) for j, d in enumerate(encode_frames(acc, x))]
    sim = Simulator(acc)
    sim.add_clock(1e-8)
    sim.add_testbench(StreamSource(acc.i_stream, beats).testbench)
    sim.add_testbench(StreamSink(acc.o_stream, 2 * acc.out_beats_per_frame).testbench)
    vcd = tmp_path / "w.vcd"
    with sim.write_vcd(str(vcd)):
        sim.run()
    scopes = _vcd_scopes(vcd.read_text())
    top = scopes["bench.top"]
    for port in ("i_stream", "o_stream"):
        assert {f"{port}__valid", f"{port}__ready"} <= top, sorted(top)
    for name, _ in acc.blocks:
        for d in ("i", "o"):
            assert {f"{name}__{d}_valid", f"{name}__{d}_ready", f"{name}__{d}_payload"} <= top, (name, sorted(top))
    assert {f"{first}__o_valid", f"{first}__o_ready"} <= scopes[f"bench.top.{first}"]
    streams = [v for v in top if re.search(r"stream|valid|ready|payload", v)]
    assert not [v for v in streams if re.search(r"\$\d", v)], sorted(streams)


def test_verilog_top_wires_are_named():
    acc = _accelerator()
    v = verilog_text(acc)
    top = v[v.index("module nomul_top("):]
    top = top[:top.index("endmodule")]
    wires = set(re.findall(r"^\s*wire (?:\[\d+:0\] )?([^\s;]+)", top, re.M))
    first = acc.blocks[0][0]
    assert {f"{first}__o_valid", f"{first}__o_ready", f"{first}__o_payload"} <= wires, sorted(wires)
    assert {"i_stream__valid", "i_stream__ready", "o_stream__valid", "o_stream__ready"} <= wires
    assert not [w for w in wires if re.search(r"(stream|valid|ready|payload).*\$\d", w)], sorted(wires)
