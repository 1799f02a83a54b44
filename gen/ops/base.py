"""What every layer op provides, and the small records the passes hand to it.

A :class:`LayerOp` is the one home of a layer type: its file schema (``spec``), its IR node
(``node``), validation with shape, type and accumulator-bound inference (:meth:`build`), its
golden function (:meth:`golden`), its folding and cycles (:meth:`parts`), the hardware blocks
it builds (:meth:`hardware`), its part of the first-frame cycle model (:meth:`timing`), its
manifest entry (:meth:`manifest`) and the row it shows in ``nomul check`` (:meth:`describe`).
The passes (:mod:`gen.load`, :mod:`sim.golden`, :mod:`gen.plan`, :mod:`gen.top`,
:mod:`gen.estimate`, :mod:`gen.emit`) look the op up in :data:`gen.ops.OPS` by the node's
``kind`` and ask it; a kind that is not registered is an error, never skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.dtypes import DType

from ..errors import NetworkError
from ..ir import ValueRange

__all__ = ["LayerOp", "TensorInfo", "BuildContext", "StageBuild", "pair", "dwc_cycles"]


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def dwc_cycles(elems: int, i_elems: int, o_elems: int) -> int:
    """Cycles per frame of a width converter of ``elems`` elements from ``i_elems`` to
    ``o_elems`` elements per beat (0 when there is none): it moves one beat per cycle on its
    faster side."""
    from hw.dwc import dwc_cycles as _dwc_cycles

    return _dwc_cycles(elems, i_elems, o_elems)


@dataclass(frozen=True)
class TensorInfo:
    """What the loader knows about a tensor while it builds the layers that read it.

    ``full_channels`` is the channel count before a pruning mask (the next layer's weights are
    given for all of them), ``keep`` the channels the mask keeps (None: all).
    """

    shape: tuple[int, ...]
    dtype: DType
    range: ValueRange
    full_channels: int
    keep: np.ndarray | None = None

    @property
    def full_shape(self) -> tuple[int, ...]:
        return (self.full_channels, *self.shape[1:])


@dataclass
class BuildContext:
    """Inputs of :meth:`LayerOp.build`: the layer's index, name and file path, its input
    tensors, the arrays file, and whether its output may be channel-masked (every consumer
    drops the masked channels from its weights)."""

    index: int
    name: str
    path: str
    inputs: tuple[TensorInfo, ...]
    arrays: object                 # gen.load._Arrays
    mask_allowed: bool
    is_last: bool
    input_readers: tuple[int, ...] = ()   # how many layers read each input tensor

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]


@dataclass(frozen=True)
class StageBuild:
    """What :meth:`LayerOp.hardware` returns: the elements per beat and type of the layer's
    output stream, its beats per frame, the depth of the FIFO that should follow it (None for
    none), and the compute layer's MVU facts for the manifest."""

    out_elems: int
    out_dtype: DType
    out_beats: int
    fifo_depth: int | None = None
    latency: int | None = None
    acc_width: int | None = None
    weight_bits: int = 0
    in_fifo_depth: int | None = None


class LayerOp:
    """Base of the layer ops. Subclasses set ``type`` (the file's ``type`` value), ``spec``
    (its pydantic model), ``node`` (its IR class) and override the methods."""

    type: str = ""
    spec: type = object
    node: type = object
    #: The layer has a PE × SIMD folding (``pe``, ``simd``, ``mh``, ``mw`` on its node).
    foldable: bool = False
    #: Channels pass through unchanged (a pruning mask before it reaches the layer after it).
    passes_channels: bool = False
    #: The layer's weights take a masked input (drops the masked input channels).
    takes_masked_input: bool = False
    #: The number of inputs the layer takes.
    arity: int = 1
    #: The layer takes ``arity`` or more inputs (concat), not exactly ``arity``.
    variadic: bool = False
    #: Its output is a class index (a classifier's last layer: accuracy can be measured).
    emits_index: bool = False

    # -- loading ---------------------------------------------------------------------------
    def build(self, spec, ctx: BuildContext):
        """Validate ``spec`` against its inputs and build the IR node; returns ``(node,
        TensorInfo of its output)``."""
        raise NotImplementedError

    def check_size(self, node, path: str) -> None:
        """Raise a one-line error when the layer exceeds a size limit of :mod:`gen.bounds`
        beyond its output size and MACs (which every layer is checked for)."""

    # -- golden model --------------------------------------------------------------------------
    def golden(self, node, xs: list[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
        """``(accumulators or None, outputs)`` on a batch of input values."""
        raise NotImplementedError

    # -- folding and cycles ----------------------------------------------------------------------
    def parts(self, node, k_in: int, pe: int | None = None, simd: int | None = None):
        """``(parts, out_elems)``: cycles per frame of each part of the layer with no stalls, and
        the elements per beat of its output stream."""
        raise NotImplementedError

    def input_elems(self, node, simd: int | None) -> int:
        """Elements per beat the layer wants when it reads the network input directly."""
        return 1

    def join_input_elems(self, node, ks) -> tuple[int, ...]:
        """A join (``arity`` > 1): the elements per beat each input is converted to before the
        join block, given those its producers send (``ks``). :meth:`parts` then gets ``ks`` as
        ``k_in``; :meth:`hardware` gets the first of these counts and a tuple of the inputs'
        types, and adds its join block with ``hw.join``; :meth:`timing` gets the list of the
        inputs' beat cycles at the join."""
        raise NotImplementedError

    # -- hardware --------------------------------------------------------------------------------
    def hardware(self, node, lp, k_in: int, dt_in: DType, hw) -> StageBuild:
        """Add the layer's blocks to ``hw`` (:class:`gen.top.Accelerator`'s builder: ``hw.add``,
        ``hw.dwc``, ``hw.mvu``) in stream order."""
        raise NotImplementedError

    def timing(self, node, lp, stage, t: np.ndarray, k_in: int) -> np.ndarray:
        """Cycles at which the output beats of frame 0 are valid, given those of the input."""
        raise NotImplementedError

    # -- reports ---------------------------------------------------------------------------------
    def manifest(self, node, lp, stage) -> dict:
        """The layer's own fields of its manifest entry (docs/manifest.md)."""
        return {}

    def describe(self, node) -> dict:
        """The ``nomul check`` row's layer-specific columns: mac, weights, acc_width, acc_range."""
        return {}

    def variant(self, node, index: int, kind: str, wspec: dict, aspec: dict, rng, arrays: dict, *,
                last_compute: bool, activation) -> dict:
        """The layer's entry in the network file of a ``--compare-kinds`` variant."""
        return {"type": self.type, "name": node.name}

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def error(field: str, message: str) -> NetworkError:
        return NetworkError(field, message)


def macs_of(node) -> int:
    return getattr(node, "macs", 0)


def prod(shape) -> int:
    return math.prod(shape)
