"""The report page (gen/report.py): written by `nomul gen`, rebuilt by `nomul report DIR` with
estimate, co-simulation and exploration results; self-contained and byte-identical for the same
input."""

import json
import re

import numpy as np
import pytest

from gen.cli import main
from gen.macs import mac_names
from gen.netfile import write_network
from sim.randnet import random_network

SEED = 3


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")
    doc, arrays = random_network(rng, ["ternary", "xnor"], conv=True, in_shape=[2, 6, 6], widths=[4, 3],
                                 pool=True, argmax=True)
    net = write_network(d / "net.yaml", doc, arrays)
    assert main(["gen", str(net), "-o", str(d / "out")]) == 0
    return d, net


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_gen_writes_report(generated):
    d, _ = generated
    m = json.loads((d / "out" / "manifest.json").read_text())
    assert "report.html" in m["files"]
    html = (d / "out" / "report.html").read_text()
    text = _text(html)
    for lay in m["layers"]:
        assert lay["name"] in text
        if lay.get("pe"):
            assert f"PE {lay['pe']} × SIMD {lay['simd']}" in text
        assert f"{lay['cycles_per_frame']:,} cycles/frame" in text
    slow = m["performance"]["bottleneck"]
    assert re.search(rf'<div class="blk slow"><div class="n">{re.escape(slow)} <span class="tag">bottleneck', html)
    assert html.count('class="blk slow"') == 1
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "Resources per layer" in text and "LUT sites" in text


def test_report_with_results(generated, tmp_path, capsys):
    from gen.cmd_explore import explore, write_results

    d, net = generated
    out = d / "out"
    assert main(["estimate", str(net), "--target", "ice40-up5k", "--json", str(out / "estimate.json")]) == 0
    est = json.loads((out / "estimate.json").read_text())
    (out / "sim.json").write_text(json.dumps({"frames": 123, "mismatches": 0, "cycles_per_frame": 77.0,
                                              "latency_cycles": 4321, "expected_cycles_per_frame": 77,
                                              "accuracy": 0.875}))
    doc = explore([str(net)], target="ice40-up5k", check=0)
    write_results(out, doc)
    assert main(["report", str(out), "--network", str(net)]) == 0
    html = (out / "report.html").read_text()
    first = html
    text = _text(html)
    assert "Model estimate on ice40-up5k" in text
    assert f"Total: {est['total']['lut_sites']:,} LUT sites" in text
    for lay in est["layers"]:
        assert f"{lay['lut']:,}" in text
    assert "123" in text and "4321" in text and "87.50%" in text
    for kind in mac_names():
        assert re.search(rf'<td class="l">{kind}</td>', html)
    assert f"{len(doc['front'])} on the Pareto front" in text
    assert html.count("data:image/png;base64,") == 2          # the MAC-kind chart, the Pareto plot
    assert "<script" not in html and "https://" not in html
    assert main(["report", str(out), "--network", str(net)]) == 0
    assert (out / "report.html").read_text() == first         # byte-identical


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_report_shows_fmax_and_critical_path(generated, tmp_path):
    """With ``estimate --pnr`` results the page gives nextpnr's Fmax and the critical path's
    blocks (the place-and-route result stands in: nextpnr is too slow for the default run)."""
    import shutil

    d, net = generated
    out = tmp_path / "out"
    shutil.copytree(d / "out", out)
    for name in ("sim.json", "explore.json", "estimate.json"):
        (out / name).unlink(missing_ok=True)
    assert main(["estimate", str(net), "--target", "ice40-up5k", "--json", str(out / "estimate.json")]) == 0
    est = json.loads((out / "estimate.json").read_text())
    est["fmax_mhz"], est["clock_source"] = 61.25, "nextpnr"
    est["pnr"] = {"critical_path": {"from": "l0_mvu", "to": "l1_thr", "from_cell": "block.l0_mvu.acc_SB_DFF",
                                    "to_cell": "block.l1_thr.q_SB_DFF"}, "utilisation": {}}
    (out / "estimate.json").write_text(json.dumps(est))
    assert main(["report", str(out), "--network", str(net), "--no-kinds"]) == 0
    text = _text((out / "report.html").read_text())
    assert ("Fmax 61.2 MHz from nextpnr, critical path from l0_mvu to l1_thr "
            "(block.l0_mvu.acc_SB_DFF → block.l1_thr.q_SB_DFF)") in text
