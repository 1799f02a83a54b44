"""The clock model: Fmax of a block, and of an accelerator, without place and route.

A block's clock is set by its slowest register-to-register path. :func:`block_paths` lists the
candidate paths of a block from its area-model parameters (:func:`gen.area.block_params`) and
its register count, each as a structure of the hardware that nomul builds:

``lut``      levels of plain LUT logic (multiplexers, selects, the ternary kind's ``a``/``~a``);
``counter``  popcount compression levels (a LUT4 family's 3:2 counters, LUT6 6:3);
``adder``    carry chains entered (an adder, a comparator, an accumulator, a counter);
``bits``     bits of the longest of those chains;
``bram``     the path starts at a block RAM's data output;
``lutram``   the path starts at a LUT RAM's read port;
``fanout``   log2 of the flip-flops the stall enable loads (every block's ``en``: a
             ``ready`` from the consumer, one LUT, then the clock enable of every register).

The delay of a path is ``base + Σ coefficient × feature`` (ns), with coefficients per family
fitted on nextpnr results of every block of the bundled examples (``bench/clock_blocks.py
--fit``, kept in ``gen/clock_coeffs.json``); a block's Fmax is ``1000 / max(delay)`` and names
its critical path. An accelerator's Fmax is its slowest block's, or that of the one path that
crosses blocks: the stall enable of a matrix-vector unit between its FIFOs (:func:`chain_delay`,
its FIFO ends fitted on whole accelerators placed and routed, ``bench/fmax.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["FEATURES", "block_paths", "block_fmax", "BlockClock", "load_clock_coeffs", "fit",
           "COEFFS_PATH", "network_fmax", "network_clock", "rounded_mhz", "chain_delay",
           "CHAIN_BLOCKS"]

FEATURES = ("base", "lut", "counter", "adder", "bits", "bram", "lutram", "fanout")
COEFFS_PATH = Path(__file__).with_name("clock_coeffs.json")


def _clog2(n: int) -> int:
    return max(0, (max(1, int(n)) - 1).bit_length())


def _tree_stages(levels: list[str], depth: int) -> list[list[str]]:
    """The logic levels (names) in each pipeline stage of a tree of ``levels`` with ``depth``
    registers spread as :func:`hw.pipeline.spread_registers` places them; the last list is
    the levels after the last register (they share a cycle with whatever follows)."""
    from hw.pipeline import spread_registers

    regs = spread_registers(max(1, len(levels)), depth)
    stages, cur = [], []
    for lvl, r in zip(levels, regs, strict=False):
        cur.append(lvl)
        for _ in range(r):
            stages.append(cur)
            cur = []
    stages.append(cur)
    return stages


def _unit_paths(p: dict, family: str, fan: dict) -> dict:
    from hw.trees import counter_levels

    from .area import weights_in_bram

    kind, simd, pe = p["kind"], max(1, p["simd"]), max(1, p["pe"])
    lut4 = family in ("ecp5", "ice40")
    popcount = kind in ("xnor", "and") or (kind == "ternary" and p.get("a_max_abs", 2) <= 1)
    if popcount:
        group = 3 if lut4 else 6
        first = (2 if lut4 else 3) if kind in ("xnor", "and") else group
        n = simd if kind in ("xnor", "and") else simd
        levels = ["counter"] * counter_levels(n, first, group) + ["adder"]
        tree_bits = _clog2(simd + 1)
    else:
        pre = {"ternary": 1, "adder": 2, "int": 2, "onehot": 2}.get(kind, 1)
        levels = ["lut"] * pre + ["adder"] * max(1, _clog2(simd))
        tree_bits = p.get("term_bits", 8) + _clog2(simd)
    stages = _tree_stages(levels, int(p.get("depth", 1)))
    regs = int(p.get("weight_register", 1))
    bram = weights_in_bram(p, family)
    acc_bits = max(1, (int(p["acc_hi"]) - int(p["acc_lo"])).bit_length() + 1)
    paths = {}
    for i, st in enumerate(stages[:-1]):
        f = {"lut": st.count("lut"), "counter": st.count("counter"), "adder": st.count("adder"),
             "bits": tree_bits if "adder" in st else 0}
        if i == 0 and regs == 1 and bram:
            f["bram"] = 1
        paths[f"tree stage {i}"] = f
    last = stages[-1]
    acc = {"lut": 1 + last.count("lut"), "counter": last.count("counter"),
           "adder": 1 + last.count("adder"), "bits": acc_bits}
    if len(stages) == 1 and regs == 1 and bram:
        acc["bram"] = 1
    paths["accumulator"] = acc
    if regs >= 2 and bram:
        paths["block RAM read"] = {"bram": 1}
    if not bram:   # a ROM in LUTs: its read multiplexer to the weight register
        words = (p["mh"] // pe) * (p["mw"] // simd)
        paths["weight ROM"] = {"lut": max(1, math.ceil(_clog2(words) / (2 if lut4 else 3)))}
    if p.get("thresholds"):
        paths["threshold compare"] = {"adder": 1, "bits": acc_bits, "lut": _clog2(p["thresholds"]) // 2}
    if p.get("activation") == "requant":   # hw.activation.RequantUnit: the multiplier and the
        mb = int(p.get("mult_bits", 8))     # accumulator registered, then a partial product and
        # one adder level a stage; the rounding add and the clip's compares in the last
        paths["requantize"] = {"adder": 1, "bits": acc_bits + mb, "lut": 1}
        paths["requantize round"] = {"adder": 2, "bits": acc_bits + mb, "lut": 1}
    paths["fold counters"] = {"adder": 1, "lut": 1,
                              "bits": _clog2((p["mh"] // pe) * (p["mw"] // simd) + 1)}
    paths.update(fan)
    return paths


def block_paths(p: dict, family: str, ff_bits: int | None = None) -> dict[str, dict[str, float]]:
    """``{path name: {feature: value}}``: the candidate critical paths of a block with
    area-model parameters ``p`` on ``family``; ``ff_bits`` (its register bits,
    :func:`gen.area.register_bits`) sizes the stall enable's fan-out."""
    fan = {"stall enable": {"lut": 1, "fanout": _clog2(max(2, ff_bits or 2))}}
    b = p.get("block")
    if b in ("mvu", "vvu"):
        return _unit_paths(p, family, fan)
    paths: dict[str, dict[str, float]] = {}
    if b == "fifo":
        d = int(p["depth"])
        paths["pointers"] = {"adder": 1, "bits": _clog2(d + 1), "lut": 1}
        if d > 2:
            paths["read"] = {"lutram": 1, "lut": max(0, math.ceil(_clog2(max(1, d // 16)) / 2))}
    elif b == "dwc":
        ratio = max(int(p["i_elems"]), int(p["o_elems"])) // max(1, min(int(p["i_elems"]), int(p["o_elems"])))
        paths["select"] = {"lut": 1 + math.ceil(_clog2(ratio) / 2), "adder": 1, "bits": _clog2(ratio + 1)}
    elif b == "argmax":
        paths["compare"] = {"adder": 1, "bits": int(p["width"]) + 1, "lut": 1}
    elif b in ("swu", "pool"):
        c, h, w = (max(1, int(v)) for v in p["in_shape"])
        rows = int(p.get("rows", 2 * p["kernel"]))
        # slot base and row offset: an add over the line buffer's address, then its select
        paths["address"] = {"adder": 2, "bits": _clog2(rows * w * c + 1), "lut": 2}
        paths["read"] = {"lutram": 1, "lut": 1 + _clog2(int(p.get("rows", 2 * p["kernel"]))) // 2}
        if b == "pool":
            paths["compare"] = {"adder": 1, "bits": int(p["width"]) + 1, "lut": 1}
    elif b == "dwwin":
        paths["address"] = {"adder": 1, "bits": _clog2(int(p["kernel_elems"]) + 1), "lut": 2}
        paths["read"] = {"lutram": 1, "lut": 1}
    elif b == "pad":
        paths["select"] = {"lut": 1 + _clog2(int(p["beats"])) // 2, "adder": 1,
                           "bits": _clog2(int(p["beats"]) + 1)}
    elif b in ("add", "sum", "act"):
        bits = (int(p["acc_hi"]) - int(p["acc_lo"])).bit_length() + 1 if "acc_hi" in p else 8
        paths["arithmetic"] = {"adder": 1 + (b == "add" and len(p.get("multipliers", [])) > 0),
                               "bits": bits, "lut": 1}
    else:   # forks, concatenations: handshakes and wires
        paths["logic"] = {"lut": 2}
    paths.update(fan)
    return paths


@dataclass(frozen=True)
class BlockClock:
    """A block's predicted Fmax (MHz) and the path that sets it."""

    fmax_mhz: float
    path: str
    delay_ns: float


@lru_cache(maxsize=1)
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def load_clock_coeffs(path: Path | None = None) -> dict:
    """The fitted coefficients (``{"families": {family: {feature: ns}}, ...}``)."""
    return _load(str(path or COEFFS_PATH))


def path_delay(features: dict, coeffs: dict) -> float:
    return coeffs.get("base", 0.0) + sum(coeffs.get(k, 0.0) * v for k, v in features.items())


def block_fmax(p: dict, family: str, ff_bits: int | None = None, coeffs: dict | None = None) -> BlockClock | None:
    """The block's predicted Fmax, or None for a family the model has no coefficients for
    (7-series: no open place and route to calibrate on)."""
    c = (coeffs or load_clock_coeffs())["families"].get(family)
    if c is None:
        return None
    name, delay = max(((n, path_delay(f, c)) for n, f in block_paths(p, family, ff_bits).items()),
                      key=lambda t: t[1])
    return BlockClock(1000.0 / delay, name, delay)


#: The path a matrix-vector unit's stall enable makes in an accelerator: the consumer FIFO's
#: ``ready`` (its fill level against its depth), the unit's enable, the clock enable of every
#: register of the unit, and its ``ready`` into the producer FIFO's read side. Placed alone
#: (``ready`` straight from a wrapper flip-flop) a block has only the middle of it.
CHAIN_BLOCKS = ("mvu", "vvu")


def chain_delay(ff_bits: int | None, chain_ns: float, coeffs: dict) -> float:
    """The stall chain's delay (ns) through a unit with ``ff_bits`` registers: the stall
    enable's path of a block placed alone (:func:`block_paths`'s ``stall enable``) and
    ``chain_ns`` for the FIFOs' ends of it (fitted on whole accelerators)."""
    return path_delay({"lut": 1, "fanout": _clog2(max(2, ff_bits or 2))}, coeffs) + chain_ns


def rounded_mhz(mhz: float) -> float:
    """A modelled clock as ``nomul estimate`` and ``nomul explore`` report it (0.1 MHz), so that
    the two agree on every design."""
    return round(float(mhz), 1)


def network_clock(blocks, family: str, coeffs: dict | None = None):
    """``((Fmax MHz, limiting block name, its path), {name: BlockClock})`` of an accelerator
    from ``[(name, params, ff_bits)]``: its slowest block, or the stall chain through a unit and
    the FIFOs beside it (:data:`CHAIN_BLOCKS`), and every block's own clock; None without
    coefficients for the family."""
    coeffs = coeffs or load_clock_coeffs()
    c = coeffs["families"].get(family)
    if c is None:
        return None
    chain_ns = coeffs.get("network", {}).get(family, {}).get("chain_ns")
    best, per = None, {}
    for name, p, ffb in blocks:
        bc = per[name] = block_fmax(p, family, ffb, coeffs)
        cand = [(bc.fmax_mhz, name, bc.path)]
        if chain_ns is not None and p.get("block") in CHAIN_BLOCKS:
            cand.append((1000.0 / chain_delay(ffb, chain_ns, c), name, "stall chain"))
        for f in cand:
            if best is None or f[0] < best[0]:
                best = f
    return best, per


def network_fmax(blocks, family: str, coeffs: dict | None = None):
    """``(Fmax MHz, limiting block name, its path)`` of :func:`network_clock`; None without
    coefficients for the family."""
    r = network_clock(blocks, family, coeffs)
    return None if r is None else r[0]


def fit(points: list[tuple[dict, float]], *, iterations: int = 30, restarts: int = 24) -> dict:
    """Coefficients (ns, non-negative) for ``[(paths, measured delay ns)]``: a max-affine fit.
    Each point is assigned the path the current coefficients make slowest, the coefficients are
    refitted by non-negative least squares on relative error, until the assignment is stable;
    from ``restarts`` starting points (fixed seed: the same record gives the same
    coefficients), the one with the least squared relative error of the predicted maximum."""
    import numpy as np
    from scipy.optimize import nnls

    def row(f):
        return [1.0] + [float(f.get(k, 0.0)) for k in FEATURES[1:]]

    y = np.array([d for _, d in points])
    w = 1.0 / y

    def objective(c):
        pred = np.array([max(path_delay(f, c) for f in paths.values()) for paths, _ in points])
        return float((((pred - y) * w) ** 2).sum())

    def descend(c):
        assign = None
        for _ in range(iterations):
            new = [max(paths, key=lambda n, paths=paths: path_delay(paths[n], c)) for paths, _ in points]
            if new == assign:
                break
            assign = new
            A = np.array([row(paths[n]) for (paths, _), n in zip(points, assign, strict=True)])
            sol, _ = nnls(A * w[:, None], y * w)
            c = dict(zip(FEATURES, (round(float(v), 4) for v in sol), strict=True))
        return c

    rng = np.random.default_rng(0)
    starts = [dict.fromkeys(FEATURES, 0.5)]
    starts += [dict(zip(FEATURES, rng.uniform(0.0, 2.0, len(FEATURES)).round(3).tolist(), strict=True))
               for _ in range(restarts - 1)]
    best, best_obj = None, math.inf
    for c0 in starts:
        c = descend(c0)
        obj = objective(c)
        if obj < best_obj - 1e-12:
            best, best_obj = c, obj
    return best
