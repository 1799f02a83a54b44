"""Figures for the reports (matplotlib, Agg): PNG bytes that are the same for the same input
(no timestamp or software version in the file, a fixed SVG/PDF hash salt), and HTML helpers."""

from __future__ import annotations

import base64
import io

__all__ = ["available", "figure", "png_bytes", "data_uri", "pareto_png", "kinds_png", "template_env"]


def available() -> bool:
    """Whether matplotlib is installed (the plots need it; the pages and tables do not)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "nomul"
    matplotlib.rcParams["path.simplify"] = True
    return plt


def figure(w: float = 7.0, h: float = 4.2):
    """A new figure and its axes."""
    plt = _mpl()
    return plt.subplots(figsize=(w, h), dpi=100)


def png_bytes(fig) -> bytes:
    """The figure as PNG, with no metadata (so identical figures give identical bytes); closes it."""
    plt = _mpl()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def pareto_png(series: list[dict], *, title: str, xlabel: str = "LUT sites",
               ylabel: str = "frames per second") -> bytes:
    """A scatter of candidates with their Pareto front as a step line. ``series``: ``{"label",
    "x", "y", "front_x", "front_y"}`` per network, and ``"verified"``: ``{"model": (x, y),
    "yosys": (x, y), "fmax": (x, y) or None}`` per verified design (a cross at Yosys's LUT
    sites joined to the model's point, a triangle at the frames per second at nextpnr's Fmax)."""
    fig, ax = figure()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, s in enumerate(series):
        c = colors[i % len(colors)]
        ax.scatter(s["x"], s["y"], s=6, alpha=0.35, color=c, label=f"{s['label']} ({len(s['x']):,} candidates)",
                   rasterized=True)
        if len(s["front_x"]):
            fx, fy = zip(*sorted(zip(s["front_x"], s["front_y"], strict=True)), strict=True)
            ax.step(fx, fy, where="post", color=c, linewidth=1.5)
            ax.scatter(s["front_x"], s["front_y"], s=18, color=c, edgecolors="black", linewidths=0.5)
    shown = set()
    for s in series:
        for v in s.get("verified", []):
            (mx, my), (yx, yy) = v["model"], v["yosys"]
            ax.plot([mx, yx], [my, yy], color="black", linewidth=0.8)
            ax.scatter([yx], [yy], marker="x", color="black", s=40,
                       label=None if "y" in shown else "verified: Yosys LUT sites")
            shown.add("y")
            if v.get("fmax"):
                fx, fy = v["fmax"]
                ax.plot([yx, fx], [yy, fy], color="black", linewidth=0.8, linestyle=":")
                ax.scatter([fx], [fy], marker="^", color="black", s=30,
                           label=None if "f" in shown else "verified: frames/s at nextpnr Fmax")
                shown.add("f")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="lower right")
    return png_bytes(fig)


def kinds_png(rows: list[dict], *, title: str) -> bytes:
    """Weight compression against the speed-up at equal LUTs, one point per MAC kind (rows of
    :func:`gen.cmd_estimate.compare_kinds`)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = figure(6.0, 4.0)
    placed: list[tuple[float, float]] = []
    for r in rows:
        x, y = r["compression"], r["speedup_equal_luts"]
        ax.scatter([x], [y], s=30)
        near = sum(1 for px, py in placed if abs(px / x - 1) < 0.08 and abs(py / y - 1) < 0.15)
        placed.append((x, y))
        ax.annotate(r["kind"], (x, y), textcoords="offset points", xytext=(6, 3 - 11 * near), fontsize=9)
    lo = min([1.0] + [r["compression"] for r in rows])
    hi = max([1.0] + [r["compression"] for r in rows])
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1, label="speed-up = compression")
    ax.set_xscale("log")
    ax.set_yscale("log")
    fmt = FuncFormatter(lambda v, _: f"{v:g}×")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())
    ax.set_xticks([v for v in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0) if v <= hi * 1.5])
    ax.margins(0.12)
    ax.set_xlabel("weight compression vs int8 (×)")
    ax.set_ylabel("speed-up at equal LUT sites vs int8 (×)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig)


def template_env():
    """The Jinja2 environment of the HTML templates (autoescaped)."""
    from pathlib import Path

    import jinja2

    import templates

    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(templates.__file__).parent),
                              autoescape=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)
