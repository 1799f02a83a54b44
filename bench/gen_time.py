"""Time from network file to Verilog, for a 784-64-64-64-10 binary MLP and a small CNN.

Measured after one warm-up conversion (Amaranth's builtin Yosys compiles its WebAssembly on the
first call of a process). Each figure is the median of ``--repeat`` runs of: load the network
file, plan the folding, build the Amaranth top level, convert it to Verilog. Writes
bench/results/gen_time.json and the "## Generation time" section of docs/benchmarks.md.

    .venv/bin/python bench/gen_time.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen.emit import verilog_text  # noqa: E402
from gen.load import load_network  # noqa: E402
from gen.netfile import write_network  # noqa: E402
from gen.plan import plan_network  # noqa: E402
from gen.top import Accelerator  # noqa: E402
from sim.randnet import random_network  # noqa: E402

SECTION = "## Generation time"


def networks(folder: Path) -> dict[str, Path]:
    doc, arrays = random_network(np.random.default_rng(0), ["xnor"] * 4, in_shape=[784],
                                 widths=[64, 64, 64, 10], argmax=True)
    doc["name"] = "mlp-784-64-64-64-10-binary"
    mlp = write_network(folder / "mlp.yaml", doc, arrays)
    doc, arrays = random_network(np.random.default_rng(1), ["xnor", "xnor", "xnor"], conv=True,
                                 in_shape=[1, 12, 12], widths=[8, 16, 10], pool=True, argmax=True)
    doc["name"] = "cnn-1x12x12-c8-p-c16-p-d10-binary"
    cnn = write_network(folder / "cnn.yaml", doc, arrays)
    return {"mlp": mlp, "cnn": cnn}


def once(path: Path) -> dict:
    c0 = time.process_time()
    t0 = time.perf_counter()
    net = load_network(path)
    t1 = time.perf_counter()
    plan = plan_network(net)
    accel = Accelerator(net, plan)
    t2 = time.perf_counter()
    text = verilog_text(accel)
    t3 = time.perf_counter()
    c3 = time.process_time()
    return {"cpu_s": c3 - c0, "load_s": t1 - t0, "build_s": t2 - t1, "verilog_s": t3 - t2, "total_s": t3 - t0,
            "verilog_bytes": len(text), "interval_cycles": plan.interval,
            "lanes": sum(lp.lanes for lp in plan.layers), "layers": len(net.layers)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        nets = networks(Path(tmp))
        t = time.perf_counter()
        once(nets["cnn"])
        warmup = time.perf_counter() - t
        results = {}
        for name, path in nets.items():
            runs = [once(path) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[name] = {"network": load_network(path).name, **med}
    out = {"machine": {"python": platform.python_version(), "processor": platform.machine()},
           "repeat": args.repeat, "first_call_s": warmup, "results": results,
           "target_mlp_s": 5.0}
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "gen_time.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = ["| network | layers | lanes | interval (cycles) | load | plan + build | Verilog | total | CPU "
            "| Verilog size |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        rows.append(f"| {r['network']} | {int(r['layers'])} | {int(r['lanes'])} | {int(r['interval_cycles']):,} "
                    f"| {r['load_s']:.2f} s | {r['build_s']:.2f} s | {r['verilog_s']:.2f} s "
                    f"| **{r['total_s']:.2f} s** | {r['cpu_s']:.2f} s | {int(r['verilog_bytes']) // 1024} KiB |")
    ok = results["mlp"]["total_s"] < 5.0
    section = "\n".join([
        SECTION, "",
        "Network file to Verilog (`bench/gen_time.py`; median of "
        f"{args.repeat} runs after one warm-up conversion in the same process, which took {warmup:.1f} s; "
        "the builtin Yosys's WebAssembly compile of a first-ever run, ~9 s, is cached in ~/.cache). "
        "Default folding (about 64 lanes "
        "in the largest layer). Wall-clock times; CPU is the process's CPU time (Yosys runs "
        "in-process), which is what the machine's other load does not inflate. Target: under 5 s for the MLP — "
        f"{'met' if ok else 'NOT met'}.", "",
        *rows, "",
        "Rerun: `.venv/bin/python bench/gen_time.py`; raw numbers in `bench/results/gen_time.json`.",
        ""])
    from docsection import replace_section

    replace_section(ROOT / "docs" / "benchmarks.md", SECTION, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
