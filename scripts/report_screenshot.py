"""A screenshot of report.html rendered in headless Chromium, for docs/report.md.

Generates the bundled digits_bnn example, its model estimate (``nomul estimate --json``), an
exploration (``nomul explore``, one local worker) and the report (``nomul report`` with the
MAC-kind comparison) in a temporary folder, and renders the page with
``chromium --headless --screenshot`` into ``docs/report.png``. Run from the repository root::

    .venv/bin/python scripts/report_screenshot.py [--chromium /usr/bin/chromium] [--height 3400]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NET = ROOT / "quant_models" / "examples" / "digits_bnn.yaml"


def nomul(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gen.cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=3400)
    ap.add_argument("-o", "--out", default=str(ROOT / "docs" / "report.png"))
    args = ap.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"Chromium not found at {args.chromium} (--chromium PATH)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nomul-shot-") as d:
        out = Path(d) / "out"
        nomul("gen", str(NET), "-o", str(out))
        nomul("estimate", str(NET), "--target", "ecp5-25k", "--json", str(out / "estimate.json"))
        nomul("explore", str(NET), "--target", "ecp5-25k", "--workers", "1", "--no-cache", "-o", str(out))
        nomul("report", str(out), "--network", str(NET))
        profile = Path(d) / "profile"
        subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={args.width},{args.height}",
                        f"--screenshot={Path(args.out).resolve()}", (out / "report.html").as_uri()],
                       check=True, capture_output=True, timeout=300)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
