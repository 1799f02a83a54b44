"""Measures of how well the code keeps one home per concept (docs/architecture.md).

Prints, for the package (gen/, hw/, sim/, quant_models/):

- ``isinstance`` checks and ``kind`` comparisons over layer types outside the layer ops
  (gen/ops/);
- the package files that name a MAC kind as a string literal (``"xnor"``, ``"and"``, ``"adder"``:
  the kinds whose names are not also element encodings), outside the MAC-kind registry;
- imports of gen/, sim/ or quant_models/ inside hw/;
- private-member accesses (ruff's SLF001).

    python scripts/architecture_metrics.py [--json]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gen", "hw", "sim", "quant_models")
LAYER_NODES = {"Dense", "Conv2d", "MaxPool2d", "Argmax", "Compute"}
LAYER_TYPES = {"dense", "conv2d", "maxpool2d", "argmax"}
MAC_LITERALS = {"xnor", "and", "adder"}


def _files():
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if "examples" not in p.parts:
                yield p


def layer_type_checks() -> list[str]:
    out = []
    for p in _files():
        rel = p.relative_to(ROOT)
        if rel.parts[:2] == ("gen", "ops"):
            continue
        tree = ast.parse(p.read_text())
        own = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}  # a module's own classes
        nodes = LAYER_NODES - own
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                if names & nodes:
                    out.append(f"{rel}:{node.lineno}: isinstance over {sorted(names & nodes)}")
            if isinstance(node, ast.Compare):
                lits = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
                attrs = {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)}
                if lits & LAYER_TYPES and "kind" in attrs:
                    out.append(f"{rel}:{node.lineno}: kind compared with {sorted(lits & LAYER_TYPES)}")
    return out


def mac_literal_files() -> list[str]:
    out = []
    for p in _files():
        rel = p.relative_to(ROOT)
        if str(rel) in ("gen/macs.py", "hw/lanes.py"):
            continue
        tree = ast.parse(p.read_text())
        lits = {c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and c.value in MAC_LITERALS}
        if lits:
            out.append(f"{rel}: {sorted(lits)}")
    return out


def hw_imports() -> list[str]:
    out = []
    for p in sorted((ROOT / "hw").glob("*.py")):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import)\s+(gen|sim|quant_models)\b", line):
                out.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    return out


def private_accesses() -> list[str]:
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "SLF001", "--output-format",
                        "concise", "--no-cache", *PACKAGES], cwd=ROOT, capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if "SLF001" in line]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {"layer_type_checks": layer_type_checks(), "mac_literal_files": mac_literal_files(),
           "hw_imports": hw_imports(), "private_accesses": private_accesses()}
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    for key, items in res.items():
        print(f"{key}: {len(items)}")
        for it in items:
            print(f"  {it}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
