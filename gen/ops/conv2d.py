"""The ``conv2d`` layer: a dense layer over the sliding windows of a C×H×W input (kernel,
stride, padding with a stated padding value).

In hardware: a width converter to whole pixels, a sliding-window unit (:class:`hw.swu.SlidingWindow`),
a width converter to SIMD elements per beat, and a matrix-vector unit with the weights in
(kh, kw, c) window order. A pointwise convolution (1×1, stride 1, no padding) needs no window:
a width converter to SIMD elements per beat feeds the matrix-vector unit directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .. import schema
from ..errors import NetworkError
from ..ir import Compute
from .base import dwc_cycles, pair
from .compute import ComputeOp, ComputeSpec, describe_dtype

__all__ = ["Conv2d", "Conv2dSpec", "Conv2dOp", "conv_matrix", "im2col"]


class Conv2dSpec(ComputeSpec):
    type: Literal["conv2d"]
    kernel: schema.Pair
    stride: schema.Pair = 1
    padding: schema.NonNegPair = 0
    pad_value: schema.StrictInt | None = None


@dataclass(frozen=True, eq=False)
class Conv2d(Compute):
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pad_value: int = 0
    direct: bool = False   # a pointwise conv built without a sliding window (see Conv2dOp.pointwise)
    kind: str = field(default="conv2d", init=False)

    @property
    def macs(self) -> int:
        return self.mh * self.mw * self.out_shape[1] * self.out_shape[2]


def conv_matrix(layer: Conv2d) -> np.ndarray:
    """A convolution's weights as an (OC, kh·kw·C) matrix in window order."""
    return layer.weights.transpose(0, 2, 3, 1).reshape(layer.weights.shape[0], -1)


def im2col(x: np.ndarray, kernel, stride, padding, pad_value) -> np.ndarray:
    """(N, C, H, W) -> (N, OH, OW, C·KH·KW) windows, in the weights' (C, KH, KW) order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)


class Conv2dOp(ComputeOp):
    type = "conv2d"
    spec = Conv2dSpec
    node = Conv2d

    def _weights_and_shape(self, spec, ctx, w):
        path, shape = ctx.path, ctx.input.shape
        if len(shape) != 3:
            raise NetworkError(path, f"conv2d needs a C×H×W input, found shape {tuple(shape)}")
        kernel, stride, padding = pair(spec.kernel), pair(spec.stride), pair(spec.padding)
        if w.ndim != 4 or w.shape[1:] != (ctx.input.full_channels, *kernel):
            raise NetworkError(f"{path}.weights", f"expected shape (OC, {ctx.input.full_channels}, "
                                                  f"{kernel[0]}, {kernel[1]}) (OIHW), found {w.shape}")
        if shape[1] + 2 * padding[0] < kernel[0] or shape[2] + 2 * padding[1] < kernel[1]:
            raise NetworkError(f"{path}.kernel", f"kernel {kernel} is larger than the padded input "
                                                 f"{shape[1] + 2 * padding[0]}×{shape[2] + 2 * padding[1]}")
        oh = (shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
        ow = (shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
        return (oh, ow), {"kernel": kernel, "stride": stride, "padding": padding}

    def _drop_input_channels(self, w, keep, full_shape):
        return w[:, keep]

    def _pad_value(self, spec, ctx):
        dt = ctx.input.dtype
        if spec.pad_value is not None:
            if not dt.contains(spec.pad_value):
                raise NetworkError(f"{ctx.path}.pad_value", f"{spec.pad_value} is not a value of the "
                                                            f"input type {dt} ({describe_dtype(dt)})")
            return {"pad_value": spec.pad_value}
        if any(pair(spec.padding)) and not dt.contains(0):
            raise NetworkError(f"{ctx.path}.pad_value", f"required: 0 is not a value of the input type {dt}")
        return {"pad_value": 0}

    def check_size(self, node, path):
        from ..bounds import check_window

        super().check_size(node, path)
        check_window(path, node.in_shape, node.out_shape, node.kernel, node.padding)

    def accumulate(self, node, x):
        from .. import macs

        n = x.shape[0]
        cols = im2col(x, node.kernel, node.stride, node.padding, node.pad_value)
        _, oh, ow, k = cols.shape
        acc = macs.dot(node.mac, cols.reshape(-1, k), node.matrix, shift=node.w_shift,
                       bound=self.bound(node))
        return acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    @staticmethod
    def pointwise(node) -> bool:
        """A 1×1 convolution with stride 1 and no padding, whose input no other layer reads: a
        dense layer on every pixel, built without a sliding window (its windows are its input
        pixels). Beside another reader of its input (behind a fork) the window is kept: its line
        buffer is what lets the fork run ahead of the slower branch, as the cycle model assumes."""
        return node.direct

    def _node_extra(self, spec, ctx, extra):
        one = extra["kernel"] == (1, 1) and extra["stride"] == (1, 1) and extra["padding"] == (0, 0)
        return {"direct": one and ctx.input_readers[:1] == (1,)}

    def parts(self, node, k_in, pe=None, simd=None):
        from hw.swu import swu_cycles

        mvu, out = self.mvu_parts(node, pe, simd)
        if self.pointwise(node):
            return [*self.simd_parts(node, simd, k_in), *mvu], out
        c, h, w = node.in_shape
        swu = swu_cycles(node.in_shape, node.kernel, node.stride, node.padding)
        return [("dwc", dwc_cycles(c * h * w, k_in, c)), ("swu-in", h * w), ("swu", swu),
                *self.simd_parts(node, simd, c, "dwc-simd"), *mvu], out

    def vectors(self, node):
        return node.out_shape[1] * node.out_shape[2]

    def hw_matrix(self, node):
        return conv_matrix(node)

    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.swu import SlidingWindow

        from .. import area

        if self.pointwise(node):
            self.simd_input(node, lp.simd, k_in, dt_in, hw)
            return self.mvu_stage(node, lp, dt_in, hw)
        c = node.in_shape[0]
        hw.dwc(dt_in, k_in, c)
        swu = SlidingWindow(width=dt_in.code_width, in_shape=node.in_shape, kernel=node.kernel,
                            stride=node.stride, padding=node.padding,
                            pad_code=int(dt_in.encode(node.pad_value)))
        hw.add("swu", swu, area.swu_params(swu))
        self.simd_input(node, lp.simd, c, dt_in, hw)
        return self.mvu_stage(node, lp, dt_in, hw)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        if self.pointwise(node):
            return self.mvu_timing(node, lp, stage, self.simd_timing(node, lp.simd, k_in, t))
        c = node.in_shape[0]
        t = cm.dwc_timing(t, k_in, c)
        t = cm.window_timing(t, in_shape=node.in_shape, kernel=node.kernel, stride=node.stride,
                             padding=node.padding)
        return self.mvu_timing(node, lp, stage, self.simd_timing(node, lp.simd, c, t))

    def manifest(self, node, lp, stage):
        return {**super().manifest(node, lp, stage), "kernel": list(node.kernel),
                "stride": list(node.stride), "padding": list(node.padding), "pad_value": node.pad_value}

    def variant_geometry(self, node, aspec):
        d = {"kernel": list(node.kernel), "stride": list(node.stride), "padding": list(node.padding)}
        if any(node.padding):
            d["pad_value"] = 0 if aspec["encoding"] != "bipolar" else -1
        return d
