"""The area model of the graph blocks (add join, window and channel sums, activation units, fork,
concat, pad/trim, depthwise window, vector-vector unit) against their recorded Yosys synthesis
(bench/results/area_calibration.json, written by bench/calibrate_area.py): no synthesis at test
time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gen import area

ROOT = Path(__file__).resolve().parent.parent
POINTS = [p for p in json.loads((ROOT / "bench" / "results" / "area_calibration.json").read_text())["points"]
          if p["block"] in area.GRAPH_BLOCKS]
COEFFS = area.load_coeffs()

#: LUT error bounds: ±15 % on the calibration points and ±30 % on the held-out ones, or 3 LUTs
#: for blocks of a few LUTs (a fork, a concat, an ECP5 adder whose sums are in carry cells) ...
FIT_BOUND, CHECK_BOUND, ABS_LUTS = 0.15, 0.30, 3
#: ... except these (block, family): (calibration, held-out) bounds, the measured largest
#: errors rounded up (docs/estimate.md): forms that do not follow Yosys there yet.
MISSES = {
    ("fork", "ecp5"): (0.35, 0.35),        # ABC's release logic grows faster than count²
    ("add", "ecp5"): (0.15, 0.45),         # uint4 + bipolar: decode folded into the carry LUTs
    ("add", "ice40"): (0.20, 0.30),
    ("add", "xilinx"): (0.25, 0.55),
    ("sum", "ecp5"): (0.15, 1.00),         # bipolar window sum of 9: carry chain, not logic
    ("sum", "ice40"): (0.25, 0.30),
    ("sum", "xilinx"): (0.15, 0.70),       # a channel sum of one fold
    ("act", "ecp5"): (0.15, 0.35),
    ("act", "xilinx"): (0.15, 0.35),
    ("dwwin", "ice40"): (0.20, 0.30),
    ("vvu", "ecp5"): (0.20, 0.55),         # int8 lanes priced from the int4 point
    ("vvu", "ice40"): (0.15, 0.50),
    ("vvu", "xilinx"): (0.30, 1.00),       # xnor 8×9 and ternary × uint2: popcounts in LUT6
}


def _cases(role):
    pts = [p for p in POINTS if p["role"] == role]
    return [pytest.param(p, fam, id=f"{p['name']}-{fam}")
            for p in pts for fam in area.FAMILIES if fam in p["yosys"]]


def test_every_graph_block_is_calibrated_on_every_family():
    for fam in area.FAMILIES:
        kinds = {p["block"] for p in POINTS if p["role"] == "fit" and fam in p["yosys"]}
        assert kinds == set(area.GRAPH_BLOCKS), (fam, set(area.GRAPH_BLOCKS) - kinds)
        held = {p["block"] for p in POINTS if p["role"] == "check" and fam in p["yosys"]}
        assert held == set(area.GRAPH_BLOCKS), (fam, set(area.GRAPH_BLOCKS) - held)


def _lut_errors(role, family):
    """Relative LUT errors of the graph blocks' points (0 within 3 LUTs)."""
    out = []
    for p in POINTS:
        if p["role"] != role or family not in p["yosys"]:
            continue
        got, want = area.estimate(p, family, coeffs=COEFFS).lut, p["yosys"][family]["lut"]
        out.append(0.0 if abs(got - want) <= ABS_LUTS else abs(got - want) / max(want, 8))
    return out


#: Since the model is fitted on whole networks as well (docs/estimate.md), the graph blocks'
#: errors are bounded as a distribution: (median, 90th percentile, largest) per family and role,
#: the measured values rounded up. A model that gets worse on them fails here. ECP5's held-out
#: median went from 10 % to 16 % with the refit for the adder trees as wide as their ranges (the
#: int units' Yosys LUTs on ECP5 fell 20-27 %; the threshold, requantization and int vvu points
#: moved by 6-8 LUTs).
SPREAD = {
    ("fit", "ecp5"): (0.05, 0.45, 0.60), ("fit", "ice40"): (0.05, 0.30, 0.45),
    ("fit", "xilinx"): (0.05, 1.00, 1.00),
    ("check", "ecp5"): (0.17, 0.50, 0.60), ("check", "ice40"): (0.10, 0.40, 0.65),
    ("check", "xilinx"): (0.25, 1.00, 1.00),
}


@pytest.mark.parametrize("role,family", sorted(SPREAD))
def test_lut_error_spread(role, family):
    import numpy as np

    e = _lut_errors(role, family)
    med, p90, top = SPREAD[(role, family)]
    assert np.median(e) <= med and np.percentile(e, 90) <= p90 and max(e) <= top, \
        (np.median(e), np.percentile(e, 90), max(e))


@pytest.mark.parametrize("point,family", _cases("fit") + _cases("check"))
def test_memories_exact(point, family):
    e = area.estimate(point, family, coeffs=COEFFS)
    assert (e.bram, e.lutram) == (point["yosys"][family]["bram"], point["yosys"][family]["lutram"])


def test_recorded_parameters_are_the_blocks_as_built():
    """The recorded points are what the model's parameter functions give for the blocks today
    (so the committed synthesis still describes them)."""
    from bench.calibrate_area import graph_block_points

    recorded = {p["name"]: p for p in POINTS}
    pts = graph_block_points()
    assert {p["name"] for p in pts} == set(recorded)
    for p in pts:
        want = {k: v for k, v in recorded[p["name"]].items() if k not in ("yosys", "stale")}
        got = json.loads(json.dumps({k: v for k, v in p.items() if not k.startswith("_")}))
        assert got == want, p["name"]
