"""The Dask client that sweeps and sharded simulations run on: a local cluster on this machine
by default, or an existing scheduler; and the progress bar of tasks done / total."""

from __future__ import annotations

import contextlib
import os

from .errors import NetworkError

__all__ = ["open_client", "progress_bar"]


@contextlib.contextmanager
def open_client(scheduler: str | None, workers: int | None = None):
    """A Dask client of the scheduler at ``scheduler``, else of a new local cluster (processes,
    one thread each, ``workers`` of them, by default one per core); closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency
        raise NetworkError("--scheduler", "Dask distributed is not installed "
                                          "(pip install 'dask[distributed]')") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as e:
            raise NetworkError("--scheduler", f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise NetworkError("--workers", f"expected a positive integer, found {n}")
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", silence_logs=40) as cluster, Client(cluster) as client:
        yield client


def progress_bar(description: str = "{task.description}"):
    """A rich progress bar of tasks done / total (on stderr; quiet when it is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = Console(stderr=True)
    bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=con, transient=False, disable=not con.is_terminal)
    return bar


