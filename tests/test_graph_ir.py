"""The graph IR (format version 2) and the registries every pass asks: layers name their inputs,
fan-out and several outputs load, run in the golden model, plan, and estimate; the generator
refuses what it cannot wire yet; no pass skips a layer it does not know."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gen.errors import NetworkError
from gen.estimate import estimate_network
from gen.ir import INPUT
from gen.load import network_from_dict
from gen.macs import MAC_KINDS, PREFERENCE, acc_bounds, check_types, dot, kind_for
from gen.ops import OPS, op_for
from gen.plan import plan_network
from gen.targets import BOARDS, FAMILIES, PARTS
from hw.dtypes import DType
from sim import golden
from sim.randnet import random_network, random_values


def two_heads(seed=0):
    rng = np.random.default_rng(seed)
    doc = {"version": 2, "name": "two-heads", "input": {"shape": [16], "encoding": "bipolar"},
           "layers": [
               {"type": "dense", "name": "h", "mac": "xnor", "weights": {"key": "w0", "encoding": "bipolar"},
                "activation": {"type": "multithreshold", "thresholds": "t0", "bipolar": True}},
               {"type": "dense", "name": "a", "inputs": ["h"], "mac": "xnor",
                "weights": {"key": "w1", "encoding": "bipolar"}},
               {"type": "dense", "name": "b", "inputs": ["h"], "mac": "xnor",
                "weights": {"key": "w2", "encoding": "bipolar"}}],
           "outputs": ["a", "b"]}
    arrays = {"w0": rng.choice([-1, 1], size=(8, 16)), "t0": rng.integers(-2, 3, size=(8, 1)),
              "w1": rng.choice([-1, 1], size=(10, 8)), "w2": rng.choice([-1, 1], size=(2, 8))}
    return doc, arrays


def test_fan_out_loads_and_runs():
    doc, arrays = two_heads()
    net = network_from_dict(doc, arrays=arrays)
    assert [x.inputs for x in net.layers] == [(INPUT,), ("h",), ("h",)]
    assert net.outputs == ("a", "b") and not net.is_chain
    assert net.consumers("h") == (1, 2)
    x = random_values(np.random.default_rng(1), net.input.dtype, (32, 16))
    res = golden.run(net, x)
    # each head is the dense product of the shared hidden layer, computed independently here
    h = np.where(x @ arrays["w0"].T >= arrays["t0"][:, 0], 1, -1)
    np.testing.assert_array_equal(res.tensor("a"), h @ arrays["w1"].T)
    np.testing.assert_array_equal(res.tensor("b"), h @ arrays["w2"].T)
    np.testing.assert_array_equal(res.outputs, res.tensor("a"))


def test_graph_plans_and_estimates():
    doc, arrays = two_heads()
    net = network_from_dict(doc, arrays=arrays)
    plan = plan_network(net, fold={"h": {"pe": 2, "simd": 4}, "a": {"pe": 5, "simd": 2},
                                   "b": {"pe": 1, "simd": 8}})
    # b: 2 × 1 MVU cycles, but its width converter gathers 8 elements from beats of 2
    assert [lp.cycles for lp in plan.layers] == [4 * 4, 2 * 4, 8 // 2]
    # both heads read h at its PE (2) elements per beat
    assert [lp.in_elems for lp in plan.layers] == [4, 2, 2]
    est = estimate_network(net, fold={"h": {"pe": 2, "simd": 4}}, count_registers=False)
    assert est.interval == max(lp.cycles for lp in est.plan.layers)
    assert [lay.name for lay in est.layers] == ["h", "a", "b"]
    assert all(lay.total("lut") > 0 for lay in est.layers)


def test_gen_refuses_a_graph_with_one_line():
    from gen.emit import build

    doc, arrays = two_heads()
    net = network_from_dict(doc, arrays=arrays)
    with pytest.raises(NetworkError, match=r"^layers\[2\]: the hardware generator builds one output stream: "
                                           r"'b' is a second output \(outputs: a, b\)$"):
        build(net)


def test_version_1_file_is_a_chain():
    doc, arrays = random_network(np.random.default_rng(3), ["xnor", "xnor"], in_shape=[12], argmax=True)
    net = network_from_dict(doc, arrays=arrays)
    assert net.is_chain and net.outputs == (net.layers[-1].name,)
    v2 = network_from_dict({**doc, "version": 2}, arrays=arrays)
    x = random_values(np.random.default_rng(0), net.input.dtype, (8, 12))
    np.testing.assert_array_equal(golden.run(net, x).outputs, golden.run(v2, x).outputs)


@pytest.mark.parametrize("change,pattern", [
    (lambda d: d["layers"][1].update(inputs=["nope"]), r"^layers\[1\]\.inputs\[0\]: unknown tensor 'nope'"),
    (lambda d: d["layers"][1].update(inputs=["b"]), r"^layers\[1\]\.inputs\[0\]: 'b' is made by layers\[2\], "
                                                    r"which must come before this layer$"),
    (lambda d: d["layers"][1].update(inputs=["h", "h"]), r"^layers\[1\]\.inputs: a dense layer takes 1 input, not 2$"),
    (lambda d: d["layers"][2].update(name="a"), r"^layers\[2\]\.name: duplicate layer name 'a' \(also layers\[1\]\)$"),
    (lambda d: d["layers"][0].update(name="input"), r"^layers\[0\]\.name: 'input' names the network input$"),
    (lambda d: d.update(outputs=["zz"]), r"^outputs\[0\]: unknown tensor 'zz'$"),
    (lambda d: d.update(version=1), r"^layers\[1\]\.inputs: needs version 2 of the format$"),
])
def test_graph_errors_name_the_field(change, pattern):
    doc, arrays = two_heads()
    change(doc)
    with pytest.raises(NetworkError, match=pattern):
        network_from_dict(doc, arrays=arrays)


def test_outputs_need_version_2():
    doc, arrays = random_network(np.random.default_rng(3), ["xnor"], in_shape=[12])
    with pytest.raises(NetworkError, match=r"^outputs: needs version 2 of the format$"):
        network_from_dict({**doc, "outputs": ["layer0"]}, arrays=arrays)


def test_a_node_no_op_owns_is_an_error():
    doc, arrays = random_network(np.random.default_rng(3), ["xnor"], in_shape=[12])
    net = network_from_dict(doc, arrays=arrays)

    @dataclasses.dataclass(frozen=True)
    class Unknown:
        name: str = "u"
        kind: str = "mystery"
        inputs: tuple = (INPUT,)

    bad = dataclasses.replace(net, layers=(Unknown(),), outputs=("u",))
    with pytest.raises(TypeError, match="No layer op for Unknown"):
        golden.run(bad, random_values(np.random.default_rng(0), net.input.dtype, (2, 12)))
    with pytest.raises(TypeError, match="No layer op for Unknown"):
        plan_network(bad)


def test_registries_are_consistent():
    for name, op in OPS.items():
        assert op.type == name and op.spec.model_fields["type"].annotation.__args__ == (name,)
    for part in PARTS.values():
        assert part.family in FAMILIES
    for board in BOARDS.values():
        assert board.part in PARTS and board.family == PARTS[board.part].family


@pytest.mark.parametrize("mac", list(MAC_KINDS))
def test_acc_bounds_are_exact_and_reached(mac):
    """The registry's bounds are reached by the extreme inputs and hold on random ones."""
    rng = np.random.default_rng(sum(map(ord, mac)))
    k = MAC_KINDS[mac]
    from sim.randnet import _dtype
    wdt, adt = _dtype(k.random_types[0]), _dtype(k.random_types[1])
    w = random_values(rng, wdt, (5, 9)).astype(np.int64)
    shift = 1 if k.weight_shift else 0
    lo, hi = acc_bounds(mac, w, adt.min, adt.max, shift)
    x = random_values(rng, adt, (200, 9))
    acc = dot(mac, x, w, shift=shift)
    assert (acc >= lo).all() and (acc <= hi).all()
    vals = np.array(adt.values())
    for row in range(5):   # the extremes: each element at the value that minimises/maximises its term
        ws = w[row] << shift
        terms = (-np.abs(vals[:, None] - ws[None]) if mac == "adder" else vals[:, None] * ws[None])
        assert terms.min(axis=0).sum() == lo[row] and terms.max(axis=0).sum() == hi[row]


def test_op_for_finds_every_layer_of_an_example():
    from pathlib import Path

    from gen.load import load_network
    for path in sorted((Path(__file__).parents[1] / "quant_models" / "examples").glob("*.yaml")):
        net = load_network(path)
        assert all(op_for(layer) is OPS[layer.kind] for layer in net.layers)


@pytest.mark.parametrize("w,a,kind", [
    (DType.bipolar(), DType.bipolar(), "xnor"), (DType.bipolar(), DType.uint(1), "and"),
    (DType.bipolar(), DType.uint(4), "ternary"), (DType.ternary(), DType.bipolar(), "ternary"),
    (DType.onehot(3, signed=True), DType.onehot(2), "onehot"), (DType.int(4), DType.uint(8), "int"),
    (DType.int(4), DType.bipolar(), None), (DType.onehot(3), DType.int(4), None),
], ids=str)
def test_kind_for_is_the_cheapest_kind_that_takes_the_types(w, a, kind):
    assert kind_for(w, a) == kind
    if kind is not None:
        assert check_types(kind, w, a) is None
    for other in PREFERENCE[:PREFERENCE.index(kind) if kind else len(PREFERENCE)]:
        assert check_types(other, w, a) is not None


@pytest.mark.parametrize("kind", ["conv2d", "dwconv2d"])
def test_padding_not_smaller_than_the_kernel_is_one_line(kind):
    """The golden model computes it; the sliding window cannot build a window of padding alone:
    gen says so in one line naming the layer."""
    from gen.emit import build

    oc = 1 if kind == "dwconv2d" else 2
    doc = {"version": 1, "input": {"shape": [1, 5, 5], "encoding": "uint", "bits": 2},
           "layers": [{"type": kind, "mac": "int", "weights": {"key": "w", "encoding": "int", "bits": 2},
                       "kernel": 2, "padding": [1, 2]}]}
    net = network_from_dict(doc, arrays={"w": np.ones((oc, 1, 2, 2), dtype=np.int64)})
    golden.run(net, np.zeros((1, 1, 5, 5), dtype=np.int64))
    with pytest.raises(NetworkError, match=r"^layers\[0\]: cannot build its hardware: padding \(1, 2\) must "
                                           r"be smaller than the kernel \(2, 2\)$"):
        build(net)
