"""The clock model (gen/clock.py): its paths follow the hardware, its fit is reproducible from the
committed nextpnr record, its error there is what it claims, and estimate / explore use it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gen import clock
from gen.targets import get_part

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "results" / "clock_blocks.json"
sys.path.insert(0, str(ROOT / "bench"))


def _mvu(**kw):
    p = {"block": "mvu", "kind": "xnor", "w_bits": 1, "a_bits": 1, "a_max_abs": 1, "term_bits": 2,
         "pe": 4, "simd": 32, "mh": 8, "mw": 128, "acc_lo": -128, "acc_hi": 128, "thresholds": 0,
         "activation": "none", "ram_style": "block", "depth": 3, "out_bits": 9, "w_live_bits": 128}
    return p | kw


def test_deeper_trees_have_shorter_stages():
    coeffs = {"base": 1.0, "lut": 1.0, "counter": 1.0, "adder": 1.0, "bits": 0.05}
    for kind, extra in (("xnor", {}), ("adder", {"w_bits": 4, "a_bits": 4, "a_max_abs": 15, "term_bits": 6})):
        delays = []
        for depth in (0, 1, 2, 4, 6):
            paths = clock.block_paths(_mvu(kind=kind, depth=depth, **extra), "ecp5", 300)
            tree = [clock.path_delay(f, coeffs) for n, f in paths.items() if n.startswith("tree") or n == "accumulator"]
            delays.append(max(tree))
        assert delays == sorted(delays, reverse=True) and delays[0] > delays[-1], (kind, delays)


def test_block_ram_read_gets_its_own_cycle_with_two_registers():
    one = clock.block_paths(_mvu(), "ecp5", 300)
    two = clock.block_paths(_mvu(weight_register=2), "ecp5", 300)
    assert one["tree stage 0"].get("bram") == 1 and "block RAM read" not in one
    assert "bram" not in two["tree stage 0"] and two["block RAM read"] == {"bram": 1}
    rom = clock.block_paths(_mvu(ram_style="logic"), "ecp5", 300)
    assert "weight ROM" in rom and "bram" not in rom["tree stage 0"]


def test_fanout_grows_with_registers():
    small = clock.block_paths({"block": "fifo", "width": 8, "depth": 4}, "ecp5", 40)
    big = clock.block_paths({"block": "fifo", "width": 8, "depth": 4}, "ecp5", 4000)
    assert big["stall enable"]["fanout"] > small["stall enable"]["fanout"]


def test_fit_recovers_known_coefficients():
    """A max-affine fit of delays made by known coefficients gives them back."""
    rng = np.random.default_rng(5)
    print("seed=5")
    true = {"base": 1.2, "lut": 0.8, "counter": 0.9, "adder": 1.1, "bits": 0.04, "bram": 2.5,
            "lutram": 1.5, "fanout": 0.3}
    pts = []
    for _ in range(80):
        paths = {f"p{k}": {f: float(rng.integers(0, 4)) for f in clock.FEATURES[1:]} for k in range(3)}
        pts.append((paths, max(clock.path_delay(f, true) for f in paths.values())))
    got = clock.fit(pts)
    for k, v in true.items():
        assert got[k] == pytest.approx(v, abs=0.02), (k, got)


def _fitted_families():
    """``(family, its fit points, committed coefficients)`` of every part in the record."""
    from clock_fit import points_of

    if not RECORD.exists():
        pytest.skip("no clock record")
    coeffs = clock.load_clock_coeffs()
    for part, rows in json.loads(RECORD.read_text()).items():
        fam = get_part(part).family
        if fam in coeffs["families"]:
            yield fam, points_of(rows, fam), coeffs


def test_committed_coefficients_are_the_fit_of_the_record():
    for fam, pts, coeffs in _fitted_families():
        c = clock.fit([(p["paths"], 1000.0 / p["fmax"]) for p in pts])
        assert c == coeffs["families"][fam], fam


def test_stated_error_is_the_error_on_the_record():
    from clock_fit import _errors, summary

    for fam, pts, coeffs in _fitted_families():
        s = summary(_errors(pts, coeffs["families"][fam]))
        assert s == coeffs["calibration"][fam]["fit"], fam
        assert s["median_abs"] <= 0.15, (fam, s)


@pytest.mark.parametrize("target", ["ecp5-85k", "ice40-up5k"])
def test_estimate_uses_the_clock_model(target):
    from gen.estimate import estimate_network
    from gen.load import load_network

    net = load_network(ROOT / "quant_models" / "examples" / "tfc_w1a1.yaml")
    est = estimate_network(net, target=target)
    cm = est.clock_model
    assert cm is not None and est.clock_source == "clock model"
    assert est.clock_mhz == cm["fmax_mhz"] <= min(v[0] for v in cm["blocks"].values())
    assert cm["block"] in dict(est.accel.blocks)
    if cm["path"] == "stall chain":   # the one path across blocks: through a unit between FIFOs
        assert est.accel.block_params(cm["block"])["block"] in clock.CHAIN_BLOCKS
    else:
        assert cm["fmax_mhz"] == cm["blocks"][cm["block"]][0]
    assert est.fps == pytest.approx(cm["fmax_mhz"] * 1e6 / est.interval)
    x = estimate_network(net, target="xc7z020")
    assert x.clock_model is None and x.clock_source == "part default"
    assert x.clock_mhz == x.part.default_mhz


def test_estimate_prints_the_limiting_block(capsys):
    from gen.cli import main

    assert main(["estimate", str(ROOT / "quant_models" / "examples" / "tfc_w1a1.yaml"),
                 "--target", "ecp5-85k"]) == 0
    out = capsys.readouterr().out
    assert "clock model" in out and "limited by l" in out and "held-out blocks" in out


@pytest.mark.slow
def test_the_stall_chain_is_fitted_on_whole_accelerators():
    """The chain's LUT levels come from whole examples placed and routed; the model's error on
    them is what the coefficients state."""
    from clock_fit import fit_chain

    coeffs = clock.load_clock_coeffs()
    for fam, net in coeffs.get("network", {}).items():
        part = coeffs["parts"][fam]
        got = fit_chain(part, fam, coeffs["families"][fam])
        assert got is not None and got["chain_ns"] == net["chain_ns"], fam
        assert got["error"] == net["error"], fam
