"""``nomul import``: a QONNX model (Brevitas export or FINN dialect) → an all-integer network file."""

from __future__ import annotations

from pathlib import Path

from .errors import NetworkError

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "import", help="import a QONNX model (Brevitas, FINN) as an integer network file",
        description="Import a QONNX model: clean it up with qonnx, streamline scales, biases and "
                    "BatchNorm into exact integer thresholds, and write the network file (.yaml) "
                    "and its arrays (.npz). The input quantizer is kept, so 'nomul golden' takes "
                    "the model's float inputs; the float scale and offset of the outputs are in "
                    "the metadata. Needs the qonnx extra (pip install 'nomul[qonnx]').")
    p.add_argument("model", help="QONNX model (.onnx)")
    p.add_argument("-o", "--out", required=True, metavar="NET.yaml",
                   help="network file to write (the .npz goes beside it)")
    p.add_argument("--name", help="network name (default: the model file's name)")
    p.add_argument("--source", help="source / licence text for the network file")
    p.add_argument("--argmax", action="store_true",
                   help="end in an argmax layer (top-1 class) when the model does not")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from quant_models.qonnx_import import import_to_file

    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise NetworkError("--out", f"expected a .yaml file name, not {out.name}")
    if not out.parent.is_dir():
        raise NetworkError("--out", f"folder not found: {out.parent}")
    path = import_to_file(args.model, out, name=args.name, source=args.source, argmax=args.argmax)
    print(f"wrote {path} and {path.with_suffix('.npz').name}")
    return 0
