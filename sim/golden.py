"""The integer golden model: the arithmetic spec that the hardware must match bit for bit.

Vectorized over a batch of N inputs. :func:`run` returns every layer's accumulators and outputs
so that a mismatch can be traced to the first layer that differs. Every accumulator is checked
against the exact range that :mod:`gen.load` inferred from the weights: a value outside it
would be a bug in the width inference, and raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.errors import NetworkError
from gen.ir import Argmax, Conv2d, Dense, MaxPool2d, MultiThreshold, Network, Requant

__all__ = ["LayerResult", "GoldenResult", "run", "quantize_input", "check_input",
           "apply_quantizer", "dot", "threshold", "requant", "round_shift", "im2col"]

_CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class LayerResult:
    name: str
    acc: np.ndarray | None   # (N, channels, ...) before the activation; None for pool/argmax
    out: np.ndarray          # (N, *out_shape)


@dataclass(frozen=True)
class GoldenResult:
    layers: tuple[LayerResult, ...]

    @property
    def outputs(self) -> np.ndarray:
        return self.layers[-1].out

    @property
    def top1(self) -> np.ndarray:
        return self.layers[-1].out[:, 0]


# -- arithmetic primitives ---------------------------------------------------------------------
def dot(mac: str, a: np.ndarray, w: np.ndarray, *, shift: int = 0, bound: int | None = None) -> np.ndarray:
    """Dot products of every row of ``a`` (N, K) with every row of ``w`` (M, K): (N, M) int64.

    Every MAC kind but ``adder`` is the ordinary product of values (the binary, SI-BNN,
    ternary and one-hot closed forms are that product); ``adder`` is ``-Σ|a - (w << shift)|``.
    ``bound`` (a bound on Σ|a·w|) lets exact float BLAS be used when it cannot round.
    """
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if mac == "adder":
        ws = w << shift
        out = np.empty((a.shape[0], w.shape[0]), dtype=np.int64)
        small = np.abs(a).max(initial=0) + np.abs(ws).max(initial=0) < 1 << 30
        if small and w.shape[1] * (np.abs(a).max(initial=0) + np.abs(ws).max(initial=0)) < 1 << 31:
            a, ws = a.astype(np.int32), ws.astype(np.int32)
        step = max(1, _CHUNK_ELEMENTS // max(1, w.size))
        for s in range(0, a.shape[0], step):
            d = np.abs(a[s:s + step, None, :] - ws[None, :, :])
            out[s:s + step] = -d.sum(axis=2, dtype=np.int64)
        return out
    if bound is None:
        bound = int(np.abs(a).max(initial=0)) * int(np.abs(w).sum(axis=1).max(initial=0))
    if bound < 1 << 24:
        return (a.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64)
    if bound < 1 << 53:
        return (a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return a @ w.T


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
    t = act.thresholds  # (C or 1, T)
    extra = acc.ndim - 2
    tt = t.reshape(t.shape[0], *([1] * extra), t.shape[1])
    count = (acc[..., None] >= tt[None]).sum(axis=-1)
    return act.levels[count]


def requant(acc: np.ndarray, act: Requant) -> np.ndarray:
    extra = acc.ndim - 2
    m = act.multiplier.reshape(-1, *([1] * extra))
    return np.clip(round_shift(acc * m, act.shift, act.rounding), *act.clip)


def im2col(x: np.ndarray, kernel, stride, padding, pad_value) -> np.ndarray:
    """(N, C, H, W) -> (N, OH, OW, C·KH·KW) windows, in the weights' (C, KH, KW) order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)


# -- the network -----------------------------------------------------------------------------
def _activate(layer, acc):
    act = layer.activation
    if isinstance(act, MultiThreshold):
        return threshold(acc, act)
    if isinstance(act, Requant):
        return requant(acc, act)
    return acc


def _check_acc(layer, acc):
    extra = acc.ndim - 2
    lo = layer.acc_lo.reshape(-1, *([1] * extra))
    hi = layer.acc_hi.reshape(-1, *([1] * extra))
    if ((acc < lo) | (acc > hi)).any():  # pragma: no cover - a width-inference bug
        raise AssertionError(f"{layer.name}: accumulator outside its inferred range "
                             f"{layer.acc_range}")


def _bound(layer) -> int:
    amag = max(abs(layer.in_range.lo), abs(layer.in_range.hi))
    return amag * int(np.abs(layer.matrix).sum(axis=1).max())


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
    """Run the network on a batch of integer input values (N, *input shape)."""
    x = check_input(net, x)
    n = x.shape[0]
    results = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            acc = dot(layer.mac, x.reshape(n, -1), layer.matrix, shift=layer.w_shift,
                      bound=_bound(layer))
        elif isinstance(layer, Conv2d):
            cols = im2col(x, layer.kernel, layer.stride, layer.padding, layer.pad_value)
            _, oh, ow, k = cols.shape
            acc = dot(layer.mac, cols.reshape(-1, k), layer.matrix, shift=layer.w_shift,
                      bound=_bound(layer))
            acc = acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
        elif isinstance(layer, MaxPool2d):
            win = np.lib.stride_tricks.sliding_window_view(x, layer.kernel, axis=(2, 3))
            x = win[:, :, ::layer.stride[0], ::layer.stride[1]].max(axis=(4, 5))
            x = np.ascontiguousarray(x)
            results.append(LayerResult(layer.name, None, x))
            continue
        elif isinstance(layer, Argmax):
            x = np.argmax(x.reshape(n, -1), axis=1).astype(np.int64)[:, None]
            results.append(LayerResult(layer.name, None, x))
            continue
        else:  # pragma: no cover
            raise TypeError(type(layer))
        if layer.bias is not None:
            acc = acc + layer.bias.reshape(-1, *([1] * (acc.ndim - 2)))
        _check_acc(layer, acc)
        x = _activate(layer, acc)
        results.append(LayerResult(layer.name, acc, x))
    return GoldenResult(tuple(results))
