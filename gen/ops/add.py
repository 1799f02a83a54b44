"""The ``add`` layer: the element-wise sum of two tensors of the same shape (a residual join).

The two inputs may be on different integer grids: each gets an integer multiplier,
``acc = m0·x0 + m1·x1``, and the activation after it (a requantization's multiplier and right
shift with its rounding, or thresholds) puts the sum on the output grid. The accumulator's
range is exact (from the inputs' value ranges), so nothing can overflow.

In hardware: the accelerator brings both inputs to the same elements per beat (width
converters) and puts a FIFO on the input that arrives early (the skip path of a residual
block, its depth from the cycle model: :func:`gen.cycles.join_fifo_depths`); then
:class:`hw.streams.AddJoin` takes the two streams in lock-step, and the activation unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from hw.dtypes import DType

from .. import schema
from ..errors import NetworkError
from ..ir import Activation, ValueRange
from .base import LayerOp, StageBuild, TensorInfo, dwc_cycles
from .sums import ActivationSpec, NoActivationSpec, activate, activation_stage, sum_activation

__all__ = ["Add", "AddSpec", "AddOp", "MAX_MULTIPLIER"]

MAX_MULTIPLIER = 1 << 16

Multiplier = Annotated[StrictInt, Field(ge=-MAX_MULTIPLIER, le=MAX_MULTIPLIER)]


class AddSpec(schema.LayerSpecBase):
    type: Literal["add"]
    multipliers: tuple[Multiplier, Multiplier] = (1, 1)
    activation: ActivationSpec = NoActivationSpec(type="none")


@dataclass(frozen=True, eq=False)
class Add:
    name: str
    multipliers: tuple[int, int]
    activation: Activation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtypes: tuple[DType, DType]
    in_ranges: tuple[ValueRange, ValueRange]
    acc_lo: int
    acc_hi: int
    out_range: ValueRange
    inputs: tuple[str, ...] = ()
    kind: str = field(default="add", init=False)
    macs: int = field(default=0, init=False)

    @property
    def in_dtype(self) -> DType:
        return self.in_dtypes[0]

    @property
    def out_dtype(self) -> DType:
        return self.activation.out_dtype

    @property
    def acc_range(self) -> ValueRange:
        return ValueRange(self.acc_lo, self.acc_hi)


def join_elems(ks) -> int:
    """Elements per beat at a join: the least common multiple of the inputs' (each divides the
    channels, so their multiple does; each input's width converter only gathers)."""
    return math.lcm(*ks)


class AddOp(LayerOp):
    type = "add"
    spec = AddSpec
    node = Add
    arity = 2

    def build(self, spec, ctx):
        path = ctx.path
        a, b = ctx.inputs
        if a.shape != b.shape:
            raise NetworkError(f"{path}.inputs", f"add needs inputs of the same shape, found "
                                                 f"{tuple(a.shape)} and {tuple(b.shape)}")
        m = tuple(int(v) for v in spec.multipliers)
        if 0 in m:
            raise NetworkError(f"{path}.multipliers", f"multipliers must not be 0, found {list(m)}")
        lo = hi = 0
        for mult, info in zip(m, ctx.inputs, strict=True):
            p, q = mult * info.range.lo, mult * info.range.hi
            lo, hi = lo + min(p, q), hi + max(p, q)
        channels = a.shape[0]
        s = sum_activation(path, spec.activation, ctx.arrays, channels, lo, hi)
        node = Add(ctx.name, m, s.act, tuple(a.shape), tuple(a.shape), (a.dtype, b.dtype),
                   (a.range, b.range), lo, hi, s.out_range)
        return node, TensorInfo(tuple(a.shape), node.out_dtype, s.out_range, channels)

    def golden(self, node, xs):
        acc = node.multipliers[0] * xs[0] + node.multipliers[1] * xs[1]
        if acc.min() < node.acc_lo or acc.max() > node.acc_hi:  # pragma: no cover
            raise AssertionError(f"{node.name}: sum outside its inferred range {node.acc_range}")
        return acc, activate(node.activation, acc)

    # -- folding and hardware ------------------------------------------------------------------
    def join_input_elems(self, node, ks) -> tuple[int, ...]:
        """Elements per beat each input is converted to before the join."""
        k = join_elems(ks)
        return (k, k)

    def parts(self, node, k_in, pe=None, simd=None):
        e = math.prod(node.in_shape)
        k = join_elems(k_in)
        return [("dwc0", dwc_cycles(e, k_in[0], k)), ("dwc1", dwc_cycles(e, k_in[1], k)),
                ("add", e // k)], k

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.streams import AddJoin

        from .. import area

        k = lp.out_elems
        join = AddJoin(dtypes=node.in_dtypes, multipliers=node.multipliers, elems=k)
        hw.join("add", join, lambda: area.add_params(join))
        act_latency = activation_stage(hw, node.activation, channels=node.in_shape[0], pe=k,
                                       acc_range=join.acc_range)
        return StageBuild(k, node.out_dtype, math.prod(node.in_shape) // k,
                          latency=join.latency + act_latency, acc_width=join.acc_width)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        return cm.join_timing(t, stage.latency)

    # -- reports -------------------------------------------------------------------------------
    def manifest(self, node, lp, stage):
        return {"multipliers": list(node.multipliers), "acc_width": stage.acc_width,
                "activation": type(node.activation).__name__,
                "join_fifo_depths": list(stage.join_fifo_depths)}

    def describe(self, node):
        return {"weights": f"×{node.multipliers[0]}, ×{node.multipliers[1]}",
                "acc_width": str(node.acc_range.width), "acc_range": str(node.acc_range),
                "out_width": str(node.out_dtype.code_width)}

    def variant(self, node, index, kind, wspec, aspec, rng, arrays, *, last_compute, activation):
        from .sums import variant_activation, variant_range

        lo, hi = variant_range(aspec, 2, node.multipliers)
        return {"type": "add", "name": node.name, "multipliers": list(node.multipliers),
                "activation": variant_activation(rng, aspec, lo, hi, node.in_shape[0], arrays, f"t{index}")}

