"""One recipe module per family: hyperparameters as dataclasses, train_and_evaluate(recipe, workdir).

A recipe module gives, for the zoo's generic commands and tests:

- ``train_and_evaluate(recipe, workdir, epochs=, strategy=, precision=)`` -> metadata;
- ``simulate(recipe, n, seed)`` and ``task_metrics(recipe, model, data)`` (``zoo evaluate``);
- ``render_figure(recipe, model, data, scan)`` (``zoo evaluate --plot``);
- ``held_out_checks(recipe, model, metadata, seed)`` -> list of :class:`HeldOutCheck`: the
  shipped weights measured again on data from a seed training never used, each with the
  tolerance its sample size allows (the registry-wide quality test).
"""
from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class HeldOutCheck:
    """One metric measured again on held-out data against what the card records.

    ``passed`` when ``|measured - recorded| <= tolerance`` (the statistical error of a
    small sample, stated by the recipe) and, when the card says a target is met, the
    measured value meets it within ``target_slack``.
    """

    metric: str
    measured: float
    recorded: float
    tolerance: float
    target: float | None = None
    comparison: str | None = None
    target_slack: float = 0.0

    @property
    def passed(self) -> bool:
        if not abs(self.measured - self.recorded) <= self.tolerance:
            return False
        if self.target is None:
            return True
        if self.comparison == ">=":
            return self.measured >= self.target - self.target_slack
        if self.comparison == "<=":
            return self.measured <= self.target + self.target_slack
        return abs(self.measured - self.target) <= self.target_slack


def met_targets(metadata: dict) -> dict:
    """metric -> the card's target row, for the targets the card says are met."""
    return {t["metric"]: t for t in metadata.get("targets", []) if t["met"]}


def recipe_of(name: str):
    """(recipe module, recipe) of a registered preset name."""
    import zoo

    module_name, function = zoo.get_spec(name).recipe.split(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, function)()
