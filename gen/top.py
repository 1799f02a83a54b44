"""The whole-network accelerator: the dataflow blocks of a network's graph, built from the
network and a plan.

::

    i_stream ─▶ [dwc] ─▶ layer 0 ─▶ fifo ─▶ fork ─┬─▶ [dwc] ─▶ conv ─▶ fifo ─▶ … ─▶ add ─▶ … ─▶ o_stream
                                                  └─▶ [dwc] ─▶ skip FIFO ──────────▶┘

Each layer's op (:mod:`gen.ops`) adds its blocks in stream order
(:meth:`gen.ops.base.LayerOp.hardware`); the accelerator adds a FIFO after every layer whose op
asks for one, a fork (:class:`hw.streams.Fork`) on every tensor read by several layers, and in
front of every join (``add``, ``concat``) each input's width converter and, on an input that
arrives early, a FIFO sized by the cycle model (:func:`gen.cycles.join_fifo_depths`). On a
chain, back-pressure alone rules out deadlock; on a reconvergent pair of paths, the join FIFO
does (when it is full, the long path has all the input its next output needs). The FIFOs after
compute layers hold two output vectors so that a layer can finish a vector while its consumer
is still busy with the previous one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth import Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dtypes import DType, pack_words, unpack_words
from hw.dwc import DataWidthConverter
from hw.fifo import StreamFIFO, ready_ahead
from hw.pad import PadGather, VectorTrim
from hw.pipeline import mark_used
from hw.streams import Fork

from . import area
from . import cycles as cm
from .errors import NetworkError
from .ir import INPUT, Network
from .ops import op_for
from .ops.compute import mvu_area_params, mvu_for
from .ops.conv2d import conv_matrix
from .ops.dense import hwc_columns
from .plan import Plan
from .targets import get_family

__all__ = ["Accelerator", "StageInfo", "hwc_columns", "conv_matrix", "frame_layout", "mvu_factory_for"]

def frame_layout(shape) -> str:
    """How a tensor of ``shape`` streams: ``"HWC"`` for an image, ``"N"`` for a vector."""
    return "HWC" if len(shape) == 3 else "N"


@dataclass(frozen=True)
class StageInfo:
    """What the top level built for one layer (for the manifest)."""

    index: int
    name: str
    kind: str
    in_elems: int
    in_dtype: DType
    out_elems: int
    out_dtype: DType
    out_beats_per_frame: int
    blocks: tuple[str, ...]
    latency: int | None
    fifo_depth: int | None
    acc_width: int | None
    weight_bits: int
    in_fifo_depth: int | None = None
    #: A join's inputs: the depth of the FIFO on each (None: none), from the cycle model.
    join_fifo_depths: tuple[int | None, ...] = ()
    #: A join's inputs: the elements per beat each is converted to.
    join_elems: tuple[int, ...] = ()
    #: The pipeline registers of its matrix-vector unit's reduction trees (None: no MVU).
    tree_depth: int | None = None


def _stream_sig(width):
    return stream.Signature(data.StructLayout({"data": unsigned(width), "last": 1}))


def weight_registers(family: str, params: dict) -> int:
    """Register stages on a matrix-vector unit's weight read data
    (:attr:`hw.mvu.MVU.weight_register`) for its area-model parameters: two where the weights
    are in ECP5 block RAM (the DP16KD's output register, then a fabric register, so that the
    long route out of the block RAM has a cycle of its own), else one."""
    from .area import weights_in_bram

    return 2 if family == "ecp5" and weights_in_bram(params, family) else 1


def mvu_factory_for(family: str | None):
    """The default MVU factory for a target family: its popcount style is the one measured best
    for that family's LUTs (:attr:`gen.targets.Family.popcount_style`), the pipeline depth of
    its lanes' reduction trees follows the SIMD and the LUT size (:func:`hw.trees.tree_depth`)
    unless ``tree_depth`` is given (a layer's ``tree_depth``, :class:`gen.plan.LayerPlan`);
    ``None`` means xilinx."""
    from hw.lanes import term_levels
    from hw.trees import tree_depth as default_depth

    from .ops.compute import mvu_area_params

    fam = get_family(family or "xilinx")
    style = fam.popcount_style

    def factory(layer, *, pe, simd, matrix, tree_depth=None):
        if tree_depth is None:
            tree_depth = default_depth(simd or layer.simd or 1, fam.lut_inputs,
                                       term_levels(layer.mac, layer.w_dtype, layer.in_dtype))
        unit = mvu_for(layer, pe=pe, simd=simd, matrix=matrix, popcount_style=style, depth=tree_depth)
        regs = weight_registers(fam.name, mvu_area_params(unit))
        if regs != unit.weight_register:
            mark_used(unit, silence=True)   # priced, then built again with its registers
            unit = mvu_for(layer, pe=pe, simd=simd, matrix=matrix, popcount_style=style,
                           depth=tree_depth, weight_register=regs)
        return unit

    factory.popcount_style = style
    return factory


#: The accelerator's own ports, as link ends (resolved when it is elaborated).
_IN, _OUT = object(), object()


class _Stage:
    """The builder a layer op adds its blocks to (:meth:`gen.ops.base.LayerOp.hardware`).

    Every block added reads the stream the previous one sends (``cursor``); a join block
    (:meth:`join`) reads the streams of the layer's inputs, each brought to the join by the
    accelerator."""

    def __init__(self, index: int, *, add, link, factory, count):
        self._index, self._prefix = index, f"l{index}"
        self._add_block, self._link, self._factory, self._count = add, link, factory, count
        self.blocks: list[str] = []
        self.cursor = None          # the stream the next block reads
        self.join_inputs: list = []  # the streams a join block reads
        self.mvu_built = False
        self.mvu_depth: int | None = None   # the reduction-tree depth of the MVU built

    def _named(self, suffix, block, params):
        name = self._add_block(f"{self._prefix}_{suffix}", block, params)
        self.blocks.append(name)
        return name

    def add(self, suffix: str, block, params=None) -> str:
        """Add ``block`` as ``l<i>_<suffix>``, reading the stream of the block before it;
        ``params`` (a dict, or a function returning one) are its area-model parameters
        (:mod:`gen.area`)."""
        name = self._named(suffix, block, params)
        if self.cursor is not None:
            self._link(self.cursor, block.i_stream)
        self.cursor = block.o_stream
        return name

    def join(self, suffix: str, block, params=None) -> str:
        """Add a join block, whose ``i_stream0``, ``i_stream1``, … read the layer's inputs."""
        name = self._named(suffix, block, params)
        for j, src in enumerate(self.join_inputs):
            self._link(src, getattr(block, f"i_stream{j}"))
        self.cursor = block.o_stream
        return name

    def fork(self, src, *, width: int, count: int) -> list:
        """A :class:`hw.streams.Fork` of stream ``src`` to ``count`` readers; its outputs."""
        block = Fork(width=width, count=count)
        self._named(f"fork{self._count()}", block, lambda: area.fork_params(block))
        self._link(src, block.i_stream)
        return list(block.o_streams)

    @property
    def popcount_style(self) -> str:
        """The popcount style of the target family (for blocks other than the MVU)."""
        return getattr(self._factory, "popcount_style", "gpc6")

    def dwc(self, dt, k: int, to: int):
        """A width converter from ``k`` to ``to`` elements of type ``dt`` per beat (none if equal)."""
        if k != to:
            block = DataWidthConverter(width=dt.code_width, i_elems=k, o_elems=to)
            self.add(f"dwc{self._count()}", block, lambda: area.dwc_params(block))

    def pad_gather(self, dt, elems: int, *, ratio: int, parts: int):
        """A :class:`hw.pad.PadGather`: vectors of ``parts`` beats of ``elems`` elements into
        beats of ``ratio · elems``, the last one completed with zero codes."""
        block = PadGather(width=dt.code_width, elems=elems, ratio=ratio, parts=parts)
        self.add(f"pad{self._count()}", block, lambda: area.pad_params(block))

    def trim(self, dt, elems: int, *, ratio: int, keep: int):
        """A :class:`hw.pad.VectorTrim`: ``ratio`` beats of ``elems`` into one of ``keep``."""
        block = VectorTrim(width=dt.code_width, elems=elems, ratio=ratio, keep=keep)
        self.add(f"trim{self._count()}", block, lambda: area.pad_params(block))

    def fifo(self, suffix: str, *, width: int, depth: int):
        block = StreamFIFO(width=width, depth=depth)
        self.add(suffix, block, lambda: area.fifo_params(block))

    def mvu(self, layer, *, pe: int, simd: int, matrix, tree_depth: int | None = None):
        """The matrix-vector unit of the layer (from the accelerator's factory); ``tree_depth``
        (where the plan sets it) the pipeline registers of its reduction trees."""
        extra = {} if tree_depth is None else {"tree_depth": tree_depth}
        self.mvu_built = True
        try:
            mvu = self._factory(layer, pe=pe, simd=simd, matrix=matrix, **extra)
        except ValueError as e:
            raise NetworkError(f"layers[{self._index}]", f"cannot build the matrix-vector unit: {e}") from None
        self.add("mvu", mvu, lambda: mvu_area_params(mvu))
        self.mvu_depth = getattr(mvu, "depth", None)
        return mvu


class Accelerator(wiring.Component):
    """The accelerator of a network, folded as ``plan`` says.

    Parameters
    ----------
    net : Network
    plan : Plan
    mvu_factory : callable, optional
        ``f(layer, *, pe, simd, matrix)`` returning a matrix-vector unit (default:
        :func:`gen.ops.compute.mvu_for` with the popcount style of ``family``).
    family : str, optional
        Target FPGA family (xilinx, ecp5, ice40), which picks the popcount style; default xilinx.

    Members
    -------
    i_stream : In(stream.Signature(StructLayout({"data": unsigned(in_elems · in_width), "last": 1})))
        ``in_beats_per_frame`` beats per frame, element 0 in the LSBs. ``last`` is accepted
        but not needed: frames are counted.
    o_stream : Out(stream.Signature(StructLayout({"data": unsigned(out_elems · out_width), "last": 1})))
        ``last`` is set on the final beat of each frame.
    """

    def __init__(self, net: Network, plan: Plan, *, mvu_factory=None, family: str | None = None):
        if len(plan.layers) != len(net.layers):
            raise ValueError(f"Plan has {len(plan.layers)} layers, the network {len(net.layers)}")
        self._net, self._plan = net, plan
        self._factory = mvu_factory or mvu_factory_for(family)
        self.family = family or "xilinx"
        self._blocks: list[tuple[str, wiring.Component, object]] = []
        self._stages: list[StageInfo] = []
        self._build()
        super().__init__({
            "i_stream": In(_stream_sig(self.in_elems * net.input.dtype.code_width)),
            "o_stream": Out(_stream_sig(self.out_elems * self.out_dtype.code_width)),
        })

    # -- description ---------------------------------------------------------------------------
    net = property(lambda self: self._net)
    plan = property(lambda self: self._plan)
    stages = property(lambda self: tuple(self._stages))
    in_elems = property(lambda self: self._plan.input_elems)
    in_dtype = property(lambda self: self._net.input.dtype)

    @property
    def in_beats_per_frame(self) -> int:
        return math.prod(self._net.input.shape) // self.in_elems

    @property
    def out_elems(self) -> int:
        return self._out_stage.out_elems

    @property
    def out_dtype(self) -> DType:
        return self._out_stage.out_dtype

    @property
    def out_beats_per_frame(self) -> int:
        return self._out_stage.out_beats_per_frame

    @property
    def _out_stage(self) -> StageInfo:
        return self._stages[self._net.index(self._out)]

    @property
    def blocks(self) -> tuple[tuple[str, wiring.Component], ...]:
        """Every block, ``(name, component)``, layer by layer in topological order (each layer's
        in stream order)."""
        return tuple((n, b) for n, b, _ in self._blocks)

    def block_params(self, name: str) -> dict:
        """The area model's parameters of block ``name`` (:mod:`gen.area`)."""
        for n, _, params in self._blocks:
            if n == name:
                return params() if callable(params) else params
        raise KeyError(name)

    def mark_used(self):
        """Described (e.g. for an estimate), not necessarily elaborated: no warning."""
        self._MustUse__used = True

    def require_chain(self):
        """Raise a one-line error naming the layer unless the accelerator can wire the network:
        a DAG whose joins are ``add`` or ``concat`` layers, with one output that every layer
        leads to (a tensor nobody reads would stall the stream that makes it). The name is kept
        from when only chains were built."""
        net = self._net
        for extra in net.outputs[1:]:
            self.mark_used()
            raise NetworkError(f"layers[{net.index(extra)}]", f"the hardware generator builds one output "
                                                              f"stream: {extra!r} is a second output "
                                                              f"(outputs: {', '.join(net.outputs)})")
        for i, layer in enumerate(net.layers):
            if not net.consumers(layer.name) and layer.name != net.outputs[0]:
                self.mark_used()
                raise NetworkError(f"layers[{i}]", f"{layer.name!r} is read by no layer and is not the "
                                                   f"output: its stream would stall the accelerator")

    # -- construction --------------------------------------------------------------------------
    def _add(self, name, block, params=None):
        mark_used(block, silence=True)  # elaborated with the accelerator, or not at all
        self._blocks.append((name, block, params))
        return name

    def _link(self, src, dst):
        self._links.append((src, dst))

    def _build(self):
        net, plan = self._net, self._plan
        self._links: list = []
        readers = {INPUT: 0, **{layer.name: 0 for layer in net.layers}}
        for layer in net.layers:
            for t in layer.inputs:
                readers[t] += 1
        readers[net.outputs[0]] += 1
        port = {INPUT: _IN}              # the stream of each tensor (before any fork)
        free: dict[str, list] = {}       # a forked tensor's outputs not yet handed out
        k = {INPUT: plan.input_elems}
        dts = {INPUT: net.input.dtype}
        times = {INPUT: cm.input_timing(net, plan)}               # the cycle model, frame 0
        paced = {INPUT: cm.input_timing(net, plan, paced=True)}   # at the steady-state rate

        def take(tensor, stage):
            """The stream one reader of ``tensor`` reads: the tensor's own, or a fork output."""
            if readers[tensor] <= 1:
                return port[tensor]
            if tensor not in free:
                free[tensor] = stage.fork(port[tensor], width=k[tensor] * dts[tensor].code_width,
                                          count=readers[tensor])
            return free[tensor].pop(0)

        for i, (layer, lp) in enumerate(zip(net.layers, plan.layers, strict=True)):
            op = op_for(layer)
            stage = _Stage(i, add=self._add, link=self._link, factory=self._factory,
                           count=lambda: len(self._blocks))
            srcs = [take(t, stage) for t in layer.inputs]
            depths, ke = (), ()
            if op.arity == 1:
                stage.cursor = srcs[0]
                k_in, dt_in = k[layer.inputs[0]], dts[layer.inputs[0]]
            else:
                ks = [k[t] for t in layer.inputs]
                ke = tuple(op.join_input_elems(layer, ks))
                depths = cm.join_fifo_depths([paced[t] for t in layer.inputs], ks, ke)
                for j, (t, src) in enumerate(zip(layer.inputs, srcs, strict=True)):
                    stage.cursor = src
                    stage.dwc(dts[t], k[t], ke[j])
                    if depths[j] is not None:
                        stage.fifo(f"jfifo{j}", width=ke[j] * dts[t].code_width, depth=depths[j])
                    stage.join_inputs.append(stage.cursor)
                stage.cursor = None
                k_in, dt_in = lp.in_elems, tuple(dts[t] for t in layer.inputs)
            try:
                b = op.hardware(layer, lp, k_in, dt_in, stage)
            except ValueError as e:   # a block refusing its parameters: one line naming the layer
                msg = str(e)
                raise NetworkError(f"layers[{i}]", f"cannot build its hardware: {msg[:1].lower()}{msg[1:]}") from None
            if lp.tree_depth is not None and not stage.mvu_built:
                raise NetworkError(f"layers[{i}].tree_depth", f"a {layer.kind} layer has no "
                                                              "matrix-vector unit to pipeline")
            fifo_depth = b.fifo_depth
            if fifo_depth is not None and net.consumers(layer.name):
                stage.fifo("fifo", width=b.out_elems * b.out_dtype.code_width, depth=fifo_depth)
            else:
                fifo_depth = None
            if b.out_dtype != layer.out_dtype:  # pragma: no cover
                raise AssertionError("output type mismatch")
            k[layer.name], dts[layer.name] = b.out_elems, b.out_dtype
            port[layer.name] = stage.cursor
            info = StageInfo(i, layer.name, layer.kind, lp.in_elems, layer.in_dtype,
                             b.out_elems, b.out_dtype, b.out_beats, tuple(stage.blocks),
                             b.latency, fifo_depth, b.acc_width, b.weight_bits,
                             b.in_fifo_depth, tuple(depths), ke, stage.mvu_depth)
            self._stages.append(info)
            times[layer.name] = cm.layer_timing(layer, lp, info, times, k)[1]
            paced[layer.name] = cm.layer_timing(layer, lp, info, paced, k)[1]
        self._out = net.outputs[0]
        if readers[self._out] == 1:   # else a layer reads it after it: refused by require_chain
            self._link(port[self._out], _OUT)
        self._ready_ahead()

    def _ready_ahead(self):
        """Every unit that writes straight into a FIFO takes its ``ready`` of the next cycle
        (:func:`hw.fifo.ready_ahead`)."""
        owner = {id(b.o_stream): b for _, b, _ in self._blocks if hasattr(b, "o_stream")}
        fifo_of = {id(b.i_stream): b for _, b, _ in self._blocks if isinstance(b, StreamFIFO)}
        for src, dst in self._links:
            if id(src) in owner and id(dst) in fifo_of:
                ready_ahead(owner[id(src)], fifo_of[id(dst)])

    @property
    def join_fifo_bits(self) -> int:
        """Bits of the FIFOs at the joins' inputs (the skip paths of residual blocks)."""
        return sum(d * len(b.i_stream.payload) for n, b, _ in self._blocks
                   if "_jfifo" in n and (d := b.depth))

    def elaborate(self, platform):
        self.require_chain()
        m = Module()
        for name, block, _ in self._blocks:
            m.submodules[name] = block
            _name_streams(name, block)
        for src, dst in self._links:
            if src is _IN:
                m.d.comb += [dst.payload.eq(self.i_stream.payload.data),
                             dst.valid.eq(self.i_stream.valid),
                             self.i_stream.ready.eq(dst.ready)]
            elif dst is _OUT:
                m.d.comb += [
                    self.o_stream.payload.data.eq(src.payload),
                    self.o_stream.payload.last.eq(frame_last(m, self.o_stream, self.out_beats_per_frame)),
                    self.o_stream.valid.eq(src.valid),
                    src.ready.eq(self.o_stream.ready),
                ]
            else:
                wiring.connect(m, src, dst)
        return m


def _name_streams(name: str, block) -> None:
    """Name the signals of ``block``'s stream ports after the block: ``o_stream`` of ``l0_mvu``
    becomes ``l0_mvu__o_valid``, ``l0_mvu__o_ready`` and ``l0_mvu__o_payload``; ``i_stream`` and
    ``i_stream<j>`` become ``…__i_…`` and ``…__i<j>_…``, a fork's ``o_streams[j]`` ``…__o<j>_…``.

    The accelerator reads and drives these signals, so they are wires of its own module too,
    where Amaranth would otherwise tell the blocks' ``i_stream__valid`` apart as
    ``i_stream__valid$10``, ``$11``, … — unreadable in a waveform (``nomul sim --waves``)."""
    ports = []
    for pname in ("i_stream", "o_stream"):
        if hasattr(block, pname):
            ports.append((pname[0], getattr(block, pname)))
    j = 0
    while hasattr(block, f"i_stream{j}"):
        ports.append((f"i{j}", getattr(block, f"i_stream{j}")))
        j += 1
    for j, port in enumerate(getattr(block, "o_streams", ())):
        ports.append((f"o{j}", port))
    for label, port in ports:
        for field in ("payload", "valid", "ready"):
            Value.cast(getattr(port, field)).name = f"{name}__{label}_{field}"


def frame_last(m, port, beats: int):
    """High on the last of every ``beats`` beats of a stream: a counter of its transfers."""
    count = Signal(range(max(2, beats)))
    with m.If(port.valid & port.ready):
        m.d.sync += count.eq(Mux(count == beats - 1, 0, count + 1))
    return count == beats - 1


# -- frames to beats and back (for testbenches) ---------------------------------------------------
def encode_frames(acc: Accelerator, x: np.ndarray) -> list[int]:
    """Input values (N, *input shape) as the ``data`` words of the input beats, in order."""
    x = np.asarray(x)
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    dt = acc.in_dtype
    return pack_words(dt.encode(x.reshape(-1, acc.in_elems)), dt.code_width)


def decode_outputs(acc: Accelerator, words, frames: int) -> np.ndarray:
    """Output ``data`` words back to values (frames, *output shape), in the golden model's
    layout (CHW for images)."""
    dt, k = acc.out_dtype, acc.out_elems
    cw = dt.code_width
    codes = unpack_words(words, cw, k)
    vals = dt.decode(codes).reshape(frames, -1)
    shape = acc.net.output_shape
    if len(shape) == 3:
        c, h, w = shape
        return vals.reshape(frames, h, w, c).transpose(0, 3, 1, 2)
    return vals.reshape(frames, *shape)
