"""The command line: check, golden, error handling."""

import re
import subprocess
import sys

import numpy as np
import pytest

from gen.cli import main
from gen.load import load_network
from gen.netfile import write_network
from sim import golden
from sim.randnet import random_network, random_values


@pytest.fixture
def net_file(tmp_path):
    doc2, arrays2 = random_network(np.random.default_rng(7), ["and", "xnor", "xnor"], argmax=True,
                                   in_shape=[12])
    return write_network(tmp_path / "net.yaml", doc2, arrays2)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gen.cli", *map(str, args)], capture_output=True,
                          text=True)


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("check", "golden"):
        assert cmd in r.stdout


def test_check_prints_table(net_file, capsys):
    assert main(["check", str(net_file)]) == 0
    out = capsys.readouterr().out
    assert "MACs per frame: OK" in out
    assert "xnor" in out and "argmax" in out


def test_golden_raw_writes_every_layer(net_file, tmp_path):
    net = load_network(net_file)
    x = random_values(np.random.default_rng(3), net.input.dtype, (9, 12))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npz"
    assert main(["golden", str(net_file), "--input", str(tmp_path / "x.npy"), "--raw",
                 "--out", str(out)]) == 0
    expected = golden.run(net, x)
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["outputs"], expected.outputs)
        np.testing.assert_array_equal(z["top1"], expected.top1)
        for i, lr in enumerate(expected.layers):
            np.testing.assert_array_equal(z[f"layer{i}"], lr.out)


def test_golden_accuracy_with_labels(net_file, tmp_path, capsys):
    net = load_network(net_file)
    x = random_values(np.random.default_rng(4), net.input.dtype, (20, 12))
    top1 = golden.run(net, x).top1
    labels = top1.copy()
    labels[:5] = (labels[:5] + 1) % 3
    np.savez(tmp_path / "d.npz", inputs=x, labels=labels)
    assert main(["golden", str(net_file), "--input", str(tmp_path / "d.npz"), "--raw"]) == 0
    n_ok = int(np.sum(top1 == labels))
    assert f"({n_ok}/20)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["check", "missing.yaml"], r"nomul: error: network file not found: missing.yaml"),
    (["golden", "{net}", "--input", "nope.npy", "--raw"], r"nomul: error: --input: file not found"),
    (["golden", "{net}", "--input", "{x}"], r"nomul: error: input.quantizer: the network has no input quantizer"),
    (["golden", "{net}", "--input", "{bad}", "--raw"],
     r"nomul: error: input: value 3 at index \[0, 0\] is not a uint1 value"),
])
def test_bad_input_one_line_exit_2(net_file, tmp_path, args, message):
    np.save(tmp_path / "x.npy", np.zeros((2, 12), dtype=np.int64))
    np.save(tmp_path / "bad.npy", np.full((2, 12), 3))
    args = [a.format(net=net_file, x=tmp_path / "x.npy", bad=tmp_path / "bad.npy") for a in args]
    out = tmp_path / "never.npz"
    r = run_cli(*args, *(["--out", out] if args[0] == "golden" else []))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    import re
    assert re.match(message, lines[0]), lines[0]
    assert not out.exists()


def test_malformed_network_file(tmp_path):
    (tmp_path / "n.yaml").write_text("version: 1\ninput: {shape: [4], encoding: bipolar}\n"
                                     "layers:\n  - type: dense\n    mac: xnor\n    wieghts: {}\n")
    r = run_cli("check", tmp_path / "n.yaml")
    assert r.returncode == 2
    assert r.stderr.strip() == "nomul: error: layers[0].wieghts: unknown key"


def test_gen_creates_missing_parents_and_cleans_up_on_failure(net_file, tmp_path):
    out = tmp_path / "a" / "b" / "accel"
    assert main(["gen", str(net_file), "-o", str(out)]) == 0
    assert (out / "manifest.json").is_file() and (out / "nomul_top.v").is_file()
    fold = tmp_path / "fold.yaml"
    fold.write_text("layer0: {pe: 0}\n")
    bad = tmp_path / "c" / "d" / "accel"
    r = run_cli("gen", net_file, "-o", bad, "--fold", fold)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("nomul: error: fold.layer0.pe: expected a positive integer"), r.stderr
    assert not (tmp_path / "c").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"nomul \S+\n", capsys.readouterr().out)


def test_wide_output_not_cut(monkeypatch):
    from gen.cli import WIDE_COLUMNS, _console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert _console().width == WIDE_COLUMNS          # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "77")
    assert _console().width == 77


def test_options_are_not_abbreviated(net_file, tmp_path, capsys):
    """``gen --target X`` is an unknown option, not ``--target-cycles X`` abbreviated."""
    with pytest.raises(SystemExit) as e:
        main(["gen", str(net_file), "-o", str(tmp_path / "a"), "--target", "100"])
    assert e.value.code == 2
    assert "unrecognized arguments: --target 100" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
