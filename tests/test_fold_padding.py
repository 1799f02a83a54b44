"""Foldings that do not divide a layer (issue #14, item 5): BNN-PYNQ's LFC runs SIMD 64 on 784
inputs and PE 16 on 10 outputs. The input vectors are padded with zero codes (hw/pad.py
VectorPad), the weights with the weight of code 0 and the bias corrected for the padding's
constant contribution, and the padding outputs trimmed (VectorTrim). Checked: the blocks on
their own with random gaps and stalls and their timing rules; random networks of every MAC kind
with random non-dividing foldings, bit-exact against the golden model with the cycle model's
exact interval and latency; random stalls on both streams of a whole accelerator."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import numpy as np
import pytest

from gen import cycles
from gen.estimate import estimate_network
from gen.ir import Conv2d, Dense
from gen.load import network_from_dict
from gen.plan import plan_network
from gen.top import Accelerator, decode_outputs, encode_frames
from hw.dtypes import pack_words
from hw.pad import PadGather, VectorTrim
from sim import golden
from sim.randnet import MAC_TYPES, random_network, random_values
from sim.streamsim import stream_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cycles_random import describe, draw_case, measure  # noqa: E402

KINDS = tuple(MAC_TYPES)


# -- the blocks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pad_gather_completes_vectors_with_zeros_under_stalls(seed):
    rng = np.random.default_rng(seed)
    elems, ratio, parts, vectors, w = int(rng.integers(1, 4)), int(rng.integers(2, 5)), int(rng.integers(1, 9)), 6, 3
    codes = rng.integers(0, 1 << w, (vectors, parts * elems))
    beats = pack_words(codes.reshape(-1, elems), w)
    dut = PadGather(width=w, elems=elems, ratio=ratio, parts=parts)
    per = len(dut.counts)
    got = stream_run(dut, beats, vectors * per, seed=seed)
    padded = np.zeros((vectors, per * ratio * elems), dtype=np.int64)
    padded[:, :parts * elems] = codes
    assert got == pack_words(padded.reshape(-1, ratio * elems), w), (elems, ratio, parts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_trim_keeps_the_first_elements_under_stalls(seed):
    rng = np.random.default_rng(seed)
    elems, ratio, vectors, w = int(rng.integers(1, 5)), int(rng.integers(1, 4)), 6, 2
    keep = int(rng.integers(1, elems * ratio + 1))
    codes = rng.integers(0, 1 << w, (vectors, ratio * elems))
    dut = VectorTrim(width=w, elems=elems, ratio=ratio, keep=keep)
    got = stream_run(dut, pack_words(codes.reshape(-1, elems), w), vectors, seed=seed)
    assert got == pack_words(codes[:, :keep], w)


@pytest.mark.parametrize(("block", "counts"), [
    (lambda: PadGather(width=2, elems=1, ratio=3, parts=7), [3, 3, 1]),
    (lambda: VectorTrim(width=2, elems=2, ratio=3, keep=5), [3])])
def test_block_timing_rules(block, counts):
    """With no gaps or stalls the output beats are valid when the cycle model says."""
    from amaranth.sim import Simulator

    from sim.streamsim import StreamSink, StreamSource

    dut, vectors = block(), 4
    n_in, n_out = vectors * sum(counts), vectors * len(counts)
    src, sink = StreamSource(dut.i_stream, list(range(1, n_in + 1))), StreamSink(dut.o_stream, n_out)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(src.testbench)
    sim.add_testbench(sink.testbench)
    sim.run()
    t0 = src.accept_cycles[0]
    want = cycles.gather_timing(np.array(src.accept_cycles) - t0, counts)
    assert (np.array(sink.valid_cycles[:n_out]) - t0).tolist() == want.tolist()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_block_parameters_are_checked():
    with pytest.raises(ValueError, match="Elements kept must be at most 6, not 7"):
        VectorTrim(width=1, elems=2, ratio=3, keep=7)
    with pytest.raises(ValueError, match="Ratio must be an integer >= 1, not 0"):
        PadGather(width=1, elems=2, ratio=0, parts=3)
    gc.collect()   # the half-built blocks warn when collected: here, under the filter


# -- whole accelerators ---------------------------------------------------------------------------
def _ragged_fold(net, rng) -> dict:
    """PE in 1..MH+2 and SIMD in 1..MW+2 for every compute layer: mostly not divisors."""
    return {layer.name: {"pe": int(rng.integers(1, layer.mh + 3)), "simd": int(rng.integers(1, layer.mw + 3))}
            for layer in net.layers if isinstance(layer, (Dense, Conv2d))}


def _ragged_case(seed: int, max_cycles: int = 2500):
    kw, net_seed, fold_seed = draw_case(seed)
    doc, arrays = random_network(np.random.default_rng(net_seed), **kw)
    net = network_from_dict(doc, arrays=arrays)
    rng = np.random.default_rng(fold_seed)
    for _ in range(20):
        fold = _ragged_fold(net, rng)
        if plan_network(net, fold=fold).interval <= max_cycles:
            return net, fold
    pytest.skip(f"seed {seed}: no ragged folding under {max_cycles} cycles")


def _check(seed):
    net, fold = _ragged_case(seed)
    est = estimate_network(net, fold=fold, count_registers=False)
    where = f"seed {seed}:\n{describe(net, fold)}\n"
    print(where)
    latency, interval = measure(est.accel)     # outputs asserted equal to the golden model's
    assert (est.interval, est.latency) == (interval, latency), (
        f"{where}model interval {est.interval}, latency {est.latency}; simulation {interval}, {latency}")


@pytest.mark.parametrize("seed", range(6))
def test_ragged_folding_exact(seed):
    _check(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 60))
def test_ragged_folding_sweep(seed):
    _check(seed)


def _dense_net(kind: str, seed: int):
    doc, arrays = random_network(np.random.default_rng(seed), [kind, kind, kind], in_shape=[37],
                                 widths=[10, 13, 10], argmax=True)
    return network_from_dict(doc, arrays=arrays)


@pytest.mark.parametrize("kind", KINDS)
def test_ragged_accelerator_under_stalls(kind):
    """LFC-like foldings (SIMD above or not dividing the inputs, PE above the outputs) on every
    MAC kind, with random gaps on the input and stalls on the output."""
    seed = KINDS.index(kind) + 11
    print(f"seed={seed}")
    net = _dense_net(kind, seed)
    fold = {net.layers[0].name: {"pe": 4, "simd": 8}, net.layers[1].name: {"pe": 3, "simd": 4},
            net.layers[2].name: {"pe": 16, "simd": 6}}
    accel = Accelerator(net, plan_network(net, fold=fold))
    names = [n for n, _ in accel.blocks]
    assert sum("_pad" in n for n in names) == 3 and sum("_trim" in n for n in names) == 3, names
    x = random_values(np.random.default_rng(seed), net.input.dtype, (5, *net.input.shape))
    n_in = accel.in_beats_per_frame
    beats = [{"data": d, "last": int(j % n_in == n_in - 1)} for j, d in enumerate(encode_frames(accel, x))]
    got = stream_run(accel, beats, 5 * accel.out_beats_per_frame, seed=seed, field="data")
    np.testing.assert_array_equal(decode_outputs(accel, got, 5), golden.run(net, x).outputs)


def test_ragged_folding_in_the_plan():
    net = _dense_net("xnor", 3)
    name = net.layers[0].name
    plan = plan_network(net, fold={name: {"pe": 4, "simd": 8}})
    parts = dict(plan.layers[0].parts)
    # 37 inputs at SIMD 8 -> 40 (5 folds), 10 outputs at PE 4 -> 12 (3 folds)
    assert parts["mvu"] == 15
    assert parts["pad"] == 37          # the pad gathers beats of gcd(37, 8) = 1 element
    assert parts["trim"] == 3          # one beat of each channel fold
    assert plan.layers[0].out_elems == 10   # the 10 real outputs in one beat
    assert plan.input_elems == 1
    doc_fold = {name: {"pe": 0, "simd": 8}}
    from gen.errors import NetworkError

    with pytest.raises(NetworkError, match=r"fold\..*\.pe"):
        plan_network(net, fold=doc_fold)
