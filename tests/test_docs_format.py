"""Every example network in docs/format.md loads and runs.

Each ```yaml block of the document is a complete network; the ```python block after it makes its
arrays. The test writes both to files, loads them with :func:`gen.load.load_network`, and runs the
golden model on random legal inputs (and on floats, through the quantizer, if there is one).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from gen.load import load_network
from gen.macs import mac_names
from gen.netfile import save_npz
from sim import golden

MAC_KINDS = mac_names()

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def examples():
    blocks = BLOCK.findall(DOC.read_text())
    out = []
    for i, (lang, text) in enumerate(blocks):
        if lang != "yaml":
            continue
        assert i + 1 < len(blocks) and blocks[i + 1][0] == "python", \
            f"yaml block {len(out)} of {DOC.name} has no python block after it"
        out.append((text, blocks[i + 1][1]))
    return out


EXAMPLES = examples()


def test_every_mac_kind_has_an_example():
    macs = {layer.get("mac") for text, _ in EXAMPLES for layer in yaml.safe_load(text)["layers"]}
    assert set(MAC_KINDS) <= macs


@pytest.mark.parametrize("text,code", EXAMPLES, ids=[yaml.safe_load(t)["name"] for t, _ in EXAMPLES])
def test_example_loads_and_runs(tmp_path, text, code):
    scope = {"np": np}
    exec(code, scope)  # noqa: S102 - the document's own example code
    path = tmp_path / "net.yaml"
    path.write_text(text)
    save_npz(tmp_path / "net.npz", scope["arrays"])
    net = load_network(path)
    assert net.name == yaml.safe_load(text)["name"]
    rng = np.random.default_rng(0)
    x = rng.choice(net.input.dtype.values(), size=(16, *net.input.shape))
    res = golden.run(net, x)
    assert res.outputs.shape == (16, *net.output_shape)
    if net.input.quantizer is not None:
        floats = rng.uniform(-0.2, 1.2, size=(16, *net.input.shape))
        golden.run(net, golden.quantize_input(net, floats))
