"""Every preset's recipe, by preset name: ``zoo train NAME`` looks its recipe up here.

Each family's recipe module declares ``RECIPES``, a mapping from preset name to a
:class:`training.recipes.base.Recipe` (frozen hyperparameters whose methods are the
family's hooks), and the tuple below gathers them, as ``zoo.registry`` gathers
families: adding a family's recipes is one line here. ``DEMOS`` maps a family name
to its ``zoo demo FAMILY`` function (``function(argv) -> int``).
"""
from __future__ import annotations

import difflib

from training.recipes import (
    calogan,
    classifiers,
    demos,
    flows,
    jets,
    rbm,
    scinet,
    siamese,
    translator,
)
from training.recipes.base import Evaluation, HeldOutCheck, Recipe, met_targets  # noqa: F401 (the recipes' API)

RECIPE_MODULES = (scinet, classifiers, rbm, siamese, jets, calogan, flows, translator)


def all_recipes() -> dict:
    """Preset name -> its recipe, over every family; two recipes for one preset are an error."""
    recipes = {}
    for module in RECIPE_MODULES:
        for name, recipe in module.RECIPES.items():
            if name in recipes:
                raise ValueError(f"Two recipes make {name!r}: {module.__name__} and another module.")
            if recipe.preset != name:
                raise ValueError(f"{module.__name__}.RECIPES[{name!r}] makes {recipe.preset!r}.")
            recipes[name] = recipe
    return recipes


def recipe_for(name: str) -> Recipe:
    """The recipe that makes preset ``name``."""
    recipes = all_recipes()
    if name not in recipes:
        close = difflib.get_close_matches(name, recipes, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Known: {', '.join(sorted(recipes))}."
        raise ValueError(f"No recipe makes a preset named {name!r}.{hint}")
    return recipes[name]


DEMOS = {"scinet": scinet.heliocentric_demo,
         **{family: demos.sample_demo(family, recipe_for) for family in demos.SHOWCASES}}


def demo_for(family: str):
    """The ``zoo demo`` function of ``family``."""
    if family not in DEMOS:
        raise ValueError(f"The {family!r} family has no demo; families with one: {sorted(DEMOS)}.")
    return DEMOS[family]
