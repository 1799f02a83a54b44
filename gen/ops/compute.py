"""What the compute layers (dense, conv2d) share: weights of a MAC kind, an optional bias and
pruning mask, an activation (multi-threshold, requantization or none), and a matrix-vector unit
in hardware. :class:`ComputeOp` is the base of :mod:`gen.ops.dense` and :mod:`gen.ops.conv2d`,
which add their geometry (the weight matrix's layout, the sliding window)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, StrictBool, StrictInt, model_validator

from hw.dtypes import DType, bits_for_range

from .. import macs, schema
from ..errors import NetworkError
from ..ir import MultiThreshold, NoActivation, Requant, ValueRange
from .base import LayerOp, StageBuild, TensorInfo

__all__ = ["ComputeOp", "ComputeSpec", "MAX_ABS_BIAS", "MAX_ACC_BITS", "MAX_OUT_BITS", "fold_padding", "mvu_for",
           "padded_unit"]

MAX_ABS_BIAS = 1 << 40
MAX_ACC_BITS = 62
MAX_OUT_BITS = 32
FIFO_MAX_DEPTH = 512


# -- the file format -------------------------------------------------------------------------------
class WeightSpec(schema.TypeSpec):
    key: schema.Key
    shift: Annotated[StrictInt, Field(ge=0, le=16)] = 0


class MultiThresholdSpec(schema.Model):
    type: Literal["multithreshold"]
    thresholds: schema.Key
    offset: StrictInt = 0
    bipolar: StrictBool = False
    levels: Annotated[list[StrictInt], Field(min_length=2)] | None = None
    encoding: Literal["uint", "int", "bipolar", "onehot"] | None = None

    @model_validator(mode="after")
    def _exclusive(self):
        if self.levels is not None and (self.bipolar or self.offset):
            raise ValueError("levels cannot be combined with offset or bipolar")
        if self.bipolar and self.offset:
            raise ValueError("bipolar cannot be combined with offset")
        return self


class RequantSpec(schema.Model):
    type: Literal["requant"]
    multiplier: Annotated[StrictInt, Field(ge=-(1 << 62), le=1 << 62)] | schema.Key
    shift: Annotated[StrictInt, Field(ge=0, le=62)] = 0
    rounding: schema.Rounding = "floor"
    clip: tuple[StrictInt, StrictInt]


class NoActivationSpec(schema.Model):
    type: Literal["none"]


ActivationSpec = Annotated[MultiThresholdSpec | RequantSpec | NoActivationSpec,
                           Field(discriminator="type")]


class ComputeSpec(schema.LayerSpecBase):
    mac: Literal[macs.mac_names()]  # type: ignore[valid-type]
    weights: WeightSpec
    bias: schema.Key | None = None
    mask: schema.Key | None = None
    activation: ActivationSpec = NoActivationSpec(type="none")
    pe: schema.Dim | None = None
    simd: schema.Dim | None = None
    ram_style: Literal["block", "distributed", "logic"] | None = None
    tree_depth: schema.TreeDepth | None = None


# -- helpers ---------------------------------------------------------------------------------------
def describe_dtype(dt: DType) -> str:
    if dt.encoding == "bipolar":
        return "{-1, +1}"
    if dt.encoding == "ternary":
        return "{-1, 0, +1}"
    if dt.encoding == "onehot":
        return f"{{0{', ±' if dt.signed else ', '}2^e for 0 <= e < {dt.bits}}}"
    return f"[{dt.min}, {dt.max}] ({dt})"


def frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.flags.writeable = False
    return a


def check_shape(field: str, a: np.ndarray, shape: tuple, what: str):
    if a.shape != tuple(shape):
        raise NetworkError(field, f"expected shape {tuple(shape)} ({what}), found {a.shape}")


def check_values(field: str, a: np.ndarray, dt: DType):
    bad = ~dt.contains(a)
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), a.shape)
        raise NetworkError(field, f"expected values in {describe_dtype(dt)}, found {int(a[idx])} "
                                  f"at index {list(map(int, idx))}")


def out_dtype_for(field: str, lo: int, hi: int, what: str, hint: str = "") -> DType:
    """The uint or int type of an output range, which must fit the widest element type."""
    width, _ = bits_for_range(lo, hi)
    if width > MAX_OUT_BITS:
        raise NetworkError(field, f"{what} [{lo}, {hi}] needs {width} bits, more than the "
                                  f"{MAX_OUT_BITS} an element can have{hint}")
    return DType.for_range(lo, hi)


def build_activation(path: str, spec, arrays, oc_full: int, keep, amin, amax):
    p = f"{path}.activation"
    if isinstance(spec, NoActivationSpec):
        return NoActivation(out_dtype_for(p, int(amin.min()), int(amax.max()), "the accumulator range",
                                          "; add a requant or multithreshold activation"))
    if isinstance(spec, MultiThresholdSpec):
        return _multithreshold(p, spec, arrays, oc_full, keep)
    return _requant(p, spec, arrays, oc_full, keep, amin, amax)


def _multithreshold(p, spec, arrays, oc_full, keep):
    f = f"{p}.thresholds"
    t = arrays.get(f, spec.thresholds)
    if t.ndim == 1:
        t = t.reshape(1, -1)
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
        out_dtype_for(f"{p}.levels", min(spec.levels), max(spec.levels), "the range of the levels")
        levels = np.array(spec.levels, dtype=np.int64)
        if len(levels) != n + 1:
            raise NetworkError(f"{p}.levels", f"expected {n + 1} levels for {n} thresholds, "
                                              f"found {len(levels)}")
        if (np.diff(levels) < 0).any():
            raise NetworkError(f"{p}.levels", "levels must be non-decreasing")
    else:
        out_dtype_for(f"{p}.offset", spec.offset, spec.offset + n, "the output range")
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
    return MultiThreshold(frozen(t), frozen(levels), out)


def _requant(p, spec, arrays, oc_full, keep, amin, amax):
    if isinstance(spec.multiplier, int):
        m = np.full(oc_full, spec.multiplier, dtype=np.int64)
    else:
        f = f"{p}.multiplier"
        m = arrays.get(f, spec.multiplier)
        if m.ndim == 0:
            m = np.full(oc_full, int(m), dtype=np.int64)
        check_shape(f, m, (oc_full,), "one multiplier per output channel")
    if keep is not None:
        m = m[keep]
    lo, hi = spec.clip
    if lo > hi:
        raise NetworkError(f"{p}.clip", f"lower bound {lo} is above upper bound {hi}")
    out = out_dtype_for(f"{p}.clip", lo, hi, "the output range")
    mmax = int(np.abs(m).max())
    amag = max(abs(int(amin.min())), abs(int(amax.max())))
    if mmax and (mmax * amag).bit_length() > MAX_ACC_BITS:
        raise NetworkError(f"{p}.multiplier", f"accumulator × multiplier needs "
                                              f"{(mmax * amag).bit_length() + 1} bits, more than 63")
    return Requant(frozen(m), spec.shift, spec.rounding, (lo, hi), out)


def activate(act, acc: np.ndarray) -> np.ndarray:
    """The golden model of an activation on accumulators (N, C, ...) with channels on axis 1."""
    extra = acc.ndim - 2
    if isinstance(act, MultiThreshold):
        t = act.thresholds  # (C or 1, T)
        tt = t.reshape(t.shape[0], *([1] * extra), t.shape[1])
        count = (acc[..., None] >= tt[None]).sum(axis=-1)
        return act.levels[count]
    if isinstance(act, Requant):
        from sim.golden import round_shift

        m = act.multiplier.reshape(-1, *([1] * extra))
        return np.clip(round_shift(acc * m, act.shift, act.rounding), *act.clip)
    return acc


def check_folding(path: str, field: str, v: int, mh: int, mw: int, *, pads: bool = False):
    """A PE must divide the output channels (``mh``), a SIMD the dot-product length (``mw``),
    unless the layer pads its folding (``pads``: :func:`padded_unit`); either way it may be at
    most twice that number."""
    n = mh if field == "pe" else mw
    what = "output channels" if field == "pe" else "inputs per dot product"
    if n % v and not pads:
        raise NetworkError(f"{path}.{field}", f"{v} does not divide the {n} {what}")
    if v > 2 * n:   # padding beyond the layer's own size is only waste
        raise NetworkError(f"{path}.{field}", f"expected at most {2 * n} (twice the {n} {what}), found {v}")


def fold_padding(n: int, v: int) -> int:
    """Elements a fold of ``v`` adds to ``n`` (0 when ``v`` divides ``n``)."""
    return -n % v


def padded_unit(node, pe: int, simd: int, matrix: np.ndarray):
    """A compute layer for a matrix-vector unit folded by a PE and SIMD that need not divide
    its matrix: ``(node, matrix)``, both padded to multiples of PE rows and SIMD columns.

    Padding columns hold the weight of code 0 and meet inputs of code 0 (what
    :class:`hw.pad.VectorPad` sends); their constant contribution ``C`` to every dot product is
    taken off the bias, so the accumulators end on the layer's own values (partial sums wrap
    modulo the accumulator width, the final value fits). Padding rows are that weight too, with
    the activation of the last channel; :class:`hw.pad.VectorTrim` drops their outputs. A layer
    that PE and SIMD divide comes back unchanged."""
    import dataclasses

    mh, mw = matrix.shape
    ph, pw = fold_padding(mh, pe), fold_padding(mw, simd)
    if not ph and not pw:
        return node, matrix
    w0 = int(node.w_dtype.decode(np.zeros(1, dtype=np.int64))[0])
    x0 = int(node.in_dtype.decode(np.zeros(1, dtype=np.int64))[0])
    m = np.full((mh + ph, mw + pw), w0, dtype=np.int64)
    m[:mh, :mw] = matrix
    c = int(macs.dot(node.mac, np.full((1, pw), x0), np.full((1, pw), w0), shift=node.w_shift)[0, 0]) if pw else 0
    bias = np.zeros(mh, dtype=np.int64) if node.bias is None else np.asarray(node.bias, dtype=np.int64)
    bias = np.concatenate([bias, np.repeat(bias[-1:], ph)]) - c

    def rows(a):
        a = np.asarray(a)
        return a if a.shape[0] == 1 else np.concatenate([a, np.repeat(a[-1:], ph, axis=0)])

    act = node.activation
    if isinstance(act, MultiThreshold):
        act = dataclasses.replace(act, thresholds=rows(act.thresholds))
    elif isinstance(act, Requant):
        act = dataclasses.replace(act, multiplier=rows(act.multiplier))
    padded = dataclasses.replace(node, weights=m, bias=bias if (c or node.bias is not None) else None,
                                 activation=act, acc_lo=rows(node.acc_lo), acc_hi=rows(node.acc_hi))
    return padded, m


def mvu_for(layer, *, pe=None, simd=None, matrix=None, ram_style=None, **kwargs):
    """A :class:`hw.mvu.MVU` for a compute layer (``pe``, ``simd``, ``ram_style`` default to
    the layer's own, then 1, 1, None; ``matrix`` replaces ``layer.matrix``, e.g. with its
    columns in streaming order). Other keywords go to the MVU."""
    from hw.mvu import MVU

    return MVU(weights=layer.matrix if matrix is None else matrix, mac=layer.mac,
               w_dtype=layer.w_dtype, w_shift=layer.w_shift, in_dtype=layer.in_dtype,
               bias=layer.bias, activation=layer.activation,
               acc_range=(int(layer.acc_lo.min()), int(layer.acc_hi.max())),
               pe=pe or layer.pe or 1, simd=simd or layer.simd or 1,
               ram_style=ram_style if ram_style is not None else layer.ram_style, **kwargs)


def mvu_area_params(block, *, unit: str = "mvu") -> dict:
    """The area model's parameters of a matrix-vector unit (:func:`gen.area.mvu_params`), or
    with ``unit="vvu"`` of a vector-vector unit (:class:`hw.vvu.VVU`, which has the same
    parameters)."""
    from .. import area

    act = block.activation
    kind = ("threshold" if isinstance(act, MultiThreshold) else
            "requant" if isinstance(act, Requant) else "none")
    params = area.mvu_params(kind=block.mac, w_dtype=block.w_dtype, a_dtype=block.in_dtype,
                           pe=block.pe, simd=block.simd, mh=block.mh, mw=block.mw,
                           acc_lo=block.acc_range[0], acc_hi=block.acc_range[1],
                           thresholds=act.num_thresholds if kind == "threshold" else 0,
                           activation=kind, ram_style=block.ram_style, depth=block.depth,
                           w_shift=block.w_shift, out_bits=block.out_dtype.code_width,
                           w_live_bits=area.live_bits(block.weight_words(),
                                                      block.pe * block.simd * block.w_dtype.code_width),
                           block=unit)
    if block.weight_register != 1:   # (the key only where it is not the usual one register)
        params["weight_register"] = block.weight_register
    if kind == "requant":   # the multiplier's width (the clock model's requantization path)
        m = [int(v) for v in np.asarray(act.multiplier).reshape(-1)]
        params["mult_bits"] = bits_for_range(min(min(m), 0), max(max(m), 0))[0] + 1
    return params


# -- the op ----------------------------------------------------------------------------------------
class ComputeOp(LayerOp):
    """Base of dense and conv2d: loading of weights, bias, mask and activation; the golden
    dot product and activation; the MVU and its input FIFO; manifest and check rows."""

    foldable = True
    takes_masked_input = True
    #: PE and SIMD need not divide the layer: :meth:`simd_input` pads the input vectors,
    #: :meth:`mvu_stage` the unit, and trims its outputs.
    pads_folding = True

    # geometry, by the subclasses -------------------------------------------------------------
    def _weights_and_shape(self, spec, ctx, w):
        """Check the weight array's shape against the input; ``(out shape without channels,
        extra node fields)``."""
        raise NotImplementedError

    def _drop_input_channels(self, w, keep, full_shape):
        raise NotImplementedError

    def _pad_value(self, spec, ctx) -> dict:
        return {}

    def _node_extra(self, spec, ctx, extra) -> dict:
        """More fields of the node, from its geometry ``extra`` and its context."""
        return {}

    def build(self, spec, ctx):
        path, inp = ctx.path, ctx.input
        dt, rng = inp.dtype, inp.range
        wdt = schema.dtype_of(f"{path}.weights", spec.weights)
        why = macs.check_types(spec.mac, wdt, dt)
        if why is not None:
            field, msg = why
            raise NetworkError(f"{path}.weights.encoding" if field == "weights" else f"{path}.mac", msg)
        if spec.weights.shift and not macs.get_mac(spec.mac).weight_shift:
            raise NetworkError(f"{path}.weights.shift", "only adder layers take a weight shift")
        wf = f"{path}.weights"
        w = ctx.arrays.get(wf, spec.weights.key)
        spatial, extra = self._weights_and_shape(spec, ctx, w)
        oc_full = w.shape[0]
        check_values(wf, w, wdt)
        if inp.keep is not None:  # drop the input channels that the previous layer's mask removed
            w = self._drop_input_channels(w, inp.keep, inp.full_shape)
        bias = None
        if spec.bias is not None:
            bias = ctx.arrays.get(f"{path}.bias", spec.bias)
            check_shape(f"{path}.bias", bias, (oc_full,), "one per output channel")
            if np.abs(bias).max() > MAX_ABS_BIAS:
                raise NetworkError(f"{path}.bias", f"bias magnitude above 2^40: {int(np.abs(bias).max())}")
        keep = None
        if spec.mask is not None:
            mf = f"{path}.mask"
            mask = ctx.arrays.get(mf, spec.mask, allow_bool=True)
            check_shape(mf, mask, (oc_full,), "one per output channel")
            if not np.isin(mask, (0, 1)).all():
                raise NetworkError(mf, "expected values in {0, 1}")
            if not mask.any():
                raise NetworkError(mf, "the mask removes every output channel")
            if not ctx.mask_allowed:
                raise NetworkError(mf, "a mask needs a dense or conv2d layer after it (it would change "
                                       "the network's outputs)")
            keep = np.flatnonzero(mask)
            w = w[keep]
            if bias is not None:
                bias = bias[keep]
        w = frozen(w)
        bias = None if bias is None else frozen(bias)
        oc = w.shape[0]
        extra.update(self._pad_value(spec, ctx))
        extra.update(self._node_extra(spec, ctx, extra))
        out_shape = (oc, *spatial)
        amin, amax = macs.acc_bounds(spec.mac, w.reshape(oc, -1), rng.lo, rng.hi, spec.weights.shift, bias)
        need = max(int(np.abs(amin).max()), int(np.abs(amax).max())).bit_length() + 1
        if need > MAX_ACC_BITS:
            raise NetworkError(wf, f"the accumulator would need {need} bits, more than {MAX_ACC_BITS}")
        act = build_activation(path, spec.activation, ctx.arrays, oc_full, keep, amin, amax)
        if isinstance(act, Requant):
            out_range = ValueRange(*act.clip)
        elif isinstance(act, MultiThreshold):
            out_range = ValueRange(int(act.levels[0]), int(act.levels[-1]))
        else:
            out_range = ValueRange(int(amin.min()), int(amax.max()))
        for fld, v in (("pe", spec.pe), ("simd", spec.simd)):
            if v is not None:
                check_folding(path, fld, v, oc, w.reshape(oc, -1).shape[1], pads=self.pads_folding)
        node = self.node(
            name=ctx.name, mac=spec.mac, weights=w, w_dtype=wdt, w_shift=spec.weights.shift, bias=bias,
            activation=act, in_shape=tuple(inp.shape), out_shape=out_shape, in_dtype=dt, in_range=rng,
            acc_lo=frozen(amin), acc_hi=frozen(amax), out_range=out_range,
            kept_channels=None if keep is None else tuple(int(k) for k in keep),
            pe=spec.pe, simd=spec.simd, ram_style=spec.ram_style, tree_depth=spec.tree_depth, **extra)
        return node, TensorInfo(out_shape, node.out_dtype, out_range, oc_full, keep)

    def check_size(self, node, path):
        from ..bounds import check_channels

        check_channels(path, node.weights.shape[0])

    # golden ------------------------------------------------------------------------------------
    @staticmethod
    def bound(node) -> int:
        amag = max(abs(node.in_range.lo), abs(node.in_range.hi))
        return amag * int(np.abs(node.matrix).sum(axis=1).max())

    def accumulate(self, node, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def golden(self, node, xs):
        acc = self.accumulate(node, xs[0])
        if node.bias is not None:
            acc = acc + node.bias.reshape(-1, *([1] * (acc.ndim - 2)))
        extra = acc.ndim - 2
        lo = node.acc_lo.reshape(-1, *([1] * extra))
        hi = node.acc_hi.reshape(-1, *([1] * extra))
        if ((acc < lo) | (acc > hi)).any():  # pragma: no cover - a width-inference bug
            raise AssertionError(f"{node.name}: accumulator outside its inferred range {node.acc_range}")
        return acc, activate(node.activation, acc)

    # hardware ----------------------------------------------------------------------------------
    def hw_matrix(self, node) -> np.ndarray:
        """The weight matrix in the order the MVU's input stream delivers its columns."""
        return node.matrix

    def vectors(self, node) -> int:
        """Input vectors (dot products per output channel) per frame."""
        return 1

    def mvu_stage(self, node, lp, dt, hw) -> StageBuild:
        """The MVU, with a FIFO of one vector in front of it when it has several channel folds,
        and the trim of its padding outputs when PE does not divide the output channels."""
        unit, matrix = padded_unit(node, lp.pe, lp.simd, self.hw_matrix(node))
        nf, sf = unit.mh // lp.pe, unit.mw // lp.simd
        in_fifo_depth = None
        if nf > 1:
            # The MVU takes a vector's beats only during its first channel fold and reads them
            # back from its input buffer in the other folds. A FIFO of one vector at its input
            # width lets the producer run on meanwhile (it delivers less than one vector in
            # those folds) and serves the next first fold at one beat per cycle.
            in_fifo_depth = sf + 2
            hw.fifo("ififo", width=lp.simd * dt.code_width, depth=in_fifo_depth)
        mvu = hw.mvu(unit, pe=lp.pe, simd=lp.simd, matrix=matrix, tree_depth=lp.tree_depth)
        out_elems, out_beats = lp.pe, self.vectors(node) * nf
        if unit.mh != node.mh:   # one beat of the MH real outputs per vector
            hw.trim(node.out_dtype, lp.pe, ratio=nf, keep=node.mh)
            out_elems, out_beats = node.mh, self.vectors(node)
        return StageBuild(
            out_elems=out_elems, out_dtype=node.out_dtype, out_beats=out_beats,
            fifo_depth=min(FIFO_MAX_DEPTH, max(4, 2 * nf)), latency=mvu.latency,
            acc_width=mvu.acc_width, weight_bits=unit.mh * unit.mw * node.w_dtype.code_width,
            in_fifo_depth=in_fifo_depth)

    def simd_input(self, node, simd: int, k: int, dt, hw):
        """Bring the stream of input vectors from ``k`` elements per beat to SIMD; when SIMD does
        not divide the vector, through beats of a size that divides both and a
        :class:`hw.pad.PadGather` that completes each vector's last beat with zero codes."""
        if not fold_padding(node.mw, simd):
            hw.dwc(dt, k, simd)
            return
        g = math.gcd(node.mw, simd)
        hw.dwc(dt, k, g)
        hw.pad_gather(dt, g, ratio=simd // g, parts=node.mw // g)

    def simd_parts(self, node, simd: int, k: int, name: str = "dwc") -> list:
        """Cycles per frame of :meth:`simd_input`."""
        from .base import dwc_cycles

        v = self.vectors(node)
        if not fold_padding(node.mw, simd):
            return [(name, dwc_cycles(v * node.mw, k, simd))]
        g = math.gcd(node.mw, simd)
        return [(name, dwc_cycles(v * node.mw, k, g)), ("pad", v * node.mw // g)]

    def simd_timing(self, node, simd: int, k: int, t):
        """Beats of :meth:`simd_input` (frame 0)."""
        from hw.pad import pad_gather_counts

        from .. import cycles as cm

        if not fold_padding(node.mw, simd):
            return cm.dwc_timing(t, k, simd)
        g = math.gcd(node.mw, simd)
        return cm.gather_timing(cm.dwc_timing(t, k, g), pad_gather_counts(node.mw // g, simd // g))

    def mvu_parts(self, node, pe: int, simd: int) -> tuple[list, int]:
        """``(parts, out_elems)``: the cycles per frame of the MVU and, when PE does not divide
        the output channels, of the trim of its padding outputs."""
        v = self.vectors(node)
        nf, sf = -(-node.mh // pe), -(-node.mw // simd)
        parts = [("mvu", v * nf * sf)]
        if not fold_padding(node.mh, pe):
            return parts, pe
        return parts + [("trim", v * nf)], node.mh

    def mvu_timing(self, node, lp, stage, t):
        from .. import cycles as cm

        nf, sf = -(-node.mh // lp.pe), -(-node.mw // lp.simd)
        tail = stage.latency - (sf - 1)        # MVU.latency = SF - 1 + tail
        if stage.in_fifo_depth:                # a FIFO in front of a folded MVU
            t = cm.fifo_timing(t)
        t = cm.mvu_timing(cm.serial(t), nf=nf, sf=sf, vectors=self.vectors(node), tail=tail)
        if fold_padding(node.mh, lp.pe):
            t = cm.gather_timing(t, [nf])
        return t

    # reports -----------------------------------------------------------------------------------
    def manifest(self, node, lp, stage) -> dict:
        return {"mac": node.mac, "w_dtype": str(node.w_dtype), "pe": lp.pe, "simd": lp.simd,
                "lanes": lp.lanes, "fold_source": lp.source, "mh": node.mh, "mw": node.mw,
                "acc_width": stage.acc_width, "weight_bits": stage.weight_bits,
                "activation": type(node.activation).__name__}

    def describe(self, node) -> dict:
        wb = f"{node.w_dtype}" + (f"<<{node.w_shift}" if node.w_shift else "")
        return {"mac": node.mac, "weights": wb, "macs": f"{node.macs:,}", "acc_width": str(node.acc_width),
                "acc_range": str(node.acc_range), "out_width": str(node.out_width)}

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        from sim.randnet import random_values

        i = index
        key = f"w{i}"
        arrays[key] = random_values(rng, wspec, node.weights.shape).astype(np.int64)
        d = {"type": self.type, "mac": kind, "name": node.name, "weights": {"key": key, **wspec}}
        # the same design: folding, weight memory style and reduction-tree depth
        for key in ("pe", "simd", "ram_style", "tree_depth"):
            if getattr(node, key, None) is not None:
                d[key] = getattr(node, key)
        d.update(self.variant_geometry(node, aspec))
        d["activation"] = {"type": "none"} if last_compute else activation(node, f"t{i}")
        return d

    def variant_geometry(self, node, aspec) -> dict:
        return {}
