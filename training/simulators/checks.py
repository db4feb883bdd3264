"""Argument checks shared by the simulators (numpy only)."""
from __future__ import annotations

from zoo.mcmc import check_scalar  # noqa: F401  (the simulators' checks)


