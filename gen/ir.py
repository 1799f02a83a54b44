"""The intermediate representation: a validated network as plain, immutable data.

A :class:`Network` is what :func:`gen.load.load_network` returns. Every array in it is a
read-only int64 numpy array; every layer knows its input and output shapes, element types and
value ranges, and compute layers know the exact range of their accumulators. Nothing here
refers to hardware, folding choices aside (``pe``, ``simd``, ``ram_style`` are carried, not
interpreted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.dtypes import DType, bits_for_range
from hw.params import ROUNDINGS, Activation, MultiThreshold, NoActivation, Requant

__all__ = [
    "ROUNDINGS", "INPUT",
    "ValueRange", "InputQuantizer", "InputSpec",
    "MultiThreshold", "Requant", "NoActivation", "Activation",
    "Compute", "Network",
]



@dataclass(frozen=True)
class ValueRange:
    """An inclusive integer interval."""

    lo: int
    hi: int

    @property
    def width(self) -> int:
        return bits_for_range(self.lo, self.hi)[0]

    @property
    def signed(self) -> bool:
        return bits_for_range(self.lo, self.hi)[1]

    def __str__(self) -> str:
        return f"[{self.lo}, {self.hi}]"


@dataclass(frozen=True)
class InputQuantizer:
    """Float to integer input quantizer.

    ``kind == "affine"``: ``q = clip(round((x + offset) / scale) + zero_point, *clip)`` with
    ``rounding`` one of half-even, half-up, floor, ceil (computed in float64).
    ``kind == "threshold"`` (bipolar inputs): ``q = +1 if x >= threshold else -1``.
    ``kind == "multithreshold"`` (uint or int inputs): ``q = zero_point + #{k : x >= thresholds[k]}``,
    ``zero_point`` the input type's minimum.
    """

    kind: str
    scale: float = 1.0
    zero_point: int = 0
    rounding: str = "half-even"
    clip: tuple[int, int] = (0, 0)
    threshold: float = 0.0
    offset: float = 0.0
    thresholds: tuple[float, ...] = ()


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]
    dtype: DType
    quantizer: InputQuantizer | None = None




@dataclass(frozen=True, eq=False)
class Compute:
    """Fields shared by the compute layers (dense, conv2d): weights, MAC kind, activation."""

    name: str
    mac: str
    weights: np.ndarray          # dense: (MH, MW); conv: (OC, IC, KH, KW)
    w_dtype: DType
    w_shift: int                 # adder only: weights are used as w << w_shift
    bias: np.ndarray | None      # (out channels,)
    activation: Activation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: DType
    in_range: ValueRange
    acc_lo: np.ndarray           # per output channel, exact worst case
    acc_hi: np.ndarray
    out_range: ValueRange
    kept_channels: tuple[int, ...] | None = None  # output channels kept by a pruning mask
    pe: int | None = None
    simd: int | None = None
    ram_style: str | None = None
    tree_depth: int | None = None  # pipeline registers of the MVU's reduction trees (None: default)
    inputs: tuple[str, ...] = ()  # the tensors it reads (layer names, or INPUT)

    @property
    def out_dtype(self) -> DType:
        return self.activation.out_dtype

    @property
    def acc_range(self) -> ValueRange:
        return ValueRange(int(self.acc_lo.min()), int(self.acc_hi.max()))

    @property
    def acc_width(self) -> int:
        return self.acc_range.width

    @property
    def out_width(self) -> int:
        return self.out_dtype.code_width

    @property
    def matrix(self) -> np.ndarray:
        """Weights as a (rows = output channels, columns = dot-product length) matrix."""
        return self.weights.reshape(self.weights.shape[0], -1)

    @property
    def mh(self) -> int:
        return self.matrix.shape[0]

    @property
    def mw(self) -> int:
        return self.matrix.shape[1]


@dataclass(frozen=True)
class Network:
    """A network: a DAG of named tensors.

    ``layers`` are in topological order; each reads the tensors its ``inputs`` name (the
    network input is :data:`INPUT`, every other tensor is named after the layer that makes it)
    and ``outputs`` names the network's output tensors. A version-1 file is a chain: every
    layer reads the one before it and the last one is the output.
    """

    version: int
    name: str
    source: str
    input: InputSpec
    layers: tuple
    metadata: dict = field(default_factory=dict, compare=False, hash=False)
    outputs: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.outputs and self.layers:
            object.__setattr__(self, "outputs", (self.layers[-1].name,))

    def layer(self, name: str):
        """The layer that makes tensor ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(name)

    def consumers(self, tensor: str) -> tuple[int, ...]:
        """Indices of the layers that read ``tensor``."""
        return tuple(i for i, layer in enumerate(self.layers) if tensor in layer.inputs)

    def tensor_shape(self, tensor: str) -> tuple[int, ...]:
        return self.input.shape if tensor == INPUT else self.layer(tensor).out_shape

    @property
    def is_chain(self) -> bool:
        """True when every layer reads only the one before it (the first: the input) and the
        last layer's output is the only output."""
        prev = INPUT
        for layer in self.layers:
            if tuple(layer.inputs) != (prev,):
                return False
            prev = layer.name
        return self.outputs == (prev,) and all(len(self.consumers(x.name)) <= 1 for x in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.tensor_shape(self.outputs[0]) if self.outputs else self.input.shape

    @property
    def ends_in_argmax(self) -> bool:
        from .ops import op_for

        return bool(self.layers) and op_for(self.layer(self.outputs[0])).emits_index


#: The name of the network input tensor.
INPUT = "input"


_NODES = {"Dense": "dense", "Conv2d": "conv2d", "DwConv2d": "dwconv2d", "MaxPool2d": "maxpool2d",
          "Argmax": "argmax"}


def __getattr__(name):
    # The layer node classes live with their ops (gen/ops/*.py).
    if name in _NODES:
        from .ops import OPS
        return OPS[_NODES[name]].node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
