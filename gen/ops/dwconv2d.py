"""The ``dwconv2d`` layer: a depthwise convolution (``groups`` equal to the channels) of a
C×H×W input: channel ``c`` of the output is channel ``c`` of the input convolved with its own
``kh × kw`` kernel (weights ``(C, 1, kh, kw)``, as PyTorch and ONNX store them), with kernel,
stride, padding and padding value as for ``conv2d``.

In hardware: a width converter to whole pixels, the sliding-window unit
(:class:`hw.swu.SlidingWindow`), the window reordered into channel folds
(:class:`hw.vvu.DepthwiseWindow`, or a width converter to ``SIMD`` pixels per beat when ``PE``
is all the channels) and the vector-vector unit (:class:`hw.vvu.VVU`): ``PE`` channels ×
``SIMD`` kernel elements per cycle, ``(C/PE)·(kh·kw/SIMD)`` cycles per output pixel. A 1×1
kernel with stride 1 and no padding (a per-channel scale) needs no window: a width converter to
``PE`` elements per beat feeds the vector-vector unit.

Its channels are its input's: it takes no pruning mask of its own, and no masked input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import NetworkError
from ..ir import Compute
from .base import StageBuild, pair
from .compute import FIFO_MAX_DEPTH, mvu_area_params
from .conv2d import Conv2dOp, Conv2dSpec

__all__ = ["DwConv2d", "DwConv2dSpec", "DwConv2dOp", "depthwise_windows"]


class DwConv2dSpec(Conv2dSpec):
    type: Literal["dwconv2d"]  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class DwConv2d(Compute):
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pad_value: int = 0
    direct: bool = False   # a 1×1 (per-channel scale) built without a sliding window
    kind: str = field(default="dwconv2d", init=False)

    @property
    def macs(self) -> int:
        return self.mh * self.mw * self.out_shape[1] * self.out_shape[2]


def depthwise_windows(x: np.ndarray, kernel, stride, padding, pad_value) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, KH·KW) windows of each channel, (kh, kw) order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.reshape(*win.shape[:4], kh * kw)


class DwConv2dOp(Conv2dOp):
    type = "dwconv2d"
    spec = DwConv2dSpec
    node = DwConv2d
    takes_masked_input = False
    pads_folding = False   # its vector-vector unit needs PE and SIMD that divide

    def build(self, spec, ctx):
        if spec.mask is not None:
            raise NetworkError(f"{ctx.path}.mask", "a dwconv2d layer takes no mask (its channels "
                                                   "are its input's)")
        return super().build(spec, ctx)

    def _weights_and_shape(self, spec, ctx, w):
        path, shape = ctx.path, ctx.input.shape
        if len(shape) != 3:
            raise NetworkError(path, f"dwconv2d needs a C×H×W input, found shape {tuple(shape)}")
        kernel, stride, padding = pair(spec.kernel), pair(spec.stride), pair(spec.padding)
        if w.ndim != 4 or w.shape != (shape[0], 1, *kernel):
            raise NetworkError(f"{path}.weights", f"expected shape ({shape[0]}, 1, {kernel[0]}, "
                                                  f"{kernel[1]}) (one kernel per input channel), "
                                                  f"found {w.shape}")
        if shape[1] + 2 * padding[0] < kernel[0] or shape[2] + 2 * padding[1] < kernel[1]:
            raise NetworkError(f"{path}.kernel", f"kernel {kernel} is larger than the padded input "
                                                 f"{shape[1] + 2 * padding[0]}×{shape[2] + 2 * padding[1]}")
        oh = (shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
        ow = (shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
        return (oh, ow), {"kernel": kernel, "stride": stride, "padding": padding}

    def accumulate(self, node, x):
        from .. import macs

        win = depthwise_windows(x, node.kernel, node.stride, node.padding, node.pad_value)
        n, c, oh, ow, k = win.shape
        acc = np.empty((n, c, oh, ow), dtype=np.int64)
        bound = self.bound(node)
        for ch in range(c):
            acc[:, ch] = macs.dot(node.mac, win[:, ch].reshape(-1, k), node.matrix[ch:ch + 1],
                                  shift=node.w_shift, bound=bound).reshape(n, oh, ow)
        return acc

    # -- folding and cycles ------------------------------------------------------------------
    def parts(self, node, k_in, pe=None, simd=None):
        from hw.swu import swu_cycles

        from .base import dwc_cycles

        c, h, w = node.in_shape
        _, oh, ow = node.out_shape
        if self.pointwise(node):   # a per-channel scale: each pixel is its own window
            return [("dwc", dwc_cycles(c * h * w, k_in, pe)), ("vvu", h * w * (c // pe))], pe
        swu = swu_cycles(node.in_shape, node.kernel, node.stride, node.padding)  # and the frame change
        return [("dwc", dwc_cycles(c * h * w, k_in, c)), ("swu-in", h * w), ("swu", swu),
                ("vvu", oh * ow * (c // pe) * (node.mw // simd))], pe

    # -- hardware ----------------------------------------------------------------------------
    def hardware(self, node, lp, k_in, dt_in, hw):
        from hw.swu import SlidingWindow
        from hw.vvu import VVU, DepthwiseWindow

        from .. import area

        c = node.in_shape[0]
        pe, simd = lp.pe, lp.simd
        if self.pointwise(node):   # windows of one pixel: its channel folds are PE per beat
            hw.dwc(dt_in, k_in, pe)
        else:
            hw.dwc(dt_in, k_in, c)
            swu = SlidingWindow(width=dt_in.code_width, in_shape=node.in_shape,
                                kernel=node.kernel, stride=node.stride, padding=node.padding,
                                pad_code=int(dt_in.encode(node.pad_value)))
            hw.add("swu", swu, area.swu_params(swu))
            if pe == c:    # the window's own order, SIMD pixels per beat
                hw.dwc(dt_in, c, simd * c)
            else:
                win = DepthwiseWindow(width=dt_in.code_width, channels=c, kernel_elems=node.mw,
                                      pe=pe, simd=simd)
                hw.add("dwwin", win, area.dwwin_params(win))
        try:
            vvu = VVU(weights=node.matrix, mac=node.mac, w_dtype=node.w_dtype,
                      w_shift=node.w_shift, in_dtype=node.in_dtype, bias=node.bias,
                      activation=node.activation,
                      acc_range=(int(node.acc_lo.min()), int(node.acc_hi.max())), pe=pe,
                      simd=simd, ram_style=node.ram_style, popcount_style=hw.popcount_style)
        except ValueError as e:
            raise NetworkError(f"layers[{lp.index}]", f"cannot build the vector-vector unit: {e}") from None
        hw.add("vvu", vvu, lambda: mvu_area_params(vvu, unit="vvu"))
        _, oh, ow = node.out_shape
        return StageBuild(
            out_elems=pe, out_dtype=node.out_dtype, out_beats=oh * ow * c // pe,
            fifo_depth=min(FIFO_MAX_DEPTH, max(4, 2 * (c // pe))), latency=vvu.latency,
            acc_width=vvu.acc_width, weight_bits=c * node.mw * node.w_dtype.code_width)

    def timing(self, node, lp, stage, t, k_in):
        from .. import cycles as cm

        c = node.in_shape[0]
        _, oh, ow = node.out_shape
        cf, sf = c // lp.pe, node.mw // lp.simd
        tail = stage.latency - (sf - 1)
        if self.pointwise(node):
            t = cm.dwc_timing(t, k_in, lp.pe)
            return cm.mvu_timing(cm.serial(t), nf=1, sf=1, vectors=oh * ow * cf, tail=tail)
        t = cm.dwc_timing(t, k_in, c)
        t = cm.window_timing(t, in_shape=node.in_shape, kernel=node.kernel, stride=node.stride,
                             padding=node.padding)
        if lp.pe == c:
            t = cm.dwc_timing(t, c, lp.simd * c)
        else:
            t = cm.depthwise_window_timing(t, kernel_elems=node.mw, reads=cf * sf)
        return cm.mvu_timing(cm.serial(t), nf=1, sf=sf, vectors=oh * ow * cf, tail=tail)
