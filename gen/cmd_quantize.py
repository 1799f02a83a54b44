"""``nomul quantize``: a float model (.npz of layer weights) into a network file.

The float model's keys and each method's meaning of ``--bits`` are in docs/quantize.md and
:mod:`quant_models.quant_net`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import NetworkError

__all__ = ["add_parser", "cmd_quantize", "BITS_RANGE"]

# Legal --bits per method: (lowest, highest).
BITS_RANGE = {"binarize": (1, 8), "sibnn": (1, 1), "sttn": (1, 8), "onehot": (1, 16),
              "bitsplit": (2, 16), "adder": (2, 16)}


def cmd_quantize(args) -> int:
    from quant_models.quant_net import METHODS, float_forward, load_float_model, quantize_model

    from .cli import _console, load_inputs
    from .load import network_from_dict
    from .netfile import write_network

    if args.method not in METHODS:  # pragma: no cover - argparse checks the choices
        raise NetworkError("--method", f"expected one of {', '.join(METHODS)}, not {args.method!r}")
    for opt, v, (lo, hi) in (("--bits", args.bits, BITS_RANGE[args.method]),
                             ("--act-bits", args.act_bits, (1, 16)),
                             ("--input-bits", args.input_bits, (2, 16))):
        if v is not None and not lo <= v <= hi:
            raise NetworkError(opt, f"must be {lo} to {hi} for method {args.method}, not {v}"
                               if lo != hi else f"must be {lo} for method {args.method}, not {v}")
    if args.act_bits is not None and args.method not in ("bitsplit", "adder"):
        raise NetworkError("--act-bits", f"only bitsplit and adder take it, not {args.method}")
    out = Path(args.output)
    if out.suffix not in (".yaml", ".yml"):
        raise NetworkError("-o", f"the network file must end in .yaml, not {out.name!r}")
    if not out.parent.is_dir():
        raise NetworkError("-o", f"folder not found: {out.parent}")
    if out.with_suffix(".npz").resolve() == Path(args.float_model).resolve():
        raise NetworkError("-o", f"{out.with_suffix('.npz').name} would overwrite the float model; "
                                 f"choose another name")
    model = load_float_model(args.float_model)
    x, labels = load_inputs(args.calib, model.input_shape, field="--calib")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x.astype(np.float64)).all():
        raise NetworkError("--calib", "calibration inputs must be finite numbers")
    if x.shape[0] < 2:
        raise NetworkError("--calib", f"need at least 2 calibration inputs, found {x.shape[0]}")
    doc, arrays, _ = quantize_model(model, args.method, x, bits=args.bits, act_bits=args.act_bits,
                                    input_bits=args.input_bits, threshold=args.threshold,
                                    delta=args.delta,
                                    name=args.name or out.stem)
    net = network_from_dict(doc, arrays=arrays)  # never write a file that does not load
    write_network(out, doc, arrays)
    con = _console()
    macs = ", ".join(f"{layer.name}:{layer.mac}" for layer in net.layers if hasattr(layer, "mac"))
    con.print(f"quantized {len(model.layers)} layers with {args.method} ({macs})")
    if labels is not None:
        from sim import golden

        fl = float_forward(model, x, adder=args.method == "adder").argmax(axis=1)
        q = golden.run(net, golden.quantize_input(net, x)).top1
        con.print(f"top-1 on the calibration data: float {np.mean(fl == labels):.2%}, "
                  f"quantized {np.mean(q == labels):.2%}")
    con.print(f"wrote {out} and {out.with_suffix('.npz').name}")
    return 0


def add_parser(subparsers) -> None:
    from quant_models.quant_net import DEFAULT_BITS, METHODS

    q = subparsers.add_parser(
        "quantize", help="quantize a float model (.npz of layer weights) into a network file",
        description="Quantize a float model — dense/conv layers w<i> (PyTorch order), optional "
                    "b<i> and bn<i>_gamma/beta/mean/var, ReLU between layers, argmax at the end — "
                    "with one of the seed's methods, calibrated on sample inputs. See "
                    "docs/quantize.md.")
    q.add_argument("float_model", metavar="FLOAT.npz", help="float model weights")
    q.add_argument("--method", required=True, choices=METHODS)
    q.add_argument("--bits", type=int, metavar="N",
                   help="binarize/sttn: activation bits (1: ±1 / {0,1}); onehot: exponents; "
                        "bitsplit/adder: weight bits. Defaults: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_BITS.items()))
    q.add_argument("--act-bits", type=int, metavar="N",
                   help="bitsplit/adder: activation bits (default: bitsplit max(bits, 4), adder bits)")
    q.add_argument("--input-bits", type=int, default=8, metavar="N",
                   help="bits of the input quantizer (default 8)")
    q.add_argument("--calib", required=True, metavar="X",
                   help="calibration inputs: .npy (N, *shape) or .npz with inputs/images/x "
                        "(and labels/y, to print float and quantized top-1)")
    q.add_argument("--threshold", choices=("mi", "sign"), default="mi",
                   help="sibnn: per-channel thresholds by mutual information (default) or at 0")
    q.add_argument("--delta", choices=("twn", "optimal"), default="twn",
                   help="sttn: zero band Δ = 0.7·mean|w| (TWN, default) or the exact minimiser of "
                        "the weights' squared error")
    q.add_argument("--name", help="network name (default: the output file's stem)")
    q.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="NET.yaml",
                   help="network file to write (arrays go to NET.npz beside it)")
    q.set_defaults(func=cmd_quantize)
