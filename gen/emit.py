"""Writing a generated accelerator: Verilog, manifest.json, testbench, Makefile, README and,
for a board, its top level and build script.

Everything is written into a temporary folder beside the output folder and renamed into place
at the end (:mod:`gen.outdir`), so a failure or a signal leaves the output folder as it was, and
a folder that is not a previous output is never replaced unless asked. The same network and options give
byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.dtypes import DType, pack_words

from .chainsim import steady_interval
from .cycles import first_frame_timing
from .ir import Network
from .ops import op_for
from .plan import Plan, plan_network
from .top import Accelerator, encode_frames, frame_layout

__all__ = ["TOP_NAME", "MANIFEST_VERSION", "Generated", "generate", "write_outputs", "verilog_text",
           "dtype_json", "render"]

TOP_NAME = "nomul_top"
MANIFEST_VERSION = 1
TEST_FRAMES = 8
TEST_SEED = 0


def dtype_json(dt: DType) -> dict:
    return {"name": str(dt), "encoding": dt.encoding, "bits": dt.bits, "narrow": dt.narrow,
            "signed": dt.signed, "code_width": dt.code_width, "min": dt.min, "max": dt.max}


def render(name: str, **ctx) -> str:
    import jinja2

    import templates

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(templates.__file__).parent),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    return env.get_template(name).render(**ctx)


def verilog_text(accel: Accelerator, name: str = TOP_NAME) -> str:
    """Verilog of the accelerator, with the popcount counters marked ``keep_hierarchy``.

    Synthesis then keeps the compressor trees instead of flattening them into plain adders
    (see DESIGN.md, toolchain facts); :func:`hw.trees.keep_counter_hierarchy_verilog` adds the
    attribute as Yosys writes it.
    """
    from amaranth.back import verilog

    from hw.trees import keep_counter_hierarchy_verilog

    return keep_counter_hierarchy_verilog(verilog.convert(accel, name=name, emit_src=False))


def _stream_json(accel: Accelerator, which: str) -> dict:
    port = accel.i_stream if which == "input" else accel.o_stream
    data_w = len(port.payload.data)
    if which == "input":
        shape, elems, dt = accel.net.input.shape, accel.in_elems, accel.in_dtype
        beats, order = accel.in_beats_per_frame, frame_layout(accel.net.input.shape)
    else:
        shape, elems, dt = accel.net.output_shape, accel.out_elems, accel.out_dtype
        beats = accel.out_beats_per_frame
        order = "index" if accel.net.ends_in_argmax else frame_layout(shape)
    prefix = "i_stream" if which == "input" else "o_stream"
    return {
        "stream": prefix,
        "ports": {"payload": f"{prefix}__payload", "valid": f"{prefix}__valid",
                  "ready": f"{prefix}__ready"},
        "payload_width": data_w + 1,
        "fields": {"data": {"offset": 0, "width": data_w}, "last": {"offset": data_w, "width": 1}},
        "elements_per_beat": elems,
        "code_width": dt.code_width,
        "dtype": dtype_json(dt),
        "shape": list(shape),
        "order": order,
        "beats_per_frame": beats,
    }


def _layer_json(layer, lp, stage) -> dict:
    d = {"index": lp.index, "name": lp.name, "kind": lp.kind,
         "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
         "in_dtype": str(stage.in_dtype), "out_dtype": str(stage.out_dtype),
         "in_elems_per_beat": lp.in_elems, "out_elems_per_beat": stage.out_elems,
         "in_width": lp.in_elems * stage.in_dtype.code_width,
         "out_width": stage.out_elems * stage.out_dtype.code_width,
         "out_beats_per_frame": stage.out_beats_per_frame}
    d.update(op_for(layer).manifest(layer, lp, stage))
    d.update({"cycles_per_frame": lp.cycles, "cycles_parts": dict(lp.parts),
              "latency": stage.latency, "fifo_depth": stage.fifo_depth,
              "in_fifo_depth": stage.in_fifo_depth, "blocks": list(stage.blocks)})
    if stage.tree_depth is not None:
        d["tree_depth"] = stage.tree_depth
    return d


def _hex(words, width) -> str:
    digits = max(1, (width + 3) // 4)
    return "".join(f"{w:0{digits}x}\n" for w in words)


def _test_vectors(accel: Accelerator, frames: int, seed: int):
    from sim import golden
    from sim.randnet import random_values

    net = accel.net
    x = random_values(np.random.default_rng(seed), net.input.dtype, (frames, *net.input.shape))
    y = golden.run(net, x).outputs
    in_w = len(accel.i_stream.payload.data)
    out_w = len(accel.o_stream.payload.data)
    nin, nout = accel.in_beats_per_frame, accel.out_beats_per_frame
    ins = [w | (int(j % nin == nin - 1) << in_w) for j, w in enumerate(encode_frames(accel, x))]
    if len(y.shape) == 4:
        y = y.transpose(0, 2, 3, 1)
    dt, k = accel.out_dtype, accel.out_elems
    codes = dt.encode(y.reshape(-1, k))
    outs = [v | (int(j % nout == nout - 1) << out_w) for j, v in enumerate(pack_words(codes, dt.code_width))]
    return _hex(ins, in_w + 1), _hex(outs, out_w + 1), len(ins), len(outs)


@dataclass(frozen=True)
class Generated:
    accel: Accelerator
    plan: Plan
    manifest: dict
    files: dict[str, bytes]


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("nomul", "amaranth"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def build(net: Network, *, fold=None, target_cycles=None, board=None, net_file: str = "",
          net_digest: str | None = None, frames: int = TEST_FRAMES, seed: int = TEST_SEED,
          check_fit: bool = True, mvu_factory=None, family: str | None = None) -> Generated:
    """Plan, build and render every output file in memory (nothing is written).

    ``family`` (xilinx, ecp5, ice40; default the board's, else xilinx) picks the popcount style.
    """
    plan = plan_network(net, fold=fold, target_cycles=target_cycles)
    if family is None and board is not None:
        family = board.family
    accel = Accelerator(net, plan, mvu_factory=mvu_factory, family=family)
    accel.require_chain()
    fit = None
    if board is not None:
        from .boards import check_fit as _check_fit
        fit = _check_fit(accel, board) if check_fit else None
    verilog = verilog_text(accel)
    vname = f"{TOP_NAME}.v"
    ins, outs, n_in, n_out = _test_vectors(accel, frames, seed)
    files: dict[str, bytes] = {vname: verilog.encode()}
    manifest = {
        "format": "nomul-accelerator",
        "manifest_version": MANIFEST_VERSION,
        "generator": _versions(),
        "network": {"name": net.name, "source": net.source, "file": net_file,
                    "sha256": net_digest, "layers": len(net.layers)},
        "top": {"module": TOP_NAME, "verilog": vname, "clock": "clk", "reset": "rst",
                "reset_kind": "synchronous, active high", "family": accel.family},
        "ports": [
            {"name": "clk", "direction": "input", "width": 1},
            {"name": "rst", "direction": "input", "width": 1},
            {"name": "i_stream__payload", "direction": "input", "width": len(accel.i_stream.payload.data) + 1},
            {"name": "i_stream__valid", "direction": "input", "width": 1},
            {"name": "i_stream__ready", "direction": "output", "width": 1},
            {"name": "o_stream__payload", "direction": "output", "width": len(accel.o_stream.payload.data) + 1},
            {"name": "o_stream__valid", "direction": "output", "width": 1},
            {"name": "o_stream__ready", "direction": "input", "width": 1},
        ],
        "input": _stream_json(accel, "input"),
        "output": _stream_json(accel, "output"),
        "performance": {"interval_cycles": steady_interval(accel),
                        "latency_cycles": first_frame_timing(accel)[0],
                        "target_cycles": plan.target_cycles,
                        "bottleneck": plan.bottleneck.name,
                        "lanes": sum(lp.lanes for lp in plan.layers)},
        "layers": [_layer_json(layer, lp, st)
                   for layer, lp, st in zip(net.layers, plan.layers, accel.stages, strict=True)],
        "test_vectors": {"frames": frames, "seed": seed, "inputs": "vectors/inputs.hex",
                         "expected": "vectors/expected.hex", "input_beats": n_in, "output_beats": n_out,
                         "format": "one payload word ({last, data}) per line, hexadecimal"},
        "files": {},
        "board": None,
    }
    files["vectors/inputs.hex"] = ins.encode()
    files["vectors/expected.hex"] = outs.encode()
    in_w = manifest["input"]["payload_width"]
    out_w = manifest["output"]["payload_width"]
    files["tb.v"] = render("tb.v.j2", top=TOP_NAME, frames=frames, in_width=in_w, out_width=out_w,
                           n_in=n_in, n_out=n_out, seed=seed + 1,
                           timeout=20 * (plan.interval + 1000) * (frames + 2) + 10 * n_in).encode()
    files["Makefile"] = render("Makefile.j2", top=TOP_NAME, verilog=vname).encode()
    board_info = None
    if board is not None:
        from .boards import BAUD, board_files
        _, bfiles = board_files(accel, board)
        for fname, content in bfiles.items():
            files[f"board/{fname}"] = content
        board_info = {"name": board.name, "title": board.title, "part": board.part_title,
                      "family": board.family, "baud": BAUD, "uart": "8N1",
                      "top": "nomul_board", "build_script": "board/build_nomul_board.sh",
                      "input_bytes_per_beat": max(1, (len(accel.i_stream.payload.data) + 7) // 8),
                      "output_bytes_per_beat": max(1, (len(accel.o_stream.payload.data) + 7) // 8),
                      "fit_estimate": fit}
    manifest["board"] = board_info
    files["README.md"] = render(
        "README.md.j2", net_name=net.name, net_file=net_file or "(in memory)", source=net.source,
        verilog=vname, top=TOP_NAME, frames=frames, board=board, baud=board_info and board_info["baud"],
        in_beats=manifest["input"]["beats_per_frame"], in_elems=accel.in_elems, in_dtype=accel.in_dtype,
        in_order=manifest["input"]["order"], in_width=in_w - 1,
        out_beats=manifest["output"]["beats_per_frame"], out_elems=accel.out_elems,
        out_dtype=accel.out_dtype, out_order=manifest["output"]["order"], out_width=out_w - 1,
        plan_report=plan.report()).encode()
    files["report.html"] = _report(net, plan, accel, manifest, board).encode()
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return Generated(accel, plan, manifest, files)


def _report(net, plan, accel, manifest, board) -> str:
    """report.html (:mod:`gen.report`) with the model's estimate on the board's part, else the
    first part of the family."""
    from .estimate import estimate_network
    from .report import render_report
    from .targets import PARTS

    part = board.part if board is not None else next(p for p in PARTS.values() if p.family == accel.family).name
    est = estimate_network(net, target=part, fold=plan.fold_dict())
    return render_report(manifest, estimate=est.to_json())


def write_outputs(out_dir, files: dict[str, bytes], *, after=None, overwrite: bool = False,
                  inputs=()) -> Path:
    """Write ``files`` as the folder ``out_dir``, atomically (:func:`gen.outdir.replace_folder`).

    ``after(tmp)`` (e.g. a bitstream build) runs on the complete temporary folder before the
    swap. ``out_dir`` must be absent, empty or a previous nomul output unless ``overwrite``;
    it must never hold one of ``inputs``. A failure or a signal leaves it as it was.
    """
    from .outdir import replace_folder

    return replace_folder(out_dir, files, after=after, overwrite=overwrite, inputs=inputs)


def generate(net: Network, out_dir, **kwargs) -> Generated:
    """:func:`build`, then :func:`write_outputs`."""
    g = build(net, **kwargs)
    write_outputs(out_dir, g.files)
    return g
