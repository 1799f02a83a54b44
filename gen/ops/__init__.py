"""The layer ops: one module per layer type, and the registry the passes ask.

:data:`OPS` maps each layer type (the file's ``type``, the node's ``kind``) to its
:class:`~gen.ops.base.LayerOp`. :func:`op_for` is how a pass finds the op of an IR node; it
raises on a node no op owns, so that no pass ever skips a layer it does not know.
:data:`NetworkSpec` is the pydantic model of a whole network file, put together from the ops'
own layer models.

Adding a layer type: a module here with its spec, node and op (registered in :data:`OPS`
below) and, if it needs one, its hardware block in ``hw/``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from .. import schema
from .add import AddOp
from .argmax import ArgmaxOp
from .avgpool import AvgPool2dOp, GlobalAvgPoolOp
from .base import LayerOp
from .concat import ConcatOp
from .conv2d import Conv2dOp
from .dense import DenseOp
from .dwconv2d import DwConv2dOp
from .maxpool2d import MaxPool2dOp

__all__ = ["OPS", "op_for", "get_op", "LayerSpec", "NetworkSpec", "LayerOp"]

OPS: dict[str, LayerOp] = {op.type: op for op in (DenseOp(), Conv2dOp(), DwConv2dOp(), MaxPool2dOp(),
                                                   ArgmaxOp())}
OPS.update({op.type: op for op in (AddOp(), ConcatOp(), AvgPool2dOp(), GlobalAvgPoolOp())})  # graphs


def get_op(kind: str) -> LayerOp:
    try:
        return OPS[kind]
    except KeyError:
        raise ValueError(f"Layer type must be one of {', '.join(OPS)}, not {kind!r}") from None


def op_for(node) -> LayerOp:
    """The op of an IR node (by its ``kind``)."""
    kind = getattr(node, "kind", None)
    op = OPS.get(kind)
    if op is None or not isinstance(node, op.node):
        raise TypeError(f"No layer op for {type(node).__name__} (kind {kind!r})")
    return op


#: One layer entry of the file: the layer models of every op, told apart by ``type``.
LayerSpec = Annotated[Union[tuple(op.spec for op in OPS.values())],  # noqa: UP007
                      Field(discriminator="type")]


class NetworkSpec(schema.Model):
    version: Literal[schema.VERSIONS]  # type: ignore[valid-type]
    name: Annotated[str, Field(max_length=256)] = "network"
    source: Annotated[str, Field(max_length=4096)] = ""
    metadata: dict = Field(default_factory=dict)
    arrays: schema.Key | None = None
    arrays_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    input: schema.InputSpec
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=1024)]
    outputs: Annotated[list[schema.Key], Field(min_length=1, max_length=64)] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, v):
        if isinstance(v, bool) or not isinstance(v, int):   # not 1.0, true or "1"
            raise ValueError(f"must be an integer ({' or '.join(map(str, schema.VERSIONS))})")
        return v
