"""The vector-vector unit of a depthwise convolution, and the window buffer that feeds it.

A depthwise convolution computes, for every output pixel and channel ``c``, the dot product of
channel ``c``'s ``K = kh·kw`` window elements with that channel's own ``K`` weights. No input
element is used by two channels, so, unlike the matrix-vector unit, the vector-vector unit
needs no input buffer: it takes one beat per cycle and every beat is used once.

Stream order (docs/contracts.md, depthwise windows): the sliding window (:class:`hw.swu.SlidingWindow`)
sends a window as ``K`` beats of whole pixels, ``(ky, kx)`` order, ``C`` channels per beat. The
vector-vector unit wants, for every output pixel, channel fold ``cf`` (``C/PE`` of them) outer
and kernel fold ``sf`` (``K/SIMD``) inner, ``PE × SIMD`` elements per beat, element
``s·PE + p`` being window element ``k = sf·SIMD + s`` of channel ``c = cf·PE + p``::

    window (K beats × C) ──▶ DepthwiseWindow ──▶ (C/PE)·(K/SIMD) beats × (SIMD × PE) ──▶ VVU
                                                                     ──▶ C/PE beats × PE outputs

:class:`DepthwiseWindow` reorders one window into that order: it writes the ``K`` pixels of a
window into a double-buffered memory of ``SIMD`` pixels per word (pixel ``k`` at word ``k // SIMD``,
lane ``k mod SIMD``), and reads each word ``C/PE`` times, selecting the channel fold's ``PE``
channels of each of its ``SIMD`` pixels. With ``PE = C`` the order is that of the window itself,
and a width converter from ``C`` to ``SIMD·C`` elements does the job (the generator uses one).

The outputs leave as ``PE`` channels per beat, channel folds in order: the HWC stream of the
output image, as from a matrix-vector unit.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .activation import fold_table
from .dtypes import DType, pack_words
from .mvu import FoldedUnit
from .pipeline import StallPipeline

__all__ = ["VVU", "DepthwiseWindow"]


def _positive(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return v


class DepthwiseWindow(wiring.Component):
    """Reorders windows of whole pixels into the vector-vector unit's channel-fold order.

    Parameters
    ----------
    width : int
        Code width of one element.
    channels : int
        ``C``, elements per input beat.
    kernel_elems : int
        ``K``, input beats (window pixels) per window.
    pe, simd : int
        Channels and window elements per output beat; ``pe`` divides ``C``, ``simd`` divides
        ``K``.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(C · width)))
        ``K`` beats per window.
    o_stream : Out(stream.Signature(unsigned(simd · pe · width)))
        ``(C/PE)·(K/SIMD)`` beats per window, element ``s·PE + p`` of beat ``(cf, sf)`` being
        channel ``cf·PE + p`` of window pixel ``sf·SIMD + s``.
    beats_per_window : int
        Output beats per window.

    A window is read once it is written whole; the other half of the buffer takes the next
    window meanwhile, so with no stalls it sends ``max(K, (C/PE)·(K/SIMD))`` cycles per window.
    """

    def __init__(self, *, width: int, channels: int, kernel_elems: int, pe: int, simd: int):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        _positive("Width", width)
        _positive("Channels", channels)
        _positive("Kernel elements", kernel_elems)
        if not isinstance(pe, int) or pe < 1 or channels % pe:
            raise ValueError(f"PE must be a positive divisor of the {channels} channels, not {pe!r}")
        if not isinstance(simd, int) or simd < 1 or kernel_elems % simd:
            raise ValueError(f"SIMD must be a positive divisor of the {kernel_elems} kernel "
                             f"elements, not {simd!r}")
        self._width, self._channels, self._k = width, channels, kernel_elems
        self._pe, self._simd = pe, simd
        self._MustUse__silence = False
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(channels * width))),
            "o_stream": Out(stream.Signature(unsigned(simd * pe * width))),
        })

    width = property(lambda self: self._width)
    channels = property(lambda self: self._channels)
    kernel_elems = property(lambda self: self._k)
    pe = property(lambda self: self._pe)
    simd = property(lambda self: self._simd)
    channel_folds = property(lambda self: self._channels // self._pe)
    kernel_folds = property(lambda self: self._k // self._simd)

    @property
    def beats_per_window(self) -> int:
        return self.channel_folds * self.kernel_folds

    @property
    def memory_shape(self) -> tuple[int, int]:
        """``(depth, width)`` of the window buffer: two windows of ``K/SIMD`` words."""
        return 2 * self.kernel_folds, self._simd * self._channels * self._width

    def elaborate(self, platform):
        m = Module()
        C, pe, simd, w = self._channels, self._pe, self._simd, self._width
        CF, SF = self.channel_folds, self.kernel_folds
        pix = C * w
        depth, _ = self.memory_shape
        m.submodules.buf = buf = Memory(shape=unsigned(simd * pix), depth=depth, init=[])
        wr = buf.write_port(granularity=pix)
        rd = buf.read_port(domain="sync")
        full = Signal(2)

        # -- writer: pixel k of the window to word k // SIMD, lane k mod SIMD, of its half
        wh = Signal()
        wsf = Signal(range(max(2, SF)))
        wlane = Signal(range(max(2, simd)))
        w_ok = ~Mux(wh, full[1], full[0])
        w_fire = self.i_stream.valid & w_ok
        w_last = (wsf == SF - 1) & (wlane == simd - 1)
        m.d.comb += [
            self.i_stream.ready.eq(w_ok),
            wr.addr.eq(Mux(wh, SF + wsf, wsf)),
            wr.data.eq(Cat(*[self.i_stream.payload] * simd)),
            wr.en.eq(Mux(w_fire, 1 << wlane, 0)),
        ]
        with m.If(w_fire):
            m.d.sync += wlane.eq(Mux(wlane == simd - 1, 0, wlane + 1))
            with m.If(wlane == simd - 1):
                m.d.sync += wsf.eq(Mux(wsf == SF - 1, 0, wsf + 1))
            with m.If(w_last):
                m.d.sync += wh.eq(~wh)

        # -- reader: a full half, word sf, channel fold cf; one register stage (the read port)
        pipe = StallPipeline("dww")
        rh = Signal()
        cf = Signal(range(max(2, CF)))
        sf = Signal(range(max(2, SF)))
        issue = Mux(rh, full[1], full[0])
        r_last = (cf == CF - 1) & (sf == SF - 1)
        m.d.comb += [rd.addr.eq(Mux(rh, SF + sf, sf)), rd.en.eq(pipe.en)]
        r_fire = pipe.en & issue
        with m.If(r_fire):
            m.d.sync += sf.eq(Mux(sf == SF - 1, 0, sf + 1))
            with m.If(sf == SF - 1):
                m.d.sync += cf.eq(Mux(cf == CF - 1, 0, cf + 1))
            with m.If(r_last):
                m.d.sync += rh.eq(~rh)
        cf1 = pipe.reg(m, cf, name="dww_cf1")
        for h in range(2):
            with m.If(w_fire & w_last & (wh == h)):
                m.d.sync += full[h].eq(1)
            with m.Elif(r_fire & r_last & (rh == h)):
                m.d.sync += full[h].eq(0)

        lanes = [rd.data[s * pix:(s + 1) * pix].word_select(cf1, pe * w) for s in range(simd)]
        _, o_valid, _ = pipe.connect(m, latency=1, i_valid=issue, o_ready=self.o_stream.ready)
        m.d.comb += [self.o_stream.payload.eq(Cat(*lanes)), self.o_stream.valid.eq(o_valid)]
        return m


class VVU(FoldedUnit):
    """Vector-vector unit: ``C`` channels, each a dot product of ``K`` elements with its own
    weights, folded ``pe`` channels × ``simd`` elements per cycle.

    Parameters
    ----------
    weights : array of int, shape (C, K)
        Weight values, row ``c`` for channel ``c`` (window elements in (ky, kx) order).
    mac, w_dtype, w_shift, in_dtype, bias, activation, acc_range, ram_style, depth,
    onehot_mode, popcount_style, weight_register, threshold_mode
        As for :class:`hw.mvu.MVU` (``activation``'s channels are the ``C`` channels).
    pe, simd : int
        Folding; ``pe`` divides ``C``, ``simd`` divides ``K``.

    Members
    -------
    i_stream : In(stream.Signature(unsigned(simd · pe · in_dtype.code_width)))
        Per output pixel, ``(C/PE)·(K/SIMD)`` beats in :class:`DepthwiseWindow`'s order.
    o_stream : Out(stream.Signature(unsigned(pe · out_width)))
        Per output pixel, ``C/PE`` beats of ``PE`` channels.
    cycles_per_vector : int
        ``(C/PE)·(K/SIMD)``: cycles per output pixel.
    latency : int
        Cycles from the first input beat accepted to the first output beat valid, with no
        stalls: ``K/SIMD - 1 + read stages + lane latency + 1 + activation latency``.

    Raises
    ------
    ValueError
        On a folding that does not divide the weights, weights outside their type or an
        unknown RAM style.
    """

    def __init__(self, *, weights, mac: str, w_dtype: DType, in_dtype: DType, activation,
                 acc_range, pe: int = 1, simd: int = 1, w_shift: int = 0, bias=None,
                 ram_style: str | None = None, depth: int = 1, onehot_mode: str = "shift",
                 popcount_style: str = "gpc6", weight_register: bool | int = True,
                 threshold_mode: str = "auto"):
        self._MustUse__silence = True  # no warning for an object whose parameters are refused
        self._setup(weights=weights, mac=mac, w_dtype=w_dtype, in_dtype=in_dtype,
                    activation=activation, acc_range=acc_range, pe=pe, simd=simd, w_shift=w_shift,
                    bias=bias, ram_style=ram_style, depth=depth, onehot_mode=onehot_mode,
                    popcount_style=popcount_style, weight_register=weight_register,
                    threshold_mode=threshold_mode, names=("(C, K)", "C", "K"))
        self._MustUse__silence = False
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(simd * pe * in_dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(pe * activation.out_dtype.code_width))),
        })

    # -- parameters ----------------------------------------------------------------------------
    channels = property(lambda self: self._weights.shape[0])
    kernel_elems = property(lambda self: self._weights.shape[1])
    mh = channels
    mw = kernel_elems
    pe = property(lambda self: self._pe)
    simd = property(lambda self: self._simd)
    mac = property(lambda self: self._mac)
    w_dtype = property(lambda self: self._w_dtype)
    w_shift = property(lambda self: self._w_shift)
    in_dtype = property(lambda self: self._in_dtype)
    activation = property(lambda self: self._activation)
    acc_range = property(lambda self: self._acc_range)
    ram_style = property(lambda self: self._ram_style)
    depth = property(lambda self: self._depth)
    popcount_style = property(lambda self: self._lane.popcount_style)
    weight_register = property(lambda self: self._weight_register)
    weights = property(lambda self: self._weights)
    bias = property(lambda self: self._bias)

    @property
    def out_dtype(self) -> DType:
        return self._activation.out_dtype

    @property
    def acc_width(self) -> int:
        return self._acc_shape.width

    @property
    def channel_folds(self) -> int:
        return self.channels // self._pe

    @property
    def kernel_folds(self) -> int:
        return self.kernel_elems // self._simd

    @property
    def cycles_per_vector(self) -> int:
        return self.channel_folds * self.kernel_folds

    @property
    def activation_latency(self) -> int:
        return 0 if self._act_unit is None else self._act_unit.latency

    @property
    def read_stages(self) -> int:
        return 1 + self._weight_register

    @property
    def latency(self) -> int:
        return (self.kernel_folds - 1 + self.read_stages + self._lane.latency + 1
                + self.activation_latency)

    # -- hardware ------------------------------------------------------------------------------
    def weight_words(self) -> list[int]:
        """Memory word at address ``cf·SF + sf``: PE × SIMD codes, PE-major, element 0 lowest."""
        pe, simd = self._pe, self._simd
        cf, sf = self.channel_folds, self.kernel_folds
        codes = self._w_dtype.encode(self._weights)
        blocks = codes.reshape(cf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(cf * sf, pe * simd)
        return pack_words(blocks, self._w_dtype.code_width)

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline("vvu")
        CF, SF, pe, simd = self.channel_folds, self.kernel_folds, self._pe, self._simd
        acw, wcw = self._in_dtype.code_width, self._w_dtype.code_width
        en = pipe.en

        # -- issue: every beat comes from the stream
        cf = Signal(range(max(2, CF)))
        sf = Signal(range(max(2, SF)))
        issue_valid = self.i_stream.valid
        m.d.comb += self.i_stream.ready.eq(en)
        with m.If(en & issue_valid):
            with m.If(sf == SF - 1):
                m.d.sync += sf.eq(0)
                m.d.sync += cf.eq(Mux(cf == CF - 1, 0, cf + 1))
            with m.Else():
                m.d.sync += sf.eq(sf + 1)

        # -- stage 1: weight word and input beat
        attrs = {}
        if self._ram_style is not None:
            attrs = {"ram_style": self._ram_style, "rom_style": self._ram_style}
        wmem = Memory(shape=unsigned(pe * simd * wcw), depth=self.cycles_per_vector,
                      init=self.weight_words(), attrs=attrs)
        m.submodules.weights = wmem
        wrp = wmem.read_port(domain="sync")
        m.d.comb += [wrp.addr.eq(self._word_counter(m, en & issue_valid, CF * SF)), wrp.en.eq(en)]
        a1 = pipe.reg(m, self.i_stream.payload, name="a_in")
        first1 = pipe.reg(m, sf == 0, name="first1")
        last1 = pipe.reg(m, sf == SF - 1, name="last1")
        cf1 = pipe.reg(m, cf, name="cf1")
        w1 = wrp.data
        for k in range(self._weight_register):   # as the MVU's
            sfx = "" if k == 0 else str(k + 1)
            w1 = pipe.reg(m, w1, name=f"w_reg{sfx}", reset_less=True)
            a1 = pipe.reg(m, a1, name=f"a_reg{sfx}")
            first1 = pipe.reg(m, first1, name=f"first1_reg{sfx}")
            last1 = pipe.reg(m, last1, name=f"last1_reg{sfx}")
            cf1 = pipe.reg(m, cf1, name=f"cf1_reg{sfx}")

        # -- lanes: channel p takes elements s·PE + p of the beat
        results = []
        for p in range(pe):
            ap = Cat(*[a1[(s * pe + p) * acw:(s * pe + p + 1) * acw] for s in range(simd)])
            wp = w1[p * simd * wcw:(p + 1) * simd * wcw]
            results.append(self._lane.build(m, pipe, ap, wp, name=f"pe{p}"))
        L = self._lane.latency
        first2 = pipe.delay(m, first1, L, name="first2")
        last2 = pipe.delay(m, last1, L, name="last2")
        cf2 = pipe.delay(m, cf1, L, name="cf2")

        # -- accumulators (partial sums wrap modulo 2^acc_width; the final value fits)
        ashape = self._acc_shape
        aw = ashape.width
        acc_valid_in = Signal()
        accs = []
        for p, res in enumerate(results):
            init = self._bias + res.offset * SF
            if res.neg_weights:   # LaneResult.neg_weights: the channel's negative weights
                init = init + res.neg_weights * (self._weights < 0).sum(axis=1)
            init = init[p::pe]
            init = [((int(v) + (1 << aw)) % (1 << aw)) for v in init]
            init_v = fold_table(init, cf2, unsigned(aw))
            acc = Signal(unsigned(aw), name=f"acc{p}")
            raw = (res.raw << res.shift)
            base = Mux(first2, init_v, acc)
            nxt = (base - raw) if res.negate else (base + raw)
            with m.If(en & acc_valid_in):
                m.d.sync += acc.eq(nxt[:aw])
            accs.append(acc.as_signed() if ashape.signed else acc)
        cf3 = pipe.reg(m, cf2, name="cf3")

        # -- activation
        if self._act_unit is not None:
            codes = self._act_unit.build(m, pipe, accs, cf3, fold_early=cf2)
        else:
            codes = self._acc_codes(m, accs)
        m.d.comb += self.o_stream.payload.eq(Cat(*codes))

        R = self.read_stages
        _, o_valid, valids = pipe.connect(m, latency=R + L + 1 + self.activation_latency,
                                          i_valid=issue_valid, o_ready=self.o_stream.ready,
                                          gates={R + L: last2}, o_ready_next=self.o_ready_next)
        m.d.comb += [acc_valid_in.eq(valids[R + L]), self.o_stream.valid.eq(o_valid)]
        return m
