"""The network description file as pydantic models: the parts every layer shares.

Each layer type's own model lives with its op (:mod:`gen.ops`); :data:`gen.ops.NetworkSpec` puts
them together. These models check keys, types and simple bounds; the ops check the arrays and
the consistency between layers. Unknown keys are rejected everywhere.

Version 1 is a chain of layers. Version 2 adds ``inputs`` to a layer (the tensors it reads: layer
names or ``input``; default the previous layer) and ``outputs`` to the network (default the last
layer), so that a network is a DAG of named tensors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from hw.dtypes import DType

from .errors import NetworkError

MAX_DIM = 1 << 16
VERSIONS = (1, 2)

Dim = Annotated[StrictInt, Field(ge=1, le=MAX_DIM)]
#: The most pipeline registers a reduction tree may be given (``tree_depth``).
MAX_TREE_DEPTH = 16
TreeDepth = Annotated[StrictInt, Field(ge=0, le=MAX_TREE_DEPTH)]
Pair = Dim | tuple[Dim, Dim]
NonNegPair = Annotated[StrictInt, Field(ge=0, le=64)] | tuple[
    Annotated[StrictInt, Field(ge=0, le=64)], Annotated[StrictInt, Field(ge=0, le=64)]]
Key = Annotated[str, Field(min_length=1, max_length=256)]
Rounding = Literal["floor", "ceil", "half-up", "half-even"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TypeSpec(Model):
    encoding: Literal["bipolar", "uint", "int", "ternary", "onehot"]
    bits: Annotated[StrictInt, Field(ge=1, le=32)] | None = None
    narrow: StrictBool = False
    signed: StrictBool = False


class AffineQuantizerSpec(Model):
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
    zero_point: StrictInt = 0
    rounding: Literal["half-even", "half-up", "floor", "ceil"] = "half-even"
    clip: tuple[StrictInt, StrictInt] | None = None
    offset: Annotated[float, Field(allow_inf_nan=False, strict=True)] = 0.0


class ThresholdQuantizerSpec(Model):
    threshold: Annotated[float, Field(allow_inf_nan=False, strict=True)]


class MultiThresholdQuantizerSpec(Model):
    thresholds: Annotated[list[Annotated[float, Field(allow_inf_nan=False, strict=True)]],
                          Field(min_length=1, max_length=1 << 16)]


class InputSpec(TypeSpec):
    shape: Annotated[list[Dim], Field(min_length=1, max_length=3)]
    quantizer: AffineQuantizerSpec | ThresholdQuantizerSpec | MultiThresholdQuantizerSpec | None = None


class LayerSpecBase(Model):
    """Fields of every layer: its name and (version 2) the tensors it reads."""

    name: Key | None = None
    inputs: Annotated[list[Key], Field(min_length=1, max_length=64)] | None = None


def dtype_of(path: str, spec: TypeSpec) -> DType:
    """The element type of a type spec (``bits`` defaults: bipolar 1, ternary 2)."""
    enc, bits = spec.encoding, spec.bits
    if enc in ("uint", "int", "onehot") and bits is None:
        raise NetworkError(f"{path}.bits", f"required for encoding {enc!r}")
    if enc == "bipolar":
        bits = 1 if bits is None else bits
    if enc == "ternary":
        bits = 2 if bits is None else bits
    try:
        return DType(enc, bits, narrow=spec.narrow, signed=spec.signed)
    except ValueError as e:
        raise NetworkError(path, str(e)[0].lower() + str(e)[1:]) from None


def __getattr__(name):
    # NetworkSpec and LayerSpec are assembled from the registered ops.
    if name in ("NetworkSpec", "LayerSpec"):
        from . import ops
        return getattr(ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
