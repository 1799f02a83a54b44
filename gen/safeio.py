"""Readers of untrusted input files with bounded memory and time.

Every limit is checked before the data it guards is read or allocated, and every failure is a
:class:`gen.errors.NetworkError` (one line, a field path), never a traceback. The limits are
documented in docs/format.md ("Limits and guarantees").

- :func:`read_yaml`: a size limit on the file; one pass over libyaml's event stream (no
  recursion) that bounds the nesting depth and the node count (aliases counted expanded, so a
  "billion laughs" file costs nothing) and rejects duplicate mapping keys with their path; then
  the C loader (``yaml.CSafeLoader``, or ``SafeLoader`` where libyaml is absent).
- :func:`read_json`: the same size limit, and a nesting limit.
- :class:`NpzReader`: members of an ``.npz`` read one at a time and only when asked for; the
  member's uncompressed size and its ``.npy`` header (shape, dtype) checked against the
  element limit before any data is decompressed.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import yaml

from .errors import NetworkError

__all__ = ["MAX_TEXT_BYTES", "MAX_DEPTH", "MAX_NODES", "MAX_INPUT_FILE_ELEMENTS", "read_yaml",
           "read_json", "parse_yaml", "NpzReader", "read_npy", "load_arrays"]

MAX_TEXT_BYTES = 4 << 20
MAX_DEPTH = 64
MAX_NODES = 1 << 17
MAX_INPUT_FILE_ELEMENTS = 1 << 28

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _fmt(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _read_text(path: Path, field: str, what: str, max_bytes: int) -> str:
    if not path.is_file():
        raise NetworkError(field, f"{what} not found: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise NetworkError(field, f"{path.name} has {size} bytes, more than the limit of {max_bytes}")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise NetworkError(field, f"cannot read {path.name}: {e.strerror}") from None
    if len(data) > max_bytes:  # grew meanwhile, or not a regular file
        raise NetworkError(field, f"{path.name} has more than the limit of {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NetworkError(field, f"{path.name} is not a text file") from None


def _scan(text: str, name: str, field: str, max_depth: int, max_nodes: int):
    """Walk the YAML event stream once: depth, expanded node count, duplicate keys."""
    stack = []  # [kind, index or key, "key"/"value" for a mapping, seen keys, start count, anchor]
    anchors: dict[str, int] = {}
    count = 0

    def done():
        if not stack:
            return
        fr = stack[-1]
        if fr[0] == "seq":
            fr[1] += 1
        else:
            fr[2] = "value" if fr[2] == "key" else "key"

    def start(ev):
        if stack and stack[-1][0] == "map" and stack[-1][2] == "key":
            fr = stack[-1]
            key = ev.value if isinstance(ev, yaml.ScalarEvent) else "?"
            if isinstance(ev, yaml.ScalarEvent) and key != "<<":
                if key in fr[3]:
                    raise NetworkError(_fmt([*_parts(), key]), f"duplicate key {key!r} (line "
                                                                 f"{ev.start_mark.line + 1} of {name})")
                fr[3].add(key)
            fr[1] = key

    def _parts():
        parts = [field] if field else []
        for fr in stack[:-1]:
            parts.append(fr[1] if fr[0] == "seq" or fr[2] == "value" else "?")
        return parts

    try:
        for ev in yaml.parse(text, Loader=_Loader):
            if isinstance(ev, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
                start(ev)
                if isinstance(ev, yaml.AliasEvent):
                    count += anchors.get(ev.anchor, 1)
                else:
                    count += 1
                if count > max_nodes:
                    raise NetworkError(field, f"{name} has more than {max_nodes} values (aliases "
                                              f"counted expanded), the limit")
                if isinstance(ev, yaml.CollectionStartEvent):
                    kind = "map" if isinstance(ev, yaml.MappingStartEvent) else "seq"
                    stack.append([kind, 0 if kind == "seq" else None, "key", set(), count, ev.anchor])
                    if len(stack) > max_depth:
                        raise NetworkError(_fmt(_parts()[:3]) or field,
                                           f"nested deeper than {max_depth} levels (line "
                                           f"{ev.start_mark.line + 1} of {name})")
                else:
                    if isinstance(ev, yaml.ScalarEvent) and ev.anchor:
                        anchors[ev.anchor] = 1
                    done()
            elif isinstance(ev, yaml.CollectionEndEvent):
                fr = stack.pop()
                if fr[5]:
                    anchors[fr[5]] = count - fr[4] + 1
                done()
    except yaml.YAMLError as e:
        raise _yaml_error(e, name, field, max_depth) from None


def _yaml_error(e, name: str, field: str, max_depth: int) -> NetworkError:
    mark = getattr(e, "problem_mark", None)
    line = f"line {mark.line + 1}" if mark else ""
    if "depth" in str(getattr(e, "problem", "") or ""):  # libyaml's own nesting limit
        return NetworkError(field, f"{name} is nested deeper than {max_depth} levels ({line})")
    where = f" at {line}, column {mark.column + 1}" if mark else ""
    return NetworkError(field, f"{name} is not valid YAML{where}")


def parse_yaml(text: str, *, name: str = "the YAML text", field: str = "",
               max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES):
    """Parse YAML text with the limits of :func:`read_yaml` (the size is the caller's)."""
    _scan(text, name, field, max_depth, max_nodes)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        raise _yaml_error(e, name, field, max_depth) from None
    except RecursionError:  # not reached after the depth check; kept as a last line of defence
        raise NetworkError(field, f"{name} is nested too deeply") from None


def read_yaml(path, *, field: str = "", what: str = "network file",
              max_bytes: int = MAX_TEXT_BYTES, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES):
    """Read a YAML file: at most ``max_bytes`` bytes of UTF-8, nested at most ``max_depth``
    levels, at most ``max_nodes`` values, no duplicate mapping key.

    Raises
    ------
    NetworkError
        With ``field`` (and, for a duplicate key or too deep a nesting, the path inside the
        file) and the line.
    """
    path = Path(path)
    text = _read_text(path, field, what, max_bytes)
    return parse_yaml(text, name=path.name, field=field, max_depth=max_depth, max_nodes=max_nodes)


def read_json(path, *, field: str = "", what: str = "file", max_bytes: int = MAX_TEXT_BYTES,
              max_depth: int = MAX_DEPTH):
    """Read a JSON file with the size and nesting limits of :func:`read_yaml`; duplicate keys
    are rejected too."""
    path = Path(path)
    text = _read_text(path, field, what, max_bytes)

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise NetworkError(field, f"{path.name}: duplicate key {k!r}")
            out[k] = v
        return out

    depth = level = 0
    in_str = esc = False
    for ch in text:  # the nesting depth, before the recursive parser sees it
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            level += 1
            depth = max(depth, level)
            if depth > max_depth:
                raise NetworkError(field, f"{path.name} is nested deeper than {max_depth} levels")
        elif ch in "]}":
            level -= 1
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as e:
        raise NetworkError(field, f"{path.name} is not valid JSON: {str(e).splitlines()[0]}") from None


class NpzReader:
    """The members of an ``.npz`` archive, each read only when asked for, within limits.

    Parameters
    ----------
    path : Path
        The archive.
    max_elements : int
        The most elements a member may have; checked against its ``.npy`` header (and the
        member's uncompressed size against what the header claims) before its data is read.
    """

    def __init__(self, path: Path, *, max_elements: int, field: str = "arrays"):
        self.path = Path(path)
        self.max_elements = max_elements
        self.field = field
        name = self.path.name
        try:
            with open(self.path, "rb") as f:
                head = f.read(6)
        except OSError as e:
            raise NetworkError(field, f"cannot read {name}: {e.strerror}") from None
        if head == b"\x93NUMPY":
            raise NetworkError(field, f"{name} is a single .npy array, not an .npz archive of "
                                      f"named arrays (np.savez)")
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._members = {i.filename: i for i in self._zip.infolist()}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise NetworkError(field, f"cannot read {name}: not an .npz archive ({e})") from None

    def close(self):
        self._zip.close()

    def keys(self) -> list[str]:
        return [k[:-4] for k in self._members if k.endswith(".npy")]

    def __contains__(self, key: str) -> bool:
        return f"{key}.npy" in self._members

    def read(self, key: str, field: str) -> np.ndarray:
        """The array ``key`` (KeyError if absent), after checking its header against the limits."""
        info = self._members[f"{key}.npy"]
        name = self.path.name
        limit_bytes = self.max_elements * 16 + (1 << 16)
        if info.file_size > limit_bytes:
            raise NetworkError(field, f"array {key!r} in {name} is {info.file_size} bytes "
                                      f"uncompressed, more than the limit of {limit_bytes}")
        try:
            with self._zip.open(info) as f:
                return read_npy(f, info.file_size, key=key, name=name, field=field,
                                max_elements=self.max_elements)
        except NetworkError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
            raise NetworkError(field, f"cannot read array {key!r} from {name}: "
                                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def read_npy(f, size: int, *, key: str, name: str, field: str, max_elements: int) -> np.ndarray:
    """One ``.npy`` array from the open file ``f`` of ``size`` bytes: its header (version, dtype,
    shape) checked against ``max_elements`` and ``size`` before any data is read; no pickle."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise NetworkError(field, f"array {key!r} in {name} has .npy format version "
                                      f"{version[0]}.{version[1]}, expected 1.0 or 2.0")
    except ValueError as e:
        raise NetworkError(field, f"cannot read array {key!r} from {name}: "
                                  f"{str(e).splitlines()[0]}") from None
    if dtype.hasobject:
        raise NetworkError(field, f"array {key!r} must hold integers, not objects (pickled data is "
                                  f"never loaded)")
    n = math.prod(shape)
    if n > max_elements:
        raise NetworkError(field, f"array {key!r} has {n} elements, more than the limit of "
                                  f"{max_elements}")
    if n * dtype.itemsize > size:
        raise NetworkError(field, f"array {key!r} in {name} is truncated: its header claims "
                                  f"{n * dtype.itemsize} bytes of data")
    data = f.read(n * dtype.itemsize)
    if len(data) != n * dtype.itemsize:
        raise NetworkError(field, f"array {key!r} in {name} is truncated")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape, order="F" if fortran else "C")


def load_arrays(path, *, field: str, max_elements: int) -> dict[str, np.ndarray]:
    """Every array of an ``.npy`` file (as key ``""``) or an ``.npz`` archive, within limits
    (for inputs and labels; a network's arrays are read member by member instead)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head == b"\x93NUMPY":
                f.seek(0)
                return {"": read_npy(f, path.stat().st_size, key=path.stem, name=path.name,
                                     field=field, max_elements=max_elements)}
    except OSError as e:
        raise NetworkError(field, f"cannot read {path.name}: {e.strerror}") from None
    reader = NpzReader(path, max_elements=max_elements, field=field)
    try:
        return {k: reader.read(k, field) for k in reader.keys()}
    finally:
        reader.close()
