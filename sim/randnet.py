"""Random but legal networks of every MAC kind, for tests, examples and benchmarks.

:func:`random_layer_arrays` draws the weights of one compute layer; :func:`random_network`
strings layers into a network description (a dict in the file format, plus its arrays) that
:func:`gen.load.network_from_dict` accepts. Everything is drawn from the ``rng`` you pass.
"""

from __future__ import annotations

import numpy as np

from gen.ir import MultiThreshold, NoActivation, Requant
from gen.macs import MAC_KINDS
from hw.dtypes import DType

from .golden import dot, im2col

__all__ = ["MAC_TYPES", "LANE_TYPES", "random_weights", "random_values", "random_network",
           "random_activation"]

#: For each MAC kind: (weight type spec, input type spec) used by default (the registry's).
MAC_TYPES = {name: kind.random_types for name, kind in MAC_KINDS.items()}


def _dtype(spec: dict) -> DType:
    return DType(spec["encoding"], spec.get("bits", 1 if spec["encoding"] == "bipolar" else 2),
                 narrow=spec.get("narrow", False), signed=spec.get("signed", False))


def random_values(rng: np.random.Generator, spec: dict | DType, shape) -> np.ndarray:
    """Uniformly random legal values of a type."""
    dt = spec if isinstance(spec, DType) else _dtype(spec)
    if dt.encoding in ("bipolar", "onehot", "ternary") or dt.max - dt.min <= 1 << 16:
        return rng.choice(dt.values(), size=shape)
    return rng.integers(dt.min, dt.max, size=shape, endpoint=True)


def random_weights(rng, spec: dict, shape) -> np.ndarray:
    return random_values(rng, spec, shape).astype(np.int64)


def _act_type(mac: str) -> dict:
    return MAC_TYPES[mac][1]


def _activation(rng, mac_next: str | None, acc: np.ndarray, channels: int, key: str,
                arrays: dict, style: str):
    """An activation producing the input type that ``mac_next`` takes, with thresholds or a
    shift placed from sampled accumulators ``acc`` (samples, channels) so that outputs vary."""
    acc_lo, acc_hi = int(np.percentile(acc, 2)), int(np.percentile(acc, 98))
    if mac_next is None and style == "none":
        return {"type": "none"}
    want = _act_type(mac_next) if mac_next else {"encoding": "uint", "bits": 4}
    enc = want["encoding"]
    if style == "requant" and enc in ("uint", "int"):
        dt = _dtype(want)
        span = max(1, acc_hi - acc_lo)
        mult = int(rng.integers(1, 4))
        shift = max(0, int(span * mult).bit_length() - dt.bits)
        return {"type": "requant", "multiplier": mult, "shift": shift,
                "rounding": str(rng.choice(["floor", "ceil", "half-up", "half-even"])),
                "clip": [dt.min, dt.max]}
    if enc == "bipolar":
        n, extra = 1, {"bipolar": True}
    elif enc == "onehot":
        dt = _dtype(want)
        levels = [0] + [1 << e for e in range(dt.bits)]
        n, extra = len(levels) - 1, {"levels": levels, "encoding": "onehot"}
    else:
        dt = _dtype(want)
        n = dt.max - dt.min
        extra = {"offset": dt.min} if dt.min else {}
    qs = np.sort(rng.uniform(5, 95, size=(channels, n)), axis=1)
    t = np.stack([np.percentile(acc[:, c], qs[c]) for c in range(channels)]).round().astype(np.int64)
    t = np.sort(t, axis=1)
    arrays[key] = t
    return {"type": "multithreshold", "thresholds": key, **extra}


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def random_network(rng: np.random.Generator, macs, *, conv: bool = False, in_shape=None,
                   widths=None, style: str = "multithreshold", argmax: bool = False,
                   kernel=3, padding=1, pool=False, stride=1,
                   geometry=None) -> tuple[dict, dict]:
    """A random network: one compute layer per entry of ``macs``.

    ``conv`` makes every layer but the last a 2-D convolution (the last is dense);
    ``style`` is the activation of hidden layers: multithreshold or requant (where the next
    layer's input type allows it). Returns ``(doc, arrays)``.

    Convolutions have ``kernel``, ``stride`` and ``padding`` (each an int or an (h, w) pair);
    ``pool`` adds a max-pool after each of them: ``True`` for kernel 2 (stride 2), or a dict
    ``{"kernel": k, "stride": s}``. ``geometry``, one dict per entry of ``macs`` with any of the
    keys ``kernel``, ``stride``, ``padding`` and ``pool`` (or ``None``), overrides these per layer.
    A convolution is made only where its window fits the (padded) image and the padding is
    smaller than the kernel; otherwise the layer is dense over the flattened image.
    """
    macs = list(macs)
    arrays: dict[str, np.ndarray] = {}
    in_type = dict(_act_type(macs[0]))
    if in_shape is None:
        in_shape = [2, 6, 6] if conv else [int(rng.integers(4, 24))]
    if widths is None:
        widths = [int(rng.integers(2, 12)) for _ in macs]
    doc = {"version": 1, "name": "random", "source": "gen.randnet",
           "input": {"shape": list(in_shape), **in_type}, "layers": []}
    shape = list(in_shape)
    xs = random_values(rng, in_type, (64, *shape))  # a sample batch to place thresholds
    for i, mac in enumerate(macs):
        wspec = MAC_TYPES[mac][0]
        last = i == len(macs) - 1
        # a convolution where its window fits the image, else a dense layer over the flattened image
        geo = {"kernel": kernel, "stride": stride, "padding": padding, "pool": pool,
               **((geometry[i] or {}) if geometry is not None else {})}
        (kh, kw), (sh, sw), (ph, pw) = (_pair(geo[k]) for k in ("kernel", "stride", "padding"))
        is_conv = (conv and not last and len(shape) == 3 and shape[1] + 2 * ph >= kh
                   and shape[2] + 2 * pw >= kw and ph < kh and pw < kw)
        oc = widths[i]
        wshape = (oc, shape[0], kh, kw) if is_conv else (oc, int(np.prod(shape)))
        w = random_weights(rng, wspec, wshape)
        arrays[f"w{i}"] = w
        layer = {"type": "conv2d" if is_conv else "dense", "mac": mac,
                 "weights": {"key": f"w{i}", **wspec}}
        wm = w.reshape(oc, -1)
        if is_conv:
            dt_in = _dtype(in_type if i == 0 else _act_type(mac))
            pad_value = int(dt_in.min if not dt_in.contains(0) else 0)
            layer.update({"kernel": _file_pair(kh, kw), "stride": _file_pair(sh, sw),
                          "padding": _file_pair(ph, pw)})
            if ph or pw:
                layer["pad_value"] = pad_value
            cols = im2col(xs, (kh, kw), (sh, sw), (ph, pw), pad_value)
            n, oh, ow, k = cols.shape
            acc = dot(mac, cols.reshape(-1, k), wm).reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
        else:
            acc = dot(mac, xs.reshape(len(xs), -1), wm)
        if rng.random() < 0.5:
            b = rng.integers(-3, 4, size=oc)
            arrays[f"b{i}"] = b
            layer["bias"] = f"b{i}"
            acc = acc + b.reshape(-1, *([1] * (acc.ndim - 2)))
        nxt = None if last else macs[i + 1]
        act_style = style if not last else ("none" if not argmax else "multithreshold")
        samples = np.moveaxis(acc, 1, -1).reshape(-1, oc)
        act = _activation(rng, nxt, samples, oc, f"t{i}", arrays, act_style)
        layer["activation"] = act
        doc["layers"].append(layer)
        xs = _apply(act, acc, arrays)
        if is_conv:
            shape = list(xs.shape[1:])
            pspec = geo["pool"]
            if pspec is True:
                pspec = {"kernel": 2}
            if pspec:
                (pkh, pkw) = _pair(pspec["kernel"])
                (psh, psw) = _pair(pspec.get("stride", pspec["kernel"]))
                if shape[1] >= pkh and shape[2] >= pkw:
                    spec = {"type": "maxpool2d", "kernel": _file_pair(pkh, pkw)}
                    if "stride" in pspec:
                        spec["stride"] = _file_pair(psh, psw)
                    doc["layers"].append(spec)
                    win = np.lib.stride_tricks.sliding_window_view(xs, (pkh, pkw), axis=(2, 3))
                    xs = win[:, :, ::psh, ::psw].max(axis=(4, 5))
                    shape = list(xs.shape[1:])
        else:
            shape = [oc]
    if argmax:
        doc["layers"].append({"type": "argmax"})
    return doc, arrays


def _file_pair(h: int, w: int):
    """A kernel, stride or padding as the network file writes it: an int when square."""
    return h if h == w else [h, w]


def _apply(act: dict, acc: np.ndarray, arrays: dict) -> np.ndarray:
    """The activation ``act`` (a file-format dict) applied to sampled accumulators."""
    from .golden import round_shift

    if act["type"] == "none":
        return acc
    if act["type"] == "requant":
        return np.clip(round_shift(acc * act["multiplier"], act["shift"], act["rounding"]), *act["clip"])
    t = arrays[act["thresholds"]]
    extra = acc.ndim - 2
    count = (acc[..., None] >= t.reshape(t.shape[0], *([1] * extra), t.shape[1])[None]).sum(-1)
    if act.get("bipolar"):
        levels = np.array([-1, 1])
    elif "levels" in act:
        levels = np.array(act["levels"])
    else:
        levels = act.get("offset", 0) + np.arange(t.shape[1] + 1)
    return levels[count]


# (weight type, input type, weight shift) per MAC kind: several per kind, narrow and wide
LANE_TYPES = {
    "xnor": [(DType.bipolar(), DType.bipolar(), 0)],
    "and": [(DType.bipolar(), DType.uint(1), 0)],
    "ternary": [(DType.ternary(), DType.uint(2), 0), (DType.ternary(), DType.ternary(), 0),
                (DType.bipolar(), DType.int(3), 0), (DType.ternary(), DType.bipolar(), 0)],
    "onehot": [(DType.onehot(4, signed=True), DType.onehot(3), 0),
               (DType.onehot(3, signed=True), DType.uint(3), 0),
               (DType.onehot(3), DType.onehot(2, signed=True), 0)],
    "int": [(DType.int(4), DType.uint(4), 0), (DType.int(3, narrow=True), DType.int(3), 0),
            (DType.ternary(), DType.uint(2), 0), (DType.uint(3), DType.int(2), 0)],
    "adder": [(DType.int(4), DType.uint(4), 0), (DType.int(3), DType.int(4), 1),
              (DType.uint(2), DType.uint(3), 2)],
}

def random_activation(rng, kind, acc_lo, acc_hi, mh):
    """A random activation of the given kind over accumulators in [acc_lo, acc_hi]."""
    if kind == "none":
        return NoActivation(DType.for_range(acc_lo, acc_hi))
    if kind == "requant":
        rounding = str(rng.choice(["floor", "ceil", "half-up", "half-even"]))
        mult = rng.integers(-3, 6, size=mh)
        shift = int(rng.integers(0, 4))
        clip = (-5, 6) if rng.random() < 0.5 else (0, 7)
        return Requant(mult, shift, rounding, clip, DType.for_range(*clip))
    t = int(rng.integers(1, 6))
    # thresholds mostly inside the range, some outside it on both sides
    thr = np.sort(rng.integers(acc_lo - 2, acc_hi + 3, size=(mh if rng.random() < 0.7 else 1, t)),
                  axis=1)
    out = str(rng.choice(["uint", "int", "bipolar", "onehot"])) if t == 1 else \
        str(rng.choice(["uint", "int", "onehot"]))
    if out == "bipolar":
        return MultiThreshold(thr, np.array([-1, 1]), DType.bipolar())
    if out == "onehot":
        levels = np.array([0] + [1 << e for e in range(t)])
        return MultiThreshold(thr, levels, DType.onehot(t))
    if out == "int":
        levels = np.arange(t + 1) - t // 2
        return MultiThreshold(thr, levels, DType.for_range(int(levels[0]), int(levels[-1])))
    levels = np.sort(rng.integers(0, 9, size=t + 1))   # not the identity
    return MultiThreshold(thr, levels, DType.for_range(0, 8))
