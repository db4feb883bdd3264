"""The siamese recipe end to end on tiny data: artifact, metadata, resume, alternative losses."""
import dataclasses

import numpy as np
import pytest

import zoo
from training.recipes import siamese as recipes
from zoo import artifacts


def tiny(recipe, **changes):
    small = dict(n_train=2000, n_validation=500, n_evaluation=1000, readout_points=1000, batch_size=128)
    return dataclasses.replace(recipe, **(small | changes))


def test_train_and_evaluate_writes_a_complete_artifact_and_resumes(tmp_path):
    recipe = tiny(recipes.RECIPES["siamese-kepler"])
    metadata = recipe.train_and_evaluate(tmp_path, epochs=1, verbose=0)
    assert metadata["training"]["epochs"] == 1
    assert {t["metric"] for t in metadata["targets"]} == {
        "pair_accuracy", "spearman_abs_embedding_vs_angular_momentum", "readout_dominant_terms_match"}
    assert all(np.isfinite(v) for v in metadata["metrics"].values())
    assert metadata["data"]["evaluation_seed"] not in (metadata["data"]["train_seed"], metadata["data"]["validation_seed"])
    sections = {s["title"]: s["markdown"] for s in metadata["card_sections"]}
    assert metadata["readout"]["formula"] in sections["Read-out of the embedding"]
    assert "0.97" in sections["Pair accuracy against the paper"]
    assert (tmp_path / "artifact" / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    model = zoo.load(str(tmp_path / "artifact"))
    assert model.embed(np.full((2, 4), 0.7)).shape == (2, 1)
    resumed = recipe.train_and_evaluate(tmp_path, epochs=2, verbose=0)
    assert resumed["training"]["epochs"] == 2
    artifacts.verify_preset(tmp_path / "artifact")


def test_recipes_use_distinct_seeds_and_known_presets():
    for recipe in recipes.RECIPES.values():
        assert zoo.get_spec(recipe.preset).family == "siamese"
        assert len({recipe.train_seed, recipe.validation_seed, recipe.evaluation_seed}) == 3
        data = recipe.simulate(8, 0)
        assert recipe.invariant in data.invariants_first
        assert data.first.shape[1] == zoo.get_spec(recipe.preset).config["input_size"]


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_contrastive_and_triplet_training_calibrate_the_head(loss, tmp_path):
    recipe = tiny(recipes.RECIPES["siamese-kepler"], loss=loss, n_train=20000, margin=1.0 if loss == "contrastive" else 0.3)
    model = zoo.load(recipe.preset, pretrained=False, units=[32, 32])
    train = recipe.simulate(recipe.n_train, 1)
    validation = recipe.simulate(recipe.n_validation, 2)
    pairs = (recipes.pair_inputs(model, train), train.label)
    history = recipes.train_model(recipe, model, pairs, (recipes.pair_inputs(model, validation), validation.label), 3,
                                  tmp_path, verbose=0)
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    probability = model.predict(recipes.pair_inputs(model, validation), verbose=0)[:, 0]
    related = validation.label == 1
    assert probability[related].mean() > probability[~related].mean()
    gap = np.abs(model.embed(validation.first) - model.embed(validation.second))[:, 0]
    assert np.median(gap[related]) < np.median(gap[~related])
    # the calibrated head is nearly as accurate as the best threshold on the embedding distance
    best = max(np.mean((gap < g) == related) for g in np.quantile(gap, np.linspace(0.01, 0.99, 99)))
    assert np.mean((probability > 0.5) == related) > best - 0.05


def test_unknown_loss_is_rejected(tmp_path):
    recipe = tiny(recipes.RECIPES["siamese-minkowski"], loss="hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        recipes.train_model(recipe, zoo.load(recipe.preset, pretrained=False), None, None, 1, tmp_path)
