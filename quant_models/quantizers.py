"""Quantizers of the seed's papers: from float layers to layers of the network format.

Each weight quantizer turns float weights into integers of one encoding plus a float scale, so
that ``w ≈ scale · q``; each output stage turns the float pre-activation of a layer (its scaled
accumulator after bias and BatchNorm) into the integer code the next layer reads. The layer
functions at the end (:func:`binarize_layer`, :func:`sibnn_layer`, :func:`sttn_layer`,
:func:`onehot_layer`, :func:`bitsplit_layer`, :func:`adder_layer`) put the two together and return
a :class:`QuantLayer`: a layer dict of the network file, its integer arrays, and how the next
layer must read its outputs.

The float semantics of a layer (the reference every quantized layer is checked against) is::

    z = W x + b                  (adder layers: z = -Σ|x - w| + b)
    y = γ (z - μ) / sqrt(σ² + ε) + β     (when the layer has BatchNorm)
    next input = act(y)          (ReLU, then the output quantizer)

Integer thresholds are *folded* from that float function (FINN, Umuroglu et al., FPGA 2017): for
every integer accumulator value the integer multi-threshold gives exactly the level the float
function gives (:func:`fold_thresholds` finds them by bisection on the float function itself, so
no algebra can round differently).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gen import macs
from hw.dtypes import DType
from sim.golden import dot, im2col, round_shift

__all__ = [
    "BatchNorm", "LayerInput", "OutputGrid", "QuantLayer",
    "binarize_weights", "twn_delta", "optimal_ternary_delta", "ternarize_weights",
    "sttn_binary_kernels", "pow2_weights", "naive_int_weights", "bitsplit_weights",
    "adder_weights", "requant_params", "mutual_information", "mi_threshold",
    "batchnorm", "fold_thresholds", "acc_bounds", "fold_input",
    "uniform_grid", "bipolar_grid", "binary01_grid", "onehot_grid",
    "quantize_layer", "binarize_layer", "sibnn_layer", "sttn_layer", "onehot_layer",
    "bitsplit_layer", "adder_layer",
]


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Inference-time BatchNorm: ``γ (z - μ) / sqrt(σ² + ε) + β`` per output channel."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass(frozen=True, eq=False)
class LayerInput:
    """The integer inputs of a layer and their float meaning.

    Members
    -------
    type : dict
        Element type in the file format (e.g. ``{"encoding": "uint", "bits": 4}``).
    lo, hi : int
        The range of the integer values.
    offset, scale : np.ndarray
        Per input channel (axis 1 of the input): float value ``= offset + scale · q``.
    calib : np.ndarray
        The integer inputs on calibration data, (N, *shape).
    """

    type: dict
    lo: int
    hi: int
    offset: np.ndarray
    scale: np.ndarray
    calib: np.ndarray

    @property
    def encoding(self) -> str:
        return self.type["encoding"]

    @property
    def pad_value(self) -> int:
        """The integer value nearest to float 0 (what a zero padding reads as)."""
        s = float(np.median(self.scale)) or 1.0
        q = int(np.clip(np.round(-float(np.median(self.offset)) / s), self.lo, self.hi))
        if self.encoding == "bipolar" and q == 0:
            q = -1
        return q


@dataclass(frozen=True, eq=False)
class OutputGrid:
    """How a hidden layer's float pre-activation ``y`` becomes the next layer's integer input.

    The output is ``levels[k]`` where ``k`` counts the ``boundaries[c]`` that ``y`` reaches
    (``y >= b``); its float meaning is ``offset[c] + scale[c] · level``.
    """

    boundaries: np.ndarray     # (C, T) float, each row non-decreasing
    levels: tuple[int, ...]
    activation: dict           # file-format activation fields other than type and thresholds
    type: dict                 # file-format type of the outputs
    offset: np.ndarray         # (C,)
    scale: np.ndarray          # (C,)


@dataclass(frozen=True, eq=False)
class QuantLayer:
    """A quantized layer: its file-format dict, its integer arrays, and its outputs.

    ``out`` describes the outputs as the next layer's :class:`LayerInput` (None for the last
    layer, whose outputs are integer logits); ``extra`` holds by-products worth inspecting
    (float scales, the STTN binary kernels, ...), never written to the file.
    """

    layer: dict
    arrays: dict
    out: LayerInput | None
    outputs: np.ndarray        # integer outputs on the calibration data
    extra: dict = field(default_factory=dict)


# -- weight quantizers -----------------------------------------------------------------------
def _rows(w: np.ndarray) -> np.ndarray:
    return np.asarray(w, dtype=np.float64).reshape(np.shape(w)[0], -1)


def binarize_weights(w) -> tuple[np.ndarray, np.ndarray]:
    """Binary weights with a per-output-channel scale: ``w ≈ α · sign(w)``.

    ``α = mean |w|`` over the channel's weights minimises ``‖w − α b‖²`` for ``b = sign(w)``
    (XNOR-Net, Rastegari et al., ECCV 2016; BNN, Hubara et al., NeurIPS 2016).

    Parameters
    ----------
    w : array (out channels, ...)

    Returns
    -------
    b : int64 array like ``w``, values in {-1, +1} (``sign(0) = +1``)
    alpha : float64 array (out channels,)
    """
    w = np.asarray(w, dtype=np.float64)
    b = np.where(w >= 0, 1, -1).astype(np.int64)
    return b, np.abs(_rows(w)).mean(axis=1)


def twn_delta(w, factor: float = 0.7) -> np.ndarray:
    """The zero band of Ternary Weight Networks: ``Δ = 0.7 · mean|w|`` per output channel.

    (Li, Zhang and Liu, Ternary Weight Networks, 2016: the approximate minimiser of
    ``‖w − α t‖²`` for Gaussian-like weights.)
    """
    return factor * np.abs(_rows(w)).mean(axis=1)


def optimal_ternary_delta(w) -> np.ndarray:
    """The zero band that minimises ``‖w − α t‖²`` exactly, per output channel.

    For a band keeping the ``k`` largest magnitudes, the best scale is their mean and the error
    is ``‖w‖² − (Σ top-k |w|)² / k``; the best ``k`` maximises ``(Σ top-k |w|)² / k``, found by
    sorting (the exact solution of the TWN objective that the 0.7 rule approximates). Returns a
    Δ halfway between the smallest kept and the largest dropped magnitude.
    """
    a = -np.sort(-np.abs(_rows(w)), axis=1)
    csum = np.cumsum(a, axis=1)
    k = np.arange(1, a.shape[1] + 1)
    best = np.argmax(csum ** 2 / k, axis=1)
    rows = np.arange(a.shape[0])
    kept_min = a[rows, best]
    dropped_max = np.where(best + 1 < a.shape[1], a[rows, np.minimum(best + 1, a.shape[1] - 1)], 0.0)
    return (kept_min + dropped_max) / 2


def ternarize_weights(w, delta=None) -> tuple[np.ndarray, np.ndarray]:
    """Ternary weights with a per-output-channel scale: ``w ≈ α · t``, ``t ∈ {−1, 0, +1}``.

    ``t = sign(w)`` where ``|w| > Δ`` and 0 elsewhere; ``α`` is the mean magnitude of the kept
    weights (TWN; STTN, Xu et al., Soft Threshold Ternary Networks, IJCAI 2020).

    Parameters
    ----------
    w : array (out channels, ...)
    delta : array (out channels,), optional
        The zero band; by default :func:`twn_delta`.
    """
    w = np.asarray(w, dtype=np.float64)
    delta = twn_delta(w) if delta is None else np.asarray(delta, dtype=np.float64)
    r = _rows(w)
    keep = np.abs(r) > delta[:, None]
    t = (np.sign(r) * keep).astype(np.int64)
    n = keep.sum(axis=1)
    alpha = np.where(n > 0, (np.abs(r) * keep).sum(axis=1) / np.maximum(n, 1), 0.0)
    return t.reshape(w.shape), alpha


def sttn_binary_kernels(t) -> tuple[np.ndarray, np.ndarray]:
    """The two binary kernels whose sum is a ternary kernel: ``b1 + b2 = 2 t``.

    STTN (Xu et al., IJCAI 2020) trains a ternary kernel as the sum of two binary kernels
    ``b1, b2 ∈ {−1, +1}``: where they agree the sum is ±2, where they differ it is 0, so the
    zero band is learned by the kernels rather than set by a hand-picked threshold. Here the
    split of a given ternary kernel: ``b1 = b2 = t`` where ``t ≠ 0``, ``b1 = +1, b2 = −1`` where
    ``t = 0``. A ternary layer of scale α is then the sum of two binary layers of scale α/2.
    """
    t = np.asarray(t, dtype=np.int64)
    b1 = np.where(t == 0, 1, t)
    b2 = np.where(t == 0, -1, t)
    return b1, b2


def pow2_weights(w, exponents: int) -> tuple[np.ndarray, int]:
    """Power-of-two weights ``0`` or ``±2^e`` (``0 <= e < exponents``) and a per-layer shift.

    ``w ≈ 2^shift · q``. Rounding is in the log domain: ``e = round(log2(|w| / 2^shift))``;
    magnitudes below half the smallest power become 0. ``shift`` puts the largest magnitude of
    the layer on the largest exponent (one-hot / power-of-two quantization, DATE 2020: a
    product with a power of two is a shift, and one-hot codes make it an exponent add).

    Returns
    -------
    q : int64 array like ``w``, values in {0, ±2^e}
    shift : int (may be negative: the float scale is ``2.0 ** shift``)
    """
    w = np.asarray(w, dtype=np.float64)
    top = float(np.abs(w).max(initial=0.0))
    if top == 0:
        return np.zeros(w.shape, dtype=np.int64), 0
    shift = int(np.round(np.log2(top))) - (exponents - 1)
    r = np.abs(w) / 2.0 ** shift
    with np.errstate(divide="ignore"):
        e = np.clip(np.round(np.log2(np.where(r > 0, r, 1.0))), 0, exponents - 1).astype(np.int64)
    q = np.where(r < 0.5, 0, np.sign(w) * (1 << e)).astype(np.int64)
    return q, shift


def naive_int_weights(w, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Round-to-nearest narrow ``bits``-bit integers, per-channel scale ``max|w| / (2^(bits−1) − 1)``.

    The baseline that :func:`bitsplit_weights` improves on.
    """
    r = _rows(w)
    qmax = (1 << (bits - 1)) - 1
    alpha = np.abs(r).max(axis=1) / qmax
    safe = np.where(alpha > 0, alpha, 1.0)
    q = np.clip(np.round(r / safe[:, None]), -qmax, qmax).astype(np.int64)
    return q.reshape(np.shape(w)), alpha


def bitsplit_weights(w, x, bits: int, *, iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Bit-split and stitching post-training quantization of a layer's weights.

    The ``bits``-bit narrow integer of each weight is split into ``bits − 1`` ternary bit planes,
    ``q = Σ_i 2^i t_i`` with ``t_i ∈ {−1, 0, +1}``; each plane is optimised with the others fixed,
    and then the per-channel scale in closed form, alternately, to minimise the error of the
    layer's *outputs* on calibration inputs, ``‖X wᵀ − α X qᵀ‖²`` (Wang et al., Towards Accurate
    Post-Training Network Quantization via Bit-Split and Stitching, ICML 2020). The planes are
    stitched back into integers. Starting from round-to-nearest (:func:`naive_int_weights`),
    every step can only lower the error.

    Parameters
    ----------
    w : array (out channels, K)
        Float weights (a conv kernel flattened to K = C·KH·KW).
    x : array (N, K)
        Calibration inputs of the layer (one row per input vector or window).
    bits : int
        Width of the integers, at least 2.
    iters : int
        Rounds of (every plane, then the scale).

    Returns
    -------
    q : int64 (out channels, K), values in ``[−(2^(bits−1) − 1), 2^(bits−1) − 1]``
    alpha : float64 (out channels,)
    """
    if bits < 2:
        raise ValueError(f"Bit-split needs at least 2 bits, not {bits}")
    w = _rows(w)
    x = np.asarray(x, dtype=np.float64).reshape(-1, w.shape[1])
    q, alpha = naive_int_weights(w, bits)
    planes = _split_planes(q, bits - 1)           # (P, M, K)
    h = x.T @ x                                   # (K, K)
    g0 = h @ w.T                                  # Xᵀ y, (K, M)
    m_idx = np.arange(w.shape[0])
    for _ in range(iters):
        qf = q.astype(np.float64)
        g = g0 - alpha * (h @ qf.T)               # Xᵀ e with e = y − α X qᵀ, (K, M)
        for p in reversed(range(planes.shape[0])):
            step = float(1 << p)
            for k in range(w.shape[1]):
                # loss change of changing q[:, k] by d: −2 α d g[k] + α² d² h[k, k]
                t_old = planes[p, :, k]
                best_d = np.zeros(w.shape[0])
                best = np.zeros(w.shape[0])
                for t_new in (-1, 0, 1):
                    d = step * (t_new - t_old)
                    loss = -2 * alpha * d * g[k] + alpha ** 2 * d ** 2 * h[k, k]
                    better = loss < best - 1e-12 * (1 + np.abs(best))
                    best = np.where(better, loss, best)
                    best_d = np.where(better, d, best_d)
                if best_d.any():
                    planes[p, m_idx, k] = t_old + (best_d / step).astype(np.int64)
                    q[:, k] += best_d.astype(np.int64)
                    g -= (alpha * best_d)[None, :] * h[:, k][:, None]
        qf = q.astype(np.float64)
        xq = qf @ h @ qf.T                        # only its diagonal: ‖X q_c‖²
        num = np.einsum("km,mk->m", g0, qf)       # (X q_c)ᵀ y_c
        den = np.diag(xq)
        alpha = np.where(den > 0, num / np.where(den > 0, den, 1.0), alpha)
        # keep α ≥ 0 by moving the sign into the integers
        neg = alpha < 0
        q[neg] *= -1
        planes[:, neg] *= -1
        alpha = np.abs(alpha)
    return q, alpha


def _split_planes(q: np.ndarray, planes: int) -> np.ndarray:
    """Ternary bit planes (sign · magnitude bit) of integers with ``|q| < 2^planes``."""
    mag, sgn = np.abs(q), np.sign(q)
    return np.stack([sgn * ((mag >> p) & 1) for p in range(planes)]).astype(np.int64)


def adder_weights(w, step: float, bits: int) -> tuple[np.ndarray, int]:
    """AdderNet weights on the activations' grid: ``w ≈ step · (q << shift)``.

    ``|x − w|`` stays an integer multiple of the activation step only if weights and activations
    share one scale (AdderNet, Chen et al., CVPR 2020; shared-scale quantization as in Nie et al.,
    Redistribution of Weights and Activations for AdderNet Quantization, NeurIPS 2022). When
    ``bits``-bit weights cannot reach the weights' range on the activation grid, they use the
    coarser step ``step · 2^shift`` (the smallest shift that fits, at most 16).

    Returns
    -------
    q : int64 array like ``w``, narrow ``bits``-bit integers
    shift : int, 0..16
    """
    w = np.asarray(w, dtype=np.float64)
    qmax = (1 << (bits - 1)) - 1
    top = float(np.abs(w).max(initial=0.0)) / step
    shift = 0
    while top / (1 << shift) > qmax + 0.5 and shift < 16:
        shift += 1
    q = np.clip(np.round(w / (step * (1 << shift))), -qmax, qmax).astype(np.int64)
    return q, shift


def requant_params(scale, acc_max: int, *, mult_bits: int = 16) -> tuple[np.ndarray, int]:
    """An integer multiplier and a right shift approximating a float scale: ``m / 2^shift ≈ s``.

    One shift for all channels, the largest that keeps every ``|m| < 2^(mult_bits − 1)`` and
    ``acc_max · |m| < 2^61`` (so the product fits the golden model's int64). The error is at
    most half a step: ``|m / 2^shift − s| <= 2^−(shift + 1)``, so ``round_shift(acc · m, shift)``
    is within ``|acc| · 2^−(shift+1)`` plus the rounding mode's own error (≤ 1/2 for half-up
    and half-even, < 1 for floor and ceil) of ``acc · s``.

    Parameters
    ----------
    scale : float or array of floats
    acc_max : int
        Largest magnitude of the values that will be multiplied.
    mult_bits : int
        Width of the signed multiplier.
    """
    s = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    if not np.isfinite(s).all():
        raise ValueError("Requantization scales must be finite")
    top = float(np.abs(s).max(initial=0.0))
    if top == 0:
        return np.zeros(s.shape, dtype=np.int64), 0
    limit = (1 << (mult_bits - 1)) - 1
    shift = 62
    while shift > 0:
        m = np.round(s * 2.0 ** shift)
        mm = float(np.abs(m).max())
        if mm <= limit and mm * max(1, acc_max) < 2.0 ** 61:
            break
        shift -= 1
    m = np.round(s * 2.0 ** shift)
    if float(np.abs(m).max()) > limit:
        raise ValueError(f"Scale {top} needs a multiplier wider than {mult_bits} bits")
    return m.astype(np.int64), shift


# -- SI-BNN thresholds -------------------------------------------------------------------------
def _bin_index(y: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    return np.minimum(((y - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)


def _mi_from_counts(n1: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """MI (nats) of (bin, code) from counts ``n1[i, j]`` of code 1 in bin ``i`` for candidate ``j``."""
    total = hist.sum()
    n0 = hist[:, None] - n1
    py = (hist / total)[:, None]
    mi = np.zeros(n1.shape[1])
    for n in (n0, n1):
        p = n / total
        pc = p.sum(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(p > 0, p * np.log(p / (py * pc)), 0.0)
        mi += term.sum(axis=0)
    return mi


def mutual_information(y, code, bins: int = 64) -> float:
    """Histogram estimate of the mutual information (nats) between floats ``y`` and a code.

    ``y`` is binned into ``bins`` equal-width bins over its range; ``code`` takes few values.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    code = np.asarray(code).ravel()
    lo, hi = float(y.min()), float(y.max())
    if hi <= lo:
        return 0.0
    yb = _bin_index(y, lo, hi, bins)
    _, cb = np.unique(code, return_inverse=True)
    joint = np.zeros((bins, int(cb.max()) + 1))
    np.add.at(joint, (yb, cb), 1.0)
    p = joint / joint.sum()
    py, pc = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (py @ pc)[nz])).sum())


def mi_threshold(y, bins: int = 64) -> np.ndarray:
    """Per-channel threshold of {0, 1} activations maximising ``I(y; [y >= τ])`` on calibration data.

    SI-BNN (Wang et al., Sparsity-Inducing Binarized Neural Networks, AAAI 2020) replaces the ±1
    activations of a BNN by {0, 1} with per-channel thresholds. Here the threshold is chosen
    among the interior bin edges of a histogram of the channel's float pre-activations, by the
    histogram estimate of the mutual information between the float value and its binary code
    (the same estimate as :func:`mutual_information`, for every candidate at once). For a
    deterministic code whose threshold is a bin edge the estimate equals the code's entropy, so
    the result is the bin edge that splits the calibration data most evenly (a median, to
    histogram resolution): the code that keeps the most information about the activation.

    Parameters
    ----------
    y : array (N, C)
        Float pre-activations on calibration data, channels last.
    bins : int
        Histogram resolution.
    """
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros(y.shape[1])
    for c in range(y.shape[1]):
        col = y[:, c]
        lo, hi = float(col.min()), float(col.max())
        if hi <= lo:
            out[c] = lo
            continue
        edges = lo + (hi - lo) * np.arange(1, bins) / bins
        yb = _bin_index(col, lo, hi, bins)
        above = np.searchsorted(edges, col, side="right")   # col >= edges[j] for j < above
        counts = np.zeros((bins, bins))
        np.add.at(counts, (yb, above), 1.0)
        # n1[i, j] = #{in bin i with col >= edges[j]} = Σ_{k > j} counts[i, k]
        n1 = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:]
        out[c] = edges[int(np.argmax(_mi_from_counts(n1, counts.sum(axis=1))))]
    return out


# -- thresholds and requantization from the float function -----------------------------------
def batchnorm(z, bn: BatchNorm | None, axis: int = 0) -> np.ndarray:
    """The float BatchNorm of ``z`` with channels on ``axis`` (identity for ``bn=None``)."""
    z = np.asarray(z, dtype=np.float64)
    if bn is None:
        return z
    shape = [1] * z.ndim
    shape[axis] = -1

    def p(v):
        return np.asarray(v, dtype=np.float64).reshape(shape)
    return p(bn.gamma) * (z - p(bn.mean)) / np.sqrt(p(bn.var) + bn.eps) + p(bn.beta)


def fold_thresholds(f, lo, hi, boundaries) -> np.ndarray:
    """Integer thresholds equivalent to float boundaries on a non-decreasing function.

    For each channel ``c`` and boundary ``θ = boundaries[c, k]``, the smallest integer ``t`` in
    ``[lo[c], hi[c]]`` with ``f(t)[c] >= θ``, or ``hi[c] + 1`` when there is none. Then for every
    integer ``a`` in ``[lo[c], hi[c]]``: ``a >= t  ⇔  f(a) >= θ``, exactly as the float function
    is evaluated, because the thresholds are found by bisection on ``f`` itself.

    Parameters
    ----------
    f : callable
        ``f(acc)`` with ``acc`` an int64 array (C, T) returns floats (C, T); non-decreasing in
        ``acc`` for each channel.
    lo, hi : int arrays (C,)
    boundaries : float array (C, T)
    """
    b = np.asarray(boundaries, dtype=np.float64)
    a = np.broadcast_to(np.asarray(lo, dtype=np.int64)[:, None], b.shape).copy()
    z = np.broadcast_to(np.asarray(hi, dtype=np.int64)[:, None] + 1, b.shape).copy()
    while (a < z).any():
        mid = (a + z) // 2
        ok = f(mid) >= b
        z = np.where(ok, mid, z)
        a = np.where(ok, a, mid + 1)
    return a


def acc_bounds(mac: str, q, lo: int, hi: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-row minimum and maximum of a dot product with inputs in ``[lo, hi]``."""
    w = np.asarray(q, dtype=np.int64).reshape(np.shape(q)[0], -1)
    return macs.acc_bounds(mac, w, lo, hi, shift)


# -- output grids ------------------------------------------------------------------------------
def _top(y: np.ndarray, pct: float) -> np.ndarray:
    return np.percentile(np.maximum(y, 0.0), pct, axis=0)


def uniform_grid(y, bits: int, *, per_channel: bool = True, pct: float = 99.9) -> OutputGrid:
    """ReLU then round to ``0 .. 2^bits − 1`` steps of ``s`` (per channel, or one for the layer).

    ``s`` puts the ``pct`` percentile of ``ReLU(y)`` on calibration data (N, C) on the top level.
    """
    y = np.asarray(y, dtype=np.float64)
    n = (1 << bits) - 1
    top = _top(y, pct) if per_channel else np.full(y.shape[1], float(_top(y.ravel(), pct)))
    dead = top <= 0                 # never positive: always 0, worth 0 to the next layer
    s = np.where(dead, 0.0, top / n)
    b = (np.arange(1, n + 1) - 0.5)[None, :] * s[:, None]
    b[dead] = np.inf
    return OutputGrid(b, tuple(range(n + 1)), {}, {"encoding": "uint", "bits": bits},
                      np.zeros(y.shape[1]), s)


def _two_levels(y, tau):
    """Mean of ReLU(y) below and at-or-above the threshold, per channel."""
    r = np.maximum(y, 0.0)
    above = y >= tau[None, :]
    n_hi, n_lo = above.sum(axis=0), (~above).sum(axis=0)
    hi = np.where(n_hi > 0, (r * above).sum(axis=0) / np.maximum(n_hi, 1), 0.0)
    lo = np.where(n_lo > 0, (r * ~above).sum(axis=0) / np.maximum(n_lo, 1), 0.0)
    return lo, np.maximum(hi, lo)


def bipolar_grid(y, tau=None) -> OutputGrid:
    """±1 outputs, ``+1`` when ``y >= τ`` (``τ = 0``: the sign activation of a BNN).

    The float meaning of the two codes is the mean of ReLU(y) on each side on calibration data:
    ``offset ± scale``.
    """
    y = np.asarray(y, dtype=np.float64)
    tau = np.zeros(y.shape[1]) if tau is None else np.asarray(tau, dtype=np.float64)
    lo, hi = _two_levels(y, tau)
    return OutputGrid(tau[:, None], (-1, 1), {"bipolar": True}, {"encoding": "bipolar"},
                      (lo + hi) / 2, (hi - lo) / 2)


def binary01_grid(y, tau=None) -> OutputGrid:
    """{0, 1} outputs, ``1`` when ``y >= τ`` (SI-BNN); float meaning ``offset + scale · a``."""
    y = np.asarray(y, dtype=np.float64)
    tau = np.zeros(y.shape[1]) if tau is None else np.asarray(tau, dtype=np.float64)
    lo, hi = _two_levels(y, tau)
    return OutputGrid(tau[:, None], (0, 1), {}, {"encoding": "uint", "bits": 1}, lo, hi - lo)


def onehot_grid(y, exponents: int, *, pct: float = 99.9) -> OutputGrid:
    """ReLU then round to ``{0} ∪ {2^e : 0 <= e < exponents}`` steps of ``s``, in the log domain.

    Between ``2^e`` and ``2^(e+1)`` the boundary is their geometric mean ``2^(e + 1/2)``; between 0
    and 1 it is 1/2 (one-hot activations, DATE 2020). ``s`` puts the ``pct`` percentile of
    ReLU(y) on the top power.
    """
    y = np.asarray(y, dtype=np.float64)
    top = _top(y, pct)
    dead = top <= 0
    s = np.where(dead, 0.0, top / (1 << (exponents - 1)))
    bnd = np.array([0.5] + [2.0 ** (e + 0.5) for e in range(exponents - 1)])
    b = bnd[None, :] * s[:, None]
    b[dead] = np.inf
    levels = (0,) + tuple(1 << e for e in range(exponents))
    return OutputGrid(b, levels, {"levels": list(levels), "encoding": "onehot"},
                      {"encoding": "onehot", "bits": exponents}, np.zeros(y.shape[1]), s)


# -- putting a layer together ------------------------------------------------------------------
def _type_range(t: dict) -> tuple[int, int]:
    e = t["encoding"]
    if e == "bipolar":
        return -1, 1
    if e == "uint":
        return 0, (1 << t["bits"]) - 1
    if e == "onehot":
        return 0, 1 << (t["bits"] - 1)
    if e == "ternary":
        return -1, 1
    return -(1 << (t["bits"] - 1)), (1 << (t["bits"] - 1)) - 1


def _expand(v: np.ndarray, w_shape: tuple, in_shape: tuple) -> np.ndarray:
    """A per-input-channel vector as a factor on the weights' columns (broadcastable)."""
    if len(w_shape) == 4:
        return v.reshape(1, -1, 1, 1)
    per = int(np.prod(in_shape[2:]))     # in_shape is (N, C, ...): an image flattens C, H, W
    return np.repeat(v, per).reshape(1, -1)


def _columns(x: np.ndarray, conv: dict | None, pad_value) -> np.ndarray:
    """Input rows of the layer's dot products: (N·positions, K)."""
    if conv is None:
        return x.reshape(x.shape[0], -1)
    cols = im2col(x, conv["kernel"], conv["stride"], conv["padding"], pad_value)
    return cols.reshape(-1, cols.shape[-1])


def _acc(mac, cols, q, shift, n, conv, oc):
    acc = dot(mac, cols, q.reshape(oc, -1), shift=shift)
    if conv is None:
        return acc
    per = acc.shape[0] // n
    return acc.reshape(n, per, oc)            # positions in the middle


def _channels_last(acc: np.ndarray) -> np.ndarray:
    return acc.reshape(-1, acc.shape[-1])


def fold_input(w, b, inp: LayerInput, in_shape) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias acting on the integer inputs: ``W (o + s q) + b = (W s) q + (W o + b)``."""
    w = np.asarray(w, dtype=np.float64)
    s = _expand(np.asarray(inp.scale, dtype=np.float64), w.shape, in_shape)
    o = _expand(np.asarray(inp.offset, dtype=np.float64), w.shape, in_shape)
    b = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
    return w * s, b + (w * o).reshape(w.shape[0], -1).sum(axis=1)


def quantize_layer(*, name: str, mac: str, q, w_type: dict, alpha, bias, bn: BatchNorm | None,
                   inp: LayerInput, in_shape, grid_fn=None, conv: dict | None = None,
                   shift: int = 0, adder: bool = False, out_bits: int = 16) -> QuantLayer:
    """Assemble one layer from integer weights ``q`` with float scale ``alpha`` (per channel).

    The float pre-activation of output channel ``c`` is
    ``y = BN(alpha[c] · acc + bias[c])`` (adder layers: ``acc = −Σ|q_in − (q << shift)|``, already
    in units of ``alpha``). With ``grid_fn`` (a function of calibration pre-activations (N, C)
    returning an :class:`OutputGrid`) the layer ends in a multi-threshold folded from that
    float function; without it, in a requantization to integer logits (``out_bits`` wide) that
    keeps their order up to rounding. Channels whose ``y`` falls as ``acc`` rises are negated
    (weights and scale), so that every threshold counts ``acc >= t``; an adder layer cannot be
    negated and raises ValueError for them.
    """
    q = np.array(q, dtype=np.int64)
    oc = q.shape[0]
    alpha = np.array(np.broadcast_to(np.asarray(alpha, dtype=np.float64), (oc,)))
    bias = np.zeros(oc) if bias is None else np.asarray(bias, dtype=np.float64)
    g = np.ones(oc) if bn is None else np.asarray(bn.gamma, dtype=np.float64)
    if grid_fn is not None:
        neg = alpha * g < 0
        if neg.any():
            if adder:
                c = int(np.argmax(neg))
                raise ValueError(f"Adder channel {c} falls as its accumulator rises (negative "
                                 f"BatchNorm scale); a threshold cannot express it")
            q[neg] *= -1
            alpha[neg] *= -1
    n = inp.calib.shape[0]
    pad = inp.pad_value if conv is not None and any(conv["padding"]) else 0
    cols = _columns(inp.calib, conv, pad)
    acc = _acc(mac, cols, q, shift, n, conv, oc)
    lo, hi = acc_bounds(mac, q, inp.lo, inp.hi, shift)

    def f(a):  # a: (C, T) int; the float pre-activation, channels on axis 0
        return batchnorm(alpha[:, None] * a + bias[:, None], bn, axis=0)

    y_cal = f(_channels_last(acc).T).T         # (N·positions, C)
    layer = {"name": name, "type": "conv2d" if conv else "dense", "mac": mac,
             "weights": {"key": f"{name}_w", **w_type}}
    if shift:
        layer["weights"]["shift"] = int(shift)
    if conv is not None:
        layer.update({"kernel": list(conv["kernel"]), "stride": list(conv["stride"]),
                      "padding": list(conv["padding"])})
        if any(conv["padding"]):
            layer["pad_value"] = int(pad)
    arrays = {f"{name}_w": q}
    extra = {"alpha": alpha, "pre_activation": f}
    if grid_fn is None:
        # integer logits: y = A acc + C ≈ (acc + B) · A / u
        sd = 1.0 if bn is None else np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.var) + bn.eps)
        a_c = alpha * sd
        c_c = f(np.zeros((oc, 1), dtype=np.int64))[:, 0]
        safe = np.where(a_c != 0, a_c, 1.0)
        bi = np.where(a_c != 0, np.clip(np.round(c_c / safe), -(1 << 40), 1 << 40), 0).astype(np.int64)
        amax = int(max(np.abs(lo + bi).max(), np.abs(hi + bi).max(), 1))
        u = float(np.abs(a_c).max() * amax) / ((1 << (out_bits - 1)) - 1) or 1.0
        m, s = requant_params(a_c / u, amax, mult_bits=out_bits + 1)
        ends = np.stack([round_shift((lo + bi) * m, s, "half-even"),
                         round_shift((hi + bi) * m, s, "half-even")])
        clip = [int(ends.min()), int(ends.max())]
        arrays[f"{name}_b"] = bi
        arrays[f"{name}_m"] = m
        layer["bias"] = f"{name}_b"
        layer["activation"] = {"type": "requant", "multiplier": f"{name}_m", "shift": int(s),
                               "rounding": "half-even", "clip": clip}
        acc_b = acc + bi
        outs = np.clip(round_shift(acc_b * m, s, "half-even"), *clip)
        if conv is not None:
            outs = _to_image(outs, n, conv, inp.calib.shape, oc)
        return QuantLayer(layer, arrays, None, outs, extra)
    grid = grid_fn(y_cal)
    t = fold_thresholds(f, lo, hi, grid.boundaries)
    arrays[f"{name}_t"] = t
    layer["activation"] = {"type": "multithreshold", "thresholds": f"{name}_t", **grid.activation}
    levels = np.asarray(grid.levels, dtype=np.int64)
    count = (acc[..., None] >= t.reshape((1,) * (acc.ndim - 1) + t.shape)).sum(axis=-1)
    outs = levels[count]
    if conv is not None:
        outs = _to_image(outs, n, conv, inp.calib.shape, oc)
    lo_t, hi_t = _type_range(grid.type)
    extra.update({"grid": grid, "acc_lo": lo, "acc_hi": hi})
    nxt = LayerInput(grid.type, lo_t, hi_t, grid.offset, grid.scale, outs)
    return QuantLayer(layer, arrays, nxt, outs, extra)


def _to_image(v, n, conv, in_shape, oc):
    (kh, kw), (sh, sw), (ph, pw) = conv["kernel"], conv["stride"], conv["padding"]
    oh = (in_shape[2] + 2 * ph - kh) // sh + 1
    ow = (in_shape[3] + 2 * pw - kw) // sw + 1
    return v.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)


def _in_shape(inp: LayerInput):
    return inp.calib.shape


def _mac_for_binary_weights(inp: LayerInput) -> str:
    bits = inp.type.get("bits", {"bipolar": 1, "ternary": 2}.get(inp.encoding))
    dt = DType(inp.encoding, bits, narrow=inp.type.get("narrow", False), signed=inp.type.get("signed", False))
    return macs.kind_for(DType.bipolar(), dt)


# -- one function per method --------------------------------------------------------------------
def binarize_layer(name, w, b, bn, inp: LayerInput, *, bits: int = 1, conv=None,
                   last: bool = False) -> QuantLayer:
    """A binary-weight layer (XNOR-Net / BNN) with BatchNorm and scale folded into thresholds.

    Weights ``sign(w)`` with per-channel ``α = mean|w|``; the MAC is ``xnor`` on ±1 inputs and
    ``ternary`` (±1 weights) on multi-bit inputs. Outputs: ``bits = 1`` gives ±1 by the sign of the
    pre-activation (a BNN), more bits a ReLU quantized to ``2^bits`` levels.
    """
    wf, bf = fold_input(w, b, inp, _in_shape(inp))
    q, alpha = binarize_weights(wf)
    grid = None if last else (bipolar_grid if bits == 1 else (lambda y: uniform_grid(y, bits)))
    return quantize_layer(name=name, mac=_mac_for_binary_weights(inp), q=q,
                          w_type={"encoding": "bipolar"}, alpha=alpha, bias=bf, bn=bn, inp=inp,
                          in_shape=_in_shape(inp), grid_fn=grid, conv=conv)


def sibnn_layer(name, w, b, bn, inp: LayerInput, *, threshold: str = "mi", conv=None,
                last: bool = False) -> QuantLayer:
    """An SI-BNN layer: ±1 weights, {0, 1} outputs with per-channel thresholds (AAAI 2020).

    ``threshold="mi"`` picks each channel's threshold by :func:`mi_threshold` on calibration data,
    ``"sign"`` uses 0 (a unit fires when its pre-activation is non-negative). The next layer reads
    {0, 1} with an ``and`` MAC.
    """
    if threshold not in ("mi", "sign"):
        raise ValueError(f"Threshold must be mi or sign, not {threshold!r}")
    wf, bf = fold_input(w, b, inp, _in_shape(inp))
    q, alpha = binarize_weights(wf)

    def grid(y):
        return binary01_grid(y, mi_threshold(y) if threshold == "mi" else None)
    return quantize_layer(name=name, mac=_mac_for_binary_weights(inp), q=q,
                          w_type={"encoding": "bipolar"}, alpha=alpha, bias=bf, bn=bn, inp=inp,
                          in_shape=_in_shape(inp), grid_fn=None if last else grid, conv=conv)


def sttn_layer(name, w, b, bn, inp: LayerInput, *, bits: int = 2, delta: str = "twn", conv=None,
               last: bool = False) -> QuantLayer:
    """A ternary layer (STTN, IJCAI 2020): ``w ≈ α t``, and its two binary kernels.

    ``delta="twn"`` uses Δ = 0.7·mean|w|, ``"optimal"`` :func:`optimal_ternary_delta`. The binary
    kernels (``b1 + b2 = 2 t``) are in ``extra["binary_kernels"]``. Outputs: ReLU quantized to
    ``2^bits`` levels.
    """
    if delta not in ("twn", "optimal"):
        raise ValueError(f"Delta must be twn or optimal, not {delta!r}")
    wf, bf = fold_input(w, b, inp, _in_shape(inp))
    d = twn_delta(wf) if delta == "twn" else optimal_ternary_delta(wf)
    t, alpha = ternarize_weights(wf, d)
    mac = "ternary"
    ql = quantize_layer(name=name, mac=mac, q=t, w_type={"encoding": "ternary"}, alpha=alpha,
                        bias=bf, bn=bn, inp=inp, in_shape=_in_shape(inp),
                        grid_fn=None if last else (lambda y: uniform_grid(y, bits)), conv=conv)
    ql.extra["binary_kernels"] = sttn_binary_kernels(ql.arrays[f"{name}_w"])
    return ql


def onehot_layer(name, w, b, bn, inp: LayerInput, *, exponents: int = 4, conv=None,
                 last: bool = False) -> QuantLayer:
    """A power-of-two layer (DATE 2020): weights ``0, ±2^e`` with a per-layer shift, outputs
    ``{0} ∪ {2^e}`` as one-hot codes (multi-threshold ``levels`` with ``encoding: onehot``)."""
    wf, bf = fold_input(w, b, inp, _in_shape(inp))
    q, shift = pow2_weights(wf, exponents)
    return quantize_layer(name=name, mac="onehot", q=q,
                          w_type={"encoding": "onehot", "bits": exponents, "signed": True},
                          alpha=np.full(q.shape[0], 2.0 ** shift), bias=bf, bn=bn, inp=inp,
                          in_shape=_in_shape(inp),
                          grid_fn=None if last else (lambda y: onehot_grid(y, exponents)), conv=conv)


def bitsplit_layer(name, w, b, bn, inp: LayerInput, *, bits: int = 4, act_bits: int | None = None,
                   conv=None, last: bool = False, iters: int = 4) -> QuantLayer:
    """An ``int`` layer whose weights come from bit-split and stitching (ICML 2020).

    The calibration inputs are the layer's own integer inputs, so the weights are fitted to
    what the quantized network before them really produces.
    """
    wf, bf = fold_input(w, b, inp, _in_shape(inp))
    pad = inp.pad_value if conv is not None and any(conv["padding"]) else 0
    x = _columns(inp.calib, conv, pad).astype(np.float64)
    q, alpha = bitsplit_weights(wf.reshape(wf.shape[0], -1), x, bits, iters=iters)
    act_bits = bits if act_bits is None else act_bits
    return quantize_layer(name=name, mac="int", q=q.reshape(wf.shape),
                          w_type={"encoding": "int", "bits": bits, "narrow": True}, alpha=alpha,
                          bias=bf, bn=bn, inp=inp, in_shape=_in_shape(inp),
                          grid_fn=None if last else (lambda y: uniform_grid(y, act_bits)), conv=conv)


def adder_layer(name, w, b, bn, inp: LayerInput, *, bits: int = 4, act_bits: int | None = None,
                conv=None, last: bool = False) -> QuantLayer:
    """An AdderNet layer ``−Σ|x − w|`` with weights and activations on one grid.

    The input must have one scale for every channel and no offset (a uniform grid, as
    :func:`uniform_grid` with ``per_channel=False`` makes); weights go on that grid, coarsened by a
    shift when needed (:func:`adder_weights`); the outputs are again on one shared grid.
    """
    s = np.asarray(inp.scale, dtype=np.float64)
    if np.any(inp.offset != 0) or np.ptp(s) > 1e-12 * s.max():
        raise ValueError("An adder layer needs inputs on one grid (one scale, no offset)")
    step = float(s[0])
    if step <= 0:
        raise ValueError("The layer's inputs are 0 on every calibration input: there is no grid "
                         "to put the weights on (is this an AdderNet model?)")
    act_bits = bits if act_bits is None else act_bits
    q, shift = adder_weights(w, step, bits)
    bias = None if b is None else np.asarray(b, dtype=np.float64)
    return quantize_layer(name=name, mac="adder", q=q, w_type={"encoding": "int", "bits": bits,
                                                                "narrow": True},
                          alpha=np.full(q.shape[0], step), bias=bias, bn=bn, inp=inp,
                          in_shape=_in_shape(inp), shift=shift, adder=True, conv=conv,
                          grid_fn=None if last else (lambda y: uniform_grid(y, act_bits, per_channel=False)))
