"""Fit the clock model (gen/clock.py) on bench/clock_blocks.py's record and report its error.

    .venv/bin/python bench/clock_blocks.py --fit [--doc]

The coefficients go to ``gen/clock_coeffs.json`` with, per family, the model's error on the
blocks it was fitted on and on held-out blocks (leave one example out: refit without the blocks
that only that example has, then predict every block of it). The report and the plot of model
against nextpnr go to ``bench/results/clock_model.json``, ``docs/clock_model.png`` and, with
``--doc``, the section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gen import clock  # noqa: E402
from gen.targets import get_part  # noqa: E402

REPORT = ROOT / "bench" / "results" / "clock_model.json"
PLOT = ROOT / "docs" / "clock_model.png"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Clock model (Fmax per block, against nextpnr)"


def points_of(rows: dict, family: str) -> list[dict]:
    """The placed blocks with an Fmax, as fit points."""
    pts = []
    for sha, r in sorted(rows.items()):
        if not r.get("fmax_mhz"):
            continue
        pts.append({"sha": sha, "examples": r["examples"], "block": r["params"]["block"],
                    "name": r["blocks"][0], "fmax": r["fmax_mhz"],
                    "paths": clock.block_paths(r["params"], family, r.get("register_bits"))})
    return pts


def _errors(pts, coeffs) -> np.ndarray:
    """Relative Fmax errors (model / nextpnr - 1)."""
    pred = np.array([1000.0 / max(clock.path_delay(f, coeffs) for f in p["paths"].values()) for p in pts])
    meas = np.array([p["fmax"] for p in pts])
    return pred / meas - 1.0


def summary(err: np.ndarray) -> dict:
    a = np.abs(err)
    return {"points": int(len(a)), "median_abs": round(float(np.median(a)), 4) if len(a) else None,
            "p90_abs": round(float(np.percentile(a, 90)), 4) if len(a) else None,
            "max_abs": round(float(a.max()), 4) if len(a) else None,
            "within_15": int((a <= 0.15).sum())}


def leave_one_out(pts) -> tuple[np.ndarray, dict]:
    """Held-out errors: each example's blocks predicted by a fit without the blocks only it has."""
    examples = sorted({e for p in pts for e in p["examples"]})
    errs, per = [], {}
    for ex in examples:
        test = [p for p in pts if ex in p["examples"]]
        train = [p for p in pts if p["examples"] != [ex]]
        if not test or len(train) < 10:
            continue
        c = clock.fit([(p["paths"], 1000.0 / p["fmax"]) for p in train])
        e = _errors(test, c)
        errs.extend(e.tolist())
        # the network's clock: its slowest block, model against nextpnr's blocks
        pm = min(1000.0 / max(clock.path_delay(f, c) for f in p["paths"].values()) for p in test)
        mm = min(p["fmax"] for p in test)
        per[ex] = {"model_mhz": round(pm, 1), "blocks_mhz": round(mm, 1), "error": round(pm / mm - 1, 4)}
    return np.array(errs), per


FMAX = ROOT / "bench" / "results" / "fmax.json"   # bench/fmax.py: whole accelerators


def network_blocks(name: str, part: str) -> list:
    """``[(block, params, register bits)]`` of a bundled example's default accelerator."""
    from gen import area
    from gen.estimate import estimate_network
    from gen.load import load_network

    est = estimate_network(load_network(ROOT / "quant_models" / "examples" / f"{name}.yaml"),
                           target=part, count_registers=False)
    return [(b, est.accel.block_params(b), area.register_bits(comp)) for b, comp in est.accel.blocks]


def fit_chain(part: str, fam: str, coeffs: dict) -> dict | None:
    """The stall chain's FIFO ends (ns, :func:`gen.clock.chain_delay`) that best explain nextpnr's
    Fmax of the whole examples (bench/fmax.py's record), and the network model's error on them."""
    if not FMAX.exists():
        return None
    rows = json.loads(FMAX.read_text()).get(part, {})
    nets = {d.split(":", 1)[1]: r["after"]["fmax_mhz"] for d, r in sorted(rows.items())
            if d.startswith("example:") and r.get("after", {}).get("fmax_mhz")}
    if not nets:
        return None
    blocks = {n: network_blocks(n, part) for n in nets}
    best = None
    for k in np.arange(0.0, 8.001, 0.05):
        k = round(float(k), 2)
        c = {"families": {fam: coeffs}, "network": {fam: {"chain_ns": k}}}
        err = np.array([clock.network_fmax(blocks[n], fam, c)[0] / f - 1 for n, f in nets.items()])
        obj = float((err ** 2).sum())
        if best is None or obj < best[0] - 1e-12:
            best = (obj, float(k), err)
    _, k, err = best
    c = {"families": {fam: coeffs}, "network": {fam: {"chain_ns": k}}}
    per = {}
    for n, f in nets.items():
        mhz, blk, path = clock.network_fmax(blocks[n], fam, c)
        per[n] = {"nextpnr_mhz": f, "model_mhz": round(mhz, 1), "block": blk, "path": path,
                  "error": round(mhz / f - 1, 4)}
    return {"chain_ns": k, "error": summary(err), "examples": per}


def fit_and_report(doc: dict, *, write_doc: bool = False) -> dict:
    """Fit every part's family in ``doc`` (bench/clock_blocks.py's record); write the
    coefficients, the report, the plot and (``write_doc``) the docs section."""
    out = {"families": {}, "calibration": {}, "parts": {}}
    report = {}
    for part_name, rows in sorted(doc.items()):
        fam = get_part(part_name).family
        pts = points_of(rows, fam)
        if len(pts) < 10:
            print(f"{part_name}: {len(pts)} placed blocks, too few to fit")
            continue
        c = clock.fit([(p["paths"], 1000.0 / p["fmax"]) for p in pts])
        fit_err = _errors(pts, c)
        loo_err, per = leave_one_out(pts)
        out["families"][fam] = c
        out["parts"][fam] = part_name
        chain = fit_chain(part_name, fam, c)
        if chain is not None:
            out.setdefault("network", {})[fam] = {"chain_ns": chain["chain_ns"], "error": chain["error"]}
        out["calibration"][fam] = {"fit": summary(fit_err), "held_out": summary(loo_err)}
        report[fam] = {"part": part_name, "coefficients": c, "fit": summary(fit_err),
                       "held_out": summary(loo_err), "networks": per, "whole": chain,
                       "points": [{"name": p["name"], "block": p["block"], "fmax": p["fmax"],
                                   "model": round(p["fmax"] * (1 + e), 1)}
                                  for p, e in zip(pts, fit_err, strict=True)]}
        s, h = summary(fit_err), summary(loo_err)
        print(f"{part_name}: {len(pts)} blocks; fit median {s['median_abs']:.1%}, 90th {s['p90_abs']:.1%}, "
              f"within ±15 % {s['within_15']}/{s['points']}; held out median {h['median_abs']:.1%}, "
              f"90th {h['p90_abs']:.1%}, within ±15 % {h['within_15']}/{h['points']}")
    clock.COEFFS_PATH.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    REPORT.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    _plot(report)
    if write_doc:
        from docsection import replace_section

        replace_section(DOC, SECTION, section(report))
    return report


def _plot(report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted(report)
    if not fams:
        return
    fig, axes = plt.subplots(1, len(fams), figsize=(5 * len(fams), 4.5), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        pts = report[fam]["points"]
        kinds = sorted({p["block"] for p in pts})
        for k in kinds:
            xs = [p["fmax"] for p in pts if p["block"] == k]
            ys = [p["model"] for p in pts if p["block"] == k]
            ax.scatter(xs, ys, s=14, label=k)
        lo = min(min(p["fmax"] for p in pts), min(p["model"] for p in pts)) * 0.9
        hi = max(max(p["fmax"] for p in pts), max(p["model"] for p in pts)) * 1.1
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.plot([lo, hi], [lo * 1.15, hi * 1.15], "k:", lw=0.6)
        ax.plot([lo, hi], [lo * 0.85, hi * 0.85], "k:", lw=0.6)
        ax.set_xlabel("nextpnr Fmax (MHz)")
        ax.set_ylabel("clock model (MHz)")
        ax.set_title(f"{fam} ({report[fam]['part']}), every block of the examples")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110, metadata={"Software": None})
    plt.close(fig)


def section(report: dict) -> str:
    lines = [SECTION, "",
             "`gen/clock.py` predicts a block's Fmax from the structure of its candidate "
             "register-to-register paths (LUT levels, popcount counter levels, carry chains and "
             "their length, a block-RAM or LUT-RAM start, the stall enable's fan-out), with a "
             "delay per element fitted per family (non-negative, max-affine: each block is "
             "assigned the path the model makes slowest) on nextpnr runs of every distinct "
             "block of the bundled examples, each alone in the serial-I/O wrapper "
             "(`bench/clock_blocks.py`, record in `bench/results/clock_blocks.json`). "
             "`nomul estimate` uses it for frames per second when there is no place and route, "
             "and names the block and path that limit the clock. Held out: leave one example "
             "out (refit without the blocks only it has, predict all of its blocks).", "",
             "Rerun: `.venv/bin/python bench/clock_blocks.py` (P&R of what is missing, about "
             "20 s a block), then `.venv/bin/python bench/clock_blocks.py --fit --doc`.", "",
             "| family | part | blocks | fit: median / 90th pct / max error | fit within ±15 % | "
             "held out: median / 90th pct / max | held out within ±15 % |",
             "|---|---|---|---|---|---|---|"]
    for fam, r in sorted(report.items()):
        f, h = r["fit"], r["held_out"]
        lines.append(f"| {fam} | {r['part']} | {f['points']} | {f['median_abs']:.1%} / {f['p90_abs']:.1%} / "
                     f"{f['max_abs']:.1%} | {f['within_15']} of {f['points']} | {h['median_abs']:.1%} / "
                     f"{h['p90_abs']:.1%} / {h['max_abs']:.1%} | {h['within_15']} of {h['points']} |")
    lines += ["", "Coefficients (ns per element):", "",
              "| family | " + " | ".join(clock.FEATURES) + " |",
              "|---|" + "---|" * len(clock.FEATURES)]
    for fam, r in sorted(report.items()):
        lines.append(f"| {fam} | " + " | ".join(f"{r['coefficients'][k]:.3f}" for k in clock.FEATURES) + " |")
    lines += ["", "Each example's clock as its slowest block, the held-out model against the slowest "
              "of its blocks placed alone:", "",
              "| family | example | model (MHz) | slowest block alone (MHz) | error |", "|---|---|---|---|---|"]
    for fam, r in sorted(report.items()):
        for ex, v in sorted(r["networks"].items()):
            lines.append(f"| {fam} | {ex} | {v['model_mhz']:.1f} | {v['blocks_mhz']:.1f} | {v['error']:+.1%} |")
    for _, r in sorted(report.items()):
        w = r.get("whole")
        if not w:
            continue
        e = w["error"]
        lines += ["", f"Whole accelerators on {r['part']} (`bench/fmax.py`): the network's clock is its slowest "
                  f"block's, or the stall chain through a matrix-vector unit between its FIFOs (the consumer "
                  f"FIFO's ready, the unit's enable and its fan-out, the producer FIFO's read), whose FIFO ends "
                  f"({w['chain_ns']:g} ns) are fitted on these runs: error median {e['median_abs']:.1%}, largest "
                  f"{e['max_abs']:.1%}, {e['within_15']} of {e['points']} within ±15 %.", "",
                  "| example | nextpnr (MHz) | model (MHz) | error | limited by (model) |", "|---|---|---|---|---|"]
        for ex, v in sorted(w["examples"].items()):
            lines.append(f"| {ex} | {v['nextpnr_mhz']:.1f} | {v['model_mhz']:.1f} | {v['error']:+.1%} | "
                         f"{v['block']} ({v['path']}) |")
    lines += ["", "![clock model against nextpnr](clock_model.png)", ""]
    return "\n".join(lines)
