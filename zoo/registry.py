"""The preset registry: every preset is declared once, next to its family.

A family module (``zoo.models.<family>``) exposes a tuple ``PRESETS`` of
:class:`PresetSpec`. The registry is built from the explicit tuple
``FAMILY_MODULES`` below, so importing a module never registers anything as a
side effect, and two presets with the same name fail at import.
"""
from __future__ import annotations

import difflib
import importlib

from zoo.spec import PresetSpec

FAMILY_MODULES = ("zoo.models.scinet", "zoo.models.classifiers", "zoo.models.rbm", "zoo.models.siamese")


class UnknownPresetError(KeyError):
    """A preset name that the registry does not hold."""

    def __str__(self):
        return str(self.args[0])


def _build_registry(modules=FAMILY_MODULES) -> dict:
    registry = {}
    for module_name in modules:
        for spec in importlib.import_module(module_name).PRESETS:
            if spec.name in registry:
                raise RuntimeError(
                    f"Preset {spec.name!r} is declared twice: in {registry[spec.name].family!r} "
                    f"and in {module_name!r}. Preset names must be unique."
                )
            registry[spec.name] = spec
    return registry


_REGISTRY = _build_registry()


def list_specs() -> list:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_spec(name: str) -> PresetSpec:
    """Return the spec of preset ``name``; unknown names fail with close matches."""
    if not isinstance(name, str):
        raise TypeError(f"A preset name must be a string, received {type(name).__name__}: {name!r}.")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownPresetError(
            f"Unknown preset {name!r}.{hint} Known presets: {', '.join(sorted(_REGISTRY))}."
        ) from None
