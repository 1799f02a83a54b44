"""The area model: LUT, FF, carry, block RAM, LUT RAM and DSP of every block of an accelerator,
for ECP5 (LUT4), iCE40 (LUT4) and Xilinx 7-series (LUT6).

LUTs and carry cells are a linear model of structural features of a block (popcount bits,
adder-tree term bits, multiplier partial products, accumulator bits, threshold comparator
bits, control), with one coefficient per feature and family, fitted by non-negative least
squares to Yosys synthesis (``bench/calibrate_area.py`` writes them to ``gen/area_coeffs.json``).

Flip-flops are counted, not fitted: the registers of the block as Amaranth builds it (the
``$dff`` cells of its RTLIL), plus, on iCE40, memories that Yosys has to build from flip-flops
(iCE40 has no LUT RAM). Yosys still merges or adds a few (measured: within a few per block;
docs/estimate.md).

Block RAM is counted from each memory's depth × width and the family's primitive shapes
(ECP5 DP16KD 18 Kbit: 16K×1 … 512×36; iCE40 SB_RAM40_4K: 2K×2 … 256×16; 7-series RAMB18:
16K×1 … 512×36), choosing the shape that needs the fewest primitives, as Yosys does for these
shallow memories. Memories left to Yosys (``ram_style`` None) that are small go to LUT RAM (ECP5,
Xilinx) or logic. DSPs: none; synthesis runs with ``-nodsp`` so every MAC kind is compared in
LUTs (an ``int`` layer could use DSPs on a real target; the estimate does not).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.dtypes import bits_for_range, signed_width

from .macs import get_mac
from .targets import family_names, get_family

__all__ = ["FAMILIES", "COEFFS_FILE", "BlockArea", "mvu_params", "dwc_params", "fifo_params",
           "swu_params", "dwwin_params", "pool_params", "argmax_params", "memory_bits", "fork_params",
           "add_params", "concat_params", "sum_params", "activation_params", "features",
           "bram_count", "calibration_summary", "estimate", "fit_coefficients", "fit_graph_blocks",
           "fit_networks", "region_warnings", "GRAPH_BLOCKS",
           "calibration_report", "load_coeffs",
           "register_bits"]

FAMILIES = family_names()
COEFFS_FILE = Path(__file__).with_name("area_coeffs.json")

#: Yosys ``memory_libmap``'s cost of one block-RAM primitive (the families' memory libraries:
#: ECP5 DP16KD 128, iCE40 SB_RAM40_4K 64, 7-series RAMB18 129 / RAMB36 257 per two RAMB18) and
#: of a ROM bit left to logic (its ``-logic-cost-rom`` default, 1/16).
BRAM_COST = {"ecp5": 128.0, "ice40": 64.0, "xilinx": 128.5}
ROM_LOGIC_COST = 1.0 / 16.0
ICE40_RAM_EMU = 12.0


def _rom_block_cost(family: str, depth: int, width: int) -> float:
    """Yosys's cost of a ROM in block RAM: the primitives of the cheapest shape, plus half a
    unit per read-multiplexer input bit for the depth beyond one primitive's."""
    best = math.inf
    for d, w in get_family(family).bram_shapes:
        rows = math.ceil(depth / d)
        n = rows * math.ceil(width / w)
        best = min(best, n * BRAM_COST[family] + 0.5 * (rows - 1) * width)
    return best


def _auto_bram(family: str, what: str, depth: int, bits: int) -> bool:
    """Whether Yosys puts a memory with no ``ram_style`` in block RAM. A ROM goes there when
    that is cheaper than logic by ``memory_libmap``'s costs (the logic cost truncated to an
    integer, a tie going to logic: measured on every example's weight memories); RAMs as
    measured: ECP5 and 7-series keep RAMs of up to 8 Kbit in LUT RAM; iCE40 puts RAMs of 8
    words and 64 bits or more in block RAM."""
    if what == "rom":
        if depth <= 1 or bits <= 0:
            return False
        return _rom_block_cost(family, depth, math.ceil(bits / depth)) < int(bits * ROM_LOGIC_COST)
    if family == "ice40":
        if what == "window":   # the depthwise window's memory (measured: 6 words in block RAM)
            return depth >= 6 and bits >= 64
        # no LUT RAM: block RAM against flip-flops (a RAM bit costs 1 in logic); block RAM's
        # read port costs some emulation on top (measured between 8 and 16: 72 bits stay in
        # logic, 80 go to block RAM)
        return depth > 1 and _rom_block_cost(family, depth, math.ceil(bits / depth)) + ICE40_RAM_EMU < bits
    if family == "ecp5" and depth > 1:   # block RAM against TRELLIS_DPR16X4 (cost 4 each)
        width = math.ceil(bits / depth)
        rows = math.ceil(depth / 16)
        lutram = 4 * rows * math.ceil(width / 4) + 0.5 * (rows - 1) * width
        return _rom_block_cost(family, depth, width) < min(lutram, bits)
    return bits > 8192


def _wide_bram(family: str, depth: int, width: int) -> tuple[int, int]:
    """``(primitives, bits left to logic)`` of a block-RAM memory: the fewest primitives; a
    7-series memory wider than 36 bits uses RAMB36 (72 bits, two RAMB18) as Yosys does."""
    if family == "xilinx" and depth <= 512 and width > 36:
        return 2 * math.ceil(width / 72), 0
    return bram_count(family, depth, width), 0


def bram_count(family: str, depth: int, width: int) -> int:
    """Block RAM primitives for a ``depth`` × ``width`` memory (the fewest over the shapes)."""
    if depth <= 0 or width <= 0:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in get_family(family).bram_shapes)


def lutram_cells(family: str, depth: int, width: int) -> int:
    """LUT RAM cells for a memory Yosys puts in distributed RAM (ECP5 TRELLIS_DPR16X4,
    Xilinx RAM32M (6 bits of 32) / RAM64M (3 bits of 64)); iCE40 has none."""
    if family == "ecp5":
        return math.ceil(depth / 16) * math.ceil(width / 4)
    if family == "xilinx":   # RAM32M: 8 bits of 32 words; RAM64X1S: 1 bit of 64 words
        if depth <= 32:
            return math.ceil(width / 8)
        return math.ceil(depth / 64) * width
    return 0


def _rom_luts(family: str, depth: int, width: int) -> int:
    """LUTs of a ROM built from logic: one LUT per output bit and 16 (LUT4) or 64 (LUT6) words,
    the wider multiplexers being free (ECP5 PFUMX/L6MUX21, 7-series MUXF7/F8) or about a third
    of a LUT4 per input (iCE40)."""
    per = 64 if family == "xilinx" else 16
    luts = width * math.ceil(depth / per)
    if family == "ice40" and depth > per:
        luts += width * math.ceil((math.ceil(depth / per) - 1) / 3)
    return luts


#: Features whose coefficient is not fitted (none at present).
FIXED: dict = {"lut": {}, "carry": {}}


def _clog2(n: int) -> int:
    return max(0, (n - 1).bit_length())


# -- block parameters ------------------------------------------------------------------------
def live_bits(words, width: int) -> int:
    """Bit columns of a memory's words that are not the same in every word."""
    anded, ored = (1 << width) - 1, 0
    for w in words:
        anded &= int(w)
        ored |= int(w)
    return bin(anded ^ ored).count("1")


def mvu_params(*, kind, w_dtype, a_dtype, pe, simd, mh, mw, acc_lo, acc_hi, thresholds=0,
               activation="none", ram_style=None, depth=1, w_shift=0, out_bits=0,
               w_live_bits=None, block="mvu") -> dict:
    """The parameters of a matrix-vector unit that the model reads (plain data, JSON-able).
    ``w_live_bits``: the weight memory's bit columns that vary (default: all). ``block="vvu"``:
    a vector-vector unit (``mh`` its channels, ``mw`` its kernel elements), whose PE lanes
    each read their own channel: they share nothing (no input buffer either)."""
    from hw.lanes import lane_term_range

    tlo, thi = lane_term_range(kind, w_dtype, a_dtype, w_shift)
    mk = get_mac(kind)
    shift_bits = mk.shift_bits(w_dtype, a_dtype) if mk.shift_bits else 0
    return {"shift_bits": shift_bits, "block": block, "kind": kind, "w_bits": w_dtype.code_width,
            "a_bits": a_dtype.code_width, "a_max_abs": max(abs(a_dtype.min), abs(a_dtype.max)),
            "term_bits": signed_width(tlo, thi), "pe": pe, "simd": simd, "mh": mh, "mw": mw,
            "acc_lo": int(acc_lo), "acc_hi": int(acc_hi), "thresholds": int(thresholds),
            "activation": activation, "ram_style": ram_style, "depth": depth,
            "out_bits": out_bits,
            "w_live_bits": pe * simd * w_dtype.code_width if w_live_bits is None else w_live_bits}


def dwwin_params(block) -> dict:
    """The model's parameters of a :class:`hw.vvu.DepthwiseWindow`."""
    return {"block": "dwwin", "width": block.width, "channels": block.channels,
            "kernel_elems": block.kernel_elems, "pe": block.pe, "simd": block.simd}


def dwc_params(block) -> dict:
    """The model's parameters of a :class:`hw.dwc.DataWidthConverter`."""
    return {"block": "dwc", "width": block.width, "i_elems": block.i_elems, "o_elems": block.o_elems}


def pad_params(block) -> dict:
    """The model's parameters of a :class:`hw.pad.VectorPad` or :class:`hw.pad.VectorTrim`."""
    keep = getattr(block, "keep", None)   # a trim: only the kept elements are built
    counts = getattr(block, "counts", [block.ratio])
    return {"block": "pad", "width": block.width, "i_elems": block.elems,
            "o_elems": block.elems * block.ratio, "trim": keep is not None,
            "live_elems": block.elems * block.ratio if keep is None else keep,
            "zero_elems": block.elems * (block.ratio - counts[-1]), "beats": len(counts)}


def fifo_params(block) -> dict:
    """The model's parameters of a :class:`hw.fifo.StreamFIFO`."""
    return {"block": "fifo", "width": len(block.i_stream.payload), "depth": block.depth}


def swu_params(block) -> dict:
    """The model's parameters of a :class:`hw.swu.SlidingWindow`."""
    c, h, w = block.in_shape
    return {"block": "swu", "width": block.width, "in_shape": [c, h, w],
            "kernel": block.kernel[0], "kernel_w": block.kernel[1], "rows": block.buffer_rows}


def pool_params(block) -> dict:
    """The model's parameters of a :class:`hw.pool.MaxPool2d`."""
    c, h, w = block.in_shape
    return {"block": "pool", "width": block.dtype.code_width, "in_shape": [c, h, w],
            "kernel": block.kernel[0], "kernel_w": block.kernel[1]}


def fork_params(block) -> dict:
    """The model's parameters of a :class:`hw.streams.Fork`."""
    return {"block": "fork", "width": block.width, "count": block.count}


def add_params(block) -> dict:
    """The model's parameters of a :class:`hw.streams.AddJoin`."""
    mults = list(block.multipliers)
    terms = [(dt, m) for dt, m in zip(block.dtypes, mults, strict=True) if m]
    # built in logic rather than in the carry chain: negated terms, and the decoding of
    # elements whose code is not their value (bipolar, ternary, onehot)
    return {"block": "add", "elems": block.elems, "acc_lo": block.acc_range[0],
            "acc_hi": block.acc_range[1], "multipliers": mults,
            "neg_terms": sum(1 for _, m in terms if m < 0),
            "decode_bits": sum(dt.code_width for dt, _ in terms if dt.encoding not in ("uint", "int")),
            "int_terms": sum(1 for dt, _ in terms if dt.encoding in ("uint", "int"))}


def concat_params(block) -> dict:
    """The model's parameters of a :class:`hw.streams.ConcatJoin` (wires and a handshake)."""
    return {"block": "concat", "widths": list(block.widths)}


def sum_params(block) -> dict:
    """The model's parameters of a :class:`hw.avgpool.WindowSum` or :class:`hw.avgpool.ChannelSum`."""
    folds = getattr(block, "folds", 1)
    dt = block._dtype
    count = getattr(block, "pixels", None) or block._count    # sums per output beat
    return {"block": "sum", "elems": len(block.o_stream.payload) // block.acc_width,
            "acc_lo": block.acc_range[0], "acc_hi": block.acc_range[1], "folds": folds,
            "count": count, "logic_terms": int(dt.encoding not in ("uint", "int"))}


def activation_params(block) -> dict:
    """The model's parameters of a stream activation unit (:class:`hw.activation.ThresholdUnit`,
    :class:`hw.activation.RequantUnit`)."""
    from hw.params import MultiThreshold

    act = block.activation
    kind = "threshold" if isinstance(act, MultiThreshold) else "requant"
    mult_bits = 0
    if kind == "requant":
        m = [int(v) for v in act.multiplier.reshape(-1)]
        mult_bits = bits_for_range(min(min(m), 0), max(max(m), 0))[0] + 1
    return {"block": "act", "activation": kind, "pe": block.pe, "channels": block.channels,
            "acc_lo": block.acc_range[0], "acc_hi": block.acc_range[1],
            "thresholds": act.num_thresholds if kind == "threshold" else 0,
            "mode": getattr(block, "mode", ""), "mult_bits": mult_bits}


def argmax_params(block) -> dict:
    """The model's parameters of a :class:`hw.argmax.Argmax`."""
    return {"block": "argmax", "width": block.dtype.code_width, "elems": block.elems,
            "index_bits": block.index_dtype.code_width}


def memory_bits(p: dict) -> tuple[int, int, int]:
    """``(weight bits, buffer bits, FIFO bits)`` a block holds: weights of a matrix- or
    vector-vector unit; the MVU's input buffer, sliding-window line buffers and the depthwise
    window's double buffer; FIFOs."""
    b = p["block"]
    if b in ("mvu", "vvu"):
        nf, sf = p["mh"] // p["pe"], p["mw"] // p["simd"]
        buf = sf * p["simd"] * p["a_bits"] if nf > 1 and b == "mvu" else 0
        return p["mh"] * p["mw"] * p["w_bits"], buf, 0
    if b == "dwwin":
        return 0, 2 * p["kernel_elems"] * p["channels"] * p["width"], 0
    if b in ("swu", "pool"):
        c, _, w = p["in_shape"]
        rows = p.get("rows", 2 * p["kernel"])
        return 0, rows * (1 << max(1, (w - 1).bit_length())) * c * p["width"], 0
    if b == "fifo":
        return 0, 0, p["width"] * p["depth"]
    return 0, 0, 0


# -- features --------------------------------------------------------------------------------
def _memories(p: dict, family: str):
    """``(bram, lutram, bits in flip-flops, LUTs of ROMs in logic)`` of a block's memories."""
    mems = []  # (depth, width, style)
    if p["block"] in ("mvu", "vvu"):
        nf, sf = p["mh"] // p["pe"], p["mw"] // p["simd"]
        mems.append((*_weight_rom(p), "rom"))
        if nf > 1 and p["block"] == "mvu":
            mems.append((sf, p["simd"] * p["a_bits"], None, "ram"))
    elif p["block"] == "dwwin":    # two windows of K/SIMD words of SIMD pixels
        mems.append((2 * p["kernel_elems"] // p["simd"], p["simd"] * p["channels"] * p["width"],
                     None, "window"))
    elif p["block"] == "fifo" and p["depth"] > 1:
        mems.append((p["depth"] - 1, p["width"], None, "ram"))
    elif p["block"] in ("swu", "pool"):
        c, _, w = p["in_shape"]
        rows = p.get("rows", p["kernel"] + p.get("stride", p["kernel"] if p["block"] == "pool" else 1))
        mems.append((rows << max(1, _clog2(w)), c * p["width"], None, "ram"))
    bram = lutram = ff_bits = logic_bits = 0
    for depth, width, style, what in mems:
        bits = depth * width
        if depth == 1 and what == "ram":   # one word: Yosys builds it as a register
            ff_bits += bits
            continue
        if style == "block" or (style is None and _auto_bram(family, what, depth, bits)):
            n, rest = _wide_bram(family, depth, width)
            bram += n
            logic_bits += _rom_luts(family, depth, rest)
            continue
        if what == "window" and family == "xilinx":   # RAM32M, 6 bits, per SIMD pixel (measured)
            lutram += math.ceil(depth / 32) * p["simd"] * math.ceil(width // p["simd"] / 6)
        elif family == "ice40" or style == "logic" or what == "rom":
            if what == "rom":
                logic_bits += _rom_luts(family, depth, width)
            else:
                ff_bits += bits
        else:
            lutram += lutram_cells(family, depth, width)
    return bram, lutram, ff_bits, logic_bits


def weights_in_bram(p: dict, family: str) -> bool:
    """Whether a matrix- or vector-vector unit's weights go to block RAM (its ``ram_style``,
    else where Yosys puts them: :func:`_auto_bram`)."""
    depth, width, style = _weight_rom(p)
    return style == "block" or (style is None and _auto_bram(family, "rom", depth, depth * width))


def _weight_rom(p: dict) -> tuple[int, int, str | None]:
    """``(words, bits per word, ram_style)`` of a unit's weight ROM: one word per fold, the bit
    columns that are the same in every word left out (Yosys drops them)."""
    nf, sf = p["mh"] // p["pe"], p["mw"] // p["simd"]
    return nf * sf, p.get("w_live_bits", p["pe"] * p["simd"] * p["w_bits"]), p.get("ram_style")


def _popcount_unit(p: dict) -> bool:
    """Whether a unit's lanes reduce by popcount (1-bit terms: XNOR, AND, STTN)."""
    return p["kind"] in ("xnor", "and") or (p["kind"] == "ternary" and p["a_max_abs"] <= 1)


def _tree_adder_bits(n: int, width: int) -> int:
    """Bits of the two-input adders that sum ``n`` terms of ``width`` bits (each level's sums
    a bit wider)."""
    bits, level = 0, 0
    while n > 1:
        bits += (n // 2) * (width + level + 1)
        n, level = n - n // 2, level + 1
    return bits


def _lutram_rows(family: str, depth: int) -> int:
    """LUT-RAM primitives stacked for ``depth`` words (ECP5 TRELLIS_DPR16X4 of 16 words,
    7-series RAM32M / RAM64M of 32 / 64 words; iCE40 has none): their outputs are multiplexed."""
    if family == "ecp5":
        return math.ceil(depth / 16)
    if family == "xilinx":
        return 1 if depth <= 32 else math.ceil(depth / 64)
    return 0


def _window_memory(p: dict, family: str) -> tuple[int, int, str]:
    """``(depth, width, where)`` of a sliding window's or max-pool's line buffer, ``where`` one
    of ``bram``, ``lutram``, ``ff``."""
    c, _, w = p["in_shape"]
    rows = p.get("rows", p["kernel"] + p.get("stride", p["kernel"] if p["block"] == "pool" else 1))
    depth, width = rows << max(1, _clog2(w)), c * p["width"]
    if _auto_bram(family, "ram", depth, depth * width):
        return depth, width, "bram"
    return depth, width, ("ff" if family == "ice40" else "lutram")


def features(p: dict, family: str) -> dict[str, float]:
    """Structural features of a block (what the LUT and carry coefficients multiply)."""
    f: dict[str, float] = {}
    b = p["block"]
    if b in ("mvu", "vvu"):
        pe, simd, kind = p["pe"], p["simd"], p["kind"]
        acc_w = bits_for_range(p["acc_lo"], p["acc_hi"])[0]
        nf, sf = p["mh"] // pe, p["mw"] // simd
        if b == "mvu":
            f.update(get_mac(kind).area_features(p))
        else:   # PE lanes of one PE each: what an MVU's lanes share is built PE times; the
            # lanes have their own coefficients (vvu_<feature>, the MVU's where not calibrated)
            f.update({f"vvu_{k}": pe * v
                      for k, v in get_mac(kind).area_features({**p, "pe": 1}).items()})
        if not _popcount_unit(p):   # the adder tree of the SIMD terms, bits of its adders
            f["tree"] = pe * _tree_adder_bits(simd, p["term_bits"])
        f["acc"] = pe * acc_w
        if p.get("thresholds"):
            f["threshold"] = pe * p["thresholds"] * (acc_w + 1)
        if nf > 1:   # initial values and thresholds looked up by channel fold
            f["fold_tables"] = pe * (acc_w + p.get("thresholds", 0) * (acc_w + 1)) * math.ceil(nf / 16)
        if p.get("activation") == "requant":
            f["requant"] = pe * acc_w * 4
        _, _, ff_bits, logic_bits = _memories(p, family)
        if ff_bits:
            f["mem_ff_read"] = ff_bits
        if logic_bits:
            f["rom_logic"] = logic_bits
            if kind in ("int", "adder", "onehot", "ternary") and not _popcount_unit(p):
                # weights from a ROM in logic: synthesis merges the ROM into each lane's
                # arithmetic (measured: a 5 × 8 multiplier fed by a 9-word ROM takes 2.9× the
                # LUTs of one fed by block RAM)
                f[f"{kind}_rom"] = pe * simd * p["a_bits"] * p["w_bits"]
        f["control"] = 1 + _clog2(nf) + _clog2(sf)
    elif b == "fifo":
        f["fifo"] = p["width"]
        f["control"] = 1 + _clog2(p["depth"])
        f["ptr"] = _clog2(p["depth"]) ** 2      # the pointers' compare and increment
        rows = _lutram_rows(family, p["depth"] - 1)
        if rows > 1 and not _auto_bram(family, "ram", p["depth"] - 1, (p["depth"] - 1) * p["width"]):
            f["mux"] = p["width"] * (rows - 1)   # the read multiplexer of stacked LUT RAMs
        _, _, ff_bits, _ = _memories(p, family)
        if ff_bits:
            f["mem_ff_read"] = ff_bits
    elif b == "dwc":
        g = math.gcd(p["i_elems"], p["o_elems"])
        if p["i_elems"] != g:      # split: a word-select multiplexer per output bit
            f["dwc_split"] = p["width"] * p["i_elems"] * _clog2(p["i_elems"] // g)
            f["dwc_split_mux"] = p["width"] * p["o_elems"] * (p["i_elems"] // g)
        if p["o_elems"] != g:      # gather: the write enables of the parts, decoded
            f["dwc_gather"] = p["width"] * p["o_elems"]
            f["dwc_gather_sel"] = p["o_elems"] // g
        f["control"] = 1 + _clog2(p["i_elems"] // g) + _clog2(p["o_elems"] // g)
    elif b in ("swu", "pool"):
        c, h, w = p["in_shape"]
        f["window"] = 1
        f["control"] = _clog2(h) + _clog2(w) + 2 * _clog2(p["kernel"] + 1)
        if b == "pool":
            f["max"] = c * p["width"]
        depth, width, where = _window_memory(p, family)
        f["data"] = width                        # the window's output word
        if where == "lutram" and _lutram_rows(family, depth) > 1:
            f["mux"] = width * (_lutram_rows(family, depth) - 1)
        _, _, ff_bits, _ = _memories(p, family)
        if ff_bits:
            f["mem_ff_read"] = ff_bits
    elif b == "argmax":
        f["max"] = p["elems"] * (p["width"] + 1 + p["index_bits"])
        f["control"] = 2 + p["index_bits"]
    elif b == "add":
        # per element: the carry-chain adders of the terms (a constant multiplier with k set
        # bits is k - 1 more), and the terms built in logic (negations, decoded element codes)
        acc_w = bits_for_range(p["acc_lo"], p["acc_hi"])[0]
        mults = [m for m in p["multipliers"] if m]
        adders = max(0, len(mults) - 1) + sum(bin(abs(m)).count("1") - 1 for m in mults)
        if p.get("int_terms", 1):   # no carry chain for a sum of decoded codes only
            f["sum"] = p["elems"] * acc_w * adders
        f["neg"] = p["elems"] * acc_w * p.get("neg_terms", 0)
        f["decode"] = p["elems"] * p.get("decode_bits", 0)
        f["control"] = 1
    elif b == "sum":
        # per element: an accumulator's adder and first-beat multiplexer; with channel folds,
        # the fold's accumulator read multiplexer and write enables; counters
        acc_w = bits_for_range(p["acc_lo"], p["acc_hi"])[0]
        folds = max(1, p.get("folds", 1))
        f["acc"] = p["elems"] * acc_w
        f["fold"] = p["elems"] * acc_w * (folds - 1)
        f["logic"] = p["elems"] * acc_w * p.get("logic_terms", 0)
        f["control"] = 1 + _clog2(p.get("count", 1)) + _clog2(folds)
    elif b == "act":
        acc_w = bits_for_range(p["acc_lo"], p["acc_hi"])[0]
        pe, nf = p["pe"], p["channels"] // p["pe"]
        if p["thresholds"]:
            t = p["thresholds"]
            if p.get("mode") == "search":   # one compare per stage (not calibrated: T <= 15)
                stages = max(1, t.bit_length())
                f["cmp"] = pe * stages * (acc_w + 1)
                f["table"] = pe * ((1 << stages) - 1) * (acc_w + 1) * math.ceil(nf / 16)
            else:   # T comparators per PE, thresholds looked up by fold, the hit count
                f["cmp"] = pe * t * (acc_w + 1)
                f["table"] = pe * t * (acc_w + 1) * _clog2(nf) * math.ceil(nf / 16)
                f["count"] = pe * t if t > 1 else 0
        else:   # a multiplier per PE, its multiplier looked up by fold, rounding and clipping
            mb = p.get("mult_bits", acc_w)
            f["mul"] = pe * acc_w * mb
            f["clip"] = pe * (acc_w + mb)
        f["control"] = 1 + _clog2(nf)
    elif b == "fork":
        # a done bit per reader and the release of the beat (every reader's done or ready)
        f["control"] = p["count"]
        f["release"] = p["count"] * p["count"]
    elif b == "concat":
        f["control"] = len(p["widths"])
    elif b == "pad":
        # the gather buffer's write enables by part, a part and a beat counter; a trim builds
        # only the kept elements
        r = p["o_elems"] // p["i_elems"]
        bits = p["width"] * p.get("live_elems", p["o_elems"])
        if p.get("trim"):
            f["trim"] = bits
            f["trim_control"] = 2 + 2 * _clog2(r)
        else:   # and the zero codes written into the last beat's missing parts
            f["gather"] = bits
            f["zero"] = p["width"] * p.get("zero_elems", 0)
            f["control"] = 2 + 2 * _clog2(r) + _clog2(p.get("beats", 1))
    elif b == "dwwin":
        # the output word: SIMD × PE elements, each a select among the C/PE channel folds of
        # the window memory's read word; the write and read counters
        cf = p["channels"] // p["pe"]
        f["select"] = p["width"] * p["simd"] * p["channels"]
        f["control"] = 4 + 2 * _clog2(p["kernel_elems"]) + _clog2(cf)
        _, _, ff_bits, _ = _memories(p, family)
        if ff_bits:
            f["mem_ff_read"] = ff_bits
    if b not in ("mvu", "vvu"):   # each kind of block has its own coefficients
        f = {(k if k.startswith(b) else f"{b}_{k}"): v for k, v in f.items()}
    return f


# -- coefficients, fitting -------------------------------------------------------------------
def load_coeffs(path=None) -> dict:
    p = Path(path) if path else COEFFS_FILE
    return json.loads(p.read_text())


def _coeff(coeffs: dict, name: str) -> float:
    """A feature's coefficient; a vector-vector unit's lane feature ``vvu_x`` not calibrated
    takes the matrix-vector unit's ``x``."""
    if name in coeffs:
        return coeffs[name]
    return coeffs.get(name[4:], 0.0) if name.startswith("vvu_") else 0.0


def _predict(feats: dict, coeffs: dict) -> float:
    return sum(_coeff(coeffs, k) * v for k, v in feats.items())


def fit_coefficients(points: list[dict]) -> dict:
    """Fit LUT and carry coefficients per family on the points whose ``role`` is ``fit``:
    non-negative coefficients minimising the largest relative error (a linear programme), then,
    at that bound, the sum of relative errors."""
    from scipy.optimize import linprog

    out = {"families": {}, "source": "bench/calibrate_area.py (non-negative coefficients, "
                                      "minimax relative error on the 'fit' points of "
                                      "bench/results/area_calibration.json)"}
    for fam in FAMILIES:
        rows = [(features(p, fam), p["yosys"][fam]) for p in points
                if p.get("role") == "fit" and fam in p.get("yosys", {})
                and p["block"] not in GRAPH_BLOCKS]
        if not rows:
            continue
        fam_out = {}
        for what in ("lut", "carry"):
            fixed = FIXED[what]
            names = sorted({k for f, _ in rows for k in f} - set(fixed))
            A = np.array([[f.get(n, 0.0) for n in names] for f, _ in rows])
            y = np.array([float(r[what]) - sum(c * f.get(k, 0.0) for k, c in fixed.items())
                          for f, r in rows])
            scale = np.maximum(np.array([float(r[what]) for _, r in rows]), 8.0)
            fam_out[what] = dict(zip(names, _minimax(A / scale[:, None], y / scale, linprog)))
            fam_out[what] = {n: round(float(v), 5) for n, v in fam_out[what].items()}
            fam_out[what].update(fixed)
        out["families"][fam] = fam_out
    return fit_graph_blocks(points, out)


#: Blocks of the graph ops, fitted after the others, each on its own points, with the others'
#: coefficients fixed (so that their points do not change the others' fit).
GRAPH_BLOCKS = ("add", "sum", "act", "fork", "concat", "pad", "dwwin", "vvu")


def fit_graph_blocks(points: list[dict], base: dict) -> dict:
    """``base`` with the coefficients of the graph blocks' own features added: per family and
    block kind, the features that ``base`` has no coefficient for, fitted (as
    :func:`fit_coefficients`) on that kind's ``fit`` points, every other coefficient fixed."""
    from scipy.optimize import linprog

    out = json.loads(json.dumps(base))
    for fam, fam_out in out["families"].items():
        for kind in GRAPH_BLOCKS:
            rows = [(features(p, fam), p["yosys"][fam]) for p in points
                    if p.get("role") == "fit" and p["block"] == kind and fam in p.get("yosys", {})]
            if not rows:
                continue
            for what in ("lut", "carry"):
                fixed = fam_out[what]
                names = sorted({k for f, _ in rows for k, v in f.items() if k not in fixed and v})
                if not names:
                    continue
                A = np.array([[f.get(n, 0.0) for n in names] for f, _ in rows])
                y = np.array([float(r[what]) - _predict({k: v for k, v in f.items() if k in fixed},
                                                        fixed) for f, r in rows])
                scale = np.maximum(np.array([float(r[what]) for _, r in rows]), 8.0)
                x = _minimax(A / scale[:, None], y / scale, linprog)
                fam_out[what].update({n: round(float(v), 5) for n, v in zip(names, x)})
    return out


#: The networks' relative error the second fitting stage may use to lower the blocks' errors.
NETWORK_TARGET = 0.12


def fit_networks(points: list[dict], networks: list[dict], base: dict,
                 caps=(1.0, 2.0, 5.0)) -> dict:
    """Refit every LUT and carry coefficient of ``base`` jointly on the ``fit`` points and on
    whole networks, so that the model holds on the networks users have and not only block by
    block. ``networks``: ``[{"name", "family", "blocks": [params, ...], "yosys": totals}]``.

    Per family and count, a linear programme finds non-negative coefficients minimising the
    largest relative error of a network's total while every fit point stays within a cap
    (the smallest of ``caps`` that is feasible); a second one then minimises the sum of the
    points' relative errors with the networks held within that bound (or NETWORK_TARGET)."""
    from scipy.optimize import linprog

    out = json.loads(json.dumps(base))
    for fam, fam_out in out["families"].items():
        pts = [(features(p, fam), p["yosys"][fam]) for p in points
               if p.get("role") == "fit" and fam in p.get("yosys", {})]
        nets = [n for n in networks if n["family"] == fam]
        if not nets:
            continue
        net_rows = []
        for n in nets:
            tot: dict[str, float] = {}
            for bp in n["blocks"]:
                for k, v in features(bp, fam).items():
                    tot[k] = tot.get(k, 0.0) + v
            net_rows.append((tot, n["yosys"]))
        for what in ("lut", "carry"):
            names = sorted({k for f, _ in pts + net_rows for k, v in f.items() if v})
            Ab = np.array([[f.get(k, 0.0) for k in names] for f, _ in pts])
            yb = np.array([float(r[what]) for _, r in pts])
            An = np.array([[f.get(k, 0.0) for k in names] for f, _ in net_rows])
            yn = np.array([float(r[what]) for _, r in net_rows])
            sb, sn = np.maximum(yb, 8.0), np.maximum(yn, 8.0)
            Ab, yb, An, yn = Ab / sb[:, None], yb / sb, An / sn[:, None], yn / sn
            x = _fit_capped(Ab, yb, An, yn, caps, linprog)
            if x is not None:
                fam_out[what] = {k: round(float(v), 5) for k, v in zip(names, x)}
    out["source"] = ("bench/calibrate_area.py (non-negative coefficients: the largest relative "
                     "error of the bundled examples' totals minimised, every calibration point "
                     "and example block within a cap; then the sum of their relative errors)")
    return out


def _fit_capped(Ab, yb, An, yn, caps, linprog):
    m, n = Ab.shape
    k = An.shape[0]
    for cap in caps:
        # variables x (n), T; minimise T: |An x - yn| <= T, |Ab x - yb| <= cap
        c = np.r_[np.zeros(n), 1.0]
        A_ub = np.block([[An, -np.ones((k, 1))], [-An, -np.ones((k, 1))],
                         [Ab, np.zeros((m, 1))], [-Ab, np.zeros((m, 1))]])
        b_ub = np.r_[yn, -yn, yb + cap, cap - yb]
        r = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(0, None)] * (n + 1), method="highs")
        if not r.success:
            continue
        bound = max(1.02 * r.x[-1], NETWORK_TARGET)
        # variables x (n), e (m); minimise sum e: |Ab x - yb| <= e <= cap, |An x - yn| <= bound
        c2 = np.r_[np.zeros(n), np.ones(m)]
        A2 = np.block([[Ab, -np.eye(m)], [-Ab, -np.eye(m)],
                       [An, np.zeros((k, m))], [-An, np.zeros((k, m))]])
        b2 = np.r_[yb, -yb, yn + bound, bound - yn]
        r2 = linprog(c2, A_ub=A2, b_ub=b2, bounds=[(0, None)] * n + [(0, cap)] * m, method="highs")
        return (r2.x if r2.success else r.x)[:n]
    return None


def _minimax(A, y, linprog):
    """x >= 0 minimising max |A x - y|, then the sum of |A x - y| within 1.02 of that max."""
    m, n = A.shape
    # variables: x (n), t (1); minimise t subject to -t <= A x - y <= t
    c = np.r_[np.zeros(n), 1.0]
    A_ub = np.block([[A, -np.ones((m, 1))], [-A, -np.ones((m, 1))]])
    b_ub = np.r_[y, -y]
    r = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(0, None)] * (n + 1), method="highs")
    t = r.x[-1]
    # variables: x (n), e (m); minimise sum e subject to -e <= A x - y <= e, e <= 1.02 t
    c2 = np.r_[np.zeros(n), np.ones(m)]
    A2 = np.block([[A, -np.eye(m)], [-A, -np.eye(m)]])
    r2 = linprog(c2, A_ub=A2, b_ub=np.r_[y, -y],
                 bounds=[(0, None)] * n + [(0, 1.02 * t + 1e-9)] * m, method="highs")
    return (r2.x if r2.success else r.x)[:n]


# -- calibration region ----------------------------------------------------------------------
#: Parameters of a matrix- or vector-vector unit whose calibrated range is recorded.
REGION_KEYS = ("lanes", "pe", "simd", "a_bits", "w_bits", "depth", "thresholds")


def _region_values(p: dict) -> dict:
    return {"lanes": p["pe"] * p["simd"], "pe": p["pe"], "simd": p["simd"], "a_bits": p["a_bits"],
            "w_bits": p["w_bits"], "depth": p.get("depth", 1), "thresholds": p.get("thresholds", 0)}


def calibration_summary(points: list[dict], networks: list[dict], coeffs: dict) -> dict:
    """Per family: the model's largest LUT and FF error on the whole networks it was fitted on,
    its median and 90th-percentile LUT error per kind of block over the calibration points and
    example blocks, and the range of unit parameters those cover (its calibration region)."""
    out = {}
    for fam in coeffs["families"]:
        nets = [n for n in networks if n["family"] == fam]
        nerr = {"lut": [], "ff": []}
        for n in nets:
            tot = {"lut": 0, "ff": 0}
            for bp, rb in zip(n["blocks"], n.get("register_bits", [None] * len(n["blocks"]))):
                e = estimate(bp, fam, coeffs=coeffs, ff_bits=rb)
                tot["lut"] += e.lut
                tot["ff"] += e.ff
            for k in nerr:
                if k == "ff" and "register_bits" not in n:
                    continue
                nerr[k].append(abs(tot[k] - n["yosys"][k]) / max(1, n["yosys"][k]))
        blocks: dict[str, list] = {}
        region: dict[str, dict] = {}
        for p in points:
            if fam not in p.get("yosys", {}) or fam in p.get("stale", ()):
                continue
            y = p["yosys"][fam]["lut"]
            e = estimate(p, fam, coeffs=coeffs).lut
            blocks.setdefault(p["block"], []).append(abs(e - y) / max(y, 8))
            if p["block"] in ("mvu", "vvu") and p.get("role") == "fit":
                r = region.setdefault(p["block"], {})
                for k, v in _region_values(p).items():
                    lo, hi = r.get(k, (v, v))
                    r[k] = (min(lo, v), max(hi, v))
        out[fam] = {
            "networks": {"count": len(nets),
                         **{f"{k}_max": round(max(v), 4) for k, v in nerr.items() if v}},
            "blocks": {b: {"count": len(v), "lut_median": round(float(np.median(v)), 4),
                           "lut_p90": round(float(np.percentile(v, 90)), 4)}
                       for b, v in sorted(blocks.items())},
            "region": {b: {k: list(r[k]) for k in REGION_KEYS} for b, r in sorted(region.items())}}
    return out


def region_warnings(p: dict, family: str, coeffs: dict | None = None) -> list[str]:
    """What puts a unit outside the model's calibration region on ``family`` (empty: inside)."""
    if p.get("block") not in ("mvu", "vvu"):
        return []
    cal = (coeffs or load_coeffs()).get("calibration", {}).get(family, {})
    r = cal.get("region", {}).get(p["block"])
    if not r:
        return []
    out = []
    for k, v in _region_values(p).items():
        lo, hi = r.get(k, (v, v))
        if not lo <= v <= hi:
            out.append(f"{k} {v:,} (calibrated {lo:,}–{hi:,})")
    return out


# -- estimates -------------------------------------------------------------------------------
@dataclass
class BlockArea:
    """Estimated resources of one block."""

    name: str
    block: str
    lut: int
    ff: int
    carry: int
    bram: int
    lutram: int
    dsp: int = 0
    params: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "block": self.block, "lut": self.lut, "ff": self.ff,
                "carry": self.carry, "bram": self.bram, "lutram": self.lutram, "dsp": self.dsp}


def _read_register_bits(p: dict, family: str) -> int:
    """Flip-flops Yosys adds for the clocked read port of a memory it does not put in block
    RAM (LUT RAM and flip-flop memories read without a clock): a FIFO's output word, and the
    matrix-vector unit's input buffer word for multi-bit activations (measured: Yosys merges it
    with the input register for 1-bit activations)."""
    if p["block"] == "fifo" and p["depth"] > 1:
        bits = (p["depth"] - 1) * p["width"]
        if _auto_bram(family, "ram", p["depth"] - 1, bits):
            return 2 * p["width"]               # block RAM's read word, registered twice
        return p["width"]
    bits = 0
    if p["block"] in ("swu", "pool"):   # the line buffer's read word, twice from block RAM
        _, width, where = _window_memory(p, family)
        return {"bram": 2, "lutram": 1}.get(where, 0) * width
    if p["block"] == "dwwin":   # the window memory's read word (twice from block RAM)
        depth = 2 * p["kernel_elems"] // p["simd"]
        bits = p["simd"] * p["channels"] * p["width"]
        if _auto_bram(family, "window", depth, depth * bits):
            return 2 * bits
        return bits
    if p["block"] in ("mvu", "vvu"):
        nf, sf = p["mh"] // p["pe"], p["mw"] // p["simd"]
        ibuf = p["simd"] * p["a_bits"]
        if p["block"] == "mvu" and nf > 1:
            if sf > 1 and _auto_bram(family, "ram", sf, sf * ibuf):
                bits += 2 * ibuf                # block RAM's read word, registered twice
            elif p["a_bits"] > 1:
                bits += ibuf
        if not weights_in_bram(p, family):
            bits += _weight_rom(p)[1]           # the weight ROM's output word
    return bits


def register_bits(component) -> int:
    """Flip-flop bits of an Amaranth component as built (its RTLIL ``$dff`` cells)."""
    from amaranth.back import rtlil

    return register_bits_of_rtlil(rtlil.convert(component, name="top"))


def register_bits_of_rtlil(text: str) -> int:
    """Flip-flop bits of an RTLIL text (its ``$dff`` cells)."""
    total = 0
    for m in re.finditer(r"cell \$(\w*dff\w*) [^\n]*\n((?:\s+parameter[^\n]*\n)*)", text):
        w = re.search(r"\\WIDTH (\d+)", m.group(2))
        total += int(w.group(1)) if w else 1
    return total


def estimate(p: dict, family: str, *, coeffs: dict | None = None, ff_bits: int | None = None,
             name: str = "") -> BlockArea:
    """Resources of a block with parameters ``p`` (from :func:`block_params`).

    ``ff_bits``: the block's register bits (:func:`register_bits`); without it, flip-flops
    are not estimated (0).
    """
    if family not in FAMILIES:
        raise ValueError(f"Family must be one of {', '.join(FAMILIES)}, not {family!r}")
    c = (coeffs or load_coeffs())["families"][family]
    feats = features(p, family)
    bram, lutram, mem_ff, _ = _memories(p, family)
    lut = max(0, round(_predict(feats, c["lut"])))
    carry = max(0, round(_predict(feats, c["carry"])))
    ff = (ff_bits or 0) + mem_ff + _read_register_bits(p, family)
    return BlockArea(name or p["block"], p["block"], lut, ff, carry, bram, lutram, 0, p)


def calibration_report(points: list[dict], coeffs: dict) -> str:
    """A plain table: model vs Yosys per point and family (LUT error, BRAM)."""
    lines = [f"{'point':44} {'family':7} {'role':5} {'yosys':>6} {'model':>6} {'err':>7} "
             f"{'bram y/m':>8}"]
    for p in points:
        for fam in FAMILIES:
            r = p.get("yosys", {}).get(fam)
            if r is None:
                continue
            e = estimate(p, fam, coeffs=coeffs)
            err = (e.lut - r["lut"]) / max(1, r["lut"])
            lines.append(f"{p['name'][:44]:44} {fam:7} {p.get('role', ''):5} {r['lut']:6d} "
                         f"{e.lut:6d} {100 * err:+6.1f}% {r['bram']:>3}/{e.bram:<3}")
    return "\n".join(lines)
