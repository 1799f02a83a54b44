"""Small float models to quantize: a ReLU MLP and an AdderNet MLP, trained in numpy.

Used by the tests and the benchmark of ``nomul quantize``. Training is full float (no
quantization in the loop: that is quant_models/train.py's job); the results are float models in
the ``.npz`` layout of :mod:`quant_models.quant_net` (``w<i>``, ``b<i>``, ``bn<i>_*``).
Everything is drawn from the ``seed`` you pass, single-threaded so that results repeat.
"""

from __future__ import annotations

import numpy as np

__all__ = ["digits_split", "train_mlp", "train_adder_mlp", "accuracy"]


def digits_split(seed: int = 0, n_train: int = 1400):
    """scikit-learn's 8×8 digits (pixels 0..16) shuffled by ``seed``: (x_tr, y_tr, x_te, y_te)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.target))
    tr, te = idx[:n_train], idx[n_train:]
    return d.data[tr], d.target[tr], d.data[te], d.target[te]


def accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


class _Adam:
    def __init__(self, params, lr):
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9 ** self.t)) / (np.sqrt(v / (1 - 0.999 ** self.t)) + 1e-8)


def _softmax_grad(z, y):
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def train_mlp(x, y, *, hidden=(64,), steps: int = 400, lr: float = 0.01, seed: int = 0,
              classes: int = 10, batch: int = 256) -> dict:
    """A ReLU MLP ``x → hidden… → classes`` trained with Adam on cross-entropy.

    Inputs are scaled by 1/max|x| for training; the scale is folded back into ``w0``, so the
    returned arrays take raw inputs.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    xs_scale = float(np.abs(x).max()) or 1.0
    xs = x / xs_scale
    sizes = [x.shape[1], *hidden, classes]
    ws = [rng.normal(0, np.sqrt(2 / a), (b, a)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    bs = [np.zeros(b) for b in sizes[1:]]
    opt = _Adam(ws + bs, lr)
    with threadpool_limits(1):
        for _ in range(steps):
            sel = rng.choice(len(x), size=min(batch, len(x)), replace=False)
            acts, h = [xs[sel]], xs[sel]
            for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
                z = h @ w.T + b
                h = z if i == len(ws) - 1 else np.maximum(z, 0)
                acts.append(h)
            g = _softmax_grad(h, y[sel])
            gw, gb = [None] * len(ws), [None] * len(ws)
            for i in reversed(range(len(ws))):
                gw[i], gb[i] = g.T @ acts[i], g.sum(axis=0)
                if i:
                    g = (g @ ws[i]) * (acts[i] > 0)
            opt.step(gw + gb)
    out = {}
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        out[f"w{i}"] = w / xs_scale if i == 0 else w.copy()
        out[f"b{i}"] = b.copy()
    return out


def _adder(h, w):
    return -np.abs(h[:, None, :] - w[None]).sum(axis=2)


def train_adder_mlp(x, y, *, hidden=(32,), steps: int = 400, lr: float = 0.01, seed: int = 0,
                    classes: int = 10, batch: int = 128, eps: float = 1e-5) -> dict:
    """An AdderNet MLP: every layer ``−Σ|x − w|``, then BatchNorm (then ReLU but for the last).

    Gradients as in AdderNet (Chen et al., CVPR 2020): ``∂z/∂w = x − w`` (full precision) and
    ``∂z/∂x = HardTanh(w − x)``. Hidden BatchNorm scales are kept non-negative (a threshold can
    only count upwards: see :func:`quant_models.quantizers.quantize_layer`). BatchNorm statistics
    of the returned model are those of the whole training set.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    xs_scale = float(np.abs(x).max()) or 1.0
    xs = x / xs_scale
    sizes = [x.shape[1], *hidden, classes]
    ws = [rng.uniform(0, 1, (b, a)) * (1 if i == 0 else 0.5) for i, (a, b) in
          enumerate(zip(sizes[:-1], sizes[1:], strict=True))]
    gam = [np.ones(b) for b in sizes[1:]]
    bet = [np.zeros(b) for b in sizes[1:]]
    opt = _Adam(ws + gam + bet, lr)
    n_l = len(ws)
    with threadpool_limits(1):
        for _ in range(steps):
            sel = rng.choice(len(x), size=min(batch, len(x)), replace=False)
            h = xs[sel]
            cache = []
            for i in range(n_l):
                z = _adder(h, ws[i])
                mu, var = z.mean(axis=0), z.var(axis=0)
                zh = (z - mu) / np.sqrt(var + eps)
                o = gam[i] * zh + bet[i]
                cache.append((h, zh, var))
                h = o if i == n_l - 1 else np.maximum(o, 0)
            g = _softmax_grad(h, y[sel])
            gw, gg, gbt = [None] * n_l, [None] * n_l, [None] * n_l
            for i in reversed(range(n_l)):
                hin, zh, var = cache[i]
                if i != n_l - 1:
                    g = g * (gam[i] * zh + bet[i] > 0)
                gg[i], gbt[i] = (g * zh).sum(axis=0), g.sum(axis=0)
                gzh = g * gam[i]
                m = len(zh)
                gz = (gzh - gzh.mean(axis=0) - zh * (gzh * zh).mean(axis=0)) / np.sqrt(var + eps)
                diff = hin[:, None, :] - ws[i][None]          # x − w, (N, M, K)
                gw[i] = np.einsum("nm,nmk->mk", gz, diff) / 1.0
                if i:
                    g = np.einsum("nm,nmk->nk", gz, np.clip(-diff, -1, 1))
                del m
            opt.step(gw + gg + gbt)
            for i in range(n_l - 1):
                np.maximum(gam[i], 0, out=gam[i])
        out = {}
        h = x
        for i in range(n_l):
            w = ws[i] * xs_scale if i == 0 else ws[i].copy()
            z = _adder(h, w)
            mu, var = z.mean(axis=0), z.var(axis=0)
            out[f"w{i}"] = w
            out[f"bn{i}_gamma"], out[f"bn{i}_beta"] = gam[i].copy(), bet[i].copy()
            out[f"bn{i}_mean"], out[f"bn{i}_var"] = mu, var
            out[f"bn{i}_eps"] = np.float64(eps * (xs_scale ** 2 if i == 0 else 1.0))
            o = gam[i] * (z - mu) / np.sqrt(var + out[f"bn{i}_eps"]) + bet[i]
            h = np.maximum(o, 0)
    return out
