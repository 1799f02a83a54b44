"""The graph trainer (quant_models/train_graph.py): its backward pass is the gradient of its
forward pass (fan-out, add, global sum, depthwise conv), its export is exact (the float model's
tensors are the golden model's integers), and the bundled residual and depthwise-separable
examples have the topology they claim."""

from __future__ import annotations

import numpy as np
import pytest

from gen.load import load_network, network_from_dict
from quant_models import train as T
from quant_models import train_graph as G
from quant_models.examples import make_examples as M
from sim import golden

GRAPH_EXAMPLES = ["digits_resnet_bnn", "digits_resnet_adder", "digits_mobilenet"]


class _Float:
    """No quantization: the latent weights themselves (for a gradient check)."""

    clip = None
    symmetric = True

    def quantize(self, w):
        return w

    def grad(self, w, dq):
        return dq


def _tiny(rng):
    """stem conv -> (dw conv -> conv) + stem -> global sum -> dense: fan-out, add, depthwise."""
    f = _Float()
    return G.GraphModel([
        G.Node("stem", [T.Conv2d(2, 3, f, rng, padding=1)]),
        G.Node("dw", [G.DwConv2d(3, f, rng, padding=1, stride=1)]),
        G.Node("pw", [T.Conv2d(3, 3, f, rng, kernel=1)]),
        G.Node("add", [], ("pw", "stem"), G.AddJoin((1, 2))),
        G.Node("gap", [G.GlobalSum()]),
        G.Node("fc", [T.Flatten(), T.Dense(3, 4, f, rng)]),
    ])


@pytest.mark.parametrize("seed", [0, 1])
def test_backward_is_the_gradient(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    model = _tiny(rng)
    x = rng.normal(size=(3, 2, 5, 5))
    c = rng.normal(size=(3, 4))

    def loss():
        return float((model.forward(x, train=True) * c).sum())

    loss()
    model.backward(c)
    params = model.params()
    assert len(params) == 4 and all(p.grad is not None for p in params)
    eps = 1e-6
    for p in params:
        want = np.empty_like(p.value)
        for i in np.ndindex(p.value.shape):
            old = p.value[i]
            p.value[i] = old + eps
            up = loss()
            p.value[i] = old - eps
            down = loss()
            p.value[i] = old
            want[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(p.grad, want, rtol=1e-5, atol=1e-7)  # float gradients


def test_graph_model_checks_its_nodes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^Node 'b' reads 'nope', which no earlier node makes$"):
        G.GraphModel([G.Node("a", [G.GlobalSum()]), G.Node("b", [G.GlobalSum()], ("nope",))])
    with pytest.raises(ValueError, match=r"^Node name 'a' is used twice$"):
        G.GraphModel([G.Node("a", [G.GlobalSum()]), G.Node("a", [G.GlobalSum()])])
    with pytest.raises(ValueError, match=r"^Node 'j': a join needs two inputs, other nodes one$"):
        G.GraphModel([G.Node("a", [T.Conv2d(1, 1, T.BinaryWeights(), rng)]),
                      G.Node("j", [], ("a",), G.AddJoin())])


def _node_tensors(model, x):
    return model.tensors(x, False)


@pytest.mark.parametrize("name", GRAPH_EXAMPLES)
def test_export_is_exact(name):
    """After one short epoch, every node's float tensor equals the golden model's integers."""
    ex = M.BY_NAME[name]
    xtr, ytr, xte, _ = T.load_digits_split(seed=M.SPLIT_SEED)
    model = ex.build(np.random.default_rng(3))
    T.fit(model, xtr[:128], ytr[:128], epochs=1, seed=3, lr=ex.lr)
    G.recalibrate(model, xtr[:256])
    doc, arrays = G.export(model, input_spec=M.DIGITS_CNV_INPUT)
    net = network_from_dict(doc, arrays=arrays)
    x = xte[:60]
    vals = _node_tensors(model, x)
    res = golden.run(net, x.reshape(len(x), *net.input.shape))
    names = [node.name for node in model.nodes]
    assert [layer.name for layer in net.layers] == names + ["class"]
    for node_name, r in zip(names[:-1], res.layers, strict=False):
        np.testing.assert_array_equal(vals[node_name].reshape(r.out.shape), r.out,
                                      err_msg=f"{name}: {node_name}")
    np.testing.assert_array_equal(np.argmax(vals[names[-1]], axis=1), res.top1)


def test_resnet_topology():
    for name, mac in (("digits_resnet_bnn", "xnor"), ("digits_resnet_adder", "adder")):
        net = load_network(M.HERE / f"{name}.yaml")
        kinds = [layer.kind for layer in net.layers]
        assert kinds == ["conv2d", "maxpool2d"] + ["conv2d", "conv2d", "add"] * 2 + \
            ["globalavgpool", "dense", "argmax"]
        adds = [layer for layer in net.layers if layer.kind == "add"]
        assert [a.inputs for a in adds] == [("b1c2", "pool"), ("b2c2", "b1add")]
        convs = [layer.mac for layer in net.layers if layer.kind == "conv2d"]
        assert convs[1:] == [mac] * 4
    bnn = load_network(M.HERE / "digits_resnet_bnn.yaml")
    assert [str(layer.in_dtype) for layer in bnn.layers if layer.kind == "conv2d"][1:] == \
        ["bipolar"] * 4


def test_mobilenet_topology():
    net = load_network(M.HERE / "digits_mobilenet.yaml")
    assert [layer.kind for layer in net.layers] == \
        ["conv2d", "dwconv2d", "conv2d", "dwconv2d", "conv2d", "globalavgpool", "dense", "argmax"]
    pw = [layer for layer in net.layers if layer.kind == "conv2d"][1:]
    assert [layer.kernel for layer in pw] == [(1, 1), (1, 1)]
    assert [layer.stride for layer in net.layers if layer.kind == "dwconv2d"] == [(1, 1), (2, 2)]


def test_graph_export_is_deterministic(tmp_path):
    """Two trainings from the same seed write byte-identical files (a short one: 128 images)."""
    from gen.netfile import write_network

    xtr, ytr, _, _ = T.load_digits_split(seed=M.SPLIT_SEED)
    for out in ("a", "b"):
        model = M.BY_NAME["digits_mobilenet"].build(np.random.default_rng(5))
        T.fit(model, xtr[:128], ytr[:128], epochs=1, seed=5)
        G.recalibrate(model, xtr[:128])
        doc, arrays = G.export(model, input_spec=M.DIGITS_CNV_INPUT)
        (tmp_path / out).mkdir()
        write_network(tmp_path / out / "net.yaml", doc, arrays)
    for suffix in (".yaml", ".npz"):
        assert (tmp_path / "a" / f"net{suffix}").read_bytes() == \
            (tmp_path / "b" / f"net{suffix}").read_bytes()
