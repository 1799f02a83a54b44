"""Loading and validation of a network description file (YAML + .npz) into the IR.

Every error raises :class:`gen.errors.NetworkError` with the path of the offending field.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydantic

from . import schema
from .bounds import check_bounds
from .dtypes import DType, bits_for_range
from .errors import NetworkError
from .ir import (
    Argmax,
    Conv2d,
    Dense,
    InputQuantizer,
    InputSpec,
    MaxPool2d,
    MultiThreshold,
    Network,
    NoActivation,
    Requant,
    ValueRange,
)
from .safeio import NpzReader, read_yaml

__all__ = ["load_network", "network_from_dict", "MAX_ARRAY_ELEMENTS"]

MAX_ARRAY_ELEMENTS = 1 << 22
MAX_TOTAL_ELEMENTS = 1 << 23
MAX_INPUT_ELEMENTS = 1 << 22
MAX_ABS_BIAS = 1 << 40
MAX_ACC_BITS = 62
MAX_OUT_BITS = 32

# Which weight and activation encodings each MAC kind takes.
MAC_RULES = {
    "xnor": ({"bipolar"}, {"bipolar"}),
    "and": ({"bipolar"}, {"uint1"}),
    "ternary": ({"ternary", "bipolar"}, {"uint", "int", "ternary", "bipolar"}),
    "onehot": ({"onehot"}, {"onehot", "uint"}),
    "int": ({"int", "uint", "ternary"}, {"uint", "int", "ternary"}),
    "adder": ({"int", "uint"}, {"uint", "int"}),
}


def _fmt_path(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _pydantic_path(err: dict, data) -> str:
    """The path of a pydantic error, keeping only the components that are keys of the data
    (pydantic adds the names of union members and tags), plus a missing field's name."""
    parts, node = [], data
    loc = err["loc"]
    for i, comp in enumerate(loc):
        if isinstance(comp, int) and isinstance(node, list) and 0 <= comp < len(node):
            parts.append(comp)
            node = node[comp]
        elif isinstance(comp, str) and isinstance(node, dict) and comp in node:
            parts.append(comp)
            node = node[comp]
        elif err["type"] == "missing" and i == len(loc) - 1:
            parts.append(comp)
    return _fmt_path(parts)


def _union_members(err: dict, data) -> tuple:
    """The components of an error's location that are not keys of the data: the names of the
    union members (and tags) that pydantic tried."""
    out, node = [], data
    for i, comp in enumerate(err["loc"]):
        if isinstance(comp, int) and isinstance(node, list) and 0 <= comp < len(node):
            node = node[comp]
        elif isinstance(comp, str) and isinstance(node, dict) and comp in node:
            node = node[comp]
        elif not (err["type"] == "missing" and i == len(err["loc"]) - 1):
            out.append((i, comp))
    return tuple(out)


def _best_error(errors: list, data) -> dict:
    """The one error to report.

    A value that fails every member of a union (``stride: [1, 0]`` against ``int | tuple[int,
    int]``, or a quantizer against the affine and the threshold forms) gives errors for every
    member: report one from the member that fits best (fewest errors, then fewest type
    mismatches). Within it, an unknown key (often a typo) comes first, as it explains the
    "missing" error that comes with it.
    """
    def mismatch(err):
        return err["type"].endswith("_type")

    groups: dict[tuple, list] = {}
    for err in errors:
        groups.setdefault(_union_members(err, data), []).append(err)
    best = min(groups.values(), key=lambda g: (len(g), sum(map(mismatch, g))))
    return min(best, key=lambda err: (err["type"] != "extra_forbidden", mismatch(err)))


def _pydantic_message(err: dict) -> str:
    t = err["type"]
    if t == "missing":
        return "required field is missing"
    if t == "extra_forbidden":
        return "unknown key"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[0].lower() + msg[1:]
    inp = err.get("input")
    if isinstance(inp, (int, float, str, bool)) and len(repr(inp)) < 40:
        msg += f", got {inp!r}"
    return msg


def _dtype(path: str, spec: schema.TypeSpec) -> DType:
    enc, bits = spec.encoding, spec.bits
    if enc in ("uint", "int", "onehot") and bits is None:
        raise NetworkError(f"{path}.bits", f"required for encoding {enc!r}")
    if enc == "bipolar":
        bits = 1 if bits is None else bits
    if enc == "ternary":
        bits = 2 if bits is None else bits
    try:
        return DType(enc, bits, narrow=spec.narrow, signed=spec.signed)
    except ValueError as e:
        raise NetworkError(path, str(e)[0].lower() + str(e)[1:]) from None


def _describe(dt: DType) -> str:
    if dt.encoding == "bipolar":
        return "{-1, +1}"
    if dt.encoding == "ternary":
        return "{-1, 0, +1}"
    if dt.encoding == "onehot":
        return f"{{0{', ±' if dt.signed else ', '}2^e for 0 <= e < {dt.bits}}}"
    return f"[{dt.min}, {dt.max}] ({dt})"


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Arrays:
    """Lazy access to the .npz file, with field-path errors.

    Only the members the network refers to are read, each after its header is checked against
    :data:`MAX_ARRAY_ELEMENTS` (:class:`gen.safeio.NpzReader`); all of them together may hold
    at most :data:`MAX_TOTAL_ELEMENTS`. The file must be inside ``base``, the network file's
    folder (no absolute path, no ``..``, no symbolic link out of it).
    """

    def __init__(self, path: Path | None, arrays: dict | None = None, *, base: Path | None = None,
                 ref: str | None = None, sha256: str | None = None):
        self.path = path
        self.sha256 = sha256  # of the whole file, as the network file records it
        self.base = base
        self.ref = ref  # the reference as written in the file
        self._npz = arrays
        self._reader = None
        self._cache: dict[str, np.ndarray] = {}
        self._total = 0
        self._opened = arrays is not None

    def _open(self, field: str):
        if self._opened:
            return
        self._opened = True
        if self.path is None:
            raise NetworkError(field, "no arrays file given")
        if self.base is not None:
            self._check_inside()
        if not self.path.is_file():
            raise NetworkError("arrays", f"file not found: {self.path}")
        if self.sha256 is not None:
            self._check_digest()
        self._reader = NpzReader(self.path, max_elements=MAX_ARRAY_ELEMENTS)

    def _check_digest(self):
        import hashlib

        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != self.sha256:
            raise NetworkError("arrays_sha256", f"{self.path.name} is not the arrays file this network "
                                                f"was written with (SHA-256 {h.hexdigest()[:16]}…, "
                                                f"expected {self.sha256[:16]}…); write both again")

    def _check_inside(self):
        rel = Path(self.ref) if self.ref is not None else None
        if rel is None or rel.is_absolute() or ".." in rel.parts:
            raise NetworkError("arrays", f"{rel or self.path} must be a file name relative to the "
                                         f"network file's folder, without '..'")
        try:
            inside = self.path.resolve().is_relative_to(self.base.resolve())
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise NetworkError("arrays", f"{rel} resolves to {self.path.resolve()}, outside the "
                                         f"network file's folder")

    def _raw(self, field: str, key: str) -> np.ndarray | None:
        if self._reader is None:
            return self._npz.get(key) if key in self._npz else None
        if key in self._cache:
            return self._cache[key]
        if key not in self._reader:
            return None
        a = self._reader.read(key, field)
        self._total += a.size
        if self._total > MAX_TOTAL_ELEMENTS:
            raise NetworkError(field, f"the arrays referred to hold more than {MAX_TOTAL_ELEMENTS} "
                                      f"elements in all, the limit")
        self._cache[key] = a
        return a

    def get(self, field: str, key: str, *, allow_bool: bool = False) -> np.ndarray:
        self._open(field)
        raw = self._raw(field, key)
        if raw is None:
            where = self.path.name if self.path is not None else "the arrays"
            raise NetworkError(field, f"array {key!r} not found in {where}")
        a = np.asarray(raw)
        ok = np.issubdtype(a.dtype, np.integer) or (allow_bool and a.dtype == np.bool_)
        if not ok:
            raise NetworkError(field, f"array {key!r} must hold integers, not {a.dtype}")
        if a.size > MAX_ARRAY_ELEMENTS:
            raise NetworkError(field, f"array {key!r} has {a.size} elements, more than the limit of "
                                      f"{MAX_ARRAY_ELEMENTS}")
        if a.size == 0:
            raise NetworkError(field, f"array {key!r} is empty (shape {a.shape})")
        if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
            raise NetworkError(field, f"array {key!r} has values beyond the int64 range")
        out = a.astype(np.int64)
        out.flags.writeable = False
        return out


def _check_shape(field: str, a: np.ndarray, shape: tuple, what: str):
    if a.shape != tuple(shape):
        raise NetworkError(field, f"expected shape {tuple(shape)} ({what}), found {a.shape}")


def _check_values(field: str, a: np.ndarray, dt: DType):
    bad = ~dt.contains(a)
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), a.shape)
        raise NetworkError(field, f"expected values in {_describe(dt)}, found {int(a[idx])} "
                                  f"at index {list(map(int, idx))}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.flags.writeable = False
    return a


def _acc_bounds(mac: str, w: np.ndarray, shift: int, rng: ValueRange, bias):
    """Exact per-row minimum and maximum of the dot product over inputs in ``rng``."""
    lo, hi = rng.lo, rng.hi
    amag = max(abs(lo), abs(hi))
    wmag = int(np.abs(w).max(initial=0)) << shift
    if (amag + wmag) * max(amag, wmag, 1) * w.shape[1] >= 1 << 62:
        w = w.astype(object)  # int64 could overflow: bound with Python integers
    if mac == "adder":
        ws = w << shift
        tmin = -np.maximum(np.abs(lo - ws), np.abs(hi - ws))
        tmax = -np.maximum(0, np.maximum(lo - ws, ws - hi))
    else:
        tmin = np.minimum(lo * w, hi * w)
        tmax = np.maximum(lo * w, hi * w)
    amin, amax = tmin.sum(axis=1), tmax.sum(axis=1)
    if bias is not None:
        amin, amax = amin + bias, amax + bias
    return amin, amax


def _out_dtype(field: str, lo: int, hi: int, what: str, hint: str = "") -> DType:
    """The uint or int type of an output range, which must fit the widest element type."""
    width, _ = bits_for_range(lo, hi)
    if width > MAX_OUT_BITS:
        raise NetworkError(field, f"{what} [{lo}, {hi}] needs {width} bits, more than the "
                                  f"{MAX_OUT_BITS} an element can have{hint}")
    return DType.for_range(lo, hi)


def _activation(path: str, spec, arrays: _Arrays, oc_full: int, keep, amin, amax):
    p = f"{path}.activation"
    if isinstance(spec, schema.NoActivationSpec):
        return NoActivation(_out_dtype(p, int(amin.min()), int(amax.max()), "the accumulator range",
                                       "; add a requant or multithreshold activation"))
    if isinstance(spec, schema.MultiThresholdSpec):
        f = f"{p}.thresholds"
        t = arrays.get(f, spec.thresholds)
        if t.ndim == 1:
            t = t.reshape(1, -1) if oc_full != 1 else t.reshape(1, -1)
        if t.ndim != 2 or t.shape[0] not in (1, oc_full) or not 1 <= t.shape[1] <= 1 << 16:
            raise NetworkError(f, f"expected shape ({oc_full}, T) or (1, T) with 1 <= T <= 65536, "
                                  f"found {t.shape}")
        unsorted = np.diff(t, axis=1) < 0
        if unsorted.any():
            row = int(np.argmax(unsorted.any(axis=1)))
            raise NetworkError(f, f"row {row} is not sorted (thresholds must be non-decreasing)")
        n = t.shape[1]
        if spec.bipolar:
            if n != 1:
                raise NetworkError(f"{p}.bipolar", f"a bipolar output needs exactly 1 threshold "
                                                   f"per channel, found {n}")
            levels = np.array([-1, 1])
        elif spec.levels is not None:
            _out_dtype(f"{p}.levels", min(spec.levels), max(spec.levels), "the range of the levels")
            levels = np.array(spec.levels, dtype=np.int64)
            if len(levels) != n + 1:
                raise NetworkError(f"{p}.levels", f"expected {n + 1} levels for {n} thresholds, "
                                                  f"found {len(levels)}")
            if (np.diff(levels) < 0).any():
                raise NetworkError(f"{p}.levels", "levels must be non-decreasing")
        else:
            _out_dtype(f"{p}.offset", spec.offset, spec.offset + n, "the output range")
            levels = spec.offset + np.arange(n + 1)
        lo, hi = int(levels[0]), int(levels[-1])
        enc = spec.encoding or ("bipolar" if spec.bipolar else None)
        if enc is None:
            out = DType.for_range(lo, hi)
        elif enc == "bipolar":
            if not set(levels.tolist()) <= {-1, 1}:
                raise NetworkError(f"{p}.encoding", "bipolar output needs levels in {-1, +1}")
            out = DType.bipolar()
        elif enc == "onehot":
            mags = np.abs(levels[levels != 0])
            if mags.size == 0 or ((mags & (mags - 1)) != 0).any():
                raise NetworkError(f"{p}.levels", "onehot output needs levels that are 0 or ±2^e")
            out = DType.onehot(int(mags.max()).bit_length(), signed=bool((levels < 0).any()))
        else:
            out = DType.for_range(lo, hi)
            if enc == "int" and not out.encoding == "int":
                out = DType.int(out.bits + 1)
            if enc == "uint" and lo < 0:
                raise NetworkError(f"{p}.encoding", f"uint output cannot hold level {lo}")
        if t.shape[0] == oc_full and keep is not None:
            t = t[keep]
        return MultiThreshold(_frozen(t), _frozen(levels), out)
    # requant
    if isinstance(spec.multiplier, int):
        m = np.full(oc_full, spec.multiplier, dtype=np.int64)
    else:
        f = f"{p}.multiplier"
        m = arrays.get(f, spec.multiplier)
        if m.ndim == 0:
            m = np.full(oc_full, int(m), dtype=np.int64)
        _check_shape(f, m, (oc_full,), "one multiplier per output channel")
    if keep is not None:
        m = m[keep]
    lo, hi = spec.clip
    if lo > hi:
        raise NetworkError(f"{p}.clip", f"lower bound {lo} is above upper bound {hi}")
    out = _out_dtype(f"{p}.clip", lo, hi, "the output range")
    mmax = int(np.abs(m).max())
    amag = max(abs(int(amin.min())), abs(int(amax.max())))
    if mmax and (mmax * amag).bit_length() > MAX_ACC_BITS:
        raise NetworkError(f"{p}.multiplier", f"accumulator × multiplier needs "
                                              f"{(mmax * amag).bit_length() + 1} bits, more than 63")
    return Requant(_frozen(m), spec.shift, spec.rounding, (lo, hi), out)


def _compute_layer(i: int, spec, arrays: _Arrays, shape, shape_full, dt: DType, rng: ValueRange,
                   in_keep, out_keep_needed: bool):
    path = f"layers[{i}]"
    name = spec.name or f"layer{i}"
    wdt = _dtype(f"{path}.weights", spec.weights)
    w_ok, a_ok = MAC_RULES[spec.mac]
    if wdt.encoding not in w_ok:
        raise NetworkError(f"{path}.weights.encoding", f"MAC kind {spec.mac!r} takes weights "
                                                       f"{' or '.join(sorted(w_ok))}, not {wdt.encoding}")
    a_name = "uint1" if (dt.encoding == "uint" and dt.bits == 1 and "uint1" in a_ok) else dt.encoding
    if a_name not in a_ok:
        raise NetworkError(f"{path}.mac", f"MAC kind {spec.mac!r} takes {' or '.join(sorted(a_ok))} "
                                          f"activations, but its input is {dt}")
    if spec.weights.shift and spec.mac != "adder":
        raise NetworkError(f"{path}.weights.shift", "only adder layers take a weight shift")
    wf = f"{path}.weights"
    w = arrays.get(wf, spec.weights.key)
    if isinstance(spec, schema.Conv2dSpec):
        if len(shape) != 3:
            raise NetworkError(path, f"conv2d needs a C×H×W input, found shape {tuple(shape)}")
        kernel, stride, padding = _pair(spec.kernel), _pair(spec.stride), _pair(spec.padding)
        if w.ndim != 4 or w.shape[1:] != (shape_full[0], *kernel):
            raise NetworkError(wf, f"expected shape (OC, {shape_full[0]}, {kernel[0]}, {kernel[1]}) "
                                   f"(OIHW), found {w.shape}")
        oh = (shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
        ow = (shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
        if shape[1] + 2 * padding[0] < kernel[0] or shape[2] + 2 * padding[1] < kernel[1]:
            raise NetworkError(f"{path}.kernel", f"kernel {kernel} is larger than the padded input "
                                                 f"{shape[1] + 2 * padding[0]}×{shape[2] + 2 * padding[1]}")
        oc_full = w.shape[0]
    else:
        mw_full = math.prod(shape_full)
        if w.ndim != 2 or w.shape[1] != mw_full:
            raise NetworkError(wf, f"expected shape (MH, {mw_full}), found {w.shape}")
        oc_full = w.shape[0]
    _check_values(wf, w, wdt)
    if in_keep is not None:  # drop the input channels that the previous layer's mask removed
        if isinstance(spec, schema.Conv2dSpec):
            w = w[:, in_keep]
        else:
            w = w.reshape(oc_full, shape_full[0], -1)[:, in_keep].reshape(oc_full, -1)
    bias = None
    if spec.bias is not None:
        bias = arrays.get(f"{path}.bias", spec.bias)
        _check_shape(f"{path}.bias", bias, (oc_full,), "one per output channel")
        if np.abs(bias).max() > MAX_ABS_BIAS:
            raise NetworkError(f"{path}.bias", f"bias magnitude above 2^40: {int(np.abs(bias).max())}")
    keep = None
    if spec.mask is not None:
        mf = f"{path}.mask"
        mask = arrays.get(mf, spec.mask, allow_bool=True)
        _check_shape(mf, mask, (oc_full,), "one per output channel")
        if not np.isin(mask, (0, 1)).all():
            raise NetworkError(mf, "expected values in {0, 1}")
        if not mask.any():
            raise NetworkError(mf, "the mask removes every output channel")
        if not out_keep_needed:
            raise NetworkError(mf, "a mask needs a dense or conv2d layer after it (it would change "
                                   "the network's outputs)")
        keep = np.flatnonzero(mask)
        w = w[keep]
        if bias is not None:
            bias = bias[keep]
    w = _frozen(w)
    bias = None if bias is None else _frozen(bias)
    oc = w.shape[0]
    pad_value = 0
    if isinstance(spec, schema.Conv2dSpec):
        if spec.pad_value is not None:
            pad_value = spec.pad_value
            if not dt.contains(pad_value):
                raise NetworkError(f"{path}.pad_value", f"{pad_value} is not a value of the input "
                                                        f"type {dt} ({_describe(dt)})")
        elif any(padding) and not dt.contains(0):
            raise NetworkError(f"{path}.pad_value", f"required: 0 is not a value of the input type {dt}")
        out_shape = (oc, oh, ow)
    else:
        out_shape = (oc,)
    amin, amax = _acc_bounds(spec.mac, w.reshape(oc, -1), spec.weights.shift, rng, bias)
    need = max(int(np.abs(amin).max()), int(np.abs(amax).max())).bit_length() + 1
    if need > MAX_ACC_BITS:
        raise NetworkError(wf, f"the accumulator would need {need} bits, more than {MAX_ACC_BITS}")
    act = _activation(path, spec.activation, arrays, oc_full, keep, amin, amax)
    if isinstance(act, Requant):
        out_range = ValueRange(*act.clip)
    elif isinstance(act, MultiThreshold):
        out_range = ValueRange(int(act.levels[0]), int(act.levels[-1]))
    else:
        out_range = ValueRange(int(amin.min()), int(amax.max()))
    for fld, v, n in (("pe", spec.pe, oc), ("simd", spec.simd, w.reshape(oc, -1).shape[1])):
        if v is not None and n % v:
            what = "output channels" if fld == "pe" else "inputs per dot product"
            raise NetworkError(f"{path}.{fld}", f"{v} does not divide the {n} {what}")
    common = dict(
        name=name, mac=spec.mac, weights=w, w_dtype=wdt, w_shift=spec.weights.shift, bias=bias,
        activation=act, in_shape=tuple(shape), out_shape=out_shape, in_dtype=dt, in_range=rng,
        acc_lo=_frozen(amin), acc_hi=_frozen(amax), out_range=out_range,
        kept_channels=None if keep is None else tuple(int(k) for k in keep),
        pe=spec.pe, simd=spec.simd, ram_style=spec.ram_style)
    if isinstance(spec, schema.Conv2dSpec):
        layer = Conv2d(**common, kernel=kernel, stride=stride, padding=padding, pad_value=pad_value)
    else:
        layer = Dense(**common)
    full_out = (oc_full, *out_shape[1:])
    return layer, full_out, keep


def network_from_dict(data, base: Path | None = None, arrays: dict | None = None) -> Network:
    """Validate a parsed network description and build the IR.

    ``base`` is the folder the ``arrays`` path is relative to; ``arrays`` may instead give the
    arrays directly (a mapping of key to integer array).
    """
    if not isinstance(data, dict):
        raise NetworkError("", f"expected a mapping at the top level, found {type(data).__name__}")
    try:
        spec = schema.NetworkSpec.model_validate(data)
    except pydantic.ValidationError as e:
        err = _best_error(e.errors(), data)
        raise NetworkError(_pydantic_path(err, data), _pydantic_message(err)) from None
    names: dict[str, int] = {}
    for i, ls in enumerate(spec.layers):
        name = ls.name or f"layer{i}"
        if name in names:
            raise NetworkError(f"layers[{i}].name", f"{name!r} is already the name of layers[{names[name]}]")
        names[name] = i
    if arrays is None:
        npz = None
        if spec.arrays is not None:
            npz = (base or Path(".")) / spec.arrays
        arr = _Arrays(npz, base=base, ref=spec.arrays, sha256=spec.arrays_sha256)
    else:
        arr = _Arrays(None, dict(arrays))
    net = _build(spec, arr)
    check_bounds(net)
    return net


def _build(spec: schema.NetworkSpec, arrays: _Arrays) -> Network:
    ispec = spec.input
    dt = _dtype("input", ispec)
    shape = tuple(ispec.shape)
    if len(shape) == 2:
        raise NetworkError("input.shape", "expected a vector [N] or an image [C, H, W], found 2 dimensions")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise NetworkError("input.shape", f"{math.prod(shape)} elements, more than the limit of "
                                          f"{MAX_INPUT_ELEMENTS}")
    quant = None
    q = ispec.quantizer
    if isinstance(q, schema.ThresholdQuantizerSpec):
        if dt.encoding != "bipolar":
            raise NetworkError("input.quantizer.threshold", "a threshold quantizer needs bipolar inputs")
        quant = InputQuantizer("threshold", threshold=float(q.threshold))
    elif isinstance(q, schema.AffineQuantizerSpec):
        if dt.encoding not in ("uint", "int", "ternary"):
            raise NetworkError("input.quantizer", f"an affine quantizer needs uint, int or ternary "
                                                  f"inputs, not {dt.encoding}")
        clip = q.clip if q.clip is not None else (dt.min, dt.max)
        if clip[0] > clip[1] or clip[0] < dt.min or clip[1] > dt.max:
            raise NetworkError("input.quantizer.clip", f"{list(clip)} is not a range within "
                                                       f"[{dt.min}, {dt.max}]")
        quant = InputQuantizer("affine", scale=float(q.scale), zero_point=q.zero_point,
                               rounding=q.rounding, clip=tuple(clip))
    inp = InputSpec(shape, dt, quant)
    rng = ValueRange(dt.min, dt.max)
    shape_full, keep = shape, None
    layers = []
    specs = spec.layers
    for i, ls in enumerate(specs):
        path = f"layers[{i}]"
        if keep is not None and not isinstance(ls, (schema.DenseSpec, schema.Conv2dSpec,
                                                     schema.MaxPool2dSpec)):
            raise NetworkError(f"layers[{i - 1}].mask", "a mask needs a dense or conv2d layer after it")
        if isinstance(ls, (schema.DenseSpec, schema.Conv2dSpec)):
            later = [s for s in specs[i + 1:] if not isinstance(s, schema.MaxPool2dSpec)]
            follows = bool(later) and isinstance(later[0], (schema.DenseSpec, schema.Conv2dSpec))
            layer, shape_full, keep = _compute_layer(i, ls, arrays, shape, shape_full, dt, rng, keep,
                                                     follows)
            shape, dt, rng = layer.out_shape, layer.out_dtype, layer.out_range
        elif isinstance(ls, schema.MaxPool2dSpec):
            if len(shape) != 3:
                raise NetworkError(path, f"maxpool2d needs a C×H×W input, found shape {tuple(shape)}")
            k = _pair(ls.kernel)
            s = _pair(ls.stride) if ls.stride is not None else k
            if shape[1] < k[0] or shape[2] < k[1]:
                raise NetworkError(f"{path}.kernel", f"kernel {k} is larger than the input "
                                                     f"{shape[1]}×{shape[2]}")
            out = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
            layer = MaxPool2d(ls.name or f"layer{i}", k, s, tuple(shape), out, dt, rng)
            shape, shape_full = out, (shape_full[0], *out[1:])
        else:
            if i != len(specs) - 1:
                raise NetworkError(path, "argmax must be the last layer")
            n = math.prod(shape)
            layer = Argmax(ls.name or f"layer{i}", tuple(shape), dt, ValueRange(0, n - 1))
            shape = layer.out_shape
        layers.append(layer)
    return Network(version=spec.version, name=spec.name, source=spec.source, input=inp,
                   layers=tuple(layers), metadata=dict(spec.metadata))


def load_network(path) -> Network:
    """Load and validate a network description file (YAML) and its arrays (.npz).

    The arrays file is the ``arrays`` field, relative to the YAML file, or by default the YAML
    file's name with the suffix ``.npz``.

    Raises
    ------
    NetworkError
        Naming the offending field path.
    """
    path = Path(path)
    data = read_yaml(path)  # size, nesting and node limits; duplicate keys rejected
    if isinstance(data, dict) and "arrays" not in data:
        data = {**data, "arrays": path.with_suffix(".npz").name}
    return network_from_dict(data, base=path.parent)
