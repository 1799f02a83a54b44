"""The ``concat`` layer: two tensors joined along channels.

The inputs have the same spatial size (two C×H×W images with the same H and W, or two
vectors, which count as one pixel each) and the same element type, so that a pixel of the
output is the first input's pixel followed by the second's, code for code.

In hardware: each input is converted to whole pixels per beat (its channels), and
:class:`hw.streams.ConcatJoin` joins the two streams in lock-step, one pixel per beat (no
latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hw.dtypes import DType

from .. import schema
from ..errors import NetworkError
from ..ir import ValueRange
from .base import LayerOp, StageBuild, TensorInfo, dwc_cycles

__all__ = ["Concat", "ConcatSpec", "ConcatOp"]


class ConcatSpec(schema.LayerSpecBase):
    type: Literal["concat"]


@dataclass(frozen=True)
class Concat:
    name: str
    in_shapes: tuple[tuple[int, ...], tuple[int, ...]]
    out_shape: tuple[int, ...]
    in_dtype: DType
    out_range: ValueRange
    inputs: tuple[str, ...] = ()
    kind: str = field(default="concat", init=False)
    macs: int = field(default=0, init=False)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    @property
    def out_dtype(self) -> DType:
        return self.in_dtype

    @property
    def pixels(self) -> int:
        return math.prod(self.out_shape[1:])


class ConcatOp(LayerOp):
    type = "concat"
    spec = ConcatSpec
    node = Concat
    arity = 2

    def build(self, spec, ctx):
        path = ctx.path
        a, b = ctx.inputs
        if len(a.shape) != len(b.shape) or a.shape[1:] != b.shape[1:]:
            raise NetworkError(f"{path}.inputs", f"concat needs inputs of the same spatial size, found "
                                                 f"{tuple(a.shape)} and {tuple(b.shape)}")
        if a.dtype != b.dtype:
            raise NetworkError(f"{path}.inputs", f"concat needs inputs of the same element type, found "
                                                 f"{a.dtype} and {b.dtype}")
        out = (a.shape[0] + b.shape[0], *a.shape[1:])
        rng = ValueRange(min(a.range.lo, b.range.lo), max(a.range.hi, b.range.hi))
        node = Concat(ctx.name, (tuple(a.shape), tuple(b.shape)), out, a.dtype, rng)
        return node, TensorInfo(out, a.dtype, rng, out[0])

    def golden(self, node, xs):
        return None, np.concatenate(xs, axis=1)

    def join_input_elems(self, node, ks) -> tuple[int, ...]:
        return tuple(s[0] for s in node.in_shapes)

    def parts(self, node, k_in, pe=None, simd=None):
        c0, c1 = (s[0] for s in node.in_shapes)
        p = node.pixels
        return [("dwc0", dwc_cycles(c0 * p, k_in[0], c0)), ("dwc1", dwc_cycles(c1 * p, k_in[1], c1)),
                ("concat", p)], c0 + c1

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.streams import ConcatJoin

        from .. import area

        cw = node.in_dtype.code_width
        join = ConcatJoin(widths=tuple(s[0] * cw for s in node.in_shapes))
        hw.join("concat", join, lambda: area.concat_params(join))
        return StageBuild(node.out_shape[0], node.out_dtype, node.pixels, latency=0)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        return cm.join_timing(t, 0)

    def manifest(self, node, lp, stage):
        return {"join_fifo_depths": list(stage.join_fifo_depths)}

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        return {"type": "concat", "name": node.name}
