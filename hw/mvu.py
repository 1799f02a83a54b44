"""The matrix-vector unit: a folded PE × SIMD array of MAC lanes with its weight memory,
accumulators and activation (see docs/contracts.md).

Dataflow, one beat per cycle when nothing stalls::

    issue (nf, sf) ──▶ weight memory / input buffer ──▶ PE lanes (depth) ──▶ accumulators
                                                                          ──▶ activation ──▶ o_stream

During the first channel fold (``nf == 0``) the input beats come from ``i_stream`` and are
written into an input buffer; the other ``MH/PE - 1`` folds read them back, as FINN's MVAU does,
so that a vector is accepted every ``(MH/PE)·(MW/SIMD)`` cycles. The whole pipeline stalls when
the consumer does (:class:`hw.pipeline.StallPipeline`).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .activation import THRESHOLD_MODES, RequantUnit, ThresholdUnit, acc_shape, fold_table
from .dtypes import DType, pack_words
from .lanes import Lane
from .params import MultiThreshold, NoActivation, Requant
from .pipeline import StallPipeline, mark_used

__all__ = ["MVU", "FoldedUnit", "RAM_STYLES"]

RAM_STYLES = ("block", "distributed", "logic")


class FoldedUnit(wiring.Component):
    """What the matrix-vector unit (:class:`MVU`) and the vector-vector unit
    (:class:`hw.vvu.VVU`) share: their parameters and checks, a lane whose datapath they build
    per PE, the activation unit, and the accumulators' output codes."""

    def _setup(self, *, weights, mac, w_dtype, in_dtype, activation, acc_range, pe, simd, w_shift,
               bias, ram_style, depth, onehot_mode, popcount_style, weight_register,
               threshold_mode, names) -> None:
        """Check and keep the parameters (``names``: the weight matrix's shape and its row and
        column names for the messages)."""
        shape_name, rows, cols = names
        w = np.array(weights, dtype=np.int64)
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"Weights must be a non-empty {shape_name} matrix, not shape {w.shape}")
        mh, mw = w.shape
        if not isinstance(pe, int) or pe < 1 or mh % pe:
            raise ValueError(f"PE must be a positive divisor of {rows} = {mh}, not {pe!r}")
        if not isinstance(simd, int) or simd < 1 or mw % simd:
            raise ValueError(f"SIMD must be a positive divisor of {cols} = {mw}, not {simd!r}")
        if not w_dtype.contains(w).all():
            raise ValueError(f"Weights must be {w_dtype} values")
        if ram_style is not None and ram_style not in RAM_STYLES:
            raise ValueError(f"RAM style must be block, distributed or logic, not {ram_style!r}")
        if not isinstance(activation, (MultiThreshold, Requant, NoActivation)):
            raise TypeError(f"Activation must be a MultiThreshold, Requant or NoActivation, "
                            f"not {type(activation).__name__}")
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"Threshold mode must be auto, parallel or search, "
                             f"not {threshold_mode!r}")
        b = np.zeros(mh, dtype=np.int64) if bias is None else np.array(bias, dtype=np.int64)
        if b.shape != (mh,):
            raise ValueError(f"Bias must have shape ({mh},), not {b.shape}")
        lo, hi = int(acc_range[0]), int(acc_range[1])
        if lo > hi:
            raise ValueError(f"Accumulator range must not be empty, not [{lo}, {hi}]")
        self._lane = Lane(kind=mac, simd=simd, w_dtype=w_dtype, a_dtype=in_dtype,
                          w_shift=w_shift, depth=depth, onehot_mode=onehot_mode,
                          popcount_style=popcount_style)
        mark_used(self._lane)  # it lends its datapath; it is not a submodule
        self._weights = w
        self._weights.flags.writeable = False
        self._bias = b
        self._mac, self._w_dtype, self._w_shift, self._in_dtype = mac, w_dtype, w_shift, in_dtype
        self._activation = activation
        self._acc_range = (lo, hi)
        self._acc_shape = acc_shape((lo, hi))
        self._pe, self._simd, self._ram_style, self._depth = pe, simd, ram_style, depth
        if isinstance(weight_register, bool):
            weight_register = int(weight_register)
        if not isinstance(weight_register, int) or not 0 <= weight_register <= 2:
            raise ValueError(f"Weight register must be 0, 1 or 2 register stages, not {weight_register!r}")
        self._weight_register = weight_register
        #: the consumer's ``ready`` of the next cycle, where the consumer is a FIFO that gives it
        #: (:attr:`hw.fifo.StreamFIFO.w_rdy_next`; set by :class:`gen.top.Accelerator`): the stall
        #: enable is then a flip-flop (:meth:`hw.pipeline.StallPipeline.connect`)
        self.o_ready_next = None
        if isinstance(activation, MultiThreshold):
            self._act_unit = ThresholdUnit(activation=activation, channels=mh, pe=pe,
                                           acc_range=(lo, hi), threshold_mode=threshold_mode)
        elif isinstance(activation, Requant):
            self._act_unit = RequantUnit(activation=activation, channels=mh, pe=pe,
                                         acc_range=(lo, hi))
        else:
            self._act_unit = None
        if self._act_unit is not None:
            mark_used(self._act_unit)

    @staticmethod
    def _word_counter(m, step, words: int) -> Signal:
        """The weight memory's address: a counter of the issued beats modulo ``words`` (the
        fold counters' ``outer · SF + inner``, without the multiply-add in front of the read
        port), advancing when ``step`` is high."""
        addr = Signal(range(max(2, words)), name="w_addr")
        # the next address kept in a register of its own: Yosys moves ``addr``'s register into
        # the read port (a registered address), so the memory is addressed by what ``addr``
        # loads; a select of two registers there, not an increment and its carry chain
        nxt = Signal(range(max(2, words)), init=1 % max(1, words), name="w_addr_next")
        with m.If(step):
            m.d.sync += [addr.eq(nxt), nxt.eq(Mux(nxt == words - 1, 0, nxt + 1))]
        return addr

    def _acc_codes(self, m, accs) -> list:
        """The accumulators as output codes (no activation): two's complement codes of the
        output type's width, sign-extended where the accumulator is narrower (a range of
        [-1, 0] has a 1-bit accumulator and a 2-bit int output)."""
        cw = self.out_dtype.code_width
        codes = []
        for p, a in enumerate(accs):
            if len(a) < cw:
                wide = Signal(signed(cw) if self._acc_shape.signed else unsigned(cw),
                              name=f"acc_code{p}")
                m.d.comb += wide.eq(a)
                a = wide
            codes.append(a[:cw])
        return codes


class MVU(FoldedUnit):
    """Matrix-vector unit: ``MH`` output channels × ``MW`` inputs, folded ``pe`` × ``simd``.

    Parameters
    ----------
    weights : array of int, shape (MH, MW)
        Weight *values* (rows = output channels), legal values of ``w_dtype``.
    mac : str
        MAC kind: xnor, and, ternary, onehot, int, adder.
    w_dtype : DType
        Weight type.
    w_shift : int
        ``adder`` only: weights are used as ``w << w_shift``.
    in_dtype : DType
        Input element type.
    bias : array of int, shape (MH,), or None
        Added to the dot product before the activation.
    activation : MultiThreshold, Requant or NoActivation
        From :mod:`hw.params`. With ``NoActivation`` the output is the accumulator as a two's
        complement code of ``activation.out_dtype.code_width`` bits.
    acc_range : tuple[int, int]
        The inferred accumulator range (``layer.acc_lo.min(), layer.acc_hi.max()``, bias
        included); it fixes the accumulator width. Never guessed.
    pe, simd : int
        Folding; must divide MH and MW.
    ram_style : str or None
        ``"block"``, ``"distributed"`` or ``"logic"`` for the weight memory; None lets the
        synthesis tool choose.
    depth : int
        Pipeline registers in each lane's reduction tree.
    onehot_mode : str
        ``onehot`` only: ``"shift"`` or ``"counters"``.
    popcount_style : str
        ``"gpc6"``, ``"fa"`` or ``"carry"``: how the lanes build their popcounts
        (chosen per target family by the generator); no effect on values or timing.
    weight_register : bool or int
        Register stages on the weight memory's read data (and the input beat and fold flags
        with it) before the lanes, 0 to 2 (True is 1): one more cycle of latency each. With one
        the block RAM's slow clock-to-out no longer shares a cycle with the lanes' logic; with
        two (block-RAM weights on ECP5, whose first register is the DP16KD's own) neither does
        the long route out of the block RAM.
    threshold_mode : str
        ``MultiThreshold`` only: ``"parallel"``, ``"search"`` or ``"auto"`` (see
        :class:`hw.activation.ThresholdUnit`; the search adds ``ceil(log2(T + 1)) - 1`` cycles
        of latency and saves most comparators for large T).

    Members
    -------
    i_stream : In(stream.Signature(unsigned(simd · in_dtype.code_width)))
    o_stream : Out(stream.Signature(unsigned(pe · out_width)))
    cycles_per_vector : int
        ``(MH/PE)·(MW/SIMD)``.
    latency : int
        Cycles from the first input beat accepted to the first output beat valid, with no stalls.

    Raises
    ------
    ValueError
        On a folding that does not divide the matrix, weights outside their type or an
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
                    threshold_mode=threshold_mode, names=("(MH, MW)", "MH", "MW"))
        self._MustUse__silence = False
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(simd * in_dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(pe * activation.out_dtype.code_width))),
        })

    # -- parameters ----------------------------------------------------------------------------
    mh = property(lambda self: self._weights.shape[0])
    mw = property(lambda self: self._weights.shape[1])
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

    @property
    def threshold_mode(self) -> str | None:
        """``"parallel"`` or ``"search"`` (the activation unit's datapath), None without
        thresholds."""
        return self._act_unit.mode if isinstance(self._act_unit, ThresholdUnit) else None
    weights = property(lambda self: self._weights)
    bias = property(lambda self: self._bias)

    @property
    def out_dtype(self) -> DType:
        return self._activation.out_dtype

    @property
    def acc_width(self) -> int:
        return self._acc_shape.width

    @property
    def neuron_folds(self) -> int:
        return self.mh // self._pe

    @property
    def synapse_folds(self) -> int:
        return self.mw // self._simd

    @property
    def cycles_per_vector(self) -> int:
        return self.neuron_folds * self.synapse_folds

    @property
    def activation_latency(self) -> int:
        return 0 if self._act_unit is None else self._act_unit.latency

    @property
    def weight_stage_bits(self) -> int:
        """Flip-flop bits of one weight register stage (:meth:`elaborate`): the read data, the
        input beat, the two fold flags, the neuron-fold index and the stage's valid bit."""
        return (self._pe * self._simd * self._w_dtype.code_width
                + self._simd * self._in_dtype.code_width + 3 + (max(2, self.neuron_folds) - 1).bit_length())

    @property
    def read_stages(self) -> int:
        """Register stages from issue to the lanes: the memory read, then the weight register."""
        return 1 + self._weight_register

    @property
    def latency(self) -> int:
        # last beat of fold 0 issued at SF-1; memory read (+ weight register); lanes;
        # accumulate 1; activation
        return (self.synapse_folds - 1 + self.read_stages + self._lane.latency + 1
                + self.activation_latency)

    @property
    def weight_memory_bits(self) -> int:
        return self.cycles_per_vector * self._pe * self._simd * self._w_dtype.code_width

    # -- hardware ------------------------------------------------------------------------------
    def weight_words(self) -> list[int]:
        """Memory word at address ``nf·SF + sf``: PE × SIMD codes, PE-major, element 0 lowest."""
        pe, simd = self._pe, self._simd
        nf, sf = self.neuron_folds, self.synapse_folds
        codes = self._w_dtype.encode(self._weights)
        # (nf, pe, sf, simd) -> (nf, sf, pe, simd): one row of PE × SIMD codes per address
        blocks = codes.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
        return pack_words(blocks, self._w_dtype.code_width)

    def _init_values(self, res) -> np.ndarray:
        """Accumulator start per channel: the bias plus the lanes' constant offsets (and, for
        :attr:`LaneResult.neg_weights`, the number of negative weights of the row)."""
        init = self._bias + res.offset * self.synapse_folds
        if res.neg_weights:
            init = init + res.neg_weights * (self._weights < 0).sum(axis=1)
        return init

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline("mvu")
        NF, SF, pe, simd = self.neuron_folds, self.synapse_folds, self._pe, self._simd
        acw, wcw = self._in_dtype.code_width, self._w_dtype.code_width
        en = pipe.en

        # -- issue: fold counters and the source of the input beat
        nf = Signal(range(max(2, NF)))
        sf = Signal(range(max(2, SF)))
        issue_valid = Signal()
        # nf == 0 kept in a register: it gates i_ready, the head of the path into the FIFO before
        first_fold = Signal(init=1, name="first_fold")
        m.d.comb += issue_valid.eq(Mux(first_fold, self.i_stream.valid, 1))
        m.d.comb += self.i_stream.ready.eq(en & first_fold)
        with m.If(en & issue_valid):
            with m.If(sf == SF - 1):
                m.d.sync += sf.eq(0)
                m.d.sync += nf.eq(Mux(nf == NF - 1, 0, nf + 1))
                m.d.sync += first_fold.eq(nf == NF - 1)
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
        m.d.comb += [wrp.addr.eq(self._word_counter(m, en & issue_valid, NF * SF)), wrp.en.eq(en)]
        a_in = pipe.reg(m, self.i_stream.payload, name="a_in")
        if NF > 1:
            buf = Memory(shape=unsigned(simd * acw), depth=SF, init=[])
            m.submodules.input_buffer = buf
            bwp = buf.write_port()
            brp = buf.read_port(domain="sync")
            m.d.comb += [bwp.addr.eq(sf), bwp.data.eq(self.i_stream.payload),
                         bwp.en.eq(en & first_fold & self.i_stream.valid),
                         brp.addr.eq(sf), brp.en.eq(en)]
            from_stream = pipe.reg(m, first_fold, name="from_stream")
            a1 = Mux(from_stream, a_in, brp.data)
        else:
            a1 = a_in
        first1 = pipe.reg(m, sf == 0, name="first1")
        last1 = pipe.reg(m, sf == SF - 1, name="last1")
        nf1 = pipe.reg(m, nf, name="nf1")
        w1 = wrp.data
        for k in range(self._weight_register):
            # stage 2 (and 3): the read data (a register next to, or inside, the block RAM; the
            # second a fabric register, so that the route out of the block RAM has a cycle of its
            # own), with the input beat and the fold flags kept aligned
            sfx = "" if k == 0 else str(k + 1)
            w1 = pipe.reg(m, w1, name=f"w_reg{sfx}", reset_less=True)   # the first: into OUTREG
            a1 = pipe.reg(m, a1, name=f"a_reg{sfx}")
            first1 = pipe.reg(m, first1, name=f"first1_reg{sfx}")
            last1 = pipe.reg(m, last1, name=f"last1_reg{sfx}")
            nf1 = pipe.reg(m, nf1, name=f"nf1_reg{sfx}")

        # -- lanes
        a_count = None
        if self._lane.shares_activation_count:
            a_count = self._lane.activation_count(m, pipe, a1, name="acnt")
        results = []
        for p in range(pe):
            wp = w1[p * simd * wcw:(p + 1) * simd * wcw]
            results.append(self._lane.build(m, pipe, a1, wp, a_count=a_count, name=f"pe{p}"))
        L = self._lane.latency
        first2 = pipe.delay(m, first1, L, name="first2")
        last2 = pipe.delay(m, last1, L, name="last2")
        nf2 = pipe.delay(m, nf1, L, name="nf2")

        # -- accumulators (partial sums wrap modulo 2^acc_width; the final value fits)
        ashape = self._acc_shape
        aw = ashape.width
        acc_valid_in = Signal()   # valid bit of the lane outputs (from the valid chain)
        accs = []
        for p, res in enumerate(results):
            init = self._init_values(res)[p::pe]
            init = [((int(v) + (1 << aw)) % (1 << aw)) for v in init]
            init_v = fold_table(init, nf2, unsigned(aw))
            acc = Signal(unsigned(aw), name=f"acc{p}")
            raw = (res.raw << res.shift)
            base = Mux(first2, init_v, acc)
            nxt = (base - raw) if res.negate else (base + raw)
            with m.If(en & acc_valid_in):
                m.d.sync += acc.eq(nxt[:aw])
            accs.append(acc.as_signed() if ashape.signed else acc)
        nf3 = pipe.reg(m, nf2, name="nf3")

        # -- activation
        if self._act_unit is not None:
            codes = self._act_unit.build(m, pipe, accs, nf3, fold_early=nf2)
        else:
            codes = self._acc_codes(m, accs)
        m.d.comb += self.o_stream.payload.eq(Cat(*codes))

        # -- valid chain: issue, stage 1 (and the weight register), lanes, accumulators (only
        # last beats go on), activation
        R = self.read_stages
        _, o_valid, valids = pipe.connect(m, latency=R + L + 1 + self.activation_latency,
                                          i_valid=issue_valid, o_ready=self.o_stream.ready,
                                          gates={R + L: last2}, o_ready_next=self.o_ready_next)
        m.d.comb += [acc_valid_in.eq(valids[R + L]), self.o_stream.valid.eq(o_valid)]
        return m

