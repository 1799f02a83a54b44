"""Property-based fuzzing of every input nomul reads (hypothesis; issue #11).

Random valid networks come from :func:`sim.randnet.random_network` (every MAC kind, dense and
convolutional, the activation styles); each example then mutates one field of the description
(a wrong type, a bad value, a deleted or an unknown key), one array (dtype, shape, values,
missing), or the bytes of the files. The properties: a valid network loads; a mutated one is
either still valid or rejected with :class:`gen.errors.NetworkError` — one line naming the field,
never another exception — within bounded time and memory; and ``nomul gen`` on a rejected input
writes nothing.

Deterministic for CI: ``derandomize=True`` derives the examples from the test's name, and every
example prints the seed of its network (rerun one with ``random_network(np.random.default_rng(
seed), ...)``). ``NOMUL_FUZZ_EXAMPLES=N`` runs N examples per test instead of the default;
``NOMUL_FUZZ_RANDOM=1`` draws new examples each run (hypothesis prints the seed of a failure).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from gen.errors import NetworkError
from gen.load import load_network, network_from_dict
from gen.netfile import write_network
from sim.randnet import MAC_TYPES, random_network

EXAMPLES = int(os.environ.get("NOMUL_FUZZ_EXAMPLES", "0")) or None
RANDOM = os.environ.get("NOMUL_FUZZ_RANDOM") == "1"  # new examples each run (hypothesis prints a seed)
MAX_SECONDS = 2.0
MAX_BYTES = 300 << 20

MACS = sorted(MAC_TYPES)


def fuzz_settings(default: int):
    return settings(max_examples=EXAMPLES or default, derandomize=not RANDOM, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    print_blob=True)


def fmt_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@st.composite
def networks(draw):
    """(seed, doc, arrays) of a random valid network."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    conv = draw(st.booleans())
    n = draw(st.integers(1, 3))
    macs = [draw(st.sampled_from(MACS)) for _ in range(n)]
    kw = dict(conv=conv, argmax=draw(st.booleans()),
              style=draw(st.sampled_from(["multithreshold", "requant"])))
    if conv:
        kw.update(in_shape=[draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(3, 6))],
                  pool=draw(st.booleans()))
    doc, arrays = random_network(rng, macs, **kw)
    print(f"network seed {seed}: {macs} {kw}")
    note(f"network seed {seed}: macs={macs} {kw}")
    return seed, doc, arrays


def leaves(node, prefix=()):
    """Every path into the description (mappings and lists included)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += leaves(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += leaves(v, (*prefix, i))
    return out


def get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


BAD_VALUES = [None, -1, 0, 1, 2, 3, 7, 64, 65537, 2**31, 2**70, -(2**70), 1.5, 1.0, float("nan"),
              float("inf"), True, False, "", "x", "1", "none", "dense", "x" * 300, [], [0], [1, 2],
              [1, 2, 3, 4], [[1]], {}, {"a": 1}, {"type": "none"}]


def check_rejection(e: NetworkError, path_text: str | None = None):
    msg = str(e)
    assert "\n" not in msg and len(msg) < 600, msg
    assert "Traceback" not in msg
    if path_text is not None:
        assert e.path == path_text, (e.path, path_text, msg)


@contextlib.contextmanager
def bounded(what: str):
    """Fail when the block takes more than MAX_SECONDS of CPU time (not wall time, which a
    loaded machine stretches) or allocates more than MAX_BYTES."""
    tracemalloc.start()
    t = time.process_time()
    try:
        yield
    finally:
        dt = time.process_time() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert dt < MAX_SECONDS, f"{what}: {dt:.2f} s"
    assert peak < MAX_BYTES, f"{what}: {peak >> 20} MB"


# -- properties ------------------------------------------------------------------------------------
@fuzz_settings(100)
@given(networks())
def test_random_valid_networks_load(net):
    seed, doc, arrays = net
    network_from_dict(doc, arrays=arrays)


@fuzz_settings(1000)
@given(networks(), st.data())
def test_field_mutations_are_one_line_errors(net, data):
    seed, doc, arrays = net
    paths = leaves(doc)
    # choices through a seeded generator: hypothesis' own draws favour the first paths
    salt = data.draw(st.integers(0, 2**32 - 1), label="mutation seed")
    pick = np.random.default_rng(salt)
    path = paths[int(pick.integers(len(paths)))]
    kind = ["replace", "delete", "unknown-key"][int(pick.integers(3))]
    parent = get(doc, path[:-1])
    expect_path = None
    related = None  # a wrong-type replacement must be reported at (or next to) its own path
    if kind == "replace":
        old = parent[path[-1]]
        new = BAD_VALUES[int(pick.integers(len(BAD_VALUES)))]
        parent[path[-1]] = new
        if (path[0] != "metadata" and isinstance(old, (int, str)) and not isinstance(old, bool)
                and type(new) is not type(old) and new is not None):
            related = fmt_path(path)
    elif kind == "delete":
        del parent[path[-1]]
    else:
        target = get(doc, path)
        if not isinstance(target, dict) or path[0] == "metadata":
            return
        target["bogus_key"] = 1
        expect_path = fmt_path((*path, "bogus_key"))
    print(f"  {kind} {fmt_path(path)} (mutation seed {salt})")
    with bounded(f"seed {seed}, {kind} {fmt_path(path)}"):
        try:
            network_from_dict(doc, arrays=arrays)
        except NetworkError as e:
            check_rejection(e, expect_path)
            if related is not None:
                assert related.startswith(e.path) and e.path, (str(e), related)
            return
    assert expect_path is None, f"an unknown key was accepted: {expect_path}"
    assert related is None, f"{related}: a value of the wrong type was accepted"


def _mutate_array(a: np.ndarray, how: str, rng):
    if how == "float":
        return a.astype(np.float64) + 0.5
    if how == "complex":
        return a.astype(np.complex128)
    if how == "bool":
        return a != 0
    if how == "object":
        return a.astype(object)
    if how == "drop-row":
        return a[1:] if a.ndim else a
    if how == "empty":
        return a[:0] if a.ndim else np.zeros(0, a.dtype)
    if how == "add-dim":
        return a[None]
    if how == "flatten":
        return a.reshape(-1)
    if how == "huge-values":
        b = a.astype(np.int64).copy()
        b.flat[int(rng.integers(b.size))] = np.iinfo(np.int64).max
        return b
    if how == "uint64":
        b = a.astype(np.uint64).copy()
        b.flat[0] = np.uint64(2**64 - 1)
        return b
    if how == "off-by-one":
        b = a.astype(np.int64).copy()
        b.flat[int(rng.integers(b.size))] += 1
        return b
    if how == "scalar":
        return np.asarray(a.flat[0])
    raise AssertionError(how)


ARRAY_MUTATIONS = ["float", "complex", "bool", "object", "drop-row", "empty", "add-dim", "flatten",
                   "huge-values", "uint64", "off-by-one", "scalar", "missing"]


@fuzz_settings(800)
@given(networks(), st.data())
def test_array_mutations_are_one_line_errors(net, data):
    seed, doc, arrays = net
    salt = data.draw(st.integers(0, 2**32 - 1), label="mutation seed")
    rng = np.random.default_rng(salt)
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    how = ARRAY_MUTATIONS[int(rng.integers(len(ARRAY_MUTATIONS)))]
    arrays = dict(arrays)
    if how == "missing":
        del arrays[key]
    else:
        arrays[key] = _mutate_array(np.asarray(arrays[key]), how, rng)
    print(f"  {how} {key} (mutation seed {salt})")
    with bounded(f"seed {seed}, {how} {key}"):
        try:
            network_from_dict(doc, arrays=arrays)
        except NetworkError as e:
            check_rejection(e)
            assert e.path, str(e)  # an array error names the field that refers to the array
            if how in ("float", "complex", "object", "missing", "empty"):
                assert key in str(e), str(e)
            return
    # still valid: only value changes that stay legal, or a bool mask / thresholds, may pass
    assert how in ("off-by-one", "bool", "huge-values", "scalar", "flatten", "add-dim",
                   "drop-row", "uint64"), f"{how} of {key} accepted"


def _cli(args) -> tuple[int, str]:
    from gen.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    return rc, err.getvalue()


FILE_MUTATIONS = ["yaml-truncate", "yaml-flip-byte", "yaml-duplicate-line", "yaml-deep",
                  "yaml-alias-bomb", "npz-truncate", "npz-flip-byte", "npz-garbage",
                  "arrays-escape", "arrays-absolute"]


@fuzz_settings(150)
@given(networks(), st.sampled_from(FILE_MUTATIONS), st.integers(0, 2**32 - 1))
def test_file_mutations_write_nothing(net, how, pos_seed):
    seed, doc, arrays = net
    rng = np.random.default_rng(pos_seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_network(tmp / "net.yaml", doc, arrays)
        npz = tmp / "net.npz"
        if how.startswith("npz-") and rng.integers(2):  # without the digest, to reach the reader
            d = yaml.safe_load(path.read_text())
            del d["arrays_sha256"]
            path.write_text(yaml.safe_dump(d))
        text = path.read_text()
        if how == "yaml-truncate":
            path.write_text(text[:int(rng.integers(len(text)))])
        elif how == "yaml-flip-byte":
            b = bytearray(path.read_bytes())
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
            path.write_bytes(bytes(b))
        elif how == "yaml-duplicate-line":
            lines = text.splitlines(True)
            i = int(rng.integers(len(lines)))
            path.write_text("".join(lines[:i + 1] + [lines[i]] + lines[i + 1:]))
        elif how == "yaml-deep":
            path.write_text(text + "metadata: " + "[" * 3000 + "]" * 3000 + "\n")
        elif how == "yaml-alias-bomb":
            bomb = "  a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
                f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]\n" for i in range(1, 9))
            d = yaml.safe_load(text)
            d.pop("metadata", None)
            path.write_text(yaml.safe_dump(d) + "metadata:\n" + bomb)
        elif how == "npz-truncate":
            b = npz.read_bytes()
            npz.write_bytes(b[:int(rng.integers(len(b)))])
        elif how == "npz-flip-byte":
            b = bytearray(npz.read_bytes())
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
            npz.write_bytes(bytes(b))
        elif how == "npz-garbage":
            npz.write_bytes(rng.bytes(int(rng.integers(1, 4096))))
        else:
            d = yaml.safe_load(text)
            d["arrays"] = "../net.npz" if how == "arrays-escape" else str(npz)
            path.write_text(yaml.safe_dump(d))
        print(f"  {how} (position seed {pos_seed})")
        with bounded(f"seed {seed}, {how}"):
            rc, err = _cli(["check", path])
        assert rc in (0, 2), err
        if how in ("yaml-deep", "yaml-alias-bomb", "npz-garbage", "arrays-escape", "arrays-absolute"):
            assert rc == 2, f"{how} accepted"
        if rc == 2:
            assert err.count("\n") == 1 and err.startswith("nomul: error: "), err
            before = sorted(p.name for p in tmp.iterdir())
            rc, err = _cli(["gen", path, "-o", tmp / "out"])
            assert rc == 2 and err.count("\n") == 1, err
            assert sorted(p.name for p in tmp.iterdir()) == before  # nothing written
        else:  # a mutation that kept the network valid (a comment, a byte in a string)
            load_network(path)


@pytest.mark.parametrize("text", ["", "null", "[]", "1", "'x'", "version: 1", "{version: 1, layers: []}",
                                  "!!python/object/apply:os.system ['true']", "\x00", "a: b: c"])
def test_degenerate_yaml(tmp_path, text):
    p = tmp_path / "net.yaml"
    p.write_text(text)
    with pytest.raises(NetworkError) as info:
        load_network(p)
    check_rejection(info.value)
