"""Imported QONNX models in hardware: each real model of ``../shared/models`` is imported, its
accelerator generated and co-simulated in cocotb on real inputs with random stalls; every output
must equal the golden model's, the measured interval the plan's, and the hardware's top-1 qonnx's
(and the finn-examples reference output where there is one).

The default run checks FINN's tfc_w1a1 on its four reference images (expected classes 7, 2, 1,
0; about 20 s on Icarus). The ``slow`` ones check all six models on 8 frames each (the first 8
MNIST images for the TFC models; the reference input and 7 random inputs for kws and unsw).
``bench/import_hw.py`` runs them on larger samples and writes ``bench/results/import_hw.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.import_hw import BY_NAME, CASES, Case, missing, run_model  # noqa: E402

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")


def check(rec: dict) -> None:
    n = rec["frames"]
    where = f"{rec['model']} ({rec['inputs']}, seed {rec['seed']})"
    assert not rec["timeout"], f"{where}: the accelerator hung"
    assert rec["frames_checked"] == n, f"{where}: {rec['frames_checked']}/{n} frames checked"
    assert rec["mismatches"] == 0, f"{where}: " + "; ".join(rec["mismatch_report"])
    assert rec["outputs_equal_golden"], f"{where}: outputs differ from the golden model"
    assert rec["cycles_per_frame"] == rec["expected_cycles_per_frame"], where
    assert rec["hw_top1_equals_qonnx"] == n, \
        f"{where}: hardware top-1 differs from qonnx on frames {rec['qonnx_disagreements']}"
    if "reference_ok" in rec:
        assert rec["reference_ok"], \
            f"{where}: reference output {rec['reference_hw']}, expected {rec['reference_expected']}"
    assert rec["passed"]


def test_finn_tfc_w1a1_reference_images(tmp_path):
    """FINN's tfc_w1a1 on its own four reference images (raw pixels), Icarus."""
    case = Case("finn_tfc_w1a1", "finn/tfc_w1a1.onnx", "finn/tfc_w1a1_input.npy",
                "finn/tfc_w1a1_expected_output.npy")
    rec = run_model(case, tmp_path, extra_frames=0, sim="icarus", stall=0.2, seed=1)
    check(rec)
    assert rec["frames"] == 4
    assert rec["reference_hw"] == [7, 2, 1, 0]
    assert rec["latency_cycles"] == rec["latency_model"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_imported_model_in_hardware(tmp_path, name):
    rec = run_model(BY_NAME[name], tmp_path, mnist_frames=8, extra_frames=7, sim="icarus",
                    stall=0.2, seed=0)
    check(rec)
    assert rec["latency_cycles"] == rec["latency_model"]
