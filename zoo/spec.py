"""Frozen descriptions of presets and of their public tensors."""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for the batch axis) and meaning of one input or output."""

    name: str
    shape: tuple
    description: str


@dataclasses.dataclass(frozen=True)
class PresetSpec:
    """Everything the zoo knows about a preset before any weights are read.

    Attributes:
        name: the preset name users pass to ``zoo.load``.
        family: the family module's short name (``"scinet"``).
        model_class: the registered Keras class that builds the preset.
        config: constructor arguments of ``model_class``.
        recipe: ``"module:function"`` that trains and evaluates the preset.
        summary: one line for ``zoo list``.
        inputs, outputs: the public call contract.
        paper: citation of the architecture's paper.
    """

    name: str
    family: str
    model_class: type
    config: Mapping[str, Any]
    recipe: str
    summary: str
    inputs: tuple
    outputs: tuple
    paper: str

    def __post_init__(self):
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
