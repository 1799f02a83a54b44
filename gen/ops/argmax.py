"""The ``argmax`` layer: the index of the largest element of the flattened input (the first
index wins ties); the last layer of a classifier.

In hardware: a width converter to a divisor of the channels and :class:`hw.argmax.Argmax`.
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

__all__ = ["Argmax", "ArgmaxSpec", "ArgmaxOp"]


class ArgmaxSpec(schema.LayerSpecBase):
    type: Literal["argmax"]


@dataclass(frozen=True)
class Argmax:
    """Index of the largest element (first index wins ties), over the flattened input."""

    name: str
    in_shape: tuple[int, ...]
    in_dtype: DType
    out_range: ValueRange
    out_shape: tuple[int, ...] = (1,)
    inputs: tuple[str, ...] = ()
    kind: str = field(default="argmax", init=False)
    macs: int = field(default=0, init=False)

    @property
    def out_dtype(self) -> DType:
        return DType.for_range(self.out_range.lo, self.out_range.hi)


class ArgmaxOp(LayerOp):
    type = "argmax"
    spec = ArgmaxSpec
    node = Argmax
    emits_index = True

    def build(self, spec, ctx):
        if not ctx.is_last:
            raise NetworkError(ctx.path, "argmax must be the last layer")
        inp = ctx.input
        n = math.prod(inp.shape)
        node = Argmax(ctx.name, tuple(inp.shape), inp.dtype, ValueRange(0, n - 1))
        return node, TensorInfo(node.out_shape, node.out_dtype, node.out_range, 1)

    def golden(self, node, xs):
        x = xs[0]
        return None, np.argmax(x.reshape(x.shape[0], -1), axis=1).astype(np.int64)[:, None]

    @staticmethod
    def elems(node, k_in: int) -> int:
        return math.gcd(k_in, node.in_shape[0])

    def parts(self, node, k_in, pe=None, simd=None):
        n = math.prod(node.in_shape)
        k = self.elems(node, k_in)
        return [("dwc", dwc_cycles(n, k_in, k)), ("argmax", n // k)], 1

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.argmax import Argmax as ArgmaxUnit

        from .. import area

        ka = self.elems(node, k_in)
        hw.dwc(dt_in, k_in, ka)
        unit = ArgmaxUnit(dtype=dt_in, elems=ka, in_shape=node.in_shape)
        hw.add("argmax", unit, area.argmax_params(unit))
        return StageBuild(1, unit.index_dtype, 1)

    def timing(self, node, lp, stage, t, k_in):
        from hw.argmax import argmax_tree_stages

        from .. import cycles as cm

        k = self.elems(node, k_in)
        t = cm.dwc_timing(t, k_in, k)
        return cm.groups_timing(cm.serial(t) + argmax_tree_stages(k), len(t))
