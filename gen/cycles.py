"""The cycle model of a whole accelerator: steady-state interval and first-frame latency.

The interval (cycles per frame in steady state) is :attr:`gen.plan.Plan.interval`, the slowest
layer's cycles per frame; it is not recomputed here. The latency (cycles from the first input
beat accepted to the first output beat valid, with no stalls) is found by following the first
frame's beats through the chain of blocks that :class:`gen.top.Accelerator` builds: for every
stream, the cycle at which each beat of frame 0 moves. Each block maps the cycles of its input
beats to those of its output beats with its own timing rules:

* width converter: a split stage sends the ``ratio`` parts of a beat on the ``ratio`` cycles
  after taking it; a gather stage sends its word the cycle after its last part;
* FIFO (:class:`amaranth.lib.fifo.SyncFIFOBuffered`, after a layer and in front of a
  matrix-vector unit with several channel folds): a beat comes out 2 cycles after it went in;
* sliding window: a window pixel goes out the cycle after the reader takes it, which it does
  one per cycle once the pixel is written (padding needs nothing), the writer running at most
  ``kh + sh`` rows ahead of the reader;
* matrix-vector unit: issue one beat per cycle (from the stream in channel fold 0, from the
  input buffer in the others); a fold's output is valid ``read stages (2 with the weight
  register, else 1) + lane latency + 1 + activation latency`` cycles after its last beat is
  issued (:attr:`hw.mvu.MVU.latency` for the first);
* depthwise window buffer: a window is read, one beat per cycle, from the cycle after its
  last pixel is written, into a half of the buffer that the window two before has left;
* vector-vector unit: as a matrix-vector unit with one channel fold per vector (every beat
  comes from its stream);
* max-pool window and argmax: the cycle after the window's / frame's last beat.

Back-pressure inside the chain is not modelled (every consumer is assumed ready when a beat
is first valid), except that a matrix-vector unit takes a new vector only when it has issued
every fold of the previous one, and the sliding window's writer waits for free rows. The
tests compare the model with simulation (docs/estimate.md gives the measured accuracy).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .ir import INPUT
from .ops import op_for

__all__ = ["FIFO_LATENCY", "LayerTiming", "first_frame_timing", "serial", "dwc_timing", "fifo_timing",
           "mvu_timing", "window_timing", "groups_timing", "depthwise_window_timing",
           "window_interval"]

#: Cycles from a beat entering a :class:`hw.fifo.StreamFIFO` to it being valid at its output.
FIFO_LATENCY = 2


@dataclass(frozen=True)
class LayerTiming:
    """When layer ``index`` of frame 0 starts and ends, in cycles from the first input beat."""

    index: int
    first_in: int     # its first input beat arrives
    first_out: int    # its first output beat is valid
    last_out: int     # its last output beat of the frame is valid

    @property
    def latency(self) -> int:
        """Cycles from its first input beat to its first output beat."""
        return self.first_out - self.first_in


def serial(offered) -> np.ndarray:
    """Cycles at which beats offered at ``offered`` are taken by a block that takes one per
    cycle."""
    t = np.array(offered, dtype=np.int64)
    # t[i] = max(offered[i], t[i-1] + 1): a running max of offered[i] - i, plus i
    idx = np.arange(len(t))
    return np.maximum.accumulate(t - idx) + idx


def dwc_timing(t, i_elems: int, o_elems: int) -> np.ndarray:
    if i_elems == o_elems:
        return t
    g = math.gcd(i_elems, o_elems)
    if i_elems != g:
        r = i_elems // g
        out = np.empty(len(t) * r, dtype=np.int64)
        prev_last = -(1 << 40)
        for i, off in enumerate(t.tolist()):
            a = max(off, prev_last)          # takes a beat on the cycle its last part leaves
            out[i * r:(i + 1) * r] = a + 1 + np.arange(r)
            prev_last = a + r
        t = out
    if o_elems != g:
        r = o_elems // g
        a = serial(t)
        t = a[r - 1::r] + 1
    return t


def fifo_timing(t) -> np.ndarray:
    return serial(np.asarray(t) + FIFO_LATENCY)


def mvu_timing(t, *, nf: int, sf: int, vectors: int, tail: int) -> np.ndarray:
    """Output beats (vector-major, fold-minor) of a matrix-vector unit."""
    out = np.empty(vectors * nf, dtype=np.int64)
    issue = -(1 << 40)
    tl = t.tolist()
    for v in range(vectors):
        for f in range(nf):
            if f == 0:
                for s in range(sf):
                    issue = max(tl[v * sf + s], issue + 1)
            else:
                issue += sf
            out[v * nf + f] = issue + tail
    return out


def window_timing(t, *, in_shape, kernel, stride, padding, rows_gate=True) -> np.ndarray:
    """Window pixels out of a sliding-window unit (frame 0)."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    R = kh + sh
    tl = t.tolist()
    written = []               # write cycle of each pixel, in raster order
    row_done = []              # cycle of the reader's last beat of each output row

    def write_until(p):
        while len(written) <= p:
            q = len(written)
            y = q // w
            need = (y + ph - R) // sh + 1   # output rows the reader must have finished
            gate = row_done[need - 1] + 1 if need > 0 else -(1 << 40)
            prev = written[-1] + 1 if written else -(1 << 40)
            written.append(max(tl[q], prev, gate))

    out = []
    go = -1                    # the reader starts after reset: padding needs no input
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    y, x = oy * sh - ph + ky, ox * sw - pw + kx
                    ready = go + 1
                    if 0 <= y < h and 0 <= x < w:
                        p = y * w + x
                        write_until(p)
                        ready = max(ready, written[p] + 1)
                    if oy == oh - 1 and ox == ow - 1 and ky == kh - 1 and kx == kw - 1:
                        write_until(h * w - 1)
                        ready = max(ready, written[-1] + 1)
                    go = ready
                    out.append(go + 1)
        row_done.append(go)
    return np.array(out, dtype=np.int64)


def depthwise_window_timing(t, *, kernel_elems: int, reads: int) -> np.ndarray:
    """Output beats of a :class:`hw.vvu.DepthwiseWindow` (``reads`` per window of
    ``kernel_elems`` input beats): a window is read, one beat per cycle, from the cycle after
    its last pixel is written; a window's pixels are written once the window two before it
    (the same half of the buffer) has been read."""
    tl = np.asarray(t).tolist()
    n = len(tl) // kernel_elems
    out = np.empty(n * reads, dtype=np.int64)
    last_read = []                  # cycle of each window's last read
    wrote = issue = -(1 << 40)
    for win in range(n):
        free = last_read[win - 2] + 1 if win >= 2 else -(1 << 40)
        for j in range(kernel_elems):
            wrote = max(tl[win * kernel_elems + j], wrote + 1, free)
        start = max(wrote + 1, issue + 1)
        out[win * reads:(win + 1) * reads] = start + 1 + np.arange(reads)
        issue = start + reads - 1
        last_read.append(issue)
    return out


@functools.lru_cache(maxsize=256)
def window_interval(*, in_shape, kernel, stride, padding, frames: int = 4) -> int:
    """Steady-state cycles per frame of a sliding-window unit whose input is always there and
    whose output is always taken: ``OH·OW·kh·kw`` plus the cycles its reader waits at the start
    of a frame for rows that the writer could not write while the reader was still on the last
    rows of the frame before (the buffer holds ``kh + sh`` rows). The rules are those of
    :func:`window_timing`, followed over ``frames`` frames in rows numbered across frames."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    R = kh + sh
    written = []               # write cycle of each pixel, raster order across frames
    row_done = []              # cycle of the reader's last beat of each output row, across frames
    frame_done = []
    g_need = [0]

    def base(g):               # the top image row (across frames) of the reader's output row g
        f, r = divmod(g, oh)
        return f * h + r * sh - ph

    def write_until(q):
        while len(written) <= q:
            p = len(written)
            f, rem = divmod(p, h * w)
            yv = f * h + rem // w
            while base(g_need[0]) + R <= yv:
                g_need[0] += 1
            g = g_need[0]
            gate = row_done[g - 1] + 1 if g > 0 else -(1 << 40)
            if rem == h * w - 1 and f > 0:    # the writer is at most one frame ahead
                gate = max(gate, frame_done[f - 1] + 1)
            prev = written[-1] + 1 if written else 0
            written.append(max(prev, gate))

    go = -1
    for f in range(frames):
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        y, x = oy * sh - ph + ky, ox * sw - pw + kx
                        ready = go + 1
                        if 0 <= y < h and 0 <= x < w:
                            p = f * h * w + y * w + x
                            write_until(p)
                            ready = max(ready, written[p] + 1)
                        if oy == oh - 1 and ox == ow - 1 and ky == kh - 1 and kx == kw - 1:
                            write_until((f + 1) * h * w - 1)
                            ready = max(ready, written[-1] + 1)
                        go = ready
            row_done.append(go)
        frame_done.append(go)
    return frame_done[-1] - frame_done[-2]


def groups_timing(t, count: int) -> np.ndarray:
    """Output of a block that sends one beat the cycle after the last of every ``count``."""
    a = serial(t)
    return a[count - 1::count] + 1


def first_frame_timing(accel) -> tuple[int, list[LayerTiming]]:
    """``(latency, per-layer timings)`` of an :class:`gen.top.Accelerator`, with no stalls.

    ``latency`` is the cycles from the first input beat accepted to the first output beat
    valid, as ``nomul sim`` measures it. Each layer's op maps the cycles of its input beats to
    those of its output beats (:meth:`gen.ops.base.LayerOp.timing`), in topological order.
    """
    net, plan = accel.net, accel.plan
    n_in = math.prod(net.input.shape) // plan.input_elems
    t = {INPUT: np.arange(n_in, dtype=np.int64)}   # the driver offers one beat per cycle
    k = {INPUT: plan.input_elems}
    timings = []
    for i, (layer, lp, stage) in enumerate(zip(net.layers, plan.layers, accel.stages, strict=True)):
        src = layer.inputs[0]
        ti = t[src]
        out = op_for(layer).timing(layer, lp, stage, ti, k[src])
        timings.append(LayerTiming(i, int(ti[0]), int(out[0]), int(out[-1])))
        if stage.fifo_depth is not None:
            out = fifo_timing(out)
        t[layer.name], k[layer.name] = out, stage.out_elems
    return int(t[net.outputs[0]][0]), timings
