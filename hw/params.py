"""Plain parameter records of the hardware's activation units (numpy only, no Amaranth).

The IR (:mod:`gen.ir`) uses these records for a layer's activation, and the matrix-vector unit
and the activation units of :mod:`hw.activation` take them as parameters: one definition of
what a multi-threshold or a requantization is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import DType

__all__ = ["ROUNDINGS", "MultiThreshold", "Requant", "NoActivation", "Activation"]

ROUNDINGS = ("floor", "ceil", "half-up", "half-even")


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
