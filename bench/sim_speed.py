"""Simulation speed of the cocotb co-simulation: Icarus against Verilator.

A TFC-sized binary network (784-64-64-64-10, xnor, argmax; FINN's TFC) is generated with the
default folding and co-simulated on both simulators with random stalls. Reported per simulator:
build time, frames/s and cycles/s of the test itself, and the share of the simulation process's
CPU time spent in the Python testbench (driver, monitor, scoreboard). The crossover is the number
of frames past which Verilator's longer build is repaid by its faster simulation.

Writes bench/results/sim_speed.json and the "## Simulation speed" section of docs/benchmarks.md.

    python bench/sim_speed.py [--frames-icarus 20] [--frames-verilator 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.load import network_from_dict
from sim import golden
from sim.randnet import random_network, random_values
from sim.runner import cosimulate, generate

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Simulation speed"


def tfc(seed: int):
    doc, arrays = random_network(np.random.default_rng(seed), ["xnor"] * 4, in_shape=[784],
                                 widths=[64, 64, 64, 10], argmax=True)
    doc["input"] = {"shape": [784], "encoding": "bipolar"}
    doc["name"] = "tfc-w1a1"
    return network_from_dict(doc, arrays=arrays)


def measure(net, sources, streams, sim, frames, seed, work: Path) -> dict:
    x = random_values(np.random.default_rng(seed), net.input.dtype, (frames, *net.input.shape))
    want = golden.run(net, x).outputs
    t0 = time.perf_counter()
    r = cosimulate(sources, streams, x, want, build_dir=work / sim, sim=sim, seed=seed, stall=0.2)
    wall = time.perf_counter() - t0
    assert r.passed, r.mismatch_report
    return {"simulator": sim, "frames": r.frames, "cycles": r.cycles,
            "build_s": round(r.build_s, 2), "test_s": round(r.test_s, 2), "wall_s": round(wall, 2),
            "sim_cpu_s": round(r.loop_s, 2), "python_cpu_s": round(r.python_s, 2),
            "frames_per_s": round(r.frames / r.test_s, 2), "cycles_per_s": round(r.cycles / r.test_s),
            "cycles_per_cpu_s": round(r.cycles / r.loop_s),
            "python_share": round(r.python_s / r.loop_s, 3),
            "cycles_per_frame": r.cycles_per_frame,
            "expected_cycles_per_frame": r.expected_cycles_per_frame}


def crossover(a: dict, b: dict) -> float | None:
    """Frames past which ``b`` (the slower build) finishes sooner than ``a``, build included."""
    ta, tb = a["test_s"] / a["frames"], b["test_s"] / b["frames"]
    if tb >= ta:
        return None
    return max(0.0, (b["build_s"] - a["build_s"]) / (ta - tb))


def markdown(res: dict) -> str:
    ic, vl = res["icarus"], res["verilator"]
    rows = "\n".join(
        f"| {r['simulator']} | {r['build_s']:.1f} | {r['frames']} | {r['frames_per_s']:.2f} | "
        f"{r['cycles_per_s']:,} | {r['python_share']:.0%} |" for r in (ic, vl))
    x = res["crossover_frames"]
    xs = "never (Verilator is not faster)" if x is None else f"about {math.ceil(x)} frames"
    return f"""{SECTION}

`python bench/sim_speed.py` — cocotb co-simulation (random stalls, probability 0.2 on both sides)
of a TFC-sized binary network (784-64-64-64-10, xnor, argmax; default folding:
{ic['expected_cycles_per_frame']} cycles per frame planned, {ic['cycles_per_frame']} measured),
on {res['machine']}. Times are wall-clock on a shared 2-core machine; the Python share is the
testbench's part of the simulation process's CPU time.

| simulator | build (s) | frames | frames/s | cycles/s | Python share |
|---|---|---|---|---|---|
{rows}

Verilator repays its longer build after {xs} (build + simulation time equal).
"""


def update_docs(text: str):
    from docsection import replace_section

    replace_section(ROOT / "docs" / "benchmarks.md", SECTION, text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames-icarus", type=int, default=20)
    p.add_argument("--frames-verilator", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_speed.json"))
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    net = tfc(args.seed)
    with tempfile.TemporaryDirectory(prefix="nomul-simspeed-") as tmp:
        work = Path(tmp)
        sources, streams = generate(net, work / "gen")
        ic = measure(net, sources, streams, "icarus", args.frames_icarus, args.seed, work)
        print(ic)
        vl = measure(net, sources, streams, "verilator", args.frames_verilator, args.seed, work)
        print(vl)
    res = {"network": "784-64-64-64-10 xnor (TFC)", "stall": 0.2, "icarus": ic, "verilator": vl,
           "crossover_frames": crossover(ic, vl),
           "machine": f"{platform.machine()}, Python {platform.python_version()}"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    if not args.no_docs:
        update_docs(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
