"""``nomul quantize`` end to end: float models trained here on sklearn digits, every method,
the written network run by ``nomul golden``; determinism; bad input."""

import re

import numpy as np
import pytest

from gen.cli import main
from gen.load import load_network
from quant_models.quant_float import accuracy, digits_split, train_adder_mlp, train_mlp
from quant_models.quant_net import float_forward, model_from_arrays
from sim import golden

SEED = 0
# Lowest acceptable test accuracy per method (post-training, 64-64-10 MLP, default bits). The
# measured figures (bench/quantize.py, docs/quantize.md) sit well above these floors.
FLOORS = {"binarize": 0.75, "sibnn": 0.50, "sttn": 0.88, "onehot": 0.90, "bitsplit": 0.95,
          "adder": 0.93}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    print(f"seed={SEED}")
    d = tmp_path_factory.mktemp("digits")
    xtr, ytr, xte, yte = digits_split(SEED)
    mlp = train_mlp(xtr, ytr, hidden=(64,), steps=400, seed=SEED)
    adder = train_adder_mlp(xtr, ytr, hidden=(32,), steps=200, seed=SEED)
    np.savez(d / "mlp.npz", **mlp)
    np.savez(d / "adder.npz", **adder)
    np.savez(d / "calib.npz", inputs=xtr, labels=ytr)
    np.save(d / "calib.npy", xtr)
    np.savez(d / "test.npz", inputs=xte, labels=yte)
    return d, xte, yte, mlp, adder


@pytest.mark.parametrize("method", sorted(FLOORS))
def test_quantize_then_golden(method, digits, capsys):
    d, xte, yte, mlp, adder = digits
    model = "adder.npz" if method == "adder" else "mlp.npz"
    arrays = adder if method == "adder" else mlp
    fl = accuracy(float_forward(model_from_arrays(arrays), xte, adder=method == "adder"), yte)
    out = d / f"net_{method}.yaml"
    assert main(["quantize", str(d / model), "--method", method, "--calib", str(d / "calib.npz"),
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 on the calibration data" in printed and f"wrote {out}" in printed
    net = load_network(out)
    acc = float(np.mean(golden.run(net, golden.quantize_input(net, xte)).top1 == yte))
    print(f"{method}: float {fl:.4f} quantized {acc:.4f}")
    assert fl > 0.95
    assert acc >= FLOORS[method]
    assert main(["golden", str(out), "--input", str(d / "test.npz")]) == 0
    m = re.search(r"top-1 accuracy: ([0-9.]+)%", capsys.readouterr().out)
    assert m and abs(float(m.group(1)) / 100 - acc) < 1e-4


def test_mac_kinds_per_method(digits):
    d = digits[0]
    want = {"binarize": ["ternary", "ternary"], "sibnn": ["ternary", "and"],
            "sttn": ["ternary", "ternary"], "onehot": ["onehot", "onehot"],
            "bitsplit": ["int", "int"], "adder": ["adder", "adder"]}
    for method, macs in want.items():
        out = d / f"mac_{method}.yaml"
        model = "adder.npz" if method == "adder" else "mlp.npz"
        assert main(["quantize", str(d / model), "--method", method, "--calib",
                     str(d / "calib.npy"), "-o", str(out)]) == 0
        assert [la.mac for la in load_network(out).layers[:-1]] == macs
    out = d / "bnn.yaml"
    assert main(["quantize", str(d / "mlp.npz"), "--method", "binarize", "--bits", "1",
                 "--calib", str(d / "calib.npy"), "-o", str(out)]) == 0
    assert [la.mac for la in load_network(out).layers[:-1]] == ["ternary", "xnor"]


def test_output_is_deterministic(digits, tmp_path):
    d = digits[0]
    files = []
    for k in range(2):
        sub = tmp_path / str(k)
        sub.mkdir()
        assert main(["quantize", str(d / "mlp.npz"), "--method", "sibnn", "--calib",
                     str(d / "calib.npy"), "-o", str(sub / "net.yaml")]) == 0
        files.append(((sub / "net.yaml").read_bytes(), (sub / "net.npz").read_bytes()))
    assert files[0] == files[1]
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == ["net.npz", "net.yaml"]


def _error(capsys, args):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_bad_float_model(tmp_path, capsys):
    rng = np.random.default_rng(1)
    calib = tmp_path / "x.npy"
    np.save(calib, rng.uniform(0, 1, (10, 8)))
    cases = [
        ({"w1": rng.normal(size=(3, 8))}, r"^nomul: error: w0: required"),
        ({"w0": rng.normal(size=(4, 8)), "b0": np.zeros(5)}, r"^nomul: error: b0: expected shape \(4,\)"),
        ({"w0": rng.normal(size=(4, 8)), "w1": rng.normal(size=(3, 5))},
         r"^nomul: error: w1: expected shape \(out, 4\)"),
        ({"w0": np.array([[np.nan] * 8])}, r"^nomul: error: w0: values must be finite"),
        ({"w0": rng.normal(size=(4, 8)), "bn0_gamma": np.ones(4)}, r"^nomul: error: bn0_beta: required"),
        ({"w0": rng.normal(size=(4, 8)), "bias0": np.ones(4)}, r"^nomul: error: bias0: unknown key"),
        ({"w0": np.array(["a"] * 8).reshape(1, 8)}, r"^nomul: error: w0: expected numbers"),
        ({"w0": rng.normal(size=(4, 1, 3, 3))}, r"^nomul: error: w0: a conv layer \(OIHW\) needs"),
    ]
    for arrays, pattern in cases:
        path = tmp_path / "f.npz"
        np.savez(path, **arrays)
        err = _error(capsys, ["quantize", str(path), "--method", "sttn", "--calib", str(calib),
                              "-o", str(tmp_path / "n.yaml")])
        assert re.match(pattern, err), err
    assert not (tmp_path / "n.yaml").exists()


def test_pickled_and_unreadable_inputs(tmp_path, capsys):
    path = tmp_path / "f.npz"
    np.savez(path, w0=np.array([{"a": 1}], dtype=object))
    calib = tmp_path / "x.npy"
    np.save(calib, np.ones((4, 8)))
    err = _error(capsys, ["quantize", str(path), "--method", "sttn", "--calib", str(calib), "-o",
                          str(tmp_path / "n.yaml")])
    assert re.match(r"^nomul: error: cannot read f\.npz", err), err
    (tmp_path / "g.npz").write_bytes(b"not a zip")
    err = _error(capsys, ["quantize", str(tmp_path / "g.npz"), "--method", "sttn", "--calib",
                          str(calib), "-o", str(tmp_path / "n.yaml")])
    assert re.match(r"^nomul: error: cannot read g\.npz", err), err


def test_bad_options(digits, tmp_path, capsys):
    d = digits[0]
    base = ["quantize", str(d / "mlp.npz"), "--calib", str(d / "calib.npy")]
    out = ["-o", str(tmp_path / "n.yaml")]
    err = _error(capsys, base + ["--method", "bitsplit", "--bits", "1"] + out)
    assert re.match(r"^nomul: error: --bits: must be 2 to 16 for method bitsplit, not 1$", err)
    err = _error(capsys, base + ["--method", "sibnn", "--bits", "2"] + out)
    assert re.match(r"^nomul: error: --bits: must be 1 for method sibnn, not 2$", err)
    err = _error(capsys, base + ["--method", "sttn", "--act-bits", "3"] + out)
    assert re.match(r"^nomul: error: --act-bits: only bitsplit and adder take it", err)
    err = _error(capsys, base + ["--method", "sttn", "-o", str(tmp_path / "n.txt")])
    assert re.match(r"^nomul: error: -o: the network file must end in \.yaml", err)
    err = _error(capsys, base + ["--method", "sttn", "-o", str(d / "mlp.yaml")])
    assert re.match(r"^nomul: error: -o: mlp\.npz would overwrite the float model", err)
    np.save(tmp_path / "bad.npy", np.ones((5, 7)))
    err = _error(capsys, ["quantize", str(d / "mlp.npz"), "--method", "sttn", "--calib",
                          str(tmp_path / "bad.npy")] + out)
    assert re.match(r"^nomul: error: --calib: expected inputs of shape \(N, 64\)", err), err
    # an AdderNet needs inputs on one grid: a ReLU MLP's dead hidden layer has none
    err = _error(capsys, ["quantize", str(d / "adder.npz"), "--method", "adder", "--calib",
                          str(d / "calib.npy"), "--input-bits", "1"] + out)
    assert re.match(r"^nomul: error: --input-bits: must be 2 to 16", err), err


def test_negative_bn_scale_in_an_adder_layer(tmp_path, capsys):
    rng = np.random.default_rng(2)
    arrays = {"w0": rng.uniform(0, 1, (4, 8)), "bn0_gamma": np.array([1.0, -1.0, 1.0, 1.0]),
              "bn0_beta": np.zeros(4), "bn0_mean": np.full(4, -3.0), "bn0_var": np.ones(4),
              "w1": rng.uniform(0, 1, (3, 4))}
    np.savez(tmp_path / "f.npz", **arrays)
    np.save(tmp_path / "x.npy", rng.uniform(0, 1, (20, 8)))
    err = _error(capsys, ["quantize", str(tmp_path / "f.npz"), "--method", "adder", "--calib",
                          str(tmp_path / "x.npy"), "-o", str(tmp_path / "n.yaml")])
    assert re.match(r"^nomul: error: bn0_gamma: adder channel 1 falls", err), err


def test_sibnn_mi_thresholds_beat_sign_thresholds(digits, tmp_path):
    """Balanced {0, 1} codes (the MI-maximising thresholds) keep more than thresholds at 0."""
    d, xte, yte = digits[:3]
    acc = {}
    for rule in ("mi", "sign"):
        out = tmp_path / f"{rule}.yaml"
        assert main(["quantize", str(d / "mlp.npz"), "--method", "sibnn", "--threshold", rule,
                     "--calib", str(d / "calib.npy"), "-o", str(out)]) == 0
        net = load_network(out)
        acc[rule] = float(np.mean(golden.run(net, golden.quantize_input(net, xte)).top1 == yte))
    print(acc)
    assert acc["mi"] > acc["sign"] + 0.1


def test_sttn_optimal_delta(digits, tmp_path):
    d = digits[0]
    out = tmp_path / "opt.yaml"
    assert main(["quantize", str(d / "mlp.npz"), "--method", "sttn", "--delta", "optimal",
                 "--calib", str(d / "calib.npy"), "-o", str(out)]) == 0
    net = load_network(out)
    assert net.metadata["delta"] == "optimal"
    assert net.layers[0].w_dtype.encoding == "ternary"
