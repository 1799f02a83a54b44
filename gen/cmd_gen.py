"""``nomul gen``: network file → accelerator folder (Verilog, manifest, testbench, board)."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import NetworkError
from .netfile import network_digest
from .targets import family_names

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "gen", help="generate the accelerator of a network: Verilog, manifest, testbench",
        description="Generate a dataflow accelerator for a network: Verilog through Amaranth, "
                    "manifest.json (ports, stream layouts, folding, cycles), a self-checking "
                    "testbench with golden-model vectors and a Makefile; with --board, a UART top "
                    "level for the board and its build script. OUT must be absent, empty or a "
                    "previous nomul output (unless --overwrite); it is replaced as a whole, or "
                    "left as it was on failure or interruption.")
    p.add_argument("network", help="network description (.yaml; arrays in the .npz beside it)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--fold", metavar="FILE|auto",
                   help="folding: a YAML/JSON file of layer name → {pe, simd}, or 'auto' to fold "
                        "every layer for --target-cycles (default: the network file's folding, "
                        "automatic where it gives none)")
    p.add_argument("--target-cycles", type=int, metavar="N",
                   help="cycles per frame that automatically folded layers must meet (default: "
                        "about 64 lanes in the largest layer)")
    p.add_argument("--board", metavar="NAME",
                   help="board top level: icebreaker, ulx3s, arty-a7-35")
    p.add_argument("--family", choices=family_names(),
                   help="target FPGA family, which picks the popcount circuit measured best for its "
                        "LUTs (default: the board's, else xilinx)")
    p.add_argument("--bitstream", action="store_true",
                   help="with --board: build the bitstream with the YoWASP tools (iCE40, ECP5)")
    p.add_argument("--force", action="store_true",
                   help="with --board: generate even when the resource estimate says it does not fit")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT even when it is a non-empty folder that is not a previous "
                        "nomul output (a folder holding the network's own files is always refused)")
    p.add_argument("--frames", type=int, default=8, metavar="N",
                   help="frames of golden-model test vectors for the testbench (default 8)")
    p.set_defaults(func=run)
    return p


def _input_files(path: Path, fold) -> list[Path]:
    """The files ``gen`` reads, which its output folder must not hold."""
    files = [path, path.with_suffix(".npz")]
    if fold not in (None, "auto"):
        files.append(Path(fold))
    return files


def _beats(n: int) -> str:
    return f"{n:,} beat{'' if n == 1 else 's'}"


def run(args) -> int:
    from .boards import build_bitstream, get_board
    from .emit import build, write_outputs
    from .load import load_network
    from .outdir import check_out_dir
    from .plan import load_fold_file

    path = Path(args.network)
    inputs = _input_files(path, args.fold)
    check_out_dir(args.out, overwrite=args.overwrite, inputs=inputs)  # before the slow part
    net = load_network(args.network)
    fold = None
    if args.fold is not None:
        fold = "auto" if args.fold == "auto" else load_fold_file(args.fold)
    if args.bitstream and not args.board:
        raise NetworkError("--bitstream", "needs --board")
    if args.frames < 1:
        raise NetworkError("--frames", f"expected a positive integer, found {args.frames}")
    board = get_board(args.board) if args.board else None
    g = build(net, fold=fold, target_cycles=args.target_cycles, board=board, net_file=path.name,
              net_digest=network_digest(path), frames=args.frames, check_fit=not args.force,
              family=args.family)
    after = None
    if args.bitstream:
        def after(tmp):
            from .synth import ToolProgress, parse_pnr_log

            with ToolProgress(title=f"bitstream for the {board.title}") as bar:
                bit = build_bitstream(board, tmp / "board", progress=bar.update)
            pnr = parse_pnr_log((tmp / "board" / "build.log").read_text())
            print(f"bitstream: {bit.name}; {pnr.summary()}")
    write_outputs(args.out, g.files, after=after, overwrite=args.overwrite,
                  inputs=inputs)
    print(g.plan.report())
    m = g.manifest
    print(f"wrote {args.out}/: {m['top']['module']} ({m['top']['verilog']}), manifest.json, tb.v, "
          f"Makefile{', board/' if board else ''}, report.html; input {_beats(m['input']['beats_per_frame'])} of "
          f"{m['input']['elements_per_beat']}×{m['input']['dtype']['name']}, output "
          f"{_beats(m['output']['beats_per_frame'])} of {m['output']['elements_per_beat']}×"
          f"{m['output']['dtype']['name']} per frame")
    sys.stdout.flush()
    return 0
