"""Whole networks: the generated accelerator in Amaranth's simulator against sim.golden.run,
bit-exact, with random gaps and stalls."""

from __future__ import annotations

import numpy as np
import pytest

from gen.load import network_from_dict
from gen.plan import plan_network
from gen.top import Accelerator, decode_outputs, encode_frames
from sim import golden
from sim.randnet import random_network, random_values
from sim.streamsim import stream_run


def simulate(net, plan, x, *, seed, gap=0.2, stall=0.2, family=None):
    acc = Accelerator(net, plan, family=family)
    words = encode_frames(acc, x)
    n_in = acc.in_beats_per_frame
    beats = [{"data": w, "last": int(j % n_in == n_in - 1)} for j, w in enumerate(words)]
    n = len(x)
    got = stream_run(acc, beats, n * acc.out_beats_per_frame, seed=seed, gap=gap, stall=stall,
                     field=("data", "last"), timeout=2_000_000)
    lasts = [g[1] for g in got]
    per = acc.out_beats_per_frame
    assert lasts == [int(j % per == per - 1) for j in range(len(got))]
    return decode_outputs(acc, [g[0] for g in got], n)


def check(doc, arrays, *, seed, frames=3, fold=None, target=None, family=None):
    net = network_from_dict(doc, arrays=arrays)
    plan = plan_network(net, fold=fold, target_cycles=target)
    print(plan.report())
    rng = np.random.default_rng(seed)
    x = random_values(rng, net.input.dtype, (frames, *net.input.shape))
    want = golden.run(net, x).outputs
    np.testing.assert_array_equal(simulate(net, plan, x, seed=seed, family=family), want)


@pytest.mark.parametrize("mac", ["xnor", "and", "ternary", "onehot", "int", "adder"])
def test_mlp_every_mac(mac):
    seed = 10 + ["xnor", "and", "ternary", "onehot", "int", "adder"].index(mac)
    doc, arrays = random_network(np.random.default_rng(seed), [mac, mac], in_shape=[12],
                                 widths=[6, 4])
    check(doc, arrays, seed=seed, fold={"layer0": {"pe": 2, "simd": 3}, "layer1": {"pe": 2, "simd": 2}})


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
@pytest.mark.parametrize("mac", ["xnor", "and"])
def test_mlp_family_popcount(mac, family):
    """The LUT4 families' popcount circuits (full adders, carry-chain adders) are bit-exact too."""
    seed = 40 + ["xnor", "and"].index(mac) + 2 * ["ecp5", "ice40"].index(family)
    doc, arrays = random_network(np.random.default_rng(seed), [mac, mac], in_shape=[20], widths=[6, 4])
    check(doc, arrays, seed=seed, family=family,
          fold={"layer0": {"pe": 2, "simd": 10}, "layer1": {"pe": 2, "simd": 6}})


def test_family_sets_popcount_style():
    doc, arrays = random_network(np.random.default_rng(1), ["xnor"], in_shape=[8], widths=[2])
    net = network_from_dict(doc, arrays=arrays)
    plan = plan_network(net)
    styles = {f: Accelerator(net, plan, family=f).blocks[-1][1].popcount_style
              for f in ("xilinx", "ecp5", "ice40")}
    assert styles == {"xilinx": "gpc6", "ecp5": "fa", "ice40": "carry"}
    with pytest.raises(ValueError, match=r"^Family must be one of ecp5, ice40, xilinx, not 'virtex'$"):
        Accelerator(net, plan, family="virtex")


def test_mlp_requant_argmax():
    doc, arrays = random_network(np.random.default_rng(3), ["int", "int", "int"], in_shape=[8],
                                 widths=[8, 6, 5], style="requant", argmax=True)
    check(doc, arrays, seed=3, frames=4)


def test_cnn_pool_dense_argmax():
    doc, arrays = random_network(np.random.default_rng(4), ["xnor", "xnor", "xnor"], conv=True,
                                 in_shape=[2, 6, 6], widths=[4, 4, 3], pool=True, argmax=True)
    check(doc, arrays, seed=4, frames=2)


@pytest.mark.parametrize("mac", ["xnor", "and", "ternary", "int", "adder", "onehot"])
def test_cnn_every_mac(mac):
    doc, arrays = random_network(np.random.default_rng(5), [mac, mac], conv=True, in_shape=[2, 5, 5],
                                 widths=[3, 4])
    check(doc, arrays, seed=5, frames=2)
