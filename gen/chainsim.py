"""The steady-state interval of a whole accelerator, from its blocks' handshake rules.

Per-layer cycle counts (:func:`gen.plan.layer_parts`) are exact for each block on its own, but
blocks with finite buffers can slow each other down: a sliding window whose buffer is full
stops taking pixels (its writer waits for the reader to free rows) while it reads the last
output row of a frame, the FIFO in front of it fills, and a producer that is the bottleneck
loses those cycles; or a window fed by a slower layer waits longer for rows at the start of a
frame than it would with its input always valid, while the bottleneck after it idles. To be
exact in every geometry, :func:`steady_interval` runs the chain of blocks that
:class:`gen.top.Accelerator` builds cycle by cycle, each block reduced to its control state and
the rules of its ``valid``/``ready`` signals (mirroring ``elaborate`` of :mod:`hw.dwc`,
:mod:`hw.fifo` (:class:`amaranth.lib.fifo.SyncFIFOBuffered`), :mod:`hw.mvu`, :mod:`hw.pool` and
:mod:`hw.argmax`, :mod:`hw.pad`, :mod:`hw.pipeline`; the sliding window's is :class:`hw.swu.WindowTiming`), with
the input always
valid and the output always ready, until three frames in a row take the same number of cycles.

Every block's ``o_valid`` is a register, so one cycle is: valids from the state, readies from the
output back to the input (a block's ``i_ready`` may depend on its ``o_ready``), then every
block's state update. About 5 µs per cycle.
"""

from __future__ import annotations

from math import gcd

from hw.swu import WindowTiming

__all__ = ["chain_models", "steady_interval"]


class _Split:
    def __init__(self, ratio):
        self.r, self.full, self.idx = ratio, 0, 0

    def valid(self):
        return self.full

    def ready(self, o_ready):
        return not self.full or (o_ready and self.idx == self.r - 1)

    def step(self, i_valid, i_ready, o_ready):
        if self.full and o_ready:
            self.idx += 1
            if self.idx == self.r:
                self.idx, self.full = 0, 0
        if i_valid and i_ready:
            self.full, self.idx = 1, 0


class _Count:
    """Gather stage of a width converter, window max, argmax: a word every ``count`` beats."""

    def __init__(self, count):
        self.count, self.full, self.n = count, 0, 0

    def valid(self):
        return self.full

    def ready(self, o_ready):
        return not self.full or o_ready

    def step(self, i_valid, i_ready, o_ready):
        if self.full and o_ready:
            self.full = 0
        if i_valid and i_ready:
            self.n += 1
            if self.n == self.count:
                self.n, self.full = 0, 1
                self.next_word()

    def next_word(self):
        """Called when a word is complete (the count of the next one is the same)."""


class _Counts(_Count):
    """A gather stage of varying part counts (:class:`hw.pad.PadGather`)."""

    def __init__(self, counts):
        super().__init__(counts[0])
        self.counts, self.j = list(counts), 0

    def next_word(self):
        self.j = (self.j + 1) % len(self.counts)
        self.count = self.counts[self.j]


class _Fifo:
    """:class:`amaranth.lib.fifo.SyncFIFOBuffered` (depth >= 2): an inner FIFO and an output
    register."""

    def __init__(self, depth):
        if depth < 2:
            raise ValueError(f"FIFO depth must be at least 2, not {depth}")
        self.inner_depth, self.level, self.r_rdy = depth - 1, 0, 0

    def valid(self):
        return self.r_rdy

    def ready(self, o_ready):
        return self.level != self.inner_depth

    def step(self, i_valid, i_ready, o_ready):
        inner_read = self.level != 0 and (not self.r_rdy or o_ready)
        self.level += (1 if i_valid and i_ready else 0) - (1 if inner_read else 0)
        if inner_read:
            self.r_rdy = 1
        elif o_ready:
            self.r_rdy = 0


class _Pipe:
    """:class:`hw.pipeline.StallPipeline` of ``stages`` registers (as in front of the running
    best of :class:`hw.argmax.Argmax`)."""

    def __init__(self, stages):
        self.v = [0] * stages

    def valid(self):
        return self.v[-1]

    def ready(self, o_ready):
        return o_ready or not self.v[-1]

    def step(self, i_valid, i_ready, o_ready):
        if o_ready or not self.v[-1]:
            self.v = [i_valid, *self.v[:-1]]


class _MVU:
    """:class:`hw.mvu.MVU`: fold counters and the valid chain of its stall pipeline (only the
    last beat of a fold passes stage ``gate``)."""

    def __init__(self, nf, sf, depth, gate):
        self.NF, self.SF, self.depth, self.gate = nf, sf, depth, gate
        self.nf = self.sf = 0
        self.valids = [0] * (depth + 1)     # valids[k]: stage k (1..depth); [0] unused
        self.lasts = [0] * (depth + 1)

    def valid(self):
        return self.valids[self.depth]

    def ready(self, o_ready):
        return (o_ready or not self.valids[self.depth]) and self.nf == 0

    def step(self, i_valid, i_ready, o_ready):
        if not (o_ready or not self.valids[self.depth]):   # the pipeline is stalled
            return
        issue = i_valid if self.nf == 0 else 1
        v, la = self.valids, self.lasts
        for k in range(self.depth, 1, -1):
            v[k] = v[k - 1] and (la[k - 1] if k - 1 == self.gate else 1)
            la[k] = la[k - 1]
        v[1] = issue
        la[1] = self.sf == self.SF - 1
        if issue:
            if self.sf == self.SF - 1:
                self.sf, self.nf = 0, (0 if self.nf == self.NF - 1 else self.nf + 1)
            else:
                self.sf += 1


class NoChainModel(Exception):
    """A block that :func:`chain_models` has no handshake model for."""


def chain_models(accel) -> list:
    """The blocks of an :class:`gen.top.Accelerator`, input to output, as control models."""
    from hw.argmax import Argmax as ArgmaxUnit
    from hw.dwc import DataWidthConverter
    from hw.fifo import StreamFIFO
    from hw.mvu import MVU
    from hw.pad import PadGather, VectorTrim
    from hw.pool import MaxPool2d as MaxPoolUnit
    from hw.swu import SlidingWindow

    blocks = dict(accel.blocks)
    models = []
    for stage in accel.stages:
        for name in stage.blocks:
            b = blocks[name]
            if isinstance(b, DataWidthConverter):
                g = gcd(b.i_elems, b.o_elems)
                if b.i_elems != g:
                    models.append(_Split(b.i_elems // g))
                if b.o_elems != g:
                    models.append(_Count(b.o_elems // g))
            elif isinstance(b, StreamFIFO):
                models.append(_Fifo(b.depth))
            elif isinstance(b, SlidingWindow):
                models.append(WindowTiming(b.in_shape, b.kernel, b.stride, b.padding))
            elif isinstance(b, MVU):
                depth = b.latency - (b.synapse_folds - 1)
                models.append(_MVU(b.neuron_folds, b.synapse_folds, depth,
                                   depth - 1 - b.activation_latency))
            elif isinstance(b, MaxPoolUnit):
                models.append(WindowTiming(b.in_shape, b.kernel, b.stride))
                models.append(_Count(b.kernel[0] * b.kernel[1]))
            elif isinstance(b, PadGather):
                models.append(_Counts(b.counts))
            elif isinstance(b, VectorTrim):
                models.append(_Count(b.ratio))
            elif isinstance(b, ArgmaxUnit):
                if b.tree_stages:
                    models.append(_Pipe(b.tree_stages))
                models.append(_Count(b.beats_per_frame))
            else:
                raise NoChainModel(f"no cycle-by-cycle model for {type(b).__name__}")
    return models


def steady_interval(accel, *, max_frames: int = 24) -> int:
    """Cycles per frame of an accelerator in steady state: input always valid, output always
    ready, no stalls. Runs until three consecutive frames take the same number of cycles."""
    if not accel.net.is_chain:   # forks and joins: the per-layer plan (no chain to run)
        return accel.plan.interval
    try:
        models = chain_models(accel)
    except NoChainModel:         # a block without a handshake model: the per-layer plan
        return accel.plan.interval
    per = accel.out_beats_per_frame
    n = len(models)
    starts: list[int] = []
    beats = 0
    cycle = 0
    valid_fns = [mdl.valid for mdl in models]
    ready_fns = [mdl.ready for mdl in reversed(models)]
    step_fns = [mdl.step for mdl in models]
    valids = [1] * (n + 1)       # valids[i]: input of model i (the source always offers one)
    o_readies = [1] * n
    i_readies = [1] * n
    back = range(n - 1, -1, -1)
    limit = 16 * (max_frames + 2) * (accel.plan.interval + 1000)
    while True:
        for i, f in enumerate(valid_fns):
            valids[i + 1] = f()
        o_ready = 1                  # the sink always takes
        for i, f in zip(back, ready_fns):
            o_readies[i] = o_ready
            o_ready = i_readies[i] = f(o_ready)
        if valids[n]:
            if beats % per == 0:
                starts.append(cycle)
                d = [b - a for a, b in zip(starts[-4:-1], starts[-3:])]
                if len(starts) >= 4 and d[0] == d[1] == d[2]:
                    return d[0]
                if len(starts) > max_frames:  # pragma: no cover - not seen
                    return -(-(starts[-1] - starts[-9]) // 8)
            beats += 1
        for i, f in enumerate(step_fns):
            f(valids[i], i_readies[i], o_readies[i])
        cycle += 1
        if cycle > limit:  # pragma: no cover - a model that deadlocks or never settles
            raise RuntimeError(f"No steady state after {limit:,} cycles (frame starts {starts[-8:]})")
