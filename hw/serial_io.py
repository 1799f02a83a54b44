"""A top level with registered serial I/O around any stream block, for place and route.

A whole accelerator's input and output streams are hundreds of bits wide: placed bare, each bit
becomes an I/O pin that the package does not have. :class:`SerialIO` feeds the block from a
shift register (one input pin shifted in every cycle) and captures its output words into a
shift register that shifts out on one pin. Every port of the block is driven by or drives a
flip-flop, and the shift registers have no logic between flip-flops but a 2:1 multiplexer, so
the wrapper adds no path longer than the block's own: the critical path that nextpnr reports is
the block's. Nothing of the block can be optimised away, since every output bit reaches a pin.
"""


from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialIO"]


class SerialIO(wiring.Component):
    """Shift-register I/O around ``block`` (a component with ``i_stream`` and ``o_stream``).

    Parameters
    ----------
    block : wiring.Component
        Its ``i_stream`` and ``o_stream`` payloads may be any shape (flattened to bits).

    Members
    -------
    si : In(1)
        Serial input: shifted into the input word every cycle.
    si_valid : In(1)
        Registered, drives the block's ``i_stream.valid``.
    so_ready : In(1)
        Registered, drives the block's ``o_stream.ready``.
    so : Out(1)
        Serial output: the top bit of the output shift register.
    so_valid : Out(1)
        High for the cycle after an output word was captured.
    """

    si: In(1)
    si_valid: In(1)
    so_ready: In(1)
    so: Out(1)
    so_valid: Out(1)

    def __init__(self, block):
        self._block = block
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        b = self._block
        m.submodules.block = b
        in_bits = len(Value.cast(b.i_stream.payload))
        out_bits = len(Value.cast(b.o_stream.payload))
        shin = Signal(in_bits, name="shift_in")
        valid_r = Signal(name="valid_r")
        ready_r = Signal(name="ready_r")
        shout = Signal(out_bits, name="shift_out")
        took = Signal(name="took")
        m.d.sync += [
            shin.eq(Cat(self.si, shin[:-1]) if in_bits > 1 else self.si),
            valid_r.eq(self.si_valid),
            ready_r.eq(self.so_ready),
            took.eq(b.o_stream.valid & ready_r),
        ]
        with m.If(b.o_stream.valid & ready_r):
            m.d.sync += shout.eq(Value.cast(b.o_stream.payload))
        with m.Else():
            m.d.sync += shout.eq(Cat(self.si, shout[:-1]) if out_bits > 1 else self.si)
        m.d.comb += [
            b.i_stream.payload.eq(shin),
            b.i_stream.valid.eq(valid_r),
            b.o_stream.ready.eq(ready_r),
            self.so.eq(shout[-1]),
            self.so_valid.eq(took),
        ]
        return m
