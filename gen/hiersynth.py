"""Synthesis that scales: identical modules merged so that Yosys maps each once, results cached
by content.

Amaranth writes one RTLIL module per submodule *instance*: a matrix-vector unit of 32 PEs × 64
SIMD lanes holds 1,216 popcount counters (:class:`hw.trees.Counter`), each its own module,
kept apart by ``keep_hierarchy`` (:func:`hw.trees.keep_counter_hierarchy`). Yosys then runs
every pass, ABC9 included, once per module: on BNN-PYNQ's LFC that is about 1.3 s of ABC9 per
counter on these machines, 27 minutes for one unit. :func:`merge_identical_modules` keeps one
module of each distinct body and points every instance at it; ``stat`` multiplies a module's
cells by its instances, so the counts are the same as before (a kept module is synthesized on
its own, whatever instantiates it) and the time is that of the distinct modules.

:func:`cache_key` is the SHA-256 of what decides a synthesis result (the merged RTLIL without
its ``src`` attributes, the Yosys script, the Yosys version); :func:`cache_dir` is where
:func:`gen.synth.synthesize` keeps the statistics under that key, so that a rerun, in any build
folder, synthesizes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["merge_identical_modules", "MergeStats", "cache_key", "cache_dir", "split_modules",
           "pack_designs", "unpack_stat"]

#: A module of RTLIL text at the top level: its attribute lines, its name, its body.
_MODULE = re.compile(r"((?:^attribute [^\n]*\n)*)^module (\S+)\n(.*?)^end$\n?", re.M | re.S)
#: An instance of a user module (``cell \name \instance``): internal cells start with ``$``.
_CELL = re.compile(r"^(\s*cell )(\\\S+)( \S+)$", re.M)
_SRC = re.compile(r"^\s*attribute \\src [^\n]*\n", re.M)


@dataclass(frozen=True)
class MergeStats:
    """What :func:`merge_identical_modules` did: modules before and after, and how many
    instances the design has of each module kept (``{module: instances}``, over the whole
    hierarchy from the top)."""

    modules_before: int
    modules_after: int
    instances: dict


def split_modules(text: str) -> list[tuple[str, str, str]]:
    """The modules of RTLIL text, in order: ``(attribute lines, name, body)``."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _MODULE.finditer(text)]


_DECL = re.compile(r"^\s*(wire|memory|process|cell)\b")
_SIG_AFTER = {"connect": 1, "assign": 1, "update": 1, "switch": 1, "sync": 2}


def _ports(body: str) -> dict:
    """``{port name: port index}`` of a module body."""
    out = {}
    for line in body.splitlines():
        t = line.split()
        if t and t[0] == "wire":
            for i, x in enumerate(t[:-1]):
                if x in ("input", "output", "inout"):
                    out[t[-1]] = int(t[i + 1])
    return out


def _alpha_key(body: str) -> str:
    """The body with every name it declares (wires, memories, processes, cells) renamed by
    order of declaration, wherever it stands for a signal; cell types, port names of cells,
    parameters and attributes (but ``src``) are left as they are. Equal keys: the same logic."""
    names: dict[str, str] = {}
    for line in body.splitlines():
        if _DECL.match(line):
            names.setdefault(line.split()[-1], f"\\_{len(names)}")
    out = []
    in_cell = False
    for line in body.splitlines():
        t = line.split()
        if not t or (t[0] == "attribute" and t[1] == "\\src"):
            continue
        if t[0] == "cell":
            in_cell = True
        elif t[0] == "end":
            in_cell = False
        if _DECL.match(line):
            t[-1] = names[t[-1]]
        elif t[0] in _SIG_AFTER:
            k = 2 if (t[0] == "connect" and in_cell) else _SIG_AFTER[t[0]]
            t = t[:k] + [names.get(x, x) for x in t[k:]]
        out.append(" ".join(t))
    return "\n".join(out)


def _rename_cells(body: str, canon: dict, ports: dict) -> str:
    """Instances of a merged module point at the module kept, their port connections renamed
    to its ports (matched by port index)."""
    if not canon:
        return body
    out = []
    portmap = None
    for line in body.splitlines(keepends=True):
        t = line.split()
        if t and t[0] == "cell":
            portmap = None
            if len(t) == 3 and t[1] in canon:
                old, new = t[1], canon[t[1]]
                by_index = {i: n for n, i in ports[new].items()}
                portmap = {n: by_index[i] for n, i in ports[old].items()}
                line = line.replace(f"cell {old} ", f"cell {new} ", 1)
        elif t and t[0] == "end":
            portmap = None
        elif portmap and t and t[0] == "connect" and t[1] in portmap:
            line = line.replace(f"connect {t[1]} ", f"connect {portmap[t[1]]} ", 1)
        out.append(line)
    return "".join(out)


def merge_identical_modules(text: str) -> tuple[str, MergeStats]:
    """RTLIL text with every set of modules that differ only in names (of their ports, wires
    and cells) and ``src`` attributes replaced by the first of them, every instance pointing
    at it (its port connections renamed to the kept module's ports of the same index).

    Parents are compared after their instances have been renamed, repeatedly, so that two
    parents of identical children merge too. The top module (``attribute \\top 1``) is never
    merged. Text outside modules is kept in front.
    """
    mods = split_modules(text)
    head = _MODULE.sub("", text).strip()
    ports = {n: _ports(b) for _, n, b in mods}
    bodies = {n: b for _, n, b in mods}
    merged: set[str] = set()
    canon: dict[str, str] = {}   # merged in the last round -> kept
    while True:
        first: dict[tuple, str] = {}
        new: dict[str, str] = {}
        for attrs, name, _ in mods:
            if name in merged:
                continue
            bodies[name] = _rename_cells(bodies[name], canon, ports)
            if "attribute \\top 1" in attrs:
                continue
            key = (_SRC.sub("", attrs), _alpha_key(bodies[name]))
            if key in first:
                new[name] = first[key]
            else:
                first[key] = name
        if not new:
            break
        merged.update(new)
        canon = new
    kept = [(a, n, bodies[n]) for a, n, _ in mods if n not in merged]
    out = "\n".join(f"{a}module {n}\n{b}end\n" for a, n, b in kept)
    if head:
        out = head + "\n\n" + out
    return out, MergeStats(len(mods), len(kept), _instances(kept))


def _instances(mods) -> dict:
    """Instances of each module over the hierarchy from the top module(s)."""
    children = {n: [m.group(2) for m in _CELL.finditer(b)] for _, n, b in mods}
    tops = [n for a, n, _ in mods if "attribute \\top 1" in a] or [n for _, n, _ in mods[:1]]
    count: dict[str, int] = {}

    def walk(name, k):
        count[name] = count.get(name, 0) + k
        for c in children.get(name, []):
            if c in children:
                walk(c, k)

    for t in tops:
        walk(t, 1)
    return count


def without_src(rtlil: str) -> str:
    """RTLIL text without its ``src`` attributes (source lines, not logic): what to hash when
    a result depends on the design alone."""
    return _SRC.sub("", rtlil)


def cache_key(rtlil: str, script: str, tool_version: str) -> str:
    """SHA-256 (hex) of what fixes a synthesis result: the RTLIL without ``src`` attributes
    (they name source lines, not logic), the synthesis script and the tool's version."""
    h = hashlib.sha256()
    for part in (tool_version, script, without_src(rtlil)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def cache_dir() -> Path:
    """Where synthesis results are cached: ``$XDG_CACHE_HOME/nomul/synth`` (by default
    ``~/.cache/nomul/synth``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nomul" / "synth"


def pack_designs(texts: dict) -> tuple[str, list[str]]:
    """One RTLIL design of several: each design's modules renamed ``\\d<i>.<name>``, its top
    kept (``keep_hierarchy``) and instantiated by a new top module ``\\top`` whose ports are
    all of theirs, so that one Yosys run (and one reading of its cell libraries) maps them
    all; :func:`unpack_stat` gives each design's counts. ``texts`` is ``{name: RTLIL}``;
    returns the RTLIL and the new names of the designs' tops, in order."""
    parts, ports, cells, kept = [], [], [], []
    index = 0
    for i, (name, text) in enumerate(texts.items()):
        mods = split_modules(text)
        names = {n for _, n, _ in mods}
        tops = [n for a, n, _ in mods if "attribute \\top 1" in a]
        if len(tops) != 1:
            raise ValueError(f"Design {name} must have one top module, not {len(tops)}")

        def rename(n, i=i):
            return f"\\d{i}.{n[1:]}"

        for attrs, n, body in mods:
            if n == tops[0]:
                attrs = attrs.replace("attribute \\top 1\n", "attribute \\keep_hierarchy 1\n")
            body = _CELL.sub(lambda m, names=names, rename=rename: m.group(1) + (
                rename(m.group(2)) if m.group(2) in names else m.group(2)) + m.group(3), body)
            parts.append(f"{attrs}module {rename(n)}\n{body}end\n")
        conns = []
        for line in dict((n, b) for _, n, b in mods)[tops[0]].splitlines():
            t = line.split()
            if not t or t[0] != "wire":
                continue
            for x in t[:-1]:
                if x in ("input", "output", "inout"):
                    width = int(t[t.index("width") + 1]) if "width" in t else 1
                    ports.append(f"  wire width {width} {x} {index} \\p{i}.{t[-1][1:]}\n")
                    conns.append(f"    connect {t[-1]} \\p{i}.{t[-1][1:]}\n")
                    index += 1
        cells.append(f"  cell {rename(tops[0])} \\u{i}\n{''.join(conns)}  end\n")
        kept.append(rename(tops[0]))
    top = "attribute \\top 1\nmodule \\top\n" + "".join(ports) + "".join(cells) + "end\n"
    return "\n".join(parts) + "\n" + top, kept


def unpack_stat(stat: dict, tops: list[str]) -> list[dict]:
    """The ``stat -json`` of each design of :func:`pack_designs` (``tops``: their top modules
    there), as if each had been synthesized alone: its top module's cells with every instance
    of a module replaced by that module's cells, recursively (the ``design`` totals)."""
    mods = stat["modules"]

    def total(mod: str) -> dict:
        out: dict[str, int] = {}
        for typ, k in mods[mod]["num_cells_by_type"].items():
            sub = "\\" + typ if not typ.startswith("\\") else typ
            if sub in mods:
                for t, n in total(sub).items():
                    out[t] = out.get(t, 0) + k * n
            else:
                out[typ] = out.get(typ, 0) + k
        return out

    return [{"design": {"num_cells_by_type": total(top)}, "packed_as": top} for top in tops]
