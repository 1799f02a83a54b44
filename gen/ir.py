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

from .dtypes import DType, bits_for_range

__all__ = [
    "MAC_KINDS", "ROUNDINGS",
    "ValueRange", "InputQuantizer", "InputSpec",
    "MultiThreshold", "Requant", "NoActivation", "Activation",
    "Dense", "Conv2d", "MaxPool2d", "Argmax", "Layer", "Network",
]

MAC_KINDS = ("xnor", "and", "ternary", "onehot", "int", "adder")
ROUNDINGS = ("floor", "ceil", "half-up", "half-even")


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
class MultiThreshold:
    """``out = levels[number of thresholds[c] that acc reaches]`` (``acc >= t``).

    ``thresholds`` has shape (channels, T) or (1, T) (shared by every channel), each row
    non-decreasing; ``levels`` has T + 1 non-decreasing entries (by default ``offset + 0..T``).
    """

    thresholds: np.ndarray
    levels: np.ndarray
    out_dtype: DType

    @property
    def num_thresholds(self) -> int:
        return self.thresholds.shape[1]

    @property
    def levels_are_identity(self) -> bool:
        """True when ``levels[k] == levels[0] + k`` (the output is the count plus an offset)."""
        return bool(np.array_equal(self.levels - self.levels[0], np.arange(len(self.levels))))


@dataclass(frozen=True, eq=False)
class Requant:
    """``out = clip(round(acc * multiplier[c] / 2**shift), *clip)``, integer throughout."""

    multiplier: np.ndarray  # (channels,)
    shift: int
    rounding: str
    clip: tuple[int, int]
    out_dtype: DType


@dataclass(frozen=True)
class NoActivation:
    out_dtype: DType


Activation = MultiThreshold | Requant | NoActivation


@dataclass(frozen=True, eq=False)
class _Compute:
    """Fields shared by :class:`Dense` and :class:`Conv2d`."""

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


@dataclass(frozen=True, eq=False)
class Dense(_Compute):
    kind: str = field(default="dense", init=False)

    @property
    def macs(self) -> int:
        return self.mh * self.mw


@dataclass(frozen=True, eq=False)
class Conv2d(_Compute):
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pad_value: int = 0
    kind: str = field(default="conv2d", init=False)

    @property
    def macs(self) -> int:
        return self.mh * self.mw * self.out_shape[1] * self.out_shape[2]


@dataclass(frozen=True)
class MaxPool2d:
    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: DType
    out_range: ValueRange
    kind: str = field(default="maxpool2d", init=False)
    macs: int = field(default=0, init=False)

    @property
    def out_dtype(self) -> DType:
        return self.in_dtype


@dataclass(frozen=True)
class Argmax:
    """Index of the largest element (first index wins ties), over the flattened input."""

    name: str
    in_shape: tuple[int, ...]
    in_dtype: DType
    out_range: ValueRange
    out_shape: tuple[int, ...] = (1,)
    kind: str = field(default="argmax", init=False)
    macs: int = field(default=0, init=False)

    @property
    def out_dtype(self) -> DType:
        return DType.for_range(self.out_range.lo, self.out_range.hi)


Layer = Dense | Conv2d | MaxPool2d | Argmax


@dataclass(frozen=True)
class Network:
    version: int
    name: str
    source: str
    input: InputSpec
    layers: tuple[Layer, ...]
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape if self.layers else self.input.shape

    @property
    def ends_in_argmax(self) -> bool:
        return bool(self.layers) and isinstance(self.layers[-1], Argmax)
