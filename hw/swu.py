"""Sliding-window unit (line buffer) for 2-D convolutions and pooling.

Pixels arrive in raster order, one whole pixel (``channels`` elements, HWC) per beat. For every
output position, in raster order, the unit sends the ``kh × kw`` window pixels in (kh, kw)
order, one pixel per beat, so that the concatenation of a window's beats is the (kh, kw, c)
ordered window vector of docs/contracts.md. Positions outside the image (padding) carry the
padding value's code in every channel.

The buffer holds ``kh + sh`` image rows, so that the next ``sh`` rows can be written while the
current output row is read; writing runs up to one frame ahead of reading, so frames stream
back to back. Rows below the last window (when the stride skips them) are taken without being
stored. With no stalls the unit takes one pixel and sends one window pixel per cycle, and waits
at the start of a frame for the rows it could not take while it read the previous frame's last
output row (:func:`swu_cycles`).
"""

from __future__ import annotations

import functools

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dtypes import clog2

__all__ = ["SlidingWindow", "WindowTiming", "live_rows", "swu_cycles"]


def _pair(name, v, lo):
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(x, int) and x >= lo for x in v):
        raise ValueError(f"{name} must be an integer or a pair of integers of at least {lo}, not {v!r}")
    return v


def live_rows(h: int, kh: int, sh: int, ph: int) -> int:
    """Rows of an ``h``-row image that a window of ``kh`` rows, stride ``sh`` and padding ``ph``
    reads: all but those below the last window."""
    oh = (h + 2 * ph - kh) // sh + 1
    return min(h, (oh - 1) * sh - ph + kh)


class WindowTiming:
    """The control state of a :class:`SlidingWindow` and the rules of its handshakes, cycle by
    cycle, without the data: the writer's ``can_write`` and the reader's ``go`` of
    :meth:`SlidingWindow.elaborate`.

    Each cycle, :meth:`valid` (``o_stream.valid``, a register) and :meth:`ready`
    (``i_stream.ready``) come from the state; :meth:`step` then advances it, given the input's
    valid, the ready that :meth:`ready` returned and the output's ready. ``frames`` counts the
    frames the reader has finished.
    """

    def __init__(self, in_shape, kernel, stride=(1, 1), padding=(0, 0)):
        _, self.H, self.W = in_shape
        (self.kh, self.kw), (self.sh, self.sw), (self.ph, self.pw) = kernel, stride, padding
        self.oh = (self.H + 2 * self.ph - self.kh) // self.sh + 1
        self.ow = (self.W + 2 * self.pw - self.kw) // self.sw + 1
        self.R = self.kh + self.sh
        self.live = live_rows(self.H, self.kh, self.sh, self.ph)
        self.wy = self.wx = self.ahead = self.o_valid = self.frames = 0
        self.ybase, self.xbase, self.oy, self.ox, self.ky, self.kx = -self.ph, -self.pw, 0, 0, 0, 0

    def valid(self) -> int:
        return self.o_valid

    def _w_last(self) -> bool:
        return self.wy == self.H - 1 and self.wx == self.W - 1

    def ready(self, o_ready=1) -> bool:
        vrow = self.wy + (self.live if self.ahead else 0)
        return ((self.wy >= self.live or vrow < self.ybase + self.R)
                and not (self.ahead and self._w_last()))

    def step(self, i_valid, i_ready, o_ready) -> None:
        y, x = self.ybase + self.ky, self.xbase + self.kx
        pad = y < 0 or y >= self.H or x < 0 or x >= self.W
        avail = self.ahead or y < self.wy or (y == self.wy and x < self.wx)
        r_last = (self.ky == self.kh - 1 and self.kx == self.kw - 1 and self.ox == self.ow - 1
                  and self.oy == self.oh - 1)
        go = (pad or avail) and (not self.o_valid or o_ready) and (not r_last or self.ahead)
        if i_valid and i_ready:
            if self._w_last():
                self.ahead = 1
            self.wx += 1
            if self.wx == self.W:
                self.wx, self.wy = 0, self.wy + 1
                if self.wy == self.H:
                    self.wy = 0
        if go:
            self.o_valid = 1
            self.kx += 1
            if self.kx == self.kw:
                self.kx, self.ky = 0, self.ky + 1
                if self.ky == self.kh:
                    self.ky, self.ox, self.xbase = 0, self.ox + 1, self.xbase + self.sw
                    if self.ox == self.ow:
                        self.ox, self.xbase = 0, -self.pw
                        self.oy, self.ybase = self.oy + 1, self.ybase + self.sh
                        if self.oy == self.oh:
                            self.oy, self.ybase = 0, -self.ph
            if r_last:
                self.ahead = 0
                self.frames += 1
        elif o_ready:
            self.o_valid = 0


@functools.lru_cache(maxsize=1024)
def swu_cycles(in_shape, kernel, stride=(1, 1), padding=(0, 0)) -> int:
    """Cycles per frame of a :class:`SlidingWindow` in steady state, input always valid and
    output always ready.

    At least ``max(H·W, OH·OW·kh·kw)``, and more when the reader waits at the start of a frame:
    while it reads the last output row of a frame, the writer may fill only the buffer rows that
    row does not use (``ybase + kh + sh - live_rows`` rows of the next frame, ``ybase`` being the
    top row of that output row), so the first windows of the next frame wait for the rows that
    were not taken. Found by running :class:`WindowTiming` over frames until two take the same
    number of cycles.
    """
    t = WindowTiming(in_shape, kernel, stride, padding)
    ends: list[int] = []     # cycle of each frame's last window beat
    cycle = 0
    while True:
        t.step(1, t.ready(), 1)
        if t.frames > len(ends):
            ends.append(cycle)
            if len(ends) >= 4 and ends[-1] - ends[-2] == ends[-2] - ends[-3]:
                return ends[-1] - ends[-2]
            if len(ends) == 16:  # pragma: no cover - not seen: a pattern over several frames
                return -(-(ends[-1] - ends[-9]) // 8)
        cycle += 1


class SlidingWindow(wiring.Component):
    """Window pixels of a 2-D sliding window over an HWC pixel stream.

    Parameters
    ----------
    width : int
        Code width of one element.
    in_shape : (C, H, W)
        Channels, height and width of the image.
    kernel, stride, padding : int or (int, int)
    pad_code : int
        Code of the padding value (``DType.encode`` of it).

    Members
    -------
    i_stream : In(stream.Signature(unsigned(C * width)))
        ``H * W`` beats per frame.
    o_stream : Out(stream.Signature(unsigned(C * width)))
        ``OH * OW * kh * kw`` beats per frame.
    """

    def __init__(self, *, width: int, in_shape, kernel, stride=1, padding=0, pad_code: int = 0):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"Width must be a positive integer, not {width!r}")
        if len(in_shape) != 3 or not all(isinstance(x, int) and x >= 1 for x in in_shape):
            raise ValueError(f"Input shape must be (C, H, W) of positive integers, not {in_shape!r}")
        self._kernel = _pair("Kernel", kernel, 1)
        self._stride = _pair("Stride", stride, 1)
        self._padding = _pair("Padding", padding, 0)
        c, h, w = in_shape
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._padding
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"Kernel {self._kernel} is larger than the padded image "
                             f"{h + 2 * ph}×{w + 2 * pw}")
        if ph >= kh or pw >= kw:
            raise ValueError(f"Padding {self._padding} must be smaller than the kernel {self._kernel}")
        if not 0 <= pad_code < 1 << width:
            raise ValueError(f"Pad code must fit in {width} bits, not {pad_code}")
        self._width, self._in_shape, self._pad_code = width, tuple(in_shape), pad_code
        self._out_hw = ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(c * width))),
            "o_stream": Out(stream.Signature(unsigned(c * width))),
        })

    in_shape = property(lambda self: self._in_shape)
    out_hw = property(lambda self: self._out_hw)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    width = property(lambda self: self._width)

    @property
    def beats_per_frame(self) -> int:
        """Output beats (window pixels) per frame."""
        return self._out_hw[0] * self._out_hw[1] * self._kernel[0] * self._kernel[1]

    @property
    def buffer_rows(self) -> int:
        return self._kernel[0] + self._stride[0]

    @property
    def live_rows(self) -> int:
        """Image rows that some window reads: all but those below the last window."""
        return live_rows(self._in_shape[1], self._kernel[0], self._stride[0], self._padding[0])

    def elaborate(self, platform):
        m = Module()
        c, H, W = self._in_shape
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._padding
        oh, ow = self._out_hw
        R = self.buffer_rows
        colbits = max(1, clog2(W))
        word = c * self._width

        m.submodules.mem = mem = memory.Memory(shape=unsigned(word), depth=R << colbits, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        # -- writer ----------------------------------------------------------------------
        wy = Signal(range(H + 1))
        wx = Signal(range(W))
        wslot = Signal(range(R))
        ahead = Signal()  # the writer is one frame ahead of the reader

        # Rows from ``live`` on (below the last window, when the stride skips them) are never
        # read: they are taken without a buffer row, so that the next frame's rows follow the
        # last live row in the buffer and can be written while the last output row is read.
        live = self.live_rows
        span = max(H + R, (oh - 1) * sh + R + ph + 1)
        ybase = Signal(signed(clog2(span + 1) + 2), init=-ph)
        # A buffer row is free for image row vrow = wy + (live if ahead) while vrow < ybase + R
        # (ybase + R: the row the reader's window frees next). The margin ybase + R - vrow - 1 is
        # kept in a register, stepped by constants when the writer ends a row or a frame and when
        # the reader ends a row of windows or a frame, so that the writer's ready is its sign
        # bit: no add or compare between the counters and the ready and the write enable.
        d_lo, d_hi = -ph + R - live - H - 1, -ph + R + (oh - 1) * sh
        margin = Signal(signed(clog2(max(abs(d_lo), abs(d_hi)) + 1) + 2), init=R - ph - 1)
        w_last_pixel = (wy == H - 1) & (wx == W - 1)
        free = ~margin[-1]
        stored = self.i_stream.valid
        if live < H:
            dead = wy >= live
            free, stored = dead | free, stored & ~dead
        can_write = free & ~(ahead & w_last_pixel)
        m.d.comb += [
            self.i_stream.ready.eq(can_write),
            wr.addr.eq((wslot << colbits) | wx),
            wr.data.eq(self.i_stream.payload),
            wr.en.eq(stored & can_write),
        ]
        w_fire = self.i_stream.valid & can_write
        next_slot = wslot.eq(Mux(wslot == R - 1, 0, wslot + 1))
        with m.If(w_fire):
            m.d.sync += wx.eq(wx + 1)
            with m.If(wx == W - 1):
                m.d.sync += [wx.eq(0), wy.eq(wy + 1)]
                if live < H:
                    with m.If(~dead):
                        m.d.sync += next_slot
                else:
                    m.d.sync += next_slot
                with m.If(wy == H - 1):
                    m.d.sync += wy.eq(0)

        # -- reader ----------------------------------------------------------------------
        ky = Signal(range(kh))
        kx = Signal(range(kw))
        oy = Signal(range(oh))
        ox = Signal(range(ow))
        xbase = Signal(signed(clog2((ow - 1) * sw + pw + W + 1) + 2), init=-pw)
        slot_base = Signal(range(R), init=(-ph) % R)
        frame_slot0 = Signal(range(R))

        # the window pixel read, kept as registers stepped with the counters (no adder between
        # the counters and the read address or the pad and availability compares): y = ybase +
        # ky, x = xbase + kx, slot = (slot_base + ky) mod R
        y = Signal(signed(ybase.shape().width + 1), init=-ph)
        x = Signal(signed(xbase.shape().width + 1), init=-pw)
        slot = Signal(range(R), init=(-ph) % R)
        pad = (y < 0) | (y >= H) | (x < 0) | (x >= W)
        # the pixel is written (when the writer is not a frame ahead) while the writer's position
        # wy·W + wx is past the reader's y·W + x (same as y < wy or y = wy and x < wx, for a
        # pixel inside the image; one outside is padding, which needs no write): their distance
        # less one is kept in a register stepped by constants (below), and this is its sign bit
        a_span = (H + 2 * ph + kh + sh + 2) * (W + 2 * pw + kw + sw + 2)
        ahead_of = Signal(signed(clog2(a_span + 1) + 2), init=ph * W + pw - 1)
        avail = ahead | ~ahead_of[-1]

        # each counter's "at its last value" in a register, stepped with it, so that the window's
        # and the frame's ends are an AND of flip-flops rather than four compares in a row
        kx_last, ky_last = Signal(init=kw == 1), Signal(init=kh == 1)
        ox_last, oy_last = Signal(init=ow == 1), Signal(init=oh == 1)
        r_last = ky_last & kx_last & ox_last & oy_last
        o_valid = Signal()
        o_pad = Signal()
        can_send = ~o_valid | self.o_stream.ready
        go = Signal()
        m.d.comb += go.eq((pad | avail) & can_send & (~r_last | ahead))

        m.d.comb += [
            rd.addr.eq((slot << colbits) | x[:colbits]),
            rd.en.eq(go),
        ]
        pad_word = 0
        for i in range(c):
            pad_word |= self._pad_code << (i * self._width)
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.o_stream.payload.eq(Mux(o_pad, Const(pad_word, word), rd.data)),
        ]
        with m.If(go):
            m.d.sync += [o_valid.eq(1), o_pad.eq(pad)]
        with m.Elif(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)

        fs0_next = Signal(range(2 * R))
        m.d.comb += fs0_next.eq(frame_slot0 + live % R)
        fs0_wrapped = Mux(fs0_next >= R, fs0_next - R, fs0_next)
        sb_frame = Signal(signed(clog2(2 * R) + 2))
        m.d.comb += sb_frame.eq(fs0_wrapped - (ph % R))
        sb_step = Signal(range(2 * R))
        m.d.comb += sb_step.eq(slot_base + sh % R)

        with m.If(go):
            m.d.sync += [kx.eq(kx + 1), kx_last.eq(kx == kw - 2), x.eq(x + 1)]
            with m.If(kx_last):
                m.d.sync += [kx.eq(0), kx_last.eq(kw == 1), ky.eq(ky + 1), ky_last.eq(ky == kh - 2),
                             x.eq(xbase), y.eq(y + 1), slot.eq(Mux(slot == R - 1, 0, slot + 1))]
                with m.If(ky_last):
                    m.d.sync += [ky.eq(0), ky_last.eq(kh == 1), ox.eq(ox + 1), ox_last.eq(ox == ow - 2),
                                 xbase.eq(xbase + sw), x.eq(xbase + sw), y.eq(ybase), slot.eq(slot_base)]
                    with m.If(ox_last):
                        sb_next = Mux(sb_step >= R, sb_step - R, sb_step)
                        m.d.sync += [ox.eq(0), ox_last.eq(ow == 1), oy.eq(oy + 1), oy_last.eq(oy == oh - 2),
                                     xbase.eq(-pw), x.eq(-pw),
                                     ybase.eq(ybase + sh), y.eq(ybase + sh),
                                     slot_base.eq(sb_next), slot.eq(sb_next)]
                        with m.If(oy_last):
                            sb_first = Mux(sb_frame < 0, sb_frame + R, sb_frame)
                            m.d.sync += [oy.eq(0), oy_last.eq(oh == 1), ybase.eq(-ph), y.eq(-ph),
                                         frame_slot0.eq(fs0_wrapped),
                                         slot_base.eq(sb_first), slot.eq(sb_first)]

        # the writer completes a frame only when not ahead; the reader ends one only when ahead
        with m.If(w_fire & w_last_pixel):
            m.d.sync += ahead.eq(1)
        with m.If(go & r_last):
            m.d.sync += ahead.eq(0)

        # the free-row margin: the writer's row end takes one (its frame end moves vrow from
        # H - 1 to live), the reader's row of windows gives sh back (its frame end moves ybase
        # from (oh - 1)·sh - ph back to -ph and vrow down by live); both may come in one cycle
        # What the writer does if it takes a pixel: a pixel, the last of a row, of the frame;
        # what the reader does if it sends one: a step along a window row, to the window's next
        # row, to the next window, to the next row of windows, to the next frame. Both come from
        # flip-flops (the counters' "last" flags), so each register's three possible sums are
        # added before ``go`` and ``w_fire`` are known, and they only select one (no carry
        # chain after the handshakes).
        w_cls = Mux(w_last_pixel, 3, Mux(wx == W - 1, 2, 1))
        r_cls = Mux(~kx_last, 1, Mux(~ky_last, 2, Mux(~ox_last, 3, Mux(~oy_last, 4, 5))))
        x_back = (ow - 1) * sw + kw - 1        # x from the last window's last column to -pw
        r_step = [0, 1, W - (kw - 1), -(kh - 1) * W + sw - (kw - 1),
                  (sh - (kh - 1)) * W - x_back, -((oh - 1) * sh + kh - 1) * W - x_back]
        w_step = [0, 1, 1, 1 - H * W]
        # the free-row margin: the writer's row end takes one (its frame end moves vrow from
        # H - 1 to live), the reader's row of windows gives sh back (its frame end moves ybase
        # from (oh - 1)·sh - ph back to -ph and vrow down by live)
        w_rows = [0, 0, -1, H - 1 - live]
        r_rows = [0, 0, 0, 0, sh, live - (oh - 1) * sh]

        def table(values, index):
            values = list(values) + [0] * ((1 << len(index)) - len(values))
            shape = signed(clog2(max(abs(v) for v in values) + 1) + 2)
            return Array([Const(v, shape) for v in values])[index]

        for reg, dw, dr in ((margin, w_rows, r_rows), (ahead_of, w_step, [-d for d in r_step])):
            w_only = table(dw, w_cls[:2])
            r_only = table(dr, r_cls[:3])
            both = table([dw[w] + dr[r] if r < 6 else 0 for r in range(8) for w in range(4)],
                         Cat(w_cls[:2], r_cls[:3]))
            m.d.sync += reg.eq(Mux(go, Mux(w_fire, reg + both, reg + r_only),
                                   Mux(w_fire, reg + w_only, reg)))
        return m
