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
           "activate"]


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
