"""The translator and distiller family: shapes, round trips, truncated back-propagation, bad input."""
import keras
import numpy as np
import pytest

from zoo.models.translator import (PotentialLinearUpdate, SchrodingerDistiller, SchrodingerTranslator,
                                   relative_density_error)

TINY = dict(hidden_size=6, readout_units=[5], window=10)


def wells(n=3, sites=30, seed=0):
    rng = np.random.default_rng(seed)
    return (-rng.uniform(1, 5, (n, 1)) * (1 + 0.3 * np.sin(np.arange(sites) / 4.0))).astype("float32")


@pytest.fixture(scope="module")
def translator():
    model = SchrodingerTranslator(**TINY)
    model.build_with_examples()
    return model


@pytest.mark.parametrize("sites", [1, 30, 257])
def test_densities_of_any_length_are_non_negative(translator, sites):
    densities = translator.predict(wells(sites=sites))
    assert densities.shape == (3, sites) and np.all(densities >= 0) and np.all(np.isfinite(densities))
    assert translator.hidden_states(wells(sites=sites)).shape == (3, sites, 6)


def test_a_longer_chain_starts_with_the_shorter_one(translator):
    """The translator is causal: site i's density depends on V_0 .. V_i only."""
    long = wells(sites=80)
    np.testing.assert_allclose(translator.predict(long[:, :30]), translator.predict(long)[:, :30], rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 0)), "at least 1"),
    (np.zeros(5), r"expected \(batch, any\)"),
    (np.zeros((2, 3, 1)), r"expected \(batch, any\)"),
    (np.array([[np.nan, 1.0]]), "NaN"),
])
def test_bad_potentials_are_refused(translator, bad, message):
    with pytest.raises(ValueError, match=message):
        translator.predict(bad)


def test_config_round_trip(translator):
    clone = SchrodingerTranslator.from_config(translator.get_config())
    clone.build_with_examples()
    clone.set_weights(translator.get_weights())
    np.testing.assert_array_equal(clone.predict(wells()), translator.predict(wells()))


def test_truncated_backpropagation_sees_every_window():
    """One training step on 30 sites in windows of 10 gives the mean of the three windows' losses, and the
    loss an untrained translator reports equals relative_density_error computed directly."""
    model = SchrodingerTranslator(**TINY)
    model.build_with_examples()
    potentials, densities = wells(4, 30), np.abs(wells(4, 30, seed=1)) / 5
    predicted = model.predict(potentials)
    expected = np.mean([np.mean(relative_density_error(densities[:, s:s + 10], predicted[:, s:s + 10]))
                        for s in (0, 10, 20)])
    model.compile(keras.optimizers.SGD(0.0))  # no update: the step only measures
    logs = model.train_on_batch(potentials, densities, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_training_lowers_the_density_error():
    model = SchrodingerTranslator(**TINY)
    model.build_with_examples()
    potentials = wells(64, 20)
    densities = np.ones_like(potentials)
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(potentials, densities, epochs=15, batch_size=64, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]


def test_latent_update_is_affine_in_the_potential():
    layer = PotentialLinearUpdate(2, potential_scale=10.0)
    layer.build()
    a, b = np.array([[1.0, 0.2], [-0.1, 0.9]]), np.array([[0.3, 0.0], [0.5, -0.2]])
    layer.constant.assign(a)
    layer.potential.assign(b * 10.0)  # the layer reads V / 10
    z, v = np.array([[1.0, 2.0], [-0.5, 0.3]], "float32"), np.array([-3.0, 0.5], "float32")
    expected = np.stack([(a + v_i * b) @ z_i for z_i, v_i in zip(z, v)])
    np.testing.assert_allclose(np.asarray(layer(z, v)), expected, rtol=1e-5)
    np.testing.assert_allclose(layer.matrices()[1], b, rtol=1e-6)


@pytest.fixture(scope="module")
def distiller():
    model = SchrodingerDistiller(latent_size=2, translator=dict(hidden_size=6, readout_units=[5]), units=[8],
                                 rollout=5)
    model.build_with_examples()
    return model


def test_distiller_shapes_and_round_trip(distiller):
    potentials = wells(3, 40)
    assert distiller.predict(potentials).shape == (3, 40)
    assert distiller.run_endpoint("latent", {"potentials": potentials})["latent"].shape == (3, 40, 2)
    clone = SchrodingerDistiller.from_config(distiller.get_config())
    clone.build_with_examples()
    clone.set_weights(distiller.get_weights())
    np.testing.assert_array_equal(clone.predict(potentials), distiller.predict(potentials))


def test_the_latent_trajectory_follows_the_update(distiller):
    potentials = wells(2, 12)
    latent = distiller.run_endpoint("latent", {"potentials": potentials})["latent"].astype(np.float64)
    a, b = distiller.update_matrices()
    for i in range(1, 12):
        expected = np.einsum("nij,nj->ni", a + potentials[:, i, None, None] * b, latent[:, i - 1])
        np.testing.assert_allclose(latent[:, i], expected, rtol=1e-4, atol=1e-6)


def test_distiller_trains_only_its_own_weights(distiller):
    translator_before = [w.copy() for w in distiller.translator.get_weights()]
    update_before = np.asarray(distiller.update.potential).copy()
    distiller.compile(keras.optimizers.Adam(1e-2))
    distiller.fit(wells(16, 20), epochs=2, batch_size=16, verbose=0)
    for before, after in zip(translator_before, distiller.translator.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(update_before, np.asarray(distiller.update.potential))


def test_distiller_needs_two_sites(distiller):
    with pytest.raises(ValueError, match="at least 2"):
        distiller.predict(np.zeros((1, 1)))
