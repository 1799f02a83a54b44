"""Accuracy of ``nomul quantize``: float model vs the quantized network's integer golden model.

For each seed, a float ReLU MLP 64-64-10 (:func:`quant_models.quant_float.train_mlp`), a wider
one 64-256-10 (for the binary methods, whose error averages out over longer dot products) and a float
AdderNet MLP 64-32-10 with BatchNorm (:func:`quant_models.quant_float.train_adder_mlp`) are
trained on scikit-learn's digits (1400 training images, 397 test images, split by the seed).
Each method is applied through the command line (``nomul quantize``, calibrated on the training
images), and the written network is run by the golden model on the test images. ``adder``
quantizes the AdderNet model; every other method a ReLU MLP. Post-training only: no
quantization-aware fine-tuning.

Writes ``bench/results/quantize.json`` (float and quantized test accuracy per method and bit
width, mean and per seed). Run from the project root::

    .venv/bin/python bench/quantize.py          # about a minute on 2 cores
    .venv/bin/python bench/quantize.py --seeds 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen.cli import main as nomul  # noqa: E402
from gen.load import load_network  # noqa: E402
from quant_models.quant_float import accuracy, digits_split, train_adder_mlp, train_mlp  # noqa: E402
from quant_models.quant_net import DEFAULT_BITS, float_forward, model_from_arrays  # noqa: E402
from sim import golden  # noqa: E402

# (label, float model, method, extra arguments); the first of each method uses its default bits.
RUNS = [
    ("binarize", "mlp", "binarize", []), ("binarize --bits 1", "mlp", "binarize", ["--bits", "1"]),
    ("binarize --bits 3", "mlp", "binarize", ["--bits", "3"]),
    ("sibnn", "mlp", "sibnn", []), ("sibnn --threshold sign", "mlp", "sibnn", ["--threshold", "sign"]),
    ("sttn", "mlp", "sttn", []), ("sttn --bits 1", "mlp", "sttn", ["--bits", "1"]),
    ("sttn --bits 3", "mlp", "sttn", ["--bits", "3"]),
    ("sttn --delta optimal", "mlp", "sttn", ["--delta", "optimal"]),
    ("onehot", "mlp", "onehot", []), ("onehot --bits 3", "mlp", "onehot", ["--bits", "3"]),
    ("bitsplit", "mlp", "bitsplit", []), ("bitsplit --bits 2", "mlp", "bitsplit", ["--bits", "2"]),
    ("bitsplit --bits 3", "mlp", "bitsplit", ["--bits", "3"]),
    ("adder", "adder", "adder", []), ("adder --bits 4", "adder", "adder", ["--bits", "4"]),
    ("adder --bits 8", "adder", "adder", ["--bits", "8"]),
    ("wide: binarize", "wide", "binarize", []),
    ("wide: binarize --bits 1", "wide", "binarize", ["--bits", "1"]),
    ("wide: sibnn", "wide", "sibnn", []),
]
COMMAND = ".venv/bin/python bench/quantize.py"


def run_seed(seed: int, tmp: Path) -> dict:
    xtr, ytr, xte, yte = digits_split(seed)
    models = {"mlp": train_mlp(xtr, ytr, hidden=(64,), steps=400, seed=seed),
              "wide": train_mlp(xtr, ytr, hidden=(256,), steps=400, seed=seed),
              "adder": train_adder_mlp(xtr, ytr, hidden=(32,), steps=300, seed=seed)}
    calib = tmp / f"calib{seed}.npz"
    np.savez(calib, inputs=xtr, labels=ytr)
    floats = {}
    for name, arrays in models.items():
        np.savez(tmp / f"float_{name}{seed}.npz", **arrays)
        floats[name] = accuracy(float_forward(model_from_arrays(arrays), xte, adder=name == "adder"), yte)
    out = {}
    for label, kind, method, extra in RUNS:
        net_path = tmp / f"net_{label.replace(' ', '_').replace('-', '')}{seed}.yaml"
        with contextlib.redirect_stdout(io.StringIO()):
            rc = nomul(["quantize", str(tmp / f"float_{kind}{seed}.npz"), "--method", method, "--calib",
                        str(calib), "-o", str(net_path), *extra])
        if rc:
            raise SystemExit(f"nomul quantize failed for {label}")
        net = load_network(net_path)
        q = float(np.mean(golden.run(net, golden.quantize_input(net, xte)).top1 == yte))
        out[label] = {"float": floats[kind], "quantized": q}
    return out


def bitsplit_vs_rounding(seed: int = 0) -> list[dict]:
    """Output MSE of the first layer on the calibration data: bit-split vs round-to-nearest."""
    from quant_models import quantizers as qz

    xtr, ytr, _, _ = digits_split(seed)
    w = train_mlp(xtr, ytr, hidden=(64,), steps=400, seed=seed)["w0"]
    out = []
    for bits in (2, 3, 4, 6):
        q, a = qz.bitsplit_weights(w, xtr, bits)
        q0, a0 = qz.naive_int_weights(w, bits)
        mse = float(((xtr @ (w - a[:, None] * q).T) ** 2).mean())
        mse0 = float(((xtr @ (w - a0[:, None] * q0).T) ** 2).mean())
        out.append({"bits": bits, "mse_bitsplit": round(mse, 6), "mse_rounding": round(mse0, 6),
                    "ratio": round(mse / mse0, 4)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quantize.json"))
    args = ap.parse_args(argv)
    per_seed = {}
    with tempfile.TemporaryDirectory() as d:
        for seed in range(args.seeds):
            per_seed[seed] = run_seed(seed, Path(d))
    results = []
    for label, kind, method, extra in RUNS:
        fl = [per_seed[s][label]["float"] for s in per_seed]
        q = [per_seed[s][label]["quantized"] for s in per_seed]
        bits = int(extra[extra.index("--bits") + 1]) if "--bits" in extra else DEFAULT_BITS[method]
        results.append({"run": label, "float_model": kind, "method": method, "bits": bits,
                        "float_accuracy": round(float(np.mean(fl)), 4),
                        "quantized_accuracy": round(float(np.mean(q)), 4),
                        "quantized_per_seed": [round(v, 4) for v in q],
                        "float_per_seed": [round(v, 4) for v in fl]})
    doc = {"benchmark": "nomul quantize: post-training quantization accuracy on sklearn digits",
           "command": COMMAND + (f" --seeds {args.seeds}" if args.seeds != 3 else ""),
           "data": "sklearn.datasets.load_digits: 1400 train (calibration), 397 test, split by seed",
           "float_models": {"mlp": "ReLU MLP 64-64-10, numpy Adam 400 steps",
                            "wide": "ReLU MLP 64-256-10, numpy Adam 400 steps",
                            "adder": "AdderNet MLP 64-32-10 with BatchNorm, numpy Adam 300 steps"},
           "seeds": list(per_seed), "results": results,
           "bitsplit_vs_rounding": {"what": "first layer of the seed-0 MLP, output MSE on the "
                                            "calibration images (float weights vs quantized)",
                                    "rows": bitsplit_vs_rounding(0)}}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    w = max(len(r["run"]) for r in results)
    for r in results:
        print(f"{r['run']:<{w}}  float {r['float_accuracy']:.2%}  quantized {r['quantized_accuracy']:.2%}")
    for r in doc["bitsplit_vs_rounding"]["rows"]:
        print(f"bit-split {r['bits']} bits: output MSE {r['ratio']:.2f}× that of rounding")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
