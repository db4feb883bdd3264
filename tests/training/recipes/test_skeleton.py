"""The recipe registry and the one train-and-evaluate skeleton: every preset has one recipe, found by name,
and a flag a recipe cannot honour is refused before anything trains."""
import dataclasses

import numpy as np
import pytest

import zoo
from training import recipes
from training.recipes import base, translator


def test_every_registered_preset_has_exactly_one_recipe():
    assert set(recipes.all_recipes()) == set(zoo.list_models())


def test_recipes_are_frozen_hyperparameters_of_the_one_base_class():
    for name, recipe in recipes.all_recipes().items():
        assert isinstance(recipe, base.Recipe) and recipe.preset == name
        assert dataclasses.is_dataclass(recipe)
        assert len({recipe.train_seed, recipe.validation_seed, recipe.evaluation_seed}) == 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            recipe.epochs = 1
        assert type(recipe).fit is not base.Recipe.fit and type(recipe).evaluate is not base.Recipe.evaluate


def test_an_unknown_name_says_which_are_close():
    with pytest.raises(ValueError, match="No recipe makes a preset named 'ising-cn'.*ising-cnn"):
        recipes.recipe_for("ising-cn")


@pytest.mark.parametrize("name", ["translator-schrodinger", "ising-cnn", "jet-cnn-w-vs-qcd"])
def test_a_precision_the_recipe_was_not_checked_in_is_refused(name, tmp_path):
    with pytest.raises(ValueError, match=f"{name} trains in float32; received precision='mixed_float16'"):
        recipes.recipe_for(name).train_and_evaluate(tmp_path, precision="mixed_float16")
    assert not any(tmp_path.iterdir())


def test_multiworker_is_refused_by_a_recipe_that_trains_with_fit(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="keras-team/keras#20585|custom loop|MultiWorker"):
        translator.RECIPES["translator-schrodinger"].train_and_evaluate(tmp_path, strategy="multiworker")
    assert not any(tmp_path.iterdir())


def test_a_family_without_a_demo_says_which_have_one():
    with pytest.raises(ValueError, match=r"The 'toy' family has no demo; families with one: \['calogan', "
                                         r"'classifiers', 'flows', 'jets', 'rbm', 'scinet', 'siamese', 'translator'\]"):
        recipes.demo_for("toy")


TINY_RUNS = {
    "ising-cnn": dict(n_train=64, n_validation=32, n_evaluation=64, L=8, temperatures=(1.5, 2.0, 2.5, 3.0),
                      crossing_temperatures=(2.1, 2.2, 2.3, 2.4), crossing_sizes=(4, 8), crossing_samples=4,
                      bootstrap=5),
    "rbm-ising-L8-T2.27": dict(n_train=200, n_evaluation=200, batch_size=50, rbm_samples=100, gibbs_steps=10,
                               ais_runs=4, ais_betas=50, entropy_samples=20),
    "realnvp-phi4-L8": dict(steps_per_epoch=2, batch_size=16, n_evaluation=256, hmc_trajectories=64, hmc_chains=2),
}


def test_a_warm_started_recipe_builds_from_the_other_presets_couplings():
    """realnvp-phi4-L16 trains on from realnvp-phi4-L8's couplings (``warm_start``), the same networks at any L."""
    from training.recipes import flows

    model = flows.RECIPES["realnvp-phi4-L16"].build_model()
    source = zoo.load("realnvp-phi4-L8")
    assert model.L == 16 and len(model.couplings) == len(source.couplings)
    for built, trained in zip(model.couplings, source.couplings):
        for a, b in zip(built.get_weights(), trained.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_the_skeleton_trains_evaluates_and_writes_a_verified_preset(name, tmp_path):
    """One epoch of the family's own fit, then its evaluation, through the one skeleton: the folder verifies,
    loads, and records the run's strategy, precision and the recipe's class."""
    recipe = dataclasses.replace(recipes.recipe_for(name), epochs=1, **TINY_RUNS[name])
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0)
    folder = tmp_path / "artifact"
    assert zoo.artifacts.verify_preset(folder)["metrics"] == metadata["metrics"]
    assert metadata["training"]["strategy"] == "cpu" and metadata["training"]["precision"] == "float32"
    assert metadata["training"]["epochs"] == 1
    assert metadata["recipe"]["class"] == f"{type(recipe).__module__}.{type(recipe).__qualname__}"
    assert metadata["recipe"]["hyperparameters"]["n_evaluation"] == TINY_RUNS[name]["n_evaluation"]
    assert all({"metric", "comparison", "target", "measured", "met"} <= set(t) for t in metadata["targets"])
    assert (folder / "README.md").is_file() and (folder / "evaluation.png").stat().st_size > 1000
    assert zoo.load(str(folder)).preset.base == name
