"""Argument checks shared by the simulators (numpy only)."""
from __future__ import annotations

import math


def check_scalar(value, name: str, positive: bool = False) -> float:
    """``value`` as a finite float (and > 0 when ``positive``), or a ValueError naming ``name`` and the value."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, received {value!r}.") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, received {value!r}.")
    return value
