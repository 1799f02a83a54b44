"""Bounds on the size of a network, so that an absurd one fails at once, not after minutes.

The arrays' element limits (:mod:`gen.load`) bound what is read; these bound what the passes
after loading allocate: activations (the golden model runs test vectors through every layer),
a convolution's sliding-window buffer and its unfolded windows, output channels (hardware
lanes) and the MACs per frame. Each limit is far above any network that fits an FPGA, and is
documented in docs/format.md ("Limits and guarantees").
"""

from __future__ import annotations

import math

from .errors import NetworkError
from .ir import Network
from .ops import op_for

__all__ = ["MAX_ACTIVATION_ELEMENTS", "MAX_CHANNELS", "MAX_WINDOW_ELEMENTS", "MAX_MACS_PER_FRAME",
           "check_bounds",
           "check_channels", "check_window"]

MAX_ACTIVATION_ELEMENTS = 1 << 22
MAX_CHANNELS = 1 << 16
MAX_WINDOW_ELEMENTS = 1 << 24
MAX_MACS_PER_FRAME = 1 << 32


def _shape(s) -> str:
    return "×".join(map(str, s))


def check_bounds(net: Network) -> None:
    """Raise :class:`NetworkError` naming the first layer that exceeds a size limit."""
    total = 0
    for i, layer in enumerate(net.layers):
        path = f"layers[{i}]"
        n = math.prod(layer.out_shape)
        if n > MAX_ACTIVATION_ELEMENTS:
            raise NetworkError(path, f"its output of {_shape(layer.out_shape)} has {n} elements per "
                                     f"frame, more than the limit of {MAX_ACTIVATION_ELEMENTS}")
        op_for(layer).check_size(layer, path)   # the layer's own limits (channels, windows)
        total += layer.macs
        if total > MAX_MACS_PER_FRAME:
            raise NetworkError(path, f"the network needs {total} MACs per frame up to this "
                                     f"layer, more than the limit of {MAX_MACS_PER_FRAME}")


def check_channels(path: str, oc: int) -> None:
    if oc > MAX_CHANNELS:
        raise NetworkError(f"{path}.weights", f"{oc} output channels, more than the limit of {MAX_CHANNELS}")


def check_window(path: str, in_shape, out_shape, kernel, padding) -> None:
    """A sliding window's line buffer and its unfolded windows must stay below the limit."""
    c, _, w = in_shape
    (kh, kw), pw = kernel, padding[1]
    buf = c * ((kh - 1) * (w + 2 * pw) + kw)
    win = math.prod(out_shape[1:]) * c * kh * kw
    if buf > MAX_WINDOW_ELEMENTS or win > MAX_WINDOW_ELEMENTS:
        what, v = ("sliding-window buffer", buf) if buf > win else ("unfolded windows", win)
        raise NetworkError(f"{path}.kernel", f"its {what} holds {v} elements per frame, more than the "
                                             f"limit of {MAX_WINDOW_ELEMENTS}")
