"""Digests of everything nomul generates for the bundled examples, to check a refactoring.

For every bundled example network and every family (xilinx, ecp5, ice40), and for each board,
this builds the accelerator folder in memory (``gen.emit.build``) and records the SHA-256 of
every file, the planned interval, and the golden model's outputs of every layer on 64 random
inputs. ``--write F`` records them; ``--check F`` compares with a recording and
prints every difference (exit 1 if any, other than those named with ``--allow``).

    python scripts/output_digests.py --write /tmp/before.json
    ... change the code ...
    python scripts/output_digests.py --check /tmp/before.json [--allow manifest.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = ("xilinx", "ecp5", "ice40")
BOARDS = ("icebreaker", "ulx3s", "arty-a7-35")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(only: list[str] | None = None) -> dict:
    from gen.boards import get_board
    from gen.emit import build
    from gen.load import load_network
    from sim import golden
    from sim.randnet import random_values

    examples = sorted((ROOT / "quant_models" / "examples").glob("*.yaml"))
    out = {}
    for path in examples:
        if only and path.stem not in only:
            continue
        net = load_network(path)
        rec = {}
        for fam in FAMILIES:
            g = build(net, family=fam, net_file=path.name)
            rec[fam] = {name: _sha(data) for name, data in sorted(g.files.items())}
            rec[fam]["interval"] = g.plan.interval
        if path.stem == "digits_bnn":
            for b in BOARDS:
                g = build(net, board=get_board(b), check_fit=False, net_file=path.name)
                rec[f"board:{b}"] = {name: _sha(data) for name, data in sorted(g.files.items())}
        x = random_values(np.random.default_rng(0), net.input.dtype, (64, *net.input.shape))
        res = golden.run(net, x)
        rec["golden"] = _sha(b"".join(np.ascontiguousarray(r.out).tobytes() for r in res.layers))
        out[path.stem] = rec
        print(f"{path.stem}: done", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="F")
    g.add_argument("--check", metavar="F")
    ap.add_argument("--allow", action="append", default=[], metavar="FILE",
                    help="a file name whose differences are intended (e.g. manifest.json)")
    ap.add_argument("--only", action="append", metavar="EXAMPLE")
    args = ap.parse_args()
    now = digests(args.only)
    if args.write:
        Path(args.write).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        return 0
    before = json.loads(Path(args.check).read_text())
    bad = allowed = 0
    for ex, rec in now.items():
        old = before.get(ex)
        if old is None:
            print(f"{ex}: new example")
            continue
        for variant in sorted(set(rec) | set(old)):
            a, b = old.get(variant), rec.get(variant)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                for f in sorted(set(a) | set(b)):
                    if a.get(f) != b.get(f):
                        ok = f in args.allow
                        allowed += ok
                        bad += not ok
                        print(f"{ex} {variant} {f}: differs{' (allowed)' if ok else ''}")
            else:
                bad += 1
                print(f"{ex} {variant}: differs")
    print(f"{bad} unintended and {allowed} allowed differences over {len(now)} examples")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
