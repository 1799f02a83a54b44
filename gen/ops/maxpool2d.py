"""The ``maxpool2d`` layer: the maximum over every window of a C×H×W input (no padding).

In hardware: a width converter to whole pixels and :class:`hw.pool.MaxPool2d` (a sliding window
and an element-wise max).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hw.dtypes import DType

from .. import schema
from ..errors import NetworkError
from ..ir import ValueRange
from .base import LayerOp, StageBuild, TensorInfo, dwc_cycles, pair

__all__ = ["MaxPool2d", "MaxPool2dSpec", "MaxPool2dOp"]

FIFO_MAX_DEPTH = 512


class MaxPool2dSpec(schema.LayerSpecBase):
    type: Literal["maxpool2d"]
    kernel: schema.Pair
    stride: schema.Pair | None = None


@dataclass(frozen=True)
class MaxPool2d:
    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: DType
    out_range: ValueRange
    inputs: tuple[str, ...] = ()
    kind: str = field(default="maxpool2d", init=False)
    macs: int = field(default=0, init=False)

    @property
    def out_dtype(self) -> DType:
        return self.in_dtype


class MaxPool2dOp(LayerOp):
    type = "maxpool2d"
    spec = MaxPool2dSpec
    node = MaxPool2d
    passes_channels = True

    def build(self, spec, ctx):
        inp, path = ctx.input, ctx.path
        shape = inp.shape
        if len(shape) != 3:
            raise NetworkError(path, f"maxpool2d needs a C×H×W input, found shape {tuple(shape)}")
        k = pair(spec.kernel)
        s = pair(spec.stride) if spec.stride is not None else k
        if shape[1] < k[0] or shape[2] < k[1]:
            raise NetworkError(f"{path}.kernel", f"kernel {k} is larger than the input {shape[1]}×{shape[2]}")
        out = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
        node = MaxPool2d(ctx.name, k, s, tuple(shape), out, inp.dtype, inp.range)
        return node, TensorInfo(out, inp.dtype, inp.range, inp.full_channels, inp.keep)

    def golden(self, node, xs):
        win = np.lib.stride_tricks.sliding_window_view(xs[0], node.kernel, axis=(2, 3))
        x = win[:, :, ::node.stride[0], ::node.stride[1]].max(axis=(4, 5))
        return None, np.ascontiguousarray(x)

    def parts(self, node, k_in, pe=None, simd=None):
        from hw.swu import swu_cycles

        c, h, w = node.in_shape
        pool = swu_cycles(node.in_shape, node.kernel, node.stride)
        return [("dwc", dwc_cycles(c * h * w, k_in, c)), ("swu-in", h * w), ("pool", pool)], c

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.pool import MaxPool2d as MaxPoolUnit

        from .. import area

        c = node.in_shape[0]
        hw.dwc(dt_in, k_in, c)
        unit = MaxPoolUnit(dtype=dt_in, in_shape=node.in_shape, kernel=node.kernel, stride=node.stride)
        hw.add("pool", unit, area.pool_params(unit))
        return StageBuild(c, node.out_dtype, node.out_shape[1] * node.out_shape[2],
                          fifo_depth=min(FIFO_MAX_DEPTH, max(4, 2 * node.out_shape[2])))

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        c = node.in_shape[0]
        t = cm.dwc_timing(t, k_in, c)
        t = cm.window_timing(t, in_shape=node.in_shape, kernel=node.kernel, stride=node.stride,
                             padding=(0, 0))
        return cm.groups_timing(t, node.kernel[0] * node.kernel[1])

    def manifest(self, node, lp, stage):
        return {"kernel": list(node.kernel), "stride": list(node.stride)}

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        return {"type": "maxpool2d", "name": node.name, "kernel": list(node.kernel),
                "stride": list(node.stride)}
