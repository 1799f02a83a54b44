"""FPGA parts nomul targets, with their real capacities (from the vendors' data sheets).

``bram`` counts the family's block RAM primitive (ECP5 EBR of 18 Kbit, iCE40 EBR of 4 Kbit,
Xilinx 7-series RAMB18 of 18 Kbit); ``bram_bits`` is the capacity of one. ``dsp`` counts the
hard multipliers (ECP5 18×18 MULT18, iCE40 SB_MAC16, Xilinx DSP48E1).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Part", "PARTS", "get_part"]


@dataclass(frozen=True)
class Part:
    name: str
    family: str          # "ecp5", "ice40" or "xilinx" (7-series)
    device: str          # as nextpnr / the vendor names it
    package: str
    lut: int
    ff: int
    bram: int
    bram_bits: int
    dsp: int
    lut_inputs: int      # 4 (LUT4) or 6 (LUT6)
    default_mhz: float   # a clock the part reaches comfortably, for estimates without --pnr

    @property
    def bram_total_bits(self) -> int:
        return self.bram * self.bram_bits


PARTS = {
    p.name: p for p in (
        Part("ecp5-25k", "ecp5", "25k", "CABGA381", 24_288, 24_288, 56, 18_432, 28, 4, 100.0),
        Part("ecp5-45k", "ecp5", "45k", "CABGA381", 43_848, 43_848, 108, 18_432, 72, 4, 100.0),
        Part("ecp5-85k", "ecp5", "85k", "CABGA381", 83_640, 83_640, 208, 18_432, 156, 4, 100.0),
        Part("ice40-up5k", "ice40", "up5k", "sg48", 5_280, 5_280, 30, 4_096, 8, 4, 24.0),
        Part("ice40-hx8k", "ice40", "hx8k", "ct256", 7_680, 7_680, 32, 4_096, 0, 4, 50.0),
        Part("xc7a35t", "xilinx", "xc7a35ticsg324-1L", "csg324", 20_800, 41_600, 100, 18_432, 90, 6, 100.0),
        Part("xc7a100t", "xilinx", "xc7a100tcsg324-1", "csg324", 63_400, 126_800, 270, 18_432, 240, 6, 100.0),
    )
}


def get_part(name: str) -> Part:
    """The part called ``name`` (e.g. ``ecp5-25k``)."""
    try:
        return PARTS[name]
    except KeyError:
        raise ValueError(f"Part must be one of {', '.join(PARTS)}, not {name!r}") from None
