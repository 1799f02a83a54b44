"""The cycle model of a whole accelerator: steady-state interval and first-frame latency.

The interval (cycles per frame in steady state) is :func:`gen.chainsim.steady_interval`: the
chain of blocks run cycle by cycle until frames repeat. It equals :attr:`gen.plan.Plan.interval`
(the slowest layer's cycles per frame, each block counted on its own) except where blocks with
finite buffers slow each other down (a sliding window that stops taking pixels while it reads a
frame's last output row, or that waits for rows from a slow producer while the bottleneck after
it idles). The latency (cycles from the first input
beat accepted to the first output beat valid, with no stalls) is found by following the first
frame's beats through the chain of blocks that :class:`gen.top.Accelerator` builds: for every
stream, the cycle at which each beat of frame 0 moves. Each block maps the cycles of its input
beats to those of its output beats with its own timing rules:

* width converter: a split stage sends the ``ratio`` parts of a beat on the ``ratio`` cycles
  after taking it; a gather stage sends its word the cycle after its last part;
* FIFO (:class:`amaranth.lib.fifo.SyncFIFOBuffered`, after a layer and in front of a
  matrix-vector unit with several channel folds): a beat comes out 2 cycles after it went in;
* sliding window: a window pixel goes out the cycle after the reader takes it, which it does
  one per cycle once the pixel is written (padding needs nothing; the last beat of a frame
  waits for the frame's last pixel), the writer running at most ``kh + sh`` rows ahead of the
  top row of the reader's output row (it may write row ``y`` once the reader has finished
  output row ``(y + ph - kh - sh) // sh``; rows below the last window at once);
* matrix-vector unit: issue one beat per cycle (from the stream in channel fold 0, from the
  input buffer in the others); a fold's output is valid ``read stages (2 with the weight
  register, else 1) + lane latency + 1 + activation latency`` cycles after its last beat is
  issued (:attr:`hw.mvu.MVU.latency` for the first);
* depthwise window buffer: a window is read, one beat per cycle, from the cycle after its
  last pixel is written, into a half of the buffer that the window two before has left;
* vector-vector unit: as a matrix-vector unit with one channel fold per vector (every beat
  comes from its stream);
* max-pool window: the cycle after the window's last beat; argmax: its tree's register stages
  (:func:`hw.argmax.argmax_tree_stages`) plus one cycle after the frame's last beat.

Back-pressure inside the chain is not modelled (every consumer is assumed ready when a beat
is first valid), except that a matrix-vector unit takes a new vector only when it has issued
every fold of the previous one, and the sliding window's writer waits for free rows. The
tests compare the model with simulation (docs/estimate.md gives the measured accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.swu import live_rows

from .ir import INPUT
from .ops import op_for

__all__ = ["FIFO_LATENCY", "JOIN_FIFO_SLACK", "LayerTiming", "first_frame_timing", "layer_timing",
           "input_timing", "serial", "dwc_timing", "gather_timing", "fifo_timing", "mvu_timing", "window_timing",
           "groups_timing", "join_timing", "join_paths_timing", "join_fifo_depths", "join_occupancy",
           "depthwise_window_timing"]

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


def gather_timing(t, counts) -> np.ndarray:
    """Output beats of a gather stage that makes each output beat of ``counts[j]`` input beats
    (cycling through ``counts``; :class:`hw.pad.PadGather`, :class:`hw.pad.VectorTrim`): valid
    the cycle after its last part, the parts taken one per cycle."""
    a = serial(t)
    ends = np.cumsum(counts) - 1
    per = int(ends[-1]) + 1
    vectors = len(a) // per
    idx = (np.arange(vectors)[:, None] * per + ends[None, :]).ravel()
    return a[idx] + 1


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
    live = live_rows(h, kh, sh, ph)   # the rows below (never read) need no buffer row
    tl = t.tolist()
    written = []               # write cycle of each pixel, in raster order
    row_done = []              # cycle of the reader's last beat of each output row

    def write_until(p):
        while len(written) <= p:
            q = len(written)
            y = q // w
            need = (y + ph - R) // sh + 1 if y < live else 0   # output rows finished first
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


def groups_timing(t, count: int) -> np.ndarray:
    """Output of a block that sends one beat the cycle after the last of every ``count``."""
    a = serial(t)
    return a[count - 1::count] + 1


def join_timing(ts, latency: int) -> np.ndarray:
    """Output of a join that takes beat ``j`` of every input on the same cycle, once all are
    valid, one pair per cycle, and sends it ``latency`` cycles later."""
    return serial(np.maximum.reduce([np.asarray(t) for t in ts])) + latency


def join_paths_timing(ts, ks, ke, fifo_depths) -> list[np.ndarray]:
    """Each input of a join at the join: its width converter (``ks[j]`` to ``ke[j]`` elements
    per beat), then its FIFO if it has one."""
    out = []
    for t, k, e, d in zip(ts, ks, ke, fifo_depths or (None,) * len(ts), strict=True):
        t = dwc_timing(t, k, e)
        out.append(fifo_timing(t) if d is not None else t)
    return out


#: Beats a join FIFO holds beyond the largest occupancy of the first frame.
JOIN_FIFO_SLACK = 2


def join_occupancy(arrive, taken) -> int:
    """The most beats waiting in front of a join on one input: beats arrived by the cycle the
    join takes beat ``b``, less the ``b`` taken before it, over every ``b``."""
    arrive = np.asarray(arrive)
    return int((np.searchsorted(np.sort(arrive), taken, side="right") - np.arange(len(taken))).max())


def join_fifo_depths(ts, ks, ke) -> tuple[int | None, ...]:
    """The FIFO depth on each input of a join (None: no FIFO), from the cycle model.

    ``ts[j]`` are the cycles of input ``j``'s beats of frame 0 at the layer that makes it
    (``ks[j]`` elements per beat, converted to ``ke[j]`` at the join) when the network input
    arrives at the steady-state rate (:func:`input_timing` with ``paced``). An input whose
    beats wait for the other's (the skip path of a residual block, beside the convolutions)
    gets a FIFO of its largest occupancy plus :data:`JOIN_FIFO_SLACK`.

    Why this is enough: the occupancy counts the beats the short path receives while the long
    path turns the input it needs into its next output. The long path's need is a matter of
    data (a convolution needs the rows of its window), so when the FIFO is full the long path
    has all it needs and no stall pattern on the input or output can deadlock the design; and
    at the steady-state rate the fork that feeds both paths never waits for the short one, so
    the interval stays the slowest layer's (both checked in simulation, tests/test_graph_hw.py).
    """
    arrive = [dwc_timing(t, k, e) for t, k, e in zip(ts, ks, ke, strict=True)]
    taken = serial(np.maximum.reduce(arrive))
    waits = [join_occupancy(a, taken) > 1 for a in arrive]
    at = [fifo_timing(a) if w else a for a, w in zip(arrive, waits, strict=True)]
    taken = serial(np.maximum.reduce(at))
    return tuple(join_occupancy(a, taken) + JOIN_FIFO_SLACK if w else None
                 for a, w in zip(arrive, waits, strict=True))


def input_timing(net, plan, *, paced: bool = False) -> np.ndarray:
    """The input beats of frame 0: the driver offers one per cycle, or with ``paced`` at the
    steady-state rate (the plan's interval spread evenly over the frame's beats)."""
    n = math.prod(net.input.shape) // plan.input_elems
    i = np.arange(n, dtype=np.int64)
    return i * plan.interval // n if paced else i


def layer_timing(layer, lp, stage, t: dict, k: dict) -> tuple[np.ndarray, np.ndarray]:
    """The output beats of frame 0 of one layer, given those of the tensors it reads (``t``,
    ``k``: cycles and elements per beat by tensor): ``(at the layer, after its FIFO)``."""
    op = op_for(layer)
    if op.arity == 1:
        src = layer.inputs[0]
        out = op.timing(layer, lp, stage, t[src], k[src])
    else:
        ks = [k[s] for s in layer.inputs]
        ts = join_paths_timing([t[s] for s in layer.inputs], ks, stage.join_elems, stage.join_fifo_depths)
        out = op.timing(layer, lp, stage, ts, lp.in_elems)
    return out, (fifo_timing(out) if stage.fifo_depth is not None else out)


def first_frame_timing(accel) -> tuple[int, list[LayerTiming]]:
    """``(latency, per-layer timings)`` of an :class:`gen.top.Accelerator`, with no stalls.

    ``latency`` is the cycles from the first input beat accepted to the first output beat
    valid, as ``nomul sim`` measures it. Each layer's op maps the cycles of its input beats to
    those of its output beats (:meth:`gen.ops.base.LayerOp.timing`), in topological order; a
    fork passes beats on the cycle it gets them, and a join's inputs go through their width
    converters and FIFOs first (:func:`layer_timing`).
    """
    net, plan = accel.net, accel.plan
    t = {INPUT: input_timing(net, plan)}
    k = {INPUT: plan.input_elems}
    timings = []
    for i, (layer, lp, stage) in enumerate(zip(net.layers, plan.layers, accel.stages, strict=True)):
        first_in = min(int(t[s][0]) for s in layer.inputs)
        out, t[layer.name] = layer_timing(layer, lp, stage, t, k)
        timings.append(LayerTiming(i, first_in, int(out[0]), int(out[-1])))
        k[layer.name] = stage.out_elems
    return int(t[net.outputs[0]][0]), timings
