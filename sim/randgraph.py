"""Random graph networks for tests: residual blocks (conv → conv, plus the skip path, into an
``add``), branches joined by ``concat``, global and 2-D average pooling.

Every function returns ``(doc, arrays)`` of a version-2 network file, like
:func:`sim.randnet.random_network` (whose chains they start from).
"""

from __future__ import annotations

import numpy as np

from hw.dtypes import DType

from .randnet import MAC_TYPES, random_network, random_weights

__all__ = ["residual_network", "sum_activation_dict", "concat_network"]


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
                   classes: int = 4, fold: dict | None = None) -> tuple[dict, dict]:
    """Two branches from the input (conv ``a`` 3×3 and conv ``b`` 1×1... both 3×3 here, padding
    1) joined by ``concat``, then a dense layer."""
    doc_a, arrays = random_network(rng, [mac, mac], conv=True, in_shape=list(in_shape),
                                   widths=[widths[0], classes])
    doc_b, arrays_b = random_network(rng, [mac, mac], conv=True, in_shape=list(in_shape),
                                     widths=[widths[1], classes])
    a = dict(doc_a["layers"][0], name="a", inputs=["input"])
    b = dict(doc_b["layers"][0], name="b", inputs=["input"])
    for key in list(arrays_b):
        arrays[f"{key}b"] = arrays_b[key]
    b["weights"] = dict(b["weights"], key=b["weights"]["key"] + "b")
    if "bias" in b:
        b["bias"] = b["bias"] + "b"
    if b["activation"].get("thresholds"):
        b["activation"] = dict(b["activation"], thresholds=b["activation"]["thresholds"] + "b")
    cat = {"type": "concat", "name": "cat", "inputs": ["a", "b"]}
    fc = dict(doc_a["layers"][-1], name="fc", inputs=["cat"])
    c, h, w = sum(widths), in_shape[1], in_shape[2]
    arrays[fc["weights"]["key"]] = random_weights(rng, MAC_TYPES[mac][0], (classes, c * h * w))
    layers = [a, b, cat, fc]
    for layer in layers:
        if fold and layer["name"] in fold:
            layer.update(fold[layer["name"]])
    doc_a.update(version=2, name="concat", layers=layers)
    return doc_a, arrays
