"""Small parts of the cocotb testbench of a generated accelerator.

The parts follow cocotb's matrix_multiplier example: a :class:`StreamDriver` feeds frames into
the accelerator's input stream with random gaps in ``valid``, a :class:`StreamMonitor` takes
frames from its output stream with random gaps in ``ready``, and an in-order
:class:`Scoreboard` compares every frame with the golden model's (exactly, as
``np.testing.assert_array_equal`` would). :class:`StreamLayout` is the host-side half: it packs
element codes into beats and back, following docs/contracts.md (element 0 in the LSBs).

Only the driver and monitor touch the simulator, once per clock cycle, in :meth:`step`; a single
clock loop (:func:`run_clocked`) calls them, so a cycle costs one trigger and a few signal
accesses. Random gaps are drawn in advance, in blocks, from a seeded numpy generator.

Sampling convention: a part's :meth:`step` runs right after a rising edge, where signals still
hold the values the design saw at that edge, so ``valid & ready`` read there is exactly the
transfer that just happened. New values written in :meth:`step` hold for the next cycle.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from hw.dtypes import DType, pack_words, unpack_words

__all__ = ["StreamLayout", "Frame", "Mismatch", "StreamDriver", "StreamMonitor", "Scoreboard",
           "GapSource", "ClockLoop"]


# -- host side: packing -----------------------------------------------------------------------
@dataclass(frozen=True)
class StreamLayout:
    """How the elements of one frame travel on a stream.

    Parameters
    ----------
    shape : tuple of int
        Shape of one frame in the golden model's order (C, H, W for images, (N,) for vectors).
    dtype : DType
        Element type; its codes are what the stream carries.
    elems_per_beat : int
        Elements in one beat; element ``j`` of a beat is in bits ``[j*w, (j+1)*w)``.
    order : str
        ``"HWC"`` (images stream pixel by pixel, channels innermost) or ``"flat"``.
    """

    shape: tuple[int, ...]
    dtype: DType
    elems_per_beat: int
    order: str = "flat"

    def __post_init__(self):
        if self.elems_per_beat < 1:
            raise ValueError(f"Elements per beat must be positive, not {self.elems_per_beat}")
        if self.elements % self.elems_per_beat:
            raise ValueError(f"{self.elems_per_beat} elements per beat do not divide the "
                             f"{self.elements} elements of a frame")
        if self.order not in ("HWC", "flat"):
            raise ValueError(f"Order must be HWC or flat, not {self.order!r}")

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def beats_per_frame(self) -> int:
        return self.elements // self.elems_per_beat

    @property
    def code_width(self) -> int:
        return self.dtype.code_width

    @property
    def beat_width(self) -> int:
        return self.code_width * self.elems_per_beat

    def stream_order(self, values: np.ndarray) -> np.ndarray:
        """(N, *shape) values in the golden model's order -> (N, elements) in stream order."""
        v = np.asarray(values).reshape(-1, *self.shape)
        if self.order == "HWC" and v.ndim == 4:
            v = v.transpose(0, 2, 3, 1)
        return v.reshape(v.shape[0], -1)

    def golden_index(self, k: int) -> tuple[int, ...]:
        """The golden model's index (into ``shape``) of the ``k``-th element in stream order."""
        if self.order == "HWC" and len(self.shape) == 3:
            c, h, w = self.shape
            pix, ch = divmod(k, c)
            return (ch, *divmod(pix, w))
        return tuple(int(i) for i in np.unravel_index(k, self.shape))

    def pack(self, values: np.ndarray) -> list[list[int]]:
        """(N, *shape) values -> for each frame, its beats as Python integers."""
        codes = self.dtype.encode(self.stream_order(values))
        n, beats = codes.shape[0], self.beats_per_frame
        words = pack_words(codes.reshape(n * beats, self.elems_per_beat), self.code_width)
        return [words[i * beats:(i + 1) * beats] for i in range(n)]

    def unpack(self, beats: list[int]) -> np.ndarray:
        """One frame's beats (Python integers) -> its values, shape ``shape``, golden order."""
        codes = unpack_words(beats, self.code_width, self.elems_per_beat).reshape(-1)
        values = self.dtype.decode(codes)
        if self.order == "HWC" and len(self.shape) == 3:
            c, h, wd = self.shape
            return values.reshape(h, wd, c).transpose(2, 0, 1)
        return values.reshape(self.shape)


# -- random gaps ------------------------------------------------------------------------------
class GapSource:
    """An endless stream of booleans, True with probability ``p`` (a stall), drawn in blocks."""

    def __init__(self, rng: np.random.Generator, p: float, block: int = 4096):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Stall probability must be in [0, 1), not {p}")
        self.rng, self.p, self.block = rng, p, block
        self._buf: list[bool] = []
        self._i = 0

    def next(self) -> bool:
        if self.p == 0.0:
            return False
        if self._i >= len(self._buf):
            self._buf = (self.rng.random(self.block) < self.p).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


# -- transactions ------------------------------------------------------------------------------
@dataclass
class Frame:
    """One frame seen on a stream: its beats and the cycles of its first and last transfer."""

    index: int
    beats: list[int]
    first_cycle: int
    last_cycle: int
    first_valid_cycle: int = -1


@dataclass(frozen=True)
class Mismatch:
    frame: int
    index: tuple[int, ...]
    expected: int
    actual: int
    what: str = "value"

    def __str__(self) -> str:
        if self.what != "value":
            return f"frame {self.frame}: {self.what}"
        return (f"frame {self.frame}, output {list(self.index)}: expected {self.expected}, "
                f"got {self.actual}")


_X_TO_0 = str.maketrans("xXzZuUwW-", "000000000")


def _int(value) -> int:
    return int(value)


class StreamDriver:
    """Feeds frames of beats into a stream (payload, valid, ready and optional last).

    Parameters
    ----------
    payload, valid, ready, last : cocotb handles (``last`` may be None)
    last_bit : int, optional
        When ``last`` is a bit of the payload (a ``{data, last}`` struct): its position.
    gaps : GapSource
        Before each beat, a True from it inserts one idle cycle (``valid`` low).
    on_frame_start : callable(frame_number, cycle), optional
        Called when the first beat of a frame is accepted.
    """

    def __init__(self, payload, valid, ready, last=None, *, last_bit: int | None = None,
                 gaps: GapSource, on_frame_start=None):
        self.payload, self.valid, self.ready, self.last = payload, valid, ready, last
        self.last_bit = last_bit
        self.gaps = gaps
        self.on_frame_start = on_frame_start
        self._frames: deque[tuple[int, list[int]]] = deque()
        self._beats: list[int] | None = None
        self._frame_no = -1
        self._beat = 0
        self._valid = 0
        self.accepted_frames = 0
        self.valid.value = 0

    def append(self, frame_no: int, beats: list[int]):
        if self.last_bit is not None:
            beats = beats[:-1] + [beats[-1] | 1 << self.last_bit]
        self._frames.append((frame_no, beats))

    @property
    def idle(self) -> bool:
        return self._beats is None and not self._frames

    @property
    def beat(self) -> int:
        """Beats of the current frame accepted so far."""
        return self._beat

    @property
    def current_frame(self) -> int | None:
        """The frame being sent (None between frames)."""
        return self._frame_no if self._beats is not None and self._beat > 0 else None

    def abort(self):
        """Drop the frame being sent (after a reset) and lower ``valid``.

        A frame taken from the queue of which no beat was accepted yet goes back to the head
        of the queue: the reset did not touch it, so it is sent afterwards (dropping it would
        lose it without counting it anywhere).
        """
        if self._beats is not None and self._beat == 0:
            self._frames.appendleft((self._frame_no, self._beats))
        self._beats = None
        self._beat = 0
        self._valid = 0
        self.valid.value = 0

    def step(self, cycle: int):
        if self._valid and _int(self.ready.value):
            if self._beat == 0 and self.on_frame_start is not None:
                self.on_frame_start(self._frame_no, cycle)
            self._beat += 1
            if self._beat == len(self._beats):
                self._beats = None
                self._beat = 0
                self.accepted_frames += 1
        if self._beats is None and self._frames:
            self._frame_no, self._beats = self._frames.popleft()
        valid = 0
        if self._beats is not None and not self.gaps.next():
            valid = 1
            self.payload.value = self._beats[self._beat]
            if self.last is not None:
                self.last.value = int(self._beat == len(self._beats) - 1)
        if valid != self._valid:
            self.valid.value = valid
            self._valid = valid


class StreamMonitor:
    """Takes frames of ``beats_per_frame`` beats from a stream, with random ``ready`` gaps.

    ``on_frame(frame)`` is called with each complete :class:`Frame`; when the stream has a
    ``last`` (a signal, or bit ``last_bit`` of the payload), a beat whose ``last`` disagrees
    with the frame length is reported through ``on_framing_error(frame_number, beat, last)``,
    and so is a beat with X or Z bits.
    """

    def __init__(self, payload, valid, ready, last=None, *, last_bit: int | None = None,
                 beats_per_frame: int, gaps: GapSource, on_frame, on_framing_error=None):
        self.payload, self.valid, self.ready, self.last = payload, valid, ready, last
        self.last_bit = last_bit
        self.beats_per_frame = beats_per_frame
        self.gaps = gaps
        self.on_frame = on_frame
        self.on_framing_error = on_framing_error
        self._beats: list[int] = []
        self._first = 0
        self._first_valid = -1
        self._frames = 0
        self._ready = 0
        self.ready.value = 0

    def flush(self):
        """Forget a partly received frame and lower ``ready`` (for a reset)."""
        self._beats = []
        self._first_valid = -1
        self._ready = 0
        self.ready.value = 0

    def step(self, cycle: int):
        if _int(self.valid.value):
            if self._first_valid < 0:
                self._first_valid = cycle
            if self._ready:
                beats = self._beats
                if not beats:
                    self._first = cycle
                value = self.payload.value
                try:
                    beat = int(value)
                except ValueError:  # X or Z bits: a mismatch, shown as the raw bits
                    if self.on_framing_error is not None:
                        self.on_framing_error(self._frames, len(beats), f"payload {value}")
                    beat = int(str(value).translate(_X_TO_0), 2)
                beats.append(beat)
                end = len(beats) == self.beats_per_frame
                if self.last_bit is not None:
                    last = beat >> self.last_bit & 1
                elif self.last is not None:
                    last = _int(self.last.value)
                else:
                    last = end
                if last != end and self.on_framing_error is not None:
                    self.on_framing_error(self._frames, len(beats) - 1, last)
                if end:
                    frame = Frame(self._frames, beats, self._first, cycle, self._first_valid)
                    self._frames += 1
                    self._beats = []
                    self._first_valid = -1
                    self.on_frame(frame)
        ready = 0 if self.gaps.next() else 1
        if ready != self._ready:
            self.ready.value = ready
            self._ready = ready


class Scoreboard:
    """In-order checker: each received frame against the next expected one, exactly.

    Parameters
    ----------
    layout : StreamLayout
        Of the output stream (to unpack beats into values).
    max_reported : int
        Mismatches kept in :attr:`mismatches` (all are counted in :attr:`mismatch_count`).
    """

    def __init__(self, layout: StreamLayout, *, max_reported: int = 20):
        self.layout = layout
        self.max_reported = max_reported
        self._expected: deque[tuple[int, np.ndarray]] = deque()
        self.mismatches: list[Mismatch] = []
        self.mismatch_count = 0
        self.frames_checked = 0
        self.checked: list[int] = []  # the frame numbers checked, in order
        self.frames_bad = 0
        self.outputs: dict[int, np.ndarray] = {}
        self.keep_outputs = False
        self.counted = lambda frame_no: True  # frames whose mismatches are counted and reported
        self.uncounted_bad = 0  # bad frames among the others

    def expect(self, frame_no: int, values: np.ndarray):
        self._expected.append((frame_no, values))

    def flush(self):
        self._expected.clear()

    @property
    def pending(self) -> int:
        return len(self._expected)

    def _report(self, m: Mismatch):
        self.mismatch_count += 1
        if len(self.mismatches) < self.max_reported:
            self.mismatches.append(m)

    def framing_error(self, frame_no: int, beat: int, what):
        """A beat whose ``last`` is wrong (``what`` is its value) or that has X bits."""
        if isinstance(what, str):
            self._report(Mismatch(frame_no, (), 0, 0, f"beat {beat}: {what}"))
        else:
            self._report(Mismatch(frame_no, (), 0, 0, f"last={what} on beat {beat} of "
                                                      f"{self.layout.beats_per_frame}"))

    def check(self, frame: Frame):
        actual = self.layout.unpack(frame.beats)
        if not self._expected:
            self.frames_bad += 1
            self._report(Mismatch(-1, (), 0, 0, "an output frame arrived that no input explains"))
            return
        frame_no, expected = self._expected.popleft()
        if self.keep_outputs:
            self.outputs[frame_no] = actual
        self.frames_checked += 1
        self.checked.append(frame_no)
        bad = actual != expected
        if bad.any() and not self.counted(frame_no):
            self.uncounted_bad += 1  # e.g. a timing frame, a copy of an input checked again later
        elif bad.any():
            self.frames_bad += 1
            for idx in np.argwhere(bad):
                idx = tuple(int(i) for i in idx)
                self._report(Mismatch(frame_no, idx, int(expected[idx]), int(actual[idx])))


class ClockLoop:
    """Calls ``part.step(cycle)`` for every part after each rising edge of ``clk``.

    One loop serves all parts, so a cycle costs one trigger. :attr:`cycle` counts rising edges
    across calls of :meth:`run`; :attr:`python_s` and :attr:`total_s` accumulate the wall time
    spent in the parts and in the whole loop (the share of the simulation the testbench costs).
    """

    def __init__(self, clk, parts):
        self.clk = clk
        self.parts = list(parts)
        self.cycle = 0
        self.python_s = 0.0
        self.total_s = 0.0

    async def run(self, cycles: int, stop=None) -> bool:
        """Run at most ``cycles`` cycles; True when ``stop()`` became true before that."""
        from cocotb.triggers import RisingEdge

        edge = RisingEdge(self.clk)
        steps = [p.step for p in self.parts]
        clock = time.process_time
        busy = 0.0
        t0 = clock()
        cycle = self.cycle
        stopped = False
        try:
            for _ in range(cycles):
                await edge
                cycle += 1
                ts = clock()
                for s in steps:
                    s(cycle)
                busy += clock() - ts
                if stop is not None and stop():
                    stopped = True
                    break
        finally:
            self.cycle = cycle
            self.python_s += busy
            self.total_s += clock() - t0
        return stopped
