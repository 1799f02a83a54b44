"""A float model as an ``.npz`` of layer weights, and its quantization into a network file.

The float model (documented in docs/quantize.md) is a chain of dense or conv2d layers, each
``z = W x + b`` (or ``z = −Σ|x − w| + b`` for the ``adder`` method), optional BatchNorm, ReLU
between layers, and argmax at the end. Keys:

* ``w0, w1, …`` — weights, consecutive from 0: dense ``(out, in)`` (PyTorch order), conv ``OIHW``;
* ``b<i>`` — bias ``(out,)``, optional;
* ``bn<i>_gamma, bn<i>_beta, bn<i>_mean, bn<i>_var`` — BatchNorm after layer i, all four or none;
  ``bn<i>_eps`` a scalar, default 1e-5;
* ``stride<i>``, ``padding<i>`` — conv only, integer scalars (default 1 and 0);
* ``input_shape`` — integer vector, e.g. ``[1, 8, 8]``; required when ``w0`` is a conv.

A dense layer after a conv layer reads its input flattened in C, H, W order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.errors import NetworkError
from sim.golden import im2col

from . import quantizers as qz

__all__ = ["METHODS", "FloatLayer", "FloatModel", "model_from_arrays", "load_float_model",
           "float_forward", "quantize_model"]

METHODS = ("binarize", "sibnn", "sttn", "onehot", "bitsplit", "adder")
# Default --bits of each method (see docs/quantize.md for what it counts).
DEFAULT_BITS = {"binarize": 2, "sibnn": 1, "sttn": 2, "onehot": 4, "bitsplit": 4, "adder": 6}
_BN = ("gamma", "beta", "mean", "var")


@dataclass(frozen=True, eq=False)
class FloatLayer:
    w: np.ndarray
    b: np.ndarray | None
    bn: qz.BatchNorm | None
    conv: dict | None      # kernel, stride, padding (pairs) for conv2d


@dataclass(frozen=True, eq=False)
class FloatModel:
    input_shape: tuple[int, ...]
    layers: tuple[FloatLayer, ...]


def _float(arrays, key, shape=None, what="") -> np.ndarray:
    a = np.asarray(arrays[key])
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise NetworkError(key, f"expected numbers, found {a.dtype}")
    a = a.astype(np.float64)
    if shape is not None and a.shape != tuple(shape):
        raise NetworkError(key, f"expected shape {tuple(shape)}{f' ({what})' if what else ''}, "
                                f"found {a.shape}")
    if not np.isfinite(a).all():
        raise NetworkError(key, "values must be finite")
    return a


def _int_scalar(arrays, key, default, lo) -> int:
    if key not in arrays:
        return default
    a = np.asarray(arrays[key])
    if a.shape != () or not np.issubdtype(a.dtype, np.integer) or int(a) < lo:
        raise NetworkError(key, f"expected an integer scalar >= {lo}, found {a.dtype} {a.shape}")
    return int(a)


def model_from_arrays(arrays: dict) -> FloatModel:
    """Validate the arrays of a float model (see the module docstring) and build it.

    Raises
    ------
    NetworkError
        Naming the offending key.
    """
    used = set()
    n = 0
    while f"w{n}" in arrays:
        n += 1
    if n == 0:
        raise NetworkError("w0", "required: the first layer's weights")
    shape = None
    if "input_shape" in arrays:
        used.add("input_shape")
        s = np.asarray(arrays["input_shape"])
        if s.ndim != 1 or s.size not in (1, 3) or not np.issubdtype(s.dtype, np.integer) or (s < 1).any():
            raise NetworkError("input_shape", f"expected [N] or [C, H, W] of positive integers, "
                                              f"found {s.tolist()}")
        shape = tuple(int(v) for v in s)
    cur = shape
    layers = []
    for i in range(n):
        key = f"w{i}"
        used.add(key)
        w = _float(arrays, key)
        if w.ndim == 4:
            if cur is None or len(cur) != 3:
                why = "give input_shape" if cur is None else f"its input is {list(cur)}"
                raise NetworkError(key, f"a conv layer (OIHW) needs an image input [C, H, W]; {why}")
            if w.shape[1] != cur[0]:
                raise NetworkError(key, f"expected {cur[0]} input channels (OIHW), found {w.shape[1]}")
            stride = _int_scalar(arrays, f"stride{i}", 1, 1)
            pad = _int_scalar(arrays, f"padding{i}", 0, 0)
            used |= {f"stride{i}", f"padding{i}"}
            kh, kw = w.shape[2:]
            oh, ow = (cur[1] + 2 * pad - kh) // stride + 1, (cur[2] + 2 * pad - kw) // stride + 1
            if oh < 1 or ow < 1:
                raise NetworkError(key, f"kernel {kh}×{kw} is larger than the padded input")
            conv = {"kernel": (kh, kw), "stride": (stride, stride), "padding": (pad, pad)}
            nxt = (w.shape[0], oh, ow)
        elif w.ndim == 2:
            if cur is None:
                cur = (w.shape[1],)
            if w.shape[1] != int(np.prod(cur)):
                raise NetworkError(key, f"expected shape (out, {int(np.prod(cur))}), found {w.shape}")
            for k in (f"stride{i}", f"padding{i}"):
                if k in arrays:
                    raise NetworkError(k, f"only conv layers take {k.rstrip('0123456789')}")
            conv = None
            nxt = (w.shape[0],)
        else:
            raise NetworkError(key, f"expected a dense (out, in) or conv (OIHW) array, found {w.ndim} "
                                    f"dimensions")
        b = None
        if f"b{i}" in arrays:
            used.add(f"b{i}")
            b = _float(arrays, f"b{i}", (w.shape[0],), "one per output channel")
        bn = None
        present = [f"bn{i}_{p}" for p in _BN if f"bn{i}_{p}" in arrays]
        if present:
            missing = [f"bn{i}_{p}" for p in _BN if f"bn{i}_{p}" not in arrays]
            if missing:
                raise NetworkError(missing[0], "required with the other BatchNorm arrays")
            vals = {p: _float(arrays, f"bn{i}_{p}", (w.shape[0],), "one per output channel")
                    for p in _BN}
            if (vals["var"] < 0).any():
                raise NetworkError(f"bn{i}_var", "variances must be non-negative")
            eps = 1e-5
            if f"bn{i}_eps" in arrays:
                e = _float(arrays, f"bn{i}_eps", (), "a scalar")
                eps = float(e)
                if eps < 0:
                    raise NetworkError(f"bn{i}_eps", "must be non-negative")
                used.add(f"bn{i}_eps")
            if ((vals["var"] + eps) <= 0).any():
                raise NetworkError(f"bn{i}_var", "variance + eps must be positive")
            bn = qz.BatchNorm(vals["gamma"], vals["beta"], vals["mean"], vals["var"], eps)
            used |= set(present)
        layers.append(FloatLayer(w, b, bn, conv))
        if shape is None:
            shape = cur
        cur = nxt
    unknown = sorted(set(arrays) - used)
    if unknown:
        raise NetworkError(unknown[0], "unknown key (expected w<i>, b<i>, bn<i>_gamma/beta/mean/var/eps, "
                                       "stride<i>, padding<i>, input_shape)")
    return FloatModel(tuple(shape), tuple(layers))


def load_float_model(path) -> FloatModel:
    """Read a float model ``.npz`` (``allow_pickle=False``)."""
    import zipfile
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise NetworkError("", f"float model not found: {path}")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise NetworkError("", f"cannot read {p.name}: {e}") from None
    return model_from_arrays(arrays)


def _linear(x, layer: FloatLayer, adder: bool) -> np.ndarray:
    """``W x + b`` (or ``−Σ|x − w| + b``) of a float layer, channels on axis 1."""
    n = x.shape[0]
    oc = layer.w.shape[0]
    wm = layer.w.reshape(oc, -1)
    if layer.conv is not None:
        c = layer.conv
        cols = im2col(x, c["kernel"], c["stride"], c["padding"], 0.0)
        _, oh, ow, k = cols.shape
        rows = cols.reshape(-1, k)
    else:
        rows = x.reshape(n, -1)
    if adder:
        z = -np.abs(rows[:, None, :] - wm[None]).sum(axis=2)
    else:
        z = rows @ wm.T
    if layer.b is not None:
        z = z + layer.b
    if layer.conv is not None:
        z = z.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
    return z


def float_forward(model: FloatModel, x, *, adder: bool = False) -> np.ndarray:
    """The float model's outputs (logits) for inputs (N, *input_shape)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, *model.input_shape)
    for i, layer in enumerate(model.layers):
        z = qz.batchnorm(_linear(x, layer, adder), layer.bn, axis=1)
        x = z if i == len(model.layers) - 1 else np.maximum(z, 0.0)
    return x


def _input(calib: np.ndarray, bits: int, shape) -> tuple[dict, qz.LayerInput]:
    """The input quantizer: uint (or int when calibration inputs go negative) on one scale."""
    lo_x = float(calib.min())
    top = float(np.abs(calib).max()) or 1.0
    if lo_x >= 0:
        t, lo, hi = {"encoding": "uint", "bits": bits}, 0, (1 << bits) - 1
    else:
        hi = (1 << (bits - 1)) - 1
        t, lo = {"encoding": "int", "bits": bits}, -hi
    scale = top / hi
    q = np.clip(np.rint(calib / scale), lo, hi).astype(np.int64)
    spec = {"shape": list(shape), **t, "quantizer": {"scale": scale, "rounding": "half-even",
                                                     "clip": [lo, hi]}}
    channels = shape[0]
    return spec, qz.LayerInput(t, lo, hi, np.zeros(channels), np.full(channels, scale), q)


def quantize_model(model: FloatModel, method: str, calib, *, bits: int | None = None,
                   act_bits: int | None = None, input_bits: int = 8, threshold: str = "mi",
                   delta: str = "twn", name: str = "network") -> tuple[dict, dict, list[qz.QuantLayer]]:
    """Quantize a float model with one of :data:`METHODS`; returns ``(doc, arrays, layers)``.

    ``doc`` and ``arrays`` are ready for :func:`gen.netfile.write_network`. ``calib`` (N, *input
    shape) sets the input scale, the activation grids and, for ``bitsplit``, the weights.
    ``threshold`` (mi or sign) is SI-BNN's threshold rule, ``delta`` (twn or optimal) STTN's zero
    band.

    Raises
    ------
    NetworkError
        When the model cannot be quantized with this method (naming the array).
    """
    if method not in METHODS:
        raise NetworkError("--method", f"expected one of {', '.join(METHODS)}, not {method!r}")
    bits = DEFAULT_BITS[method] if bits is None else bits
    calib = np.asarray(calib, dtype=np.float64).reshape(-1, *model.input_shape)
    spec, inp = _input(calib, input_bits, model.input_shape)
    if method == "onehot" and inp.lo < 0:
        raise NetworkError("--calib", f"onehot layers take non-negative inputs, but calibration "
                                      f"inputs go down to {float(calib.min()):g}")
    arrays: dict[str, np.ndarray] = {}
    layers, qls = [], []
    last_i = len(model.layers) - 1
    for i, fl in enumerate(model.layers):
        last = i == last_i
        common = dict(conv=fl.conv, last=last)
        name_i = f"l{i}"
        try:
            if method == "binarize":
                ql = qz.binarize_layer(name_i, fl.w, fl.b, fl.bn, inp, bits=bits, **common)
            elif method == "sibnn":
                ql = qz.sibnn_layer(name_i, fl.w, fl.b, fl.bn, inp, threshold=threshold, **common)
            elif method == "sttn":
                ql = qz.sttn_layer(name_i, fl.w, fl.b, fl.bn, inp, bits=bits, delta=delta, **common)
            elif method == "onehot":
                ql = qz.onehot_layer(name_i, fl.w, fl.b, fl.bn, inp, exponents=bits, **common)
            elif method == "bitsplit":
                ql = qz.bitsplit_layer(name_i, fl.w, fl.b, fl.bn, inp, bits=bits,
                                       act_bits=act_bits or max(bits, 4), **common)
            else:
                ql = qz.adder_layer(name_i, fl.w, fl.b, fl.bn, inp, bits=bits,
                                    act_bits=act_bits or bits, **common)
        except ValueError as e:
            key = f"bn{i}_gamma" if "BatchNorm" in str(e) else f"w{i}"
            raise NetworkError(key, str(e)[0].lower() + str(e)[1:]) from None
        layers.append(ql.layer)
        arrays.update(ql.arrays)
        qls.append(ql)
        inp = ql.out
    layers.append({"type": "argmax"})
    doc = {"version": 1, "name": name,
           "source": f"nomul quantize --method {method} --bits {bits}",
           "metadata": {"method": method, "bits": bits, "input_bits": input_bits},
           "input": spec, "layers": layers}
    if method == "sibnn":
        doc["metadata"]["threshold"] = threshold
    if method == "sttn":
        doc["metadata"]["delta"] = delta
    if act_bits is not None:
        doc["metadata"]["act_bits"] = act_bits
    return doc, arrays, qls
