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
    p.add_argument("--input-type", metavar="TYPE",
                   help="for a float input straight into a layer (QKeras/hls4ml, no input "
                        "quantizer in the model): fixed<W,I>, ufixed<W,I> (hls4ml's ap_fixed, "
                        "truncated, saturated), intN:SCALE, uintN:SCALE, or intN/uintN with --calib")
    p.add_argument("--calib", metavar="X.npy",
                   help="sample float inputs (.npy, or .npz with inputs/images): calibrate the "
                        "input scale (unless --input-type gives one) and report the agreement "
                        "with the float model on them")
    p.add_argument("--exact-input", action="store_true",
                   help="where the affine input quantizer (float64) and the model's float32 "
                        "rounding differ at a step, write the model's own float32 step points as "
                        "input thresholds (exact on every float32 input)")
    p.set_defaults(func=run)
    return p


def _load_calib(path: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise NetworkError("--calib", f"file not found: {path}")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in ("inputs", "images", "x") if k in z.files), None)
                if key is None:
                    raise NetworkError("--calib", f"{p.name} has none of the arrays inputs, images, x")
                return z[key]
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise NetworkError("--calib", f"cannot read {p.name}: {e}") from None


def run(args) -> int:
    from quant_models.qonnx_import import import_to_file

    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise NetworkError("--out", f"expected a .yaml file name, not {out.name}")
    if not out.parent.is_dir():
        raise NetworkError("--out", f"folder not found: {out.parent}")
    calib = None
    if args.calib is not None:
        calib = _load_calib(args.calib)
    path = import_to_file(args.model, out, name=args.name, source=args.source, argmax=args.argmax,
                          input_type=args.input_type, calib=calib, exact_input=args.exact_input)
    print(f"wrote {path} and {path.with_suffix('.npz').name}")
    if calib is not None:
        import yaml

        fi = yaml.safe_load(path.read_text())["metadata"]["float_input"]
        ag = fi["agreement"]
        parts = [f"{k.replace('_', ' ')} {v:.3%}" if k in ("top1", "equal_outputs") else
                 f"{k.replace('_', ' ')} {v:.4g}" for k, v in ag.items() if k != "inputs"]
        print(f"float input as {fi['encoding']}{fi['bits']} scale {fi['scale']:.6g} (not exact: "
              f"quantized here, not in the model); agreement with the float model on "
              f"{ag['inputs']} calibration inputs: {', '.join(parts)}")
    return 0
