"""Design-space exploration: foldings and weight-memory styles of one or more networks on a part,
estimated with the model, the Pareto front of LUT sites against frames per second, and the
best points checked with the exact estimate and with Yosys.

The space
    For every *target interval* T (the cycles per frame the layers must meet; the values tried
    are the cycles each foldable layer reaches at some PE × SIMD), every foldable layer takes
    its cheapest folding meeting T (:func:`gen.plan.plan_network` with ``fold="auto"``): the
    *interval-balanced* foldings. Each foldable layer's weights then go to block RAM
    (``block``), to logic (``logic``) or where Yosys puts them (``auto``); styles that the model
    prices the same for a layer are counted once. The pipeline depth of the reduction trees of
    every matrix-vector unit is the default (:func:`hw.trees.tree_depth` of its SIMD and the
    family's LUT size) plus one of :data:`DEPTH_OFFSETS`, the same offset for every layer (so
    each compute layer gets 3 depths, without multiplying the space by 3 per layer). A candidate
    is one folding, one depth offset and one style per foldable layer.

    The area model's LUT features do not depend on the depth; its pipeline registers are priced
    as flip-flops (counted in the blocks as built). Neither the interval nor the Fmax the model
    assumes depends on it: the depth shows in the first-frame latency and in the Fmax that
    ``--verify`` measures with nextpnr.

The model, fast
    The area model prices each block on its own, so a layer's resources depend only on its
    *stage key*: the layer, the elements per beat it receives, its PE and SIMD (and its weight
    style). The stage keys of all foldings are priced once (:func:`stage_cost`: the layer's
    blocks as the accelerator builds them, their area-model estimate and their register bits)
    and a candidate's totals are sums of rows of per-layer tables (:func:`estimate_batch`,
    vectorised). :func:`check_candidate` compares a candidate with
    :func:`gen.estimate.estimate_network`; they agree exactly.

The engine
    Pricing a stage key (the expensive part: building its blocks and their RTLIL) is a task: a
    pure function of (network hash, stage key, family, tool versions) whose result is kept in a
    content-addressed cache on disk (:class:`Cache`), so a rerun or an interrupted sweep only
    computes what is missing. Tasks run on Dask distributed (a local cluster by default, or the
    scheduler given); with no client they run in this process, in the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NetworkError

__all__ = ["STYLES", "RESOURCES", "NetBlob", "net_blob", "tool_versions", "Cache", "stage_cost",
           "stage_task", "io_bits", "IO_MODES", "stream_pins", "serial_io_cost", "Folding", "foldings",
           "StageTable", "estimate_batch", "lut_sites_of", "Sweep", "sweep", "feasible", "pareto_front",
           "check_candidate", "verify_task", "network_variant"]

#: Weight-memory styles explored per foldable layer (``auto``: the layer's memory has no
#: ``ram_style`` and Yosys decides).
STYLES = ("auto", "block", "logic")
#: The resources a candidate is priced in (columns of the stage tables).
RESOURCES = ("lut", "ff", "carry", "bram", "lutram")
#: Offsets to the default reduction-tree depth explored (one per candidate, for every layer).
DEPTH_OFFSETS = (0, -1, 1)
#: Bumped when what a stage task computes changes (part of every cache key).
MODEL_VERSION = 3
#: How the accelerator meets the pins (``--io``): ``serial``, inside the registered serial-I/O
#: wrapper :class:`hw.serial_io.SerialIO` (a few pins, its area added); ``bare``, every bit of
#: its stream ports on a pin of the package.
IO_MODES = ("serial", "bare")


# -- networks as task inputs -----------------------------------------------------------------------
@dataclass(frozen=True)
class NetBlob:
    """A network file and its arrays as bytes: what a task on another machine needs to load it.
    ``hash`` is the SHA-256 of both (the network's identity in cache keys)."""

    hash: str
    name: str
    yaml_text: str
    arrays_name: str
    npz: bytes


def net_blob(path) -> NetBlob:
    """Read a network file and its arrays into a :class:`NetBlob`."""
    import yaml

    from .load import load_network

    path = Path(path)
    net = load_network(path)  # validates; errors name the field
    text = path.read_text()
    data = yaml.safe_load(text)
    arrays_name = data.get("arrays", path.with_suffix(".npz").name)
    npz_path = path.parent / arrays_name
    npz = npz_path.read_bytes() if npz_path.is_file() else b""
    h = hashlib.sha256(text.encode() + b"\0" + npz).hexdigest()
    return NetBlob(h, net.name, text, arrays_name, npz)


_NETS: dict[str, object] = {}


def load_blob(blob: NetBlob):
    """The :class:`gen.ir.Network` of a blob (loaded once per process)."""
    net = _NETS.get(blob.hash)
    if net is None:
        from .load import load_network

        with tempfile.TemporaryDirectory(prefix="nomul-net-") as d:
            p = Path(d) / "net.yaml"
            p.write_text(blob.yaml_text)
            if blob.npz:
                (Path(d) / blob.arrays_name).parent.mkdir(parents=True, exist_ok=True)
                (Path(d) / blob.arrays_name).write_bytes(blob.npz)
            net = load_network(p)
        _NETS[blob.hash] = net
    return net


def tool_versions() -> dict:
    """What a stage's price depends on besides its inputs: nomul's and Amaranth's versions, the
    area coefficients, the model version."""
    from importlib.metadata import PackageNotFoundError, version

    from .area import COEFFS_FILE

    def ver(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "none"

    from .clock import COEFFS_PATH

    clock = hashlib.sha256(COEFFS_PATH.read_bytes()).hexdigest()[:16] if COEFFS_PATH.exists() else "none"
    return {"nomul": ver("nomul"), "amaranth": ver("amaranth"), "model": MODEL_VERSION,
            "area_coeffs": hashlib.sha256(COEFFS_FILE.read_bytes()).hexdigest()[:16],
            "clock_coeffs": clock}


# -- the cache -------------------------------------------------------------------------------------
def task_key(*parts) -> str:
    """The content address of a task: SHA-256 of its inputs as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Cache:
    """A content-addressed store of task results (JSON files ``<dir>/<key[:2]>/<key>.json``,
    written atomically). ``None`` as the folder: nothing is kept."""

    def __init__(self, folder):
        self.folder = Path(folder) if folder is not None else None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str):
        if self.folder is None:
            return None
        p = self._path(key)
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, value) -> None:
        if self.folder is None:
            return
        from .netfile import atomic_write_bytes

        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, json.dumps(value, sort_keys=True).encode())


# -- pricing one stage -----------------------------------------------------------------------------
class _PricedStage:
    """Records the blocks a layer op adds (the builder interface of :class:`gen.top.Accelerator`:
    ``add``, ``dwc``, ``fifo``, ``mvu``) without building an accelerator."""

    def __init__(self, index: int, factory):
        self.index, self.factory = index, factory
        self.blocks: list[tuple[str, object, object]] = []
        self.mvu_depth: int | None = None   # the reduction-tree depth of the MVU built

    def add(self, suffix, block, params=None):
        from hw.pipeline import mark_used

        mark_used(block, silence=True)
        self.blocks.append((suffix, block, params))
        return suffix

    def dwc(self, dt, k: int, to: int):
        from hw.dwc import DataWidthConverter

        from . import area

        if k != to:
            block = DataWidthConverter(width=dt.code_width, i_elems=k, o_elems=to)
            self.add("dwc", block, lambda: area.dwc_params(block))

    def fifo(self, suffix, *, width: int, depth: int):
        from hw.fifo import StreamFIFO, ready_ahead

        from . import area

        block = StreamFIFO(width=width, depth=depth)
        if self.blocks:   # the FIFO reads the block before it (as in the accelerator)
            ready_ahead(self.blocks[-1][1], block)
        self.add(suffix, block, lambda: area.fifo_params(block))

    def mvu(self, layer, *, pe: int, simd: int, matrix, tree_depth: int | None = None):
        from .ops.compute import mvu_area_params

        extra = {} if tree_depth is None else {"tree_depth": tree_depth}
        try:
            mvu = self.factory(layer, pe=pe, simd=simd, matrix=matrix, **extra)
        except ValueError as e:
            raise NetworkError(f"layers[{self.index}]", f"cannot build the matrix-vector unit: {e}") from None
        self.add("mvu", mvu, lambda: mvu_area_params(mvu))
        self.mvu_depth = mvu.depth
        return mvu


def _tensor_dtype(net, tensor):
    from .ir import INPUT

    return net.input.dtype if tensor == INPUT else net.layer(tensor).out_dtype


def stage_cost(net, index: int, k_in: int, pe: int | None, simd: int | None, family: str,
               coeffs=None) -> dict:
    """The resources of layer ``index``'s stage (its blocks and the FIFO after it) receiving
    ``k_in`` elements per beat, folded ``pe`` × ``simd``.

    Returns ``cycles`` (the layer's cycles per frame), ``out_elems`` and ``depths``: for every
    offset of :data:`DEPTH_OFFSETS` (as a string; only ``"0"`` for a layer with no
    matrix-vector unit) ``{"tree_depth": d or None, "styles": {style: [lut, ff, carry, bram,
    lutram]}}``, a row for every style of :data:`STYLES` (``"-"`` for a layer with no
    weights)."""
    from . import area, clock
    from .ops import op_for
    from .plan import LayerPlan, layer_parts
    from .top import mvu_factory_for, weight_registers

    coeffs = coeffs or area.load_coeffs()
    try:
        clock_coeffs = clock.load_clock_coeffs()
        if family not in clock_coeffs.get("families", {}):
            clock_coeffs = None
    except (OSError, ValueError):
        clock_coeffs = None
    layer = net.layers[index]
    op = op_for(layer)
    parts, out = layer_parts(layer, k_in, pe, simd)
    parts = tuple((n, c) for n, c in parts if c)
    cycles = max(c for _, c in parts)
    factory = mvu_factory_for(family)

    def price(tree_depth):
        lp = LayerPlan(index, layer.name, layer.kind, pe, simd, k_in, out, cycles, parts, "explore",
                       tree_depth)
        stage = _PricedStage(index, factory)
        b = op.hardware(layer, lp, k_in, _tensor_dtype(net, layer.inputs[0]), stage)
        if b.fifo_depth is not None and net.consumers(layer.name):
            stage.fifo("fifo", width=b.out_elems * b.out_dtype.code_width, depth=b.fifo_depth)
        priced = []
        for _, comp, params in stage.blocks:
            p = params() if callable(params) else params
            priced.append((p, area.register_bits(comp), comp))
        rows, clocks = {}, {}
        for s in STYLES if op.foldable else ("-",):
            tot = np.zeros(len(RESOURCES), dtype=np.int64)
            timed = []
            for p, ffb, comp in priced:
                if p["block"] == "mvu" and s != "-":
                    p = {k: v for k, v in p.items() if k != "weight_register"}
                    p["ram_style"] = None if s == "auto" else s
                    regs = weight_registers(family, p)   # as the unit built in this style has
                    ffb += (regs - comp.weight_register) * comp.weight_stage_bits
                    if regs != 1:
                        p["weight_register"] = regs
                e = area.estimate(p, family, coeffs=coeffs, ff_bits=ffb)
                tot += [getattr(e, r) for r in RESOURCES]
                timed.append(("", p, ffb))
            rows[s] = [int(v) for v in tot]
            nf = clock.network_fmax(timed, family, clock_coeffs) if clock_coeffs and timed else None
            clocks[s] = None if nf is None else clock.rounded_mhz(nf[0])   # as estimate_network
        return stage.mvu_depth, rows, clocks

    d0, rows, clocks = price(None)
    depths = {"0": {"tree_depth": d0, "styles": rows, "clock": clocks}}
    if d0 is not None:
        for off in DEPTH_OFFSETS:
            if off and d0 + off >= 0:
                d, rows, clocks = price(d0 + off)
                depths[str(off)] = {"tree_depth": d, "styles": rows, "clock": clocks}
    return {"cycles": int(cycles), "out_elems": int(out), "depths": depths}


def stage_task(blob: NetBlob, index: int, k_in: int, pe, simd, family: str, versions: dict,
               cache_dir=None) -> dict:
    """:func:`stage_cost` as a task: a pure function of its arguments, its result kept in the
    cache ``cache_dir`` (on the machine that runs it)."""
    key = task_key("stage", blob.hash, index, k_in, pe, simd, family, versions)
    cache = Cache(cache_dir)
    hit = cache.get(key)
    if hit is not None:
        return hit
    res = stage_cost(load_blob(blob), index, k_in, pe, simd, family)
    cache.put(key, res)
    return res


# -- foldings --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Folding:
    """One interval-balanced folding: the smallest target interval that gives it, the interval
    it reaches, per layer ``(k_in, pe, simd)`` (pe and simd None for a layer with none), and
    the data bits of the accelerator's input and output stream payloads (``last`` aside)."""

    target: int
    interval: int
    stages: tuple[tuple[int, int | None, int | None], ...]
    in_bits: int = 0
    out_bits: int = 0

    def fold_dict(self, net) -> dict:
        """As a folding mapping for :func:`gen.plan.plan_network` (``fold=``)."""
        return {layer.name: {"pe": pe, "simd": simd}
                for layer, (_, pe, simd) in zip(net.layers, self.stages, strict=True) if pe}


def target_intervals(net) -> list[int]:
    """Every cycles-per-frame value a foldable layer reaches at some PE × SIMD (ascending)."""
    from .ops import op_for
    from .plan import divisors, layer_parts

    ts = set()
    for layer in net.layers:
        if op_for(layer).foldable:
            for pe in divisors(layer.mh):
                for simd in divisors(layer.mw):
                    parts, _ = layer_parts(layer, simd, pe, simd)
                    ts.add(max(c for _, c in parts))
    return sorted(ts)


def foldings(net, *, max_interval: int | None = None) -> list[Folding]:
    """The interval-balanced foldings of ``net`` (fastest first), with an interval of at most
    ``max_interval`` if given."""
    from .plan import plan_network

    seen: dict[tuple, Folding] = {}
    for t in target_intervals(net):
        if max_interval is not None and t > max_interval:
            break
        try:
            plan = plan_network(net, fold="auto", target_cycles=t)
        except NetworkError:
            continue
        stages = tuple((lp.in_elems, lp.pe, lp.simd) for lp in plan.layers)
        if stages not in seen:
            seen[stages] = Folding(t, plan.interval, stages,
                                   in_bits=plan.input_elems * net.input.dtype.code_width,
                                   out_bits=plan.output_elems * net.layer(net.outputs[0]).out_dtype.code_width)
    return sorted(seen.values(), key=lambda f: (f.interval, f.target))


# -- the pins -------------------------------------------------------------------------------------
def stream_pins(in_bits, out_bits):
    """The pins of a bare accelerator whose stream payloads carry ``in_bits`` and ``out_bits``
    data bits: both payloads with their ``last`` bit, valid and ready of each stream, clock and
    reset (:func:`io_bits` of :class:`gen.top.Accelerator` + 2). Works on arrays."""
    return (in_bits + 1) + (out_bits + 1) + 4 + 2


def serial_io_cost(in_bits, out_bits) -> np.ndarray:
    """The resources (:data:`RESOURCES`) of :class:`hw.serial_io.SerialIO` around an
    accelerator with ``in_bits`` and ``out_bits`` data bits in its stream payloads (arrays of N
    give (N, resources)): a flip-flop per input data bit (the unused ``last`` bit's is removed),
    per output payload bit and 3 more (valid, ready, the capture flag); a LUT per output payload
    bit (load or shift) and one for the capture condition. Measured with Yosys on a registered
    stage inside the wrapper, exact on ECP5, iCE40 and 7-series (docs/explore.md)."""
    in_bits, out_bits = np.asarray(in_bits, dtype=np.int64), np.asarray(out_bits, dtype=np.int64)
    row = np.zeros((*in_bits.shape, len(RESOURCES)), dtype=np.int64)
    row[..., RESOURCES.index("lut")] = out_bits + 1 + 1
    row[..., RESOURCES.index("ff")] = in_bits + (out_bits + 1) + 3
    return row


# -- the fast estimate -----------------------------------------------------------------------------
@dataclass
class StageTable:
    """Layer ``index``'s priced variants: rows of ``costs`` (resources of :data:`RESOURCES`),
    each row a ``(k_in, pe, simd, style)`` in ``keys``."""

    index: int
    keys: list
    costs: np.ndarray
    #: the clock model's Fmax of each row's slowest block (MHz; inf where the family has none)
    fmax: np.ndarray | None = None

    def row(self, key) -> int:
        return self.keys.index(key)


def lut_sites_of(family: str, tot: np.ndarray) -> np.ndarray:
    """LUT sites (:func:`gen.estimate.lut_equivalents`) of totals (N, resources), vectorised."""
    lut, carry, lutram = (tot[:, RESOURCES.index(r)] for r in ("lut", "carry", "lutram"))
    if family == "ecp5":
        return lut + 2 * carry + 2 * lutram
    if family == "xilinx":
        return lut + 4 * lutram
    return lut.copy()


def estimate_batch(tables: list[StageTable], idx: np.ndarray) -> np.ndarray:
    """Totals (N, resources) of N candidates, ``idx[n, i]`` being candidate n's row in
    ``tables[i]``: a sum of table rows, vectorised."""
    tot = np.zeros((idx.shape[0], len(RESOURCES)), dtype=np.int64)
    for i, t in enumerate(tables):
        tot += t.costs[idx[:, i]]
    return tot


# -- the sweep -------------------------------------------------------------------------------------
@dataclass
class NetSpace:
    """The explored space of one network: foldings, stage tables, candidates."""

    blob: NetBlob
    net: object
    foldings: list
    tables: list
    folding: np.ndarray       # (N,) folding of each candidate
    idx: np.ndarray           # (N, layers) rows into the tables
    styles: list              # (N,) the style of each foldable layer, "auto/block/…"
    depths: list = dataclasses.field(default_factory=list)  # (N,) per layer: tree depth or None


@dataclass
class Sweep:
    """Every candidate of every network, priced."""

    part: object
    spaces: list
    net_of: np.ndarray        # (N,) network index of each candidate
    local: np.ndarray         # (N,) index within its network's space
    totals: np.ndarray        # (N, resources)
    interval: np.ndarray      # (N,)
    lut_sites: np.ndarray     # (N,)
    tasks: dict               # computed / cached / total
    seconds_estimate: float = 0.0
    io: str = "bare"          # one of IO_MODES
    pins: np.ndarray | None = None      # (N,) pins of the bare accelerator
    io_cost: np.ndarray | None = None   # (N, resources) the serial-I/O wrapper's (in totals), or zeros
    fmax: np.ndarray | None = None      # (N,) the clock model's Fmax (MHz; inf: no model)

    @property
    def io_fits(self) -> np.ndarray:
        """Whether each candidate's bare stream ports fit the part's pins."""
        return self.pins <= self.part.io_pins

    def accelerator_totals(self, n: int) -> np.ndarray:
        """Candidate ``n``'s totals without the I/O wrapper (what ``nomul estimate`` gives)."""
        return self.totals[n] - self.io_cost[n]

    @property
    def clock_mhz(self) -> np.ndarray:
        """Each candidate's clock: the clock model's Fmax (:mod:`gen.clock`, its slowest
        block's), or the part's default clock for a family the model has no calibration for."""
        if self.fmax is None:
            return np.full(len(self.interval), float(self.part.default_mhz))
        return np.where(np.isfinite(self.fmax), self.fmax, float(self.part.default_mhz))

    @property
    def fps(self) -> np.ndarray:
        return self.clock_mhz * 1e6 / self.interval

    def __len__(self) -> int:
        return len(self.net_of)

    def candidate(self, n: int) -> dict:
        """Candidate ``n`` as plain data."""
        sp = self.spaces[self.net_of[n]]
        j = self.local[n]
        f = sp.foldings[sp.folding[j]]
        d = {"id": int(n), "network": sp.net.name, "folding_id": int(sp.folding[j]),
             "styles": sp.styles[j], "interval": int(self.interval[n]), "fps": float(self.fps[n]),
             "clock_mhz": float(self.clock_mhz[n]),
             "lut_sites": int(self.lut_sites[n])}
        d.update({r: int(v) for r, v in zip(RESOURCES, self.totals[n], strict=True)})
        d["io_pins"], d["io_fits"] = int(self.pins[n]), bool(self.io_fits[n])
        if self.io == "serial":
            w = self.io_cost[n:n + 1]
            d["io_wrapper"] = {"lut": int(w[0, RESOURCES.index("lut")]), "ff": int(w[0, RESOURCES.index("ff")]),
                               "lut_sites": int(lut_sites_of(self.part.family, w)[0])}
        d["tree_depths"] = [t for t, (_, pe, _) in zip(sp.depths[j], f.stages, strict=True) if pe]
        d["fold"] = self.fold_of(n)
        return d

    def fold_of(self, n: int) -> dict:
        """Candidate ``n``'s folding as a folding mapping (``fold=`` of
        :func:`gen.plan.plan_network`): ``pe``, ``simd`` and ``tree_depth`` of every folded layer
        with a matrix-vector unit."""
        sp = self.spaces[self.net_of[n]]
        j = self.local[n]
        fold = sp.foldings[sp.folding[j]].fold_dict(sp.net)
        for layer, d in zip(sp.net.layers, sp.depths[j], strict=True):
            if d is not None and layer.name in fold:
                fold[layer.name]["tree_depth"] = d
        return fold

    def style_map(self, n: int) -> dict:
        """Layer name → ram_style (None for auto) of candidate ``n``'s foldable layers."""
        sp = self.spaces[self.net_of[n]]
        names = [layer.name for layer, (_, pe, _) in
                 zip(sp.net.layers, sp.foldings[0].stages, strict=True) if pe]
        return {nm: (None if s == "auto" else s)
                for nm, s in zip(names, sp.styles[self.local[n]].split("/"), strict=True)}


def run_tasks(calls: list, *, client=None, cache: Cache, progress=None) -> tuple[list, dict]:
    """Run ``calls`` (``(key, function, args)``): ``(results in order, counts)``, the counts
    being ``{"total", "cached", "computed"}``.

    Results in ``cache`` are not recomputed. With a Dask ``client`` the others are submitted
    (retried when a worker dies) and their results kept in ``cache``
    as they arrive; without one they run here, in order. ``progress(done, total)`` is called
    after each."""
    out: list = [None] * len(calls)
    todo = []
    for i, (key, _, _) in enumerate(calls):
        hit = cache.get(key)
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    done, total = len(calls) - len(todo), len(calls)
    if progress:
        progress(done, total)
    if client is None:
        for i in todo:
            key, fn, args = calls[i]
            out[i] = fn(*args)
            cache.put(key, out[i])
            done += 1
            if progress:
                progress(done, total)
    elif todo:
        from distributed import as_completed

        # a key of its own per sweep: Dask may still be forgetting a key released by the last one
        run = uuid.uuid4().hex[:8]
        futs = {}
        for i in todo:
            key, fn, args = calls[i]
            f = client.submit(fn, *args, key=f"nomul-{fn.__name__}-{key[:32]}-{run}", retries=3)
            futs[f.key] = (i, f)
        for f in as_completed([f for _, f in futs.values()]):
            i = futs[f.key][0]
            out[i] = f.result()
            cache.put(calls[i][0], out[i])
            f.release()
            done += 1
            if progress:
                progress(done, total)
    return out, {"total": total, "cached": total - len(todo), "computed": len(todo)}


def _space(blob, net, folds, priced: dict) -> NetSpace:
    """Stage tables and the candidates (folding × styles) of one network from priced stages."""
    from .ops import op_for

    tables = []
    row_of: list[dict] = []
    for i in range(len(net.layers)):
        keys, rows, fmax = [], [], []
        for f in folds:
            k_in, pe, simd = f.stages[i]
            for off, var in priced[(i, k_in, pe, simd)]["depths"].items():
                for s, v in var["styles"].items():
                    key = (k_in, pe, simd, off, s)
                    if key not in keys:
                        keys.append(key)
                        rows.append(v)
                        clk = var.get("clock", {}).get(s)
                        fmax.append(math.inf if clk is None else clk)
        tables.append(StageTable(i, keys, np.array(rows, dtype=np.int64).reshape(len(rows), len(RESOURCES)),
                                 np.array(fmax, dtype=np.float64)))
        row_of.append({k: j for j, k in enumerate(keys)})
    foldable = [i for i, layer in enumerate(net.layers) if op_for(layer).foldable]
    fold_ids, idx_rows, styles, depths = [], [], [], []
    for fi, f in enumerate(folds):
        offsets = sorted({int(o) for i in range(len(net.layers))
                          for o in priced[(i, *f.stages[i])]["depths"]}, key=DEPTH_OFFSETS.index)
        for off in offsets:
            choices = []   # per layer: the rows (distinct priced variants) and their style labels
            tree = []
            for i in range(len(net.layers)):
                k_in, pe, simd = f.stages[i]
                by_off = priced[(i, k_in, pe, simd)]["depths"]
                o = str(off) if str(off) in by_off else "0"   # a layer with no MVU: its only one
                var = by_off[o]
                tree.append(var["tree_depth"])
                opts, seen = [], set()
                for s, v in var["styles"].items():
                    same = (tuple(v), var.get("clock", {}).get(s))
                    if same not in seen:
                        seen.add(same)
                        opts.append((row_of[i][(k_in, pe, simd, o, s)], s))
                choices.append(opts)
            for combo in itertools.product(*choices):
                fold_ids.append(fi)
                idx_rows.append([r for r, _ in combo])
                styles.append("/".join(combo[i][1] for i in foldable))
                depths.append(tuple(tree))
    idx = np.array(idx_rows, dtype=np.int64).reshape(len(idx_rows), len(net.layers))
    return NetSpace(blob, net, folds, tables, np.array(fold_ids, dtype=np.int64), idx, styles, depths)


def _same_blob(blob: NetBlob) -> NetBlob:
    return blob


def sweep(paths, *, target: str, client=None, cache_dir=None, max_interval: int | None = None,
          progress=None, io: str = "serial") -> Sweep:
    """Price every candidate of the networks ``paths`` on part ``target``.

    ``client``: a :class:`distributed.Client` (None: run the tasks here); ``cache_dir``: the
    task cache (None: none); ``max_interval``: skip foldings slower than this (cycles per
    frame); ``progress(done, total)``: called as stage tasks finish; ``io`` (of
    :data:`IO_MODES`): ``serial`` adds the serial-I/O wrapper's resources
    (:func:`serial_io_cost`) to every candidate's totals, ``bare`` adds nothing (and
    :func:`feasible` then asks that the stream ports fit the part's pins).
    """
    if io not in IO_MODES:
        raise NetworkError("--io", f"I/O must be {' or '.join(IO_MODES)}, not {io!r}")
    import time

    from .estimate import _part

    part = _part(target)
    versions = tool_versions()
    cache = Cache(cache_dir)
    blobs = [net_blob(p) for p in paths]
    nets = [load_blob(b) for b in blobs]
    folds_of = [foldings(net, max_interval=max_interval) for net in nets]
    calls, where = [], []
    for bi, (b, folds) in enumerate(zip(blobs, folds_of, strict=True)):
        keys = sorted({(i, *f.stages[i]) for f in folds for i in range(len(nets[bi].layers))},
                      key=lambda k: (k[0], k[1], k[2] or 0, k[3] or 0))
        for k in keys:
            calls.append((task_key("stage", b.hash, *k, part.family, versions), stage_task,
                          (b, *k, part.family, versions, None if cache_dir is None else str(cache_dir))))
            where.append((bi, k))
    if client is not None and calls:
        # One copy of each network in the task graph, not one per task: a task that returns it
        # (not scattered data, which dies with the worker that holds it: a task is run again).
        shared = {b.hash: client.submit(_same_blob, b, key=f"nomul-net-{b.hash[:32]}-{uuid.uuid4().hex[:8]}",
                                        retries=3) for b in blobs}
        calls = [(k, fn, (shared[a[0].hash], *a[1:])) for k, fn, a in calls]
    results, stats = run_tasks(calls, client=client, cache=cache, progress=progress)
    priced: list[dict] = [{} for _ in blobs]
    for (bi, k), r in zip(where, results, strict=True):
        priced[bi][k] = r
    t0 = time.perf_counter()
    spaces = [_space(b, net, folds, pr) for b, net, folds, pr in zip(blobs, nets, folds_of, priced, strict=True)]
    net_of, local, totals, interval, pins, io_cost, fmax = [], [], [], [], [], [], []
    for si, sp in enumerate(spaces):
        tot = estimate_batch(sp.tables, sp.idx)
        fm = np.full(len(sp.idx), math.inf)
        for i, t in enumerate(sp.tables):   # the slowest stage sets the clock
            fm = np.minimum(fm, t.fmax[sp.idx[:, i]])
        fmax.append(fm)
        itv = np.array([f.interval for f in sp.foldings], dtype=np.int64)[sp.folding]
        in_bits = np.array([f.in_bits for f in sp.foldings], dtype=np.int64)[sp.folding]
        out_bits = np.array([f.out_bits for f in sp.foldings], dtype=np.int64)[sp.folding]
        wrap = serial_io_cost(in_bits, out_bits) if io == "serial" else np.zeros_like(tot)
        net_of.append(np.full(len(sp.idx), si, dtype=np.int64))
        local.append(np.arange(len(sp.idx), dtype=np.int64))
        totals.append(tot + wrap)
        interval.append(itv)
        pins.append(stream_pins(in_bits, out_bits))
        io_cost.append(wrap)

    def cat(xs, shape):
        return np.concatenate(xs) if xs else np.zeros(shape, dtype=np.int64)

    totals_a = cat(totals, (0, len(RESOURCES)))
    s = Sweep(part, spaces, cat(net_of, (0,)), cat(local, (0,)), totals_a, cat(interval, (0,)),
              lut_sites_of(part.family, totals_a), stats, io=io, pins=cat(pins, (0,)),
              io_cost=cat(io_cost, (0, len(RESOURCES))),
              fmax=np.concatenate(fmax) if fmax else np.zeros(0))
    s.seconds_estimate = time.perf_counter() - t0
    return s


def feasible(sw: Sweep, *, budget_lut: int | None = None, min_fps: float | None = None) -> np.ndarray:
    """Candidates within the part's block RAM, the LUT budget (default: the part's LUT sites),
    at least ``min_fps`` frames per second and, for a sweep with ``io="bare"``, with stream
    ports that fit the part's pins."""
    bram = sw.totals[:, RESOURCES.index("bram")]
    ok = (bram <= sw.part.bram) & (sw.lut_sites <= (budget_lut if budget_lut is not None else sw.part.lut))
    if min_fps is not None:
        ok &= sw.fps >= min_fps
    if sw.io == "bare":
        ok &= sw.io_fits
    return ok


def pareto_front(lut: np.ndarray, fps: np.ndarray, mask: np.ndarray | None = None) -> list[int]:
    """Indices of the candidates no other beats on both fewer LUT sites and more frames per
    second (among ``mask``), fastest first; of equal ones, the first."""
    cand = np.flatnonzero(mask) if mask is not None else np.arange(len(lut))
    order = cand[np.lexsort((cand, lut[cand], -fps[cand]))]
    front, best = [], math.inf
    for n in order.tolist():
        if lut[n] < best:
            front.append(n)
            best = lut[n]
    return front


# -- checks ----------------------------------------------------------------------------------------
def network_variant(net, styles: dict):
    """``net`` with the ``ram_style`` of the named layers replaced."""
    layers = tuple(dataclasses.replace(layer, ram_style=styles[layer.name]) if layer.name in styles
                   else layer for layer in net.layers)
    return dataclasses.replace(net, layers=layers)


def check_candidate(sw: Sweep, n: int) -> dict:
    """Candidate ``n`` against :func:`gen.estimate.estimate_network` of the same design:
    ``{"id", "model": {...}, "exact": {...}, "equal": bool}``, the model's figures without
    the I/O wrapper (``nomul estimate`` prices the accelerator alone), with the bare
    accelerator's pins (``io_pins``, :func:`stream_pins` against the ports as built)."""
    from .estimate import estimate_network

    sp = sw.spaces[sw.net_of[n]]
    est = estimate_network(network_variant(sp.net, sw.style_map(n)), target=sw.part.name,
                           fold=sw.fold_of(n))
    exact = {r: est.total(r) for r in RESOURCES} | {"lut_sites": est.lut_sites, "interval": est.interval,
                                                    "io_pins": io_bits(est.accel) + 2,
                                                    "clock_mhz": round(float(est.clock_mhz), 1)}
    acc = sw.accelerator_totals(n)
    model = {r: int(v) for r, v in zip(RESOURCES, acc, strict=True)}
    model |= {"lut_sites": int(lut_sites_of(sw.part.family, acc[None])[0]), "interval": int(sw.interval[n]),
              "io_pins": int(sw.pins[n]), "clock_mhz": round(float(sw.clock_mhz[n]), 1)}
    return {"id": int(n), "model": model, "exact": exact, "equal": model == exact}


def verify_task(blob: NetBlob, fold: dict, styles: dict, target: str, versions: dict,
                cache_dir=None, pnr: bool = True) -> dict:
    """Synthesize one design with Yosys (every block, as ``nomul estimate --synth``:
    :func:`gen.estimate.synthesize_estimate`) and, with ``pnr`` where the family has an open
    place-and-route, place and route the whole accelerator with nextpnr for its Fmax. A task,
    cached like :func:`stage_task`.

    Returns ``{"model", "yosys", "interval", "fmax_mhz", "fmax_note", "seconds"}``: the model's
    and Yosys's totals (resources of :data:`RESOURCES` and ``lut_sites``), the cycles per frame,
    the Fmax nextpnr reaches (None when not measured, ``fmax_note`` saying why: no open
    place-and-route for the family, nextpnr not installed, or nextpnr failed, e.g. the bare
    accelerator's streams need more pins than the package has) and the seconds the tools took.
    A Yosys failure is ``{"error": message}``, not an exception, so one design does not stop a
    sweep.
    """
    import time

    from .estimate import estimate_network, synthesize_estimate
    from .synth import find_tool

    key = task_key("verify", blob.hash, fold, styles, target, versions, pnr)
    cache = Cache(cache_dir)
    hit = cache.get(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    est = estimate_network(network_variant(load_blob(blob), styles), target=target, fold=fold)
    fam = est.part.family_record
    note = None
    if not pnr:
        note = "place and route not asked for"
    elif fam.pnr is None:
        note = f"no open place-and-route for {est.part.family} (nextpnr-xilinx is not on PyPI)"
    elif find_tool(fam.pnr.split()[0]) is None:
        note = f"{fam.pnr.split()[0]} is not installed (pip install 'nomul[synth]')"
    # beside the cache (or here), as `nomul estimate --synth` does: not an absolute /tmp path
    base = Path(cache_dir) if cache_dir is not None else Path.cwd()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".nomul-verify-", dir=base) as d:
        try:
            synthesize_estimate(est, d, pnr=note is None)
        except RuntimeError as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if est.synth is None:
                return {"error": msg, "seconds": time.perf_counter() - t0}
            note = f"{msg} ({io_bits(est.accel)} top-level I/O bits)"
    res = {"model": {r: est.total(r) for r in RESOURCES} | {"lut_sites": est.lut_sites},
           "yosys": {k: int(v) for k, v in est.synth.items() if k in (*RESOURCES, "lut_sites")},
           "interval": int(est.interval), "fmax_mhz": est.fmax_mhz, "fmax_note": note,
           "seconds": round(time.perf_counter() - t0, 3)}
    cache.put(key, res)
    return res


def io_bits(component) -> int:
    """The bits of a component's top-level ports (the pins a bare accelerator needs, clock and
    reset aside)."""
    from amaranth.hdl import Shape

    return sum(Shape.cast(member.shape).width for _, member, _ in component.signature.flatten(component))


def default_cache_dir() -> Path:
    """``$NOMUL_CACHE`` or ``~/.cache/nomul``, then ``explore``."""
    base = os.environ.get("NOMUL_CACHE") or (Path.home() / ".cache" / "nomul")
    return Path(base) / "explore"
