"""Folding: how many output channels (PE) and input elements (SIMD) each layer processes per
cycle, and the cycles per frame that follow from it.

A layer's folding comes from, in order of precedence: a folding file (``--fold FILE``, a YAML
or JSON mapping of layer name to ``{pe, simd}``), the network file (``layers[i].pe`` and
``.simd``), or the automatic search. ``--fold auto`` ignores the first two and folds every
layer automatically. The automatic search gives each layer, in order, the fewest lanes
(PE·SIMD; PE divides the output channels and SIMD the dot-product length) that meet the
target cycles per frame, counting the layer's width converters and sliding window too.

The cycle model is exact for the blocks of :mod:`hw` with no stalls: a layer's cycles per
frame are the largest of the cycles of its parts (input width converter, sliding window,
matrix-vector unit), since they overlap; the network's interval is the largest over layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import NetworkError
from .ir import INPUT, Network
from .ops import op_for
from .ops.compute import check_folding
from .schema import MAX_TREE_DEPTH

__all__ = ["LayerPlan", "Plan", "plan_network", "load_fold_file", "DEFAULT_LANES", "divisors"]

#: The keys of a layer in a folding file.
FOLD_KEYS = ("pe", "simd", "tree_depth")

#: Without a target, the default aims for about this many lanes in the largest layer.
DEFAULT_LANES = 64


@dataclass(frozen=True)
class LayerPlan:
    """The folding of one layer and what follows from it.

    ``in_elems`` is the number of elements per beat that the previous stage delivers;
    ``out_elems`` the number this layer sends on. ``cycles`` (per frame) is the largest of
    ``parts`` (name → cycles per frame). ``tree_depth`` is the pipeline registers of the
    matrix-vector unit's reduction trees, where the folding file or the network file sets it
    (None: :func:`gen.top.mvu_factory_for` picks it from SIMD and the family's LUT size).
    """

    index: int
    name: str
    kind: str
    pe: int | None
    simd: int | None
    in_elems: int
    out_elems: int
    cycles: int
    parts: tuple[tuple[str, int], ...]
    source: str  # where the folding came from: "file", "network", "auto" or "fixed"
    tree_depth: int | None = None

    @property
    def lanes(self) -> int:
        return (self.pe or 0) * (self.simd or 0)


@dataclass(frozen=True)
class Plan:
    layers: tuple[LayerPlan, ...]
    input_elems: int
    output_elems: int
    target_cycles: int | None

    @property
    def interval(self) -> int:
        """Cycles per frame in steady state: the slowest layer's."""
        return max(lp.cycles for lp in self.layers)

    def fold_dict(self) -> dict[str, dict[str, int]]:
        """The folding as a folding mapping (``fold=`` of :func:`plan_network`): ``pe``, ``simd``
        and, where set, ``tree_depth`` of every folded layer."""
        return {lp.name: {"pe": lp.pe, "simd": lp.simd,
                          **({"tree_depth": lp.tree_depth} if lp.tree_depth is not None else {})}
                for lp in self.layers if lp.pe}

    @property
    def bottleneck(self) -> LayerPlan:
        return max(self.layers, key=lambda lp: lp.cycles)

    def report(self) -> str:
        """A plain-text table of the folding."""
        rows = [("#", "layer", "kind", "pe", "simd", "lanes", "cycles/frame", "limited by", "from")]
        for lp in self.layers:
            limit = max(lp.parts, key=lambda p: p[1])[0] if lp.parts else ""
            rows.append((str(lp.index), lp.name, lp.kind, str(lp.pe or ""), str(lp.simd or ""),
                         str(lp.lanes or ""), f"{lp.cycles:,}", limit, lp.source))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if i in (0, 3, 4, 5, 6) else c.ljust(w)
                           for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
        tgt = f", target {self.target_cycles:,}" if self.target_cycles else ""
        lines.append(f"interval {self.interval:,} cycles per frame (slowest: {self.bottleneck.name}"
                     f"{tgt}), {sum(lp.lanes for lp in self.layers):,} lanes")
        return "\n".join(lines)


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


# -- folding files -------------------------------------------------------------------------------
def load_fold_file(path) -> dict[str, dict[str, int]]:
    """Read a folding file: a mapping of layer name to ``{pe: int, simd: int, tree_depth: int}``
    (each optional; ``tree_depth``, 0 to :data:`gen.schema.MAX_TREE_DEPTH`, is the pipeline
    registers of the layer's reduction trees)."""
    from .safeio import read_json, read_yaml

    p = Path(path)
    read = read_json if p.suffix == ".json" else read_yaml
    data = read(p, field="--fold", what="folding file", max_bytes=1 << 20)
    from .finn_fold import FinnFolding, is_finn_folding

    if is_finn_folding(data):  # FINN's folding_config.json: mapped onto the layers when planning
        return FinnFolding(data)
    return check_fold(data)


def check_fold(data) -> dict[str, dict[str, int]]:
    if not isinstance(data, dict):
        raise NetworkError("fold", f"expected a mapping of layer name to {{pe, simd}}, found "
                                   f"{type(data).__name__}")
    out = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise NetworkError(f"fold.{name}", f"expected a mapping with pe and/or simd, found "
                                               f"{type(spec).__name__}")
        for k, v in spec.items():
            if k not in FOLD_KEYS:
                raise NetworkError(f"fold.{name}.{k}", "unknown key (expected pe, simd or tree_depth)")
            if k == "tree_depth":
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_TREE_DEPTH:
                    raise NetworkError(f"fold.{name}.{k}", f"expected an integer from 0 to "
                                                           f"{MAX_TREE_DEPTH}, found {v!r}")
            elif not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise NetworkError(f"fold.{name}.{k}", f"expected a positive integer, found {v!r}")
        out[str(name)] = dict(spec)
    return out


# -- the cycle model -----------------------------------------------------------------------------
def layer_parts(layer, k_in: int, pe: int | None = None, simd: int | None = None):
    """``(parts, out_elems)``: the cycles per frame of each part of a layer, with no stalls
    (its op's :meth:`~gen.ops.base.LayerOp.parts`)."""
    return op_for(layer).parts(layer, k_in, pe, simd)


def _layer_plan(i, layer, k_in, pe, simd, source) -> LayerPlan:
    parts, out = layer_parts(layer, k_in, pe, simd)
    parts = tuple((n, c) for n, c in parts if c)
    return LayerPlan(i, layer.name, layer.kind, pe, simd, k_in, out, max(c for _, c in parts), parts,
                     source)


def _check_divides(i, layer, field, v):
    check_folding(f"layers[{i}]", field, v, layer.mh, layer.mw,
                  pads=getattr(op_for(layer), "pads_folding", False))


def _auto(i, layer, k_in, target, pe_fixed, simd_fixed, strict=True) -> tuple[int, int]:
    pes = [pe_fixed] if pe_fixed else divisors(layer.mh)
    simds = [simd_fixed] if simd_fixed else divisors(layer.mw)
    best, fastest = None, None
    for pe in pes:
        for simd in simds:
            parts, _ = layer_parts(layer, k_in, pe, simd)
            cyc = max(c for _, c in parts)
            key = (pe * simd, cyc, -simd)
            if cyc <= target and (best is None or key < best[0]):
                best = (key, pe, simd)
            fkey = (cyc, pe * simd)
            if fastest is None or fkey < fastest[0]:
                fastest = (fkey, pe, simd)
    if best is None and not strict:
        return fastest[1], fastest[2]
    if best is None:
        raise NetworkError(f"layers[{i}]", f"cannot meet the target of {target:,} cycles per frame: "
                                           f"{layer.name} needs at least {fastest[0][0]:,}")
    return best[1], best[2]


def _k_in(layer, k: dict):
    """The elements per beat a layer reads: one count, or a join's counts (one per input)."""
    if op_for(layer).arity == 1:
        return k[layer.inputs[0]]
    return tuple(k[t] for t in layer.inputs)


def _default_target(net: Network, input_elems: int) -> int:
    """At least the fixed cost of the unfoldable parts; about DEFAULT_LANES lanes in the largest
    layer."""
    work = 1
    floor = 1
    k = {INPUT: input_elems}
    for layer in net.layers:
        k_in = _k_in(layer, k)
        if op_for(layer).foldable:
            work = max(work, math.ceil(layer.macs / DEFAULT_LANES))
            parts, k[layer.name] = layer_parts(layer, k_in, layer.mh, layer.mw)
            floor = max(floor, max(c for n, c in parts if n != "mvu"))
        else:
            parts, k[layer.name] = layer_parts(layer, k_in)
            floor = max(floor, max(c for _, c in parts))
    return max(work, floor)


def plan_network(net: Network, *, fold=None, target_cycles: int | None = None) -> Plan:
    """Choose every layer's folding.

    Parameters
    ----------
    net : Network
    fold : None, "auto", or a mapping of layer name to ``{pe, simd}``
        ``None``: the network file's folding where it gives one, automatic elsewhere.
    target_cycles : int, optional
        Cycles per frame that automatically folded layers must meet; by default, the larger of
        what the unfoldable parts (sliding windows, pooling) need and the work of the largest
        layer spread over :data:`DEFAULT_LANES` lanes.

    Raises
    ------
    NetworkError
        For a folding that does not divide a layer, an unknown layer name, or a target that
        cannot be met.
    """
    if target_cycles is not None and (not isinstance(target_cycles, int) or target_cycles < 1):
        raise NetworkError("--target-cycles", f"expected a positive integer, found {target_cycles!r}")
    names = {layer.name: i for i, layer in enumerate(net.layers)}
    given: dict[int, dict[str, int]] = {}
    sources: dict[int, str] = {}
    if fold != "auto":
        for i, layer in enumerate(net.layers):
            if op_for(layer).foldable:
                d = {k: v for k, v in (("pe", layer.pe), ("simd", layer.simd),
                                       ("tree_depth", getattr(layer, "tree_depth", None))) if v is not None}
                if d:
                    given[i], sources[i] = d, "network"
        if isinstance(fold, dict):
            if hasattr(fold, "resolve"):  # gen.finn_fold.FinnFolding
                fold = fold.resolve(net)
            for name, spec in check_fold(fold).items():
                if name not in names:
                    raise NetworkError(f"fold.{name}", f"unknown layer (layers: {', '.join(names)})")
                i = names[name]
                if not op_for(net.layers[i]).foldable:
                    raise NetworkError(f"fold.{name}", f"a {net.layers[i].kind} layer has no folding")
                given[i] = {**given.get(i, {}), **spec}
                sources[i] = "file"
        elif fold is not None:
            raise NetworkError("--fold", f"expected 'auto' or a folding file, found {fold!r}")
    for i, d in given.items():
        for f, v in d.items():
            if f != "tree_depth":
                _check_divides(i, net.layers[i], f, v)

    # the input of a vector network: SIMD per beat of the first layer that reads it (chosen below)
    input_elems = net.input.shape[0] if len(net.input.shape) == 3 else None
    target = target_cycles
    strict = target is not None
    if target is None:
        target = _default_target(net, input_elems or 1)
    layers = []
    k: dict[str, int] = {}
    if input_elems is not None:
        k[INPUT] = input_elems
    for i, layer in enumerate(net.layers):
        op = op_for(layer)
        src_tensor = layer.inputs[0]
        if op.foldable:
            g = given.get(i, {})
            pe, simd = g.get("pe"), g.get("simd")
            if src_tensor not in k:  # reads a vector input: it arrives SIMD per beat
                if simd is None:
                    simd = _auto(i, layer, layer.mw, target, pe, None, strict)[1]
                k[src_tensor] = input_elems = op.input_elems(layer, simd)
            src = sources.get(i, "auto")
            if pe is None or simd is None:
                pe, simd = _auto(i, layer, k[src_tensor], target, pe, simd, strict)
                if src != "auto" and (g.get("pe") is None or g.get("simd") is None):
                    src += "+auto"
            lp = replace(_layer_plan(i, layer, k[src_tensor], pe, simd, src), tree_depth=g.get("tree_depth"))
        else:
            for t in layer.inputs:
                if t not in k:
                    k[t] = input_elems = op.input_elems(layer, None)
            lp = _layer_plan(i, layer, _k_in(layer, k), None, None, "fixed")
            if op.arity > 1:   # a join: its inputs converted to the elements per beat it takes
                lp = replace(lp, in_elems=op.join_input_elems(layer, _k_in(layer, k))[0])
            if target_cycles is not None and lp.cycles > target_cycles:
                raise NetworkError(f"layers[{i}]", f"cannot meet the target of {target_cycles:,} "
                                                   f"cycles per frame: {layer.kind} {layer.name} "
                                                   f"needs {lp.cycles:,}")
        layers.append(lp)
        k[layer.name] = lp.out_elems
    out = k[net.outputs[0]]
    return Plan(tuple(layers), input_elems, out, target_cycles if target_cycles is not None else target)
