"""Physics of the shipped siamese presets on fresh pairs (seed 31337, which training never used): the read-out's
terms, invariance under the symmetry, symmetry under swapping. The card's metrics are checked for every family
by tests/zoo/test_shipped_quality.py."""
import numpy as np
import pytest

import zoo
from training.recipes import siamese as recipes
from zoo import artifacts, cards
from training.recipes import recipe_for

SEED = 31337
SIAMESE = [n for n in zoo.list_models() if zoo.get_spec(n).family == "siamese" and zoo.has_weights(n)]


@pytest.fixture(scope="module", params=SIAMESE)
def evaluated(request):
    name = request.param
    recipe = recipe_for(name)
    model = zoo.load(name)
    data = recipe.simulate(3000, SEED)
    fitted = recipes.fit_readout(recipe, model, data)
    metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    return name, recipe, model, data, fitted, recipe.task_metrics(model, data, fitted), metadata


def test_readout_finds_the_invariants_terms(evaluated):
    name, recipe, _, _, fitted, metrics, metadata = evaluated
    if metadata["metrics"]["readout_dominant_terms_match"] == 1.0:
        assert sorted(fitted.dominant_terms()) == sorted(recipe.expected_terms), fitted.formula
        assert sorted(fitted.dominant_terms()) == sorted(t for t, c in zip(metadata["readout"]["terms"], metadata["readout"]["coefficients"]) if abs(c) >= 0.1)
    assert metrics[f"readout_r2_vs_{recipe.invariant}"] > 0.95
    assert metadata["readout"]["formula"] in cards.render_card(name)


def test_embedding_is_invariant_under_the_symmetry(evaluated):
    """Related points sit much closer in the embedding than unrelated ones."""
    _, _, model, data, _, _, _ = evaluated
    gap = np.abs(model.embed(data.first) - model.embed(data.second))[:, 0]
    related, unrelated = np.median(gap[data.label == 1]), np.median(gap[data.label == 0])
    assert related < 0.05 * unrelated, (related, unrelated)


def test_swapping_pairs_of_the_shipped_model(evaluated):
    _, _, model, data, _, _, _ = evaluated
    a = model.predict({"first": data.first[:500], "second": data.second[:500]}, verbose=0)
    b = model.predict({"first": data.second[:500], "second": data.first[:500]}, verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-6)
