"""A small 8N1 UART (receiver and transmitter) with byte streams, for board wrappers."""


from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"Divisor must be an integer of at least 4, not {divisor!r}")


class UARTTx(wiring.Component):
    """Sends each byte of ``i_stream`` on ``tx``: a start bit, 8 data bits LSB first, a stop bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.
    """

    i_stream: In(stream.Signature(unsigned(8)))
    tx: Out(1, init=1)

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += [self.i_stream.ready.eq(bits == 0), self.tx.eq(shreg[0])]
        with m.If(bits == 0):
            with m.If(self.i_stream.valid):
                m.d.sync += [shreg.eq((1 << 9) | (self.i_stream.payload << 1)), bits.eq(10),
                             timer.eq(self._divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq((1 << 9) | (shreg >> 1)), bits.eq(bits - 1),
                         timer.eq(self._divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """Receives bytes from ``rx`` onto ``o_stream``. A byte not taken before the next one
    completes is lost (put a FIFO after the receiver).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(unsigned(8)))

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        sync_rx = Signal(2, init=3)
        m.d.sync += sync_rx.eq((sync_rx << 1) | self.rx)
        rx = sync_rx[1]
        timer = Signal(range(d + d // 2 + 1))
        bits = Signal(range(10))
        shreg = Signal(8)
        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(d + d // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq((rx << 7) | (shreg >> 1)), bits.eq(bits + 1),
                                 timer.eq(d - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o_stream.payload.eq(shreg), self.o_stream.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m
