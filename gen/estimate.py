"""Estimates of an accelerator on a part: cycles (from the exact cycle model of
:mod:`gen.cycles`), area (LUT, FF, carry, block RAM, LUT RAM, DSP per block, from the calibrated
model of :mod:`gen.area`), memory, whether it fits, frames per second; and the same checked
against Yosys (and nextpnr for Fmax) by :func:`synthesize_estimate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .chainsim import steady_interval
from .cycles import FIFO_LATENCY, LayerTiming, first_frame_timing
from .targets import PARTS, Part, get_part

__all__ = ["Estimate", "LayerEstimate", "estimate_network", "synthesize_estimate", "lut_equivalents",
           "first_frame_timing", "LayerTiming", "FIFO_LATENCY", "ICE40_UNPACKED_FF"]

#: Share of flip-flops that nextpnr-ice40 does not pack into the logic cell of a LUT, measured on
#: the digits_bnn accelerator in the iCEBreaker top level (4,907 LUT4 + 4,066 FF → 7,933 cells).
ICE40_UNPACKED_FF = 0.75


def lut_equivalents(family: str, lut: int, carry: int, lutram: int) -> int:
    """LUT sites used, as the part's LUT capacity counts them: an ECP5 CCU2C carry cell and a
    TRELLIS_DPR16X4 RAM each take two LUT4 sites; a 7-series RAM32M/RAM64M takes four LUT6s;
    an iCE40 SB_CARRY shares its logic cell."""
    if family == "ecp5":
        return lut + 2 * carry + 2 * lutram
    if family == "xilinx":
        return lut + 4 * lutram
    return lut


@dataclass
class LayerEstimate:
    index: int
    name: str
    kind: str
    mac: str | None
    macs: int
    pe: int | None
    simd: int | None
    cycles: int
    latency: int
    first_out: int
    blocks: list
    weight_bits: int
    buffer_bits: int      # MVU input buffers and sliding-window line buffers
    fifo_bits: int
    synth: dict | None = None

    def total(self, key: str) -> int:
        return sum(getattr(b, key) for b in self.blocks)

    def to_json(self) -> dict:
        d = {"index": self.index, "name": self.name, "kind": self.kind, "mac": self.mac,
             "macs": self.macs, "pe": self.pe, "simd": self.simd, "cycles_per_frame": self.cycles,
             "latency_cycles": self.latency, "first_output_cycle": self.first_out,
             "lut": self.total("lut"), "ff": self.total("ff"), "carry": self.total("carry"),
             "bram": self.total("bram"), "lutram": self.total("lutram"), "dsp": self.total("dsp"),
             "weight_bits": self.weight_bits, "buffer_bits": self.buffer_bits,
             "fifo_bits": self.fifo_bits, "blocks": [b.to_json() for b in self.blocks]}
        if self.synth is not None:
            d["synth"] = self.synth
        return d


@dataclass
class Estimate:
    net: object
    plan: object
    accel: object
    part: Part
    layers: list
    interval: int
    latency: int
    fmax_mhz: float | None = None
    synth: dict | None = None
    #: The whole accelerator placed and routed (:class:`gen.synth.PnrResult`), with ``--pnr``.
    pnr: object = None
    #: The clock model's Fmax (:mod:`gen.clock`): ``{"fmax_mhz", "block", "path", "blocks":
    #: {name: [MHz, path]}}``, None for a family it has no calibration for.
    clock_model: dict | None = None

    def total(self, key: str) -> int:
        return sum(lay.total(key) for lay in self.layers)

    @property
    def lut_sites(self) -> int:
        return lut_equivalents(self.part.family, self.total("lut"), self.total("carry"),
                               self.total("lutram"))

    @property
    def clock_mhz(self) -> float:
        """nextpnr's Fmax where placed and routed, else the clock model's, else the part's
        default clock."""
        if self.fmax_mhz:
            return self.fmax_mhz
        if self.clock_model is not None:
            return self.clock_model["fmax_mhz"]
        return self.part.default_mhz

    @property
    def clock_source(self) -> str:
        return ("nextpnr" if self.fmax_mhz else "clock model" if self.clock_model is not None
                else "part default")

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.interval

    @property
    def latency_us(self) -> float:
        return self.latency / self.clock_mhz

    @property
    def memory(self) -> dict:
        return {"weight_bits": sum(x.weight_bits for x in self.layers),
                "buffer_bits": sum(x.buffer_bits for x in self.layers),
                "fifo_bits": sum(x.fifo_bits for x in self.layers),
                "join_fifo_bits": self.accel.join_fifo_bits,   # of fifo_bits: the joins' inputs
                "bram_bits_available": self.part.bram_total_bits}

    def fit(self) -> dict:
        """Resource → (needed, available, fits) against the part's capacities.

        On iCE40 a logic cell holds one LUT4 and one flip-flop, but nextpnr packs only some
        flip-flops with their LUT: ``lc`` counts the LUT sites plus the unpacked share of the
        flip-flops (:data:`ICE40_UNPACKED_FF`, measured).
        """
        p = self.part
        need = {"lut": self.lut_sites, "ff": self.total("ff"), "bram": self.total("bram"),
                "dsp": self.total("dsp")}
        have = {"lut": p.lut, "ff": p.ff, "bram": p.bram, "dsp": p.dsp}
        if p.family == "ice40":
            need["lc"] = self.lut_sites + math.ceil(ICE40_UNPACKED_FF * self.total("ff"))
            have["lc"] = p.lut
        return {k: (need[k], have[k], need[k] <= have[k]) for k in need}

    @property
    def fits(self) -> bool:
        return all(ok for _, _, ok in self.fit().values())

    def bottleneck(self) -> str:
        """One line: what does not fit the part, else the slowest layer."""
        short = [f"{k.upper()} {n:,} > {a:,}" for k, (n, a, ok) in self.fit().items() if not ok]
        if short:
            mem = self.memory
            extra = ""
            if self.total("bram") > self.part.bram:
                extra = (f" (weights {mem['weight_bits']:,} bits, buffers {mem['buffer_bits']:,}, "
                         f"FIFOs {mem['fifo_bits']:,}; the part has {self.part.bram_total_bits:,} "
                         f"bits of block RAM)")
            return f"does not fit the {self.part.name}: {', '.join(short)}{extra}"
        slow = self.plan.bottleneck
        lim = max(slow.parts, key=lambda p: p[1])[0] if slow.parts else ""
        return (f"compute: slowest layer {slow.name} ({slow.cycles:,} cycles per frame, limited "
                f"by its {lim})")

    def to_json(self) -> dict:
        d = {"network": self.net.name, "target": self.part.name, "family": self.part.family,
             "layers": [x.to_json() for x in self.layers],
             "total": {"cycles_per_frame": self.interval, "latency_cycles": self.latency,
                       "lut": self.total("lut"), "ff": self.total("ff"),
                       "carry": self.total("carry"), "bram": self.total("bram"),
                       "lutram": self.total("lutram"), "dsp": self.total("dsp"),
                       "lut_sites": self.lut_sites},
             "memory": self.memory,
             "fit": {k: {"needed": n, "available": a, "fits": ok} for k, (n, a, ok) in self.fit().items()},
             "fits": self.fits, "bottleneck": self.bottleneck(),
             "clock_mhz": self.clock_mhz, "clock_source": self.clock_source,
             "frames_per_s": self.fps, "latency_us": self.latency_us}
        if self.synth is not None:
            d["synth"] = self.synth
        if self.fmax_mhz is not None:
            d["fmax_mhz"] = self.fmax_mhz
        if self.clock_model is not None:
            d["clock_model"] = self.clock_model
        if self.pnr is not None:
            a, b = self.pnr.critical_blocks
            d["pnr"] = {"critical_path": {"from": a, "to": b, "from_cell": self.pnr.critical_from,
                                          "to_cell": self.pnr.critical_to},
                        "utilisation": {k: {"used": u, "available": n}
                                        for k, (u, n) in self.pnr.utilisation.items() if u}}
        return d


def _part(target: str) -> Part:
    from .errors import NetworkError

    try:
        return get_part(target)
    except ValueError:
        raise NetworkError("--target", f"unknown target {target!r} (targets: {', '.join(PARTS)})") from None


def estimate_network(net, *, target: str = "ecp5-25k", fold=None, target_cycles=None,
                     coeffs=None, count_registers: bool = True) -> Estimate:
    """Cycles, area and memory of a network's accelerator on a part (no synthesis)."""
    from . import area
    from .plan import plan_network
    from .top import Accelerator

    part = _part(target)
    plan = plan_network(net, fold=fold, target_cycles=target_cycles)
    accel = Accelerator(net, plan, family=part.family)
    accel.mark_used()  # described, not necessarily elaborated
    latency, timings = first_frame_timing(accel)
    coeffs = coeffs or area.load_coeffs()
    blocks = dict(accel.blocks)
    layers = []
    clocked = []
    for layer, lp, stage, tm in zip(net.layers, plan.layers, accel.stages, timings, strict=True):
        bl, wbits, bbits, fbits = [], 0, 0, 0
        for bname in stage.blocks:
            comp = blocks[bname]
            p = accel.block_params(bname)
            ffb = area.register_bits(comp) if count_registers else None
            clocked.append((bname, p, ffb))
            bl.append(area.estimate(p, part.family, coeffs=coeffs, ff_bits=ffb, name=bname))
            w, b, f = area.memory_bits(p)
            wbits, bbits, fbits = wbits + w, bbits + b, fbits + f
        layers.append(LayerEstimate(lp.index, lp.name, lp.kind, getattr(layer, "mac", None),
                                    layer.macs, lp.pe, lp.simd, lp.cycles, tm.latency,
                                    tm.first_out, bl, wbits, bbits, fbits))
    return Estimate(net, plan, accel, part, layers, steady_interval(accel), latency,
                    clock_model=_clock_model(clocked, part.family))


def _clock_model(blocks, family: str) -> dict | None:
    """:attr:`Estimate.clock_model` of ``[(name, params, register bits)]``."""
    from . import clock

    try:
        coeffs = clock.load_clock_coeffs()
    except (OSError, ValueError):
        return None
    if family not in coeffs.get("families", {}):
        return None
    if not blocks:
        return None
    (fmax, name, path), per = clock.network_clock(blocks, family, coeffs)
    per = {n: [clock.rounded_mhz(bc.fmax_mhz), bc.path] for n, bc in per.items()}
    return {"fmax_mhz": clock.rounded_mhz(fmax), "block": name, "path": path, "blocks": per,
            "calibration": coeffs.get("calibration", {}).get(family),
            "networks": coeffs.get("network", {}).get(family, {}).get("error")}


def synthesize_estimate(est: Estimate, build_dir, *, pnr: bool = False, progress=None,
                        jobs: int | None = None, cache=True) -> None:
    """Synthesize every block with Yosys for the part's family (``est.synth`` and each layer's
    ``synth``); with ``pnr``, also the whole accelerator, placed and routed with nextpnr for
    the part (``est.fmax_mhz``, ``est.pnr``) inside :class:`hw.serial_io.SerialIO`, so that any
    accelerator fits the package's pins. ``progress(message)`` is called before each step and
    with each tool's current pass. ``jobs`` and ``cache``: as :func:`gen.synth.synthesize`
    (distinct blocks two at a time, results cached by content); blocks of less than
    :data:`gen.synth.PACK_CHARS` characters of RTLIL are synthesized together."""
    from .synth import PACK_CHARS, place_and_route_block, synthesize

    fam = est.part.family
    blocks = dict(est.accel.blocks)
    say = progress or (lambda msg: None)
    say(f"Yosys synth_{fam}: {len(blocks)} blocks")
    res = synthesize(blocks, fam, build_dir, progress=progress, jobs=jobs, cache=cache,
                     pack=PACK_CHARS)
    keys = ("lut", "ff", "carry", "bram", "lutram", "dsp")
    for lay, stage in zip(est.layers, est.accel.stages):
        lay.synth = {k: sum(getattr(res[b], k) for b in stage.blocks) for k in keys}
    est.synth = {k: sum(lay.synth[k] for lay in est.layers) for k in keys}
    est.synth["lut_sites"] = lut_equivalents(fam, est.synth["lut"], est.synth["carry"],
                                             est.synth["lutram"])
    if pnr:
        if est.part.family_record.pnr is None:
            from .errors import NetworkError
            raise NetworkError("--pnr", f"no open place-and-route for {est.part.name} "
                                        f"(nextpnr-xilinx is not on PyPI); use --synth alone")
        say(f"Yosys synth_{fam}: whole accelerator in a serial-I/O wrapper")
        r = place_and_route_block(est.accel, fam, est.part.device, est.part.package, build_dir,
                                  progress=progress)
        est.fmax_mhz = r.fmax_mhz
        est.pnr = r
