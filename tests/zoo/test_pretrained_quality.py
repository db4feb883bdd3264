"""Shipped SciNet weights against their cards, on a fresh held-out sample (seed 31337, never used in training).

Other families check their shipped weights in their own files (tests/zoo/test_ising_presets.py).
"""
import pytest

import zoo
from zoo import artifacts
from training.recipes import recipe_of

SEED = 31337
SHIPPED = [n for n in zoo.list_models() if zoo.has_weights(n) and zoo.get_spec(n).family == "scinet"]


@pytest.mark.parametrize("name", SHIPPED)
def test_held_out_metrics_agree_with_the_card(name):
    module, recipe = recipe_of(name)
    metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    assert SEED not in (metadata["data"]["train_seed"], metadata["data"]["validation_seed"])
    data = module.simulate(recipe, 3000, SEED)
    measured = module.task_metrics(recipe, zoo.load(name), data)
    for key, recorded in metadata["metrics"].items():
        if key not in measured:
            continue
        if "r2" in key:
            assert abs(measured[key] - recorded) < 0.03, (key, measured[key], recorded)
        else:
            assert measured[key] == pytest.approx(recorded, rel=0.25), (key, measured[key], recorded)
    for target in metadata["targets"]:
        if target["met"] and target["metric"] in measured:
            value, goal = measured[target["metric"]], target["target"]
            slack = 0.02 if "r2" in target["metric"] else 0.15 * goal
            assert value >= goal - slack if target["comparison"] == ">=" else value <= goal + slack, target
