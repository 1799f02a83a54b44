"""``--compare-kinds`` (:func:`gen.cmd_estimate.compare_kinds`) compares the MAC kinds on the
network's own design, in every dimension ``nomul explore`` varies: folding, weight memory style
and reduction-tree depth."""

import numpy as np
import pytest

from gen.cmd_estimate import compare_kinds, kind_variant
from gen.estimate import estimate_network
from gen.load import network_from_dict
from gen.macs import mac_names
from sim.randnet import random_network

SEED = 5


def _mvus(est) -> dict:
    """Layer index → the matrix-vector unit built for it."""
    return {int(name.split("_")[0][1:]): block for name, block in est.accel.blocks if name.endswith("_mvu")}


@pytest.fixture
def designed():
    """A network with a weight memory style and a non-default tree depth on each layer."""
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")
    doc, arrays = random_network(rng, ["and", "xnor", "xnor"], in_shape=[32], widths=[16, 8, 4], argmax=True)
    plain = network_from_dict(doc, arrays=arrays)
    depths = {i: m.depth for i, m in _mvus(estimate_network(plain, target="ecp5-25k")).items()}
    styles = ("logic", "block", "logic")
    for i, layer in enumerate(doc["layers"][:3]):
        layer["ram_style"] = styles[i]
        layer["tree_depth"] = depths[i] + 1
        layer["pe"], layer["simd"] = (2, 8) if i == 0 else (layer.get("pe"), layer.get("simd"))
        for k in ("pe", "simd"):
            if layer[k] is None:
                del layer[k]
    return network_from_dict(doc, arrays=arrays), styles, {i: d + 1 for i, d in depths.items()}


def test_variants_keep_the_design(designed):
    net, styles, depths = designed
    for kind in mac_names():
        v = kind_variant(net, kind)
        for i, (a, b) in enumerate(zip(net.layers[:3], v.layers[:3], strict=True)):
            assert (b.mac, b.pe, b.simd, b.ram_style, b.tree_depth) == (kind, a.pe, a.simd, styles[i], depths[i])


def test_every_kind_is_estimated_on_the_same_design(designed):
    net, styles, depths = designed
    own = estimate_network(net, target="ecp5-25k")
    rows = compare_kinds(net, target="ecp5-25k")
    assert {r["kind"] for r in rows} == set(mac_names())
    for r in rows:
        est = r["estimate"]
        assert [(x.pe, x.simd) for x in est.layers] == [(x.pe, x.simd) for x in own.layers], r["kind"]
        mvus = _mvus(est)
        assert {i: m.depth for i, m in mvus.items()} == depths, r["kind"]
        assert {i: m.ram_style for i, m in mvus.items()} == dict(enumerate(styles)), r["kind"]
        assert est.interval == own.interval


def test_a_fold_file_depth_reaches_every_kind(designed):
    net, _, depths = designed
    fold = {net.layers[1].name: {"pe": 2, "simd": 4, "tree_depth": 0}}
    for r in compare_kinds(net, target="ecp5-25k", fold=fold):
        mvus = _mvus(r["estimate"])
        assert (mvus[1].depth, mvus[1].pe, mvus[1].simd) == (0, 2, 4), r["kind"]
        assert mvus[0].depth == depths[0]
