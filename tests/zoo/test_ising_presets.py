"""Shipped Ising presets against their cards on fresh held-out Monte Carlo (seed 31337, never used in training)."""
import math

import numpy as np
import pytest

import zoo
from training.recipes import classifiers, rbm as rbm_recipes
from training.simulators import ising
from zoo import artifacts
from training.recipes import recipe_of

SEED = 31337
RBMS = [n for n in zoo.list_models() if n.startswith("rbm-ising-") and zoo.has_weights(n)]


def card_metrics(name):
    return artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)


@pytest.fixture(scope="module")
def cnn():
    if not zoo.has_weights("ising-cnn"):
        pytest.skip("ising-cnn has no shipped weights")
    return zoo.load("ising-cnn")


def test_cnn_is_accurate_away_from_the_transition(cnn):
    data = ising.simulate(256, SEED, L=32, temperatures=[1.6, 1.9, 2.65, 3.0])
    p = cnn.predict(data.spins, verbose=0)[:, 0]
    accuracy = np.mean((p > 0.5) == (data.temperatures < ising.T_CRITICAL))
    assert accuracy >= 0.97, accuracy


def test_cnn_crossing_at_l32_is_near_onsager(cnn):
    recipe = classifiers.ising_cnn_recipe()
    data = ising.simulate(576, SEED + 1, L=32, temperatures=np.round(np.arange(2.15, 2.41, 0.05), 3))
    grid, outputs = classifiers.mean_output_curve(cnn, data)
    crossing = classifiers.crossing_temperature(grid, [o.mean() for o in outputs])
    assert abs(crossing / ising.T_CRITICAL - 1) < 0.015, crossing
    recorded = card_metrics("ising-cnn")["metrics"]["crossing_L32"]
    assert abs(crossing - recorded) < 0.03, (crossing, recorded)
    assert recipe.evaluation_seed != SEED


@pytest.mark.parametrize("name", RBMS)
def test_rbm_samples_reproduce_monte_carlo_as_the_card_says(name):
    module, recipe = recipe_of(name)
    data = rbm_recipes.simulate(recipe, 2000, SEED)
    measured = rbm_recipes.task_metrics(recipe, zoo.load(name), data, samples=2000, seed=SEED)
    metadata = card_metrics(name)
    for target in metadata["targets"]:
        key = target["metric"].replace("_relative_error", "")
        sigma = math.hypot(measured[f"{key}_rbm_error"], measured[f"{key}_monte_carlo_error"]) / abs(measured[f"{key}_monte_carlo"])
        bound = target["target"] if target["met"] else target["measured"]
        assert measured[target["metric"]] <= bound + 3 * sigma + 0.005, (target, measured[target["metric"]], sigma)
