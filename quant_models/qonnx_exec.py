"""Reference outputs of a QONNX model from :func:`qonnx.core.onnx_exec.execute_onnx`.

Exported models have a batch of 1 (and often a ``Reshape`` to ``(1, -1)``), and qonnx runs
every node in its own onnxruntime session, so one image costs about 30 ms. :func:`run_qonnx`
can instead rewrite the batch dimension to the whole batch and run once; every op of the
supported models works per sample (element-wise ops, MatMul rows, thresholds), and
:func:`run_qonnx` with ``batched=False`` is there to confirm it on a subset.
"""

from __future__ import annotations

import warnings

import numpy as np

from .qonnx_import import load_qonnx

__all__ = ["run_qonnx"]


def _batched(model, n: int):
    from qonnx.transformation.infer_shapes import InferShapes

    m = model.transform(InferShapes())  # a copy; the original stays as it is
    g = m.graph
    for node in g.node:
        if node.op_type == "Reshape":
            shape = m.get_initializer(node.input[1])
            if shape is not None and len(shape) and shape[0] == 1:
                new = np.array(shape, dtype=np.int64)
                new[0] = n
                m.set_initializer(node.input[1], new)
    for vi in [*g.input, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_value = n
    while len(g.value_info):
        g.value_info.pop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.transform(InferShapes())


def run_qonnx(model, x, *, batched: bool = True) -> np.ndarray:
    """The model's output for every sample of ``x`` (N, ...), stacked along axis 0.

    ``model`` is a path or a model (cleaned up first). Inputs are cast to float32 and
    reshaped to the model's input shape. With ``batched=False`` every sample runs alone,
    exactly as the model was exported.
    """
    from qonnx.core.onnx_exec import execute_onnx

    m = load_qonnx(model)
    inp, out = m.graph.input[0].name, m.graph.output[0].name
    shape = tuple(m.get_tensor_shape(inp))
    x = np.asarray(x, dtype=np.float32).reshape(-1, *shape[1:])
    if not batched:
        ys = [execute_onnx(m, {inp: x[i:i + 1]})[out] for i in range(len(x))]
        return np.concatenate(ys, axis=0)
    mb = _batched(m, len(x))
    return np.asarray(execute_onnx(mb, {inp: x})[out])
