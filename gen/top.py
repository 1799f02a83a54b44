"""The whole-network accelerator: a chain of dataflow blocks built from a network and a plan.

::

    i_stream ─▶ [dwc] ─▶ layer 0 ─▶ fifo ─▶ [dwc] ─▶ layer 1 ─▶ fifo ─▶ … ─▶ o_stream

* dense: width converter to SIMD, matrix-vector unit (columns permuted from the golden model's
  CHW flatten order to the HWC streaming order when its input is an image);
* conv2d: width converter to whole pixels, sliding window, width converter to SIMD,
  matrix-vector unit with the weights in (kh, kw, c) order;
* maxpool2d: width converter to whole pixels, sliding window and element-wise max;
* argmax: width converter to a divisor of the channels, argmax.

The blocks form one chain without forks, so back-pressure alone rules out deadlock; the FIFOs
after compute layers hold two output vectors so that a layer can finish a vector while its
consumer is still busy with the previous one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.argmax import Argmax as ArgmaxUnit
from hw.dwc import DataWidthConverter
from hw.fifo import StreamFIFO
from hw.pool import MaxPool2d as MaxPoolUnit
from hw.swu import SlidingWindow

from .dtypes import DType
from .errors import NetworkError
from .ir import Argmax, Conv2d, Dense, MaxPool2d, Network
from .plan import Plan

__all__ = ["Accelerator", "StageInfo", "hwc_columns", "conv_matrix", "frame_layout",
           "FIFO_MAX_DEPTH"]

FIFO_MAX_DEPTH = 512


def hwc_columns(matrix: np.ndarray, in_shape) -> np.ndarray:
    """A dense layer's matrix with its columns moved from CHW to HWC order."""
    c, h, w = in_shape
    return matrix.reshape(matrix.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(matrix.shape[0], -1)


def conv_matrix(layer: Conv2d) -> np.ndarray:
    """A convolution's weights as an (OC, kh·kw·C) matrix in window order."""
    return layer.weights.transpose(0, 2, 3, 1).reshape(layer.weights.shape[0], -1)


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


FAMILIES = ("xilinx", "ecp5", "ice40")


def mvu_factory_for(family: str | None):
    """The default MVU factory for a target family: its popcount style is the one measured best
    for that family's LUTs (:data:`hw.trees.FAMILY_POPCOUNT`); ``None`` means Xilinx (LUT6)."""
    from hw.mvu import MVU
    from hw.trees import FAMILY_POPCOUNT

    family = family or "xilinx"
    if family not in FAMILY_POPCOUNT:
        raise ValueError(f"Family must be one of {', '.join(sorted(FAMILY_POPCOUNT))}, not {family!r}")
    style = FAMILY_POPCOUNT[family]

    def factory(layer, *, pe, simd, matrix):
        return MVU.from_layer(layer, pe=pe, simd=simd, matrix=matrix, popcount_style=style)

    factory.popcount_style = style
    return factory


class Accelerator(wiring.Component):
    """The accelerator of a network, folded as ``plan`` says.

    Parameters
    ----------
    net : Network
    plan : Plan
    mvu_factory : callable, optional
        ``f(layer, *, pe, simd, matrix)`` returning a matrix-vector unit (default:
        :meth:`hw.mvu.MVU.from_layer` with the popcount style of ``family``).
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
        self._blocks: list[tuple[str, wiring.Component]] = []
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
        return self._stages[-1].out_elems

    @property
    def out_dtype(self) -> DType:
        return self._stages[-1].out_dtype

    @property
    def out_beats_per_frame(self) -> int:
        return self._stages[-1].out_beats_per_frame

    # -- construction --------------------------------------------------------------------------
    def _add(self, name, block):
        block._MustUse__silence = True  # elaborated with the accelerator, or not at all
        self._blocks.append((name, block))
        return name

    def _dwc(self, prefix, dt, k, to):
        if k == to:
            return []
        return [self._add(f"{prefix}_dwc{len(self._blocks)}",
                          DataWidthConverter(width=dt.code_width, i_elems=k, o_elems=to))]

    def _build(self):
        k = self._plan.input_elems
        dt = self._net.input.dtype
        for i, (layer, lp) in enumerate(zip(self._net.layers, self._plan.layers, strict=True)):
            p = f"l{i}"
            blocks: list[str] = []
            latency = fifo_depth = acc_width = in_fifo_depth = None
            weight_bits = 0
            if isinstance(layer, (Dense, Conv2d)):
                if isinstance(layer, Conv2d):
                    c = layer.in_shape[0]
                    blocks += self._dwc(p, dt, k, c)
                    pad_code = int(dt.encode(layer.pad_value))
                    blocks.append(self._add(f"{p}_swu", SlidingWindow(
                        width=dt.code_width, in_shape=layer.in_shape, kernel=layer.kernel,
                        stride=layer.stride, padding=layer.padding, pad_code=pad_code)))
                    blocks += self._dwc(p, dt, c, lp.simd)
                    matrix = conv_matrix(layer)
                    vectors = layer.out_shape[1] * layer.out_shape[2]
                else:
                    blocks += self._dwc(p, dt, k, lp.simd)
                    matrix = (hwc_columns(layer.matrix, layer.in_shape) if len(layer.in_shape) == 3
                              else layer.matrix)
                    vectors = 1
                nf, sf = layer.mh // lp.pe, layer.mw // lp.simd
                if nf > 1:
                    # The MVU takes a vector's beats only during its first channel fold and reads
                    # them back from its input buffer in the other folds. A FIFO of one vector at
                    # its input width lets the producer run on meanwhile (it delivers less than one
                    # vector in those folds) and serves the next first fold at one beat per cycle.
                    in_fifo_depth = sf + 2
                    blocks.append(self._add(f"{p}_ififo", StreamFIFO(
                        width=lp.simd * dt.code_width, depth=in_fifo_depth)))
                try:
                    mvu = self._factory(layer, pe=lp.pe, simd=lp.simd, matrix=matrix)
                except ValueError as e:
                    raise NetworkError(f"layers[{i}]", f"cannot build the matrix-vector unit: {e}") from None
                blocks.append(self._add(f"{p}_mvu", mvu))
                latency = getattr(mvu, "latency", None)
                acc_width = getattr(mvu, "acc_width", layer.acc_width)
                weight_bits = layer.mh * layer.mw * layer.w_dtype.code_width
                k, dt = lp.pe, layer.out_dtype
                beats = vectors * layer.mh // lp.pe
                fifo_depth = min(FIFO_MAX_DEPTH, max(4, 2 * (layer.mh // lp.pe)))
            elif isinstance(layer, MaxPool2d):
                c = layer.in_shape[0]
                blocks += self._dwc(p, dt, k, c)
                blocks.append(self._add(f"{p}_pool", MaxPoolUnit(
                    dtype=dt, in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride)))
                k = c
                beats = layer.out_shape[1] * layer.out_shape[2]
                fifo_depth = min(FIFO_MAX_DEPTH, max(4, 2 * layer.out_shape[2]))
            elif isinstance(layer, Argmax):
                ka = math.gcd(k, layer.in_shape[0])
                blocks += self._dwc(p, dt, k, ka)
                unit = ArgmaxUnit(dtype=dt, elems=ka, in_shape=layer.in_shape)
                blocks.append(self._add(f"{p}_argmax", unit))
                k, dt, beats = 1, unit.index_dtype, 1
            else:  # pragma: no cover
                raise TypeError(type(layer))
            if fifo_depth is not None and i != len(self._net.layers) - 1:
                blocks.append(self._add(f"{p}_fifo", StreamFIFO(width=k * dt.code_width,
                                                                 depth=fifo_depth)))
            else:
                fifo_depth = None
            if dt != layer.out_dtype and not isinstance(layer, Argmax):  # pragma: no cover
                raise AssertionError("output type mismatch")
            self._stages.append(StageInfo(i, layer.name, layer.kind, lp.in_elems, layer.in_dtype,
                                          k, dt, beats, tuple(blocks), latency, fifo_depth,
                                          acc_width, weight_bits, in_fifo_depth))

    def elaborate(self, platform):
        m = Module()
        for name, block in self._blocks:
            m.submodules[name] = block
        first, last_block = self._blocks[0][1], self._blocks[-1][1]
        m.d.comb += [
            first.i_stream.payload.eq(self.i_stream.payload.data),
            first.i_stream.valid.eq(self.i_stream.valid),
            self.i_stream.ready.eq(first.i_stream.ready),
        ]
        for (_, a), (_, b) in zip(self._blocks, self._blocks[1:], strict=False):
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
def _pack_rows(codes: np.ndarray, width: int) -> list[int]:
    out = []
    for row in codes.tolist():
        v = 0
        for j, c in enumerate(row):
            v |= int(c) << (j * width)
        out.append(v)
    return out


def encode_frames(acc: Accelerator, x: np.ndarray) -> list[int]:
    """Input values (N, *input shape) as the ``data`` words of the input beats, in order."""
    x = np.asarray(x)
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    dt = acc.in_dtype
    return _pack_rows(dt.encode(x.reshape(-1, acc.in_elems)), dt.code_width)


def decode_outputs(acc: Accelerator, words, frames: int) -> np.ndarray:
    """Output ``data`` words back to values (frames, *output shape), in the golden model's
    layout (CHW for images)."""
    dt, k = acc.out_dtype, acc.out_elems
    cw = dt.code_width
    mask = (1 << cw) - 1
    codes = np.array([[(int(w) >> (j * cw)) & mask for j in range(k)] for w in words], dtype=np.uint64)
    vals = dt.decode(codes).reshape(frames, -1)
    shape = acc.net.output_shape
    if len(shape) == 3:
        c, h, w = shape
        return vals.reshape(frames, h, w, c).transpose(0, 3, 1, 2)
    return vals.reshape(frames, *shape)
