"""An atomic output-folder writer that never loses data.

:func:`replace_folder` writes a set of files into a hidden temporary folder beside the output
folder and swaps it into place at the end. The rules (docs/format.md, "Limits and guarantees"):

- the output folder may be absent, empty, or a previous nomul output (it holds a
  ``manifest.json`` whose ``format`` is ``nomul-accelerator``); anything else is refused
  unless ``overwrite`` is given;
- a folder that holds one of the command's input files is refused even with ``overwrite``;
- ``""``, ``.``, ``..``, the current folder or one of its parents, and a path under a file are
  refused; a symbolic link to a folder is followed (the folder it points to is replaced, the
  link stays), any other symbolic link is refused;
- on every exit path (an error, SIGINT, SIGTERM, SIGHUP) the output folder is either the old
  one or the complete new one, and no hidden temporary folder is left behind. After a SIGKILL
  (which no process can handle), the next write of the same folder finishes the job: the hidden
  folders carry the writer's process id, and those of a process that no longer runs are removed,
  or, when the swap was cut between its two renames, renamed back into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import NetworkError
from .interrupts import deferred_signals, signals_as_exceptions

__all__ = ["OUTPUT_FORMAT", "is_nomul_output", "check_out_dir", "replace_folder", "ensure_parent"]

OUTPUT_FORMAT = "nomul-accelerator"
_MAX_MANIFEST_BYTES = 64 << 20


def is_nomul_output(folder) -> bool:
    """Whether ``folder`` holds a previous nomul output (its ``manifest.json`` says so)."""
    m = Path(folder) / "manifest.json"
    try:
        if m.is_symlink() or not m.is_file() or m.stat().st_size > _MAX_MANIFEST_BYTES:
            return False
        doc = json.loads(m.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == OUTPUT_FORMAT


def ensure_parent(path, field: str) -> Path:
    """Create the folder that will hold the output file ``path`` (as ``gen`` creates its output
    folder's parents); a file in the way is a one-line error naming ``field``."""
    p = Path(path)
    if not p.name:
        raise NetworkError(field, f"expected a file name, found {os.fspath(path)!r}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NetworkError(field, f"cannot create the folder of {p}: {e.strerror}") from None
    if p.is_dir():
        raise NetworkError(field, f"{p} is a folder, not a file name")
    return p


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def recover(out: Path) -> None:
    """Finish what a killed writer of ``out`` left: its old folder back in place if the swap was
    cut between its renames, its temporary folders removed."""
    pat = re.compile(rf"\.{re.escape(out.name)}\.nomul-(new|old)-(\d+)-.+")
    left = []
    try:
        for p in out.parent.iterdir():
            m = pat.fullmatch(p.name)
            if m and p.is_dir() and not p.is_symlink() and not pid_alive(int(m[2])):
                left.append((m[1] != "old", p))  # the old folders first
    except OSError:
        return
    for is_new, p in sorted(left):
        if not is_new and not out.exists():
            p.rename(out)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _inside(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


def check_out_dir(out_dir, *, overwrite: bool = False, inputs=(), field: str = "-o") -> Path:
    """The absolute path of the folder to write, after checking that writing it loses nothing.

    Parameters
    ----------
    out_dir : path
        The output folder as the user gave it.
    overwrite : bool
        Replace a non-empty folder that is not a previous nomul output.
    inputs : paths
        The command's input files, which must not be inside the output folder.
    field : str
        The option named in errors.

    Raises
    ------
    NetworkError
        When writing would delete something that is not a previous output, or the path
        cannot be a folder.
    """
    text = os.fspath(out_dir) if out_dir is not None else ""
    if not text.strip():
        raise NetworkError(field, "expected a folder name, found an empty string")
    raw = Path(text)
    if raw.name in ("", ".", ".."):
        raise NetworkError(field, f"{text!r} is the current folder or a parent of it, not a new "
                                  f"output folder; name a folder inside it")
    if raw.is_symlink():
        target = raw.resolve()
        if not target.is_dir():
            raise NetworkError(field, f"{text} is a symbolic link to {target}, which is not a folder")
        out = target
    else:
        anc = raw.absolute().parent
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if not anc.is_dir():
            raise NetworkError(field, f"{anc} is not a folder, so {text} cannot be created")
        out = raw.absolute().parent.resolve() / raw.name
    if out.exists() and not out.is_dir():
        raise NetworkError(field, f"{text} exists and is not a folder")
    cwd = Path.cwd().resolve()
    if _inside(cwd, out):
        raise NetworkError(field, f"{text} is the current folder or a parent of it; name a new "
                                  f"output folder")
    for p in inputs:
        rp = Path(p).resolve()
        if _inside(rp, out):
            raise NetworkError(field, f"{text} holds the input file {rp.name}; write the output "
                                      f"to another folder")
    if out.is_dir() and any(out.iterdir()) and not is_nomul_output(out) and not overwrite:
        raise NetworkError(field, f"{text} is not empty and is not a previous nomul output (no "
                                  f"manifest.json); name a new folder, or pass --overwrite to "
                                  f"replace it")
    return out


def replace_folder(out_dir, files: dict[str, bytes], *, after=None, overwrite: bool = False,
                   inputs=(), field: str = "-o") -> Path:
    """Write ``files`` (relative name → bytes) as the folder ``out_dir``, atomically.

    The files go into a hidden temporary folder beside ``out_dir``; ``after(tmp)`` (e.g. a
    bitstream build) runs on it; then it is renamed into place, the old folder (if any)
    renamed aside first and removed last. An exception or a signal at any point leaves the
    old folder as it was (or, once the swap is done, the complete new one), and removes the
    temporary folders and the parent folders this call created. Returns the folder written.
    See :func:`check_out_dir` for what is refused.
    """
    out = check_out_dir(out_dir, overwrite=overwrite, inputs=inputs, field=field)
    parent = out.parent
    for name in files:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"Output file name must be relative and inside the folder, not {name!r}")
    with signals_as_exceptions():
        made = []  # parent folders created here, removed on failure
        tmp = old = None
        try:
            for d in reversed([d for d in [parent, *parent.parents] if not d.exists()]):
                try:
                    d.mkdir()
                except OSError as e:
                    raise NetworkError(field, f"cannot create folder {d}: {e.strerror}") from None
                made.append(d)
            with deferred_signals():
                recover(out)
                tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.nomul-new-{os.getpid()}-",
                                            dir=parent))
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the output is not
            for name, data in files.items():
                p = tmp / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            if after is not None:
                after(tmp)
            with deferred_signals():
                if out.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.nomul-old-{os.getpid()}-",
                                                dir=parent))
                    old.rmdir()
                    out.rename(old)
                    try:
                        tmp.rename(out)
                    except BaseException:
                        old.rename(out)
                        raise
                else:
                    tmp.rename(out)
                tmp = None
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            with deferred_signals():
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                for d in reversed(made):
                    try:
                        d.rmdir()
                    except OSError:
                        pass
            raise
    return out
