"""CaloGAN: generator outputs, seeded generation, bad input, the adversarial train_step and its checkpoint."""
from __future__ import annotations

import math

import numpy as np
import pytest

import zoo
from training import loop
from training.recipes import calogan as recipe_module
from zoo.models.base import row_seeds
from zoo.models.calogan import CaloGAN
from zoo.models.calogan_networks import (
    LEVEL_LIMIT,
    InpaintingAttention,
    LayerEnergyQuantiles,
    MinibatchDiscrimination,
    ScaleToLayerEnergies,
    chain_variables,
    energy_head,
    shares_from_chain,
)

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
        # another batch size sums the same float32 products in another order: a few ulps of the layer's scale
        scale = 1e-5 * max(1.0, float(np.abs(first[name]).max()))
        np.testing.assert_allclose(alone[name][0], first[name][3], rtol=1e-5, atol=scale)
        np.testing.assert_allclose(chunked[name], first[name], rtol=1e-5, atol=scale)
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
    with pytest.warns(UserWarning, match="the trained range is \\[1, 100\\]"):
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
    showers = recipe_module.RECIPES["calogan-eplus"].simulate(n, seed=7)
    return recipe_module.fit_arrays(showers, 0)


def test_one_adversarial_epoch_changes_both_networks_and_its_checkpoint_restores_both_optimizers(tmp_path):
    """One epoch of the paper's step (the generator twice per batch, the discriminator on a real and a generated
    batch) through the resumable loop; a fresh model restored from its checkpoint has both optimizers' state.
    (One fit for both checks: tracing the GAN's step is the slow part.)"""
    data = _tiny_training_set()
    model = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    model.compile()
    model.build_with_examples()
    before_g = [w.copy() for w in model.generator.get_weights()]
    before_d = [w.copy() for w in model.discriminator.get_weights()]
    before_head = [w.copy() for w in energy_head(model.generator).get_weights()]
    history = loop.fit_resumable(model, None, None, (data, None), None, 1, 16, tmp_path, verbose=0)
    assert all(np.isfinite(v[-1]) for k, v in history.items() if k != "epoch_seconds")
    changed = lambda before, after: any(not np.array_equal(a, b) for a, b in zip(before, after))  # noqa: E731
    assert changed(before_g, model.generator.get_weights())
    assert changed(before_d, model.discriminator.get_weights())
    assert not changed(before_head, energy_head(model.generator).get_weights())  # it learns from layer energies only

    fresh = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    fresh.compile()
    fresh.build_with_examples()
    epoch, _ = loop.restore_checkpoint(tmp_path, fresh)
    assert epoch == 1
    for name in ("generator", "discriminator"):
        saved, restored = model.optimizers_to_checkpoint()[name][0], fresh.optimizers_to_checkpoint()[name][0]
        assert int(restored.iterations) == int(saved.iterations) == 2  # two per batch, as the paper steps
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


def test_energy_head_sets_each_layers_energy():
    rng = np.random.default_rng(2)
    images = [rng.uniform(0, 1, (3, *shape, 1)).astype("float32") for shape in SHAPES.values()]
    carried = [rng.uniform(0, 1, (3, *shape, 1)).astype("float32") for shape in SHAPES.values()]
    images[2][1] = images[0][0] = 0.0  # layers their streams left empty
    shares = np.array([[0.1, 0.8, 0.05], [0.02, 0.5, 0.3], [0.2, 0.6, 0.0]], "float32")  # the head empties one
    energy = np.array([[10.0], [50.0], [80.0]], "float32")
    out = [np.asarray(x, np.float64) for x in ScaleToLayerEnergies()(images, shares, energy, carried)]
    for i, layer in enumerate(out):
        totals = layer.reshape(3, -1).sum(axis=1)
        np.testing.assert_allclose(totals, shares[:, i] * energy[:, 0], rtol=1e-5)  # float32 sums of cells
        for row in range(3):
            source = carried[i][row] if (i, row) in ((2, 1), (0, 0)) else images[i][row]  # empty: a neighbour's
            if shares[row, i] > 0:  # one common factor per layer and shower: the shape is kept
                ratio = layer[row] / source
                np.testing.assert_allclose(ratio.ravel(), ratio.ravel()[0], rtol=1e-5)
    assert np.all(out[2][2] == 0.0)


def test_chain_variables_invert():
    rng = np.random.default_rng(3)
    shares = rng.dirichlet([1, 5, 1, 2], size=50)[:, :3]  # three layers and what leaks out
    chain = np.asarray(chain_variables(shares))
    assert np.all((chain >= 0) & (chain <= 1))
    wide = chain.dtype == np.float64  # where the backend keeps float64 (TensorFlow); a 32-bit JAX has float32
    np.testing.assert_allclose(chain[:, 0], shares.sum(axis=1), rtol=1e-12 if wide else 1e-6)
    np.testing.assert_allclose(np.asarray(shares_from_chain(chain)), shares, rtol=1e-10 if wide else 1e-5,
                               atol=1e-15 if wide else 1e-7)


def test_pinball_loss_against_numpy():
    """The layer's loss against a direct computation: levels u = Phi(z), targets the observed chain
    variables' logits, each network fed the observed earlier logits; and its minimum over a constant
    prediction is the u-quantile (the property the fit relies on)."""
    head = LayerEnergyQuantiles(hidden=4)
    head.build((None, 4))
    rng = np.random.default_rng(4)
    n = 500
    shares = (rng.uniform(0.2, 0.6, (n, 1)) * rng.dirichlet([1, 4, 1], n)).astype("float32")
    normals = rng.standard_normal((n, 3)).astype("float32")
    energy = rng.uniform(1, 100, (n, 1)).astype("float32")
    chain = np.asarray(chain_variables(shares), np.float64)
    observed = np.log(chain) - np.log1p(-chain)
    log_energy = np.log(energy / 100.0)
    expected = 0.0
    for i in range(3):
        inputs = np.concatenate([normals[:, i:i + 1], log_energy, observed[:, :i]], axis=1).astype("float32")
        predicted = np.asarray(head.networks[i](inputs), np.float64)[:, 0]
        u = 0.5 * (1 + np.vectorize(math.erf)(normals[:, i] / np.sqrt(2)))
        error = observed[:, i] - predicted
        expected += np.mean(np.maximum(u * error, (u - 1) * error)) / 3
    np.testing.assert_allclose(float(head.pinball_loss(normals, energy, shares)), expected, rtol=1e-4)
    values, level = rng.normal(size=20_001), 0.3
    candidates = np.linspace(-2, 2, 401)
    losses = [np.mean(np.maximum(level * (values - c), (level - 1) * (values - c))) for c in candidates]
    assert abs(candidates[int(np.argmin(losses))] - np.quantile(values, level)) < 0.02


def test_the_head_draws_no_rarer_levels_than_it_can_learn():
    """Latent components beyond +-LEVEL_LIMIT draw the quantiles at +-LEVEL_LIMIT."""
    head = LayerEnergyQuantiles(hidden=4)
    head.build((None, 4))
    energy = np.full((4, 1), 50.0, "float32")
    noise = np.zeros((4, 4), "float32")
    noise[:, :3] = np.array([[LEVEL_LIMIT], [LEVEL_LIMIT + 5], [-LEVEL_LIMIT], [-LEVEL_LIMIT - 5]])
    shares = np.asarray(head(noise, energy))
    # equal inputs after the clip; rows of a batch may round differently (a few float32 ulps)
    np.testing.assert_allclose(shares[0], shares[1], rtol=1e-6)
    np.testing.assert_allclose(shares[2], shares[3], rtol=1e-6)


def test_fit_energy_head_learns_a_known_distribution():
    """Layer energies with R ~ U[0.3, 0.9] and a fixed share per layer: after the fit, the head's draws have
    R's mean (0.6) and spread (0.6 / sqrt(12) = 0.173), and the layers' mean shares, to a few per cent."""
    model = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    rng = np.random.default_rng(5)
    n = 8000
    energies = rng.uniform(1, 100, n)
    response = rng.uniform(0.3, 0.9, n)
    layer_energies = energies[:, None] * response[:, None] * np.array([0.1, 0.7, 0.2])
    losses = model.fit_energy_head(energies, layer_energies, epochs=25, batch_size=256, learning_rate=3e-3)
    assert losses[-1] < losses[0]
    noise = np.random.default_rng(6).normal(size=(n, 4)).astype("float32")
    drawn = np.asarray(energy_head(model.generator)(noise, energies[:, None].astype("float32")), np.float64)
    total = drawn.sum(axis=1)
    assert abs(total.mean() - 0.6) < 0.03 and abs(total.std() - 0.6 / np.sqrt(12)) < 0.03
    np.testing.assert_allclose(drawn.mean(axis=0) / total.mean(), [0.1, 0.7, 0.2], atol=0.03)
    showers = model.generate(energies[:5], seed=1)  # the showers hold the drawn energies
    assert all(np.all(np.isfinite(v)) and np.all(v >= 0) for v in showers.values())


def test_fit_energy_head_refuses_bad_input():
    paper = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2, energy_head=False)
    with pytest.raises(ValueError, match="needs a generator with the energy head"):
        paper.fit_energy_head(np.ones(4), np.ones((4, 3)))
    model = zoo.load("calogan-eplus", pretrained=False, latent_size=4, discriminator_filters=2)
    with pytest.raises(ValueError, match=r"received shapes \(4,\) and \(4, 2\)"):
        model.fit_energy_head(np.ones(4), np.ones((4, 2)))
    with pytest.raises(ValueError, match="energies \\(n,\\) > 0 GeV"):
        model.fit_energy_head(np.array([1.0, 0.0]), np.ones((2, 3)))


def test_the_energy_head_needs_one_particle():
    with pytest.raises(ValueError, match="needs one particle"):
        CaloGAN(particles=["eplus", "gamma"], latent_size=4, discriminator_filters=2, energy_head=True)


def test_the_papers_generator_has_no_energy_head():
    model = zoo.load("calogan-piplus", pretrained=False, latent_size=4, discriminator_filters=2, energy_head=False)
    assert not model.energy_head and "energy_head" not in [layer.name for layer in model.generator.layers]
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


def test_an_integer_seed_stands_for_its_row_seeds(tiny):
    """generate(E, seed=s) is the served signature fed zoo.row_seeds(len(E), s): the request that reproduces it."""
    energies = np.array([3.0, 20.0, 50.0, 90.0])
    seeds = zoo.row_seeds(len(energies), 5)
    assert seeds.dtype == np.int64 and seeds.shape == (4,)
    from_int, from_array = tiny.generate(energies, seed=5), tiny.generate(energies, seed=seeds)
    served = tiny.run_endpoint("generate", {"energies": energies, "seed": seeds})
    for name in SHAPES:
        np.testing.assert_array_equal(from_int[name], from_array[name])
        np.testing.assert_array_equal(from_int[name], served[name])
    naive = tiny.generate(energies, seed=np.full(4, 5))  # every shower seeded 5: not what seed=5 means
    assert not np.allclose(naive["layer_1"], from_int["layer_1"])


def test_per_row_seeds_make_each_shower_independent_of_its_neighbours(tiny):
    energies, seeds = np.array([20.0, 50.0, 80.0]), np.array([11, 12, 13])
    whole = tiny.generate(energies, seed=seeds)
    reordered = tiny.generate(energies[[2, 0]], seed=seeds[[2, 0]])
    new_neighbours = tiny.generate(np.array([70.0, 50.0, 5.0]), seed=np.array([99, 12, 7]))
    twins = tiny.generate(np.array([50.0, 50.0]), seed=np.array([12, 12]))
    other = tiny.generate(energies, seed=np.array([11, 14, 13]))
    for name in SHAPES:
        close = {"rtol": 1e-4, "atol": 1e-5 * np.abs(whole[name]).max()}  # float32 sums differ with the batch
        np.testing.assert_allclose(reordered[name], whole[name][[2, 0]], **close)
        np.testing.assert_allclose(new_neighbours[name][1], whole[name][1], **close)
        np.testing.assert_allclose(twins[name][0], twins[name][1], **close)
        np.testing.assert_allclose(other[name][[0, 2]], whole[name][[0, 2]], **close)
        assert not np.allclose(other[name][1], whole[name][1], **close)


@pytest.mark.parametrize("seed, error, message", [
    (2.5, TypeError, r"received 2\.5 \(float\)"),
    (True, TypeError, r"received True \(bool\)"),
    (np.array([1.0, 2.0, 3.0]), TypeError, "dtype float64"),
    (-1, ValueError, "received -1"),
    (2**63, ValueError, "received 9223372036854775808"),
    (np.array([0, 2**63, 1], dtype=np.uint64), ValueError, r"rows \[1\] hold \[9223372036854775808\]"),
    (np.array([1, -4, 2]), ValueError, r"rows \[1\] hold \[-4\]"),
    (np.array([1, 2]), ValueError, r"shape \(2,\)"),
    (np.zeros((1, 3), dtype=np.int64), ValueError, r"shape \(1, 3\)"),
])
def test_bad_seeds_are_refused_with_what_was_expected(tiny, seed, error, message):
    with pytest.raises(error, match=message) as refused:
        tiny.generate(np.array([20.0, 50.0, 80.0]), seed=seed)
    text = str(refused.value)
    assert "\n" not in text and r"integer array of shape (3,)" in text and "[0, 2**63)" in text
