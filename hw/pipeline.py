"""The valid/enable chain of a fixed-latency pipeline, shared by every block of the library.

A :class:`StallPipeline` is the one place where back-pressure is implemented. Its data registers
load only when :attr:`StallPipeline.en` is high, and ``en`` is high exactly when the output stage
is empty or is being taken by the consumer (``o_ready | ~o_valid``). A stalled consumer therefore
freezes the whole pipeline (nothing is lost or duplicated), and bubbles from a starving producer
travel down the valid chain and are squeezed out at the output.

Blocks use it in two steps: build the datapath with :meth:`StallPipeline.reg` (which counts the
register stages of every path it is given), then call :meth:`StallPipeline.connect` with the
stream handshakes to build the valid chain of the right length.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Signal, Value

__all__ = ["StallPipeline", "spread_registers"]


class StallPipeline:
    """Enable and valid chain of a fixed-latency pipeline that stalls as a whole.

    Parameters
    ----------
    name : str
        Prefix of the signals it creates.

    Members
    -------
    en : Signal
        High when the pipeline advances this cycle. Drive registers with :meth:`reg` or under
        ``m.If(pipe.en)``; memories' read ports take it as their ``en``.
    """

    def __init__(self, name: str = "pipe"):
        self.name = name
        self.en = Signal(name=f"{name}_en")
        self._connected = False

    def reg(self, m, value, *, name: str | None = None, reset_less: bool = False):
        """A register that loads ``value`` when the pipeline advances (one stage of delay).

        ``reset_less``: no reset (a datapath register whose content only matters where the
        valid chain, which is reset, says so), e.g. so that a block RAM's output register can
        hold it (:func:`gen.synth.absorb_bram_output_registers`)."""
        value = Value.cast(value)
        r = Signal(value.shape(), name=name or f"{self.name}_r", reset_less=reset_less)
        with m.If(self.en):
            m.d.sync += r.eq(value)
        return r

    def delay(self, m, value, stages: int, *, name: str | None = None):
        """``value`` delayed by ``stages`` pipeline stages."""
        for i in range(stages):
            value = self.reg(m, value, name=f"{name or self.name}_d{i}")
        return value

    def connect(self, m, *, latency: int, i_valid, o_ready, gates=None, o_ready_next=None):
        """Build the valid chain of ``latency`` stages; returns ``(i_ready, o_valid, valids)``.

        ``valids[k]`` is the valid bit of the data that has passed ``k`` register stages
        (``valids[0] is i_valid``), so that stages in the middle can gate side effects such as
        accumulation on ``en & valids[k]``. ``gates`` maps a stage ``k`` to a condition aligned
        with it: only data for which it holds goes on to stage ``k + 1`` (e.g. the last beat of
        an accumulation).

        ``o_ready_next``: what ``o_ready`` will be in the next cycle, where the consumer knows it
        (:attr:`hw.fifo.StreamFIFO.w_rdy_next`). ``en`` is then a flip-flop, loaded with
        ``o_ready_next | ~o_valid_next``: the same value in every cycle, but the clock enable of
        every register of the block comes straight from a flip-flop rather than through the
        consumer's logic, and no path runs from the consumer through the block to its producer.
        """
        gates = {} if gates is None else dict(gates)
        if self._connected:
            raise RuntimeError("A pipeline is connected once")
        self._connected = True
        if latency < 0:
            raise ValueError(f"Latency must be non-negative, not {latency}")
        valids = [Value.cast(i_valid)]
        nxt = None
        for k in range(latency):
            v = Signal(name=f"{self.name}_valid{k + 1}")
            nxt = valids[-1] & gates[k] if k in gates else valids[-1]
            with m.If(self.en):
                m.d.sync += v.eq(nxt)
            valids.append(v)
        o_valid = valids[-1]
        if o_ready_next is not None:
            en_r = Signal(init=1, name=f"{self.name}_en_r")
            if latency == 0:
                m.d.sync += en_r.eq(o_ready_next)
            else:
                m.d.sync += en_r.eq(o_ready_next | ~Mux(self.en, nxt, o_valid))
            m.d.comb += self.en.eq(en_r)
        elif latency == 0:
            m.d.comb += self.en.eq(o_ready)
        else:
            m.d.comb += self.en.eq(o_ready | ~o_valid)
        return self.en, o_valid, valids


def spread_registers(levels: int, depth: int) -> list[int]:
    """How many registers to place after each of ``levels`` logic levels, ``depth`` in all.

    Registers are spread as evenly as possible; a depth beyond the number of levels piles the
    rest after the last level. Returns a list of ``levels`` counts (``levels >= 1``).
    """
    if depth < 0:
        raise ValueError(f"Pipeline depth must be non-negative, not {depth}")
    levels = max(1, levels)
    counts = [0] * levels
    for k in range(depth):
        if k < levels:
            # place the k-th of min(depth, levels) registers after level round((k+1)*L/n) - 1
            n = min(depth, levels)
            if k < n:
                counts[max(0, round((k + 1) * levels / n) - 1)] += 1
        else:
            counts[-1] += 1
    return counts


def mark_used(elaboratable, *, silence: bool = False):
    """Tell Amaranth that ``elaboratable`` need not be elaborated on its own: a block whose
    datapath another block builds (:meth:`hw.lanes.Lane.build`), or with ``silence`` a block
    that is elaborated with its parent or not at all (Amaranth has no public API for this; its
    own library sets the same flags)."""
    setattr(elaboratable, "_MustUse__silence" if silence else "_MustUse__used", True)
