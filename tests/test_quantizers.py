"""The quantizers of quant_models/quantizers.py: exact where the math is exact, better than the
naive baseline where the papers say so, and loadable as network files."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gen.errors import NetworkError
from gen.load import network_from_dict
from hw.dtypes import DType
from quant_models import quantizers as qz
from quant_models.quant_net import METHODS, model_from_arrays, quantize_model
from sim import golden

SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rng(seed):
    print(f"seed={seed}")
    return np.random.default_rng(seed)


def _uint_input(rng, n, k, bits=4):
    hi = (1 << bits) - 1
    return qz.LayerInput({"encoding": "uint", "bits": bits}, 0, hi, np.zeros(k),
                         rng.uniform(0.01, 0.2, k), rng.integers(0, hi + 1, size=(n, k)))


def _bipolar_input(rng, n, k):
    return qz.LayerInput({"encoding": "bipolar"}, -1, 1, rng.uniform(0, 1, k), rng.uniform(0.1, 1, k),
                         rng.choice([-1, 1], size=(n, k)))


def _one_layer_net(inp: qz.LayerInput, ql: qz.QuantLayer, shape):
    doc = {"version": 1, "input": {"shape": list(shape), **inp.type}, "layers": [ql.layer]}
    return network_from_dict(doc, arrays=ql.arrays)


def _random_bn(rng, c, allow_zero=True):
    gamma = rng.normal(0, 1.5, c)
    if allow_zero:
        gamma[rng.random(c) < 0.15] = 0.0
    var = rng.uniform(0, 3, c)
    return qz.BatchNorm(gamma, rng.normal(0, 1, c), rng.normal(0, 2, c), var + 1e-3,
                        float(rng.choice([1e-5, 1e-3, 0.0])))


def _check_exhaustive(ql: qz.QuantLayer, reference):
    """Every integer accumulator value of every channel: thresholds == float reference."""
    lo, hi = ql.extra["acc_lo"], ql.extra["acc_hi"]
    t = ql.arrays[ql.layer["activation"]["thresholds"]]
    levels = np.asarray(ql.extra["grid"].levels)
    alpha = ql.extra["alpha"]
    for c in range(t.shape[0]):
        acc = np.arange(lo[c], hi[c] + 1)
        got = levels[(acc[:, None] >= t[c][None, :]).sum(axis=1)]
        np.testing.assert_array_equal(got, reference(c, acc, alpha[c]), err_msg=f"channel {c}")


# -- binarize ------------------------------------------------------------------------------------
def test_binarize_weights_scale_is_least_squares():
    rng = _rng(1)
    w = rng.normal(size=(5, 40))
    b, alpha = qz.binarize_weights(w)
    assert set(np.unique(b)) <= {-1, 1}
    err = ((w - alpha[:, None] * b) ** 2).sum(axis=1)
    for f in (0.9, 1.1):
        assert (err < ((w - f * alpha[:, None] * b) ** 2).sum(axis=1)).all()


@FAST
@given(seed=SEEDS)
def test_bn_sign_folds_into_thresholds_exactly(seed):
    """BNN: sign(BN(α·acc + b)) == multi-threshold output for every accumulator value."""
    rng = _rng(seed)
    k, c = int(rng.integers(3, 40)), int(rng.integers(1, 12))
    inp = _bipolar_input(rng, 50, k)
    w = rng.normal(size=(c, k))
    bias = rng.normal(0, 2, c)
    bn = _random_bn(rng, c)
    wf, bf = qz.fold_input(w, bias, inp, inp.calib.shape)
    ql = qz.binarize_layer("l", w, bias, bn, inp, bits=1)
    assert ql.layer["mac"] == "xnor" and ql.layer["activation"]["bipolar"]
    # negating a channel keeps α·q: the float layer is unchanged
    q = ql.arrays["l_w"]
    _, a0 = qz.binarize_weights(wf)
    np.testing.assert_allclose(ql.extra["alpha"][:, None] * q, a0[:, None] * np.where(wf >= 0, 1, -1))

    def reference(ch, acc, alpha):
        z = alpha * acc + bf[ch]
        y = bn.gamma[ch] * (z - bn.mean[ch]) / np.sqrt(bn.var[ch] + bn.eps) + bn.beta[ch]
        return np.where(y >= 0, 1, -1)
    _check_exhaustive(ql, reference)
    net = _one_layer_net(inp, ql, [k])
    np.testing.assert_array_equal(golden.run(net, inp.calib).outputs, ql.outputs)


@FAST
@given(seed=SEEDS, bits=st.integers(2, 4))
def test_bn_relu_multilevel_folds_into_thresholds_exactly(seed, bits):
    """Binary weights, multi-bit ReLU outputs: level == #{k : y >= (k − ½)·s} for every acc."""
    rng = _rng(seed)
    k, c = int(rng.integers(3, 24)), int(rng.integers(1, 8))
    inp = _uint_input(rng, 60, k)
    bn = _random_bn(rng, c)
    bias = rng.normal(0, 1, c)
    wf, bf = qz.fold_input(rng.normal(size=(c, k)), bias, inp, inp.calib.shape)
    ql = qz.binarize_layer("l", wf, bias, bn, qz.LayerInput(inp.type, inp.lo, inp.hi, np.zeros(k),
                                                            np.ones(k), inp.calib), bits=bits)
    assert ql.layer["mac"] == "ternary"
    grid = ql.extra["grid"]
    n = (1 << bits) - 1

    def reference(ch, acc, alpha):
        z = alpha * acc + bias[ch]
        y = bn.gamma[ch] * (z - bn.mean[ch]) / np.sqrt(bn.var[ch] + bn.eps) + bn.beta[ch]
        s = grid.scale[ch]
        if s == 0:
            return np.zeros(acc.shape, dtype=np.int64)
        return (y[:, None] >= (np.arange(1, n + 1) - 0.5)[None, :] * s).sum(axis=1)
    _check_exhaustive(ql, reference)
    net = _one_layer_net(inp, ql, [k])
    np.testing.assert_array_equal(golden.run(net, inp.calib).outputs, ql.outputs)


def test_fold_thresholds_of_a_step_function():
    lo, hi = np.array([-5, 0]), np.array([5, 3])
    t = qz.fold_thresholds(lambda a: np.where(a >= 2, 1.0, 0.0), lo, hi, np.array([[0.5], [0.5]]))
    np.testing.assert_array_equal(t, [[2], [2]])
    t = qz.fold_thresholds(lambda a: a * 0.0, lo, hi, np.array([[1.0], [-1.0]]))
    np.testing.assert_array_equal(t, [[6], [0]])  # never reached: hi + 1; always: lo


# -- SI-BNN --------------------------------------------------------------------------------------
def test_mi_threshold_maximises_histogram_mi():
    rng = _rng(2)
    y = np.concatenate([rng.normal(-1, 0.5, (300, 3)), rng.normal(2, 1, (100, 3))])
    tau = qz.mi_threshold(y, bins=32)
    for c in range(3):
        col = y[:, c]
        best = qz.mutual_information(col, col >= tau[c], 32)
        assert best >= qz.mutual_information(col, col >= 0, 32) - 1e-12
        lo, hi = col.min(), col.max()
        for e in lo + (hi - lo) * np.arange(1, 32) / 32:
            assert best >= qz.mutual_information(col, col >= e, 32) - 1e-12
        assert abs(np.mean(col >= tau[c]) - 0.5) < 0.1  # a balanced code keeps the most information


@pytest.mark.parametrize("threshold", ["mi", "sign"])
def test_sibnn_layers_give_and_mac_downstream(threshold):
    rng = _rng(3)
    arrays = {"w0": rng.normal(size=(12, 20)), "b0": rng.normal(size=12),
              "w1": rng.normal(size=(6, 12)), "b1": rng.normal(size=6),
              "w2": rng.normal(size=(4, 6))}
    x = rng.uniform(0, 1, (80, 20))
    doc, arr, qls = quantize_model(model_from_arrays(arrays), "sibnn", x, threshold=threshold)
    assert [la.get("mac") for la in doc["layers"]] == ["ternary", "and", "and", None]
    net = network_from_dict(doc, arrays=arr)
    res = golden.run(net, golden.quantize_input(net, x))
    for lr, ql in zip(res.layers, qls, strict=False):
        np.testing.assert_array_equal(lr.out, ql.outputs)
    assert set(np.unique(qls[0].outputs)) <= {0, 1}
    if threshold == "sign":
        tau = qls[0].extra["grid"].boundaries
        np.testing.assert_array_equal(tau, 0)


# -- STTN ----------------------------------------------------------------------------------------
@FAST
@given(seed=SEEDS)
def test_sttn_binary_kernels_sum_to_the_ternary_kernel(seed):
    rng = _rng(seed)
    w = rng.normal(size=(int(rng.integers(1, 9)), int(rng.integers(1, 30))))
    t, alpha = qz.ternarize_weights(w)
    assert set(np.unique(t)) <= {-1, 0, 1}
    kept = np.abs(w) > 0.7 * np.abs(w).mean(axis=1, keepdims=True)
    np.testing.assert_array_equal(t != 0, kept)
    b1, b2 = qz.sttn_binary_kernels(t)
    assert set(np.unique(np.concatenate([b1, b2]))) <= {-1, 1}
    np.testing.assert_array_equal(b1 + b2, 2 * t)
    # a ternary layer is the sum of two binary layers of half its scale
    x = rng.integers(0, 4, size=(7, w.shape[1]))
    np.testing.assert_array_equal(2 * golden.dot("ternary", x, t),
                                  golden.dot("ternary", x, b1) + golden.dot("ternary", x, b2))


@FAST
@given(seed=SEEDS)
def test_optimal_delta_beats_twn_rule(seed):
    rng = _rng(seed)
    w = rng.standard_t(3, size=(4, int(rng.integers(2, 50))))
    errs = []
    for delta in (qz.twn_delta(w), qz.optimal_ternary_delta(w)):
        t, a = qz.ternarize_weights(w, delta)
        errs.append(((w - a[:, None] * t) ** 2).sum(axis=1))
    assert (errs[1] <= errs[0] + 1e-9).all()


def test_sttn_layer_loads_and_exposes_kernels():
    rng = _rng(4)
    inp = _uint_input(rng, 40, 16, bits=2)
    ql = qz.sttn_layer("s", rng.normal(size=(8, 16)), rng.normal(size=8), None, inp, bits=2)
    b1, b2 = ql.extra["binary_kernels"]
    np.testing.assert_array_equal(b1 + b2, 2 * ql.arrays["s_w"])
    net = _one_layer_net(inp, ql, [16])
    assert net.layers[0].w_dtype == DType.ternary()
    np.testing.assert_array_equal(golden.run(net, inp.calib).outputs, ql.outputs)


# -- one-hot / power of two ----------------------------------------------------------------------
@FAST
@given(seed=SEEDS, exponents=st.integers(2, 6))
def test_pow2_weights_round_in_the_log_domain(seed, exponents):
    rng = _rng(seed)
    w = rng.normal(size=(5, 20))
    q, shift = qz.pow2_weights(w, exponents)
    assert DType.onehot(exponents, signed=True).contains(q).all()
    scale = 2.0 ** shift
    r = np.abs(w) / scale
    nz = q != 0
    assert (np.sign(q[nz]) == np.sign(w[nz])).all()
    inside = nz & (r >= 1) & (r <= 2 ** (exponents - 1))
    ratio = r[inside] / np.abs(q[inside])
    assert (ratio >= 2 ** -0.5 - 1e-12).all() and (ratio <= 2 ** 0.5 + 1e-12).all()
    assert (r[~nz] < 0.5).all()
    assert np.abs(q).max() == 1 << (exponents - 1)


def test_onehot_layer_activation_levels_are_exact():
    rng = _rng(5)
    inp = _uint_input(rng, 60, 10)
    bn = _random_bn(rng, 6, allow_zero=False)
    ql = qz.onehot_layer("o", rng.normal(size=(6, 10)), rng.normal(size=6), bn, inp, exponents=4)
    act = ql.layer["activation"]
    assert act["encoding"] == "onehot" and act["levels"] == [0, 1, 2, 4, 8]
    grid = ql.extra["grid"]
    f = ql.extra["pre_activation"]      # BN(α·acc + b), checked against BN by hand in the tests above

    def reference(ch, acc, alpha):
        y = f(np.broadcast_to(acc, (6, acc.size)).astype(np.int64))[ch]
        b = np.array([0.5, 2 ** 0.5, 2 ** 1.5, 2 ** 2.5]) * grid.scale[ch]
        return np.array([0, 1, 2, 4, 8])[(y[:, None] >= b[None, :]).sum(axis=1)]
    _check_exhaustive(ql, reference)
    net = _one_layer_net(inp, ql, [10])
    assert net.layers[0].out_dtype == DType.onehot(4)
    np.testing.assert_array_equal(golden.run(net, inp.calib).outputs, ql.outputs)


# -- bit-split -----------------------------------------------------------------------------------
@FAST
@given(seed=SEEDS, bits=st.integers(2, 5))
def test_bitsplit_beats_naive_rounding_on_calibration_outputs(seed, bits):
    rng = _rng(seed)
    k, m = int(rng.integers(4, 24)), int(rng.integers(1, 6))
    w = rng.normal(size=(m, k)) * rng.uniform(0.2, 3, (m, 1))
    x = rng.uniform(0, 1, (100, k)) * (rng.random(k) < 0.8)
    q, alpha = qz.bitsplit_weights(w, x, bits, iters=3)
    qmax = (1 << (bits - 1)) - 1
    assert np.abs(q).max() <= qmax
    q0, a0 = qz.naive_int_weights(w, bits)

    def mse(qq, aa):
        return float(((x @ w.T - x @ (aa[:, None] * qq).T) ** 2).mean())
    assert mse(q, alpha) <= mse(q0, a0) + 1e-12
    planes = qz._split_planes(q, bits - 1)
    assert set(np.unique(planes)) <= {-1, 0, 1}
    np.testing.assert_array_equal(sum(planes[p] << p for p in range(bits - 1)), q)


def test_bitsplit_strictly_better_on_a_typical_layer():
    rng = _rng(6)
    w = rng.normal(size=(16, 32))
    x = np.maximum(rng.normal(size=(300, 32)), 0)
    for bits in (2, 3, 4):
        q, a = qz.bitsplit_weights(w, x, bits)
        q0, a0 = qz.naive_int_weights(w, bits)
        e = ((x @ (w - a[:, None] * q).T) ** 2).mean()
        e0 = ((x @ (w - a0[:, None] * q0).T) ** 2).mean()
        print(bits, e, e0)
        assert e < 0.8 * e0


# -- adder ---------------------------------------------------------------------------------------
@FAST
@given(seed=SEEDS, bits=st.integers(3, 8))
def test_adder_distances_are_exact_on_the_shared_grid(seed, bits):
    rng = _rng(seed)
    step = 2.0 ** int(rng.integers(-4, 2))
    k = int(rng.integers(2, 20))
    w = rng.uniform(-3, 3, (4, k)) * rng.uniform(0.1, 40)
    q, shift = qz.adder_weights(w, step, bits)
    qmax = (1 << (bits - 1)) - 1
    assert np.abs(q).max() <= qmax
    if shift:  # the smallest shift that fits
        assert np.abs(w).max() / (step * (1 << (shift - 1))) > qmax + 0.5
    xq = rng.integers(0, 16, size=(9, k))
    acc = golden.dot("adder", xq, q, shift=shift)
    exact = -np.abs((step * xq)[:, None, :] - (step * (q << shift))[None]).sum(axis=2)
    np.testing.assert_array_equal(step * acc, exact)   # powers of two: no rounding anywhere


def test_adder_layer_needs_one_grid_and_rising_channels():
    rng = _rng(7)
    inp = _uint_input(rng, 30, 8)
    with pytest.raises(ValueError, match=r"^An adder layer needs inputs on one grid"):
        qz.adder_layer("a", rng.normal(size=(3, 8)), None, None, inp)
    one = qz.LayerInput(inp.type, inp.lo, inp.hi, np.zeros(8), np.full(8, 0.25), inp.calib)
    bn = qz.BatchNorm(np.array([1.0, -1.0, 1.0]), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"^Adder channel 1 falls"):
        qz.adder_layer("a", rng.uniform(0, 4, (3, 8)), None, bn, one)
    bn = qz.BatchNorm(np.array([1.0, 0.5, 2.0]), np.zeros(3), rng.normal(-5, 1, 3), np.ones(3))
    ql = qz.adder_layer("a", rng.uniform(0, 4, (3, 8)), None, bn, one, bits=5)
    net = _one_layer_net(one, ql, [8])
    assert net.layers[0].mac == "adder"
    np.testing.assert_array_equal(golden.run(net, one.calib).outputs, ql.outputs)
    assert np.ptp(ql.out.scale) == 0  # the next adder layer gets one grid again


# -- requantization ------------------------------------------------------------------------------
@FAST
@given(seed=SEEDS, rounding=st.sampled_from(["floor", "ceil", "half-up", "half-even"]))
def test_requant_params_error_bound(seed, rounding):
    rng = _rng(seed)
    scale = rng.uniform(-2, 2, 5) * 10.0 ** rng.integers(-6, 3)
    acc_max = int(rng.integers(1, 4000))
    m, shift = qz.requant_params(scale, acc_max)
    assert np.abs(m).max() < 1 << 15
    assert (np.abs(m / 2.0 ** shift - scale) <= 2.0 ** -(shift + 1)).all()
    acc = np.arange(-acc_max, acc_max + 1)
    out = golden.round_shift(acc[:, None] * m[None, :], shift, rounding)
    slack = 0.5 if rounding.startswith("half") else 1.0
    bound = np.abs(acc)[:, None] * 2.0 ** -(shift + 1) + slack + 1e-9
    assert (np.abs(out - acc[:, None] * scale[None, :]) <= bound).all()


def test_requant_params_fit_int64():
    m, shift = qz.requant_params([0.75], 1 << 50)
    assert abs(int(m[0])) * (1 << 50) < 1 << 61
    assert m[0] / 2 ** shift == 0.75
    m, shift = qz.requant_params([0.0, 0.0], 10)
    assert (m == 0).all()


# -- whole networks ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_every_method_loads_and_matches_the_golden_model(method):
    rng = _rng(8)
    if method == "adder":
        arrays = {"w0": rng.uniform(0, 1, (10, 16)), "w1": rng.uniform(0, 1, (5, 10))}
        for i, c in enumerate((10, 5)):
            arrays.update({f"bn{i}_gamma": rng.uniform(0.5, 2, c), f"bn{i}_beta": rng.normal(0, 1, c),
                           f"bn{i}_mean": np.full(c, -3.0 if i == 0 else -2.0),
                           f"bn{i}_var": rng.uniform(0.5, 2, c)})
    else:
        arrays = {"w0": rng.normal(size=(10, 16)), "b0": rng.normal(size=10),
                  "w1": rng.normal(size=(5, 10)), "b1": rng.normal(size=5)}
    x = rng.uniform(0, 1, (50, 16))
    doc, arr, qls = quantize_model(model_from_arrays(arrays), method, x)
    net = network_from_dict(doc, arrays=arr)
    res = golden.run(net, golden.quantize_input(net, x))
    for lr, ql in zip(res.layers, qls, strict=False):
        np.testing.assert_array_equal(lr.out, ql.outputs)
    # the hidden layer's thresholds agree with its float function on every accumulator value
    ql = qls[0]
    grid = ql.extra["grid"]
    f = ql.extra["pre_activation"]
    for c in range(10):
        acc = np.arange(ql.extra["acc_lo"][c], ql.extra["acc_hi"][c] + 1)
        y = f(np.broadcast_to(acc, (10, acc.size)).astype(np.int64))[c]
        want = np.asarray(grid.levels)[(y[:, None] >= grid.boundaries[c][None, :]).sum(axis=1)]
        t = ql.arrays["l0_t"][c]
        got = np.asarray(grid.levels)[(acc[:, None] >= t[None, :]).sum(axis=1)]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method, kw", [("sttn", {}), ("binarize", {}), ("binarize", {"bits": 1}),
                                        ("sibnn", {}), ("onehot", {}), ("bitsplit", {})])
def test_conv_layers_quantize(method, kw):
    rng = _rng(9)
    arrays = {"input_shape": np.array([2, 6, 6]), "w0": rng.normal(size=(4, 2, 3, 3)),
              "b0": rng.normal(size=4), "padding0": np.array(1),
              "w1": rng.normal(size=(3, 4, 3, 3)), "padding1": np.array(1), "stride1": np.array(2),
              "w2": rng.normal(size=(5, 3 * 3 * 3))}
    x = rng.uniform(0, 1, (20, 2, 6, 6))
    doc, arr, qls = quantize_model(model_from_arrays(arrays), method, x, **kw)
    assert [la["type"] for la in doc["layers"]] == ["conv2d", "conv2d", "dense", "argmax"]
    if kw.get("bits") == 1:  # ±1 inputs have no 0: padding reads -1, the code of ReLU's 0
        assert doc["layers"][1]["pad_value"] == -1 and doc["layers"][1]["mac"] == "xnor"
    net = network_from_dict(doc, arrays=arr)
    res = golden.run(net, golden.quantize_input(net, x))
    for lr, ql in zip(res.layers, qls, strict=False):
        np.testing.assert_array_equal(lr.out, ql.outputs)


def test_onehot_needs_non_negative_inputs():
    arrays = {"w0": np.ones((2, 3)), "w1": np.ones((2, 2))}
    with pytest.raises(NetworkError, match=r"^--calib: onehot layers take non-negative inputs"):
        quantize_model(model_from_arrays(arrays), "onehot", -np.ones((4, 3)))
