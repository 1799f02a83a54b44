"""The report of a generated accelerator: one self-contained HTML page (no network access, no
JavaScript) with the network as a diagram of blocks (folding, cycles per frame, the bottleneck
marked), per-layer resource bars (the model's, and Yosys's where measured), memory, Fmax where
measured, co-simulation results, the design-space exploration's Pareto front and the
"compression ratio against real speed-up" chart across MAC kinds.

Its inputs are plain data: a generated folder's ``manifest.json`` and, each optional, an
estimate (``nomul estimate --json``, or :meth:`gen.estimate.Estimate.to_json`), co-simulation
results (``nomul sim --json``), an ``explore.json`` and the rows of
:func:`gen.cmd_estimate.compare_kinds`. The same inputs give the same bytes (the plots are PNGs
without metadata, :mod:`gen.plots`).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["render_report", "classify_json", "REPORT_NAME"]

REPORT_NAME = "report.html"
_RES = ("lut", "ff", "carry", "bram", "lutram")


def _diagram(manifest: dict) -> list[dict]:
    perf = manifest.get("performance", {})
    slow = perf.get("bottleneck")
    blocks = []
    for lay in manifest.get("layers", []):
        parts = lay.get("cycles_parts") or {}
        limit = max(parts.items(), key=lambda kv: kv[1])[0] if parts else ""
        fold = f"PE {lay['pe']} × SIMD {lay['simd']}" if lay.get("pe") else ""
        blocks.append({"name": lay["name"], "kind": lay["kind"], "mac": lay.get("mac") or "",
                       "fold": fold, "cycles": lay["cycles_per_frame"], "limit": limit,
                       "bottleneck": lay["name"] == slow, "latency": lay.get("latency")})
    return blocks


def _bars(estimate: dict | None) -> dict | None:
    """Per-layer resources and their bar widths (percent of the largest layer's)."""
    if not estimate:
        return None
    layers = estimate["layers"]
    have_synth = any("synth" in lay for lay in layers)
    rows = []
    cols = ("lut", "ff", "bram")
    peak = {c: max([1] + [lay[c] for lay in layers] + [lay.get("synth", {}).get(c, 0) for lay in layers])
            for c in cols}
    for lay in layers:
        r = {"name": lay["name"], "kind": lay["kind"], "cells": []}
        for c in cols:
            v = lay[c]
            y = lay.get("synth", {}).get(c) if have_synth else None
            r["cells"].append({"what": c.upper(), "model": v, "model_pct": f"{100 * v / peak[c]:.1f}",
                               "yosys": y, "yosys_pct": None if y is None else f"{100 * y / peak[c]:.1f}"})
        rows.append(r)
    tot = estimate["total"]
    fit = estimate.get("fit", {})
    return {"rows": rows, "synth": have_synth, "total": tot, "fit": fit,
            "target": estimate.get("target"), "family": estimate.get("family"),
            "fits": estimate.get("fits"), "bottleneck": estimate.get("bottleneck"),
            "clock_mhz": estimate.get("clock_mhz"), "clock_source": estimate.get("clock_source"),
            "fps": estimate.get("frames_per_s"), "latency_us": estimate.get("latency_us"),
            "fmax_mhz": estimate.get("fmax_mhz"), "synth_total": estimate.get("synth"),
            "critical_path": (estimate.get("pnr") or {}).get("critical_path")}


def _memory(manifest: dict, estimate: dict | None) -> dict:
    if estimate and "memory" in estimate:
        m = dict(estimate["memory"])
    else:
        m = {"weight_bits": sum(lay.get("weight_bits") or 0 for lay in manifest.get("layers", []))}
    parts = [(k, m.get(k)) for k in ("weight_bits", "buffer_bits", "fifo_bits") if m.get(k) is not None]
    total = sum(v for _, v in parts) or 1
    m["parts"] = [{"what": k.replace("_bits", ""), "bits": v, "pct": f"{100 * v / total:.1f}"} for k, v in parts]
    return m


def _kinds(rows: list[dict] | None, name: str, target: str | None) -> dict | None:
    if not rows:
        return None
    from .plots import available, data_uri, kinds_png

    plain = [{k: r[k] for k in ("kind", "compression", "speedup_equal_luts", "lut_sites", "weight_bits",
                                "fps", "interval", "lut_ratio")} for r in rows]
    if not available():
        return {"rows": plain, "plot": None}
    png = kinds_png(plain, title=f"{name}: every MAC kind vs int8" + (f" on {target}" if target else ""))
    return {"rows": plain, "plot": data_uri(png)}


def _explore(doc: dict | None) -> dict | None:
    if not doc:
        return None
    from .cmd_explore import pareto_plot
    from .plots import available, data_uri

    return {"doc": doc, "plot": data_uri(pareto_plot(doc)) if available() else None}


def classify_json(doc) -> str | None:
    """Which result a JSON document is: ``estimate``, ``sim``, ``explore`` or None."""
    if not isinstance(doc, dict):
        return None
    if doc.get("format") == "nomul-explore":
        return "explore"
    if doc.get("format") == "nomul-accelerator":
        return "manifest"
    if "layers" in doc and "total" in doc and "fit" in doc:
        return "estimate"
    if "frames" in doc and "mismatches" in doc:
        return "sim"
    return None


def render_report(manifest: dict, *, estimate: dict | None = None, sims: list[dict] | None = None,
                  explore: dict | None = None, kinds: list[dict] | None = None) -> str:
    """The report page (HTML text)."""
    from .plots import template_env

    net = manifest.get("network", {})
    perf = manifest.get("performance", {})
    ctx = {
        "net": net, "perf": perf, "top": manifest.get("top", {}), "board": manifest.get("board"),
        "generator": manifest.get("generator", {}),
        "io": {"input": manifest.get("input", {}), "output": manifest.get("output", {})},
        "diagram": _diagram(manifest), "bars": _bars(estimate), "memory": _memory(manifest, estimate),
        "sims": sims or [], "explore": _explore(explore),
        "kinds": _kinds(kinds, net.get("name", ""), (estimate or {}).get("target")),
    }
    return template_env().get_template("report.html.j2").render(**ctx)


def load_json(path) -> dict:
    from .errors import NetworkError

    p = Path(path)
    if not p.is_file():
        raise NetworkError(str(path), "file not found")
    try:
        return json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise NetworkError(str(path), f"not valid JSON: {str(e).splitlines()[0]}") from None
