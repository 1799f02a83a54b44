"""The ``concat`` layer: two or more tensors joined along channels.

The inputs have the same spatial size (C×H×W images with the same H and W, or vectors, which
count as one pixel each) and the same element type, so that a pixel of the output is the first
input's pixel followed by the second's and so on, code for code.

In hardware: each input is converted to whole pixels per beat (its channels), and
:class:`hw.streams.ConcatJoin` joins the streams in lock-step, one pixel per beat (no latency).
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
    in_shapes: tuple[tuple[int, ...], ...]
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
    variadic = True

    def build(self, spec, ctx):
        path = ctx.path
        a = ctx.inputs[0]
        for b in ctx.inputs[1:]:
            if len(a.shape) != len(b.shape) or a.shape[1:] != b.shape[1:]:
                raise NetworkError(f"{path}.inputs", f"concat needs inputs of the same spatial size, found "
                                                     f"{tuple(a.shape)} and {tuple(b.shape)}")
            if a.dtype != b.dtype:
                raise NetworkError(f"{path}.inputs", f"concat needs inputs of the same element type, found "
                                                     f"{a.dtype} and {b.dtype}")
        out = (sum(x.shape[0] for x in ctx.inputs), *a.shape[1:])
        rng = ValueRange(min(x.range.lo for x in ctx.inputs), max(x.range.hi for x in ctx.inputs))
        node = Concat(ctx.name, tuple(tuple(x.shape) for x in ctx.inputs), out, a.dtype, rng)
        return node, TensorInfo(out, a.dtype, rng, out[0])

    def golden(self, node, xs):
        return None, np.concatenate(xs, axis=1)

    def join_input_elems(self, node, ks) -> tuple[int, ...]:
        return tuple(s[0] for s in node.in_shapes)

    def parts(self, node, k_in, pe=None, simd=None):
        p = node.pixels
        cs = [s[0] for s in node.in_shapes]
        return [*((f"dwc{j}", dwc_cycles(c * p, k, c)) for j, (c, k) in enumerate(zip(cs, k_in, strict=True))),
                ("concat", p)], sum(cs)

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
