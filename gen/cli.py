"""The ``nomul`` command line.

Each command is a function ``cmd_<name>(args)`` registered in :func:`build_parser`; commands that
live in their own module expose ``add_parser(subparsers)`` and are listed in ``_MODULES``.
Bad input raises :class:`gen.errors.NetworkError`; :func:`main` prints it as one line on
stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import numpy as np

from .errors import NetworkError
from .interrupts import Interrupted, signals_as_exceptions

__all__ = ["main", "build_parser", "load_inputs"]

#: Console width when output is not a terminal and COLUMNS is not set.
WIDE_COLUMNS = 1000

# Commands defined in their own modules (module name, relative to this package).
_MODULES: list[str] = ["cmd_gen", "cmd_import", "cmd_quantize", "cmd_sim", "cmd_estimate", "cmd_explore", "cmd_report"]


def _console():
    from rich.console import Console

    # A terminal gets its width; a pipe or a file the width COLUMNS says, else one wide enough
    # that no table is cut (numbers lost in logs).
    width = None
    if not sys.stdout.isatty():
        cols = os.environ.get("COLUMNS", "")
        width = int(cols) if cols.isdigit() and int(cols) > 0 else WIDE_COLUMNS
    return Console(highlight=False, width=width)


# -- shared helpers ------------------------------------------------------------------------------
def _is_npy(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def load_inputs(path: str, shape: tuple[int, ...], *, field: str = "--input") -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (and labels, if the file has them) from a .npy array or an .npz archive.

    An .npz may hold the inputs under ``inputs``, ``images`` or ``x`` and labels under
    ``labels`` or ``y``. Inputs whose element count per row matches the network's input are
    reshaped to it (so (N, 1, 8, 8) images feed a 64-input network).
    """
    p = Path(path)
    if not p.is_file():
        raise NetworkError(field, f"file not found: {path}")
    labels = None
    from .safeio import MAX_INPUT_FILE_ELEMENTS, NpzReader, load_arrays

    if p.suffix == ".npz":
        z = NpzReader(p, max_elements=MAX_INPUT_FILE_ELEMENTS, field=field)
        try:
            key = next((k for k in ("inputs", "images", "x") if k in z), None)
            if key is None:
                raise NetworkError(field, f"{p.name} has none of the arrays inputs, images, x "
                                          f"(found: {', '.join(z.keys()) or 'nothing'})")
            x = z.read(key, field)
            lk = next((k for k in ("labels", "y") if k in z), None)
            labels = z.read(lk, field) if lk else None
        finally:
            z.close()
    else:
        x = load_arrays(p, field=field, max_elements=MAX_INPUT_FILE_ELEMENTS)[""] if _is_npy(p) else None
        if x is None:
            raise NetworkError(field, f"cannot read {p.name}: not a .npy array or an .npz archive")
    if x.dtype.kind not in "biuf":
        raise NetworkError(field, f"{p.name} must hold integer or real numbers, not {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise NetworkError(field, f"{p.name} holds no inputs (shape {x.shape})")
    n_el = int(np.prod(shape))
    if x.shape[1:] != shape:
        if x.ndim >= 1 and x.size and x.size % n_el == 0 and int(np.prod(x.shape[1:])) == n_el:
            x = x.reshape(x.shape[0], *shape)
        elif x.shape == shape:
            x = x[None]
        else:
            raise NetworkError(field, f"expected inputs of shape (N, {', '.join(map(str, shape))}), "
                                      f"found {x.shape}")
    if labels is not None and labels.shape != (x.shape[0],):
        raise NetworkError(field, f"labels have shape {labels.shape}, expected ({x.shape[0]},)")
    return x, labels


def load_labels(path: str | None, n: int) -> np.ndarray | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise NetworkError("--labels", f"file not found: {path}")
    from .safeio import MAX_INPUT_FILE_ELEMENTS, load_arrays

    arrays = load_arrays(p, field="--labels", max_elements=MAX_INPUT_FILE_ELEMENTS)
    if len(arrays) != 1:
        raise NetworkError("--labels", f"expected one array in {p.name}, found {len(arrays)}")
    y = next(iter(arrays.values()))
    if y.shape != (n,):
        raise NetworkError("--labels", f"expected shape ({n},), found {y.shape}")
    return y


# -- check ---------------------------------------------------------------------------------------
def _shape(s) -> str:
    return "×".join(map(str, s))


def network_table(net):
    from rich.table import Table

    from .ops import op_for

    t = Table(title=f"{net.name}  ({net.source})" if net.source else net.name)
    for col in ("#", "layer", "kind", "shape in → out", "MAC", "weights", "in type", "out type",
                "MACs/frame", "acc bits", "acc range", "out bits"):
        right = col in ("#", "MACs/frame", "acc bits", "out bits")
        t.add_column(col, justify="right" if right else "left", no_wrap=True)
    t.add_row("", "input", "", _shape(net.input.shape), "", "", "", str(net.input.dtype), "", "", "",
              str(net.input.dtype.code_width))
    total = 0
    for i, layer in enumerate(net.layers):
        total += layer.macs
        shapes = f"{_shape(layer.in_shape)} → {_shape(layer.out_shape)}"
        d = op_for(layer).describe(layer)
        t.add_row(str(i), layer.name, layer.kind, shapes, d.get("mac", ""), d.get("weights", ""),
                  str(layer.in_dtype), str(layer.out_dtype), d.get("macs", ""), d.get("acc_width", ""),
                  d.get("acc_range", ""), d.get("out_width", str(layer.out_dtype.code_width)))
    return t, total


def cmd_check(args) -> int:
    from .load import load_network

    net = load_network(args.network)
    table, total = network_table(net)
    con = _console()
    con.print(table)
    con.print(f"{len(net.layers)} layers, {total:,} MACs per frame: OK")
    return 0


# -- golden --------------------------------------------------------------------------------------
def network_top1(net, outputs) -> tuple[np.ndarray | None, str]:
    """The top-1 class of every output: the argmax layer's, else the argmax of the float outputs
    that ``metadata.output`` describes (``scale`` and ``offset`` per class, as ``nomul import``
    writes them). Returns (top1 or None, a note for the printout: the source, or why none)."""
    if net.ends_in_argmax:
        return outputs.reshape(len(outputs), -1)[:, 0], ""
    meta = net.metadata.get("output") if isinstance(net.metadata, dict) else None
    if not isinstance(meta, dict) or "scale" not in meta or "offset" not in meta:
        return None, "the network has no argmax layer and no float outputs in metadata.output"
    out = outputs.reshape(len(outputs), -1)
    try:
        sc = np.asarray(meta["scale"], dtype=np.float64)
        off = np.asarray(meta["offset"], dtype=np.float64)
    except (TypeError, ValueError):
        return None, "metadata.output.scale / offset are not lists of numbers"
    if sc.shape != (out.shape[1],) or off.shape != sc.shape:
        return None, (f"metadata.output has {sc.size} scales for {out.shape[1]} outputs")
    if out.shape[1] < 2:
        return None, "the network has one output, not classes"
    return np.argmax(out * sc + off, axis=1), " (from the float outputs)"


def cmd_golden(args) -> int:
    from sim import golden

    from .load import load_network
    from .netfile import atomic_write_bytes, npz_bytes

    net = load_network(args.network)
    x, labels = load_inputs(args.input, net.input.shape)
    if args.labels is not None:
        labels = load_labels(args.labels, x.shape[0])
    values = golden.check_input(net, x) if args.raw else golden.quantize_input(net, x)
    res = golden.run(net, values)
    out = {"outputs": res.outputs}
    for i, lr in enumerate(res.layers):
        out[f"layer{i}"] = lr.out
    con = _console()
    con.print(f"{values.shape[0]} inputs through {net.name}: outputs {res.outputs.shape}")
    top1, how = network_top1(net, res.outputs)
    if top1 is not None:
        out["top1"] = top1
        if labels is not None:
            acc = float(np.mean(top1 == labels))
            con.print(f"top-1 accuracy{how}: {acc:.2%} ({int(np.sum(top1 == labels))}/{len(labels)})")
        else:
            head = " ".join(map(str, top1[:20].tolist()))
            con.print(f"top-1{how}: {head}{' …' if len(top1) > 20 else ''}")
    elif labels is not None:
        con.print(f"no top-1 accuracy: {how}")
    if args.out:
        from .outdir import ensure_parent

        ensure_parent(args.out, "--out")
        atomic_write_bytes(args.out, npz_bytes(out))
        con.print(f"wrote {args.out}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nomul")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nomul", allow_abbrev=False,
        description="Multiplier-free neural network accelerators for FPGAs: validate a quantized "
                    "network, run its integer golden model, generate bit-exact RTL, simulate it "
                    "and estimate its cost.")
    p.add_argument("--version", action="version", version=f"nomul {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("check", help="validate a network file and print its layers, widths and MACs",
                       description="Validate a network description and print a table of its layers.")
    c.add_argument("network", help="network description (.yaml; arrays in the .npz beside it)")
    c.set_defaults(func=cmd_check)

    g = sub.add_parser("golden", help="run the integer golden model on inputs",
                       description="Run the integer golden model (the arithmetic spec) on a batch of "
                                   "inputs: float inputs through the input quantizer, or integer "
                                   "values with --raw.")
    g.add_argument("network", help="network description (.yaml)")
    g.add_argument("--input", required=True, metavar="X",
                   help=".npy of inputs (N, *shape), or .npz with inputs/images (and labels)")
    g.add_argument("--raw", action="store_true",
                   help="inputs are integer values of the input type (e.g. -1/+1 for bipolar)")
    g.add_argument("--labels", metavar="Y.npy", help="labels (N,), to print top-1 accuracy")
    g.add_argument("--out", metavar="Y.npz", help="write outputs, top1 and every layer's outputs")
    g.set_defaults(func=cmd_golden)

    for mod in _MODULES:
        importlib.import_module(f".{mod}", __package__).add_parser(sub)
    for cmd in sub.choices.values():
        # an option is spelled out: ``--target X`` must not be taken for ``--target-cycles``
        cmd.allow_abbrev = False
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with signals_as_exceptions():
            return int(args.func(args) or 0)
    except NetworkError as e:
        print(f"nomul: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nomul: interrupted", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"nomul: {e}", file=sys.stderr)
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main())
