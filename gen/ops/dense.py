"""The ``dense`` layer: a matrix-vector product of MAC kind ``mac`` over the flattened input.

In hardware: a width converter to SIMD elements per beat, then a matrix-vector unit whose
columns are permuted from the golden model's CHW flatten order to the HWC streaming order when
its input is an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import NetworkError
from ..ir import Compute
from .compute import ComputeOp, ComputeSpec

__all__ = ["Dense", "DenseSpec", "DenseOp", "hwc_columns"]


class DenseSpec(ComputeSpec):
    type: Literal["dense"]


@dataclass(frozen=True, eq=False)
class Dense(Compute):
    kind: str = field(default="dense", init=False)

    @property
    def macs(self) -> int:
        return self.mh * self.mw


def hwc_columns(matrix: np.ndarray, in_shape) -> np.ndarray:
    """A dense layer's matrix with its columns moved from CHW to HWC order."""
    c, h, w = in_shape
    return matrix.reshape(matrix.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(matrix.shape[0], -1)


class DenseOp(ComputeOp):
    type = "dense"
    spec = DenseSpec
    node = Dense

    def _weights_and_shape(self, spec, ctx, w):
        mw_full = math.prod(ctx.input.full_shape)
        if w.ndim != 2 or w.shape[1] != mw_full:
            raise NetworkError(f"{ctx.path}.weights", f"expected shape (MH, {mw_full}), found {w.shape}")
        return (), {}

    def _drop_input_channels(self, w, keep, full_shape):
        return w.reshape(w.shape[0], full_shape[0], -1)[:, keep].reshape(w.shape[0], -1)

    def accumulate(self, node, x):
        from .. import macs

        return macs.dot(node.mac, x.reshape(x.shape[0], -1), node.matrix, shift=node.w_shift,
                        bound=self.bound(node))

    def parts(self, node, k_in, pe=None, simd=None):
        mvu, out = self.mvu_parts(node, pe, simd)
        return [*self.simd_parts(node, simd, k_in), *mvu], out

    def input_elems(self, node, simd):
        # a SIMD that does not divide the inputs: beats of the pad's size (it divides them)
        return math.gcd(node.mw, simd) if simd else 1

    def hw_matrix(self, node):
        return hwc_columns(node.matrix, node.in_shape) if len(node.in_shape) == 3 else node.matrix

    def hardware(self, node, lp, k_in, dt_in, hw):
        self.simd_input(node, lp.simd, k_in, dt_in, hw)
        return self.mvu_stage(node, lp, dt_in, hw)

    def timing(self, node, lp, stage, t, k_in):
        return self.mvu_timing(node, lp, stage, self.simd_timing(node, lp.simd, k_in, t))
