"""The residual network of docs/format.md through the command line and cocotb: `nomul gen` writes
the skip-path FIFO into the manifest, and the generated Verilog, co-simulated with random stalls
on both streams and a reset in the middle of a frame, is bit-exact with the golden model, with
the plan's interval and the cycle model's latency; a graph the generator cannot wire stops with
one line naming the layer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from gen.cli import main
from gen.estimate import estimate_network
from gen.load import load_network
from gen.netfile import save_npz
from sim import golden
from sim.randnet import random_values

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


@pytest.fixture
def residual(tmp_path) -> Path:
    blocks = BLOCK.findall(DOC.read_text())
    i = next(i for i, (lang, text) in enumerate(blocks) if lang == "yaml" and "name: residual\n" in text)
    scope = {"np": np}
    exec(blocks[i + 1][1], scope)  # noqa: S102 - the document's own example code
    path = tmp_path / "residual.yaml"
    path.write_text(blocks[i][1])
    save_npz(tmp_path / "residual.npz", scope["arrays"])
    return path


def test_gen_writes_the_skip_fifo(residual, tmp_path, capsys):
    assert main(["gen", str(residual), "-o", str(tmp_path / "out")]) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    add = next(la for la in m["layers"] if la["kind"] == "add")
    assert add["join_fifo_depths"] == [None, 19]
    assert add["blocks"] == ["l2_jfifo1", "l2_add", "l2_act"]
    assert any(b.endswith("_fork0") for b in m["layers"][0]["blocks"])
    est = estimate_network(load_network(residual), count_registers=False)
    assert est.memory["join_fifo_bits"] == 19 * 4 * 2      # 19 pixels of 4 uint2 elements


def test_gen_refuses_two_outputs_in_one_line(residual, tmp_path, capsys):
    doc = yaml.safe_load(residual.read_text())
    doc["outputs"] = ["fc", "gap"]
    residual.write_text(yaml.safe_dump(doc))
    assert main(["gen", str(residual), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("nomul: error: layers[3]: the hardware generator builds one output stream: 'gap' is a "
                   "second output (outputs: fc, gap)")


def test_residual_cocotb_with_stalls_and_reset(residual, tmp_path):
    pytest.importorskip("cocotb")
    from sim.runner import cosimulate, generate

    net = load_network(residual)
    est = estimate_network(net, target="xc7z020", count_registers=False)   # generate's family
    frames, timing = 10, 5
    x = random_values(np.random.default_rng(11), net.input.dtype, (frames, *net.input.shape))
    sources, streams = generate(net, tmp_path / "gen")
    r = cosimulate(sources, streams, x, golden.run(net, x).outputs, build_dir=tmp_path / "sim", seed=11,
                   stall=0.3, timing_frames=timing, reset_at_frame=(timing + frames) // 2)
    print(f"{r.frames} frames checked, {r.frames_dropped_by_reset} dropped by the reset, "
          f"{r.cycles_per_frame} cycles/frame (plan {est.interval}), latency {r.latency_cycles} "
          f"(model {est.latency})")
    assert not r.timeout and r.mismatches == 0, "; ".join(r.mismatch_report)
    assert r.frames_dropped_by_reset >= 1 and r.frames == frames - r.frames_dropped_by_reset
    assert r.cycles_per_frame == est.interval == 324
    assert r.latency_cycles == est.latency == 424   # +1: the int kind's partial products, a deeper tree


def test_compare_kinds_rebuilds_the_graph(residual):
    """--compare-kinds: the same residual topology with every MAC kind loads, runs and plans."""
    from gen.cmd_estimate import kind_variant
    from gen.macs import mac_names
    from gen.plan import plan_network

    net = load_network(residual)
    for kind in mac_names():
        v = kind_variant(net, kind)
        assert [(x.name, x.kind, x.inputs) for x in v.layers] == [(x.name, x.kind, x.inputs) for x in net.layers]
        x = random_values(np.random.default_rng(0), v.input.dtype, (4, *v.input.shape))
        assert golden.run(v, x).outputs.shape == (4, 5)
        assert plan_network(v).interval == plan_network(net).interval
