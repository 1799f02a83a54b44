"""Bundled example networks (network files) and the script that remakes them."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def example_paths(names=None) -> list[Path]:
    """The bundled network files, sorted; with ``names``, those examples in that order (an
    unknown name exits with the list of examples)."""
    paths = sorted(EXAMPLES.glob("*.yaml"))
    if names:
        known = {p.stem: p for p in paths}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown example {unknown[0]!r} (examples: {', '.join(known)})")
        paths = [known[n] for n in names]
    return paths
