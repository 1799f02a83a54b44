"""Temporary folders in one nomul-owned place, removed on every exit path.

Every temporary folder nomul makes (a simulation build, a synthesis run) is a subfolder of
``$NOMUL_TMPDIR`` or, by default, ``<system temp>/nomul-<uid>`` (created private to the user).
:func:`temporary_folder` removes it when the block ends, by an error, SIGINT, SIGTERM or SIGHUP
(:mod:`gen.interrupts` turns the last two into exceptions, and :func:`subprocess.run` kills its
child simulator or synthesis tool on the way out). Only SIGKILL can leave one behind: the
folder's name carries the process id (and a marker file says it is nomul's), and the next
nomul command removes the folders of processes that no longer run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from .interrupts import deferred_signals, signals_as_exceptions

__all__ = ["temp_root", "temporary_folder"]


def temp_root() -> Path:
    """The folder that holds nomul's temporary folders (created, private to the user)."""
    env = os.environ.get("NOMUL_TMPDIR")
    root = Path(env) if env else Path(tempfile.gettempdir()) / f"nomul-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, parents=bool(env), exist_ok=True)
    except OSError as e:
        raise RuntimeError(f"cannot create nomul's temporary folder {root}: {e.strerror}") from None
    st = os.lstat(root)
    if not env and (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()):
        raise RuntimeError(f"{root} is not a folder of this user; set NOMUL_TMPDIR")
    return root


_MARKER = ".nomul-temporary-folder"


def _remove_stale(root: Path) -> None:
    """Remove the folders of :func:`temporary_folder` whose process no longer runs (killed)."""
    from .outdir import pid_alive

    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for p in entries:
        m = re.fullmatch(r".*?-(\d+)-[^-]+", p.name)
        if (m and not p.is_symlink() and (p / _MARKER).is_file()
                and not pid_alive(int(m[1]))):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def temporary_folder(prefix: str = "nomul-"):
    """A fresh folder under :func:`temp_root`, removed with everything in it when the block ends.

    Signals are exceptions for the duration (see :func:`gen.interrupts.signals_as_exceptions`),
    and held back while the folder is being removed, so a second Ctrl-C does not leave half
    of it.
    """
    with signals_as_exceptions():
        with deferred_signals():
            root = temp_root()
            _remove_stale(root)
            path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))
            (path / _MARKER).write_text(f"{os.getpid()}\n")
        try:
            yield path
        finally:
            with deferred_signals():
                shutil.rmtree(path, ignore_errors=True)
