"""The translator and distiller recipes end to end on tiny networks, and the knee of the loss-vs-k curve."""
import dataclasses

import pytest

import zoo
import zoo.artifacts
from training.evaluation.metrics import knee
from training.recipes import translator as recipe_module

TINY_TRANSLATOR = dict(hidden_size=5, readout_units=[4])


@pytest.fixture
def tiny_zoo(monkeypatch):
    """zoo.load gives tiny untrained networks (the distiller's translator included)."""
    original = zoo.load

    def load(name, pretrained=True, **overrides):
        tiny = {"translator-schrodinger": TINY_TRANSLATOR,
                "distiller-schrodinger-k2": dict(translator=TINY_TRANSLATOR, units=[6], rollout=5)}[name]
        return original(name, False, **{**tiny, **overrides})

    monkeypatch.setattr(zoo, "load", load)


def test_knee_is_the_largest_drop():
    assert knee({1: 0.3, 2: 0.01, 3: 0.008, 4: 0.007}) == 2
    assert knee({1: 0.3, 2: 0.2, 3: 0.01, 4: 0.009}) == 3


def test_translator_recipe_writes_a_preset(tiny_zoo, tmp_path):
    recipe = dataclasses.replace(recipe_module.RECIPES["translator-schrodinger"], n_train=30, n_validation=9, n_evaluation=12,
                                 epochs=1, n_long=12, long_sites=100, long_epochs=1, evaluation_sites=(50, 100))
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0)
    assert metadata["training"]["epochs"] == 2  # one epoch of each stage
    keys = {t["metric"] for t in metadata["targets"]}
    assert keys == {f"density_error/{kind}/N{n}" for kind in recipe_module.SMOOTH for n in (50, 100)}
    assert metadata["card_sections"][0]["markdown"].count("\n| ") == 3  # one row per class
    assert (tmp_path / "artifact" / "evaluation.png").stat().st_size > 10_000
    assert (tmp_path / "stage1").is_dir() and (tmp_path / "stage2").is_dir()  # each stage resumes on its own


def test_distiller_recipe_scans_the_bottleneck(tiny_zoo, tmp_path):
    recipe = dataclasses.replace(recipe_module.RECIPES["distiller-schrodinger-k2"], scan=(1, 2, 3), n_train=20, n_validation=6,
                                 n_evaluation=9, sites=20, epochs=1)  # the tiny distiller rolls out 5 sites
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0)
    metrics = metadata["metrics"]
    assert {f"reconstruction_loss/k{k}" for k in (1, 2, 3)} <= set(metrics)
    assert metrics["knee_k"] in (2, 3)
    assert 0 <= metrics["basis_change_residual/euler"] and 0 <= metrics["basis_change_residual/density_k3"]
    assert [s["title"] for s in metadata["card_sections"]] == ["Reconstruction loss against the bottleneck k",
                                                               "The distilled update rule"]
    assert set(metadata["update_rules"]["2"]) >= {"A", "B", "euler", "exact"}
    assert {"scan-k1.weights.h5", "scan-k3.weights.h5"} <= set(metadata["files"])  # the shipped k = 2 is the model
    folder = tmp_path / "artifact"
    again = recipe.scan_metrics(folder, zoo.artifacts.build_from_folder(folder),
                                recipe.simulate(recipe.n_evaluation, recipe.evaluation_seed))
    for k in (1, 2, 3):  # the same weights on the same potentials
        assert again[f"reconstruction_loss/k{k}"] == pytest.approx(metrics[f"reconstruction_loss/k{k}"], rel=1e-4)
    assert again["knee_k"] == metrics["knee_k"]


def test_a_folder_without_a_scan_has_no_scan_metrics(tmp_path):
    recipe = recipe_module.RECIPES["distiller-schrodinger-k2"]
    assert recipe.scan_metrics(tmp_path, None, None) == {}
