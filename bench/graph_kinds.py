"""Area (model estimate) and interval per MAC kind of the bundled graph examples.

For each residual or depthwise-separable example network (``quant_models/examples/`` files of
format version 2 made by ``make_examples.py``), ``nomul estimate --compare-kinds``'s figures:
the network as trained, then the same topology and folding with every MAC kind (random legal
weights, seed 0; :func:`gen.cmd_estimate.compare_kinds`), on one part.

Writes ``bench/results/graph_kinds.json`` and the "MAC kinds on the graph examples" section of
``docs/benchmarks.md``. Takes about 10 s per network.

    .venv/bin/python bench/graph_kinds.py [--target ecp5-25k]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docsection import replace_section  # noqa: E402

from gen.cmd_estimate import compare_kinds  # noqa: E402
from gen.estimate import estimate_network  # noqa: E402
from gen.load import load_network  # noqa: E402
from gen.macs import get_mac  # noqa: E402

EXAMPLES = ROOT / "quant_models" / "examples"
NETWORKS = ("digits_resnet_bnn", "digits_resnet_adder", "digits_mobilenet")
RESULTS = ROOT / "bench" / "results" / "graph_kinds.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## MAC kinds on the graph examples"


def _types(kind: str) -> str:
    def name(spec):
        e = spec["encoding"]
        return e if e in ("bipolar", "ternary") else \
            f"{'s' if spec.get('signed') else ''}{e}{spec.get('bits', '')}"
    w, a = get_mac(kind).compare_types
    return f"{name(w)} × {name(a)}"


def measure(name: str, target: str) -> dict:
    net = load_network(EXAMPLES / f"{name}.yaml")
    est = estimate_network(net, target=target)
    own = {"kind": "as trained", "lut_sites": est.lut_sites, "lut": est.total("lut"),
           "ff": est.total("ff"), "bram": est.total("bram"),
           "weight_bits": est.memory["weight_bits"], "interval": est.interval,
           "latency": est.latency, "fps": est.fps}
    rows = [{k: v for k, v in r.items() if k != "estimate"}
            for r in compare_kinds(net, target=target)]
    return {"network": name, "layers": len(net.layers), "macs_per_frame": sum(
        layer.macs for layer in net.layers), "as_trained": own, "kinds": rows}


def markdown(res: dict) -> str:
    lines = [
        SECTION,
        "",
        "Written by `bench/graph_kinds.py` (rerun: `.venv/bin/python bench/graph_kinds.py`, "
        f"{res['wall_s']} s; figures in `bench/results/graph_kinds.json`): the "
        f"area model's estimate on {res['target']} (`nomul estimate --compare-kinds`) of the "
        "residual and depthwise-separable example networks ([examples](examples.md)) as "
        "trained, then of the same topology and folding (each network's default) with every "
        "MAC kind in every compute layer (random legal weights and activations of the kind's "
        "comparison types, seed 0). LUT sites count LUTs plus the carry and LUT-RAM cells that "
        "take LUT sites; *interval* is the cycle model's cycles per frame (the co-simulated "
        "interval of the networks as trained equals it: [examples](examples.md)); *speed-up at "
        "equal LUTs* is frames/s per LUT site against int8's.",
        "",
    ]
    for r in res["networks"]:
        o = r["as_trained"]
        lines += [
            f"**`{r['network']}`** ({r['macs_per_frame']:,} MACs per frame): as trained "
            f"{o['lut_sites']:,} LUT sites ({o['lut']:,} LUTs), {o['ff']:,} FF, {o['bram']} BRAM, "
            f"{o['weight_bits']:,} weight bits, interval {o['interval']:,} cycles, latency "
            f"{o['latency']:,} cycles.",
            "",
            "| kind | weights × acts | weight bits | LUT sites | LUTs vs int8 | FF | BRAM | "
            "interval (cycles) | speed-up at equal LUTs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k in r["kinds"]:
            lines.append(
                f"| {k['kind']} | {_types(k['kind'])} | {k['weight_bits']:,} | {k['lut_sites']:,} | "
                f"{k['lut_ratio']:.2f} | {k['ff']:,} | {k['bram']} | {k['interval']:,} | "
                f"{k['speedup_equal_luts']:.1f}× |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="ecp5-25k")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    res = {"target": args.target, "networks": [measure(n, args.target) for n in NETWORKS]}
    res["wall_s"] = round(time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    if not args.no_docs:
        replace_section(DOC, SECTION, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
