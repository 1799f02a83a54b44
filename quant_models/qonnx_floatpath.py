"""The float path of a QONNX graph, run exactly as qonnx runs it, and exact searches over it.

A :class:`FloatPath` is a chain of ONNX nodes (scales, biases, BatchNorm, ReLU, and a quantizer
at its end) that :mod:`quant_models.qonnx_import` folds into integer thresholds. It runs the
nodes the way :func:`qonnx.core.onnx_exec.execute_onnx` does (standard ops one by one in
onnxruntime, qonnx custom ops with their own ``execute_node``), but on a whole batch of
candidate values at once, so that the thresholds are searched against the very float32
arithmetic of the reference and not against a re-derivation of it.

Every node of such a chain is monotone in its input (non-decreasing or, for a negative scale,
non-increasing), so the set of accumulators that reach an output level is an interval and a
binary search finds its end exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FloatPath", "search_thresholds", "search_float32_threshold", "float32_key",
           "float32_from_key"]

_ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7, np.dtype(np.int32): 6,
               np.dtype(np.float64): 11}


class FloatPath:
    """A chain of ONNX nodes from one float tensor to the end of its last node.

    Parameters
    ----------
    model : qonnx.core.modelwrapper.ModelWrapper
        The (cleaned-up) model the nodes belong to; their constant inputs are its initializers.
    nodes : list of onnx.NodeProto
        The chain, in order; every node takes the previous node's output (or ``start``) as
        its one non-constant input. Shape-only nodes may be left out of the chain: a node's
        non-constant input that nothing in the chain produced is fed the previous output.
    start : str
        The name of the chain's input tensor.
    consts : dict, optional
        Float values of constant tensors that are not initializers (the outputs of constant
        nodes, e.g. a quantized bias).
    """

    def __init__(self, model, nodes, start: str, consts=None):
        self.model = model
        self.nodes = list(nodes)
        self.start = start
        self.consts = {}
        for node in self.nodes:
            for name in node.input:
                if name and name != start:
                    v = model.get_initializer(name)
                    if v is not None:
                        self.consts[name] = v
                    elif consts is not None and name in consts:
                        self.consts[name] = np.asarray(consts[name])
        opsets = {o.domain: o.version for o in model.model.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 11))
        self.opsets = opsets  # a custom op runs in its domain's version, as execute_onnx runs it
        self._sessions = {}

    @property
    def output(self) -> str:
        return self.nodes[-1].output[0] if self.nodes else self.start

    def _session(self, i: int, node, ctx):
        sess = self._sessions.get(i)
        if sess is not None:
            return sess
        import onnxruntime as ort
        from onnx import helper
        from qonnx.util.basic import qonnx_make_model

        inputs = [helper.make_tensor_value_info(n, _ONNX_TYPES[np.asarray(ctx[n]).dtype], None)
                  for n in dict.fromkeys(node.input) if n]
        outputs = [helper.make_tensor_value_info(n, 1, None) for n in node.output if n]
        graph = helper.make_graph([node], "nomul-floatpath", inputs, outputs)
        m = qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self._sessions[i] = sess
        return sess

    def __call__(self, x) -> np.ndarray:
        """The chain's output for a batch ``x`` fed as its start tensor (float32)."""
        from qonnx.custom_op.registry import getCustomOp, is_custom_op

        ctx = dict(self.consts)
        prev = np.asarray(x, dtype=np.float32)
        ctx[self.start] = prev
        for i, node in enumerate(self.nodes):
            for n in node.input:
                if n and n not in ctx:
                    ctx[n] = prev
            if is_custom_op(node.domain, node.op_type):
                getCustomOp(node, self.opsets.get(node.domain, 1)).execute_node(ctx, self.model.graph)
            else:
                sess = self._session(i, node, ctx)
                feeds = {n: np.asarray(ctx[n]) for n in dict.fromkeys(node.input) if n}
                outs = sess.run(None, feeds)
                for name, v in zip([n for n in node.output if n], outs, strict=True):
                    ctx[name] = v
            prev = ctx[node.output[0]]
        return np.asarray(prev)


def search_thresholds(level_of, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Exact integer thresholds of a non-decreasing step function, per channel.

    ``level_of(y)`` maps an integer array ``y`` of shape (n, C) to output level indices (0..n)
    of the same shape, non-decreasing in ``y`` along each channel. Returns ``T`` (C, n):
    ``T[c, j-1]`` is the smallest ``y`` in ``[lo[c], hi[c]]`` whose level is at least ``j``, or
    ``hi[c] + 1`` if none is (the threshold is never reached).
    """
    c = len(lo)
    lo_ = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n, c)).copy()
    hi_ = np.broadcast_to(np.asarray(hi, dtype=np.int64) + 1, (n, c)).copy()
    want = np.arange(1, n + 1, dtype=np.int64)[:, None]
    while (lo_ < hi_).any():
        mid = (lo_ + hi_) // 2  # < hi_, so always a reachable value
        ok = level_of(mid) >= want
        active = lo_ < hi_
        hi_ = np.where(active & ok, mid, hi_)
        lo_ = np.where(active & ~ok, mid + 1, lo_)
    return np.ascontiguousarray(lo_.T)


def float32_key(x) -> np.ndarray:
    """An int64 key per float32 value, ordered like the floats (-0.0 and +0.0 adjacent)."""
    b = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFF) - 1, b)


def float32_from_key(k) -> np.ndarray:
    k = np.asarray(k, dtype=np.int64)
    b = np.where(k < 0, (-(k + 1)) | -0x80000000, k)
    return b.astype(np.int32).view(np.float32)


def search_float32_threshold(is_high) -> float | None:
    """The smallest finite float32 ``x`` with ``is_high(x)`` true, for a predicate that is
    non-decreasing in ``x`` (vectorized over a float32 array); None if it is never true."""
    lo = int(float32_key(np.float32(-np.finfo(np.float32).max)))
    hi = int(float32_key(np.float32(np.finfo(np.float32).max))) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if bool(is_high(float32_from_key(np.array([mid])))[0]):
            hi = mid
        else:
            lo = mid + 1
    if lo > int(float32_key(np.float32(np.finfo(np.float32).max))):
        return None
    return float(float32_from_key(np.array([lo]))[0])
