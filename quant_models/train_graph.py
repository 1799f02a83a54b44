"""Quantization-aware training of graph networks (residual and depthwise-separable) in numpy.

:mod:`quant_models.train` trains chains; this module adds what a DAG needs and reuses its layers,
quantizers, optimizer (:func:`quant_models.train.fit`) and BatchNorm folding:

* :class:`GraphModel`, a list of :class:`Node` in topological order, each reading named tensors
  (``"input"`` or an earlier node's name; a tensor may be read by several nodes: fan-out, whose
  gradients add up in the backward pass);
* :class:`AddJoin`, the residual join ``m0·x0 + m1·x1`` with fixed integer multipliers;
* :class:`GlobalSum`, global average pooling as the hardware computes it: the exact per-channel
  sum of the pixels (the division is left to the BatchNorm and quantizer after it);
* :class:`DwConv2d`, a depthwise convolution (one kernel per channel) with quantized weights.

Every node exports to one layer of a version-2 network file (:func:`export`): a compute node
(``Conv2d``/``Dense``/``DwConv2d``, then BatchNorm + Activation or Scale), a ``MaxPool2d``, a
``GlobalSum`` or an ``AddJoin``, each optionally followed by BatchNorm + Activation (folded into
integer thresholds; the BatchNorm of a pooling or add node must keep ``positive`` scales, since
its accumulator cannot be negated). The float model then computes exactly the integers the
golden model of the exported file does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gen import macs
from hw.dtypes import DType

from . import train as T

__all__ = ["Node", "AddJoin", "GlobalSum", "DwConv2d", "GraphModel", "recalibrate", "export"]


# -- layers --------------------------------------------------------------------------------------
class AddJoin:
    """``m0·x0 + m1·x1`` (integer multipliers): the residual join."""

    def __init__(self, multipliers=(1, 1)):
        self.multipliers = tuple(int(m) for m in multipliers)

    def forward(self, xs, train):
        if xs[0].shape != xs[1].shape:
            raise ValueError(f"add needs inputs of the same shape, not {xs[0].shape} and "
                             f"{xs[1].shape}")
        return self.multipliers[0] * xs[0] + self.multipliers[1] * xs[1]

    def backward(self, g):
        return [self.multipliers[0] * g, self.multipliers[1] * g]


class GlobalSum(T.Layer):
    """Per-channel sum over the pixels: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x, train):
        self._shape = x.shape
        return x.sum(axis=(2, 3), keepdims=True)

    def backward(self, g):
        return np.broadcast_to(g, self._shape).copy()


class DwConv2d(T.Layer):
    """Depthwise convolution: channel ``c`` of the output is channel ``c`` of the input convolved
    with its own ``kernel × kernel`` quantized weights (shape (C, 1, k, k))."""

    adder = False

    def __init__(self, channels: int, wq, rng, *, kernel: int = 3, stride: int = 1,
                 padding: int = 0, pad_value: int = 0):
        self.wq = wq
        self.kernel, self.stride, self.padding, self.pad_value = kernel, stride, padding, pad_value
        w = rng.normal(0, 1, size=(channels, 1, kernel, kernel)) / kernel
        if wq.clip is not None:
            w = np.clip(w * 2, -wq.clip, wq.clip)
        self.w = T.Param(w)
        self.need_dx = True

    def params(self):
        return [self.w]

    def constrain(self):
        if self.wq.clip is not None:
            np.clip(self.w.value, -self.wq.clip, self.wq.clip, out=self.w.value)

    def qweights(self) -> np.ndarray:
        return self.wq.quantize(self.w.value)

    def forward(self, x, train):
        k, s, p = self.kernel, self.stride, self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.pad_value)
        win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        self._xshape, self._win = x.shape, win                    # (N, C, OH, OW, k, k)
        q = self.qweights()[:, 0]
        self._q = q
        return np.einsum("ncyxij,cij->ncyx", win, q, optimize=True)

    def backward(self, g):
        win, q = self._win, self._q
        dq = np.einsum("ncyx,ncyxij->cij", g, win, optimize=True)
        self.w.grad = self.wq.grad(self.w.value, dq[:, None])
        if not self.need_dx:
            return None
        k, s, p = self.kernel, self.stride, self.padding
        n, c, oh, ow = g.shape
        dx = np.zeros(self._xshape)
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += g * q[None, :, i, j,
                                                                                     None, None]
        h, w = self._xshape[2] - 2 * p, self._xshape[3] - 2 * p
        return dx[:, :, p:p + h, p:p + w]


_COMPUTE = (T._Compute, DwConv2d)


# -- the graph -----------------------------------------------------------------------------------
@dataclass(eq=False)
class Node:
    """One layer of the exported network: an optional ``join`` of its inputs, then ``layers``
    in order. ``inputs`` are tensor names (default: the previous node, or ``"input"``)."""

    name: str
    layers: list
    inputs: tuple[str, ...] = ()
    join: AddJoin | None = None


class GraphModel:
    """A DAG of :class:`Node`, in topological order; the last node is the output (logits)."""

    def __init__(self, nodes: list[Node], name: str = "network"):
        self.name = name
        self.nodes = []
        known = {"input"}
        prev = "input"
        for node in nodes:
            inputs = tuple(node.inputs) or (prev,)
            if node.name in known:
                raise ValueError(f"Node name {node.name!r} is used twice")
            for i in inputs:
                if i not in known:
                    raise ValueError(f"Node {node.name!r} reads {i!r}, which no earlier node makes")
            if (node.join is None) != (len(inputs) == 1):
                raise ValueError(f"Node {node.name!r}: a join needs two inputs, other nodes one")
            self.nodes.append(Node(node.name, list(node.layers), inputs, node.join))
            known.add(node.name)
            prev = node.name
        for node in self.nodes:   # a compute layer on the network input needs no input gradient
            if node.inputs == ("input",):
                for layer in node.layers:
                    if isinstance(layer, _COMPUTE):
                        layer.need_dx = False
                        break

    @property
    def layers(self) -> list:
        """Every layer of every node (what :func:`quant_models.train.fit` constrains)."""
        return [layer for node in self.nodes for layer in node.layers]

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def tensors(self, x, train=False, *, calibrate=False) -> dict:
        """Every node's output tensor by name (``calibrate`` sets each BatchNorm's statistics
        to those of its input on ``x`` before using it)."""
        vals = {"input": np.asarray(x, dtype=np.float64)}
        for node in self.nodes:
            xs = [vals[i] for i in node.inputs]
            h = node.join.forward(xs, train) if node.join is not None else xs[0]
            for layer in node.layers:
                if calibrate and isinstance(layer, T.BatchNorm):
                    axes = (0,) + tuple(range(2, h.ndim))
                    layer.mean, layer.var = h.mean(axis=axes), h.var(axis=axes)
                h = layer.forward(h, train)
            vals[node.name] = h
        return vals

    def forward(self, x, train=False):
        return self.tensors(x, train)[self.nodes[-1].name]

    def backward(self, g):
        grads = {self.nodes[-1].name: g}
        for node in reversed(self.nodes):
            g = grads.pop(node.name, None)
            for layer in reversed(node.layers):
                if g is None:
                    break
                g = layer.backward(g)
            if g is None:
                continue
            gs = node.join.backward(g) if node.join is not None else [g]
            for name, gi in zip(node.inputs, gs, strict=True):
                if name != "input":
                    grads[name] = grads[name] + gi if name in grads else gi


def recalibrate(model: GraphModel, x) -> None:
    """Set every BatchNorm's statistics to those of the whole training set ``x`` (in
    topological order, each with the statistics before it already in place)."""
    model.tensors(x, False, calibrate=True)


# -- export --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    dtype: DType
    lo: int
    hi: int


def _activation(layers, j, key, amin, amax, *, symmetric: bool, arrays: dict):
    """Fold ``layers[j:j + 2]`` (BatchNorm, Activation) into an activation entry; returns
    (entry, flip rows or None, output tensor type)."""
    bn, act = layers[j], layers[j + 1]
    if not (isinstance(bn, T.BatchNorm) and isinstance(act, T.Activation)):
        raise TypeError(f"Expected BatchNorm + Activation, not {type(bn).__name__} + "
                        f"{type(act).__name__}")
    quant = act.q
    if quant.export != "thresholds":
        raise TypeError("A graph node's activation exports as thresholds only, not "
                        f"{quant.export!r}")
    t, flip = T._thresholds(bn, quant, amin, amax, symmetric)
    arrays[f"t_{key}"] = t
    entry = quant.spec(f"t_{key}")
    return entry, flip, _Tensor(quant.out_dtype(), min(quant.levels), max(quant.levels))


def _layers_after(node, j):
    rest = node.layers[j:]
    if rest and not (len(rest) == 2 and isinstance(rest[0], T.BatchNorm)):
        raise TypeError(f"Node {node.name!r}: after its operation, expected nothing or "
                        f"BatchNorm + Activation, not {[type(r).__name__ for r in rest]}")
    return bool(rest)


def _export_compute(node, layer, j, inp: _Tensor, arrays):
    key = node.name
    q = layer.qweights().astype(np.int64)
    mac = T._mac_kind(layer.wq, inp.dtype)
    rows = q.reshape(q.shape[0], -1)
    amin, amax = macs.acc_bounds(mac, rows, inp.lo, inp.hi)
    kind = ("dwconv2d" if isinstance(layer, DwConv2d) else
            "conv2d" if isinstance(layer, T.Conv2d) else "dense")
    entry = {"type": kind, "mac": mac, "weights": {"key": f"w_{key}", **layer.wq.spec(q)}}
    if kind != "dense":
        entry.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding)
        if layer.padding:
            entry["pad_value"] = int(layer.pad_value)
    rest = node.layers[j + 1:]
    if rest and isinstance(rest[0], T.Scale) and len(rest) == 1:
        arrays[f"b_{key}"] = np.round(rest[0].b.value).astype(np.int64)
        entry["bias"] = f"b_{key}"
        out = None
    elif _layers_after(node, j + 1):
        act, flip, out = _activation(node.layers, j + 1, key, amin, amax,
                                     symmetric=layer.wq.symmetric, arrays=arrays)
        if flip is not None:
            q = np.where(flip.reshape(-1, *([1] * (q.ndim - 1))), -q, q)
        entry["activation"] = act
    else:
        lo, hi = int(amin.min()), int(amax.max())
        out = _Tensor(DType.for_range(lo, hi), lo, hi)
    arrays[f"w_{key}"] = q.astype(np.int8 if np.abs(q).max() < 128 else np.int16)
    return entry, out


def _export_sum(node, entry, j, lo, hi, channels, arrays):
    """A pooling or add node: the exact sum in [lo, hi], then an optional activation."""
    if _layers_after(node, j):
        act, _, out = _activation(node.layers, j, node.name, np.full(channels, lo),
                                  np.full(channels, hi), symmetric=False, arrays=arrays)
        entry["activation"] = act
    else:
        out = _Tensor(DType.for_range(lo, hi), lo, hi)
    return entry, out


def export(model: GraphModel, *, input_spec: dict, source: str = "", metadata: dict | None = None):
    """The version-2 network description (dict) and arrays of a trained graph model, ending in
    argmax. ``input_spec`` is the file's ``input`` entry."""
    spec_in = dict(input_spec)
    in_dtype = DType(spec_in["encoding"], spec_in.get("bits", 1))
    shapes = {k: v.shape[1:] for k, v in
              model.tensors(np.zeros((1, *spec_in["shape"]))).items()}
    tensors = {"input": _Tensor(in_dtype, in_dtype.min, in_dtype.max)}
    layers, arrays = [], {}
    prev = "input"
    for node in model.nodes:
        ins = [tensors[i] for i in node.inputs]
        entry = {"name": node.name}
        if node.inputs != (prev,):
            entry["inputs"] = list(node.inputs)
        ls = [layer for layer in node.layers if not isinstance(layer, T.Flatten)]
        node = Node(node.name, ls, node.inputs, node.join)
        if node.join is not None:
            m0, m1 = node.join.multipliers
            lo = sum(min(m * t.lo, m * t.hi) for m, t in zip((m0, m1), ins, strict=True))
            hi = sum(max(m * t.lo, m * t.hi) for m, t in zip((m0, m1), ins, strict=True))
            entry.update(type="add", multipliers=[m0, m1])
            entry, out = _export_sum(node, entry, 0, lo, hi, shapes[node.name][0], arrays)
        elif isinstance(ls[0], _COMPUTE):
            body, out = _export_compute(node, ls[0], 0, ins[0], arrays)
            entry.update(body)
        elif isinstance(ls[0], T.MaxPool2d) and len(ls) == 1:
            entry.update(type="maxpool2d", kernel=ls[0].kernel)
            out = ins[0]
        elif isinstance(ls[0], GlobalSum):
            n = math.prod(shapes[node.inputs[0]][1:])
            entry.update(type="globalavgpool")
            entry, out = _export_sum(node, entry, 1, n * ins[0].lo, n * ins[0].hi,
                                     shapes[node.name][0], arrays)
        else:
            raise TypeError(f"Node {node.name!r}: cannot export {[type(x).__name__ for x in ls]}")
        head = {"type": entry.pop("type"), "name": entry.pop("name")}
        layers.append({**head, **entry})
        tensors[node.name] = out
        prev = node.name
    layers.append({"type": "argmax", "name": "class"})
    doc = {"version": 2, "name": model.name, "source": source, "metadata": dict(metadata or {}),
           "input": spec_in, "layers": layers}
    return doc, arrays
