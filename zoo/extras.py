"""Optional dependencies: a missing one is named with the ``pip install`` that brings it.

The zoo's core needs Keras and TensorFlow; the jet generator (Pythia 8, FastJet), the Ray scale-out, JAX
and torch come with extras of the package (setup.cfg), so that a laptop that only loads presets stays small.
"""
from __future__ import annotations

import importlib

PACKAGE = "physics-model-zoo"


class MissingExtraError(ImportError):
    """An optional dependency that is not installed; the message says which extra installs it."""


def import_extra(module: str, extra: str, purpose: str):
    """Import ``module``, or fail in one line: what needs it and ``pip install 'physics-model-zoo[extra]'``.
    A module that is installed but fails to import (a broken wheel) keeps its own error."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module.split(".")[0]:
            raise
        raise MissingExtraError(f"{purpose} needs the Python package {module!r}, which is not installed; "
                                f"install it with: pip install '{PACKAGE}[{extra}]'") from None
