"""Writing network description files and other outputs deterministically and atomically.

Same input, byte-identical files: .npz archives are written with fixed zip timestamps and
sorted keys, YAML without key sorting surprises. A file is written to a temporary name and then
renamed, so a failure never leaves a half-written output.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import yaml

__all__ = ["save_npz", "write_network", "atomic_write_bytes", "npz_bytes", "network_digest"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


def network_digest(path) -> str:
    """SHA-256 of a network file and the ``.npz`` beside it (what a manifest records as the
    network's ``sha256``)."""
    path = Path(path)
    h = hashlib.sha256(path.read_bytes())
    npz = path.with_suffix(".npz")
    if npz.is_file():
        h.update(npz.read_bytes())
    return h.hexdigest()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive of ``arrays`` (keys sorted, fixed timestamps), as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            if arr.dtype == object:
                raise TypeError(f"Array {key!r} has dtype object, which cannot be saved without pickle")
            data = io.BytesIO()
            np.lib.format.write_array(data, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data.getvalue())
    return buf.getvalue()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def _plain(v):
    """numpy scalars and tuples to plain YAML types."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_network(path, doc: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write a network description ``doc`` to ``path`` (.yaml) and its arrays beside it (.npz).

    The ``arrays`` field of ``doc`` is set to the .npz file's name and ``arrays_sha256`` to its
    SHA-256, so that a pair not written together (an interrupted rewrite leaves the new .npz
    beside the old .yaml) is rejected on loading. The .npz is written first. Returns the YAML
    path.
    """
    path = Path(path)
    npz = path.with_suffix(".npz")
    data = npz_bytes({k: np.asarray(v) for k, v in arrays.items()})
    doc = {**_plain(doc), "arrays": npz.name, "arrays_sha256": hashlib.sha256(data).hexdigest()}
    order = ["version", "name", "source", "metadata", "arrays", "arrays_sha256", "input", "layers"]
    doc = {k: doc[k] for k in order if k in doc} | {k: v for k, v in doc.items() if k not in order}
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)
    atomic_write_bytes(npz, data)
    atomic_write_bytes(path, text.encode())
    return path
