"""QONNX import of the constructs that Brevitas 0.13, QKeras and FINN exports contain beyond the
zoo models (issue 13): quantized biases, NaN constants, Softmax at the output, argmax with
per-channel scales, float preprocessing off the grid, float inputs, FINN input thresholds.

Every graph is built with onnx.helper in the exported form and checked against qonnx's
``execute_onnx`` on real (seeded random) inputs: integer outputs exactly, top-1 exactly."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="the QONNX importer needs the qonnx extra (pip install 'nomul[qonnx]')")
pytest.importorskip("onnxruntime", reason="the QONNX importer needs onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gen.errors import NetworkError  # noqa: E402
from gen.load import network_from_dict  # noqa: E402
from quant_models.qonnx_exec import run_qonnx  # noqa: E402
from quant_models.qonnx_import import import_qonnx  # noqa: E402
from sim import golden  # noqa: E402

Q = "qonnx.custom_op.general"


class Graph:
    """A QONNX graph in Brevitas' export form: Quant nodes with scale, zero_point and bit-width
    inputs and signed / narrow / rounding_mode attributes."""

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

    def quant(self, x, scale, bits, signed, narrow=False, rounding="ROUND", zp=0.0):
        return self.node("Quant", [x, self.const(scale), self.const(zp), self.const(float(bits))],
                         domain=Q, signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def model(self, in_shape, out, out_shape):
        g = helper.make_graph(self.nodes, "export",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                              initializer=self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)])


def _golden(doc, arrays, x):
    net = network_from_dict(doc, arrays=arrays)
    return net, golden.run(net, golden.quantize_input(net, x.reshape(len(x), *net.input.shape)))


def _float_out(doc, res):
    meta = doc["metadata"]["output"]
    return res.outputs * np.array(meta["scale"]) + np.array(meta["offset"])


def _qlinear(g, x, rng, n_in, n_out, *, wscale, bias=None, transb=True, act=None):
    """Brevitas QuantLinear: Gemm (TorchScript export) with a quantized weight and bias."""
    wf = rng.integers(-7, 8, size=(n_out, n_in)) * np.asarray(wscale).reshape(-1, 1)
    wq = g.quant(g.const(wf if transb else wf.T), np.asarray(wscale).reshape(-1, 1) if transb
                 else np.asarray(wscale).reshape(1, -1), 4, True)
    ins = [x, wq] + ([bias] if bias is not None else [])
    return g.node("Gemm", ins, transB=int(transb))


# -- 1. quantized biases --------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["gemm", "matmul_add", "conv"])
@pytest.mark.parametrize("bias_bits, per_channel", [(32, True), (16, False), (8, True)])
def test_quantized_bias_exact(form, bias_bits, per_channel):
    """A Quant node on the bias (Int32Bias: scale = input scale × weight scale; Int8/Int16 with
    their own scale): the thresholds of the next quantizer absorb it, and the integer outputs
    equal qonnx's on every input."""
    seed = 100 + bias_bits + per_channel
    print("seed", seed)
    rng = np.random.default_rng(seed)
    g = Graph()
    s_in = 1 / 16
    c = 6
    # scales exact in binary, so that the float32 graph itself computes the accumulator exactly
    wscale = rng.choice([0.125, 0.375, 0.0625, 0.75], size=c) if per_channel else np.full(c, 0.125)
    if bias_bits == 32:
        bscale = (s_in * wscale).astype(np.float32)   # on the accumulator's grid
    else:
        bscale = np.float32(0.01) if not per_channel else rng.uniform(0.005, 0.02, c).astype(np.float32)
    bfloat = rng.integers(-200, 200, size=c) * np.broadcast_to(bscale, (c,))
    bq = g.quant(g.const(bfloat), bscale, bias_bits, True)
    if form == "conv":
        xq = g.quant("x", s_in, 4, False)
        wf = rng.integers(-7, 8, size=(c, 2, 3, 3)) * wscale.reshape(-1, 1, 1, 1)
        wq = g.quant(g.const(wf), wscale.reshape(-1, 1, 1, 1), 4, True)
        acc = g.node("Conv", [xq, wq, bq], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        in_shape, x = [1, 2, 5, 5], rng.uniform(0, 1, size=(400, 2, 5, 5))
    else:
        xq = g.quant("x", s_in, 4, False)
        in_shape, x = [1, 12], rng.uniform(0, 1, size=(2000, 12))
        if form == "gemm":
            acc = _qlinear(g, xq, rng, 12, c, wscale=wscale, bias=bq)
        else:  # the dynamo export: MatMul by the transposed quantized weight, then Add
            wf = rng.integers(-7, 8, size=(c, 12)) * wscale.reshape(-1, 1)
            wq = g.quant(g.const(wf), wscale.reshape(-1, 1), 4, True)
            acc = g.node("Add", [g.node("MatMul", [xq, g.node("Transpose", [wq], perm=[1, 0])]), bq])
    out = g.quant(g.node("Relu", [acc]), 0.25, 3, False)
    model = g.model(in_shape, out, None)
    x = x.astype(np.float32)
    doc, arrays = import_qonnx(model)
    net, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x)
    np.testing.assert_array_equal(res.outputs * 0.25, ref.reshape(res.outputs.shape))
    assert doc["layers"][0]["activation"]["type"] == "multithreshold"


@pytest.mark.parametrize("on_grid", [True, False])
def test_quantized_bias_on_the_output_layer(on_grid):
    """On the last layer (no quantizer after it), an Int32 bias on the accumulator's grid
    becomes the layer's integer bias; an Int8 bias with its own scale stays a float offset."""
    seed = 7 + on_grid
    print("seed", seed)
    rng = np.random.default_rng(seed)
    g = Graph()
    s_in, wscale = 1 / 8, np.float32(0.125)
    xq = g.quant("x", s_in, 4, True)
    bscale = np.float32(s_in * wscale) if on_grid else np.float32(0.013)
    bq = g.quant(g.const(rng.integers(-100, 100, size=5) * bscale), bscale, 32 if on_grid else 8, True)
    out = _qlinear(g, xq, rng, 10, 5, wscale=np.full(5, wscale), bias=bq)
    model = g.model([1, 10], out, [1, 5])
    x = rng.uniform(-1, 1, size=(1000, 10)).astype(np.float32)
    doc, arrays = import_qonnx(model)
    _, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x)
    np.testing.assert_allclose(_float_out(doc, res), ref, rtol=0, atol=1e-5)
    assert ("bias" in doc["layers"][0]) == on_grid
    if on_grid:  # integer outputs exactly: acc + bias = float / (s_in * s_w)
        np.testing.assert_array_equal(res.outputs, np.round(ref / (s_in * wscale)).astype(np.int64))


# -- 2. NaN / Inf and errors never a traceback ------------------------------------------------------
@pytest.mark.parametrize("where, bad", [("weights", np.nan), ("scale", np.inf), ("bn", np.nan)])
def test_nan_constants_name_the_node(where, bad):
    g = Graph()
    xq = g.quant("x", 1.0, 4, True)
    w = np.ones((4, 3), dtype=np.float32)
    scale = np.float32(1.0)
    if where == "weights":
        w[1, 2] = bad
    elif where == "scale":
        scale = np.float32(bad)
    h = g.node("MatMul", [xq, g.quant(g.const(w), scale, 2, True, narrow=True)])
    if where == "bn":
        h = g.node("Mul", [h, g.const(np.array([1.0, bad, 2.0]))])
    out = g.quant(h, 1.0, 2, False)
    # every float initializer is checked first (naming it); a non-finite value computed from
    # finite ones would be caught at its node (nodes[i] (Op_k): ... NaN or infinite)
    with pytest.raises(NetworkError, match=r"^(initializers\[\d+\] \([^)]+\): holds (nan|inf) at index \d+: "
                                           r"values must be finite|nodes\[\d+\] \((Quant|Mul)_\d+\): "
                                           r"unsupported op (Quant|Mul): (input '[^']+' has (NaN|infinite) "
                                           r"values|NaN or infinite))"):
        import_qonnx(g.model([1, 4], out, [1, 3]))


# -- 3. Softmax at the output ----------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_at_the_output_is_dropped(op):
    rng = np.random.default_rng(3)
    print("seed", 3)
    g = Graph()
    xq = g.quant("x", 0.25, 4, False)
    logits = _qlinear(g, xq, rng, 8, 4, wscale=np.full(4, 0.5))
    out = g.node(op, [logits], axis=1)
    model = g.model([1, 8], out, [1, 4])
    x = rng.uniform(0, 4, size=(500, 8)).astype(np.float32)
    doc, arrays = import_qonnx(model, argmax=True)
    assert doc["metadata"]["output"]["dropped"] == [op]
    net, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x)
    np.testing.assert_array_equal(res.top1, np.argmax(ref, axis=1))


def test_softmax_inside_the_graph_is_refused():
    g = Graph()
    xq = g.quant("x", 1.0, 4, True)
    w = g.quant(g.const(np.ones((4, 3))), 1.0, 2, True, narrow=True)
    h = g.node("Softmax", [g.node("MatMul", [xq, w])], axis=1)
    out = g.quant(h, 0.5, 2, False)
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Softmax_0\): unsupported op Softmax: "
                                           r"only at the output"):
        import_qonnx(g.model([1, 4], out, [1, 3]))


# -- 4. argmax over float logits with per-channel scales and biases -------------------------------
@pytest.mark.parametrize("kind", ["pow2", "float", "negative", "wide"])
def test_argmax_with_per_channel_scales_is_the_float_argmax(kind):
    """--argmax on a last layer with per-channel weight scales and an Int32 bias: the integer
    top-1 is the argmax of qonnx's float logits on every input (a common-grid requant when
    the scales allow it, else the rank of the logit as thresholds)."""
    seed = {"pow2": 1, "float": 2, "negative": 3, "wide": 4}[kind]
    print("seed", seed)
    rng = np.random.default_rng(seed)
    g = Graph()
    s_in = 0.5
    xq = g.quant("x", s_in, 5 if kind == "wide" else 2, False)  # wide: logits beyond 32 bits
    c = 10
    if kind == "pow2":
        wscale = 2.0 ** rng.integers(-4, 0, size=c)
    else:
        wscale = rng.uniform(0.01, 0.05, size=c).astype(np.float32)
    bscale = (s_in * wscale).astype(np.float32)
    bq = g.quant(g.const(rng.integers(-20, 20, size=c) * bscale), bscale, 32, True)
    wf = rng.integers(-1, 2, size=(c, 32)) * wscale.reshape(-1, 1)
    wq = g.quant(g.const(wf), wscale.reshape(-1, 1), 2, True, narrow=True)
    out = g.node("Gemm", [xq, wq, bq], transB=1)
    if kind == "negative":
        out = g.node("Mul", [out, g.const(rng.choice([-1.0, 1.0], size=(1, c)))])
    model = g.model([1, 32], out, [1, c])
    x = rng.uniform(0, 16 if kind == "wide" else 2, size=(3000, 32)).astype(np.float32)
    doc, arrays = import_qonnx(model, argmax=True)
    net, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x)
    np.testing.assert_array_equal(res.top1, np.argmax(ref, axis=1))
    how = doc["metadata"]["output"]["argmax"]
    assert how.startswith("thresholds" if kind == "wide" else "requant")


@pytest.mark.parametrize("wide", [False, True])
def test_argmax_float_bias_off_the_grid(wide):
    """A float bias (Brevitas' default: no bias quantizer) off the accumulator's grid: the rank
    of the logit (thresholds) when the logits take few values, else a precise refusal."""
    rng = np.random.default_rng(81)
    print("seed", 81)
    g = Graph()
    xq = g.quant("x", 1.0, 8 if wide else 2, False)
    c = 4
    wscale = np.array([1.0, 0.5, 0.25, 0.75])
    wq = g.quant(g.const(rng.integers(-7, 8, size=(c, 64)) * wscale[:, None]), wscale[:, None], 4, True)
    out = g.node("Gemm", [xq, wq, g.const(np.array([0.31, 0.1, -0.77, 0.05]))], transB=1)
    model = g.model([1, 64], out, [1, c])
    if wide:
        with pytest.raises(NetworkError, match=r"^output \(.*\): cannot add an argmax: a float "
                                               r"offset is not a whole number of accumulator steps "
                                               r"\(a bias off the accumulator's grid\) and the logits "
                                               r"take \d+ values \(more than 65536 thresholds\)$"):
            import_qonnx(model, argmax=True)
        return
    doc, arrays = import_qonnx(model, argmax=True)
    assert doc["metadata"]["output"]["argmax"].startswith("thresholds")
    x = rng.uniform(0, 3, size=(3000, 64)).astype(np.float32)
    net, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(res.top1, np.argmax(run_qonnx(model, x), axis=1))


# -- 5. float preprocessing off the grid -----------------------------------------------------------
def _mlp_after(g, xq, rng, n_in):
    wq = g.quant(g.const(rng.integers(-3, 4, size=(n_in, 4)) * 0.25), 0.25, 3, True)
    return g.quant(g.node("MatMul", [xq, wq]), 0.5, 4, True)


@pytest.mark.parametrize("pre", ["normalize", "2x-1", "3x+0.1"])
def test_float_preprocessing_off_the_grid(pre):
    """(x - mean) / std, 2x - 1 with a scale that does not divide 1, ... before the input Quant:
    the input quantizer gets a float offset; on every pixel value p / 255 the integer inputs
    are qonnx's, and so are the outputs."""
    seed = {"normalize": 21, "2x-1": 22, "3x+0.1": 23}[pre]
    print("seed", seed)
    rng = np.random.default_rng(seed)
    g = Graph()
    if pre == "normalize":
        y = g.node("Div", [g.node("Sub", ["x", g.const(0.1307)]), g.const(0.3081)])
        s = 0.0234375  # dyadic scales: the float32 graph's matrix product is then exact
    elif pre == "2x-1":
        y = g.node("Sub", [g.node("Mul", ["x", g.const(2.0)]), g.const(1.0)])
        s = 0.375
    else:
        y = g.node("Add", [g.node("Mul", ["x", g.const(3.0)]), g.const(0.1)])
        s = 1 / 16
    xq = g.quant(y, s, 8, True)
    model_in = g.model([1, 16], xq, [1, 16])
    out = _mlp_after(g, xq, rng, 16)
    model = g.model([1, 16], out, [1, 4])
    pix = np.concatenate([np.arange(256).repeat(16).reshape(256, 16),
                          rng.integers(0, 256, size=(500, 16))])
    x = (pix / 255).astype(np.float32)
    doc, arrays = import_qonnx(model)
    assert doc["input"]["quantizer"]["offset"] != 0
    net, res = _golden(doc, arrays, x)
    q_ref = run_qonnx(model_in, x) / s
    np.testing.assert_array_equal(golden.quantize_input(net, x), np.round(q_ref).astype(np.int64))
    np.testing.assert_array_equal(res.outputs * 0.5, run_qonnx(model, x))


# -- 7. FINN's input MultiThreshold -----------------------------------------------------------------
@pytest.mark.parametrize("n, out_dtype, bipolar", [(255, "UINT8", False), (15, "UINT4", False),
                                                   (1, "BINARY", False), (1, "", True)])
def test_finn_input_multithreshold(n, out_dtype, bipolar):
    """FINN turns an input quantizer into a MultiThreshold with uniform thresholds (one, for a
    binary input; out_scale 2, out_bias -1 for a streamlined BNN's ±1 input): it becomes an
    affine input quantizer; the outputs equal qonnx's."""
    rng = np.random.default_rng(n)
    print("seed", n)
    g = Graph()
    t = (np.arange(n) + 0.5) * (255 / (n + 1)) if n > 1 else np.array([127.5])
    extra = {"out_scale": 2.0, "out_bias": -1.0} if bipolar else {}
    h = g.node("MultiThreshold", ["x", g.const(t.reshape(1, -1))], domain=Q, out_dtype=out_dtype,
               **extra)
    out = _mlp_after(g, h, rng, 12)
    model = g.model([1, 12], out, [1, 4])
    x = np.concatenate([np.arange(256).repeat(12).reshape(256, 12),
                        rng.uniform(0, 255, size=(300, 12))]).astype(np.float32)
    doc, arrays = import_qonnx(model)
    assert doc["input"]["quantizer"]["rounding"] == "floor"
    net, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(res.outputs * 0.5, run_qonnx(model, x))


def test_finn_input_multithreshold_uneven():
    """Uneven input thresholds become a multi-threshold input quantizer, exact on every float32
    input (its thresholds are the graph's step points, found by a search over the floats)."""
    rng = np.random.default_rng(61)
    print("seed", 61)
    g = Graph()
    t = np.array([[0.0, 1.0, 5.0, 5.5, 9.0, 20.0, 21.0]], dtype=np.float32)
    h = g.node("MultiThreshold", ["x", g.const(t)], domain=Q, out_dtype="UINT3")
    model = g.model([1, 6], _mlp_after(g, h, rng, 6), [1, 4])
    x = np.concatenate([np.repeat(t.reshape(-1, 1), 6, axis=1),
                        np.nextafter(np.repeat(t.reshape(-1, 1), 6, axis=1), -np.inf),
                        rng.uniform(-2, 25, size=(300, 6))]).astype(np.float32)
    doc, arrays = import_qonnx(model)
    assert doc["input"]["quantizer"] == {"thresholds": t.ravel().tolist()}
    net, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(res.outputs * 0.5, run_qonnx(model, x))
    g = Graph()  # after float ops: the thresholds are the graph's float32 step points
    h = g.node("MultiThreshold", [g.node("Add", [g.node("Mul", ["x", g.const(0.3)]), g.const(0.7)]),
                                  g.const(t)], domain=Q, out_dtype="UINT3")
    model = g.model([1, 6], _mlp_after(g, h, rng, 6), [1, 4])
    doc, arrays = import_qonnx(model)
    x = rng.uniform(-5, 80, size=(2000, 6)).astype(np.float32)
    net, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(res.outputs * 0.5, run_qonnx(model, x))
    assert "input_float32_steps" not in doc["metadata"]


# -- 7. FINN's folding JSON ------------------------------------------------------------------------
FINN_EX = Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.mark.skipif(not (FINN_EX / "finn" / "tfc_w1a1.onnx").is_file(),
                    reason="../shared/models is absent (only CI and the dev machines have it)")
def test_finn_folding_json_maps_onto_the_layers(tmp_path):
    from gen.plan import load_fold_file, plan_network

    doc, arrays = import_qonnx(FINN_EX / "finn" / "tfc_w1a1.onnx")
    net = network_from_dict(doc, arrays=arrays)
    fold = load_fold_file(FINN_EX / "finn-examples" / "tfc-w1a1_folding_config.json")
    plan = plan_network(net, fold=fold)
    got = [(lp.pe, lp.simd) for lp in plan.layers if lp.pe]
    assert got == [(16, 49), (8, 8), (8, 8), (10, 8)]
    bad = tmp_path / "f.json"
    bad.write_text('{"Defaults": {}, "MVAU_hls_0": {"PE": 16}, "StreamingMaxPool_hls_0": {"PE": 1}}')
    with pytest.raises(NetworkError, match=r"^fold\.StreamingMaxPool_hls_0: no nomul layer to map to: "
                                           r"the network has no maxpool2d layer"):
        plan_network(net, fold=load_fold_file(bad))
    bad.write_text('{"Defaults": {}, "MVAU_hls_0": {"PE": 16}, "Pool_hls_0": {"PE": 1}}')
    with pytest.raises(NetworkError, match=r"^fold\.Pool_hls_0: a FINN Pool layer does not map"):
        plan_network(net, fold=load_fold_file(bad))


# -- 6. a first layer on float inputs (QKeras / hls4ml) ---------------------------------------------
def _float_first_layer(rng, with_pre=False):
    g = Graph()
    x = g.node("Mul", ["x", g.const(2.0)]) if with_pre else "x"
    wq = g.quant(g.const(rng.integers(-7, 8, size=(16, 5)) * 0.125), 0.125, 4, True)
    h = g.quant(g.node("Relu", [g.node("MatMul", [x, wq])]), 0.25, 4, False)
    w2 = g.quant(g.const(rng.integers(-3, 4, size=(5, 3)) * 0.5), 0.5, 3, True)
    return g.model([1, 16], g.node("MatMul", [h, w2]), [1, 3])


@pytest.mark.parametrize("input_type", ["fixed<8,3>", "int8:0.0625", None])
def test_float_input_into_a_layer(input_type):
    """QKeras/hls4ml: the weights are quantized, the input is not. With an input type on the
    input's own grid the network is exact; calibrated, its agreement is reported."""
    rng = np.random.default_rng(31)
    print("seed", 31)
    model = _float_first_layer(rng, with_pre=input_type is None)
    x = (rng.integers(-60, 60, size=(800, 16)) / 16).astype(np.float32)  # on fixed<8,3>'s grid
    doc, arrays = import_qonnx(model, input_type=input_type, calib=x)
    fi = doc["metadata"]["float_input"]
    assert fi["exact"] is False and fi["agreement"]["inputs"] == 800
    net, res = _golden(doc, arrays, x)
    ref = run_qonnx(model, x)
    if input_type is not None:  # the inputs are values of the type: exact
        np.testing.assert_array_equal(_float_out(doc, res), ref)
        assert fi["agreement"]["equal_outputs"] == 1.0 and fi["agreement"]["top1"] == 1.0
    else:  # calibrated int8 over 2x: close, not exact
        assert fi["agreement"]["top1"] > 0.9


def test_float_input_errors():
    model = _float_first_layer(np.random.default_rng(0))
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(MatMul_0\): unsupported op MatMul on "
                                           r"the float input: it needs a quantizer .* or an input "
                                           r"type \(--input-type, --calib\)$"):
        import_qonnx(model)
    with pytest.raises(NetworkError, match=r"^--input-type: expected fixed<W,I>, ufixed<W,I>, "
                                           r"intN\[:scale\] or uintN\[:scale\], not float8$"):
        import_qonnx(model, input_type="float8")
    with pytest.raises(NetworkError, match=r"^--input-type: int8 has no scale: give one"):
        import_qonnx(model, input_type="int8")


# -- 8. DepthToSpace (ESPCN's sub-pixel convolution) -------------------------------------------------
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_at_the_output(mode):
    """Conv → DepthToSpace → Relu → Quant: the layer keeps its channels, the host applies the
    shuffle (metadata.output.depth_to_space); the outputs equal qonnx's."""
    from quant_models.qonnx_import import depth_to_space

    rng = np.random.default_rng(41)
    print("seed", 41)
    g = Graph()
    xq = g.quant("x", 0.25, 4, False)
    wq = g.quant(g.const(rng.integers(-7, 8, size=(8, 1, 3, 3)) * 0.125), 0.125, 4, True)
    h = g.node("DepthToSpace", [g.node("Conv", [xq, wq], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
               blocksize=2, mode=mode)
    out = g.quant(g.node("Relu", [h]), 0.5, 3, False)
    model = g.model([1, 1, 5, 5], out, [1, 2, 10, 10])
    x = rng.uniform(0, 4, size=(100, 1, 5, 5)).astype(np.float32)
    doc, arrays = import_qonnx(model)
    assert doc["metadata"]["output"]["depth_to_space"] == {"blocksize": 2, "mode": mode}
    net, res = _golden(doc, arrays, x)
    np.testing.assert_array_equal(depth_to_space(res.outputs * 0.5, 2, mode), run_qonnx(model, x))


@pytest.mark.skipif(not (FINN_EX / "qonnx-espcn" / "quant_model.onnx").is_file(),
                    reason="../shared/models is absent (only CI and the dev machines have it)")
def test_espcn_imports_with_an_input_type():
    """The QONNX ESPCN: a float image into the first Conv (--input-type uint8 with scale 1/255,
    the grid of its pixels), DepthToSpace at the end. Every output level equals qonnx's but a
    handful that float32 rounding of the last Conv's arbitrary scales moves by one level."""
    from onnx import load_tensor

    from quant_models.qonnx_import import _host_output

    x = numpy_helper.to_array(load_tensor(str(FINN_EX / "qonnx-espcn" / "input_0.pb")))
    model = FINN_EX / "qonnx-espcn" / "quant_model.onnx"
    doc, arrays = import_qonnx(model, input_type=f"uint8:{1 / 255!r}", calib=x)
    ag = doc["metadata"]["float_input"]["agreement"]
    assert ag["equal_outputs"] > 0.9999 and ag["max_abs_error"] < 0.004  # at most one level (1/255)
    assert [ly["type"] for ly in doc["layers"]] == ["conv2d"] * 4
    _, res = _golden(doc, arrays, x)
    assert _host_output(doc, res.outputs).shape == (1, 3, 256, 256)


# -- 4. accuracy from the float outputs -------------------------------------------------------------
def test_golden_prints_accuracy_from_float_outputs(tmp_path, capsys):
    """A network without an argmax whose metadata has float outputs: golden --labels prints
    the top-1 accuracy of argmax(outputs × scale + offset)."""
    from gen.cli import main
    from quant_models.qonnx_import import import_to_file

    rng = np.random.default_rng(51)
    print("seed", 51)
    g = Graph()
    xq = g.quant("x", 0.5, 2, False)
    c = 4
    wscale = np.array([0.5, 0.25, 0.125, 1.0])
    wq = g.quant(g.const(rng.integers(-1, 2, size=(c, 8)) * wscale[:, None]), wscale[:, None], 2,
                 True, narrow=True)
    out = g.node("Gemm", [xq, wq, g.const(np.array([0.0131, -0.0271, 0.0057, 0.0313]))], transB=1)
    model = g.model([1, 8], out, [1, c])
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    x = rng.uniform(0, 2, size=(200, 8)).astype(np.float32)
    ref = np.argmax(run_qonnx(model, x), axis=1)
    labels = ref.copy()
    labels[:50] = (labels[:50] + 1) % c   # 150 of 200 right
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    import_to_file(tmp_path / "m.onnx", tmp_path / "n.yaml")
    capsys.readouterr()
    assert main(["golden", str(tmp_path / "n.yaml"), "--input", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "y.npy")]) == 0
    assert "top-1 accuracy (from the float outputs): 75.00% (150/200)" in capsys.readouterr().out


# -- 2. an internal failure is one line too ----------------------------------------------------------
def test_unexpected_failure_names_the_node(monkeypatch):
    from quant_models import qonnx_import

    def broken(self, i, node, where):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(qonnx_import._Importer, "_op_Relu", broken)
    model = _float_first_layer(np.random.default_rng(0))
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Relu_0\): unsupported op Relu: cannot "
                                           r"import it \(ZeroDivisionError: float division by zero\)$"):
        import_qonnx(model, input_type="int8:0.0625")


def test_cli_import_with_calibration_prints_the_agreement(tmp_path, capsys):
    from gen.cli import main

    rng = np.random.default_rng(71)
    print("seed", 71)
    (tmp_path / "m.onnx").write_bytes(_float_first_layer(rng).SerializeToString())
    np.save(tmp_path / "x.npy", (rng.integers(-60, 60, size=(100, 16)) / 16).astype(np.float32))
    capsys.readouterr()
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.yaml"),
                 "--input-type", "fixed<8,3>", "--calib", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert "float input as int8 scale 0.03125 (not exact: quantized here, not in the model); " \
           "agreement with the float model on 100 calibration inputs: top1 100.000%, equal " \
           "outputs 100.000%" in out


@pytest.mark.parametrize("pre", ["normalize", "tfc"])
def test_exact_input_on_every_float32_step(pre):
    """--exact-input: where float64 (x + offset) / scale and the graph's float32 rounding differ
    at a step, the input quantizer becomes the graph's own step points: exact at every step,
    just below it, and on random floats."""
    print("seed", 91)

    def build():
        rng = np.random.default_rng(91)
        g = Graph()
        if pre == "normalize":
            xq = g.quant(g.node("Div", [g.node("Sub", ["x", g.const(0.1307)]), g.const(0.3081)]),
                         0.0234375, 8, True)
        else:  # TFC_1W2A's input: Quant(2x - 1), scale 1, 2 bits narrow
            xq = g.quant(g.node("Sub", [g.node("Mul", ["x", g.const(2.0)]), g.const(1.0)]), 1.0, 2,
                         True, narrow=True)
        model_in = g.model([1, 16], xq, [1, 16])
        return model_in, g.model([1, 16], _mlp_after(g, xq, rng, 16), [1, 4])

    model_in, model = build()
    doc, arrays = import_qonnx(model)
    assert doc["metadata"]["input_float32_steps"]["differ_within_float32_rounding"] > 0
    doc, arrays = import_qonnx(build()[1], exact_input=True)
    rng = np.random.default_rng(92)
    t = np.asarray(doc["input"]["quantizer"]["thresholds"], dtype=np.float32)
    assert "input_float32_steps" not in doc["metadata"]
    x = np.concatenate([t, np.nextafter(t, np.float32(-np.inf)), rng.uniform(-1, 2, 4000)])
    x = np.resize(x, (len(x) // 16 + 1) * 16).reshape(-1, 16).astype(np.float32)
    net = network_from_dict(doc, arrays=arrays)
    s = 0.0234375 if pre == "normalize" else 1.0
    np.testing.assert_array_equal(golden.quantize_input(net, x),
                                  np.round(run_qonnx(model_in, x) / s).astype(np.int64))


def test_finn_lowered_convolution_is_refused_with_the_reason():
    g = Graph()
    xq = g.quant("x", 1.0, 4, False)
    h = g.node("Transpose", [xq], perm=[0, 2, 3, 1])
    cols = g.node("Im2Col", [h], domain=Q, stride=[1, 1], kernel_size=[3, 3], input_shape="(1, 5, 5, 1)",
                  pad_amount=[0, 0, 0, 0])
    out = g.node("MatMul", [cols, g.quant(g.const(np.ones((9, 2))), 1.0, 2, True, narrow=True)])
    with pytest.raises(NetworkError, match=r"^nodes\[\d+\] \(Transpose_0\): unsupported op Transpose "
                                           r"of activations \(FINN's NHWC layout"):
        import_qonnx(g.model([1, 1, 5, 5], out, None))
