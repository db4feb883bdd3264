"""The recipe registry and the one train-and-evaluate skeleton: every preset has one recipe, found by name,
and a flag a recipe cannot honour is refused before anything trains."""
import dataclasses

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
    with pytest.raises(ValueError, match=r"The 'rbm' family has no demo; families with one: \['scinet'\]"):
        recipes.demo_for("rbm")
