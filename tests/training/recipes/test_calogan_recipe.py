"""The CaloGAN recipe: data in GeV, the evaluation's metrics and card sections, installing a JAX run's weights."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import zoo
from training.recipes import calogan as recipe_module
from training.simulators import calorimeter

TINY = {"latent_size": 4, "discriminator_filters": 2}


@pytest.fixture(scope="module")
def small_recipe():
    return dataclasses.replace(recipe_module.RECIPES["calogan-gamma"], n_evaluation=300, classifier_epochs=2, n_train=2000,
                               head_epochs=2, challenge_epochs=2)


def test_simulated_showers_are_in_gev(small_recipe):
    data = small_recipe.simulate(50, seed=3)
    total = sum(layer.sum(axis=(1, 2)) for layer in data.layers.values())
    assert len(data) == 50 and np.all(total <= data.energies * (1 + 1e-6))
    assert np.all(total > 0.5 * data.energies)  # photons in ~30 X0 deposit most of their energy
    arrays = recipe_module.fit_arrays(data, 0)
    assert arrays["energy"].shape == (50, 1) and arrays["particle"].shape == (50,)


def test_the_simulator_against_an_independent_sample_of_itself(small_recipe):
    """Two seeds of the simulator: the classifier cannot tell them apart and the mean response agrees."""
    data = small_recipe.simulate(600, seed=4)
    raw = calorimeter.simulate("gamma", 600, seed=5, energies=data.energies)
    other = {k: raw[k] / 1000.0 for k in data.layers}
    metrics, table = recipe_module.compare(small_recipe, data, other, seed=4)
    assert metrics["worst_mean_response_deviation"] < 0.02
    assert abs(metrics["classifier_auc"] - 0.5) < 5 * metrics["classifier_auc_error"] + 0.02
    assert metrics["ks/depth"] < 0.15 and len(table["mean_ratio"]) == len(recipe_module.ENERGY_BINS_GEV) - 1


def test_install_from_a_jax_run(tmp_path, small_recipe, monkeypatch):
    """A calogan_jax run folder (the paper's generator, the discriminator, history.json) becomes a verified preset
    folder: the run's streams under an energy head fitted on the training showers."""
    trained = zoo.load("calogan-gamma", pretrained=False, energy_head=False, **TINY)
    trained.build_with_examples()
    run = tmp_path / "run"
    run.mkdir()
    trained.generator.save_weights(run / "generator.weights.h5")
    trained.discriminator.save_weights(run / "discriminator.weights.h5")
    (run / "history.json").write_text(json.dumps({"steps": 3, "epochs": 0.1, "train_seconds": 1.5,
                                                  "device": "cpu", "particles": ["gamma"], "g_loss": [0.7]}))
    original_load = zoo.load
    monkeypatch.setattr(zoo, "load", lambda name, pretrained=True, **kw: original_load(name, pretrained, **{**TINY, **kw}))
    metadata = recipe_module.install_from_run(small_recipe, run, tmp_path / "work")
    folder = tmp_path / "work" / "artifact"
    assert (folder / "evaluation.png").stat().st_size > 10_000
    assert metadata["training"]["steps"] == 3 and metadata["training"]["device"] == "cpu"
    assert {t["metric"] for t in metadata["targets"]} == {"classifier_auc", "worst_mean_response_deviation",
                                                          "worst_resolution_deviation", "challenge/auc_high"}
    titles = [s["title"] for s in metadata["card_sections"]]
    assert titles == ["Shower shapes: simulator against generated", "Energy response and resolution",
                      "Generation speed", "CaloChallenge protocol", "Training"]
    challenge = metadata["card_sections"][3]["markdown"]
    assert "simulator vs simulator (floor)" in challenge and "different geometry" in challenge
    metrics = metadata["metrics"]
    assert {f"ms_per_shower/gan_batch_{b}" for b in (1, 100, 10_000)} <= set(metrics)
    for key in ("auc_low", "auc_high", "jsd_low", "jsd_high", "fpd", "kpd"):
        for prefix in ("challenge", "challenge_floor"):
            assert np.isfinite(metrics[f"{prefix}/{key}"]) and metrics[f"{prefix}/{key}_error"] >= 0
    assert len([k for k in metrics if k.startswith("challenge/separation/")]) == 22

    # a preset measured before the protocol existed gets it added, in place, and nothing else changes
    card_before = dict(metadata, metrics={k: v for k, v in metrics.items() if not k.startswith("challenge")},
                       card_sections=[s for s in metadata["card_sections"] if s["title"] != "CaloChallenge protocol"])
    zoo.artifacts.write_json(folder / "metadata.json", card_before)
    again = recipe_module.measure_again(small_recipe, folder)
    assert [s["title"] for s in again["card_sections"]] == titles
    assert again["metrics"]["challenge/auc_high"] == pytest.approx(metrics["challenge/auc_high"],
                                                               abs=4 * metrics["challenge/auc_high_error"] + 0.01)
    assert again["metrics"]["classifier_auc"] == metrics["classifier_auc"] and again["files"] == metadata["files"]
    head = metadata["training"]["energy_head"]
    assert head["epochs"] == 2 and head["n_train"] == 2000 and np.isfinite(head["final_loss"])
    loaded = zoo.load(str(folder))
    assert loaded.energy_head
    for layer in trained.generator.layers:  # the run's streams, unchanged
        for a, b in zip(layer.get_weights(), loaded.generator.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    showers = loaded.generate(np.array([5.0, 50.0]), seed=9)
    again = zoo.load(str(folder)).generate(np.array([5.0, 50.0]), seed=9)
    for name in showers:
        np.testing.assert_array_equal(showers[name], again[name])


def test_a_run_with_the_earlier_response_head_is_refused(tmp_path, small_recipe):
    (tmp_path / "history.json").write_text(json.dumps({"particles": ["gamma"], "steps": 1, "response_head": True}))
    with pytest.raises(ValueError, match="earlier response head"):
        recipe_module.install_from_run(small_recipe, tmp_path, tmp_path / "work")


def test_a_run_of_another_particle_is_refused(tmp_path, small_recipe):
    (tmp_path / "history.json").write_text(json.dumps({"particles": ["eplus"], "steps": 1}))
    with pytest.raises(ValueError, match="calogan-gamma needs"):
        recipe_module.install_from_run(small_recipe, tmp_path, tmp_path / "work")
