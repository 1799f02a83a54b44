"""Import of QONNX models (Brevitas exports, FINN's dialect) into an all-integer network file.

The graph is cleaned up with qonnx, then walked once in topological order. Every tensor gets a
*state* that says how its float value relates to integers:

- :class:`_FloatIn` — the graph input, through element-wise ops with scalar parameters;
- :class:`_Int` — an integer tensor ``q`` whose float value is ``q * scale + offset``
  (the input after its quantizer, a quantized activation);
- :class:`_Weights` — constant integer weights ``q`` with a per-output-channel float scale;
- :class:`_Acc` — the integer accumulator of a dense or convolution layer, followed by a chain
  of float nodes (scales, biases, BatchNorm, ReLU) that has not reached a quantizer yet.

When an accumulator's chain reaches a quantizer (Quant, BipolarQuant, MultiThreshold, Sign),
the chain is streamlined into a multi-threshold activation: for every output channel and every
output level, the smallest accumulator whose float path reaches that level. The thresholds are
found by a binary search that runs the chain itself (:mod:`quant_models.qonnx_floatpath`), so
they agree with the float32 arithmetic of the graph on every reachable accumulator; channels
whose float path decreases with the accumulator (a negative BatchNorm or scale factor) get
their weight row negated first. A chain that reaches the graph output stays an integer
accumulator, and its float scale and offset per output channel are recorded in the metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gen import macs
from gen.errors import NetworkError
from hw.dtypes import DType

from .qonnx_floatpath import FloatPath, search_float32_threshold, search_thresholds

__all__ = ["import_qonnx", "import_to_file", "load_qonnx", "depth_to_space"]

_AFFINE_OPS = ("Mul", "Div", "Add", "Sub")
_PASS_OPS = ("Identity", "Dropout")
_ROUNDINGS = {"ROUND": "half-even", "HALF_EVEN": "half-even", "FLOOR": "floor", "CEIL": "ceil"}
_EXHAUSTIVE_LIMIT = 1 << 22
_GRID_TOL = 2.0 ** -22   # float32 rounding of scales: a bias within this of the grid is on it
_RANK_LIMIT = 1 << 16


# -- states ---------------------------------------------------------------------------------------
@dataclass
class _FloatIn:
    shape: tuple
    nodes: list            # element-wise nodes applied since the graph input
    a: float = 1.0         # float value = x * a + b while only affine ops were applied
    b: float = 0.0
    annotation: str = "FLOAT32"


@dataclass
class _Int:
    shape: tuple
    dtype: DType
    lo: int                # value range of q (the levels actually produced)
    hi: int
    scale: float
    offset: np.ndarray     # broadcastable to shape
    layer: str = "input"   # the network tensor it is: "input" or the name of the layer making it
    pad: tuple | None = None  # (PH, PW, value) of a Pad that the next Conv folds into its padding


@dataclass
class _Weights:
    q: np.ndarray          # int64
    scale: np.ndarray      # float64, broadcastable to q
    dtype: DType
    value: np.ndarray | None = None  # the quantizer's float32 output, as qonnx computes it


@dataclass
class _Acc:
    layer: dict            # the layer's file-format fields so far (type, name, conv parameters)
    weights: np.ndarray    # (C, ...) int64, output channels first
    w_dtype: DType
    src: _Int
    shape: tuple           # per-sample output shape (C,) or (C, OH, OW)
    view: tuple            # per-sample shape of the chain's current tensor
    start: str             # name of the compute node's output tensor
    s0: np.ndarray         # (C,) float value at ``start`` = acc * s0 + o0 (+ bias, in float32)
    o0: np.ndarray
    bias: np.ndarray | None
    nodes: list = field(default_factory=list)
    slope: np.ndarray = None   # (C,) analytic d(value)/d(acc), sign kept through ReLU
    offset: np.ndarray = None  # (C,) analytic value at acc = 0 (valid while ``affine``)
    affine: bool = True
    d2s: tuple | None = None   # (blocksize, mode) of a DepthToSpace that the host applies
    sums: tuple | None = None  # (lo, hi) per channel: an integer sum (add, pooling), no weights
    inputs: tuple = ()         # the network tensors a sum layer reads
    value: object = None       # sum layers: acc (float64) -> float32 value at ``start``
    check: object = None       # sum layers: check(thresholds, level_of_value) after the search

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass
class _Index:
    n: int


@dataclass
class _Quantizer:
    """What a quantizer node produces: integer levels and their float values."""
    levels: np.ndarray     # ascending integer values of q
    scale: float           # float value = q * scale + offset
    offset: float
    act: dict              # multithreshold fields of the file format (besides thresholds)
    decode: object         # float output of the node -> q (float64 array)
    dtype: DType
    bounds: np.ndarray | None = None  # MultiThreshold: its float thresholds (C or 1, n)
    rounding: str = "ROUND"           # Quant's rounding mode (for the ceil statistic only)


# -- helpers --------------------------------------------------------------------------------------
def _where(i: int, node) -> str:
    return f"nodes[{i}] ({node.name or node.op_type})"


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _int_dtype(bits: int, signed: bool, narrow: bool) -> DType:
    if signed and narrow and bits == 2:
        return DType.ternary()
    if signed:
        return DType.int(bits, narrow=narrow)
    return DType.uint(bits)


def _type_spec(dt: DType) -> dict:
    spec = {"encoding": dt.encoding}
    if dt.encoding in ("uint", "int", "onehot"):
        spec["bits"] = dt.bits
    if dt.narrow:
        spec["narrow"] = True
    if dt.signed:
        spec["signed"] = True
    return spec


def _dtype_of_values(q: np.ndarray) -> DType:
    vals = set(np.unique(q).tolist())
    if vals <= {-1, 1}:
        return DType.bipolar()
    if vals <= {-1, 0, 1}:
        return DType.ternary()
    return DType.for_range(int(q.min()), int(q.max()))


def _scalar(v, what: str, where: str) -> float:
    a = np.asarray(v, dtype=np.float64)
    if a.size != 1:
        raise NetworkError(where, f"unsupported op: {what} must be a scalar, found shape {a.shape}")
    return float(a.reshape(()))


def _per_channel(v, shape: tuple, what: str, where: str) -> np.ndarray:
    """A constant broadcast over (1, *shape), as one value per channel (axis 1)."""
    a = np.asarray(v, dtype=np.float64)
    try:
        full = np.broadcast_to(a, (1, *shape))
    except ValueError:
        raise NetworkError(where, f"unsupported op: {what} of shape {a.shape} does not broadcast "
                                  f"to the tensor's shape {(1, *shape)}") from None
    rows = full.reshape(shape[0], -1)
    if not (rows == rows[:, :1]).all():
        raise NetworkError(where, f"unsupported op: {what} varies within a channel")
    return rows[:, 0].copy()


def _reshape(shape: tuple, target, where: str) -> tuple:
    full = (1, *shape)
    t = [int(d) for d in np.asarray(target).ravel()]
    t = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(t)]
    try:
        out = np.empty(full, dtype=np.int8).reshape(t).shape
    except ValueError:
        raise NetworkError(where, f"unsupported op Reshape: cannot reshape {full} to {t}") from None
    if not out or out[0] != 1:
        raise NetworkError(where, f"unsupported op Reshape: the batch dimension must stay first "
                                  f"(reshape {full} to {t})")
    return tuple(out[1:])


def _float_of(v) -> np.ndarray:
    """The float value of a constant: an array, or quantized constants (a quantized bias)."""
    if isinstance(v, _Weights):
        return np.asarray(v.value if v.value is not None else v.q * v.scale, dtype=np.float32)
    return np.asarray(v)


def _on_grid(r, ref=0) -> np.ndarray | None:
    """``r`` (float) as integers if every entry is one up to float32 rounding (relative to
    ``r`` or ``ref``, the magnitude it was computed from), else None."""
    r = np.asarray(r, dtype=np.float64)
    if not np.isfinite(r).all():
        return None
    rr = np.round(r)
    mag = np.maximum(np.maximum(np.abs(r), np.abs(np.asarray(ref, dtype=np.float64))), 1.0)
    if (np.abs(r - rr) > mag * _GRID_TOL).any() or (np.abs(rr) > 2 ** 40).any():
        return None
    return rr.astype(np.int64)


def _parse_input_type(text: str):
    """``fixed<W,I>`` / ``ufixed<W,I>`` (hls4ml's ap_fixed: W bits, I of them integer, truncated
    as AP_TRN does and saturated), ``intN:S`` / ``uintN:S`` (scale S, rounded half-even),
    ``intN`` / ``uintN`` (scale from --calib), or "" (8 bits from --calib).
    Returns (DType or None, scale or None, rounding)."""
    import re

    t = text.strip().replace(" ", "")
    if not t:
        return None, None, "half-even"
    m = re.fullmatch(r"(u?)fixed<(\d+),(-?\d+)>", t)
    if m:
        w, i = int(m[2]), int(m[3])
        if not 1 <= w <= 32 or i > w + 32 or (m[1] == "" and w < 2):
            raise NetworkError("--input-type", f"expected fixed<W,I> with 2 <= W <= 32, not {text}")
        dt = DType.uint(w) if m[1] else DType.int(w)
        return dt, 2.0 ** (i - w), "floor"
    m = re.fullmatch(r"(u?)int(\d+)(?::(.+))?", t)
    if m:
        bits = int(m[2])
        if not 2 <= bits <= 32:
            raise NetworkError("--input-type", f"bit width must be 2 to 32, not {bits}")
        dt = DType.uint(bits) if m[1] else DType.int(bits)
        if m[3] is None:
            return dt, None, "half-even"
        try:
            sc = float(m[3])
        except ValueError:
            sc = float("nan")
        if not (np.isfinite(sc) and sc > 0):
            raise NetworkError("--input-type", f"scale must be a positive number, not {m[3]}")
        return dt, sc, "half-even"
    raise NetworkError("--input-type", f"expected fixed<W,I>, ufixed<W,I>, intN[:scale] or "
                                       f"uintN[:scale], not {text}")


def _compact(a: np.ndarray) -> np.ndarray:
    """The array in the narrowest signed integer type that holds it (smaller .npz files)."""
    a = np.asarray(a, dtype=np.int64)
    for t in (np.int8, np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(t).min and a.max() <= np.iinfo(t).max):
            return np.ascontiguousarray(a.astype(t))
    return np.ascontiguousarray(a)


def load_qonnx(model):
    """A cleaned-up :class:`qonnx.core.modelwrapper.ModelWrapper` from a path or a model."""
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError:  # pragma: no cover - depends on the environment
        raise NetworkError("", "the QONNX importer needs qonnx, onnx and onnxruntime "
                               "(pip install 'nomul[qonnx]')") from None
    import warnings

    from qonnx.custom_op.registry import is_custom_op

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(model, (str, Path)):
            p = Path(model)
            if not p.is_file():
                raise NetworkError("", f"model file not found: {p}")
            try:
                model = ModelWrapper(str(p))
            except Exception as e:  # onnx raises several types for a bad file
                raise NetworkError("", f"cannot read {p.name} as ONNX: {e}") from None
        elif not isinstance(model, ModelWrapper):
            model = ModelWrapper(model)
        for i, node in enumerate(model.graph.node):
            if node.domain not in ("", "ai.onnx") and not is_custom_op(node.domain, node.op_type):
                raise NetworkError(_where(i, node), f"unsupported op {node.op_type} (domain "
                                                    f"{node.domain})")
        try:
            return cleanup_model(model)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NetworkError("", f"qonnx cleanup failed: {msg}") from None


# -- the importer ---------------------------------------------------------------------------------
class _Importer:
    def __init__(self, model, *, name: str, source: str, argmax: bool, input_type=None,
                 calib=None, exact_input=False):
        self.model = model
        self.exact_input = exact_input
        self.input_type = input_type
        self.calib = calib
        self.input_note = None
        self.name = name
        self.source = source
        self.argmax = argmax
        self.env: dict[str, object] = {}
        self.layers: list[dict] = []
        self.inputs_of: dict[str, list[str]] = {}  # layer name -> the network tensors it reads
        self.out_layer: str | None = None          # the network's output tensor
        self.arrays: dict[str, np.ndarray] = {}
        self.input_doc: dict | None = None
        self.output_meta: dict | None = None
        self.stats = {"thresholds": 0, "ceil_adjusted": 0}
        self.folded: dict[str, np.ndarray] = {}   # float values of constant-node outputs
        self.final: dict | None = None            # the output layer, while it can be changed
        self.dropped: list[str] = []              # ops dropped at the output (Softmax)
        self.d2s: dict | None = None              # a DepthToSpace left to the host
        opsets = {o.domain: o.version for o in model.model.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 11))

    def _path(self, nodes, start: str) -> FloatPath:
        return FloatPath(self.model, nodes, start, consts=self.folded)

    # -- driver --
    def run(self) -> tuple[dict, dict]:
        g = self.model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise NetworkError("", f"unsupported model: {len(g.input)} inputs and {len(g.output)} "
                                   f"outputs (only one of each)")
        self._check_linear()
        inp = g.input[0].name
        shape = tuple(self.model.get_tensor_shape(inp))
        if len(shape) < 2 or shape[0] != 1:
            raise NetworkError("input", f"unsupported input shape {shape}: expected (1, N) or "
                                        f"(1, C, H, W)")
        per = shape[1:]
        if len(per) == 2:
            raise NetworkError("input", f"unsupported input shape {shape}: expected (1, N) or "
                                        f"(1, C, H, W)")
        ann = self.model.get_tensor_datatype(inp)
        self.graph_input_shape = tuple(per)
        self.env[inp] = _FloatIn(per, [], annotation=ann.name if ann is not None else "FLOAT32")
        self.input_name = inp
        self._check_finite()
        for i, node in enumerate(g.node):
            try:
                self._node(i, node)
            except NetworkError:
                raise
            except Exception as e:  # a graph this importer does not understand: never a traceback
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise NetworkError(_where(i, node), f"unsupported op {node.op_type}: cannot import "
                                                    f"it ({type(e).__name__}{': ' + msg if msg else ''})"
                                   ) from None
        out = g.output[0].name
        state = self.env.get(out)
        self._finish(state, out)
        return self._document()

    def _check_finite(self):
        """NaN or infinite constants (weights, scales, thresholds) are refused up front."""
        for i, node in enumerate(self.model.graph.node):
            for name in node.input:
                v = self.model.get_initializer(name) if name else None
                if v is not None and np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all():
                    bad = "NaN" if np.isnan(v).any() else "infinite"
                    raise NetworkError(_where(i, node), f"unsupported op {node.op_type}: input "
                                                        f"{name!r} has {bad} values")

    def _check_linear(self):
        """Count the readers of every computed tensor: a quantized tensor may feed several
        nodes (fan-out, a residual block's skip path); anything else only one (checked as
        each node is met, when the tensor's state is known)."""
        g = self.model.graph
        self.uses: dict[str, list[int]] = {}
        for i, node in enumerate(g.node):
            for t in dict.fromkeys(node.input):
                if t and self.model.get_initializer(t) is None:
                    self.uses.setdefault(t, []).append(i)
        for vi in g.output:
            self.uses.setdefault(vi.name, []).append(len(g.node))

    def _const(self, name: str):
        """The constant value of a tensor (an array or quantized weights), or None."""
        v = self.model.get_initializer(name)
        if v is not None:
            return v
        st = self.env.get(name)
        return st if isinstance(st, (np.ndarray, _Weights)) else None

    def _node(self, i: int, node):
        where = _where(i, node)
        op = node.op_type
        dyn = [n for n in node.input if n and self._const(n) is None]
        for n in dyn:
            if n not in self.env:
                raise NetworkError(where, f"unsupported op {op}: input {n!r} is not produced by a "
                                          f"supported node")
        if not dyn:
            v = self._const_node(i, node)
            self.env[node.output[0]] = v
            fv = v.value if isinstance(v, _Weights) else v
            if fv is not None:
                self.folded[node.output[0]] = np.asarray(fv)
            return
        for n in dyn:
            st = self.env[n]
            readers = len(self.uses.get(n, ()))
            if readers > 1 and not isinstance(st, (_Int, np.ndarray, _Weights)):
                raise NetworkError(where, f"unsupported op {op}: tensor {n!r} feeds {readers} "
                                          f"nodes, and only a quantized tensor can (this is "
                                          f"{self._what(st)})")
            if isinstance(st, _Int) and st.pad is not None and op not in ("Conv", "Pad"):
                raise NetworkError(where, f"unsupported op {op} after Pad (a Pad folds only into "
                                          f"the padding of the Conv after it)")
        if len(dyn) > 1 and op not in ("Add", "Concat"):
            raise NetworkError(where, f"unsupported op {op}: more than one computed input "
                                      f"(only Add and Concat join two tensors)")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise NetworkError(where, f"unsupported op {op}")
        if self.d2s is not None and op not in ("Identity",) and isinstance(
                self.env.get(dyn[0]), (_Int, _Index)):
            raise NetworkError(where, f"unsupported op {op} after DepthToSpace (the host applies "
                                      f"it to the outputs, so it must end the graph)")
        handler(i, node, where)

    # -- constants and weights --
    def _const_node(self, i: int, node):
        where = _where(i, node)
        op = node.op_type
        vals = [self._const(n) if n else None for n in node.input]
        if op in ("Quant", "BipolarQuant"):
            return self._weights(node, vals, where)
        if any(isinstance(v, _Weights) for v in vals):
            w = vals[0]
            if op == "Transpose" and isinstance(w, _Weights):
                perm = _attrs(node).get("perm", list(range(w.q.ndim))[::-1])
                return _Weights(np.transpose(w.q, perm),
                                np.transpose(np.broadcast_to(w.scale, w.q.shape), perm), w.dtype,
                                None if w.value is None else np.transpose(w.value, perm))
            if op in _PASS_OPS:
                return w
            raise NetworkError(where, f"unsupported op {op} on quantized weights")
        if not vals or vals[0] is None:
            raise NetworkError(where, f"unsupported op {op}")
        fp = self._path([node], node.input[0])
        try:
            return np.asarray(fp(vals[0]))
        except Exception as e:
            raise NetworkError(where, f"unsupported op {op}: cannot fold constants ({e})") from None

    def _weights(self, node, vals, where) -> _Weights:
        from qonnx.custom_op.general.intquant import max_int, min_int, resolve_rounding_mode

        if any(isinstance(v, _Weights) for v in vals):
            raise NetworkError(where, f"unsupported op {node.op_type}: re-quantizing quantized "
                                      f"constants")
        w = np.asarray(vals[0], dtype=np.float32)
        scale = np.asarray(vals[1], dtype=np.float32)
        if not (np.isfinite(w).all() and np.isfinite(scale).all()):
            raise NetworkError(where, f"unsupported op {node.op_type}: NaN or infinite weights "
                                      f"or scales")
        try:
            value = np.asarray(self._path([node], node.input[0])(w), dtype=np.float32)
        except Exception as e:
            raise NetworkError(where, f"unsupported op {node.op_type}: cannot run it on its "
                                      f"constants ({e})") from None
        if (scale <= 0).any():
            raise NetworkError(where, f"unsupported op {node.op_type}: weight scale must be positive")
        if node.op_type == "BipolarQuant":
            q = np.where(w >= 0, 1, -1).astype(np.int64)
            return _Weights(q, scale.astype(np.float64), DType.bipolar(), value)
        zp = np.asarray(vals[2], dtype=np.float32)
        bits = _scalar(vals[3], "the bit width", where)
        a = _attrs(node)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        mode = a.get("rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if (zp != 0).any():
            raise NetworkError(where, "unsupported op Quant: weights with a non-zero zero point")
        if bits != int(bits) or not 1 <= bits <= 32:
            raise NetworkError(where, f"unsupported op Quant: bit width {bits}")
        bits = int(bits)
        y = resolve_rounding_mode(mode)(w / scale + zp)
        y = np.clip(y, min_int(signed, narrow, bits), max_int(signed, narrow, bits))
        q = y.astype(np.int64)
        dt = _int_dtype(bits, signed, narrow) if bits >= 2 else _dtype_of_values(q)
        if not dt.contains(q).all():  # pragma: no cover - guarded by the clip
            dt = _dtype_of_values(q)
        return _Weights(q, scale.astype(np.float64), dt, value)

    def _weights_of(self, v, where, op) -> _Weights:
        if isinstance(v, _Weights):
            return v
        a = np.asarray(v, dtype=np.float64)
        if not np.array_equal(a, np.round(a)):
            raise NetworkError(where, f"unsupported op {op}: float (unquantized) weights")
        q = a.astype(np.int64)
        return _Weights(q, np.ones(1), _dtype_of_values(q))

    # -- shape and pass-through ops --
    def _shape_op(self, i, node, where, fn):
        st = self.env[node.input[0]]
        if isinstance(st, _FloatIn):
            self.env[node.output[0]] = replace(st, shape=fn(st.shape))
        elif isinstance(st, _Int):
            shape = fn(st.shape)
            off = np.asarray(st.offset)
            if off.size > 1:
                off = np.broadcast_to(off, st.shape).reshape(shape)
            self.env[node.output[0]] = replace(st, shape=shape, offset=off)
        elif isinstance(st, _Acc) and node.op_type in ("Squeeze", "Unsqueeze"):
            view = fn(st.view)
            self.env[node.output[0]] = replace(st, view=view, nodes=[*st.nodes, node])
        else:
            raise NetworkError(where, f"unsupported op {node.op_type} on {self._what(st)}")

    def _what(self, st) -> str:
        return {_FloatIn: "the float input", _Int: "an integer tensor",
                _Acc: "an accumulator before its quantizer", _Index: "a class index"}.get(
                    type(st), type(st).__name__)

    def _op_Reshape(self, i, node, where):
        target = self._const(node.input[1])
        if target is None:
            raise NetworkError(where, "unsupported op Reshape: the shape is not constant")
        self._shape_op(i, node, where, lambda s: _reshape(s, target, where))

    def _op_Flatten(self, i, node, where):
        if _attrs(node).get("axis", 1) != 1:
            raise NetworkError(where, "unsupported op Flatten: axis must be 1")
        self._shape_op(i, node, where, lambda s: (math.prod(s),))

    def _squeeze_axes(self, node):
        a = _attrs(node).get("axes")
        if a is None and len(node.input) > 1 and node.input[1]:
            a = [int(x) for x in np.asarray(self._const(node.input[1])).ravel()]
        return a

    def _op_Squeeze(self, i, node, where):
        axes = self._squeeze_axes(node)

        def fn(s):
            full = (1, *s)
            ax = [a % len(full) for a in axes] if axes is not None else \
                [k for k, d in enumerate(full) if d == 1 and k]
            if 0 in ax or any(full[a] != 1 for a in ax):
                raise NetworkError(where, f"unsupported op Squeeze: axes {axes} of shape {full}")
            return tuple(d for k, d in enumerate(full) if k not in ax)[1:]
        self._shape_op(i, node, where, fn)

    def _op_Unsqueeze(self, i, node, where):
        axes = self._squeeze_axes(node)

        def fn(s):
            out = list((1, *s))
            n = len(out) + len(axes)
            for a in sorted(x % n for x in axes):
                if a == 0:
                    raise NetworkError(where, "unsupported op Unsqueeze: on the batch axis")
                out.insert(a, 1)
            return tuple(out[1:])
        self._shape_op(i, node, where, fn)

    def _passthrough(self, i, node, where):
        self.env[node.output[0]] = self.env[node.input[0]]

    _op_Identity = _passthrough
    _op_Dropout = _passthrough

    # -- element-wise affine ops --
    def _affine(self, i, node, where):
        op = node.op_type
        c0, c1 = self._const(node.input[0]), self._const(node.input[1])
        reverse = c1 is None  # the constant comes first
        x_name = node.input[1] if reverse else node.input[0]
        c = np.asarray(_float_of(c0 if reverse else c1), dtype=np.float64)
        st = self.env[x_name]
        if reverse and op == "Div":
            raise NetworkError(where, "unsupported op Div: a constant divided by a tensor")
        out = node.output[0]
        if isinstance(st, _FloatIn):
            v = _scalar(c, f"the {op} parameter on the float input", where)
            a, b = st.a, st.b
            if op == "Mul":
                a, b = a * v, b * v
            elif op == "Div":
                a, b = a / v, b / v
            elif op == "Add":
                b = b + v
            elif reverse:  # v - x
                a, b = -a, v - b
            else:
                b = b - v
            self.env[out] = replace(st, nodes=[*st.nodes, node], a=a, b=b)
        elif isinstance(st, _Int):
            scale, off = st.scale, np.asarray(st.offset, dtype=np.float64)
            if op in ("Mul", "Div"):
                v = _scalar(c, f"the {op} parameter on an integer tensor (a per-channel scale "
                               f"cannot be folded into integer weights)", where)
                scale, off = (scale * v, off * v) if op == "Mul" else (scale / v, off / v)
            else:
                try:
                    cc = np.broadcast_to(c, (1, *st.shape))[0]
                except ValueError:
                    raise NetworkError(where, f"unsupported op {op}: parameter of shape {c.shape} "
                                              f"does not broadcast to {(1, *st.shape)}") from None
                if c.size == 1:
                    cc = np.float64(c.reshape(()))
                if op == "Add":
                    off = off + cc
                elif reverse:
                    scale, off = -scale, cc - off
                else:
                    off = off - cc
            self.env[out] = replace(st, scale=scale, offset=off)
        elif isinstance(st, _Acc):
            if st.d2s is not None and c.size != 1:
                raise NetworkError(where, f"unsupported op {op}: per-channel parameters after "
                                          f"DepthToSpace")
            v = _per_channel(c, st.view, f"the {op} parameter", where) if st.d2s is None else \
                np.full(st.channels, float(c.reshape(())))
            if len(st.view) and st.view[0] != st.channels:
                raise NetworkError(where, f"unsupported op {op}: channels are not on axis 1")
            s, o = st.slope, st.offset
            if op == "Mul":
                s, o = s * v, o * v
            elif op == "Div":
                s, o = s / v, o / v
            elif op == "Add":
                o = o + v
            elif reverse:
                s, o = -s, v - o
            else:
                o = o - v
            self.env[out] = replace(st, nodes=[*st.nodes, node], slope=s, offset=o)
        else:
            raise NetworkError(where, f"unsupported op {op} on {self._what(st)}")

    _op_Mul = _affine
    _op_Div = _affine
    _op_Sub = _affine

    def _op_Add(self, i, node, where):
        if all(self._const(n) is None for n in node.input[:2]):
            from .qonnx_graph import residual_add

            residual_add(self, i, node, where)
        else:
            self._affine(i, node, where)

    def _op_Concat(self, i, node, where):
        from .qonnx_graph import concat

        concat(self, i, node, where)

    def _op_AveragePool(self, i, node, where):
        from .qonnx_graph import average_pool

        average_pool(self, i, node, where, is_global=False)

    def _op_GlobalAveragePool(self, i, node, where):
        from .qonnx_graph import average_pool

        average_pool(self, i, node, where, is_global=True)

    def _op_Pad(self, i, node, where):
        from .qonnx_graph import pad

        pad(self, i, node, where)

    def _op_DepthToSpace(self, i, node, where):
        """The sub-pixel shuffle of the last layer's outputs (ESPCN): a permutation that commutes
        with the scalar ReLU and quantizer after it, so the layer keeps its channel layout and
        ``metadata.output.depth_to_space`` tells the host to apply it to the outputs."""
        st = self.env[node.input[0]]
        a = _attrs(node)
        r = int(a.get("blocksize", 0))
        mode = a.get("mode", b"DCR")
        mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
        if not isinstance(st, _Acc) or st.d2s is not None or len(st.view) != 3 or \
                tuple(st.view) != tuple(st.shape):
            raise NetworkError(where, f"unsupported op DepthToSpace on {self._what(st)} (only on "
                                      f"a convolution's accumulator)")
        c, h, w = st.shape
        if r < 1 or c % (r * r) or mode not in ("DCR", "CRD"):
            raise NetworkError(where, f"unsupported op DepthToSpace: blocksize {r}, mode {mode} on "
                                      f"{c} channels")
        self.env[node.output[0]] = replace(st, view=(c // (r * r), h * r, w * r), d2s=(r, mode))

    def _op_Im2Col(self, i, node, where):
        raise NetworkError(where, "unsupported op Im2Col: FINN's lowered convolution (Transpose to "
                                  "NHWC, Im2Col, MatMul) is not imported; import the QONNX graph "
                                  "from before FINN's streamlining and lowering (Conv in NCHW)")

    def _op_Transpose(self, i, node, where):
        raise NetworkError(where, "unsupported op Transpose of activations (FINN's NHWC layout "
                                  "of a streamlined convolution, or a layout change nomul has no "
                                  "layer for); import the graph from before streamlining")

    def _op_BatchNormalization(self, i, node, where):
        st = self.env[node.input[0]]
        if not isinstance(st, _Acc) or st.d2s is not None:
            raise NetworkError(where, f"unsupported op BatchNormalization on {self._what(st)} "
                                      f"(only after MatMul, Gemm or Conv)")
        p = [self._const(n) for n in node.input[1:5]]
        p = [None if v is None else np.asarray(_float_of(v), dtype=np.float64) for v in p]
        if any(v is None for v in p):
            raise NetworkError(where, "unsupported op BatchNormalization: non-constant parameters")
        eps = float(_attrs(node).get("epsilon", 1e-5))
        gamma, beta, mean, var = (np.broadcast_to(v.ravel(), (st.channels,)) for v in p)
        k = gamma / np.sqrt(var + eps)
        self.env[node.output[0]] = replace(st, nodes=[*st.nodes, node], slope=st.slope * k,
                                           offset=(st.offset - mean) * k + beta)

    def _op_Relu(self, i, node, where):
        st = self.env[node.input[0]]
        if not isinstance(st, _Acc):
            raise NetworkError(where, f"unsupported op Relu on {self._what(st)} (only between a "
                                      f"MatMul, Gemm or Conv and its quantizer)")
        self.env[node.output[0]] = replace(st, nodes=[*st.nodes, node], affine=False)

    # -- compute layers --
    def _as_int(self, st, where, op) -> _Int:
        if st is None:
            raise NetworkError(where, f"unsupported op {op}: the first input must be the "
                                      f"activation and the second the weights")
        if isinstance(st, _Int):
            return st
        if isinstance(st, _FloatIn):
            ann = st.annotation
            if ann == "BIPOLAR":
                dt, quant = DType.bipolar(), {"threshold": 0.0}
            elif ann.startswith(("UINT", "INT")) or ann == "BINARY":
                bits = 1 if ann == "BINARY" else int(ann.lstrip("UINT"))
                dt = DType.uint(bits) if ann.startswith("U") or ann == "BINARY" else DType.int(bits)
                quant = {"scale": 1.0, "zero_point": 0, "rounding": "half-even",
                         "clip": [dt.min, dt.max]}
            elif self.input_type is not None or self.calib is not None:
                return self._float_input(st, where, op)
            else:
                raise NetworkError(where, f"unsupported op {op} on the float input: it needs a "
                                          f"quantizer (Quant, BipolarQuant or MultiThreshold) first, "
                                          f"or an input type (--input-type, --calib)")
            if any(n.op_type not in _AFFINE_OPS for n in st.nodes):
                raise NetworkError(where, f"unsupported op {op}: non-affine ops on the input")
            self._set_input(st.shape, dt, quant)
            return _Int(st.shape, dt, dt.min, dt.max, st.a, np.float64(st.b))
        raise NetworkError(where, f"unsupported op {op} on {self._what(st)} (two compute layers "
                                  f"without a quantizer between them)")

    def _float_input(self, st: _FloatIn, where, op) -> _Int:
        """A float input straight into a layer (QKeras / hls4ml, ESPCN): quantized as the user
        says (``fixed<W,I>``, ``intN:scale``) or with a scale calibrated on sample inputs. The
        value entering the layer is ``y = x·a + b`` (the input's scalar affine ops)."""
        if any(n.op_type not in _AFFINE_OPS for n in st.nodes):
            raise NetworkError(where, f"unsupported op {op}: non-affine ops on the float input")
        if st.a <= 0:
            raise NetworkError(where, f"unsupported op {op}: the input transform is not increasing")
        dt, scale, rounding = _parse_input_type(self.input_type or "")
        if scale is None:  # calibrate: the largest |y| on the calibration data is the largest level
            if self.calib is None:
                raise NetworkError("--input-type", f"{self.input_type} has no scale: give one "
                                                   f"(int8:0.05) or calibration inputs (--calib)")
            y = np.asarray(self.calib, dtype=np.float64) * st.a + st.b
            if dt is None:
                dt = DType.int(8) if y.min() < 0 else DType.uint(8)
            top = float(np.abs(y).max())
            if not np.isfinite(top) or top == 0:
                raise NetworkError("--calib", "the calibration inputs are all 0 or not finite")
            scale = top / max(abs(dt.min), dt.max)
        quant = {"scale": scale / st.a, "zero_point": 0, "rounding": rounding,
                 "clip": [dt.min, dt.max]}
        if st.b:
            quant["offset"] = st.b / st.a
        self.input_note = {"type": self.input_type or "calibrated", "scale": scale,
                           "encoding": dt.encoding, "bits": dt.bits, "exact": False}
        self._set_input(st.shape, dt, quant)
        return _Int(st.shape, dt, dt.min, dt.max, scale, np.float64(0.0))

    def _set_input(self, shape, dt: DType, quant: dict):
        if self.input_doc is not None:  # pragma: no cover - a linear chain has one input
            raise AssertionError("input quantizer set twice")
        if len(shape) == 1 and len(self.graph_input_shape) in (1, 3):
            shape = self.graph_input_shape  # a dense first layer flattens it the same way
        self.input_doc = {"shape": list(shape), **_type_spec(dt), "quantizer": quant}

    def _start_acc(self, node, src: _Int, w: _Weights, wmat: np.ndarray, wscale: np.ndarray,
                   layer: dict, shape: tuple, bias, where) -> None:
        c = wmat.shape[0]
        off = np.asarray(src.offset, dtype=np.float64)
        if layer["type"] in ("conv2d", "dwconv2d"):
            if off.size != 1:
                raise NetworkError(where, "unsupported op Conv: an input offset that varies per "
                                          "element")
            oin = float(off.reshape(())) * wmat.reshape(c, -1).sum(axis=1)
        else:
            o = np.broadcast_to(off, src.shape).reshape(-1)
            oin = wmat.astype(np.float64) @ o
        s0 = src.scale * wscale
        o0 = oin * wscale
        b = None
        if bias is not None:
            bv = np.asarray(_float_of(bias), dtype=np.float32).ravel()
            if bv.size not in (1, c):
                raise NetworkError(where, f"unsupported op {node.op_type}: a bias of {bv.size} "
                                          f"values for {c} output channels")
            b = np.broadcast_to(bv, (c,))
        offset = o0 + (0.0 if b is None else b.astype(np.float64))
        self.env[node.output[0]] = _Acc(layer=layer, weights=wmat, w_dtype=w.dtype, src=src,
                                        shape=shape, view=shape, start=node.output[0], s0=s0, o0=o0,
                                        bias=b, slope=s0.copy(), offset=offset)

    def _out_scale(self, w: _Weights, axis_out: int, where, op) -> np.ndarray:
        full = np.broadcast_to(w.scale, w.q.shape)
        moved = np.moveaxis(full, axis_out, 0).reshape(w.q.shape[axis_out], -1)
        if not (moved == moved[:, :1]).all():
            raise NetworkError(where, f"unsupported op {op}: weight scales that vary along the "
                                      f"input dimension")
        return moved[:, 0].astype(np.float64)

    def _op_MatMul(self, i, node, where):
        src = self._as_int(self.env.get(node.input[0]), where, "MatMul")
        wv = self._const(node.input[1])
        if wv is None:
            raise NetworkError(where, "unsupported op MatMul: the weights are not constant")
        w = self._weights_of(wv, where, "MatMul")
        if len(src.shape) != 1 or w.q.ndim != 2 or w.q.shape[0] != src.shape[0]:
            raise NetworkError(where, f"unsupported op MatMul: input {src.shape} with weights "
                                      f"{w.q.shape}")
        wscale = self._out_scale(w, 1, where, "MatMul")
        layer = {"type": "dense", "name": node.name or f"MatMul_{i}"}
        self._start_acc(node, src, w, w.q.T.copy(), wscale, layer, (w.q.shape[1],), None, where)

    def _op_Gemm(self, i, node, where):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise NetworkError(where, "unsupported op Gemm: transA, alpha or beta other than "
                                      "the defaults")
        src = self._as_int(self.env.get(node.input[0]), where, "Gemm")
        wv = self._const(node.input[1])
        if wv is None:
            raise NetworkError(where, "unsupported op Gemm: the weights are not constant")
        w = self._weights_of(wv, where, "Gemm")
        tb = bool(a.get("transB", 0))
        wmat = w.q if tb else w.q.T
        if len(src.shape) != 1 or wmat.ndim != 2 or wmat.shape[1] != src.shape[0]:
            raise NetworkError(where, f"unsupported op Gemm: input {src.shape} with weights "
                                      f"{w.q.shape}")
        wscale = self._out_scale(w, 0 if tb else 1, where, "Gemm")
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self._const(node.input[2])
            if bias is None:
                raise NetworkError(where, "unsupported op Gemm: a non-constant bias")
        layer = {"type": "dense", "name": node.name or f"Gemm_{i}"}
        self._start_acc(node, src, w, wmat.copy(), wscale, layer, (wmat.shape[0],), bias, where)

    def _op_Conv(self, i, node, where):
        a = _attrs(node)
        src = self._as_int(self.env.get(node.input[0]), where, "Conv")
        wv = self._const(node.input[1])
        if wv is None:
            raise NetworkError(where, "unsupported op Conv: the weights are not constant")
        w = self._weights_of(wv, where, "Conv")
        group = int(a.get("group", 1))
        if group != 1:
            from .qonnx_graph import grouped_weights

            w, depthwise = grouped_weights(w, group, src, where)
        else:
            depthwise = False
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise NetworkError(where, "unsupported op Conv: dilation")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NetworkError(where, "unsupported op Conv: auto_pad")
        if len(src.shape) != 3 or w.q.ndim != 4 or \
                w.q.shape[1] != (1 if depthwise else src.shape[0]):
            raise NetworkError(where, f"unsupported op Conv: input {src.shape} with weights {w.q.shape}")
        kh, kw = w.q.shape[2:]
        sh, sw = a.get("strides", [1, 1])
        pads = a.get("pads", [0, 0, 0, 0])
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise NetworkError(where, f"unsupported op Conv: asymmetric padding {pads}")
        ph, pw = pads[0], pads[1]
        layer = {"type": "dwconv2d" if depthwise else "conv2d", "name": node.name or f"Conv_{i}",
                 "kernel": [kh, kw], "stride": [sh, sw], "padding": [ph, pw]}
        if src.pad is not None:
            from .qonnx_graph import fold_pad

            src, ph, pw = fold_pad(src, layer, ph, pw, where)
        elif ph or pw:
            off = float(np.asarray(src.offset).reshape(-1)[0])
            qpad = -off / src.scale
            if abs(qpad - round(qpad)) > 1e-9 or not src.dtype.contains(round(qpad)) or \
                    not src.lo <= round(qpad) <= src.hi:
                raise NetworkError(where, f"unsupported op Conv: zero padding is not a value of the "
                                          f"input type {src.dtype} (it would be {qpad:g})")
            layer["pad_value"] = int(round(qpad))
        oh = (src.shape[1] + 2 * ph - kh) // sh + 1
        ow = (src.shape[2] + 2 * pw - kw) // sw + 1
        wscale = self._out_scale(w, 0, where, "Conv")
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self._const(node.input[2])
            if bias is None:
                raise NetworkError(where, "unsupported op Conv: a non-constant bias")
        self._start_acc(node, src, w, w.q.copy(), wscale, layer, (w.q.shape[0], oh, ow), bias, where)

    # -- quantizers --
    def _quantizer(self, node, where, x_shape) -> _Quantizer:
        op = node.op_type
        a = _attrs(node)
        if op == "Sign":
            return _Quantizer(np.array([-1, 0, 1]), 1.0, 0.0, {"offset": -1},
                              lambda y: np.asarray(y, dtype=np.float64), DType.int(2))
        if op == "BipolarQuant":
            s = _scalar(self._const(node.input[1]), "the BipolarQuant scale", where)
            if s <= 0:
                raise NetworkError(where, "unsupported op BipolarQuant: non-positive scale")
            return _Quantizer(np.array([-1, 1]), s, 0.0, {"bipolar": True},
                              lambda y: np.where(np.asarray(y) >= 0, 1.0, -1.0), DType.bipolar())
        if op == "Quant":
            from qonnx.custom_op.general.intquant import max_int, min_int

            s = _scalar(self._const(node.input[1]), "the Quant scale of an activation", where)
            z = _scalar(self._const(node.input[2]), "the Quant zero point of an activation", where)
            bits = _scalar(self._const(node.input[3]), "the Quant bit width", where)
            if s <= 0 or z != round(z) or bits != int(bits) or not 1 <= bits <= 24:
                raise NetworkError(where, f"unsupported op Quant: scale {s:g}, zero point {z:g}, "
                                          f"{bits:g} bits")
            signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
            lo, hi = int(min_int(signed, narrow, int(bits))), int(max_int(signed, narrow, int(bits)))
            act = {"offset": lo} if lo else {}
            mode = a.get("rounding_mode", b"ROUND")
            mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
            return _Quantizer(np.arange(lo, hi + 1), s, -z * s, act,
                              lambda y: np.rint(np.asarray(y, dtype=np.float64) / s) + z,
                              DType.for_range(lo, hi), rounding=mode)
        if op == "MultiThreshold":
            t = self._const(node.input[1])
            if t is None:
                raise NetworkError(where, "unsupported op MultiThreshold: non-constant thresholds")
            n = np.asarray(t).shape[-1]
            osc = float(a.get("out_scale", 1.0))
            ob = float(a.get("out_bias", 0.0))
            odt = a.get("out_dtype", b"")
            odt = odt.decode() if isinstance(odt, bytes) else odt
            if osc <= 0:
                raise NetworkError(where, "unsupported op MultiThreshold: non-positive out_scale")
            if a.get("data_layout", b"") not in (b"", "", b"NCHW", "NCHW", b"NC", "NC"):
                raise NetworkError(where, "unsupported op MultiThreshold: channels-last layout")
            tb = np.asarray(t, dtype=np.float64).reshape(-1, n)
            if odt == "BIPOLAR" and n == 1:
                return _Quantizer(np.array([-1, 1]), osc / 2, ob + osc / 2, {"bipolar": True},
                                  lambda y: np.where((np.asarray(y, dtype=np.float64) - ob) / osc
                                                     > 0.5, 1.0, -1.0), DType.bipolar(), tb)
            k = ob / osc
            qoff = int(round(k)) if abs(k - round(k)) < 1e-9 else 0
            act = {"offset": qoff} if qoff else {}
            return _Quantizer(np.arange(qoff, qoff + n + 1), osc, ob - qoff * osc, act,
                              lambda y: np.rint((np.asarray(y, dtype=np.float64) - ob) / osc) + qoff,
                              DType.for_range(qoff, qoff + n), tb)
        if op == "Trunc":
            # Brevitas' TruncIntQuant (TruncAvgPool2d): round(x / scale + zp), divided by a power
            # of two, rounded (FLOOR by default); v1 keeps the input scale, v2 has its own
            s = _scalar(self._const(node.input[1]), "the Trunc scale", where)
            z = _scalar(self._const(node.input[2]), "the Trunc zero point", where)
            if s <= 0 or z != round(z):
                raise NetworkError(where, f"unsupported op Trunc: scale {s:g}, zero point {z:g}")
            if len(node.input) >= 6:
                os_ = _scalar(self._const(node.input[4]), "the Trunc output scale", where)
                if os_ <= 0:
                    raise NetworkError(where, f"unsupported op Trunc: output scale {os_:g}")
                zq = z / 2.0 ** np.round(np.log2(os_ / s))
            else:
                os_, zq = s, z
            mode = a.get("rounding_mode", b"FLOOR")
            mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
            return _Quantizer(None, os_, -zq * os_, {},
                              lambda y: np.rint(np.asarray(y, dtype=np.float64) / os_ + zq),
                              None, rounding=mode)
        raise AssertionError(op)  # pragma: no cover

    def _quantize(self, i, node, where):
        st = self.env[node.input[0]]
        if node.op_type == "Trunc" and not isinstance(st, _Acc):
            raise NetworkError(where, f"unsupported op Trunc on {self._what(st)} (only after a sum: "
                                      f"AveragePool, GlobalAveragePool, a layer)")
        if isinstance(st, _Acc):
            self.env[node.output[0]] = self._materialize(st, node, where)
        elif isinstance(st, _FloatIn):
            self.env[node.output[0]] = self._input_quantizer(st, node, where)
        else:
            raise NetworkError(where, f"unsupported op {node.op_type} on {self._what(st)} "
                                      f"(re-quantizing an integer tensor)")

    _op_Quant = _quantize
    _op_BipolarQuant = _quantize
    _op_MultiThreshold = _quantize
    _op_Sign = _quantize
    _op_Trunc = _quantize

    def _input_quantizer(self, st: _FloatIn, node, where) -> _Int:
        q = self._quantizer(node, where, st.shape)
        op = node.op_type
        if op == "MultiThreshold":
            t = np.asarray(self._const(node.input[1]))
            if t.shape[0] != 1:
                raise NetworkError(where, "unsupported op MultiThreshold: per-channel thresholds on "
                                          "the float input")
        if q.act.get("bipolar"):
            path = self._path([*st.nodes, node], self.input_name)
            t = search_float32_threshold(lambda x: q.decode(path(x.reshape(-1, 1))).ravel() > 0)
            if t is None or not np.isfinite(t):
                raise NetworkError(where, f"unsupported op {op}: the input quantizer is constant")
            # the predicate must really be a step: check around the threshold and far away
            probe = np.array([-np.finfo(np.float32).max, np.nextafter(np.float32(t), -np.inf),
                              t, np.finfo(np.float32).max], dtype=np.float32)
            got = q.decode(path(probe.reshape(-1, 1))).ravel()
            if got.tolist() != [-1, -1, 1, 1]:
                raise NetworkError(where, f"unsupported op {op}: the input transform is not "
                                          f"increasing")
            self._set_input(st.shape, DType.bipolar(), {"threshold": t})
            return _Int(st.shape, DType.bipolar(), -1, 1, q.scale, np.float64(q.offset))
        if any(n.op_type not in _AFFINE_OPS for n in st.nodes):
            raise NetworkError(where, f"unsupported op {op}: non-affine ops before the input "
                                      f"quantizer")
        if st.a <= 0:
            raise NetworkError(where, f"unsupported op {op}: the input transform is not increasing")
        path = self._path([*st.nodes, node], self.input_name)

        def graph_q(x):
            return q.decode(path(np.asarray(x, dtype=np.float32).reshape(-1, 1))).ravel()

        if op == "MultiThreshold":
            return self._input_multithreshold(st, node, where, q, graph_q)
        if op != "Quant":
            raise NetworkError(where, f"unsupported op {op} as the input quantizer (only Quant, "
                                      f"BipolarQuant and MultiThreshold)")
        mode = _attrs(node).get("rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode.upper() not in _ROUNDINGS:
            raise NetworkError(where, f"unsupported op Quant: rounding mode {mode} on the input")
        s = q.scale
        z = -q.offset / s
        # q = clip(round((x*a + b) / s + z)) = clip(round(x / (s/a) + b/s + z))
        zp = st.b / s + z
        lo, hi = int(q.levels[0]), int(q.levels[-1])
        a = _attrs(node)
        bits = int(_scalar(self._const(node.input[3]), "bits", where))
        dt = _int_dtype(bits, bool(a.get("signed", 1)), bool(a.get("narrow", 0))) if bits >= 2 \
            else DType.for_range(lo, hi)
        quant = {"scale": s / st.a, "zero_point": int(round(zp)),
                 "rounding": _ROUNDINGS[mode.upper()], "clip": [lo, hi]}
        if abs(zp - round(zp)) > 1e-9:
            # off the grid, e.g. (x - mean) / std: the host adds the float offset first
            quant.update(zero_point=int(round(z)), offset=st.b / st.a)
        self._check_input_steps(where, node, quant, graph_q, q.levels)
        self._set_input(st.shape, dt, quant)
        return _Int(st.shape, dt, lo, hi, q.scale, np.float64(q.offset))

    def _input_multithreshold(self, st: _FloatIn, node, where, q: _Quantizer, graph_q) -> _Int:
        """FINN's input MultiThreshold: uniform thresholds t0 + k·d are the affine quantizer
        floor((y - t0) / d) + 1 (one threshold: y >= t0); others have no form in the file."""
        t = np.asarray(self._const(node.input[1]), dtype=np.float64)
        t = t.reshape(-1, t.shape[-1])
        if not (t == t[:1]).all():
            raise NetworkError(where, "unsupported op MultiThreshold: per-channel thresholds on "
                                      "the float input")
        t = np.sort(t[0])
        n = len(t)
        d = float(t[-1] - t[0]) / (n - 1) if n > 1 else 1.0
        lo, hi = int(q.levels[0]), int(q.levels[-1])
        dt = DType.for_range(lo, hi)
        if dt.encoding == "bipolar":  # pragma: no cover - handled as a threshold quantizer
            raise AssertionError("bipolar")
        if n > 1 and (d <= 0 or np.abs(t - (t[0] + d * np.arange(n))).max() > abs(d) * 1e-6):
            # uneven: a multi-threshold input quantizer whose thresholds are the graph's own
            # step points over the float32 inputs (so that float ops before it are exact too)
            if lo != dt.min:
                raise NetworkError(where, f"unsupported op MultiThreshold: {n} uneven input "
                                          f"thresholds with levels from {lo} (a multi-threshold "
                                          f"input quantizer starts at the type's minimum {dt.min})")
            from .qonnx_floatpath import float32_from_key

            keys, kmax = self._input_steps(graph_q, q.levels)
            quant = {"thresholds": [float(v) for v in float32_from_key(np.minimum(keys, kmax))]}
            self._check_input_steps(where, node, quant, graph_q, q.levels)
            self._set_input(st.shape, dt, quant)
            return _Int(st.shape, dt, lo, hi, q.scale, np.float64(q.offset))
        quant = {"scale": d / st.a, "zero_point": 1 + lo, "rounding": "floor", "clip": [lo, hi],
                 "offset": (st.b - float(t[0])) / st.a}
        self._check_input_steps(where, node, quant, graph_q, q.levels)
        self._set_input(st.shape, dt, quant)
        return _Int(st.shape, dt, lo, hi, q.scale, np.float64(q.offset))

    @staticmethod
    def _input_steps(graph_q, levels):
        """Per level above the first, the float32 key of the smallest input that reaches it
        (``kmax + 1`` if none does), and ``kmax``, the key of the largest finite float32."""
        from .qonnx_floatpath import float32_from_key, float32_key

        want = np.asarray(levels[1:], dtype=np.float64)
        kmax = int(float32_key(np.float32(np.finfo(np.float32).max)))
        lo = np.full(len(want), -kmax, dtype=np.int64)
        hi = np.full(len(want), kmax + 1, dtype=np.int64)
        with np.errstate(over="ignore", invalid="ignore"):
            while (lo < hi).any():
                mid = (lo + hi) // 2
                ok = graph_q(float32_from_key(mid)) >= want
                active = lo < hi
                hi = np.where(active & ok, mid, hi)
                lo = np.where(active & ~ok, mid + 1, lo)
        return lo, kmax

    def _check_input_steps(self, where, node, quant: dict, graph_q, levels):
        """The affine input quantizer against the graph on every float32 input: the graph's
        step points are found by a binary search over the float32 numbers, and the quantizer
        must give the graph's level just below and at each of them (both are monotone)."""
        from gen.ir import InputQuantizer
        from sim.golden import apply_quantizer

        from .qonnx_floatpath import float32_from_key

        if "thresholds" in quant:
            iq = InputQuantizer("multithreshold", zero_point=int(levels[0]),
                                thresholds=tuple(quant["thresholds"]))
        else:
            iq = InputQuantizer("affine", scale=float(quant["scale"]), zero_point=quant["zero_point"],
                                rounding=quant["rounding"], clip=tuple(quant["clip"]),
                                offset=float(quant.get("offset", 0.0)))
        lo, kmax = self._input_steps(graph_q, levels)
        with np.errstate(over="ignore", invalid="ignore"):
            keys = np.unique(np.concatenate([lo[lo <= kmax], lo[lo <= kmax] - 1, [-kmax, kmax]]))
            xs = float32_from_key(np.clip(keys, -kmax, kmax))
            got, exp = apply_quantizer(iq, xs.astype(np.float64)), graph_q(xs)
        # float64 here, float32 in the graph: they can differ within a float32 rounding of a
        # step (2x - 1 at x = 0.24999999); recorded, not refused
        differ = int((got != exp).sum())
        if differ and self.exact_input and "thresholds" not in quant and \
                int(levels[0]) == int(quant["clip"][0]):
            # exact on every float32 input: the graph's own step points as thresholds
            quant.clear()
            quant["thresholds"] = [float(v) for v in float32_from_key(np.minimum(lo, kmax))]
            differ = 0
        steps = self.stats.setdefault("input_steps", {"steps": 0, "differ_within_float32_rounding": 0})
        steps["steps"] += int(len(keys))
        steps["differ_within_float32_rounding"] += differ

    # -- materializing a layer --
    def _mac(self, w: DType, a: DType, where) -> str:
        if w.encoding == "int" and w.bits == 2 and w.narrow:   # {-1, 0, +1}: ternary weights
            w = DType.ternary()
        kind = macs.kind_for(w, a)
        if kind is None:
            raise NetworkError(where, f"unsupported op: {w} weights with {a} activations (no "
                                      f"MAC kind takes them)")
        return kind

    def _emit(self, acc: _Acc, sign: np.ndarray, act: dict | None, thresholds=None,
              bias=None) -> int:
        k = len(self.layers)
        if acc.sums is not None:  # add, avgpool2d, globalavgpool: an activation, no weights
            layer = dict(acc.layer)
            if act is None:
                layer["activation"] = {"type": "none"}
            else:
                self.arrays[f"t{k}"] = thresholds
                layer["activation"] = {"type": "multithreshold", "thresholds": f"t{k}", **act}
            self.layers.append(layer)
            self.inputs_of[layer["name"]] = list(acc.inputs)
            return k
        wmat = acc.weights * sign.reshape(-1, *([1] * (acc.weights.ndim - 1)))
        wdt = acc.w_dtype
        if wdt.encoding == "ternary" or (wdt.encoding == "int" and wdt.narrow and wdt.bits == 2):
            wdt = DType.ternary()
        if not wdt.contains(wmat).all():
            wdt = DType.int(wdt.bits + 1)
        mac = self._mac(wdt, acc.src.dtype, acc.layer["name"])
        self.arrays[f"w{k}"] = wmat
        layer = dict(acc.layer)
        layer["mac"] = mac
        layer["weights"] = {"key": f"w{k}", **_type_spec(wdt)}
        if bias is not None:
            self.arrays[f"b{k}"] = np.asarray(bias, dtype=np.int64) * sign
            layer["bias"] = f"b{k}"
        if act is None:
            layer["activation"] = {"type": "none"}
        else:
            self.arrays[f"t{k}"] = thresholds
            layer["activation"] = {"type": "multithreshold", "thresholds": f"t{k}", **act}
        order = ["type", "name", "mac", "weights", "bias", "kernel", "stride", "padding",
                 "pad_value", "activation"]
        self.layers.append({key: layer[key] for key in order if key in layer})
        self.inputs_of[layer["name"]] = [acc.src.layer]
        return k

    def _acc_range(self, acc: _Acc):
        if acc.sums is not None:
            return acc.sums
        w = acc.weights.reshape(acc.channels, -1)
        lo, hi = acc.src.lo, acc.src.hi
        return (np.minimum(lo * w, hi * w).sum(axis=1), np.maximum(lo * w, hi * w).sum(axis=1))

    def _materialize(self, acc: _Acc, node, where) -> _Int:
        q = self._quantizer(node, where, acc.view)
        if tuple(acc.view) != tuple(acc.shape) and acc.d2s is None:
            raise NetworkError(where, f"unsupported op {node.op_type}: the accumulator was reshaped "
                                      f"to {acc.view}")
        if node.op_type == "MultiThreshold":
            t = np.asarray(self._const(node.input[1]))
            if t.ndim != 2 or t.shape[0] not in (1, acc.channels):
                raise NetworkError(where, f"unsupported op MultiThreshold: thresholds of shape {t.shape}")
        sign = np.where(acc.slope < 0, -1, 1).astype(np.int64)
        if acc.sums is not None and (sign < 0).any():
            raise NetworkError(where, f"unsupported op {node.op_type}: a negative scale after "
                                      f"{acc.layer['type']} {acc.layer['name']!r} (its sum cannot "
                                      f"be negated per channel)")
        lo, hi = self._acc_range(acc)
        ylo, yhi = np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)
        path = self._path([*acc.nodes, node], acc.start)
        extra = (1,) * (len(acc.shape) - 1)

        def decoded(v):
            return q.decode(path(v.reshape(*v.shape, *extra)).reshape(v.shape))

        def out_of(y):
            accv = (y * sign[None, :]).astype(np.float64)
            if acc.value is not None:
                v = acc.value(accv)
            else:
                v = (accv * acc.s0 + acc.o0).astype(np.float32)
            if acc.bias is not None:
                v = v + acc.bias.astype(np.float32)
            return decoded(v)

        if q.levels is None:  # Trunc: the integers its input range reaches
            ends = out_of(np.stack([ylo, yhi]))
            q = replace(q, levels=np.arange(int(ends.min()), int(ends.max()) + 1))
            q.act = {"offset": int(q.levels[0])} if q.levels[0] else {}
            q.dtype = DType.for_range(int(q.levels[0]), int(q.levels[-1]))
        levels = q.levels

        def level_of(y):
            out = out_of(y)
            idx = np.searchsorted(levels, out)
            bad = (idx >= len(levels)) | (levels[np.minimum(idx, len(levels) - 1)] != out)
            if bad.any():
                raise NetworkError(where, f"unsupported op {node.op_type}: output {out[bad][0]!r} "
                                          f"is not one of its levels")
            return idx

        n = len(levels) - 1
        t = search_thresholds(level_of, ylo, yhi, n)
        self._verify(level_of, t, ylo, yhi, where, node)
        if acc.check is not None:
            acc.check(t, lambda v: np.searchsorted(levels, decoded(v)), where, node)
        if node.op_type != "Trunc":
            self._count_ceil(acc, q, sign, t, ylo, yhi)
        self._emit(acc, sign, q.act, t)
        if acc.d2s is not None:
            self.d2s = {"blocksize": acc.d2s[0], "mode": acc.d2s[1]}
        return _Int(acc.shape, q.dtype, int(levels[0]), int(levels[-1]), q.scale, np.float64(q.offset),
                    layer=acc.layer["name"])

    def _verify(self, level_of, t, ylo, yhi, where, node):
        """Thresholds against the float path: on every accumulator if few, else at and around
        every threshold and on a fixed sample."""
        c, n = t.shape
        span = int((yhi - ylo).max()) + 1
        if span * c <= _EXHAUSTIVE_LIMIT:
            ys = ylo[None, :] + np.arange(span)[:, None]
            ys = np.minimum(ys, yhi[None, :])
        else:
            rng = np.random.default_rng(0)
            sample = rng.integers(ylo, yhi + 1, size=(4096, c))
            near = np.concatenate([t - 1, t, t + 1], axis=1).T
            ys = np.clip(np.concatenate([sample, near]), ylo, yhi)
        got = level_of(ys)
        want = (ys[:, :, None] >= t[None]).sum(axis=2)
        if not np.array_equal(got, want):
            r, ch = np.argwhere(got != want)[0]
            raise NetworkError(where, f"unsupported op {node.op_type}: the float path is not "
                                      f"monotone in the accumulator (channel {ch}, accumulator "
                                      f"{int(ys[r, ch])})")

    def _count_ceil(self, acc: _Acc, q: _Quantizer, sign, t, ylo, yhi):
        """How many thresholds differ from the plain ceil of the float threshold (a statistic
        for the documentation; the binary search is what makes them exact)."""
        # level j is reached when the quantizer's input >= boundary j: a MultiThreshold's own
        # thresholds, the sign boundary 0 for bipolar, else the midpoint between float levels
        if q.bounds is not None:
            bnd = np.broadcast_to(q.bounds, (acc.channels, q.bounds.shape[1]))
        elif q.act.get("bipolar"):
            bnd = np.zeros((acc.channels, 1))
        else:
            lv = q.levels * q.scale + q.offset
            b = {"FLOOR": lv[1:], "CEIL": lv[:-1]}.get(q.rounding, (lv[:-1] + lv[1:]) / 2)
            bnd = np.broadcast_to(b, (acc.channels, len(lv) - 1))
        strict = q.rounding == "CEIL" and q.bounds is None and not q.act.get("bipolar")
        if not acc.affine and not (bnd > 0).all():
            return  # a ReLU in the chain matters only for boundaries at or below 0
        with np.errstate(divide="ignore", invalid="ignore"):
            y = (bnd - acc.offset[:, None]) / (acc.slope * sign)[:, None]
        tc = np.floor(y) + 1 if strict else np.ceil(y)
        tc = np.where(np.isfinite(tc), tc, np.where(y > 0, yhi[:, None] + 1, ylo[:, None]))
        tc = np.clip(tc, ylo[:, None], yhi[:, None] + 1).astype(np.int64)
        if tc.shape == t.shape:
            self.stats["thresholds"] += t.size
            self.stats["ceil_adjusted"] += int((tc != t).sum())

    def _op_MaxPool(self, i, node, where):
        st = self.env[node.input[0]]
        a = _attrs(node)
        if not isinstance(st, _Int) or len(st.shape) != 3:
            raise NetworkError(where, f"unsupported op MaxPool on {self._what(st)} (only on a "
                                      f"quantized C×H×W tensor)")
        if st.scale <= 0 or np.asarray(st.offset).size != 1:
            raise NetworkError(where, "unsupported op MaxPool: the integer tensor has a negative "
                                      "scale or per-element offsets")
        k = list(a.get("kernel_shape", []))
        s = list(a.get("strides", k))
        if len(k) != 2 or any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0) or \
                any(d != 1 for d in a.get("dilations", [1, 1])) or len(node.output) > 1 and node.output[1]:
            raise NetworkError(where, "unsupported op MaxPool: only 2-D, no padding, no ceil mode, "
                                      "no dilation, no indices")
        c, h, w = st.shape
        out = (c, (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1)
        name = node.name or f"MaxPool_{i}"
        self.layers.append({"type": "maxpool2d", "name": name, "kernel": k, "stride": s})
        self.inputs_of[name] = [st.layer]
        self.env[node.output[0]] = replace(st, shape=out, layer=name)

    # -- the end of the graph --
    def _op_TopK(self, i, node, where):
        a = _attrs(node)
        k = self._const(node.input[1]) if len(node.input) > 1 else a.get("k")
        if int(np.asarray(k).ravel()[0]) != 1 or a.get("largest", 1) != 1:
            raise NetworkError(where, "unsupported op TopK: only k = 1, largest")
        self._argmax(i, node, where, node.output[1] if len(node.output) > 1 else node.output[0],
                     a.get("axis", -1))

    def _op_ArgMax(self, i, node, where):
        a = _attrs(node)
        if a.get("select_last_index", 0):
            raise NetworkError(where, "unsupported op ArgMax: select_last_index")
        self._argmax(i, node, where, node.output[0], a.get("axis", 0))

    def _softmax(self, i, node, where):
        """Softmax / LogSoftmax at the output: strictly increasing in each logit for a fixed
        row, so the top-1 class is that of the logits; the op is dropped (the float outputs
        in the metadata are the logits) and recorded."""
        st = self.env[node.input[0]]
        op = node.op_type
        later = [n.op_type for n in self.model.graph.node[i + 1:]]
        if any(t not in ("ArgMax", "TopK", "Identity") for t in later):
            raise NetworkError(where, f"unsupported op {op}: only at the output (or before an "
                                      f"ArgMax / TopK)")
        view = st.view if isinstance(st, _Acc) else getattr(st, "shape", None)
        axis = _attrs(node).get("axis", -1 if self.opset >= 13 else 1)
        if not isinstance(st, (_Acc, _Int)) or view is None or len(view) != 1 or axis not in (1, -1):
            raise NetworkError(where, f"unsupported op {op}: only over the channels of a vector "
                                      f"(axis 1 of (1, C))")
        self.dropped.append(op)
        self.env[node.output[0]] = st

    _op_Softmax = _softmax
    _op_LogSoftmax = _softmax

    def _argmax(self, i, node, where, out, axis):
        st = self.env[node.input[0]]
        if isinstance(st, _Acc):
            st = self._final(st, where, node)
        if not isinstance(st, _Int) or len(st.shape) != 1 or axis not in (1, -1):
            raise NetworkError(where, f"unsupported op {node.op_type}: only over the channels of a "
                                      f"vector")
        self.out_layer = st.layer
        if self.output_meta is None:
            c = st.shape[0]
            self.output_meta = {"layer": self._last_compute(), "scale": [float(st.scale)] * c,
                                "offset": [float(v) for v in np.broadcast_to(
                                    np.asarray(st.offset, dtype=np.float64), (c,))]}
        self._add_argmax(where, node.name or f"ArgMax_{i}")
        self.env[out] = _Index(st.shape[0])

    def _final(self, acc: _Acc, where, node=None) -> _Int:
        if not acc.affine:
            raise NetworkError(where, "unsupported op Relu: a ReLU on the output without a "
                                      "quantizer after it")
        if tuple(acc.view) != tuple(acc.shape) and acc.d2s is None:
            raise NetworkError(where, f"unsupported output: the accumulator was reshaped to "
                                      f"{acc.view}")
        if acc.d2s is not None:
            self.d2s = {"blocksize": acc.d2s[0], "mode": acc.d2s[1]}
        # a bias (and input offset) on the accumulator's grid becomes an integer bias
        with np.errstate(divide="ignore", invalid="ignore"):
            bias = _on_grid(acc.offset / acc.slope)
        if bias is not None and not bias.any() or acc.sums is not None:
            bias = None  # a sum layer has no bias: its offset stays in metadata.output
        k = self._emit(acc, np.ones(acc.channels, dtype=np.int64), None, bias=bias)
        lo, hi = self._acc_range(acc)
        offset = acc.offset.copy()
        if bias is not None:
            lo, hi = lo + bias, hi + bias
            offset = offset - bias * acc.slope
        self.output_meta = {"layer": self.layers[k]["name"],
                            "scale": [float(v) for v in acc.slope],
                            "offset": [float(v) for v in offset]}
        self.final = {"index": k, "acc": acc, "lo": lo, "hi": hi}
        return _Int(acc.shape, DType.for_range(int(lo.min()), int(hi.max())), int(lo.min()),
                    int(hi.max()), 1.0, np.float64(0.0), layer=acc.layer["name"])

    def _finish(self, state, out):
        where = f"output ({out})"
        if state is None:
            raise NetworkError(where, "the graph output is not produced by a supported node")
        if isinstance(state, _Acc):
            state = self._final(state, where)
        if isinstance(state, _Int):
            self.out_layer = state.layer
        if isinstance(state, _Int) and self.output_meta is None:
            if not self.layers:
                raise NetworkError(where, "the model has no MatMul, Gemm or Conv layer")
            c = state.shape[0]
            off = np.broadcast_to(np.asarray(state.offset, dtype=np.float64), state.shape)
            off = off.reshape(c, -1)
            if not (off == off[:, :1]).all():
                raise NetworkError(where, "unsupported output: offsets that vary within a channel")
            self.output_meta = {"layer": self._last_compute(), "scale": [float(state.scale)] * c,
                                "offset": [float(v) for v in off[:, 0]]}
        elif not isinstance(state, (_Int, _Index)):
            raise NetworkError(where, f"unsupported output: {self._what(state)}")
        if self.argmax and not isinstance(state, _Index):
            self._add_argmax(where, "argmax")
        if self.dropped:
            self.output_meta["dropped"] = list(self.dropped)
        if self.d2s is not None:
            if self.argmax:
                raise NetworkError(where, "cannot add an argmax after DepthToSpace")
            self.output_meta["depth_to_space"] = dict(self.d2s)
        if self.input_doc is None:
            raise NetworkError("input", "the input is never quantized")

    def _add_argmax(self, where, name):
        """Append an argmax whose class is that of the float outputs: directly when every
        class has the same positive scale and offset, else by changing the output layer."""
        sc = np.asarray(self.output_meta["scale"], dtype=np.float64)
        off = np.asarray(self.output_meta["offset"], dtype=np.float64)
        tol = np.abs(sc) * _GRID_TOL
        if (sc > 0).all() and (sc == sc[0]).all() and (np.abs(off - off[0]) <= tol).all():
            pass  # the integer argmax is the float one (recorded only when the layer changes)
        elif self.final is not None and self.final["index"] == len(self.layers) - 1 and \
                self.final["acc"].sums is None:
            self._order_logits(where)
        else:
            raise NetworkError(where, "cannot add an argmax: the classes have different float "
                                      "scales or offsets and the last layer has an activation")
        self.layers.append({"type": "argmax", "name": name})
        self.inputs_of[name] = [self.out_layer]
        self.out_layer = name

    def _order_logits(self, where):
        """Make the output layer's integer outputs ordered exactly as the float logits
        ``scale[c] * acc + offset[c]``: when every offset is a whole number of steps, a
        per-channel integer multiplier onto the scales' common grid (requant, shift 0) if that
        fits 32 bits; else the rank of the logit among every reachable logit of every class
        (thresholds), when there are at most _RANK_LIMIT."""
        from fractions import Fraction

        fin = self.final
        k, acc = fin["index"], fin["acc"]
        layer = self.layers[k]
        sc = np.asarray(self.output_meta["scale"], dtype=np.float64)
        off = np.asarray(self.output_meta["offset"], dtype=np.float64)
        if (sc == 0).any():
            c = int(np.flatnonzero(sc == 0)[0])
            raise NetworkError(where, f"cannot add an argmax: class {c} has a float scale of 0")
        sign = np.where(sc < 0, -1, 1).astype(np.int64)
        old = np.asarray(self.arrays.get(f"b{k}", np.zeros(len(sc), dtype=np.int64)))
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = _on_grid(off / np.abs(sc), ref=old)
        # the new accumulator acc' = sign * acc + bias; float logit = |scale| * acc' + rest
        bias = old * sign + (0 if steps is None else steps)
        rest = off if steps is None else off - steps * np.abs(sc)
        lo2 = np.where(sign > 0, fin["lo"] - old, -(fin["hi"] - old)) + bias
        hi2 = np.where(sign > 0, fin["hi"] - old, -(fin["lo"] - old)) + bias
        w = self.arrays[f"w{k}"] * sign.reshape(-1, *([1] * (acc.weights.ndim - 1)))
        self.arrays[f"w{k}"] = w
        ws = layer["weights"]
        if ws["encoding"] in ("int", "uint") and (sign < 0).any():
            dt = DType.int(ws["bits"], narrow=ws.get("narrow", False)) if ws["encoding"] == "int" \
                else DType.uint(ws["bits"])
            if not dt.contains(w).all():
                layer["weights"] = {"key": ws["key"], "encoding": "int", "bits": ws["bits"] + 1}
        self.output_meta["scale"] = [float(v) for v in np.abs(sc)]
        self.output_meta["offset"] = [float(v) for v in rest]
        if bias.any():
            self.arrays[f"b{k}"] = bias
            layer["bias"] = f"b{k}"
        else:
            self.arrays.pop(f"b{k}", None)
            layer.pop("bias", None)
        fr = [Fraction(float(v)) for v in np.abs(sc)]
        g = Fraction(math.gcd(*[f.numerator for f in fr]), math.lcm(*[f.denominator for f in fr]))
        mult = [int(f / g) for f in fr]
        mag = max(max(abs(int(a)), abs(int(b))) * m for a, b, m in zip(lo2, hi2, mult))
        if steps is not None and mag.bit_length() <= 31:
            m = np.array(mult, dtype=np.int64)
            self.arrays[f"m{k}"] = m
            lo_l, hi_l = int((lo2 * m).min()), int((hi2 * m).max())
            layer["activation"] = {"type": "requant", "multiplier": f"m{k}", "shift": 0,
                                   "rounding": "floor", "clip": [lo_l, hi_l]}
            self.output_meta["argmax"] = (f"requant: integer logits on the classes' common grid "
                                          f"{float(g):.9g} (multipliers up to {max(mult)})")
            return
        # rank of every reachable logit
        vals = [np.abs(sc[c]) * np.arange(lo2[c], hi2[c] + 1, dtype=np.float64) + rest[c]
                for c in range(len(sc))]
        total = sum(len(v) for v in vals)
        if total > _RANK_LIMIT:
            why = (f"the classes' float scales have no common integer grid within 32 bits (the "
                   f"logits would need {mag.bit_length() + 1} bits)" if steps is not None else
                   "a float offset is not a whole number of accumulator steps (a bias off the "
                   "accumulator's grid)")
            raise NetworkError(where, f"cannot add an argmax: {why} and the logits take {total} "
                                      f"values (more than {_RANK_LIMIT} thresholds)")
        allv = np.unique(np.concatenate(vals))
        t = np.empty((len(sc), len(allv) - 1), dtype=np.int64)
        for c, v in enumerate(vals):
            t[c] = lo2[c] + np.searchsorted(v, allv[1:], side="left")
        self.arrays[f"t{k}"] = t
        layer["activation"] = {"type": "multithreshold", "thresholds": f"t{k}"}
        self.output_meta["argmax"] = (f"thresholds: the rank of the float logit among the "
                                      f"{len(allv)} values the classes can take")

    def _last_compute(self) -> str:
        return next(ly["name"] for ly in reversed(self.layers)
                    if ly["type"] in ("dense", "conv2d", "dwconv2d", "add", "concat", "avgpool2d",
                                      "globalavgpool"))

    def _document(self) -> tuple[dict, dict]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            qv = version("qonnx")
        except PackageNotFoundError:  # pragma: no cover
            qv = "unknown"
        meta = {
            "importer": "nomul QONNX import",
            "qonnx_version": qv,
            "output": self.output_meta,
            "thresholds": self.stats["thresholds"],
            "thresholds_moved_by_float_rounding": self.stats["ceil_adjusted"],
        }
        if self.input_note is not None:
            meta["float_input"] = self.input_note
        if "input_steps" in self.stats and self.stats["input_steps"]["differ_within_float32_rounding"]:
            meta["input_float32_steps"] = self.stats["input_steps"]
        doc = {"version": 1, "name": self.name, "source": self.source, "metadata": meta,
               "input": self.input_doc, "layers": self.layers}
        from .qonnx_graph import graph_document

        doc = graph_document(doc, self.inputs_of, self.out_layer)
        return doc, {k: _compact(v) for k, v in self.arrays.items()}


def _check_finite(m) -> None:
    """Every float initializer (weights, scales, thresholds…) must be finite: a NaN would turn
    into garbage integers (or a traceback) further on."""
    from onnx import numpy_helper

    for i, init in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(init)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            k = int(np.argmax(~np.isfinite(a).ravel()))
            raise NetworkError(f"initializers[{i}] ({init.name})", f"holds {a.ravel()[k]} at index "
                                                                    f"{k}: values must be finite")


def import_qonnx(model, *, name: str | None = None, source: str | None = None,
                 argmax: bool = False, input_type: str | None = None,
                 calib=None, exact_input: bool = False) -> tuple[dict, dict]:
    """Import a QONNX model as a network description.

    Parameters
    ----------
    model : str, Path, onnx.ModelProto or ModelWrapper
        The model; it is cleaned up with :func:`qonnx.util.cleanup.cleanup_model` first.
    name, source : str
        The network's name and source (default: from the file name).
    argmax : bool
        Append an argmax layer whose class is that of the float outputs.
    input_type : str, optional
        For a float input that goes straight into a layer: ``fixed<W,I>``, ``ufixed<W,I>``,
        ``intN:scale``, ``uintN:scale``, or ``intN`` / ``uintN`` with ``calib``.
    calib : array, optional
        Sample float inputs: the input scale is calibrated on them (their largest magnitude
        is the largest level) unless ``input_type`` gives one, and the agreement of the
        integer network with the float model on them goes into ``metadata.float_input``.
    exact_input : bool
        Where the affine input quantizer (float64) differs from the graph's float32 rounding
        at some step, write a ``thresholds`` input quantizer instead: the graph's own step
        points, exact on every float32 input.

    Returns
    -------
    (doc, arrays)
        The network file as a dict and its integer arrays, which
        :func:`gen.load.network_from_dict` accepts.

    Raises
    ------
    NetworkError
        For an unsupported op or pattern, naming the node (``nodes[12] (Conv_3)``).
    """
    stem = Path(model).stem if isinstance(model, (str, Path)) else "imported"
    m = load_qonnx(model)
    _check_finite(m)
    if calib is not None:
        calib = np.asarray(calib, dtype=np.float32)
        per = tuple(m.get_tensor_shape(m.graph.input[0].name))[1:]
        k = math.prod(per)
        if calib.ndim < 1 or calib.size == 0 or calib.size % k or not np.isfinite(calib).all():
            raise NetworkError("--calib", f"expected finite inputs of shape (N, {', '.join(map(str, per))}), "
                                          f"found {calib.shape}")
        calib = calib.reshape(-1, *per)
    imp = _Importer(m, name=name or stem, source=source or f"QONNX import of {stem}.onnx",
                    argmax=argmax, input_type=input_type, calib=calib, exact_input=exact_input)
    doc, arrays = imp.run()
    if (input_type is not None or calib is not None) and imp.input_note is None:
        raise NetworkError("--input-type", "the model quantizes its own input: --input-type and "
                                           "--calib are for a float input straight into a layer")
    from gen.load import network_from_dict

    net = network_from_dict(doc, arrays=arrays)  # the result must load; an error here is a bug
    if calib is not None:
        doc["metadata"]["float_input"]["agreement"] = _agreement(m, net, doc, calib)
    return doc, arrays


def _agreement(model, net, doc, x) -> dict:
    """How the integer network agrees with the float model on sample inputs (not exact: the
    float input was quantized here, not in the model)."""
    from sim import golden

    from .qonnx_exec import run_qonnx

    n = len(x)
    res = golden.run(net, golden.quantize_input(net, x.reshape(n, *net.input.shape)))
    ref = np.asarray(run_qonnx(model, x), dtype=np.float64).reshape(n, -1)
    out = {"inputs": n}
    if net.ends_in_argmax:
        out["top1"] = float(np.mean(res.top1 == ref.reshape(n, -1)[:, 0]))
        return out
    meta = doc["metadata"]["output"]
    f = _host_output(doc, res.outputs).reshape(n, -1)
    if f.shape[1] > 1 and not meta.get("depth_to_space"):
        out["top1"] = float(np.mean(np.argmax(f, axis=1) == np.argmax(ref, axis=1)))
    # equal up to float32 rounding of scale × level (the model's float32 vs float64 here)
    out["equal_outputs"] = float(np.mean(np.abs(f - ref) <= 1e-6 * max(1.0, np.abs(ref).max())))
    out["max_abs_error"] = float(np.abs(f - ref).max())
    out["max_abs_output"] = float(np.abs(ref).max())
    return out


def _host_output(doc, outputs):
    """The float outputs in the model's layout: scale, offset and any DepthToSpace that
    ``metadata.output`` asks the host to apply."""
    meta = doc["metadata"]["output"]
    c = outputs.shape[1]
    f = outputs * np.array(meta["scale"]).reshape(1, c, *([1] * (outputs.ndim - 2))) + \
        np.array(meta["offset"]).reshape(1, c, *([1] * (outputs.ndim - 2)))
    d2s = meta.get("depth_to_space")
    if d2s:
        f = depth_to_space(f, d2s["blocksize"], d2s["mode"])
    return f


def depth_to_space(x: np.ndarray, r: int, mode: str) -> np.ndarray:
    """ONNX DepthToSpace of an (N, C, H, W) array (DCR or CRD), in numpy."""
    n, c, h, w = x.shape
    if mode == "DCR":
        y = x.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (r * r), h * r, w * r)


def import_to_file(model, out, **kwargs) -> Path:
    """Import ``model`` and write the network file ``out`` (.yaml) and its .npz, atomically."""
    from gen.netfile import write_network

    doc, arrays = import_qonnx(model, **kwargs)
    return write_network(out, doc, arrays)
