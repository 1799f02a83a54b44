"""Co-simulation sharded over a real Dask cluster on loopback (two worker processes): the merged
result equals a single run's, frame for frame."""

import json

import numpy as np
import pytest

from gen.cli import main
from gen.load import load_network
from gen.netfile import write_network
from sim import golden
from sim.randnet import random_network, random_values
from sim.runner import cosimulate, generate
from sim.shard import merge, shard_bounds

distributed = pytest.importorskip("distributed")

SEED = 5


def test_shard_bounds():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]
    b = shard_bounds(101, 7)
    assert b[0][0] == 0 and b[-1][1] == 101 and all(x[1] == y[0] for x, y in zip(b, b[1:]))


def test_merge_renumbers_frames():
    from sim.runner import SimResult

    def r(frames, report, outs):
        return SimResult(frames, len(report), report, 4.0, 9, 4, 9, False, 0, 100, 0.1, 0.1, 1.0, 1.0,
                         "icarus", np.array(outs), {"received": np.ones(len(outs), bool)})

    m = merge([r(2, [], [[1], [2]]), r(3, ["frame 1, output [0]: expected 1, found 2"], [[3], [4], [5]])], [0, 2])
    assert m.frames == 5 and m.mismatches == 1
    assert m.mismatch_report == ["frame 3, output [0]: expected 1, found 2"]
    np.testing.assert_array_equal(m.outputs, [[1], [2], [3], [4], [5]])


def test_sharded_equals_single_run(tmp_path):
    from distributed import Client, LocalCluster

    from sim.shard import cosimulate_sharded

    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")
    doc, arrays = random_network(rng, ["xnor", "xnor"], in_shape=[12], widths=[6, 4], argmax=True)
    path = write_network(tmp_path / "net.yaml", doc, arrays)
    net = load_network(path)
    x = random_values(rng, net.input.dtype, (40, *net.input.shape))
    expected = golden.run(net, x).outputs
    sources, streams = generate(net, tmp_path / "gen")
    single = cosimulate(sources, streams, x, expected, build_dir=tmp_path / "single", seed=SEED, stall=0.2,
                        keep_outputs=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as c, Client(c) as client:
        sharded = cosimulate_sharded(sources, streams, x, expected, client=client, shards=4, seed=SEED,
                                     stall=0.2)
        out = tmp_path / "r.json"
        rc = main(["sim", str(path), "--random", "12", "--scheduler", c.scheduler_address, "--json", str(out)])
    assert single.passed and sharded.passed
    assert sharded.frames == single.frames == 40
    np.testing.assert_array_equal(sharded.outputs, single.outputs)
    np.testing.assert_array_equal(sharded.extra["received"], single.extra["received"])
    assert sharded.cycles_per_frame == single.cycles_per_frame
    assert sharded.latency_cycles == single.latency_cycles
    assert sharded.extra["shards"] == 4
    assert rc == 0 and json.loads(out.read_text())["mismatches"] == 0
