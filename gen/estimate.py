"""Estimates of an accelerator. The cycle model of a whole accelerator: steady-state interval and first-frame latency.

The interval (cycles per frame in steady state) is :func:`gen.chainsim.steady_interval`: the
chain of blocks run cycle by cycle until frames repeat. It equals :attr:`gen.plan.Plan.interval`
(the slowest layer's cycles per frame, each block counted on its own) except where blocks with
finite buffers slow each other down (a sliding window that stops taking pixels while it reads a
frame's last output row, or that waits for rows from a slow producer while the bottleneck after
it idles). The latency (cycles from the first input
beat accepted to the first output beat valid, with no stalls) is found by following the first
frame's beats through the chain of blocks that :class:`gen.top.Accelerator` builds: for every
stream, the cycle at which each beat of frame 0 moves. Each block maps the cycles of its input
beats to those of its output beats with its own timing rules:

* width converter: a split stage sends the ``ratio`` parts of a beat on the ``ratio`` cycles
  after taking it; a gather stage sends its word the cycle after its last part;
* FIFO (:class:`amaranth.lib.fifo.SyncFIFOBuffered`, after a layer and in front of a
  matrix-vector unit with several channel folds): a beat comes out 2 cycles after it went in;
* sliding window: a window pixel goes out the cycle after the reader takes it, which it does
  one per cycle once the pixel is written (padding needs nothing; the last beat of a frame
  waits for the frame's last pixel), the writer running at most ``kh + sh`` rows ahead of the
  top row of the reader's output row (it may write row ``y`` once the reader has finished
  output row ``(y + ph - kh - sh) // sh``; rows below the last window at once);
* matrix-vector unit: issue one beat per cycle (from the stream in channel fold 0, from the
  input buffer in the others); a fold's output is valid ``read stages (2 with the weight
  register, else 1) + lane latency + 1 + activation latency`` cycles after its last beat is
  issued (:attr:`hw.mvu.MVU.latency` for the first);
* max-pool window and argmax: the cycle after the window's / frame's last beat.

Back-pressure inside the chain is not modelled (every consumer is assumed ready when a beat
is first valid), except that a matrix-vector unit takes a new vector only when it has issued
every fold of the previous one, and the sliding window's writer waits for free rows. The
tests compare the model with simulation (docs/estimate.md gives the measured accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.swu import live_rows

from .chainsim import steady_interval
from .ir import Argmax, Conv2d, Dense, MaxPool2d

__all__ = ["FIFO_LATENCY", "LayerTiming", "first_frame_timing"]

#: Share of flip-flops that nextpnr-ice40 does not pack into the logic cell of a LUT, measured on
#: the digits_bnn accelerator in the iCEBreaker top level (4,907 LUT4 + 4,066 FF → 7,933 cells).
ICE40_UNPACKED_FF = 0.75

#: Cycles from a beat entering a :class:`hw.fifo.StreamFIFO` to it being valid at its output.
FIFO_LATENCY = 2


@dataclass(frozen=True)
class LayerTiming:
    """When layer ``index`` of frame 0 starts and ends, in cycles from the first input beat."""

    index: int
    first_in: int     # its first input beat arrives
    first_out: int    # its first output beat is valid
    last_out: int     # its last output beat of the frame is valid

    @property
    def latency(self) -> int:
        """Cycles from its first input beat to its first output beat."""
        return self.first_out - self.first_in


def _serial(offered) -> np.ndarray:
    """Cycles at which beats offered at ``offered`` are taken by a block that takes one per
    cycle."""
    t = np.array(offered, dtype=np.int64)
    # t[i] = max(offered[i], t[i-1] + 1): a running max of offered[i] - i, plus i
    idx = np.arange(len(t))
    return np.maximum.accumulate(t - idx) + idx


def _dwc(t, i_elems: int, o_elems: int) -> np.ndarray:
    if i_elems == o_elems:
        return t
    g = math.gcd(i_elems, o_elems)
    if i_elems != g:
        r = i_elems // g
        out = np.empty(len(t) * r, dtype=np.int64)
        prev_last = -(1 << 40)
        for i, off in enumerate(t.tolist()):
            a = max(off, prev_last)          # takes a beat on the cycle its last part leaves
            out[i * r:(i + 1) * r] = a + 1 + np.arange(r)
            prev_last = a + r
        t = out
    if o_elems != g:
        r = o_elems // g
        a = _serial(t)
        t = a[r - 1::r] + 1
    return t


def _fifo(t) -> np.ndarray:
    return _serial(np.asarray(t) + FIFO_LATENCY)


def _mvu(t, *, nf: int, sf: int, vectors: int, tail: int) -> np.ndarray:
    """Output beats (vector-major, fold-minor) of a matrix-vector unit."""
    out = np.empty(vectors * nf, dtype=np.int64)
    issue = -(1 << 40)
    tl = t.tolist()
    for v in range(vectors):
        for f in range(nf):
            if f == 0:
                for s in range(sf):
                    issue = max(tl[v * sf + s], issue + 1)
            else:
                issue += sf
            out[v * nf + f] = issue + tail
    return out


def _window(t, *, in_shape, kernel, stride, padding, rows_gate=True) -> np.ndarray:
    """Window pixels out of a sliding-window unit (frame 0)."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    R = kh + sh
    live = live_rows(h, kh, sh, ph)   # the rows below (never read) need no buffer row
    tl = t.tolist()
    written = []               # write cycle of each pixel, in raster order
    row_done = []              # cycle of the reader's last beat of each output row

    def write_until(p):
        while len(written) <= p:
            q = len(written)
            y = q // w
            need = (y + ph - R) // sh + 1 if y < live else 0   # output rows finished first
            gate = row_done[need - 1] + 1 if need > 0 else -(1 << 40)
            prev = written[-1] + 1 if written else -(1 << 40)
            written.append(max(tl[q], prev, gate))

    out = []
    go = -1                    # the reader starts after reset: padding needs no input
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    y, x = oy * sh - ph + ky, ox * sw - pw + kx
                    ready = go + 1
                    if 0 <= y < h and 0 <= x < w:
                        p = y * w + x
                        write_until(p)
                        ready = max(ready, written[p] + 1)
                    if oy == oh - 1 and ox == ow - 1 and ky == kh - 1 and kx == kw - 1:
                        write_until(h * w - 1)
                        ready = max(ready, written[-1] + 1)
                    go = ready
                    out.append(go + 1)
        row_done.append(go)
    return np.array(out, dtype=np.int64)


def _groups(t, count: int) -> np.ndarray:
    """Output of a block that sends one beat the cycle after the last of every ``count``."""
    a = _serial(t)
    return a[count - 1::count] + 1


def first_frame_timing(accel) -> tuple[int, list[LayerTiming]]:
    """``(latency, per-layer timings)`` of an :class:`gen.top.Accelerator`, with no stalls.

    ``latency`` is the cycles from the first input beat accepted to the first output beat
    valid, as ``nomul sim`` measures it.
    """
    net, plan = accel.net, accel.plan
    n_in = math.prod(net.input.shape) // plan.input_elems
    t = np.arange(n_in, dtype=np.int64)   # the driver offers one beat per cycle
    k = plan.input_elems
    timings = []
    for i, (layer, lp, stage) in enumerate(zip(net.layers, plan.layers, accel.stages)):
        first_in = int(t[0])
        if isinstance(layer, Conv2d):
            c = layer.in_shape[0]
            t = _dwc(t, k, c)
            t = _window(t, in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                        padding=layer.padding)
            t = _dwc(t, c, lp.simd)
            vectors = layer.out_shape[1] * layer.out_shape[2]
        elif isinstance(layer, Dense):
            t = _dwc(t, k, lp.simd)
            vectors = 1
        if isinstance(layer, (Dense, Conv2d)):
            nf, sf = layer.mh // lp.pe, layer.mw // lp.simd
            tail = stage.latency - (sf - 1)        # MVU.latency = SF - 1 + tail
            if getattr(stage, "in_fifo_depth", None):   # a FIFO in front of a folded MVU
                t = _fifo(t)
            t = _mvu(_serial(t), nf=nf, sf=sf, vectors=vectors, tail=tail)
            k = lp.pe
        elif isinstance(layer, MaxPool2d):
            c = layer.in_shape[0]
            t = _dwc(t, k, c)
            t = _window(t, in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                        padding=(0, 0))
            t = _groups(t, layer.kernel[0] * layer.kernel[1])
            k = c
        elif isinstance(layer, Argmax):
            ka = math.gcd(k, layer.in_shape[0])
            t = _dwc(t, k, ka)
            t = _groups(t, len(t))
            k = 1
        timings.append(LayerTiming(i, first_in, int(t[0]), int(t[-1])))
        if stage.fifo_depth is not None:
            t = _fifo(t)
    return int(t[0]), timings


# == the whole estimate ===========================================================================
from .parts import Part, get_part  # noqa: E402

TARGETS = ("ecp5-25k", "ecp5-85k", "ice40-up5k", "xc7a35t")


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

    def total(self, key: str) -> int:
        return sum(lay.total(key) for lay in self.layers)

    @property
    def lut_sites(self) -> int:
        return lut_equivalents(self.part.family, self.total("lut"), self.total("carry"),
                               self.total("lutram"))

    @property
    def clock_mhz(self) -> float:
        return self.fmax_mhz if self.fmax_mhz else self.part.default_mhz

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
             "clock_mhz": self.clock_mhz, "clock_source": "nextpnr" if self.fmax_mhz else "part default",
             "frames_per_s": self.fps, "latency_us": self.latency_us}
        if self.synth is not None:
            d["synth"] = self.synth
        if self.fmax_mhz is not None:
            d["fmax_mhz"] = self.fmax_mhz
        return d


def _part(target: str) -> Part:
    from .errors import NetworkError

    try:
        return get_part(target)
    except ValueError:
        raise NetworkError("--target", f"unknown target {target!r} (targets: {', '.join(TARGETS)}, "
                                       f"or any of gen/parts.py)") from None


def estimate_network(net, *, target: str = "ecp5-25k", fold=None, target_cycles=None,
                     coeffs=None, count_registers: bool = True) -> Estimate:
    """Cycles, area and memory of a network's accelerator on a part (no synthesis)."""
    from . import area
    from .plan import plan_network
    from .top import Accelerator

    part = _part(target)
    plan = plan_network(net, fold=fold, target_cycles=target_cycles)
    accel = Accelerator(net, plan)
    accel._MustUse__used = True  # described, not necessarily elaborated
    latency, timings = first_frame_timing(accel)
    coeffs = coeffs or area.load_coeffs()
    blocks = dict(accel._blocks)
    layers = []
    for layer, lp, stage, tm in zip(net.layers, plan.layers, accel.stages, timings):
        bl, wbits, bbits, fbits = [], 0, 0, 0
        for bname in stage.blocks:
            comp = blocks[bname]
            p = area.block_params(comp, layer)
            ffb = area.register_bits(comp) if count_registers else None
            bl.append(area.estimate(p, part.family, coeffs=coeffs, ff_bits=ffb, name=bname))
            if p["block"] == "mvu":
                nf, sf = p["mh"] // p["pe"], p["mw"] // p["simd"]
                wbits += p["mh"] * p["mw"] * p["w_bits"]
                bbits += sf * p["simd"] * p["a_bits"] if nf > 1 else 0
            elif p["block"] in ("swu", "pool"):
                c, _, w = p["in_shape"]
                rows = p.get("rows", 2 * p["kernel"])
                bbits += rows * (1 << max(1, (w - 1).bit_length())) * c * p["width"]
            elif p["block"] == "fifo":
                fbits += p["width"] * p["depth"]
        layers.append(LayerEstimate(lp.index, lp.name, lp.kind, getattr(layer, "mac", None),
                                    layer.macs, lp.pe, lp.simd, lp.cycles, tm.latency,
                                    tm.first_out, bl, wbits, bbits, fbits))
    return Estimate(net, plan, accel, part, layers, steady_interval(accel), latency)


def synthesize_estimate(est: Estimate, build_dir, *, pnr: bool = False, progress=None) -> None:
    """Synthesize every block with Yosys for the part's family (``est.synth`` and each layer's
    ``synth``); with ``pnr``, also the whole accelerator, placed and routed with nextpnr for
    the part (``est.fmax_mhz``). ``progress(message)`` is called before each step."""
    from .synth import place_and_route, rtlil_text, synthesize

    fam = est.part.family
    blocks = dict(est.accel._blocks)
    say = progress or (lambda msg: None)
    say(f"Yosys synth_{fam}: {len(blocks)} blocks")
    res = synthesize({n: rtlil_text(b) for n, b in blocks.items()}, fam, build_dir)
    keys = ("lut", "ff", "carry", "bram", "lutram", "dsp")
    for lay, stage in zip(est.layers, est.accel.stages):
        lay.synth = {k: sum(getattr(res[b], k) for b in stage.blocks) for k in keys}
    est.synth = {k: sum(lay.synth[k] for lay in est.layers) for k in keys}
    est.synth["lut_sites"] = lut_equivalents(fam, est.synth["lut"], est.synth["carry"],
                                             est.synth["lutram"])
    if pnr:
        if fam not in ("ecp5", "ice40"):
            from .errors import NetworkError
            raise NetworkError("--pnr", f"no open place-and-route for {est.part.name} "
                                        f"(nextpnr-xilinx is not on PyPI); use --synth alone")
        say(f"Yosys synth_{fam}: whole accelerator")
        name = "nomul_top"
        synthesize({name: rtlil_text(est.accel)}, fam, build_dir, json_netlist=True)
        say(f"nextpnr-{fam} --{est.part.device}")
        r = place_and_route(f"{name}_{fam}.json", fam, est.part.device, est.part.package, build_dir)
        est.fmax_mhz = r.fmax_mhz
