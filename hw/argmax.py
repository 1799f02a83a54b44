"""Argmax over a vector stream, and the value order of element codes.

The index is that of the golden model: over the tensor flattened in C, H, W order, the first
index wins ties. An image streams in HWC order, so the unit computes each element's CHW index
and breaks ties on it rather than on the arrival order.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .dtypes import DType
from .pipeline import StallPipeline

__all__ = ["Argmax", "order_key", "order_key_width", "argmax_tree_stages"]


def argmax_tree_stages(elems: int) -> int:
    """Register stages of :class:`Argmax`'s compare tree over ``elems`` elements per beat: the
    keys (and their indices, a sum of counters), then one after each level of compares."""
    return 1 + (elems - 1).bit_length()


def order_key_width(dtype: DType) -> int:
    """Width of the signed key that :func:`order_key` returns."""
    return dtype.code_width + 1


def order_key(dtype: DType, code: Value) -> Value:
    """A signed value whose order is the order of the element values that ``code`` encodes."""
    if dtype.encoding in ("int", "ternary"):
        return code.as_signed()
    if dtype.encoding == "onehot" and dtype.signed:
        eb = dtype.exp_bits
        mag = Cat(code[:eb + 1], Const(0, 1)).as_signed()
        return Mux(code[eb + 1], -mag, mag)
    # bipolar (1 means +1), uint, unsigned onehot (non-zero bit above the exponent)
    return Cat(code, Const(0, 1)).as_signed()


class Argmax(wiring.Component):
    """Index of the largest element of each frame.

    Parameters
    ----------
    dtype : DType
        Element type.
    elems : int
        Elements per input beat.
    in_shape : tuple
        Shape of one frame: ``(N,)`` for a vector, ``(C, H, W)`` for an image streamed in HWC
        order (``elems`` must divide ``C``).

    Members
    -------
    i_stream : In(stream.Signature(unsigned(elems * dtype.code_width)))
    o_stream : Out(stream.Signature(unsigned(index_width)))
        One beat per frame: the index.
    tree_stages : int
        Register stages between the input and the running best (:func:`argmax_tree_stages`):
        the beat's keys and indices are registered, then every level of the tree of compares,
        so that no path compares more than two candidates. The index is sent
        ``tree_stages + 1`` cycles after the frame's last beat is taken.
    """

    def __init__(self, *, dtype: DType, elems: int, in_shape):
        in_shape = tuple(in_shape)
        if len(in_shape) == 3:
            c, h, w = in_shape
        elif len(in_shape) == 1:
            c, h, w = in_shape[0], 1, 1
        else:
            raise ValueError(f"Input shape must be (N,) or (C, H, W), not {in_shape!r}")
        if not isinstance(elems, int) or elems < 1 or c % elems:
            raise ValueError(f"Elements per beat must divide the {c} channels, not {elems!r}")
        self._dtype, self._elems, self._chw = dtype, elems, (c, h, w)
        n = c * h * w
        self._index_dtype = DType.for_range(0, n - 1)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(elems * dtype.code_width))),
            "o_stream": Out(stream.Signature(unsigned(self._index_dtype.code_width))),
        })

    index_dtype = property(lambda self: self._index_dtype)
    elems = property(lambda self: self._elems)
    tree_stages = property(lambda self: argmax_tree_stages(self._elems))
    dtype = property(lambda self: self._dtype)

    @property
    def beats_per_frame(self) -> int:
        c, h, w = self._chw
        return c * h * w // self._elems

    def elaborate(self, platform):
        m = Module()
        c, h, w = self._chw
        hw_ = h * w
        n = c * hw_
        k, cw = self._elems, self._dtype.code_width
        iw = self._index_dtype.code_width
        kw_ = order_key_width(self._dtype)

        pix = Signal(range(max(2, hw_)))
        chan = Signal(range(n + 1))       # c0 * H * W of the current beat
        # a candidate is one signed value, its key above its inverted index: a larger key, or
        # an equal key and a lower index, is a larger value, so that every compare (the tree's
        # and the running best's, whose loop must close in one cycle) is one carry chain
        best = Signal(signed(kw_ + iw), name="best")
        first = Signal(init=1)

        # the tree: a stall pipeline from the input beat to the running best
        pipe = StallPipeline("amax")
        stages = self.tree_stages
        cands = []
        for j in range(k):
            key = Signal(signed(kw_), name=f"key{j}")
            idx = Signal(unsigned(iw + 1), name=f"idx{j}")
            m.d.comb += [key.eq(order_key(self._dtype, self.i_stream.payload[j * cw:(j + 1) * cw])),
                         idx.eq(pix + chan + j * hw_)]
            cands.append(Cat(~idx[:iw], key).as_signed())
        frame_end = (chan == n - k * hw_) & (pix == hw_ - 1)
        if stages:
            cands = [pipe.reg(m, c, name=f"cand{j}_r") for j, c in enumerate(cands)]
            frame_end = pipe.reg(m, frame_end, name="frame_end_r")

        level = 0
        while len(cands) > 1:
            nxt = []
            for i in range(0, len(cands) - 1, 2):
                a, b = cands[i], cands[i + 1]
                nxt.append(pipe.reg(m, Mux(b > a, b, a), name=f"cand_l{level}_{i}"))
            if len(cands) % 2:
                nxt.append(pipe.reg(m, cands[-1], name=f"cand_l{level}_{len(cands) - 1}"))
            cands, level = nxt, level + 1
            frame_end = pipe.reg(m, frame_end, name=f"frame_end_l{level}")
        beat = cands[0]
        take = first | (beat > best)
        new_best = Mux(take, beat, best)
        new_idx = ~new_best[:iw]
        o_full = Signal()
        o_data = Signal(unsigned(iw))
        acc_ready = ~o_full | self.o_stream.ready
        i_ready, t_valid, _ = pipe.connect(m, latency=stages, i_valid=self.i_stream.valid,
                                           o_ready=acc_ready)
        m.d.comb += [
            self.i_stream.ready.eq(i_ready),
            self.o_stream.valid.eq(o_full),
            self.o_stream.payload.eq(o_data),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += o_full.eq(0)
        with m.If(self.i_stream.valid & i_ready):
            m.d.sync += chan.eq(chan + k * hw_)
            with m.If(chan == n - k * hw_):
                m.d.sync += [chan.eq(0), pix.eq(pix + 1)]
                with m.If(pix == hw_ - 1):
                    m.d.sync += pix.eq(0)
        with m.If(t_valid & acc_ready):
            m.d.sync += [best.eq(new_best), first.eq(0)]
            with m.If(frame_end):
                m.d.sync += [first.eq(1), o_full.eq(1), o_data.eq(new_idx)]
        return m
