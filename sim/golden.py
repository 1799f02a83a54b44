"""The integer golden model: the arithmetic spec that the hardware must match bit for bit.

Vectorized over a batch of N inputs. :func:`run` returns every layer's accumulators and outputs
so that a mismatch can be traced to the first layer that differs. Every accumulator is checked
against the exact range that :mod:`gen.load` inferred from the weights: a value outside it
would be a bug in the width inference, and raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen import macs
from gen.errors import NetworkError
from gen.ir import INPUT, MultiThreshold, Network, Requant
from gen.ops import op_for
from gen.ops.compute import activate
from gen.ops.conv2d import im2col

__all__ = ["LayerResult", "GoldenResult", "run", "quantize_input", "check_input",
           "apply_quantizer", "dot", "threshold", "requant", "round_shift", "im2col"]


@dataclass(frozen=True)
class LayerResult:
    name: str
    acc: np.ndarray | None   # (N, channels, ...) before the activation; None for pool/argmax
    out: np.ndarray          # (N, *out_shape)


@dataclass(frozen=True)
class GoldenResult:
    layers: tuple[LayerResult, ...]
    output_names: tuple[str, ...] = ()

    def tensor(self, name: str) -> np.ndarray:
        for lr in self.layers:
            if lr.name == name:
                return lr.out
        raise KeyError(name)

    @property
    def outputs(self) -> np.ndarray:
        """The network's (first) output."""
        return self.tensor(self.output_names[0]) if self.output_names else self.layers[-1].out

    @property
    def top1(self) -> np.ndarray:
        return self.outputs[:, 0]


# -- arithmetic primitives ---------------------------------------------------------------------
def dot(mac: str, a: np.ndarray, w: np.ndarray, *, shift: int = 0, bound: int | None = None) -> np.ndarray:
    """Dot products of every row of ``a`` (N, K) with every row of ``w`` (M, K): (N, M) int64.

    Every MAC kind but ``adder`` is the ordinary product of values (the binary, SI-BNN,
    ternary and one-hot closed forms are that product); ``adder`` is ``-Σ|a - (w << shift)|``
    (:func:`gen.macs.dot`, the MAC-kind registry's dot product).
    """
    return macs.dot(mac, a, w, shift=shift, bound=bound)


def round_shift(v: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """``v / 2**shift`` rounded as asked (floor, ceil, half-up, half-even), in integers."""
    v = np.asarray(v, dtype=np.int64)
    if shift == 0:
        return v
    q = v >> shift
    rem = v - (q << shift)
    half = 1 << (shift - 1)
    if rounding == "floor":
        return q
    if rounding == "ceil":
        return q + (rem != 0)
    if rounding == "half-up":
        return q + (rem >= half)
    if rounding == "half-even":
        return q + ((rem > half) | ((rem == half) & (q & 1 == 1)))
    raise ValueError(f"Rounding must be floor, ceil, half-up or half-even, not {rounding!r}")


def threshold(acc: np.ndarray, act: MultiThreshold) -> np.ndarray:
    """Multi-threshold activation of accumulators (N, C, ...) with channels on axis 1."""
    return activate(act, acc)


def requant(acc: np.ndarray, act: Requant) -> np.ndarray:
    return activate(act, acc)


def check_input(net: Network, x) -> np.ndarray:
    """Check a batch of integer input values (N, *shape) against the input type; int64 copy."""
    x = np.asarray(x)
    shape = net.input.shape
    if x.shape[1:] != shape:
        if x.ndim == len(shape) and x.shape == shape:
            x = x[None]
        else:
            raise NetworkError("input", f"expected shape (N, {', '.join(map(str, shape))}), "
                                        f"found {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        if not np.issubdtype(x.dtype, np.floating) or not np.array_equal(x, np.round(x)):
            raise NetworkError("input", f"raw inputs must be integers, found {x.dtype}")
    x = x.astype(np.int64)
    bad = ~net.input.dtype.contains(x)
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), x.shape)
        raise NetworkError("input", f"value {int(x[idx])} at index {list(map(int, idx))} is not a "
                                    f"{net.input.dtype} value")
    return x


def quantize_input(net: Network, x) -> np.ndarray:
    """Float inputs (N, *shape) through the network's input quantizer: int64 values."""
    q = net.input.quantizer
    if q is None:
        raise NetworkError("input.quantizer", "the network has no input quantizer; give integer "
                                              "inputs (--raw)")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise NetworkError("input", "inputs must be finite")
    return check_input(net, apply_quantizer(q, x))


def apply_quantizer(q, x) -> np.ndarray:
    """An :class:`gen.ir.InputQuantizer` applied to finite float inputs: int64 values."""
    x = np.asarray(x, dtype=np.float64)
    if q.kind == "threshold":
        v = np.where(x >= q.threshold, 1, -1)
    elif q.kind == "multithreshold":
        v = q.zero_point + np.searchsorted(np.asarray(q.thresholds), x, side="right")
    else:
        s = (x + q.offset) / q.scale if q.offset else x / q.scale
        if q.rounding == "half-even":
            r = np.rint(s)
        elif q.rounding == "half-up":
            r = np.floor(s)  # not floor(s + 0.5): that rounds 0.49999999999999994 up
            r += s - r >= 0.5
        elif q.rounding == "floor":
            r = np.floor(s)
        else:
            r = np.ceil(s)
        v = np.clip(r + q.zero_point, *q.clip)
    return v.astype(np.int64)


def run(net: Network, x) -> GoldenResult:
    """Run the network on a batch of integer input values (N, *input shape), layer by layer in
    topological order (every layer's op computes it, :meth:`gen.ops.base.LayerOp.golden`)."""
    tensors = {INPUT: check_input(net, x)}
    results = []
    for layer in net.layers:
        acc, out = op_for(layer).golden(layer, [tensors[t] for t in layer.inputs])
        tensors[layer.name] = out
        results.append(LayerResult(layer.name, acc, out))
    return GoldenResult(tuple(results), tuple(net.outputs))
