"""What the integer-sum layers share (``add``, ``avgpool2d``, ``globalavgpool``): an exact
accumulator range per channel, the activation after it (multi-threshold, requantization or
none, as for a compute layer: :func:`gen.ops.compute.build_activation`), its golden function,
and its stream unit in hardware (:class:`hw.activation.ThresholdUnit` or
:class:`hw.activation.RequantUnit`, none for ``none``)."""

from __future__ import annotations

import numpy as np

from ..errors import NetworkError
from ..ir import MultiThreshold, Requant, ValueRange
from .compute import MAX_ACC_BITS, ActivationSpec, NoActivationSpec, activate, build_activation, frozen

__all__ = ["ActivationSpec", "NoActivationSpec", "SumActivation", "sum_activation", "activation_stage",
           "activate", "variant_activation", "variant_range"]


class SumActivation:
    """The activation of an integer sum and the ranges around it."""

    def __init__(self, act, acc_lo: int, acc_hi: int, out_range: ValueRange):
        self.act, self.acc_lo, self.acc_hi, self.out_range = act, acc_lo, acc_hi, out_range


def sum_activation(path: str, spec, arrays, channels: int, lo: int, hi: int) -> SumActivation:
    """The activation ``spec`` of a sum whose every channel lies in [lo, hi] (exact)."""
    need = max(abs(lo), abs(hi)).bit_length() + 1
    if need > MAX_ACC_BITS:
        raise NetworkError(path, f"the sum would need {need} bits, more than {MAX_ACC_BITS}")
    amin = frozen(np.full(channels, lo))
    amax = frozen(np.full(channels, hi))
    act = build_activation(path, spec, arrays, channels, None, amin, amax)
    if isinstance(act, Requant):
        out = ValueRange(*act.clip)
    elif isinstance(act, MultiThreshold):
        out = ValueRange(int(act.levels[0]), int(act.levels[-1]))
    else:
        out = ValueRange(lo, hi)
    return SumActivation(act, lo, hi, out)


def activation_stage(hw, act, *, channels: int, pe: int, acc_range) -> int:
    """Add the activation unit of ``act`` to ``hw`` (none for no activation); its latency."""
    from hw.activation import RequantUnit, ThresholdUnit

    from .. import area

    if isinstance(act, MultiThreshold):
        unit = ThresholdUnit(activation=act, channels=channels, pe=pe, acc_range=acc_range)
    elif isinstance(act, Requant):
        unit = RequantUnit(activation=act, channels=channels, pe=pe, acc_range=acc_range)
    else:
        return 0
    hw.add("act", unit, lambda: area.activation_params(unit))
    return unit.latency


def variant_range(aspec: dict, count: int, multipliers=None) -> tuple[int, int]:
    """The range of a sum of ``count`` elements of the type ``aspec`` (a type dict), or of
    ``m0·x0 + m1·x1`` with ``multipliers``: what a ``--compare-kinds`` variant's sum takes."""
    from .. import schema

    dt = schema.dtype_of("type", schema.TypeSpec(**aspec))
    lo = hi = 0
    for m in multipliers or (count,):
        a, b = m * dt.min, m * dt.max
        lo, hi = lo + min(a, b), hi + max(a, b)
    return lo, hi


def variant_activation(rng, aspec: dict, lo: int, hi: int, channels: int, arrays: dict, key: str) -> dict:
    """An activation from sums in [lo, hi] to the type ``aspec`` for a ``--compare-kinds``
    variant: a requant that maps the range onto the type, or thresholds inside the range."""
    from .. import schema

    dt = schema.dtype_of("type", schema.TypeSpec(**aspec))
    if dt.encoding in ("uint", "int") and dt.bits > 2:
        shift = max(0, max(1, hi - lo).bit_length() - dt.bits + 1)
        return {"type": "requant", "multiplier": 1, "shift": shift, "rounding": "half-even",
                "clip": [dt.min, dt.max]}
    if dt.encoding == "bipolar":
        n, extra = 1, {"bipolar": True}
    elif dt.encoding == "onehot":
        levels = [0] + [1 << e for e in range(dt.bits)]
        n, extra = len(levels) - 1, {"levels": levels, "encoding": "onehot"}
    else:
        n, extra = dt.max - dt.min, ({"offset": dt.min} if dt.min else {})
    arrays[key] = np.sort(rng.integers(lo, hi + 1, size=(channels, n)), axis=1)
    return {"type": "multithreshold", "thresholds": key, **extra}
