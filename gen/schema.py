"""The network description file, version 1, as pydantic models (structure only).

These models check keys, types and simple bounds; :mod:`gen.load` checks the arrays and the
consistency between layers, and builds the IR. Unknown keys are rejected everywhere.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

MAX_DIM = 1 << 16

Dim = Annotated[StrictInt, Field(ge=1, le=MAX_DIM)]
Pair = Dim | tuple[Dim, Dim]
NonNegPair = Annotated[StrictInt, Field(ge=0, le=64)] | tuple[
    Annotated[StrictInt, Field(ge=0, le=64)], Annotated[StrictInt, Field(ge=0, le=64)]]
Key = Annotated[str, Field(min_length=1, max_length=256)]
Rounding = Literal["floor", "ceil", "half-up", "half-even"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TypeSpec(_Model):
    encoding: Literal["bipolar", "uint", "int", "ternary", "onehot"]
    bits: Annotated[StrictInt, Field(ge=1, le=32)] | None = None
    narrow: StrictBool = False
    signed: StrictBool = False


class AffineQuantizerSpec(_Model):
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
    zero_point: StrictInt = 0
    rounding: Literal["half-even", "half-up", "floor", "ceil"] = "half-even"
    clip: tuple[StrictInt, StrictInt] | None = None


class ThresholdQuantizerSpec(_Model):
    threshold: Annotated[float, Field(allow_inf_nan=False, strict=True)]


class InputSpec(TypeSpec):
    shape: Annotated[list[Dim], Field(min_length=1, max_length=3)]
    quantizer: AffineQuantizerSpec | ThresholdQuantizerSpec | None = None


class WeightSpec(TypeSpec):
    key: Key
    shift: Annotated[StrictInt, Field(ge=0, le=16)] = 0


class MultiThresholdSpec(_Model):
    type: Literal["multithreshold"]
    thresholds: Key
    offset: StrictInt = 0
    bipolar: StrictBool = False
    levels: Annotated[list[StrictInt], Field(min_length=2)] | None = None
    encoding: Literal["uint", "int", "bipolar", "onehot"] | None = None

    @model_validator(mode="after")
    def _exclusive(self):
        if self.levels is not None and (self.bipolar or self.offset):
            raise ValueError("levels cannot be combined with offset or bipolar")
        if self.bipolar and self.offset:
            raise ValueError("bipolar cannot be combined with offset")
        return self


class RequantSpec(_Model):
    type: Literal["requant"]
    multiplier: Annotated[StrictInt, Field(ge=-(1 << 62), le=1 << 62)] | Key
    shift: Annotated[StrictInt, Field(ge=0, le=62)] = 0
    rounding: Rounding = "floor"
    clip: tuple[StrictInt, StrictInt]


class NoActivationSpec(_Model):
    type: Literal["none"]


ActivationSpec = Annotated[MultiThresholdSpec | RequantSpec | NoActivationSpec,
                           Field(discriminator="type")]


class _ComputeSpec(_Model):
    name: Key | None = None
    mac: Literal["xnor", "and", "ternary", "onehot", "int", "adder"]
    weights: WeightSpec
    bias: Key | None = None
    mask: Key | None = None
    activation: ActivationSpec = NoActivationSpec(type="none")
    pe: Dim | None = None
    simd: Dim | None = None
    ram_style: Literal["block", "distributed", "logic"] | None = None


class DenseSpec(_ComputeSpec):
    type: Literal["dense"]


class Conv2dSpec(_ComputeSpec):
    type: Literal["conv2d"]
    kernel: Pair
    stride: Pair = 1
    padding: NonNegPair = 0
    pad_value: StrictInt | None = None


class MaxPool2dSpec(_Model):
    type: Literal["maxpool2d"]
    name: Key | None = None
    kernel: Pair
    stride: Pair | None = None


class ArgmaxSpec(_Model):
    type: Literal["argmax"]
    name: Key | None = None


LayerSpec = Annotated[DenseSpec | Conv2dSpec | MaxPool2dSpec | ArgmaxSpec, Field(discriminator="type")]


class NetworkSpec(_Model):
    version: Literal[1]
    name: Annotated[str, Field(max_length=256)] = "network"
    source: Annotated[str, Field(max_length=4096)] = ""
    metadata: dict = Field(default_factory=dict)
    arrays: Key | None = None
    arrays_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    input: InputSpec
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=1024)]

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, v):
        if type(v) is not int:  # Literal[1] alone takes 1.0 and True
            raise ValueError("input should be 1")
        return v
