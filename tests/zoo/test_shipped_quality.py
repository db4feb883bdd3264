"""Every shipped preset against its card, on a fresh sample from a seed that training never used.

The recipe of each preset says what to measure and with which tolerance
(``held_out_checks``); this one test runs them all, for every family.
"""
import pytest

import zoo
from training.recipes import recipe_for
from zoo import artifacts

SEED = 31337
SHIPPED = [n for n in zoo.list_models() if zoo.has_weights(n)]


@pytest.mark.parametrize("name", SHIPPED)
def test_held_out_metrics_agree_with_the_card(name):
    recipe = recipe_for(name)
    metadata = artifacts.read_metadata(zoo.preset_folder(name))
    assert SEED not in (metadata["data"]["train_seed"], metadata["data"]["validation_seed"],
                        metadata["data"]["evaluation_seed"])
    checks = recipe.held_out_checks(zoo.load(name), metadata, SEED)
    assert checks, f"{name}'s recipe checks nothing"
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
