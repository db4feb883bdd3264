"""CaloGAN: generator outputs, seeded generation, bad input, the adversarial train_step and its checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from training import loop
from training.recipes import calogan as recipe_module
from zoo.models.base import row_seeds
from zoo.models.calogan import CaloGAN
from zoo.models.calogan_networks import InpaintingAttention, MinibatchDiscrimination, ScaleToResponse

SHAPES = {"layer_0": (3, 96), "layer_1": (12, 12), "layer_2": (12, 6)}


@pytest.fixture(scope="module")
def tiny():
    return zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)


def test_generate_gives_three_non_negative_layers(tiny):
    showers = tiny.generate(np.array([1.0, 10.0, 50.0, 100.0]), seed=1)
    assert sorted(showers) == sorted(SHAPES)
    for name, shape in SHAPES.items():
        assert showers[name].shape == (4, *shape)
        assert np.all(np.isfinite(showers[name])) and np.all(showers[name] >= 0)


def test_same_seed_same_showers_in_any_batch(tiny):
    energies = np.linspace(5, 95, 7)
    first, again = tiny.generate(energies, seed=11), tiny.generate(energies, seed=11)
    other = tiny.generate(energies, seed=12)
    seeds = row_seeds(7, 11)
    alone = tiny.run_endpoint("generate", {"energies": energies[3:4], "seed": seeds[3:4]})
    chunked = tiny.generate(energies, seed=11, batch_size=2)
    for name in SHAPES:
        np.testing.assert_array_equal(first[name], again[name])
        np.testing.assert_allclose(alone[name][0], first[name][3], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(chunked[name], first[name], rtol=1e-5, atol=1e-7)
        assert not np.allclose(first[name], other[name])


def test_row_seeds_are_distinct_and_reproducible():
    seeds = row_seeds(1000, 5)
    assert len(set(seeds.tolist())) == 1000 and np.all(seeds >= 0)
    np.testing.assert_array_equal(seeds, row_seeds(1000, 5))
    np.testing.assert_array_equal(row_seeds(10, 5), seeds[:10])


@pytest.mark.parametrize("energies, message", [
    (np.array([10.0, 0.0]), "energies"),
    (np.array([-5.0]), "energies"),
    (np.array([np.nan]), "NaN"),
])
def test_bad_energies_are_refused(tiny, energies, message):
    with pytest.raises(ValueError, match=message):
        tiny.generate(energies, seed=1)


def test_energies_outside_the_trained_range_warn(tiny):
    with pytest.warns(UserWarning, match="outside the trained range"):
        showers = tiny.generate(np.array([150.0]), seed=1)
    assert np.all(np.isfinite(showers["layer_1"]))


def test_bad_seeds_are_refused(tiny):
    with pytest.raises(ValueError, match="seed"):
        tiny.generate(np.array([10.0]), seed=-1)
    with pytest.raises(ValueError, match="whole numbers"):
        tiny.run_endpoint("generate", {"energies": np.array([10.0]), "seed": np.array([1.5])})
    with pytest.raises(ValueError, match="whole numbers"):  # beyond int64: never wrapped around
        tiny.run_endpoint("generate", {"energies": np.array([10.0]), "seed": np.array([1e30])})


def test_unknown_particle_is_refused():
    with pytest.raises(ValueError, match="particle must be one of"):
        CaloGAN(particle="muon", particles=["eplus"], latent_size=4, discriminator_filters=2)


def _tiny_training_set(n=16):
    showers = recipe_module.simulate(recipe_module.recipe_eplus(), n, seed=7)
    return recipe_module.fit_arrays(showers, 0)


def test_one_adversarial_step_changes_both_networks(tiny):
    model = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    data = _tiny_training_set()
    model.compile()
    model.build_with_examples()
    before_g = [w.copy() for w in model.generator.get_weights()]
    before_d = [w.copy() for w in model.discriminator.get_weights()]
    history = model.fit(data, batch_size=16, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    changed = lambda before, after: any(not np.array_equal(a, b) for a, b in zip(before, after))  # noqa: E731
    assert changed(before_g, model.generator.get_weights())
    assert changed(before_d, model.discriminator.get_weights())
    assert int(model.generator_optimizer.iterations) == 2  # the generator steps twice per batch (paper)
    assert int(model.discriminator_optimizer.iterations) == 2  # one real and one generated batch


def test_checkpoint_restores_both_optimizers(tmp_path):
    data = _tiny_training_set()
    model = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    loop.fit_resumable(model, None, None, (data, None), None, 1, 16, tmp_path, verbose=0)
    fresh = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    fresh.compile()
    fresh.build_with_examples()
    epoch, _ = loop.restore_checkpoint(tmp_path, fresh)
    assert epoch == 1
    for name in ("generator", "discriminator"):
        saved, restored = model.optimizers_to_checkpoint()[name][0], fresh.optimizers_to_checkpoint()[name][0]
        assert int(restored.iterations) == int(saved.iterations) == 2
        for a, b in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_attention_starts_by_keeping_each_layers_own_image():
    rng = np.random.default_rng(0)
    primary, carried = rng.normal(size=(2, 12, 6, 1)), rng.normal(size=(2, 12, 6, 1))
    out = np.asarray(InpaintingAttention()([primary.astype("float32"), carried.astype("float32")]))
    # bias -10 on the carried channel: weight e^-10 / (1 + e^-10) ~ 4.5e-5 plus the kernel's small contribution
    np.testing.assert_allclose(out, primary, atol=0.05 * np.abs(carried).max() + 1e-6)


def test_response_head_sets_the_deposited_energy():
    rng = np.random.default_rng(2)
    images = [rng.uniform(0, 1, (3, *shape, 1)).astype("float32") for shape in SHAPES.values()]
    images[0][2] = images[1][2] = images[2][2] = 0.0  # a shower with every cell empty
    logit = np.array([[0.0], [2.0], [1.0]], "float32")
    energy = np.array([[10.0], [50.0], [80.0]], "float32")
    out = [np.asarray(x, np.float64) for x in ScaleToResponse()(images, logit, energy)]
    totals = sum(x.reshape(3, -1).sum(axis=1) for x in out)
    deposited = energy[:, 0] / (1.0 + np.exp(-logit[:, 0].astype(np.float64)))
    np.testing.assert_allclose(totals[:2], deposited[:2], rtol=1e-5)  # float32 sums of 504 cells
    assert totals[2] == 0.0
    shares = [x[0] / (images[i][0] + 1e-30) for i, x in enumerate(out)]  # one common factor per shower
    np.testing.assert_allclose(np.concatenate([s.ravel() for s in shares]), shares[0].ravel()[0], rtol=1e-5)


def test_the_papers_generator_has_no_response_head():
    model = zoo.load("calogan-piplus", pretrained=False, latent_size=4, discriminator_filters=2)
    assert not model.response_head and "scale_to_response" not in [layer.name for layer in model.generator.layers]
    showers = model.generate(np.array([5.0, 60.0]), seed=3)
    assert all(np.all(showers[name] >= 0) and showers[name].shape == (2, *shape) for name, shape in SHAPES.items())


def test_minibatch_discrimination_against_a_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 7)).astype("float32")
    layer = MinibatchDiscrimination(kernels=3, dimensions=4)
    out = np.asarray(layer(x))
    m = (x.astype(np.float64) @ np.asarray(layer.tensor, np.float64)).reshape(5, 3, 4)
    expected = np.zeros((5, 3))
    for i in range(5):
        for k in range(3):
            expected[i, k] = np.tanh(sum(np.exp(-np.abs(m[i, k] - m[j, k]).sum()) for j in range(5)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_networks_import_no_backend():
    """The networks use keras.ops alone, so they train under JAX too (training/recipes/calogan_jax.py)."""
    import ast
    import inspect

    from zoo.models import calogan_networks, layers

    for module in (calogan_networks, layers):
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(inspect.getsource(module)))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not imported & {"tensorflow", "jax", "torch"}, (module.__name__, imported)


def test_export_carries_the_generator_alone(tiny):
    assert tiny.serving_layers() is tiny.generator
    names = {v.path for v in tiny.serving_layers().weights}
    assert names and not any("discriminator" in n or n.startswith("d0_") for n in names)
