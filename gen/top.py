"""The whole-network accelerator: a chain of dataflow blocks built from a network and a plan.

::

    i_stream ─▶ [dwc] ─▶ layer 0 ─▶ fifo ─▶ [dwc] ─▶ layer 1 ─▶ fifo ─▶ … ─▶ o_stream

Each layer's op (:mod:`gen.ops`) adds its blocks in stream order
(:meth:`gen.ops.base.LayerOp.hardware`); the accelerator adds a FIFO after every layer whose op
asks for one, and wires the chain. The blocks form one chain without forks, so back-pressure
alone rules out deadlock; the FIFOs after compute layers hold two output vectors so that a
layer can finish a vector while its consumer is still busy with the previous one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dtypes import DType, pack_words, unpack_words
from hw.dwc import DataWidthConverter
from hw.fifo import StreamFIFO
from hw.pipeline import mark_used

from . import area
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


def _stream_sig(width):
    return stream.Signature(data.StructLayout({"data": unsigned(width), "last": 1}))


def mvu_factory_for(family: str | None):
    """The default MVU factory for a target family: its popcount style is the one measured best
    for that family's LUTs (:attr:`gen.targets.Family.popcount_style`); ``None`` means xilinx."""
    style = get_family(family or "xilinx").popcount_style

    def factory(layer, *, pe, simd, matrix):
        return mvu_for(layer, pe=pe, simd=simd, matrix=matrix, popcount_style=style)

    factory.popcount_style = style
    return factory


class _Stage:
    """The builder a layer op adds its blocks to (:meth:`gen.ops.base.LayerOp.hardware`)."""

    def __init__(self, index: int, *, add, factory, count):
        self._index, self._prefix = index, f"l{index}"
        self._add_block, self._factory, self._count = add, factory, count
        self.blocks: list[str] = []

    def add(self, suffix: str, block, params=None) -> str:
        """Add ``block`` as ``l<i>_<suffix>``; ``params`` (a dict, or a function returning one)
        are its area-model parameters (:mod:`gen.area`)."""
        name = self._add_block(f"{self._prefix}_{suffix}", block, params)
        self.blocks.append(name)
        return name

    @property
    def popcount_style(self) -> str:
        """The popcount style of the target family (for blocks other than the MVU)."""
        return getattr(self._factory, "popcount_style", "gpc6")

    def dwc(self, dt, k: int, to: int):
        """A width converter from ``k`` to ``to`` elements of type ``dt`` per beat (none if equal)."""
        if k != to:
            block = DataWidthConverter(width=dt.code_width, i_elems=k, o_elems=to)
            self.add(f"dwc{self._count()}", block, lambda: area.dwc_params(block))

    def fifo(self, suffix: str, *, width: int, depth: int):
        block = StreamFIFO(width=width, depth=depth)
        self.add(suffix, block, lambda: area.fifo_params(block))

    def mvu(self, layer, *, pe: int, simd: int, matrix):
        try:
            mvu = self._factory(layer, pe=pe, simd=simd, matrix=matrix)
        except ValueError as e:
            raise NetworkError(f"layers[{self._index}]", f"cannot build the matrix-vector unit: {e}") from None
        self.add("mvu", mvu, lambda: mvu_area_params(mvu))
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
        """Every block, ``(name, component)``, in stream order."""
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
        """Raise a one-line error unless the network is a chain, the only graphs the
        accelerator can wire today (forks and joins come with their stream blocks)."""
        net = self._net
        if net.is_chain:
            return
        for i, layer in enumerate(net.layers):
            readers = net.consumers(layer.name)
            if len(readers) > 1:
                raise NetworkError(f"layers[{i}]", f"the hardware generator builds chains of layers only: "
                                                   f"{layer.name!r} feeds {len(readers)} layers "
                                                   f"({', '.join(net.layers[j].name for j in readers)})")
        raise NetworkError("outputs", "the hardware generator builds chains of layers only: every "
                                      "layer must read the one before it and the last be the output")

    # -- construction --------------------------------------------------------------------------
    def _add(self, name, block, params=None):
        mark_used(block, silence=True)  # elaborated with the accelerator, or not at all
        self._blocks.append((name, block, params))
        return name

    def _build(self):
        net = self._net
        k = {INPUT: self._plan.input_elems}
        dts = {INPUT: net.input.dtype}
        for i, (layer, lp) in enumerate(zip(net.layers, self._plan.layers, strict=True)):
            src = layer.inputs[0]
            stage = _Stage(i, add=self._add, factory=self._factory, count=lambda: len(self._blocks))
            b = op_for(layer).hardware(layer, lp, k[src], dts[src], stage)
            fifo_depth = b.fifo_depth
            if fifo_depth is not None and net.consumers(layer.name):
                stage.fifo("fifo", width=b.out_elems * b.out_dtype.code_width, depth=fifo_depth)
            else:
                fifo_depth = None
            if b.out_dtype != layer.out_dtype:  # pragma: no cover
                raise AssertionError("output type mismatch")
            k[layer.name], dts[layer.name] = b.out_elems, b.out_dtype
            self._stages.append(StageInfo(i, layer.name, layer.kind, lp.in_elems, layer.in_dtype,
                                          b.out_elems, b.out_dtype, b.out_beats, tuple(stage.blocks),
                                          b.latency, fifo_depth, b.acc_width, b.weight_bits,
                                          b.in_fifo_depth))
        self._out = net.outputs[0]

    def elaborate(self, platform):
        self.require_chain()
        m = Module()
        for name, block, _ in self._blocks:
            m.submodules[name] = block
        first, last_block = self._blocks[0][1], self._blocks[-1][1]
        m.d.comb += [
            first.i_stream.payload.eq(self.i_stream.payload.data),
            first.i_stream.valid.eq(self.i_stream.valid),
            self.i_stream.ready.eq(first.i_stream.ready),
        ]
        for (_, a, _), (_, b, _) in zip(self._blocks, self._blocks[1:], strict=False):
            wiring.connect(m, a.o_stream, b.i_stream)
        m.d.comb += [
            self.o_stream.payload.data.eq(last_block.o_stream.payload),
            self.o_stream.payload.last.eq(frame_last(m, self.o_stream, self.out_beats_per_frame)),
            self.o_stream.valid.eq(last_block.o_stream.valid),
            last_block.o_stream.ready.eq(self.o_stream.ready),
        ]
        return m


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
