"""Quantization-aware training in numpy, and export to the network format.

A small, dependency-free trainer for the bundled example networks. The model works on the very
integers the hardware sees: inputs are integer pixel values, every compute layer multiplies them
with its *quantized integer* weights (±1, ternary, powers of two, int8, or AdderNet's
``−Σ|x − w|``), so its accumulators equal the golden model's exactly. BatchNorm and the
quantized activation that follow a layer are then folded into integer thresholds, as FINN does
(``acc >= ceil(μ + (τ − β)·σ/γ)``, with the weight row negated where ``γ < 0``), or into an
integer bias plus a requantization. The last compute layer ends in a positive scale and an
integer bias, so the argmax of the float model is the argmax of the integer accumulators.

Gradients pass the quantizers as straight-through estimators: sign and rounding functions
pass the gradient unchanged where the input lies in (or near) the quantizer's range, and zero
outside it. Adder layers use AdderNet's full-precision weight gradient ``x − w`` and its
HardTanh input gradient. Every random choice comes from the ``seed`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen import macs
from hw.dtypes import DType
from sim.golden import im2col

__all__ = [
    "load_digits_split",
    "BinaryWeights", "TernaryWeights", "PowerOfTwoWeights", "IntWeights", "AdderWeights",
    "Quantizer", "bipolar", "step", "ternary", "uint", "onehot",
    "Dense", "Conv2d", "BatchNorm", "Activation", "MaxPool2d", "Flatten", "Scale",
    "Model", "fit", "recalibrate", "predict", "export",
]

ROOT = Path(__file__).resolve().parent.parent
BN_EPS = 1e-5


# -- data ----------------------------------------------------------------------------------------
def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's 8×8 digits as (N, 1, 8, 8) uint8 pixels 0..16, split at random (``seed``)
    into train and held-out test: ``(x_train, y_train, x_test, y_test)``."""
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = d.images, d.target
    except ImportError:  # pragma: no cover - scikit-learn is a dependency; fall back to ../shared
        with np.load(ROOT.parent / "shared" / "datasets" / "sklearn_digits_8x8.npz") as z:
            x, y = z["images"], z["labels"]
    x = np.asarray(x).reshape(-1, 1, 8, 8).astype(np.uint8)
    y = np.asarray(y).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return x[train], y[train], x[test], y[test]


# -- weight quantizers ---------------------------------------------------------------------------
# Each maps latent float weights to integer values (as floats) and passes gradients back.
@dataclass(frozen=True)
class BinaryWeights:
    """±1 (BinaryConnect): sign, latent weights clipped to [−1, 1]."""

    clip = 1.0
    symmetric = True

    def quantize(self, w):
        return np.where(w >= 0, 1.0, -1.0)

    def grad(self, w, dq):
        return dq * (np.abs(w) <= 1)

    def spec(self, q) -> dict:
        return {"encoding": "bipolar"}

    def dtype(self, q) -> DType:
        return DType.bipolar()


@dataclass(frozen=True)
class TernaryWeights:
    """{−1, 0, +1} with the zero band ``|w| < delta·mean|w|`` (ternary weight networks, STTN)."""

    delta: float = 0.7
    clip = 1.0
    symmetric = True

    def quantize(self, w):
        t = self.delta * np.abs(w).mean()
        return np.sign(w) * (np.abs(w) > t)

    def grad(self, w, dq):
        return dq * (np.abs(w) <= 1)

    def spec(self, q) -> dict:
        return {"encoding": "ternary"}

    def dtype(self, q) -> DType:
        return DType.ternary()


@dataclass(frozen=True)
class PowerOfTwoWeights:
    """0 or ±2^e, 0 <= e < ``exponents``, on the scale ``mean|w|`` (one-hot / power-of-two)."""

    exponents: int = 4
    clip = None
    symmetric = True

    def quantize(self, w):
        r = np.abs(w) / max(np.abs(w).mean(), 1e-12)
        e = np.clip(np.round(np.log2(np.maximum(r, 1e-12))), 0, self.exponents - 1)
        return np.sign(w) * np.where(r >= 0.5, 2.0 ** e, 0.0)

    def grad(self, w, dq):
        return dq

    def spec(self, q) -> dict:
        return {"encoding": "onehot", "bits": self.exponents, "signed": True}

    def dtype(self, q) -> DType:
        return DType.onehot(self.exponents, signed=True)


@dataclass(frozen=True)
class IntWeights:
    """Symmetric (narrow) ``bits``-bit integers on the scale ``max|w|``."""

    bits: int = 8
    clip = None
    symmetric = True

    def quantize(self, w):
        top = (1 << (self.bits - 1)) - 1
        return np.clip(np.round(w / max(np.abs(w).max(), 1e-12) * top), -top, top)

    def grad(self, w, dq):
        return dq

    def spec(self, q) -> dict:
        return {"encoding": "int", "bits": self.bits, "narrow": True}

    def dtype(self, q) -> DType:
        return DType.int(self.bits, narrow=True)


@dataclass(frozen=True)
class AdderWeights:
    """AdderNet weights in the units of the layer's input (shared scale): rounded integers of
    ``bits`` bits, so that ``|x − w|`` is an integer."""

    bits: int = 6
    clip = None
    symmetric = False

    def quantize(self, w):
        return np.clip(np.round(w), -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1)

    def grad(self, w, dq):
        return dq

    def spec(self, q) -> dict:
        return {"encoding": "int", "bits": self.bits}

    def dtype(self, q) -> DType:
        return DType.int(self.bits)


# -- activation quantizers -----------------------------------------------------------------------
@dataclass(frozen=True)
class Quantizer:
    """``out = levels[#{k : gain·z >= taus[k]}]`` for the BatchNorm output ``z``.

    ``export`` is ``"thresholds"`` (a multithreshold activation) or ``"requant"`` (uniform
    levels 0..L with ``taus = k − 1/2``: an integer bias and a requantization).
    """

    levels: tuple[int, ...]
    taus: tuple[float, ...]
    gain: float = 1.0
    export: str = "thresholds"
    encoding: str | None = None

    def out_dtype(self) -> DType:
        lv = list(self.levels)
        if lv == [-1, 1]:
            return DType.bipolar()
        if self.encoding == "onehot":
            return DType.onehot(int(max(lv)).bit_length())
        return DType.for_range(min(lv), max(lv))

    def spec(self, key: str) -> dict:
        lv = list(self.levels)
        if lv == [-1, 1]:
            return {"type": "multithreshold", "thresholds": key, "bipolar": True}
        if lv == list(range(lv[0], lv[0] + len(lv))):
            return {"type": "multithreshold", "thresholds": key, **({"offset": lv[0]} if lv[0] else {})}
        return {"type": "multithreshold", "thresholds": key, "levels": lv,
                **({"encoding": self.encoding} if self.encoding else {})}


def bipolar() -> Quantizer:
    return Quantizer((-1, 1), (0.0,))


def step() -> Quantizer:
    """{0, 1} (SI-BNN): 1 where the normalized accumulator reaches the learned threshold."""
    return Quantizer((0, 1), (0.0,))


def ternary() -> Quantizer:
    return Quantizer((-1, 0, 1), (-0.5, 0.5))


def uint(top: int, *, gain: float | None = None, export: str = "thresholds") -> Quantizer:
    """0..top, rounding half up ``gain·z`` (by default ``z`` in [0, 4] spans the range)."""
    return Quantizer(tuple(range(top + 1)), tuple(k - 0.5 for k in range(1, top + 1)),
                     gain=top / 4 if gain is None else gain, export=export)


def onehot(levels=(0, 1, 2, 4, 8), *, gain: float = 2.0) -> Quantizer:
    """Powers of two (one-hot codes); a level is reached half-way from the one below."""
    taus = tuple((a + b) / 2 for a, b in zip(levels[:-1], levels[1:], strict=True))
    return Quantizer(tuple(levels), taus, gain=gain, encoding="onehot")


# -- layers --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Param:
    value: np.ndarray
    lr_scale: float = 1.0
    grad: np.ndarray | None = None
    m: np.ndarray | None = None
    v: np.ndarray | None = None


class Layer:
    def params(self) -> list[Param]:
        return []

    def constrain(self):
        pass


class _Compute(Layer):
    """Shared by :class:`Dense` and :class:`Conv2d`: a matrix product (or adder distance) of
    input rows with the quantized weight rows."""

    def __init__(self, shape, wq, rng, adder: bool, in_max: float):
        self.wq, self.adder = wq, adder
        fan_in = int(np.prod(shape[1:]))
        if adder:
            w = rng.uniform(0, in_max / 2, size=shape)
            lr_scale = max(1.0, in_max / 8)
        else:
            w = rng.normal(0, 1, size=shape) / math.sqrt(fan_in)
            if wq.clip is not None:
                w = np.clip(w * 4, -wq.clip, wq.clip)
            lr_scale = 1.0
        self.w = Param(w, lr_scale)
        self.need_dx = True

    def params(self):
        return [self.w]

    def constrain(self):
        if self.wq.clip is not None:
            np.clip(self.w.value, -self.wq.clip, self.wq.clip, out=self.w.value)

    def qweights(self) -> np.ndarray:
        return self.wq.quantize(self.w.value)

    def _matmul(self, a):  # a: (M, K)
        q = self.qweights().reshape(self.w.value.shape[0], -1)
        self._a, self._q = a, q
        if not self.adder:
            return a @ q.T
        out = np.empty((a.shape[0], q.shape[0]))
        step_ = max(1, (1 << 22) // q.size)
        for s in range(0, a.shape[0], step_):
            out[s:s + step_] = -np.abs(a[s:s + step_, None, :] - q[None]).sum(axis=2)
        return out

    def _matmul_back(self, g):  # g: (M, O)
        a, q = self._a, self._q
        if self.adder:
            dq = g.T @ a - q * g.sum(axis=0)[:, None]
        else:
            dq = g.T @ a
        self.w.grad = self.wq.grad(self.w.value, dq.reshape(self.w.value.shape))
        if not self.need_dx:
            return None
        if not self.adder:
            return g @ q
        da = np.empty_like(a)
        step_ = max(1, (1 << 22) // q.size)
        for s in range(0, a.shape[0], step_):
            ht = np.clip(q[None] - a[s:s + step_, None, :], -1, 1)
            da[s:s + step_] = np.einsum("mo,mok->mk", g[s:s + step_], ht)
        return da


class Dense(_Compute):
    def __init__(self, n_in: int, n_out: int, wq, rng, *, adder: bool = False, in_max: float = 1.0):
        super().__init__((n_out, n_in), wq, rng, adder, in_max)

    def forward(self, x, train):
        return self._matmul(x)

    def backward(self, g):
        return self._matmul_back(g)


class Conv2d(_Compute):
    def __init__(self, c_in: int, c_out: int, wq, rng, *, kernel: int = 3, stride: int = 1,
                 padding: int = 0, pad_value: int = 0, adder: bool = False, in_max: float = 1.0):
        super().__init__((c_out, c_in, kernel, kernel), wq, rng, adder, in_max)
        self.kernel, self.stride, self.padding, self.pad_value = kernel, stride, padding, pad_value

    def forward(self, x, train):
        k, s, p = (self.kernel,) * 2, (self.stride,) * 2, (self.padding,) * 2
        cols = im2col(x, k, s, p, self.pad_value)
        n, oh, ow, kk = cols.shape
        self._xshape = x.shape
        out = self._matmul(cols.reshape(-1, kk))
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, g):
        n, o, oh, ow = g.shape
        dcols = self._matmul_back(g.transpose(0, 2, 3, 1).reshape(-1, o))
        if dcols is None:
            return None
        _, c, h, w = self._xshape
        k, s, p = self.kernel, self.stride, self.padding
        dcols = dcols.reshape(n, oh, ow, c, k, k)
        dx = np.zeros((n, c, h + 2 * p, w + 2 * p))
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += \
                    dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dx[:, :, p:p + h, p:p + w]


class BatchNorm(Layer):
    """Per-channel (axis 1) batch normalization; ``positive`` keeps γ > 0 (for layers whose
    weight rows cannot be negated at export, such as adder layers)."""

    def __init__(self, channels: int, *, positive: bool = False):
        self.gamma = Param(np.ones(channels))
        self.beta = Param(np.zeros(channels))
        self.mean = np.zeros(channels)
        self.var = np.ones(channels)
        self.positive = positive

    def params(self):
        return [self.gamma, self.beta]

    def constrain(self):
        if self.positive:
            np.maximum(self.gamma.value, 1e-3, out=self.gamma.value)

    def _shape(self, x):
        return (1, -1) + (1,) * (x.ndim - 2)

    def forward(self, x, train):
        axes = (0,) + tuple(range(2, x.ndim))
        sh = self._shape(x)
        if train:
            mu, var = x.mean(axis=axes), x.var(axis=axes)
            self._batch = (mu, var)
        else:
            mu, var = self.mean, self.var
        self._inv = 1 / np.sqrt(var + BN_EPS)
        self._xhat = (x - mu.reshape(sh)) * self._inv.reshape(sh)
        self._axes = axes
        return self.gamma.value.reshape(sh) * self._xhat + self.beta.value.reshape(sh)

    def backward(self, g):
        axes, sh, xhat = self._axes, self._shape(g), self._xhat
        m = g.size // g.shape[1]
        self.gamma.grad = (g * xhat).sum(axis=axes)
        self.beta.grad = g.sum(axis=axes)
        dxhat = g * self.gamma.value.reshape(sh)
        return (self._inv.reshape(sh) / m) * (m * dxhat - dxhat.sum(axis=axes).reshape(sh)
                                              - xhat * (dxhat * xhat).sum(axis=axes).reshape(sh))


class Activation(Layer):
    def __init__(self, quantizer: Quantizer):
        self.q = quantizer
        self._taus = np.array(quantizer.taus)
        self._levels = np.array(quantizer.levels, dtype=np.float64)

    def forward(self, z, train):
        y = self.q.gain * z
        self._mask = (y >= self._taus[0] - 1) & (y <= self._taus[-1] + 1)
        return self._levels[np.searchsorted(self._taus, y, side="right")]

    def backward(self, g):
        return g * self.q.gain * self._mask


class MaxPool2d(Layer):
    def __init__(self, kernel: int = 2):
        self.kernel = kernel

    def forward(self, x, train):
        k = self.kernel
        n, c, h, w = x.shape
        x = x[:, :, :h - h % k, :w - w % k]
        win = x.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, c, h // k, w // k, k * k)
        self._arg = win.argmax(axis=-1)
        self._shape = (n, c, h, w)
        return win.max(axis=-1)

    def backward(self, g):
        k = self.kernel
        n, c, h, w = self._shape
        onehot_ = np.eye(k * k)[self._arg] * g[..., None]
        d = onehot_.reshape(n, c, h // k, w // k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, c, (h // k) * k, (w // k) * k)
        out = np.zeros(self._shape)
        out[:, :, :d.shape[2], :d.shape[3]] = d
        return out


class Flatten(Layer):
    def forward(self, x, train):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, g):
        return g.reshape(self._shape)


class Scale(Layer):
    """Logits ``s·(acc + round(b))`` with ``s > 0`` and an integer bias ``round(b)``: the class
    order of the logits is that of the integer ``acc + bias``."""

    def __init__(self, n: int):
        self.log_s = Param(np.zeros(1))
        self.b = Param(np.zeros(n))
        self._init = False

    def params(self):
        return [self.log_s, self.b]

    def forward(self, x, train):
        x = x.reshape(x.shape[0], -1)
        if not self._init:  # data-dependent initialization on the first batch
            sd = max(float(x.std()), 1e-6)
            self.log_s.value[:] = -math.log(sd)
            self.b.value[:] = -x.mean(axis=0)
            self.b.lr_scale = sd
            self._init = True
        self._x = x + np.round(self.b.value)
        self._s = math.exp(self.log_s.value[0])
        return self._s * self._x

    def backward(self, g):
        self.log_s.grad = np.array([(g * self._x).sum() * self._s])
        self.b.grad = g.sum(axis=0) * self._s
        return g * self._s


@dataclass
class Model:
    layers: list
    name: str = "network"
    input_shape: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for layer in self.layers:  # the first compute layer needs no input gradient
            if isinstance(layer, _Compute):
                layer.need_dx = False
                break

    def forward(self, x, train=False):
        x = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
            if g is None:
                break

    def params(self):
        return [p for layer in self.layers for p in layer.params()]


# -- training ------------------------------------------------------------------------------------
def _softmax_ce(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    p[np.arange(n), y] -= 1
    return loss, p / n


def fit(model: Model, x, y, *, epochs: int, seed: int, batch_size: int = 64, lr: float = 0.01,
        shift_augment: int = 0, log=None) -> float:
    """Train with Adam and a cosine learning-rate schedule; returns the last epoch's mean loss.

    ``shift_augment`` > 0 shifts each training image by up to that many pixels (filled with 0).
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    n = len(y)
    steps = epochs * math.ceil(n / batch_size)
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    loss_sum = 0.0
    for epoch in range(epochs):
        perm = rng.permutation(n)
        loss_sum = 0.0
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            xb = x[idx]
            if shift_augment:
                xb = _shift(xb, rng, shift_augment)
            out = model.forward(xb, train=True)
            loss, g = _softmax_ce(out, y[idx])
            loss_sum += loss * len(idx)
            model.backward(g)
            t += 1
            lr_t = lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / steps))
            for p in model.params():
                if p.grad is None:
                    continue
                if p.m is None:
                    p.m, p.v = np.zeros_like(p.value), np.zeros_like(p.value)
                p.m = b1 * p.m + (1 - b1) * p.grad
                p.v = b2 * p.v + (1 - b2) * p.grad ** 2
                mh, vh = p.m / (1 - b1 ** t), p.v / (1 - b2 ** t)
                p.value -= lr_t * p.lr_scale * mh / (np.sqrt(vh) + eps)
                p.grad = None
            for layer in model.layers:
                layer.constrain()
        if log is not None:
            log(f"{model.name}: epoch {epoch + 1}/{epochs} loss {loss_sum / n:.4f}")
    return loss_sum / n


def _shift(xb, rng, k):
    """Shift each image (N, C, H, W) or flat 8×8 vector by up to ``k`` pixels."""
    flat = xb.ndim == 2
    img = xb.reshape(len(xb), 1, 8, 8) if flat else xb
    out = np.zeros_like(img)
    dy, dx = rng.integers(-k, k + 1, size=(2, len(img)))
    h, w = img.shape[2:]
    for i in range(len(img)):
        a, b = dy[i], dx[i]
        out[i, :, max(a, 0):h + min(a, 0), max(b, 0):w + min(b, 0)] = \
            img[i, :, max(-a, 0):h + min(-a, 0), max(-b, 0):w + min(-b, 0)]
    return out.reshape(xb.shape)


def recalibrate(model: Model, x) -> None:
    """Set every BatchNorm's statistics to those of the whole training set (layer by layer,
    each with the statistics of the layers before it already in place)."""
    h = np.asarray(x, dtype=np.float64)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            axes = (0,) + tuple(range(2, h.ndim))
            layer.mean, layer.var = h.mean(axis=axes), h.var(axis=axes)
        h = layer.forward(h, False)


def predict(model: Model, x) -> np.ndarray:
    return np.argmax(model.forward(x, train=False), axis=1)


# -- export --------------------------------------------------------------------------------------
def _mac_kind(wq, in_dtype: DType) -> str:
    if isinstance(wq, AdderWeights):
        return "adder"
    if isinstance(wq, BinaryWeights):
        return macs.kind_for(DType.bipolar(), in_dtype)
    if isinstance(wq, TernaryWeights):
        return "ternary"
    if isinstance(wq, PowerOfTwoWeights):
        return "onehot"
    return "int"


def _thresholds(bn: BatchNorm, q: Quantizer, amin, amax, symmetric: bool):
    """Integer thresholds (C, T) and the rows to negate: ``z >= tau/gain`` as ``acc >= t``."""
    g, beta = bn.gamma.value, bn.beta.value
    mu, sd = bn.mean, np.sqrt(bn.var + BN_EPS)
    taus = np.array(q.taus) / q.gain
    flip = g < 0
    if flip.any() and not symmetric:
        raise ValueError("A negative BatchNorm scale needs negated weights, which this weight "
                         "type cannot express")
    t = np.empty((len(g), len(taus)), dtype=np.int64)
    for c in range(len(g)):
        lo, hi = (-amax[c], -amin[c]) if flip[c] else (amin[c], amax[c])
        if g[c] == 0:
            row = np.where(beta[c] >= taus, lo, hi + 1)
        else:
            real = mu[c] + (taus - beta[c]) * sd[c] / g[c]
            row = np.ceil(-real if flip[c] else real)
        t[c] = np.clip(row, lo, hi + 1)
    return t, flip


def _requant(bn: BatchNorm, q: Quantizer, amin, amax):
    """Integer bias, multipliers and shift: ``round_half_up(gain·z) = (acc + bias)·m >> shift``."""
    g, beta = bn.gamma.value, bn.beta.value
    mu, sd = bn.mean, np.sqrt(bn.var + BN_EPS)
    gain = q.gain * g / sd
    safe = np.where(g == 0, 1.0, g)
    bias = np.where(g == 0, 0, np.round(-mu + beta * sd / safe)).astype(np.int64)
    top = float(np.abs(gain).max())
    shift = int(min(40, max(0, 15 - math.floor(math.log2(top))))) if top > 0 else 0
    mult = np.round(gain * (1 << shift)).astype(np.int64)
    return bias, mult, shift


def export(model: Model, *, input_spec: dict, source: str = "", metadata: dict | None = None):
    """The network description (dict) and arrays of a trained model.

    ``input_spec`` is the file's ``input`` entry (shape, type, quantizer); the model's layers
    must be compute layers each followed by BatchNorm + Activation or by Scale, with MaxPool2d
    and Flatten between them.
    """
    spec_in = dict(input_spec)
    in_dtype = DType(spec_in["encoding"], spec_in.get("bits", 1))
    lo, hi = in_dtype.min, in_dtype.max
    layers, arrays = [], {}
    ls = model.layers
    i, n_compute = 0, 0
    while i < len(ls):
        layer = ls[i]
        if isinstance(layer, Flatten):
            i += 1
            continue
        if isinstance(layer, MaxPool2d):
            layers.append({"type": "maxpool2d", "name": f"pool{len(layers)}", "kernel": layer.kernel})
            i += 1
            continue
        if not isinstance(layer, _Compute):
            raise TypeError(f"Unexpected layer {type(layer).__name__} at position {i}")
        k = n_compute
        n_compute += 1
        q = layer.qweights().astype(np.int64)
        mac = _mac_kind(layer.wq, in_dtype)
        rows = q.reshape(q.shape[0], -1)
        amin, amax = macs.acc_bounds(mac, rows, lo, hi)
        entry = {"type": "conv2d" if isinstance(layer, Conv2d) else "dense", "name": f"{mac}{k}",
                 "mac": mac, "weights": {"key": f"w{k}", **layer.wq.spec(q)}}
        if isinstance(layer, Conv2d):
            entry.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding)
            if layer.padding:
                entry["pad_value"] = int(layer.pad_value)
        nxt = ls[i + 1]
        if isinstance(nxt, BatchNorm):
            quant = ls[i + 2].q
            if quant.export == "requant":
                bias, mult, shift = _requant(nxt, quant, amin, amax)
                arrays[f"b{k}"], arrays[f"m{k}"] = bias, mult
                entry["bias"] = f"b{k}"
                entry["activation"] = {"type": "requant", "multiplier": f"m{k}", "shift": shift,
                                       "rounding": "half-up",
                                       "clip": [min(quant.levels), max(quant.levels)]}
            else:
                t, flip = _thresholds(nxt, quant, amin, amax, layer.wq.symmetric)
                q = np.where(flip.reshape(-1, *([1] * (q.ndim - 1))), -q, q)
                arrays[f"t{k}"] = t
                entry["activation"] = quant.spec(f"t{k}")
            out = quant.out_dtype()
            in_dtype, lo, hi = out, min(quant.levels), max(quant.levels)
            i += 3
        elif isinstance(nxt, Scale):
            arrays[f"b{k}"] = np.round(nxt.b.value).astype(np.int64)
            entry["bias"] = f"b{k}"
            i += 2
        else:
            raise TypeError(f"A compute layer must be followed by BatchNorm or Scale, not "
                            f"{type(nxt).__name__}")
        arrays[f"w{k}"] = q.astype(np.int8 if np.abs(q).max() < 128 else np.int16)
        layers.append(entry)
    layers.append({"type": "argmax", "name": "class"})
    doc = {"version": 1, "name": model.name, "source": source, "metadata": dict(metadata or {}),
           "input": spec_in, "layers": layers}
    return doc, arrays
