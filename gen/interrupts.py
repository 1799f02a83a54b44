"""Signals as exceptions, so that cleanup code runs on every exit path.

Python turns SIGINT into :class:`KeyboardInterrupt`, but SIGTERM and SIGHUP end the process at
once: no ``finally`` runs, temporary folders stay and a half-replaced output is left behind.
Inside :func:`signals_as_exceptions` they raise :class:`Interrupted` instead, so ``finally``
blocks and context managers clean up, and :func:`subprocess.run` kills its child (vvp, yosys,
nextpnr, make) on the way out. :func:`deferred_signals` holds the three signals back for a few
statements that must not be cut in two (the pair of renames that swaps an output folder).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Interrupted", "signals_as_exceptions", "deferred_signals", "SIGNALS"]

SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

_depth = 0


class Interrupted(BaseException):
    """The process received SIGTERM or SIGHUP (SIGINT stays :class:`KeyboardInterrupt`).

    Members
    -------
    signum : int
        The signal's number; the command exits with status 128 + signum.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def _raise(signum, frame):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_exceptions():
    """Within the block, SIGINT, SIGTERM and SIGHUP raise an exception in the main thread.

    Nested uses are free; the handlers that were installed before are restored at the end.
    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        if old[s] is not signal.SIG_IGN:  # nohup and friends: an ignored signal stays ignored
            signal.signal(s, _raise)
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT, SIGTERM and SIGHUP back for the block; the first one that arrived meanwhile
    is handled (and raises, under :func:`signals_as_exceptions`) when the block ends.

    Python-level handlers record the signal, rather than a thread's signal mask, which would
    not stop a signal delivered to another thread. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    old = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        if old[s] is not signal.SIG_IGN:
            signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if pending:
            handler = old[pending[0]]
            if callable(handler):
                handler(pending[0], None)
            elif handler is signal.SIG_DFL:
                signal.raise_signal(pending[0])
