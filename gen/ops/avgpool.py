"""The average-pooling layers, as integer sums followed by an activation:

* ``avgpool2d`` (kernel, stride, no padding): the sum over every window of a C×H×W input;
* ``globalavgpool``: the sum over all pixels of each channel, a C×1×1 output.

The sum is exact (its range is the window size times the input range); the activation after
it divides as the source model does: a requantization (``multiplier / 2^shift`` with its
rounding, e.g. Brevitas' TruncAvgPool: sum then drop bits; ONNX AveragePool then Quant: a
rounding requant) or thresholds (any division and rounding, exactly).

In hardware: ``avgpool2d`` is a width converter to whole pixels, a sliding window
(:class:`hw.swu.SlidingWindow`) and :class:`hw.avgpool.WindowSum`; ``globalavgpool`` is
:class:`hw.avgpool.ChannelSum` (a running accumulator per channel) at the producer's elements
per beat. Both end in the activation unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hw.dtypes import DType

from .. import schema
from ..errors import NetworkError
from ..ir import Activation, ValueRange
from .base import LayerOp, StageBuild, TensorInfo, dwc_cycles, pair
from .sums import ActivationSpec, NoActivationSpec, activate, activation_stage, sum_activation

__all__ = ["AvgPool2d", "AvgPool2dSpec", "AvgPool2dOp", "GlobalAvgPool", "GlobalAvgPoolSpec",
           "GlobalAvgPoolOp"]

FIFO_MAX_DEPTH = 512


class AvgPool2dSpec(schema.LayerSpecBase):
    type: Literal["avgpool2d"]
    kernel: schema.Pair
    stride: schema.Pair | None = None
    activation: ActivationSpec = NoActivationSpec(type="none")


class GlobalAvgPoolSpec(schema.LayerSpecBase):
    type: Literal["globalavgpool"]
    activation: ActivationSpec = NoActivationSpec(type="none")


@dataclass(frozen=True, eq=False)
class _Pool:
    name: str
    activation: Activation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: DType
    in_range: ValueRange
    acc_lo: int
    acc_hi: int
    out_range: ValueRange

    @property
    def out_dtype(self) -> DType:
        return self.activation.out_dtype

    @property
    def acc_range(self) -> ValueRange:
        return ValueRange(self.acc_lo, self.acc_hi)


@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool):
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    inputs: tuple[str, ...] = ()
    kind: str = field(default="avgpool2d", init=False)
    macs: int = field(default=0, init=False)


@dataclass(frozen=True, eq=False)
class GlobalAvgPool(_Pool):
    inputs: tuple[str, ...] = ()
    kind: str = field(default="globalavgpool", init=False)
    macs: int = field(default=0, init=False)


def _image(path, kind, shape):
    if len(shape) != 3:
        raise NetworkError(path, f"{kind} needs a C×H×W input, found shape {tuple(shape)}")


def _variant_activation(node, count, index, aspec, rng, arrays) -> dict:
    from .sums import variant_activation, variant_range

    lo, hi = variant_range(aspec, count)
    return variant_activation(rng, aspec, lo, hi, node.in_shape[0], arrays, f"t{index}")


def _describe(node) -> dict:
    return {"acc_width": str(node.acc_range.width), "acc_range": str(node.acc_range),
            "out_width": str(node.out_dtype.code_width)}


class AvgPool2dOp(LayerOp):
    type = "avgpool2d"
    spec = AvgPool2dSpec
    node = AvgPool2d

    def build(self, spec, ctx):
        inp, path = ctx.input, ctx.path
        shape = inp.shape
        _image(path, "avgpool2d", shape)
        k = pair(spec.kernel)
        s = pair(spec.stride) if spec.stride is not None else k
        if shape[1] < k[0] or shape[2] < k[1]:
            raise NetworkError(f"{path}.kernel", f"kernel {k} is larger than the input {shape[1]}×{shape[2]}")
        out = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
        n = k[0] * k[1]
        sa = sum_activation(path, spec.activation, ctx.arrays, shape[0], n * inp.range.lo, n * inp.range.hi)
        node = AvgPool2d(ctx.name, sa.act, tuple(shape), out, inp.dtype, inp.range, sa.acc_lo, sa.acc_hi,
                         sa.out_range, kernel=k, stride=s)
        return node, TensorInfo(out, node.out_dtype, sa.out_range, shape[0])

    def golden(self, node, xs):
        win = np.lib.stride_tricks.sliding_window_view(xs[0], node.kernel, axis=(2, 3))
        acc = np.ascontiguousarray(win[:, :, ::node.stride[0], ::node.stride[1]].sum(axis=(4, 5)))
        return acc, activate(node.activation, acc)

    def parts(self, node, k_in, pe=None, simd=None):
        c, h, w = node.in_shape
        _, oh, ow = node.out_shape
        kh, kw = node.kernel
        return [("dwc", dwc_cycles(c * h * w, k_in, c)), ("swu-in", h * w), ("pool", oh * ow * kh * kw)], c

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.avgpool import WindowSum
        from hw.swu import SlidingWindow

        from .. import area

        c = node.in_shape[0]
        hw.dwc(dt_in, k_in, c)
        swu = SlidingWindow(width=dt_in.code_width, in_shape=node.in_shape, kernel=node.kernel,
                            stride=node.stride)
        hw.add("swu", swu, area.swu_params(swu))
        ws = WindowSum(dtype=dt_in, elems=c, count=node.kernel[0] * node.kernel[1])
        hw.add("sum", ws, lambda: area.sum_params(ws))
        act_latency = activation_stage(hw, node.activation, channels=c, pe=c, acc_range=ws.acc_range)
        return StageBuild(c, node.out_dtype, node.out_shape[1] * node.out_shape[2],
                          fifo_depth=min(FIFO_MAX_DEPTH, max(4, 2 * node.out_shape[2])),
                          latency=act_latency, acc_width=ws.acc_width)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        c = node.in_shape[0]
        t = cm.dwc_timing(t, k_in, c)
        t = cm.window_timing(t, in_shape=node.in_shape, kernel=node.kernel, stride=node.stride,
                             padding=(0, 0))
        t = cm.groups_timing(t, node.kernel[0] * node.kernel[1])
        return cm.serial(t) + stage.latency

    def manifest(self, node, lp, stage):
        return {"kernel": list(node.kernel), "stride": list(node.stride), "acc_width": stage.acc_width,
                "activation": type(node.activation).__name__}

    def describe(self, node):
        return _describe(node)

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        return {"type": "avgpool2d", "name": node.name, "kernel": list(node.kernel),
                "stride": list(node.stride),
                "activation": _variant_activation(node, node.kernel[0] * node.kernel[1], index, aspec, rng,
                                                  arrays)}


class GlobalAvgPoolOp(LayerOp):
    type = "globalavgpool"
    spec = GlobalAvgPoolSpec
    node = GlobalAvgPool

    def build(self, spec, ctx):
        inp, path = ctx.input, ctx.path
        shape = inp.shape
        _image(path, "globalavgpool", shape)
        n = shape[1] * shape[2]
        sa = sum_activation(path, spec.activation, ctx.arrays, shape[0], n * inp.range.lo, n * inp.range.hi)
        out = (shape[0], 1, 1)
        node = GlobalAvgPool(ctx.name, sa.act, tuple(shape), out, inp.dtype, inp.range, sa.acc_lo,
                             sa.acc_hi, sa.out_range)
        return node, TensorInfo(out, node.out_dtype, sa.out_range, shape[0])

    def golden(self, node, xs):
        acc = xs[0].sum(axis=(2, 3), keepdims=True)
        return acc, activate(node.activation, acc)

    def parts(self, node, k_in, pe=None, simd=None):
        return [("sum", math.prod(node.in_shape) // k_in)], k_in

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.avgpool import ChannelSum

        from .. import area

        c, h, w = node.in_shape
        cs = ChannelSum(dtype=dt_in, elems=k_in, channels=c, pixels=h * w)
        hw.add("sum", cs, lambda: area.sum_params(cs))
        act_latency = activation_stage(hw, node.activation, channels=c, pe=k_in, acc_range=cs.acc_range)
        return StageBuild(k_in, node.out_dtype, c // k_in, latency=cs.latency + act_latency,
                          acc_width=cs.acc_width)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        c, h, w = node.in_shape
        folds = c // k_in
        a = cm.serial(t)
        return a[(h * w - 1) * folds:] + stage.latency

    def manifest(self, node, lp, stage):
        return {"acc_width": stage.acc_width, "activation": type(node.activation).__name__}

    def describe(self, node):
        return _describe(node)

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        n = node.in_shape[1] * node.in_shape[2]
        return {"type": "globalavgpool", "name": node.name,
                "activation": _variant_activation(node, n, index, aspec, rng, arrays)}
