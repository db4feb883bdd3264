"""The recipe end to end on a tiny budget: artifact, card inputs, resume after an interrupt."""
import dataclasses

import keras
import numpy as np
import pytest

import zoo
from training import loop
from training.recipes import scinet as recipes
from zoo import artifacts


def tiny(recipe, **changes):
    return dataclasses.replace(
        recipe, n_train=512, n_validation=128, n_evaluation=256, batch_size=128, kl_warmup_epochs=1, **changes
    )


def test_heliocentric_recipe_writes_a_verified_artifact(tmp_path):
    recipe = tiny(recipes.RECIPES["scinet-heliocentric"], epochs=1)
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0)
    folder = tmp_path / "artifact"
    assert artifacts.verify_preset(folder)["metrics"] == metadata["metrics"]
    assert {"config.json", "model.weights.h5", "evaluation.png"} <= set(metadata["files"])
    model = artifacts.build_from_folder(folder)
    assert model.predict(np.zeros((2, 2)), verbose=0).shape == (2, 50, 2)
    assert metadata["data"]["evaluation_seed"] != metadata["data"]["train_seed"]
    assert {t["metric"] for t in metadata["targets"]} >= {"rms_angle_error_fraction_of_2pi"}


def test_qubit_recipe_scans_latent_sizes(tmp_path):
    recipe = tiny(recipes.RECIPES["scinet-qubit-1"], epochs=1, latent_scan=(0, 1), scan_epochs=1, scan_n_train=256)
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0)
    assert set(metadata["latent_scan"]) == {"0", "1"}
    assert metadata["metrics"]["latent_scan_knee"] in (0, 1)
    assert {"scan-k0.weights.h5", "scan-k1.weights.h5"} <= set(metadata["files"])  # zoo evaluate measures them again
    folder = tmp_path / "artifact"
    evaluation_data = recipe.simulate(recipe.n_evaluation, recipe.evaluation_seed)
    again = recipe.scan_metrics(folder, zoo.load(folder), evaluation_data)
    for size, error in metadata["latent_scan"].items():
        assert again[f"latent_scan/k{size}"] == pytest.approx(error, rel=1e-5)  # the same weights on the same data
    assert again["latent_scan_knee"] == metadata["metrics"]["latent_scan_knee"]


def test_training_resumes_after_an_interrupt(tmp_path):
    recipe = tiny(recipes.RECIPES["scinet-pendulum"], epochs=3)
    data = recipe.simulate(recipe.n_train, 1)
    train = recipes.features_and_targets(recipe, data)

    class InterruptInEpoch2(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() > 6:  # 4 batches an epoch: inside epoch 2
                raise KeyboardInterrupt

    model = zoo.load(recipe.preset, pretrained=False, encoder_units=[8], decoder_units=[8])
    optimizer = keras.optimizers.Adam(1e-3)
    with pytest.raises(KeyboardInterrupt):
        loop.fit_resumable(model, optimizer, "mse", train, None, 3, 128, tmp_path,
                           callbacks=[InterruptInEpoch2()], verbose=0)
    fresh = zoo.load(recipe.preset, pretrained=False, encoder_units=[8], decoder_units=[8])
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    epoch, history = loop.restore_checkpoint(tmp_path, fresh)
    assert epoch == 1 and len(history["loss"]) == 1

    resumed = zoo.load(recipe.preset, pretrained=False, encoder_units=[8], decoder_units=[8])
    optimizer = keras.optimizers.Adam(1e-3)
    history = loop.fit_resumable(resumed, optimizer, "mse", train, None, 3, 128, tmp_path, verbose=0)
    assert len(history["loss"]) == 3
    assert int(optimizer.iterations.numpy()) == 3 * 4  # the optimizer state came back with the weights


def test_recipe_runs_under_mirrored_strategy(tmp_path):
    recipe = tiny(recipes.RECIPES["scinet-collision"], epochs=1)
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0, strategy="mirrored")
    assert np.isfinite(metadata["metrics"]["rms_error"])


def test_custom_loop_loss_matches_the_recipe_loss():
    recipe = recipes.RECIPES["scinet-heliocentric"]
    targets = np.zeros((3, 50, 2), "float32")
    predictions = np.full((3, 50, 2), 2 * np.pi + 0.1, "float32")  # one full turn off: only 0.1 counts
    per_example = np.asarray(recipes.per_example_loss(recipe)(targets, predictions))
    np.testing.assert_allclose(per_example, 0.01, rtol=1e-3)
    np.testing.assert_allclose(float(np.mean(recipes.wrapped_angle_mse(targets, predictions))), per_example.mean(), rtol=1e-5)


def test_multiworker_custom_loop_trains_a_recipe_model():
    import tensorflow as tf

    recipe = tiny(recipes.RECIPES["scinet-heliocentric"], epochs=2)
    data = recipe.simulate(recipe.n_train, 1)
    model = zoo.load(recipe.preset, pretrained=False)
    history = recipes.train_multiworker(recipe, tf.distribute.get_strategy(), model,
                                        recipes.features_and_targets(recipe, data), 2)
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert model.predict(data.initial_angles[:3], verbose=0).shape == (3, 50, 2)


def test_mixed_precision_training_ships_a_float32_model(tmp_path):
    import json

    import keras

    recipe = tiny(recipes.RECIPES["scinet-heliocentric"], epochs=1)
    metadata = recipe.train_and_evaluate(tmp_path, verbose=0, precision="mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert metadata["training"]["precision"] == "mixed_bfloat16"
    assert "dtype" not in json.loads((tmp_path / "artifact" / "config.json").read_text())["config"]
    model = artifacts.build_from_folder(tmp_path / "artifact")
    assert model.predict(np.zeros((1, 2)), verbose=0).dtype == np.float32


def test_custom_loop_loss_accepts_mixed_precision_predictions():
    import tensorflow as tf

    loss = recipes.per_example_loss(recipes.RECIPES["scinet-heliocentric"])
    predictions = tf.cast(tf.fill((2, 50, 2), 0.5), tf.bfloat16)
    value = loss(tf.zeros((2, 50, 2)), predictions)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(value), 0.25, rtol=1e-2)
