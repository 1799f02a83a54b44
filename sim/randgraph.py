"""Random graph networks for tests: residual blocks (conv → conv, plus the skip path, into an
``add``), branches joined by ``concat``, global and 2-D average pooling.

Every function returns ``(doc, arrays)`` of a version-2 network file, like
:func:`sim.randnet.random_network` (whose chains they start from).
"""

from __future__ import annotations

import numpy as np

from hw.dtypes import DType

from .randnet import MAC_TYPES, random_network, random_weights

__all__ = ["residual_network", "sum_activation_dict", "concat_network", "calibrate", "resnet_network"]


def _dtype(spec: dict) -> DType:
    from gen.schema import TypeSpec, dtype_of

    return dtype_of("type", TypeSpec(**spec))


def sum_activation_dict(rng, lo: int, hi: int, channels: int, out: dict, key: str, arrays: dict, *,
                        style: str = "multithreshold") -> dict:
    """An activation from sums in [lo, hi] to the type ``out`` (a type dict): a requant that
    maps the range onto the type, or random thresholds inside the range."""
    dt = _dtype(out)
    if style == "requant" and dt.encoding in ("uint", "int"):
        span = max(1, hi - lo)
        shift = max(0, span.bit_length() - dt.bits + 1)
        return {"type": "requant", "multiplier": 1, "shift": shift,
                "rounding": str(rng.choice(["floor", "ceil", "half-up", "half-even"])),
                "clip": [dt.min, dt.max]}
    if dt.encoding == "bipolar":
        n, extra = 1, {"bipolar": True}
    else:
        n = dt.max - dt.min
        extra = {"offset": dt.min} if dt.min else {}
    mid_lo, mid_hi = lo + (hi - lo) // 4, hi - (hi - lo) // 4
    arrays[key] = np.sort(rng.integers(mid_lo, mid_hi + 1, size=(channels, n)), axis=1)
    return {"type": "multithreshold", "thresholds": key, **extra}


def residual_network(rng: np.random.Generator, mac: str = "int", *, in_shape=(4, 6, 6), blocks: int = 1,
                     classes: int = 5, gap: bool = False, multipliers=(1, 1), style: str = "multithreshold",
                     fold: dict | None = None) -> tuple[dict, dict]:
    """``blocks`` residual blocks (conv 3×3 → conv 3×3, padding 1, and the block's input into an
    ``add``), then optionally a ``globalavgpool``, then a dense layer of ``classes`` outputs.

    ``multipliers`` are the add's; ``fold`` maps layer names (``b<i>c0``, ``b<i>c1``, ``fc``)
    to ``{pe, simd}`` written into the file.
    """
    c = in_shape[0]
    doc, arrays = random_network(rng, [mac] * (2 * blocks + 1), conv=True, in_shape=list(in_shape),
                                 widths=[c] * (2 * blocks) + [classes], style=style)
    act_type = MAC_TYPES[mac][1]
    dt = _dtype(act_type)
    chain = doc["layers"]
    layers = []
    skip = "input"
    for b in range(blocks):
        c0, c1 = dict(chain[2 * b]), dict(chain[2 * b + 1])
        c0.update(name=f"b{b}c0", inputs=[skip])
        c1.update(name=f"b{b}c1", inputs=[f"b{b}c0"])
        lo = hi = 0
        for m in multipliers:
            p, q = m * dt.min, m * dt.max
            lo, hi = lo + min(p, q), hi + max(p, q)
        act = sum_activation_dict(rng, lo, hi, c, act_type, f"ta{b}", arrays, style=style)
        add = {"type": "add", "name": f"b{b}add", "inputs": [f"b{b}c1", skip],
               "multipliers": list(multipliers), "activation": act}
        layers += [c0, c1, add]
        skip = f"b{b}add"
    fc = dict(chain[-1])
    fc.update(name="fc", inputs=[skip])
    if gap:
        h, w = in_shape[1], in_shape[2]
        act = sum_activation_dict(rng, h * w * dt.min, h * w * dt.max, c, act_type, "tgap", arrays,
                                  style=style)
        layers.append({"type": "globalavgpool", "name": "gap", "inputs": [skip], "activation": act})
        arrays[fc["weights"]["key"]] = random_weights(rng, MAC_TYPES[mac][0], (classes, c))
        fc["inputs"] = ["gap"]
    layers.append(fc)
    for layer in layers:
        if fold and layer["name"] in fold:
            layer.update(fold[layer["name"]])
    doc.update(version=2, name="residual", layers=layers)
    return doc, arrays


def concat_network(rng: np.random.Generator, mac: str = "int", *, in_shape=(2, 5, 5), widths=(3, 2),
                   kernels=(3, 3), classes: int = 4, fold: dict | None = None) -> tuple[dict, dict]:
    """Convolutions of the input (``a``, ``b``, ``c``, …: one per entry of ``widths`` and
    ``kernels``, "same" padding) joined by ``concat``, then a dense layer."""
    names = "abcdefgh"[:len(widths)]
    doc_a, arrays = random_network(rng, [mac, mac], conv=True, in_shape=list(in_shape),
                                   widths=[widths[0], classes], kernel=kernels[0], padding=kernels[0] // 2)
    branches = [dict(doc_a["layers"][0], name="a", inputs=["input"])]
    for name, width, k in zip(names[1:], widths[1:], kernels[1:], strict=True):
        doc_b, arrays_b = random_network(rng, [mac, mac], conv=True, in_shape=list(in_shape),
                                         widths=[width, classes], kernel=k, padding=k // 2)
        b = dict(doc_b["layers"][0], name=name, inputs=["input"])
        for key in list(arrays_b):
            arrays[f"{key}{name}"] = arrays_b[key]
        b["weights"] = dict(b["weights"], key=b["weights"]["key"] + name)
        if "bias" in b:
            b["bias"] = b["bias"] + name
        if b["activation"].get("thresholds"):
            b["activation"] = dict(b["activation"], thresholds=b["activation"]["thresholds"] + name)
        branches.append(b)
    cat = {"type": "concat", "name": "cat", "inputs": list(names)}
    fc = dict(doc_a["layers"][-1], name="fc", inputs=["cat"])
    c, h, w = sum(widths), in_shape[1], in_shape[2]
    arrays[fc["weights"]["key"]] = random_weights(rng, MAC_TYPES[mac][0], (classes, c * h * w))
    layers = [*branches, cat, fc]
    for layer in layers:
        if fold and layer["name"] in fold:
            layer.update(fold[layer["name"]])
    doc_a.update(version=2, name="concat", layers=layers)
    return doc_a, arrays


def calibrate(rng: np.random.Generator, doc: dict, arrays: dict, *, samples: int = 64) -> dict:
    """Replace every activation ``{"type": "calibrate", "to": TYPE}`` of a version-2 network by
    thresholds to ``TYPE`` placed at random percentiles of the layer's accumulators on random
    inputs (so that outputs vary), layer by layer."""
    from gen.load import network_from_dict
    from sim import golden

    from .randnet import random_values

    doc = {**doc, "layers": [dict(la) for la in doc["layers"]]}
    x = None
    for i, layer in enumerate(doc["layers"]):
        act = layer.get("activation")
        if not act or act.get("type") != "calibrate":
            continue
        layer["activation"] = {"type": "none"}
        part = {**doc, "layers": doc["layers"][:i + 1], "outputs": [layer["name"]]}
        net = network_from_dict(part, arrays=arrays)
        if x is None:
            x = random_values(rng, net.input.dtype, (samples, *net.input.shape))
        acc = golden.run(net, x).outputs
        acc = np.moveaxis(acc, 1, -1).reshape(-1, acc.shape[1])
        dt = _dtype(act["to"])
        n = 1 if dt.encoding == "bipolar" else dt.max - dt.min
        qs = np.sort(rng.uniform(5, 95, size=(acc.shape[1], n)), axis=1)
        t = np.stack([np.percentile(acc[:, c], qs[c]) for c in range(acc.shape[1])]).round()
        key = f"cal{i}"
        arrays[key] = np.sort(t.astype(np.int64), axis=1)
        extra = {"bipolar": True} if dt.encoding == "bipolar" else ({"offset": dt.min} if dt.min else {})
        layer["activation"] = {"type": "multithreshold", "thresholds": key, **extra}
    return doc


def resnet_network(rng: np.random.Generator, mac: str = "int", *, in_shape=(3, 8, 8), channels=(4, 6),
                   classes: int = 5) -> tuple[dict, dict]:
    """A small ResNet: a stem convolution, an identity block, a downsampling block (3×3 stride
    2, then 3×3, beside a 1×1 stride-2 projection of the skip path), global average pooling and
    a dense classifier; activations calibrated on random inputs (:func:`calibrate`)."""
    wt, at = MAC_TYPES[mac]
    c0, c1 = channels
    cin = in_shape[0]
    arrays: dict = {}

    def conv(name, src, ic, oc, k, stride=1):
        arrays[f"w_{name}"] = random_weights(rng, wt, (oc, ic, k, k))
        d = {"type": "conv2d", "name": name, "inputs": [src], "mac": mac, "kernel": k, "stride": stride,
             "padding": k // 2, "weights": {"key": f"w_{name}", **wt},
             "activation": {"type": "calibrate", "to": at}}
        dt = _dtype(at)
        if k // 2 and not dt.contains(0):
            d["pad_value"] = int(dt.min)
        return d

    cal = {"type": "calibrate", "to": at}
    layers = [conv("stem", "input", cin, c0, 3),
              conv("b0c0", "stem", c0, c0, 3), conv("b0c1", "b0c0", c0, c0, 3),
              {"type": "add", "name": "b0", "inputs": ["b0c1", "stem"], "activation": cal},
              conv("b1c0", "b0", c0, c1, 3, 2), conv("b1c1", "b1c0", c1, c1, 3),
              conv("b1p", "b0", c0, c1, 1, 2),
              {"type": "add", "name": "b1", "inputs": ["b1c1", "b1p"], "activation": cal},
              {"type": "globalavgpool", "name": "gap", "inputs": ["b1"], "activation": cal}]
    arrays["w_fc"] = random_weights(rng, wt, (classes, c1))
    layers.append({"type": "dense", "name": "fc", "inputs": ["gap"], "mac": mac,
                   "weights": {"key": "w_fc", **wt}})
    doc = {"version": 2, "name": "resnet", "input": {"shape": list(in_shape), **at}, "layers": layers}
    return calibrate(rng, doc, arrays), arrays
