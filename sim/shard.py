"""Co-simulation of a large test set sharded over Dask workers.

The frames are cut into contiguous shards; each shard is a task (:func:`shard_task`) that writes
the design's Verilog into a folder of the worker's own, builds the simulator there once (a
worker's later shards reuse the build, :func:`sim.runner.build` rebuilding only changed
sources) and co-simulates its frames with :func:`sim.runner.cosimulate`. :func:`merge` puts the
shards back together: outputs and received flags in frame order, mismatches summed and their
frame numbers those of the whole set, cycles per frame and latency as the first shard measured
them (its frames are the first frames of the set, sent first with no stalls, as in a single
run). The outputs equal a single run's frame for frame.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from .runner import SimResult, TbStreams, cosimulate

__all__ = ["shard_bounds", "shard_task", "merge", "cosimulate_sharded", "run_sharded"]


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ``(start, stop)`` ranges covering ``range(n)`` (none empty)."""
    shards = max(1, min(shards, n))
    edges = [round(i * n / shards) for i in range(shards + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def shard_task(verilog: dict, streams: TbStreams, inputs: np.ndarray, expected: np.ndarray, *,
               sim: str, seed: int, stall: float, start: int, work_dir: str | None = None) -> SimResult:
    """Co-simulate one shard (frames ``start…``) in a build folder of this worker process."""
    digest = hashlib.sha256("".join(f"{k}\0{v}\0" for k, v in sorted(verilog.items())).encode()).hexdigest()[:16]
    base = Path(work_dir or tempfile.gettempdir()) / f"nomul-shard-{digest}-{os.getpid()}"
    src = base / "src"
    src.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, text in sorted(verilog.items()):
        p = src / name
        if not p.is_file() or p.read_text() != text:
            p.write_text(text)
        sources.append(str(p))
    return cosimulate(sources, streams, inputs, expected, build_dir=base / sim, sim=sim,
                      seed=seed + start, stall=stall, keep_outputs=True)


_FRAME = re.compile(r"^frame (\d+)")


def merge(results: list[SimResult], starts: list[int]) -> SimResult:
    """One result from the shards' (in frame order, shard ``i`` starting at frame ``starts[i]``)."""
    first = results[0]
    report = []
    for r, s in zip(results, starts, strict=True):
        report += [_FRAME.sub(lambda m, s=s: f"frame {int(m.group(1)) + s}", line) for line in r.mismatch_report]
    outs = [r.outputs for r in results]
    recv = [r.extra.get("received") for r in results]
    return SimResult(
        frames=sum(r.frames for r in results), mismatches=sum(r.mismatches for r in results),
        mismatch_report=report, cycles_per_frame=first.cycles_per_frame, latency_cycles=first.latency_cycles,
        expected_cycles_per_frame=first.expected_cycles_per_frame, expected_latency=first.expected_latency,
        timeout=any(r.timeout for r in results),
        frames_dropped_by_reset=sum(r.frames_dropped_by_reset for r in results),
        cycles=sum(r.cycles for r in results), python_s=sum(r.python_s for r in results),
        loop_s=sum(r.loop_s for r in results), build_s=max(r.build_s for r in results),
        test_s=max(r.test_s for r in results), simulator=first.simulator,
        outputs=None if any(o is None for o in outs) else np.concatenate(outs),
        extra={"received": None if any(x is None for x in recv) else np.concatenate(recv),
               "shards": len(results)})


def cosimulate_sharded(sources, streams: TbStreams, inputs, expected, *, client, shards: int | None = None,
                       sim: str = "icarus", seed: int = 0, stall: float = 0.3, progress=None) -> SimResult:
    """:func:`sim.runner.cosimulate` with the frames sharded over the workers of a Dask
    ``client`` (``shards`` of them, by default two per worker). ``progress(frames_done)`` is
    called as shards finish."""
    from distributed import as_completed

    inputs = np.asarray(inputs, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    n = inputs.shape[0]
    if shards is None:
        shards = 2 * max(1, len(client.scheduler_info()["workers"]))
    bounds = shard_bounds(n, shards)
    verilog = {Path(s).name: Path(s).read_text() for s in sources}
    vfut = client.scatter(verilog, broadcast=True)
    futs = [client.submit(shard_task, vfut, streams, inputs[a:b], expected[a:b], sim=sim, seed=seed,
                          stall=stall, start=a, retries=2, pure=False) for a, b in bounds]
    index = {f.key: i for i, f in enumerate(futs)}
    results: list = [None] * len(futs)
    done = 0
    for f in as_completed(futs):
        i = index[f.key]
        results[i] = f.result()
        done += bounds[i][1] - bounds[i][0]
        if progress:
            progress(done)
    return merge(results, [a for a, _ in bounds])


def run_sharded(sources, streams: TbStreams, values, expected, args) -> SimResult:
    """``nomul sim --workers N`` / ``--scheduler ADDRESS``: the sharded co-simulation with a
    progress bar of frames."""
    from gen.engine import open_client, progress_bar
    from gen.errors import NetworkError

    if args.waves:
        raise NetworkError("--waves", "a waveform needs one simulation: drop --workers / --scheduler")
    if args.workers is not None and args.workers < 1:
        raise NetworkError("--workers", f"expected a positive integer, found {args.workers}")
    bar = progress_bar("frames (each worker builds its simulator first)")
    with open_client(args.scheduler, args.workers) as client, bar:
        task = bar.add_task("sim", total=len(values))
        return cosimulate_sharded(sources, streams, values, expected, client=client, sim=args.sim,
                                  seed=args.seed, stall=args.stall,
                                  progress=lambda k: bar.update(task, completed=k))
