"""Loading and validation of a network description file (YAML + .npz) into the IR.

Every error raises :class:`gen.errors.NetworkError` with the path of the offending field.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pydantic

from . import schema
from .bounds import check_bounds
from .errors import NetworkError
from .ir import INPUT, InputQuantizer, InputSpec, Network, ValueRange
from .ops import OPS, NetworkSpec
from .ops.base import BuildContext, TensorInfo
from .safeio import NpzReader, read_yaml
from .schema import dtype_of

__all__ = ["load_network", "network_from_dict", "MAX_ARRAY_ELEMENTS"]

MAX_ARRAY_ELEMENTS = 1 << 22
MAX_TOTAL_ELEMENTS = 1 << 23
MAX_INPUT_ELEMENTS = 1 << 22


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


def network_from_dict(data, base: Path | None = None, arrays: dict | None = None) -> Network:
    """Validate a parsed network description and build the IR.

    ``base`` is the folder the ``arrays`` path is relative to; ``arrays`` may instead give the
    arrays directly (a mapping of key to integer array).
    """
    if not isinstance(data, dict):
        raise NetworkError("", f"expected a mapping at the top level, found {type(data).__name__}")
    try:
        spec = NetworkSpec.model_validate(data)
    except pydantic.ValidationError as e:
        err = _best_error(e.errors(), data)
        raise NetworkError(_pydantic_path(err, data), _pydantic_message(err)) from None
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


def _input_spec(ispec) -> InputSpec:
    dt = dtype_of("input", ispec)
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
    elif isinstance(q, schema.MultiThresholdQuantizerSpec):
        t = [float(v) for v in q.thresholds]
        if dt.encoding not in ("uint", "int", "ternary") or len(t) > dt.max - dt.min:
            raise NetworkError("input.quantizer.thresholds", f"{len(t)} thresholds need uint, int or ternary "
                                                             f"inputs with at least {len(t) + 1} values")
        if any(b < a for a, b in zip(t, t[1:])):
            raise NetworkError("input.quantizer.thresholds", "thresholds must be non-decreasing")
        quant = InputQuantizer("multithreshold", zero_point=dt.min, thresholds=tuple(t))
    elif isinstance(q, schema.AffineQuantizerSpec):
        if dt.encoding not in ("uint", "int", "ternary"):
            raise NetworkError("input.quantizer", f"an affine quantizer needs uint, int or ternary "
                                                  f"inputs, not {dt.encoding}")
        clip = q.clip if q.clip is not None else (dt.min, dt.max)
        if clip[0] > clip[1] or clip[0] < dt.min or clip[1] > dt.max:
            raise NetworkError("input.quantizer.clip", f"{list(clip)} is not a range within "
                                                       f"[{dt.min}, {dt.max}]")
        quant = InputQuantizer("affine", scale=float(q.scale), zero_point=q.zero_point,
                               rounding=q.rounding, clip=tuple(clip), offset=float(q.offset))
    return InputSpec(shape, dt, quant)


def _graph(spec) -> tuple[list[str], list[tuple[str, ...]], tuple[str, ...]]:
    """Layer names, the tensors each layer reads, and the network's outputs; every reference
    checked (version 1: a chain)."""
    v2 = spec.version >= 2
    names: list[str] = []
    where: dict[str, int] = {}
    for i, ls in enumerate(spec.layers):
        name = ls.name or f"layer{i}"
        if name in where:
            raise NetworkError(f"layers[{i}].name", f"duplicate layer name {name!r} (also layers[{where[name]}])")
        if v2 and name == INPUT:
            raise NetworkError(f"layers[{i}].name", f"{INPUT!r} names the network input")
        where[name] = i
        names.append(name)
    inputs = []
    for i, ls in enumerate(spec.layers):
        if ls.inputs is None:
            ins = (names[i - 1] if i else INPUT,)
        elif not v2:
            raise NetworkError(f"layers[{i}].inputs", "needs version 2 of the format")
        else:
            ins = tuple(ls.inputs)
            for j, t in enumerate(ins):
                if t == INPUT:
                    continue
                if t not in where:
                    raise NetworkError(f"layers[{i}].inputs[{j}]", f"unknown tensor {t!r} (tensors: "
                                                                   f"{', '.join([INPUT, *names[:i]])})")
                if where[t] >= i:
                    raise NetworkError(f"layers[{i}].inputs[{j}]", f"{t!r} is made by layers[{where[t]}], "
                                                                   f"which must come before this layer")
        op = OPS[ls.type]
        if len(ins) < op.arity if op.variadic else len(ins) != op.arity:
            n = f"{op.arity} or more" if op.variadic else str(op.arity)
            raise NetworkError(f"layers[{i}].inputs", f"a {ls.type} layer takes {n} input"
                                                      f"{'s' if op.arity != 1 else ''}, not {len(ins)}")
        inputs.append(ins)
    if spec.outputs is None:
        outputs = (names[-1],)
    elif not v2:
        raise NetworkError("outputs", "needs version 2 of the format")
    else:
        outputs = tuple(spec.outputs)
        for j, t in enumerate(outputs):
            if t not in where:
                raise NetworkError(f"outputs[{j}]", f"unknown tensor {t!r}")
    return names, inputs, outputs


def _build(spec, arrays: _Arrays) -> Network:
    inp = _input_spec(spec.input)
    names, inputs, outputs = _graph(spec)
    consumers: dict[str, list[int]] = {}
    for i, ins in enumerate(inputs):
        for t in ins:
            consumers.setdefault(t, []).append(i)

    def mask_ok(tensor: str) -> bool:
        """Whether every reader of ``tensor`` drops masked channels (through layers that pass
        channels on), and it is not an output."""
        if tensor in outputs or not consumers.get(tensor):
            return False
        for j in consumers[tensor]:
            op = OPS[spec.layers[j].type]
            if op.takes_masked_input:
                continue
            if not (op.passes_channels and mask_ok(names[j])):
                return False
        return True

    dt = inp.dtype
    tensors = {INPUT: TensorInfo(inp.shape, dt, ValueRange(dt.min, dt.max), inp.shape[0])}
    layers = []
    for i, ls in enumerate(spec.layers):
        op = OPS[ls.type]
        ins = tuple(tensors[t] for t in inputs[i])
        for t, info in zip(inputs[i], ins, strict=True):
            if info.keep is not None and not (op.takes_masked_input or op.passes_channels):
                src = names.index(t)
                raise NetworkError(f"layers[{src}].mask", "a mask needs a dense or conv2d layer after it")
        ctx = BuildContext(i, names[i], f"layers[{i}]", ins, arrays, mask_allowed=mask_ok(names[i]),
                           input_readers=tuple(len(consumers.get(t, ())) for t in inputs[i]),
                           is_last=not consumers.get(names[i]) and names[i] in outputs)
        node, info = op.build(ls, ctx)
        layers.append(dataclasses.replace(node, inputs=inputs[i]))
        tensors[names[i]] = info
    return Network(version=spec.version, name=spec.name, source=spec.source, input=inp,
                   layers=tuple(layers), metadata=dict(spec.metadata), outputs=outputs)


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
