"""A layer's reduction-tree depth (``tree_depth``) from a folding file or the network file:
validated, built into the matrix-vector unit, in the manifest, and the cycle model stays exact
against Amaranth's simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gen.emit import build
from gen.errors import NetworkError
from gen.estimate import estimate_network
from gen.load import network_from_dict
from gen.plan import load_fold_file, plan_network
from sim.randnet import random_network, random_values
from sim.streamsim import measure_accelerator

SEED = 11


def _net(seed: int = SEED, **kw):
    print(f"seed {seed}")
    kw = {"macs": ["xnor", "int"], "in_shape": [16], "widths": [8, 4], **kw}
    doc, arrays = random_network(np.random.default_rng(seed), **kw)
    return doc, arrays


def _mvu_depths(accel) -> dict[str, int]:
    return {n: b.depth for n, b in accel.blocks if n.endswith("_mvu")}


@pytest.mark.parametrize("depths", [(0, 3), (2, 0), (4, 1)])
def test_fold_file_tree_depth_is_built_and_cycle_exact(tmp_path, depths):
    doc, arrays = _net()
    net = network_from_dict(doc, arrays=arrays)
    fold_file = tmp_path / "fold.yaml"
    fold_file.write_text(f"layer0: {{pe: 2, simd: 8, tree_depth: {depths[0]}}}\n"
                         f"layer1: {{tree_depth: {depths[1]}}}\n")
    fold = load_fold_file(fold_file)
    est = estimate_network(net, fold=fold, count_registers=False)
    assert _mvu_depths(est.accel) == {"l0_mvu": depths[0], "l1_mvu": depths[1]}
    x = random_values(np.random.default_rng(SEED), net.input.dtype, (4, *net.input.shape))
    latency, interval, _ = measure_accelerator(est.accel, x)
    assert (est.latency, est.interval) == (latency, interval)
    base = estimate_network(net, fold={"layer0": {"pe": 2, "simd": 8}}, count_registers=False)
    default = _mvu_depths(base.accel)
    # the first-frame latency moves by exactly the added registers
    assert est.latency - base.latency == sum(depths) - sum(default.values())
    g = build(net, fold=fold, net_file="n.yaml")
    layers = json.loads(g.files["manifest.json"])["layers"]
    assert [lay.get("tree_depth") for lay in layers if lay["kind"] == "dense"] == list(depths)


def test_network_file_tree_depth():
    doc, arrays = _net()
    doc["layers"][0]["tree_depth"] = 5
    net = network_from_dict(doc, arrays=arrays)
    plan = plan_network(net)
    assert plan.layers[0].tree_depth == 5
    est = estimate_network(net, count_registers=False)
    assert _mvu_depths(est.accel)["l0_mvu"] == 5
    # a folding file's value wins
    est = estimate_network(net, fold={"layer0": {"tree_depth": 1}}, count_registers=False)
    assert _mvu_depths(est.accel)["l0_mvu"] == 1


@pytest.mark.parametrize("value", [-1, 17, "2", True, 1.5])
def test_fold_file_tree_depth_is_validated(value):
    doc, arrays = _net()
    net = network_from_dict(doc, arrays=arrays)
    with pytest.raises(NetworkError) as e:
        plan_network(net, fold={"layer0": {"tree_depth": value}})
    assert e.value.path == "fold.layer0.tree_depth"
    assert "\n" not in str(e.value)


def test_network_file_tree_depth_is_validated():
    doc, arrays = _net()
    doc["layers"][0]["tree_depth"] = 99
    with pytest.raises(NetworkError) as e:
        network_from_dict(doc, arrays=arrays)
    assert "tree_depth" in str(e.value) and "\n" not in str(e.value)


def test_explore_enumerates_tree_depths(tmp_path):
    pytest.importorskip("distributed")
    from gen import explore as ex
    from gen.netfile import write_network

    doc, arrays = _net(macs=["xnor", "xnor"], in_shape=[8], widths=[4, 3])
    path = write_network(tmp_path / "n.yaml", doc, arrays)
    sw = ex.sweep([str(path)], target="ecp5-25k")
    cands = [sw.candidate(n) for n in range(len(sw))]
    by_design: dict = {}
    for c in cands:
        assert [lay["tree_depth"] for lay in c["fold"].values()] == c["tree_depths"]
        key = (c["folding_id"], c["styles"])
        by_design.setdefault(key, {})[tuple(c["tree_depths"])] = c
    for (fid, styles), variants in by_design.items():
        assert len(variants) == 3, (fid, styles, sorted(variants))
        # one offset for every layer: depths d0 - 1, d0, d0 + 1
        firsts = sorted(variants)
        assert [tuple(b - a for a, b in zip(firsts[0], d, strict=True)) for d in firsts] == [(0, 0), (1, 1), (2, 2)]
        # the model: LUTs do not depend on the depth, flip-flops grow with it
        luts = {c["lut"] for c in variants.values()}
        assert len(luts) == 1
        ffs = [variants[d]["ff"] for d in firsts]
        assert ffs == sorted(ffs) and ffs[0] < ffs[-1]
    # the fast estimate equals the full one at the shallower and the deeper depths
    rng = np.random.default_rng(SEED)
    picks = [v[d] for v in by_design.values() for d in (min(v), max(v))]
    for i in rng.choice(len(picks), size=min(4, len(picks)), replace=False).tolist():
        r = ex.check_candidate(sw, picks[i]["id"])
        assert r["equal"], (r, picks[i])
