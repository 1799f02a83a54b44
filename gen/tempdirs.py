"""Temporary folders in one nomul-owned place, removed on every exit path.

Every temporary folder nomul makes (a simulation build, a synthesis run) is a subfolder of
``$NOMUL_TMPDIR`` or, by default, ``<system temp>/nomul-<uid>`` (created private to the user).
:func:`temporary_folder` removes it when the block ends, by an error, SIGINT, SIGTERM or SIGHUP
(:mod:`gen.interrupts` turns the last two into exceptions, and :func:`subprocess.run` kills its
child simulator or synthesis tool on the way out). Only SIGKILL can leave one behind; they are
all in the one place, under names that say which command made them.
"""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def temporary_folder(prefix: str = "nomul-"):
    """A fresh folder under :func:`temp_root`, removed with everything in it when the block ends.

    Signals are exceptions for the duration (see :func:`gen.interrupts.signals_as_exceptions`),
    and held back while the folder is being removed, so a second Ctrl-C does not leave half
    of it.
    """
    with signals_as_exceptions():
        with deferred_signals():
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=temp_root()))
        try:
            yield path
        finally:
            with deferred_signals():
                shutil.rmtree(path, ignore_errors=True)
