"""Regression tests of issue #11: no lost data, bounded resources, one-line errors.

One test (or one parametrized group) per class of defect: the output folder, temporary files
and signals, bounded loading, strict types, file references, the setup script, simulation
accounting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gen.errors import NetworkError
from gen.netfile import write_network
from gen.outdir import check_out_dir, replace_folder
from sim.randnet import random_network

ROOT = Path(__file__).resolve().parent.parent


def nomul(*args, cwd=None, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "gen.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=e)


def one_line_error(r, pattern: str):
    """Exit 2 and exactly one line on stderr matching ``pattern`` (after ``nomul: error: ``)."""
    import re

    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert re.match(r"^nomul: error: " + pattern, r.stderr), r.stderr


def snapshot(folder: Path) -> dict:
    """Every file and symlink under ``folder`` (hidden ones too), with its content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture()
def small_net(tmp_path):
    doc, arrays = random_network(np.random.default_rng(0), ["xnor", "xnor"], in_shape=[8],
                                 widths=[8, 4])
    return write_network(tmp_path / "net.yaml", doc, arrays)


# -- 1. the output folder ---------------------------------------------------------------------
def test_gen_refuses_folders_it_would_lose(tmp_path, small_net):
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "link").symlink_to("other")
    (tmp_path / "dangling").symlink_to("nowhere")
    before = snapshot(tmp_path)
    cases = [
        (".", r"-o: '\.' is the current folder or a parent of it"),
        ("", r"-o: expected a folder name, found an empty string$"),
        ("afile/out", r"-o: .*afile is not a folder, so afile/out cannot be created$"),
        ("afile", r"-o: afile exists and is not a folder$"),
        ("other", r"-o: other is not empty and is not a previous nomul output .*--overwrite"),
        ("link", r"-o: link is not empty and is not a previous nomul output"),
        ("dangling", r"-o: dangling is a symbolic link to .*nowhere, which is not a folder$"),
    ]
    for out, pattern in cases:
        one_line_error(nomul("gen", small_net, "-o", out, cwd=tmp_path), pattern)
    # the network's own folder, even with --overwrite; and the current folder by its full name
    one_line_error(nomul("gen", small_net, "-o", tmp_path, "--overwrite", cwd=ROOT),
                   r"-o: .* holds the input file net.yaml; write the output to another folder$")
    one_line_error(nomul("gen", small_net, "-o", tmp_path, "--overwrite", cwd=tmp_path),
                   r"-o: .* is the current folder or a parent of it")
    assert snapshot(tmp_path) == before


def test_gen_replaces_only_what_it_may(tmp_path, small_net):
    out = tmp_path / "out"
    assert nomul("gen", small_net, "-o", out).returncode == 0
    first = snapshot(out)
    assert nomul("gen", small_net, "-o", out).returncode == 0  # a previous output: replaced
    assert snapshot(out) == first
    empty = tmp_path / "empty"
    empty.mkdir()
    assert nomul("gen", small_net, "-o", empty).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert nomul("gen", small_net, "-o", other, "--overwrite").returncode == 0
    assert not (other / "notes.txt").exists() and (other / "manifest.json").is_file()
    # a symbolic link to a previous output is followed, and stays a link
    (tmp_path / "link").symlink_to("out")
    assert nomul("gen", small_net, "-o", tmp_path / "link").returncode == 0
    assert (tmp_path / "link").is_symlink() and snapshot(out) == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


_SWAP_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from gen.outdir import replace_folder
    from gen.interrupts import Interrupted
    sig = getattr(signal, sys.argv[2])
    def after(tmp):
        os.kill(os.getpid(), sig)
        # wait for the handler in short sleeps, not signal.pause(): a signal that another thread
        # of the process took leaves pause() waiting for ever (seen once in a loaded full run);
        # the handler runs between two sleeps
        for _ in range(600):
            time.sleep(0.05)
    try:
        replace_folder(sys.argv[1], {"manifest.json": b'{"format": "nomul-accelerator"}', "new": b"n"},
                       after=after)
    except KeyboardInterrupt:
        sys.exit(130)
    except Interrupted as e:
        sys.exit(128 + e.signum)
""")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_write_keeps_old_output(tmp_path, sig):
    if signal.getsignal(getattr(signal, sig)) is signal.SIG_IGN:
        # started under nohup or as a background job: the child inherits the ignored signal, and
        # nomul rightly leaves an ignored signal ignored
        pytest.skip(f"{sig} is ignored in this environment")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"format": "nomul-accelerator"}')
    (out / "old").write_text("o")
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-c", _SWAP_SCRIPT, str(out), sig], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 128 + getattr(signal, sig), r.stderr
    assert snapshot(tmp_path) == before  # the old output, and no hidden temporary folder


def test_signal_during_swap_is_deferred(tmp_path, monkeypatch):
    """A signal that arrives between the two renames is held back until the swap is done."""
    from gen.interrupts import Interrupted

    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"format": "nomul-accelerator"}')
    real_rename = Path.rename

    def rename(self, target):
        res = real_rename(self, target)
        if ".nomul-old-" in str(target):
            os.kill(os.getpid(), signal.SIGTERM)  # after the first rename
        return res
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(Interrupted):
        replace_folder(out, {"manifest.json": b'{"format": "nomul-accelerator"}', "new": b"n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "new").read_bytes() == b"n"


def test_check_out_dir_refuses_input_inside(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "net.yaml").write_text("x")
    with pytest.raises(NetworkError, match=r"^-o: .* holds the input file net.yaml"):
        check_out_dir(tmp_path / "d", overwrite=True, inputs=[tmp_path / "d" / "sub" / "net.yaml"])


# -- 2. temporary files and child processes ----------------------------------------------------
def test_temporary_folder_removed_on_signal(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, subprocess
        from gen.cli import main
        from gen.tempdirs import temporary_folder
        from gen.interrupts import signals_as_exceptions, Interrupted
        try:
            with signals_as_exceptions(), temporary_folder("test-") as tmp:
                (tmp / "f").write_text("x")
                print(tmp, flush=True)
                subprocess.run(["sleep", "30"])
        except Interrupted as e:
            sys.exit(128 + e.signum)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOMUL_TMPDIR=str(tmp_path / "t"))
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    made = Path(p.stdout.readline().strip())
    assert made.parent == tmp_path / "t" and made.is_dir()
    import time
    deadline = time.monotonic() + 10
    children = []
    while time.monotonic() < deadline and not children:
        children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                                  text=True).stdout.split()
        time.sleep(0.05)
    assert children, "sleep did not start"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM
    assert not made.exists()
    for pid in children:  # the child ended with its parent
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_estimate_synth_writes_nothing_in_the_current_folder():
    from gen import cmd_estimate

    src = Path(cmd_estimate.__file__).read_text()
    assert "Path.cwd()" not in src and "temporary_folder" in src


# -- 6. scripts/setup.sh -------------------------------------------------------------------------
def _fake_root(tmp_path) -> Path:
    """A copy of setup.sh in a root whose .venv is already installed (nothing is installed)."""
    import hashlib
    import shutil

    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (root / "pyproject.toml").write_text("[project]\n")
    digest = hashlib.sha256(b"[project]\n").hexdigest()[:16]
    (root / ".venv" / ".nomul-installed").write_text(f"{digest} dev,verilator,qonnx\n")
    return root


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v bash && command -v iverilog"],
                                   capture_output=True).returncode != 0,
                    reason="needs bash and iverilog")
def test_setup_script_restores_shell_options(tmp_path):
    root = _fake_root(tmp_path)
    script = textwrap.dedent(f"""
        before="$(set -o; shopt)"
        source {root}/scripts/setup.sh
        echo "rc=$?"
        [ "$(set -o; shopt)" = "$before" ] && echo same-options
        echo "yosys=$AMARANTH_USE_YOSYS"
        PYTHON=/bin/false source {root}/scripts/setup.sh 2>/dev/null
        echo "rc=$?"
        [ "$(set -o; shopt)" = "$before" ] && echo same-options
        echo alive
    """)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["rc=0", "same-options", "yosys=builtin", "rc=1", "same-options",
                                "alive"], r.stdout + r.stderr


# -- 7. simulation accounting ----------------------------------------------------------------------
@pytest.mark.parametrize("elems,shape", [(2, (2,)), (2, (12,))], ids=["one-beat", "six-beat"])
def test_every_frame_accounted_for_across_resets(tmp_path, elems, shape):
    from test_cosim_parts import _design, _frames

    from sim.runner import cosimulate

    seed = 7 + elems + shape[0]
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = 64
    resets = sorted(set(rng.integers(0, n, size=8).tolist()))
    src, streams = _design(tmp_path, elems=elems, shape=shape, depth=3)
    x, y = _frames(seed, n, shape)
    r = cosimulate(src, streams, x, y, build_dir=tmp_path / "build", seed=seed, stall=0.3,
                   reset_at_frame=resets)
    assert r.passed, r.mismatch_report
    assert r.frames_sent == n and r.frames_lost == 0
    assert r.frames + r.frames_dropped_by_reset == n
    assert r.frames_dropped_by_reset >= len(resets)  # at least the interrupted frame each time
    assert r.cycles_per_frame == streams.expected_cycles_per_frame  # timed on extra frames


def test_few_frames_still_timed_and_stalled(tmp_path):
    """Two frames: the interval is measured on extra timing frames, and the two frames get the
    stalls asked for (their run takes longer than without stalls)."""
    from test_cosim_parts import _design, _frames

    from sim.runner import cosimulate

    src, streams = _design(tmp_path, elems=2, shape=(12,), depth=2)
    x, y = _frames(3, 2, (12,))
    cycles = {}
    for stall in (0.0, 0.6):
        r = cosimulate(src, streams, x, y, build_dir=tmp_path / "build", seed=1, stall=stall)
        assert r.passed and r.frames == 2
        assert r.cycles_per_frame == streams.expected_cycles_per_frame
        cycles[stall] = r.cycles
    assert cycles[0.6] > cycles[0.0]
    r = cosimulate(src, streams, x, y, build_dir=tmp_path / "build", seed=1, stall=0.2,
                   timing_frames=2)
    assert r.passed and r.cycles_per_frame is None


def test_sim_cli_reset_at_and_unmeasured_interval(tmp_path, small_net):
    r = nomul("sim", small_net, "--random", "5", "--reset-at", "9")
    one_line_error(r, r"--reset-at: frame 9 is not one of the 5 frames \(0 to 4\)$")
    r = nomul("sim", small_net, "--random", "5", "--reset-at", "x")
    one_line_error(r, r"--reset-at: expected frame numbers separated by commas")
    out = tmp_path / "j" / "r.json"
    r = nomul("sim", small_net, "--random", "12", "--reset-at", "0,5,11", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    assert doc["frames_sent"] == 12 and doc["frames_lost"] == 0
    assert doc["frames"] + doc["frames_dropped_by_reset"] == 12
    assert "(differs)" not in r.stdout and "None" not in r.stdout


# -- 3. bounded memory and time when loading -------------------------------------------------------
def _limited(args, cwd, *, seconds=2.0, mb=300):
    """Run nomul; return the result, after checking it took < ``seconds`` of CPU time and
    < ``mb`` MB (its own peak resident memory and CPU time, written by the child at exit;
    CPU rather than wall time, which a loaded machine stretches)."""
    import tempfile
    import time

    if not Path("/proc/self/status").is_file():
        pytest.skip("measures memory through Linux's /proc")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        # VmHWM, not ru_maxrss: the latter keeps the peak of the forked parent across exec
        code = ("import atexit, os, re, resource, sys\n"
                "def report():\n"
                "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
                "    hwm = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)\n"
                "    open(os.environ['NOMUL_RSS_FILE'], 'w').write(f'{hwm} {u.ru_utime + u.ru_stime}')\n"
                "atexit.register(report)\n"
                "from gen.cli import main\n"
                "sys.exit(main(sys.argv[1:]))\n")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                           text=True, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT),
                                                        NOMUL_RSS_FILE=rss_file.name))
        wall = time.perf_counter() - t
        kb, cpu = rss_file.read().split()
    rss, cpu = int(kb) / 1024, float(cpu)
    print(f"{[str(a) for a in args]}: {cpu:.2f} s CPU, {wall:.2f} s wall, {rss:.0f} MB")
    assert cpu < seconds, f"{args}: {cpu:.1f} s of CPU"
    assert wall < 30, f"{args}: {wall:.1f} s"  # hangs, however loaded the machine
    assert rss < mb, f"{args}: {rss:.0f} MB"
    return r


@pytest.fixture()
def bnn(tmp_path):
    import shutil

    for suffix in (".yaml", ".npz"):
        shutil.copy(ROOT / "quant_models" / "examples" / f"digits_bnn{suffix}", tmp_path / f"net{suffix}")
    p = tmp_path / "net.yaml"
    p.write_text(p.read_text().replace("arrays: digits_bnn.npz", "arrays: net.npz"))
    return p


def _with(bnn: Path, name: str, text_edit=None, arrays=None) -> Path:
    import yaml

    doc = yaml.safe_load(bnn.read_text())
    if arrays is not None:
        doc["arrays"] = arrays
    p = bnn.parent / name
    text = yaml.safe_dump(doc, sort_keys=False)
    p.write_text(text_edit(text) if text_edit else text)
    return p


def test_npz_zip_bomb_and_huge_header_cost_nothing(bnn):
    import io
    import shutil
    import zipfile

    d = bnn.parent
    shutil.copy(d / "net.npz", d / "bomb.npz")
    with zipfile.ZipFile(d / "bomb.npz", "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("junk.npy", "w", force_zip64=True) as f:
            for _ in range(64):
                f.write(bytes(1 << 24))  # 1 GiB of zeros, in a member nothing refers to
    r = _limited(["check", _with(bnn, "bomb.yaml", arrays="bomb.npz")], d)
    assert r.returncode == 0, r.stderr
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False,
                                                  "shape": (1 << 20, 1 << 20)})
    with zipfile.ZipFile(d / "net.npz") as src, zipfile.ZipFile(d / "huge.npz", "w") as dst:
        for name in src.namelist():
            dst.writestr(name, header.getvalue() + bytes(64) if name == "w0.npy" else src.read(name))
    r = _limited(["check", _with(bnn, "huge.yaml", arrays="huge.npz")], d)
    one_line_error(r, r"layers\[0\]\.weights: array 'w0' has 1099511627776 elements, more than the "
                      r"limit of 4194304$")
    np.save(d / "plain.npy", np.zeros(3, np.int8))
    one_line_error(_limited(["check", _with(bnn, "plain.yaml", arrays="plain.npy")], d),
                   r"arrays: plain.npy is a single .npy array, not an .npz archive")


@pytest.mark.parametrize("case,pattern", [
    ("deep-list", r"deep.yaml is nested deeper than 64 levels \(line 2\)$"),
    ("deep-map", r"metadata\.a\.a: nested deeper than 64 levels \(line 2 of deep.yaml\)$"),
    ("long-list", r"deep.yaml has more than 131072 values \(aliases counted expanded\), the limit$"),
    ("laughs", r"deep.yaml has more than 131072 values"),
    ("big", r"deep.yaml has \d+ bytes, more than the limit of 4194304$"),
    ("dup-version", r"version: duplicate key 'version' \(line 2 of deep.yaml\)$"),
    ("dup-mac", r"layers\[0\]\.mac: duplicate key 'mac' \(line \d+ of deep.yaml\)$"),
])
def test_yaml_limits(bnn, case, pattern):
    d = bnn.parent
    text = {
        "deep-list": "version: 1\nmetadata: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep-map": "version: 1\nmetadata: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "long-list": "version: 1\nmetadata: {x: [" + ", ".join(["1"] * 400_000) + "]}\n",
        "laughs": "version: 1\nmetadata:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
            f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
            for i in range(8)),
        "big": "version: 1\nsource: '" + "x" * (5 << 20) + "'\n",
        "dup-version": bnn.read_text().replace("version: 1\n", "version: 1\nversion: 1\n", 1),
        "dup-mac": bnn.read_text().replace("  mac: ternary\n", "  mac: ternary\n  mac: xnor\n", 1),
    }[case]
    (d / "deep.yaml").write_text(text)
    one_line_error(_limited(["check", d / "deep.yaml"], d), pattern)
    fold = d / ("fold.json" if case == "deep-list" else "fold.yaml")
    fold.write_text("[" * 100_000 + "]" * 100_000 if case == "deep-list" else text)
    r = _limited(["gen", bnn, "-o", d / "out", "--fold", fold], d)
    one_line_error(r, r"--fold")
    assert not (d / "out").exists()


def _absurd(tmp_path, which):
    bip = {"encoding": "bipolar"}

    def conv(key):
        return {"type": "conv2d", "mac": "xnor", "kernel": 1, "weights": {"key": key, **bip},
                "activation": {"type": "multithreshold", "thresholds": "t" + key, "bipolar": True}}
    if which == "wide-conv":
        doc = {"version": 1, "input": {"shape": [1, 4, 4], **bip},
               "layers": [conv("w"), {"type": "dense", "mac": "xnor", "weights": {"key": "d", **bip}}]}
        arrays = {"w": np.ones((100_000, 1, 1, 1), np.int8), "tw": np.zeros((100_000, 1), np.int64),
                  "d": np.ones((2, 1_600_000), np.int8)}
    elif which == "big-image":
        doc = {"version": 1, "input": {"shape": [1, 2048, 2048], **bip},
               "layers": [conv("w"), conv("v"), {"type": "maxpool2d", "kernel": 2048},
                          {"type": "dense", "mac": "xnor", "weights": {"key": "d", **bip}}]}
        arrays = {"w": np.ones((1024, 1, 1, 1), np.int8), "tw": np.zeros((1024, 1), np.int64),
                  "v": np.ones((1024, 1024, 1, 1), np.int8), "tv": np.zeros((1024, 1), np.int64),
                  "d": np.ones((2, 1024), np.int8)}
    else:  # a dense layer over the element limit
        doc = {"version": 1, "input": {"shape": [8192], **bip},
               "layers": [{"type": "dense", "mac": "xnor", "weights": {"key": "w", **bip}}]}
        arrays = {"w": np.ones((513, 8192), np.int8)}
    return write_network(tmp_path / f"{which}.yaml", doc, arrays)


@pytest.mark.parametrize("which,pattern", [
    ("wide-conv", r"layers\[0\]\.weights: 100000 output channels, more than the limit of 65536$"),
    ("big-image", r"layers\[0\]: its output of 1024×2048×2048 has 4294967296 elements per frame, "
                  r"more than the limit of 4194304$"),
    ("dense", r"layers\[0\]\.weights: array 'w' has 4202496 elements, more than the limit of 4194304$"),
])
def test_absurd_networks_fail_fast(tmp_path, which, pattern):
    path = _absurd(tmp_path, which)
    for cmd in (["check", path], ["estimate", path], ["gen", path, "-o", tmp_path / "out"]):
        one_line_error(_limited(cmd, tmp_path), pattern)
    assert not (tmp_path / "out").exists()


# -- 4. accepted though wrong, tracebacks --------------------------------------------------------
@pytest.mark.parametrize("edit,pattern", [
    (lambda d: d.update(version=1.0), r"version: must be an integer \(1 or 2\), got 1\.0$"),
    (lambda d: d.update(version=True), r"version: must be an integer \(1 or 2\), got True$"),
    (lambda d: d["input"]["quantizer"].update(scale="1"),
     r"input\.quantizer\.scale: input should be a valid number, got '1'$"),
    (lambda d: [la.update(name="x") for la in d["layers"]],
     r"layers\[1\]\.name: duplicate layer name 'x' \(also layers\[0\]\)$"),
    (lambda d: d["layers"][1].update(name="layer0") or d["layers"][0].pop("name"),
     r"layers\[1\]\.name: duplicate layer name 'layer0' \(also layers\[0\]\)$"),
])
def test_strict_fields(bnn, edit, pattern):
    import yaml

    doc = yaml.safe_load(bnn.read_text())
    edit(doc)
    (bnn.parent / "bad.yaml").write_text(yaml.safe_dump(doc))
    one_line_error(nomul("check", bnn.parent / "bad.yaml"), pattern)


def test_tracebacks_become_one_line(tmp_path, bnn):
    import io

    bip = {"encoding": "bipolar"}
    empty = write_network(tmp_path / "empty.yaml", {
        "version": 1, "input": {"shape": [4], **bip},
        "layers": [{"type": "dense", "mac": "xnor", "weights": {"key": "w", **bip}}]},
        {"w": np.ones((0, 4), np.int8)})
    one_line_error(nomul("check", empty), r"layers\[0\]\.weights: array 'w' is empty \(shape \(0, 4\)\)$")
    rq = write_network(tmp_path / "rq.yaml", {
        "version": 1, "input": {"shape": [4], "encoding": "int", "bits": 4},
        "layers": [{"type": "dense", "mac": "int", "weights": {"key": "w", "encoding": "int", "bits": 4},
                    "activation": {"type": "requant", "multiplier": 2**70, "clip": [0, 3]}}]},
        {"w": np.ones((2, 4), np.int8)})
    one_line_error(nomul("check", rq), r"layers\[0\]\.activation\.multiplier: input should be less "
                                       r"than or equal to 4611686018427387904")
    for name, x, pattern in [
        ("x0", np.zeros((0, 64)), r"--input: x0.npy holds no inputs \(shape \(0, 64\)\)$"),
        ("xc", np.zeros((3, 64), complex), r"--input: xc.npy must hold integer or real numbers, not complex128$"),
        ("xs", np.array([["a"] * 64] * 2), r"--input: xs.npy must hold integer or real numbers, not <U1$"),
        ("xd", np.zeros((2, 64), "datetime64[s]"), r"--input: xd.npy must hold integer or real numbers"),
    ]:
        np.save(tmp_path / f"{name}.npy", x)
        one_line_error(nomul("golden", bnn, "--input", tmp_path / f"{name}.npy"), pattern)
    header = io.BytesIO()  # an .npy header that claims 2^40 elements
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (1 << 34, 64)})
    (tmp_path / "xhuge.npy").write_bytes(header.getvalue() + bytes(64))
    one_line_error(nomul("golden", bnn, "--input", tmp_path / "xhuge.npy"),
                   r"--input: array 'xhuge' has 1099511627776 elements, more than the limit")
    np.save(tmp_path / "xtrunc.npy", np.zeros((9, 64)))
    (tmp_path / "xtrunc.npy").write_bytes((tmp_path / "xtrunc.npy").read_bytes()[:-8])
    one_line_error(nomul("golden", bnn, "--input", tmp_path / "xtrunc.npy"),
                   r"--input: array 'xtrunc' in xtrunc.npy is truncated")
    x = np.zeros((2, 64))
    np.save(tmp_path / "x.npy", x)
    r = nomul("golden", bnn, "--input", tmp_path / "x.npy", "--out", tmp_path / "new" / "dir" / "y.npz")
    assert r.returncode == 0 and (tmp_path / "new" / "dir" / "y.npz").is_file(), r.stderr
    r = nomul("estimate", bnn, "--json", tmp_path / "e" / "f" / "e.json")
    assert r.returncode == 0 and (tmp_path / "e" / "f" / "e.json").is_file(), r.stderr
    (tmp_path / "afile").write_text("")
    one_line_error(nomul("estimate", bnn, "--json", tmp_path / "afile" / "e.json"),
                   r"--json: cannot create the folder of .*afile/e.json")


def test_fst_without_lz4_is_one_line(bnn, monkeypatch):
    from gen import cmd_sim

    have = subprocess.run(["sh", "-c", "echo '#include <lz4.h>' | c++ -E -x c++ - >/dev/null 2>&1"]
                          ).returncode == 0
    if have:
        monkeypatch.setenv("CXX", "false")  # a compiler that finds nothing
    with pytest.raises(NetworkError, match=r"^--waves: Verilator writes FST through liblz4, whose "
                                           r"headers are not installed \(apt install liblz4-dev"):
        cmd_sim._check_lz4()


# -- 5. file references ----------------------------------------------------------------------------
def test_arrays_must_stay_in_the_network_folder(tmp_path, bnn):
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = tmp_path / "netdir"
    sub.mkdir()
    for p in (bnn, bnn.with_suffix(".npz")):
        (sub / p.name).write_bytes(p.read_bytes())
    (outside / "w.npz").write_bytes(bnn.with_suffix(".npz").read_bytes())
    net = sub / "net.yaml"
    (sub / "link.npz").symlink_to(outside / "w.npz")
    (sub / "inner").mkdir()
    (sub / "inner" / "ok.npz").write_bytes(bnn.with_suffix(".npz").read_bytes())
    for ref, pattern in [
        (str(outside / "w.npz"), r"arrays: /.*w.npz must be a file name relative to the network "
                                 r"file's folder, without '\.\.'$"),
        ("../outside/w.npz", r"arrays: \.\./outside/w.npz must be a file name relative"),
        ("inner/../../outside/w.npz", r"arrays: inner/\.\./\.\./outside/w.npz must be a file name"),
        ("link.npz", r"arrays: link.npz resolves to .*outside/w.npz, outside the network file's folder$"),
        (str(sub / "net.npz"), r"arrays: /.*net.npz must be a file name relative"),  # even inside
    ]:
        one_line_error(nomul("check", _with(net, "ref.yaml", arrays=ref)), pattern)
    assert nomul("check", _with(net, "ref.yaml", arrays="inner/ok.npz")).returncode == 0


@pytest.mark.parametrize("what", ["weight", "scale"])
def test_import_of_nan_is_one_line(tmp_path, what):
    pytest.importorskip("qonnx")
    from test_qonnx_import import Graph

    g = Graph()
    xq = g.quant("x", 1.0, 4, True)
    w = np.ones((4, 3))
    if what == "weight":
        w[1, 1] = np.nan
    wq = g.quant(g.const(w), float("nan") if what == "scale" else 1.0, 2, True, narrow=True)
    model = g.model([1, 4], g.node("MatMul", [xq, wq], name="MatMul_0"), [1, 3])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    one_line_error(nomul("import", path, "-o", tmp_path / "n.yaml"),
                   r"initializers\[\d+\] \(Quant_1_param[01]\): holds nan at index \d+: values must "
                   r"be finite$")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_interrupted_rewrite_leaves_a_detectable_pair(tmp_path, monkeypatch):
    """A rewrite interrupted between the .npz and the .yaml (as `nomul import` over an existing
    network can be) leaves the new arrays beside the old description: rejected on loading."""
    import gen.netfile as netfile

    def net(seed):
        return random_network(np.random.default_rng(seed), ["xnor", "xnor"], in_shape=[8],
                              widths=[8, 4])
    path = write_network(tmp_path / "net.yaml", *net(0))
    assert nomul("check", path).returncode == 0
    real = netfile.atomic_write_bytes

    def interrupted(p, data):
        if Path(p).suffix == ".yaml":
            raise KeyboardInterrupt
        real(p, data)
    monkeypatch.setattr(netfile, "atomic_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_network(tmp_path / "net.yaml", *net(1))
    one_line_error(nomul("check", path), r"arrays_sha256: net.npz is not the arrays file this "
                                         r"network was written with \(SHA-256 [0-9a-f]{16}…, "
                                         r"expected [0-9a-f]{16}…\); write both again$")


def test_sigkill_leftovers_are_recovered(tmp_path, monkeypatch):
    """What a SIGKILL leaves (no handler runs) the next command cleans up: a swap cut between
    its renames is finished backwards (the old output returns), temporary folders go."""
    from gen.tempdirs import temporary_folder

    dead = subprocess.Popen(["true"])
    dead.wait()  # a process id that no longer runs
    out = tmp_path / "out"
    old = tmp_path / f".out.nomul-old-{dead.pid}-abcd1234"
    old.mkdir()
    (old / "manifest.json").write_text('{"format": "nomul-accelerator"}')
    new = tmp_path / f".out.nomul-new-{dead.pid}-efgh5678"
    new.mkdir()
    (new / "half").write_text("")
    mine = tmp_path / "unrelated-123-abc"
    mine.mkdir()
    replace_folder(out, {"manifest.json": b'{"format": "nomul-accelerator"}', "x": b"1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "unrelated-123-abc"]
    assert (out / "x").read_bytes() == b"1"

    root = tmp_path / "t"
    monkeypatch.setenv("NOMUL_TMPDIR", str(root))
    with temporary_folder("sim-") as a:
        pass
    stale = root / f"sim-{dead.pid}-zz"
    stale.mkdir()
    (stale / ".nomul-temporary-folder").write_text("")
    foreign = root / f"build-{dead.pid}-zz"  # no marker: not nomul's, never touched
    foreign.mkdir()
    with temporary_folder("sim-") as b:
        assert b.is_dir() and not a.exists()
    assert sorted(p.name for p in root.iterdir()) == [foreign.name]
