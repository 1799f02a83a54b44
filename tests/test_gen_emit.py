"""nomul gen: every layer type and MAC kind generates, the Verilog passes Icarus and Verilator,
the generated testbench passes, output is deterministic and atomic, folding and boards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gen.boards import BOARDS, board_files, get_board, missing_tools
from gen.emit import build, generate, write_outputs
from gen.errors import NetworkError
from gen.load import network_from_dict
from gen.netfile import write_network
from gen.plan import divisors, layer_parts, plan_network
from gen.top import Accelerator
from sim.randnet import random_network

MACS = ["xnor", "and", "ternary", "onehot", "int", "adder"]
VERILATOR_BIN = Path(sys.executable).parent.parent / "lib" / "python3.11" / "site-packages" / "verilator" / "bin"


def cnn(mac, seed=0):
    doc, arrays = random_network(np.random.default_rng(seed), [mac, mac, mac], conv=True,
                                 in_shape=[2, 6, 6], widths=[3, 4, 3], pool=True, argmax=True)
    return network_from_dict(doc, arrays=arrays)


def image_out(seed=1):
    """conv2d → maxpool2d: the output is an image (HWC stream, CHW manifest shape)."""
    doc, arrays = random_network(np.random.default_rng(seed), ["ternary", "ternary"], conv=True,
                                 in_shape=[1, 5, 6], widths=[3, 2], pool=True)
    doc["layers"] = doc["layers"][:2]
    return network_from_dict(doc, arrays=arrays)


def mlp(seed=2, widths=(64, 64, 64, 10), n_in=784):
    doc, arrays = random_network(np.random.default_rng(seed), ["xnor"] * len(widths), in_shape=[n_in],
                                 widths=list(widths), argmax=True)
    return doc, arrays


def lint(folder: Path):
    v = folder / "nomul_top.v"
    r = subprocess.run(["iverilog", "-g2012", "-o", os.devnull, str(v)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if (VERILATOR_BIN / "verilator").exists():
        env = {**os.environ, "PATH": f"{VERILATOR_BIN}{os.pathsep}{os.environ['PATH']}"}
        r = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE",
                            "-Wno-ASCRANGE", "--top-module", "nomul_top", str(v)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]


def run_tb(folder: Path):
    r = subprocess.run(["make", "-s", "sim"], cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "PASS" in r.stdout, r.stdout[-2000:]


@pytest.mark.parametrize("mac", MACS)
def test_every_mac_generates(mac, tmp_path):
    """conv2d, maxpool2d, dense and argmax of each MAC kind; Verilog lints; testbench passes."""
    g = generate(cnn(mac), tmp_path / "out")
    kinds = [layer["kind"] for layer in g.manifest["layers"]]
    assert kinds == ["conv2d", "maxpool2d", "conv2d", "maxpool2d", "dense", "argmax"]
    lint(tmp_path / "out")
    run_tb(tmp_path / "out")


def test_image_output_and_requant(tmp_path):
    net = image_out()
    g = generate(net, tmp_path / "out", frames=3)
    out = g.manifest["output"]
    assert out["order"] == "HWC" and out["shape"] == list(net.output_shape)
    assert out["beats_per_frame"] == net.output_shape[1] * net.output_shape[2]
    run_tb(tmp_path / "out")
    doc, arrays = random_network(np.random.default_rng(5), ["int", "int"], in_shape=[10],
                                 widths=[6, 4], style="requant")
    generate(network_from_dict(doc, arrays=arrays), tmp_path / "rq")
    run_tb(tmp_path / "rq")


def test_manifest_complete(tmp_path):
    g = generate(cnn("xnor"), tmp_path / "out")
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m == g.manifest
    assert m["top"]["module"] == "nomul_top"
    text = (tmp_path / "out" / "nomul_top.v").read_text()
    for p in m["ports"]:
        assert f"{p['direction']} " in text and p["name"] in text
    i = m["input"]
    assert i["fields"]["last"]["offset"] == i["fields"]["data"]["width"] == \
        i["elements_per_beat"] * i["code_width"]
    assert i["beats_per_frame"] * i["elements_per_beat"] == 2 * 6 * 6
    assert m["output"]["order"] == "index" and m["output"]["beats_per_frame"] == 1
    for layer in m["layers"]:
        assert layer["cycles_per_frame"] >= 1
    # the chain's steady state: at least the slowest layer's cycles (equal unless blocks slow
    # each other down, tests/test_cycles_random.py)
    assert m["performance"]["interval_cycles"] >= max(la["cycles_per_frame"] for la in m["layers"])
    assert set(m["files"]) >= {"nomul_top.v", "tb.v", "Makefile", "README.md", "vectors/inputs.hex"}


def test_deterministic(tmp_path):
    doc, arrays = random_network(np.random.default_rng(9), ["int", "int"], conv=True, in_shape=[1, 5, 5],
                                 widths=[2, 3], pool=True, argmax=True)
    path = write_network(tmp_path / "net.yaml", doc, arrays)
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        r = subprocess.run([sys.executable, "-m", "gen.cli", "gen", str(path), "-o", str(out),
                            "--board", "ulx3s"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outs[0].keys() == outs[1].keys()
    for name in outs[0]:
        assert outs[0][name] == outs[1][name], name


def test_failure_leaves_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    doc, arrays = mlp(widths=(64, 10), n_in=16)
    path = write_network(tmp_path / "net.yaml", doc, arrays)
    fold = tmp_path / "fold.yaml"
    fold.write_text("layer0: {pe: 129, simd: 4}\n")
    r = subprocess.run([sys.executable, "-m", "gen.cli", "gen", str(path), "-o", str(out), "--fold",
                        str(fold), "--overwrite"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == "nomul: error: layers[0].pe: expected at most 128 (twice the 64 output channels), found 129\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    def boom(tmp):
        raise RuntimeError("late failure")
    with pytest.raises(RuntimeError):
        write_outputs(out, {"a.txt": b"new"}, after=boom, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    write_outputs(out, {"a.txt": b"new"}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


# -- folding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fold,message", [
    ({"layer0": {"pe": 129}}, r"^layers\[0\]\.pe: expected at most 128 \(twice the 64 output channels\), found 129$"),
    ({"layer1": {"simd": 129}},
     r"^layers\[1\]\.simd: expected at most 128 \(twice the 64 inputs per dot product\), found 129$"),
    ({"nope": {"pe": 1}}, r"^fold\.nope: unknown layer \(layers: layer0, layer1, layer2, layer3, layer4\)$"),
    ({"layer4": {"pe": 1}}, r"^fold\.layer4: a argmax layer has no folding$"),
    ({"layer0": {"pes": 1}}, r"^fold\.layer0\.pes: unknown key \(expected pe, simd or tree_depth\)$"),
    ({"layer0": {"pe": 0}}, r"^fold\.layer0\.pe: expected a positive integer, found 0$"),
])
def test_bad_fold(fold, message):
    doc, arrays = mlp(widths=(64, 64, 32, 10), n_in=48)
    net = network_from_dict(doc, arrays=arrays)
    with pytest.raises(NetworkError, match=message):
        plan_network(net, fold=fold)


def test_bad_fold_in_network_file():
    doc, arrays = mlp(widths=(64, 10), n_in=16)
    doc["layers"][0]["pe"] = 200
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.pe: expected at most 128 \(twice the 64 output"):
        network_from_dict(doc, arrays=arrays)


@pytest.mark.parametrize("target", [100_000, 20_000, 5_000, 1_000, 200])
def test_auto_fold_meets_target(target):
    doc, arrays = mlp()
    net = network_from_dict(doc, arrays=arrays)
    plan = plan_network(net, fold="auto", target_cycles=target)
    assert plan.interval <= target
    for lp, layer in zip(plan.layers, net.layers, strict=True):
        if lp.pe is None:
            continue
        assert lp.cycles <= target
        # as few lanes as possible: no folding with fewer lanes meets the target
        for pe in divisors(layer.mh):
            for simd in divisors(layer.mw):
                if pe * simd < lp.lanes:
                    parts, _ = layer_parts(layer, lp.in_elems, pe, simd)
                    assert max(c for _, c in parts) > target, (lp.name, pe, simd)


def test_auto_fold_minimal_lanes_cnn():
    net = cnn("int")
    for target in (2000, 700, 400):
        plan = plan_network(net, fold="auto", target_cycles=target)
        assert plan.interval <= target
    with pytest.raises(NetworkError, match=r"^layers\[0\]: cannot meet the target of 100 cycles per frame: "
                                           r"layer0 needs at least 324$"):
        plan_network(net, fold="auto", target_cycles=100)


def test_fold_precedence(tmp_path):
    doc, arrays = mlp(widths=(64, 10), n_in=16)
    doc["layers"][0]["pe"], doc["layers"][0]["simd"] = 4, 2
    net = network_from_dict(doc, arrays=arrays)
    p = plan_network(net)
    assert (p.layers[0].pe, p.layers[0].simd, p.layers[0].source) == (4, 2, "network")
    p = plan_network(net, fold={"layer0": {"pe": 8}})
    assert (p.layers[0].pe, p.layers[0].simd, p.layers[0].source) == (8, 2, "file")
    p = plan_network(net, fold="auto", target_cycles=10_000)
    assert p.layers[0].source == "auto" and p.layers[0].lanes == 1


# -- boards ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_builds(name):
    net = cnn("xnor")
    acc = Accelerator(net, plan_network(net))
    _, files = board_files(acc, get_board(name))
    assert any(f.startswith("build_nomul_board") for f in files)
    assert any(f.endswith((".pcf", ".lpf", ".xdc")) for f in files)


def test_board_does_not_fit():
    doc, arrays = mlp()
    net = network_from_dict(doc, arrays=arrays)
    with pytest.raises(NetworkError, match=r"^--board: the design does not fit the iCE40 UP5K of the "
                                           r"iCEBreaker: about [\d,]+ LUT needed, 5,280 available"):
        build(net, fold="auto", target_cycles=8, board=get_board("icebreaker"))


def test_unknown_board():
    with pytest.raises(NetworkError, match=r"^--board: unknown board 'de0' \(boards: icebreaker, ulx3s, "
                                           r"arty-a7-35\)$"):
        get_board("de0")


@pytest.mark.skipif(missing_tools(get_board("icebreaker")), reason="YoWASP iCE40 tools not installed")
@pytest.mark.slow
def test_bitstream_ice40(tmp_path):
    doc, arrays = mlp(widths=(8, 4), n_in=16)
    path = write_network(tmp_path / "net.yaml", doc, arrays)
    r = subprocess.run([sys.executable, "-m", "gen.cli", "gen", str(path), "-o", str(tmp_path / "out"),
                        "--board", "icebreaker", "--bitstream"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "board" / "nomul_board.bin").is_file()
    assert "bitstream: nomul_board.bin; Fmax " in r.stdout and " MHz" in r.stdout
