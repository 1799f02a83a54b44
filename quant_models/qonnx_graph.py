"""The graph constructs of the QONNX importer (:mod:`quant_models.qonnx_import`): residual
``Add`` of two quantized tensors, ``Concat``, ``AveragePool`` / ``GlobalAveragePool`` (then a
``Trunc`` or a ``Quant``), grouped and depthwise ``Conv``, ``Pad`` folded into the next
convolution, and the version-2 network file with ``inputs`` when the graph is not a chain.

Each join or pooling layer becomes an integer sum (``add``: ``m0·q0 + m1·q1`` with integer
multipliers in the ratio of the two scales; the pooling layers: the window sum) whose float
value is a known function of the sum, followed, like a compute layer's accumulator, by the
float chain up to its quantizer; the importer's threshold search then runs that chain itself,
so the activation reproduces the model's rounding on every reachable sum.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np

from gen.errors import NetworkError
from gen.ops.add import MAX_MULTIPLIER

__all__ = ["residual_add", "concat", "average_pool", "pad", "fold_pad", "grouped_weights",
           "graph_document"]

_PAIR_LIMIT = 1 << 22


def _attrs(node) -> dict:
    from .qonnx_import import _attrs as attrs

    return attrs(node)


def _scalar_offset(st, what: str, where: str, op: str) -> float:
    off = np.asarray(st.offset, dtype=np.float64)
    if off.size != 1:
        raise NetworkError(where, f"unsupported op {op}: {what} has an offset that varies per "
                                  f"element")
    return float(off.reshape(()))


def _ints(imp, node, where, op):
    from .qonnx_import import _Int

    sts = []
    for n in node.input:
        st = imp.env.get(n) if n else None
        if not isinstance(st, _Int):
            what = "a constant" if st is None else imp._what(st)
            raise NetworkError(where, f"unsupported op {op} of {what} (every input must be a "
                                      f"quantized tensor: a Quant in front of each)")
        sts.append(st)
    return sts


# -- residual add ----------------------------------------------------------------------------------
def residual_add(imp, i, node, where):
    """``Add`` of two quantized tensors ``q0·s0 + o0`` and ``q1·s1 + o1``: an ``add`` layer with
    multipliers ``m0 : m1 = s0 : s1`` (the exact ratio of the two float scales, each at most
    65536), whose sum ``m0·q0 + m1·q1`` is on the grid ``g = s0 / m0``."""
    from .qonnx_import import _Acc

    a, b = _ints(imp, node, where, "Add")
    if tuple(a.shape) != tuple(b.shape):
        raise NetworkError(where, f"unsupported op Add: inputs of shapes {a.shape} and {b.shape} "
                                  f"(no broadcasting)")
    oa = _scalar_offset(a, "the first input", where, "Add")
    ob = _scalar_offset(b, "the second input", where, "Add")
    if a.scale <= 0 or b.scale <= 0:
        raise NetworkError(where, f"unsupported op Add: input scales {a.scale:g} and {b.scale:g} "
                                  f"(both must be positive)")
    ratio = Fraction(a.scale) / Fraction(b.scale)
    m0, m1 = ratio.numerator, ratio.denominator
    if max(m0, m1) > MAX_MULTIPLIER:
        raise NetworkError(where, f"unsupported op Add: the input scales {a.scale:.9g} and "
                                  f"{b.scale:.9g} have no common integer grid with multipliers up to "
                                  f"{MAX_MULTIPLIER} (their ratio is {m0}/{m1})")
    g = Fraction(a.scale) / m0
    lo = min(m0 * a.lo, m0 * a.hi) + min(m1 * b.lo, m1 * b.hi)
    hi = max(m0 * a.lo, m0 * a.hi) + max(m1 * b.lo, m1 * b.hi)
    c = a.shape[0]
    gf, off = float(g), oa + ob

    def value(accv):
        return (accv * gf + off).astype(np.float32)

    def check(t, level_of_value, where_q, qnode):
        """The graph adds the two float32 inputs in float32: on every pair of input values (or
        a sample when there are more than 4M), the level the float chain gives must be the
        thresholds' level of ``m0·q0 + m1·q1``."""
        qa = np.arange(a.lo, a.hi + 1)
        qb = np.arange(b.lo, b.hi + 1)
        if len(qa) * len(qb) * c <= _PAIR_LIMIT:
            pa, pb = (v.ravel() for v in np.meshgrid(qa, qb, indexing="ij"))
        else:
            rng = np.random.default_rng(0)
            pa, pb = rng.integers(a.lo, a.hi + 1, 1 << 16), rng.integers(b.lo, b.hi + 1, 1 << 16)
        va = (pa * a.scale + oa).astype(np.float32)
        vb = (pb * b.scale + ob).astype(np.float32)
        v = np.broadcast_to((va + vb)[:, None], (len(pa), c)).copy()
        got = level_of_value(v)
        acc = m0 * pa + m1 * pb
        want = np.stack([np.searchsorted(t[k], acc, side="right") for k in range(c)], axis=1)
        if not np.array_equal(got, want):
            r, k = np.argwhere(got != want)[0]
            raise NetworkError(where, f"unsupported op Add: the float32 sum of its inputs is not a "
                                      f"function of {m0}·q0 + {m1}·q1 (at q0 = {int(pa[r])}, q1 = "
                                      f"{int(pb[r])}, channel {k}): the grids are not exactly "
                                      f"aligned in float32")

    layer = {"type": "add", "name": node.name or f"Add_{i}", "multipliers": [int(m0), int(m1)]}
    s0 = np.full(c, gf)
    o0 = np.full(c, off)
    imp.env[node.output[0]] = _Acc(
        layer=layer, weights=None, w_dtype=None, src=a, shape=tuple(a.shape), view=tuple(a.shape),
        start=node.output[0], s0=s0, o0=o0, bias=None, slope=s0.copy(), offset=o0.copy(),
        sums=(np.full(c, lo, dtype=np.int64), np.full(c, hi, dtype=np.int64)),
        inputs=(a.layer, b.layer), value=value, check=check)


# -- concat ----------------------------------------------------------------------------------------
def concat(imp, i, node, where):
    """``Concat`` along the channels of quantized tensors on the same grid and of the same
    integer type: one ``concat`` layer of all of them."""
    sts = _ints(imp, node, where, "Concat")
    rank = len(sts[0].shape) + 1
    axis = int(_attrs(node).get("axis", 1))
    if axis % rank != 1:
        raise NetworkError(where, f"unsupported op Concat: axis {axis} (only the channels, axis 1)")
    first = sts[0]
    off = _scalar_offset(first, "the first input", where, "Concat")
    for k, st in enumerate(sts[1:], start=1):
        if tuple(st.shape[1:]) != tuple(first.shape[1:]):
            raise NetworkError(where, f"unsupported op Concat: input {k} has shape {st.shape}, the "
                                      f"first {first.shape}")
        o = _scalar_offset(st, f"input {k}", where, "Concat")
        if st.scale != first.scale or o != off:
            raise NetworkError(where, f"unsupported op Concat: input {k} is on another grid (scale "
                                      f"{st.scale:.9g}, offset {o:g}; the first: {first.scale:.9g}, "
                                      f"{off:g}): concatenated tensors must share their quantizer")
        if st.dtype != first.dtype:
            raise NetworkError(where, f"unsupported op Concat: inputs of different integer types, "
                                      f"{first.dtype} and {st.dtype}")
    name = node.name or f"Concat_{i}"
    imp.layers.append({"type": "concat", "name": name})
    imp.inputs_of[name] = [st.layer for st in sts]
    shape = (sum(st.shape[0] for st in sts), *first.shape[1:])
    lo, hi = min(st.lo for st in sts), max(st.hi for st in sts)
    imp.env[node.output[0]] = replace(first, shape=shape, lo=lo, hi=hi, layer=name,
                                      offset=np.float64(off))


# -- average pooling -------------------------------------------------------------------------------
def average_pool(imp, i, node, where, *, is_global: bool):
    """``AveragePool`` (no padding, no ceil mode) or ``GlobalAveragePool`` on a quantized image:
    the window sum ``acc = Σ q`` as an ``avgpool2d`` / ``globalavgpool`` layer, whose float value
    is the graph's ``float32(acc·s + n·o) / n`` (onnxruntime sums, then divides); the ``Trunc``
    or ``Quant`` after it (Brevitas' ``Mul`` by the window size in between) becomes its
    activation."""
    from .qonnx_import import _Acc, _Int

    op = node.op_type
    st = imp.env[node.input[0]]
    if not isinstance(st, _Int) or len(st.shape) != 3:
        raise NetworkError(where, f"unsupported op {op} on {imp._what(st)} (only on a quantized "
                                  f"C×H×W tensor)")
    off = _scalar_offset(st, "its input", where, op)
    c, h, w = st.shape
    name = node.name or f"{op}_{i}"
    if is_global:
        kh, kw = h, w
        layer = {"type": "globalavgpool", "name": name}
        shape = (c, 1, 1)
    else:
        a = _attrs(node)
        k = [int(v) for v in a.get("kernel_shape", [])]
        s = [int(v) for v in a.get("strides", [1, 1])]
        pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if len(k) != 2:
            raise NetworkError(where, f"unsupported op AveragePool: kernel_shape {k} (only 2-D)")
        if any(pads) or auto not in ("NOTSET", "VALID"):
            cip = int(a.get("count_include_pad", 0))
            raise NetworkError(where, f"unsupported op AveragePool: padding {pads or auto} with "
                                      f"count_include_pad={cip} (avgpool2d has no padding)")
        if int(a.get("ceil_mode", 0)):
            raise NetworkError(where, "unsupported op AveragePool: ceil_mode=1 (avgpool2d takes "
                                      "only whole windows)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise NetworkError(where, "unsupported op AveragePool: dilation")
        if k[0] > h or k[1] > w:
            raise NetworkError(where, f"unsupported op AveragePool: kernel {k} larger than the "
                                      f"input {h}×{w}")
        kh, kw = k
        layer = {"type": "avgpool2d", "name": name, "kernel": k, "stride": s}
        shape = (c, (h - kh) // s[0] + 1, (w - kw) // s[1] + 1)
    n = kh * kw
    scale = float(st.scale)

    def value(accv):
        return (accv * scale + n * off).astype(np.float32) / np.float32(n)

    s0 = np.full(c, scale / n)
    o0 = np.full(c, off)
    imp.env[node.output[0]] = _Acc(
        layer=layer, weights=None, w_dtype=None, src=st, shape=shape, view=shape,
        start=node.output[0], s0=s0, o0=o0, bias=None, slope=s0.copy(), offset=o0.copy(),
        sums=(np.full(c, n * st.lo, dtype=np.int64), np.full(c, n * st.hi, dtype=np.int64)),
        inputs=(st.layer,), value=value)


# -- padding ---------------------------------------------------------------------------------------
def pad(imp, i, node, where):
    """``Pad`` (constant mode, the same on both sides of H and of W) of a quantized image: kept
    with the tensor until the next ``Conv`` takes it into its padding and ``pad_value``."""
    from .qonnx_import import _Int

    st = imp.env[node.input[0]]
    if not isinstance(st, _Int) or len(st.shape) != 3:
        raise NetworkError(where, f"unsupported op Pad on {imp._what(st)} (only on a quantized "
                                  f"C×H×W tensor before a Conv)")
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise NetworkError(where, f"unsupported op Pad: mode {mode} (only constant)")
    if len(node.input) > 3 and node.input[3]:
        raise NetworkError(where, "unsupported op Pad: axes (give pads for every axis)")
    if len(node.input) > 1 and node.input[1]:
        p = imp._const(node.input[1])
        if p is None:
            raise NetworkError(where, "unsupported op Pad: the pads are not constant")
        pads = [int(v) for v in np.asarray(p).ravel()]
    else:
        pads = [int(v) for v in a.get("pads", [])]
    v = 0.0
    if len(node.input) > 2 and node.input[2]:
        cv = imp._const(node.input[2])
        if cv is None:
            raise NetworkError(where, "unsupported op Pad: the constant value is not constant")
        v = float(np.asarray(cv, dtype=np.float64).reshape(()))
    elif "value" in a:
        v = float(a["value"])
    if len(pads) != 8:
        raise NetworkError(where, f"unsupported op Pad: pads {pads} (expected 8, for N, C, H, W)")
    b, e = pads[:4], pads[4:]
    if b[0] or b[1] or e[0] or e[1] or min(pads) < 0:
        raise NetworkError(where, f"unsupported op Pad: pads {pads} (only H and W, not negative)")
    if b[2] != e[2] or b[3] != e[3]:
        raise NetworkError(where, f"unsupported op Pad: asymmetric pads {pads} (a conv2d pads "
                                  f"both sides alike)")
    off = _scalar_offset(st, "its input", where, "Pad")
    qv = (v - off) / st.scale
    if abs(qv - round(qv)) > 1e-9 or not st.dtype.contains(round(qv)) or \
            not st.lo <= round(qv) <= st.hi:
        raise NetworkError(where, f"unsupported op Pad: the value {v:g} is not a value of the "
                                  f"quantized input (it would be {qv:g} in {st.dtype})")
    qv = int(round(qv))
    ph, pw = b[2], b[3]
    if st.pad is not None:
        if st.pad[2] != qv:
            raise NetworkError(where, "unsupported op Pad: two Pads with different values")
        ph, pw = ph + st.pad[0], pw + st.pad[1]
    imp.env[node.output[0]] = replace(st, pad=(ph, pw, qv))


def fold_pad(src, layer: dict, ph: int, pw: int, where):
    """A Conv after a Pad: the Pad's rows and columns join the Conv's own (zero) padding, when
    both pad with the same integer. Returns (the unpadded input, PH, PW)."""
    pph, ppw, qv = src.pad
    if ph or pw:
        off = float(np.asarray(src.offset, dtype=np.float64).reshape(-1)[0])
        qzero = -off / src.scale
        if qzero != qv:
            raise NetworkError(where, f"unsupported op Conv: its own zero padding ({qzero:g}) and "
                                      f"the Pad before it ({qv}) pad with different values")
    ph, pw = ph + pph, pw + ppw
    layer["padding"] = [ph, pw]
    layer["pad_value"] = qv
    return replace(src, pad=None), ph, pw


# -- grouped convolutions --------------------------------------------------------------------------
def grouped_weights(w, group: int, src, where):
    """A ``Conv`` with ``group`` > 1: depthwise (``group`` = channels = output channels) stays as
    it is, for a ``dwconv2d``; any other grouping becomes the block-diagonal weights of a
    ``conv2d`` (zero outside each output channel's group), which the weight type must allow.
    Returns (weights, depthwise)."""
    from .qonnx_import import _Weights

    if len(src.shape) != 3 or w.q.ndim != 4:
        raise NetworkError(where, f"unsupported op Conv: group {group} on input {src.shape} with "
                                  f"weights {w.q.shape}")
    c = src.shape[0]
    oc, cg = w.q.shape[:2]
    if c % group or oc % group or cg * group != c:
        raise NetworkError(where, f"unsupported op Conv: group {group} with {c} input channels and "
                                  f"weights {w.q.shape}")
    if group == c and oc == c:
        return w, True
    if not w.dtype.contains(0):
        raise NetworkError(where, f"unsupported op Conv: group {group} of {c} channels with "
                                  f"{w.dtype} weights (a grouped convolution becomes a conv2d with "
                                  f"zero weights outside each group, and {w.dtype} has no 0)")
    full = np.broadcast_to(w.scale, w.q.shape).reshape(oc, -1)
    if not (full == full[:, :1]).all():
        raise NetworkError(where, "unsupported op Conv: weight scales that vary along the input "
                                  "dimension")
    q = np.zeros((oc, c, *w.q.shape[2:]), dtype=np.int64)
    per = oc // group
    for o in range(oc):
        k = o // per
        q[o, k * cg:(k + 1) * cg] = w.q[o]
    return _Weights(q, full[:, 0].reshape(oc, 1, 1, 1), w.dtype), False


# -- the network file ------------------------------------------------------------------------------
def graph_document(doc: dict, inputs_of: dict, out_layer: str | None) -> dict:
    """``doc`` unchanged when its layers are a chain (each reads the one before it and the last
    is the output: a version-1 file); else version 2, with ``inputs`` on every layer that does
    not read the one before it, and ``outputs`` when the output is not the last layer."""
    layers = doc["layers"]
    names = [ly["name"] for ly in layers]
    defaults = ["input", *names[:-1]]
    chain = all(inputs_of.get(n, [d]) == [d] for n, d in zip(names, defaults)) and \
        out_layer in (None, names[-1])
    if chain:
        return doc
    new = []
    for ly, d in zip(layers, defaults):
        ins = inputs_of.get(ly["name"], [d])
        out = {"type": ly["type"], "name": ly["name"]}
        if ins != [d] or ly["type"] in ("add", "concat"):
            out["inputs"] = list(ins)
        out.update({k: v for k, v in ly.items() if k not in ("type", "name")})
        new.append(out)
    doc = {**doc, "version": 2, "layers": new}
    if out_layer != names[-1]:
        doc["outputs"] = [out_layer]
    return doc
