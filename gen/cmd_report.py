"""``nomul report DIR``: rebuild a generated folder's report.html from its manifest and any
estimate, co-simulation and exploration results (:mod:`gen.report`)."""

from __future__ import annotations

from pathlib import Path

from .errors import NetworkError
from .netfile import network_digest

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="rebuild report.html of a generated folder, with estimate, sim and explore results",
        description="Write DIR/report.html (one self-contained page: no network access, no "
                    "JavaScript) from DIR/manifest.json and the results given or found in DIR "
                    "(*.json written by `nomul estimate --json`, `nomul sim --json`, "
                    "`nomul explore`). With the network file (--network, or the manifest's file "
                    "name in DIR's parent folder or here, if its SHA-256 matches) the model's "
                    "estimate and the MAC-kind comparison are computed too.")
    p.add_argument("dir", metavar="DIR", help="a folder written by `nomul gen`")
    p.add_argument("--network", metavar="NET.yaml", help="the network file the folder was generated from")
    p.add_argument("--target", metavar="PART",
                   help="part for the estimate and the MAC-kind comparison (default: the estimate "
                        "given, the board's part, else the family's first part)")
    p.add_argument("--estimate", metavar="FILE", help="`nomul estimate --json` output")
    p.add_argument("--sim", metavar="FILE", action="append", default=[], help="`nomul sim --json` output (repeatable)")
    p.add_argument("--explore", metavar="FILE", help="explore.json of `nomul explore`")
    p.add_argument("--no-kinds", action="store_true", help="skip the MAC-kind comparison")
    p.add_argument("-o", "--out", metavar="FILE", help="write here instead of DIR/report.html")
    p.set_defaults(func=run)
    return p


def _find_network(d: Path, manifest: dict, given: str | None) -> Path | None:
    if given:
        p = Path(given)
        if not p.is_file():
            raise NetworkError("--network", f"file not found: {given}")
        return p
    net = manifest.get("network", {})
    name, sha = net.get("file"), net.get("sha256")
    if not name or not sha:
        return None
    for base in (d.parent, Path.cwd()):
        p = base / name
        if p.is_file() and network_digest(p) == sha:
            return p
    return None


def run(args) -> int:
    from .netfile import atomic_write_bytes
    from .report import REPORT_NAME, classify_json, load_json, render_report
    from .targets import PARTS

    d = Path(args.dir)
    if not (d / "manifest.json").is_file():
        raise NetworkError("DIR", f"{d} has no manifest.json (not a folder written by `nomul gen`)")
    manifest = load_json(d / "manifest.json")
    found = {"estimate": [], "sim": [], "explore": []}
    for p in sorted(d.glob("*.json")):
        kind = classify_json(load_json(p))
        if kind in found:
            found[kind].append(p)
    est_path = args.estimate or (str(found["estimate"][0]) if found["estimate"] else None)
    estimate = load_json(est_path) if est_path else None
    if estimate is not None and classify_json(estimate) != "estimate":
        raise NetworkError("--estimate", f"{est_path} is not an estimate (nomul estimate --json)")
    sims = [load_json(p) for p in (args.sim or [str(p) for p in found["sim"]])]
    for p, s in zip(args.sim, sims, strict=False):
        if classify_json(s) != "sim":
            raise NetworkError("--sim", f"{p} is not a co-simulation result (nomul sim --json)")
    exp_path = args.explore or (str(found["explore"][0]) if found["explore"] else None)
    explore = load_json(exp_path) if exp_path else None
    if explore is not None and classify_json(explore) != "explore":
        raise NetworkError("--explore", f"{exp_path} is not an explore.json")
    board = manifest.get("board") or {}
    family = manifest.get("top", {}).get("family", "xilinx")
    target = (args.target or (estimate or {}).get("target") or _board_part(board)
              or next(p.name for p in PARTS.values() if p.family == family))
    net_path = _find_network(d, manifest, args.network)
    kinds = None
    if net_path is not None:
        from .cmd_estimate import compare_kinds
        from .estimate import estimate_network
        from .load import load_network

        net = load_network(net_path)
        fold = {lay["name"]: {"pe": lay["pe"], "simd": lay["simd"],
                              **({"tree_depth": lay["tree_depth"]} if "tree_depth" in lay else {})}
                for lay in manifest["layers"] if lay.get("pe")}
        if estimate is None:
            estimate = estimate_network(net, target=target, fold=fold).to_json()
        if not args.no_kinds:
            kinds = compare_kinds(net, target=target, fold=fold)
    html = render_report(manifest, estimate=estimate, sims=sims, explore=explore, kinds=kinds)
    out = Path(args.out) if args.out else d / REPORT_NAME
    atomic_write_bytes(out, html.encode())
    used = [x for x in (est_path, *(args.sim or [str(p) for p in found["sim"]]), exp_path) if x]
    print(f"wrote {out} ({len(html.encode()):,} bytes) from {d / 'manifest.json'}"
          + (f", {', '.join(used)}" if used else "") + (f", network {net_path}" if net_path else ""))
    return 0


def _board_part(board: dict) -> str | None:
    if not board:
        return None
    from .targets import get_board

    try:
        return get_board(board["name"]).part
    except (KeyError, ValueError):
        return None
