"""Physics checks of the Ising family's models: symmetries of the classifier, RBM algebra against brute force."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from training.simulators import ising
from zoo.models.classifiers import PeriodicConv2D
from zoo.models.rbm import IsingRBM


def random_spins(n, L, seed=0):
    return np.where(np.random.default_rng(seed).random((n, L, L)) < 0.5, -1.0, 1.0).astype("float32")


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    return zoo.load("ising-cnn", pretrained=False, filters=[4, 4], dense_units=8)


def test_periodic_convolution_is_a_circular_convolution():
    layer = PeriodicConv2D(2, 3)
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 1)).astype("float32")
    y = np.asarray(layer(x))
    kernel, bias = (np.asarray(w) for w in layer.conv.weights)
    expected = np.zeros((5, 5, 2))
    for i, j, di, dj in itertools.product(range(5), range(5), range(3), range(3)):
        expected[i, j] += x[0, (i + di - 1) % 5, (j + dj - 1) % 5, 0] * kernel[di, dj, 0]
    np.testing.assert_allclose(y[0], expected + bias, atol=1e-5)


def test_classifier_is_z2_symmetric_and_translation_invariant(classifier):
    s = random_spins(6, 12)
    p = np.asarray(classifier(s))
    np.testing.assert_allclose(np.asarray(classifier(-s)), p, atol=1e-6)
    np.testing.assert_allclose(np.asarray(classifier(np.roll(s, (3, 5), axis=(1, 2)))), p, atol=1e-5)
    assert np.all((p >= 0) & (p <= 1))


@pytest.mark.parametrize("L", [3, 16, 33, 64])
def test_one_set_of_weights_runs_on_any_lattice_size(classifier, L):
    p = classifier.predict(random_spins(2, L), verbose=0)
    assert p.shape == (2, 1) and np.all(np.isfinite(p))


def test_zero_one_spins_are_converted(classifier):
    s = random_spins(3, 8)
    np.testing.assert_allclose(classifier.predict((s + 1) / 2, verbose=0), classifier.predict(s, verbose=0), atol=1e-6)


@pytest.mark.parametrize("bad,message", [
    (np.full((2, 8, 8), 0.5), "must hold spins"),
    (np.full((2, 8, 8), 2.0), "must hold spins"),
    (np.ones((2, 8, 6)), "square"),
    (np.ones((8, 8)), "expected \\(batch, any, any\\)"),
    (np.ones((2, 8, 8, 1)), "expected \\(batch, any, any\\)"),
    (np.ones((2, 2, 2)), "smaller than the convolution kernel"),
    (np.full((2, 8, 8), np.nan), "NaN"),
])
def test_classifier_bad_input_errors_name_what_was_received(classifier, bad, message):
    with pytest.raises(ValueError, match=message):
        classifier.predict(bad, verbose=0)


# ----------------------------------------------------------------------------- RBM

def small_rbm(L=3, hidden=4, seed=0, scale=0.5, **kwargs):
    rbm = IsingRBM(L=L, hidden_units=hidden, **kwargs)
    rng = np.random.default_rng(seed)
    rbm.weights_vh.assign(rng.normal(scale=scale, size=(L * L, hidden)))
    rbm.visible_bias.assign(rng.normal(scale=scale, size=L * L))
    rbm.hidden_bias.assign(rng.normal(scale=scale, size=hidden))
    return rbm


def brute_force_log_weights(rbm):
    """log sum_h exp(-E(v, h)) for every visible state v, summing every hidden state explicitly."""
    W, a, b = rbm.numpy_parameters()
    vs = np.array(list(itertools.product([0, 1], repeat=W.shape[0])), float)
    hs = np.array(list(itertools.product([0, 1], repeat=W.shape[1])), float)
    minus_energy = (vs @ a)[:, None] + (hs @ b)[None, :] + vs @ W @ hs.T
    return vs, np.logaddexp.reduce(minus_energy, axis=1)


def test_free_energy_and_log_z_match_brute_force():
    rbm = small_rbm(L=3, hidden=3)
    vs, log_weights = brute_force_log_weights(rbm)
    free_energy = np.asarray(rbm.free_energy(vs.astype("float32")))
    np.testing.assert_allclose(-free_energy, log_weights, rtol=1e-5, atol=1e-4)
    exact = np.logaddexp.reduce(log_weights)
    assert rbm.log_partition_exact() == pytest.approx(exact, abs=1e-6)  # enumerates h (3 < 9 units)
    wide = small_rbm(L=3, hidden=12)
    _, wide_weights = brute_force_log_weights(wide)
    assert wide.log_partition_exact() == pytest.approx(np.logaddexp.reduce(wide_weights), abs=1e-6)  # enumerates v


def test_free_energy_gradient_matches_the_closed_form():
    """dF/dW_ij = -v_i sigmoid(b_j + (vW)_j), dF/da_i = -v_i, dF/db_j = -sigmoid(b_j + (vW)_j)."""
    rbm = small_rbm(L=3, hidden=4)
    v = np.random.default_rng(2).integers(0, 2, size=(5, 9)).astype("float32")
    with tf.GradientTape() as tape:
        mean_f = tf.reduce_mean(rbm.free_energy(v))
    g_w, g_a, g_b = tape.gradient(mean_f, [rbm.weights_vh, rbm.visible_bias, rbm.hidden_bias])
    W, a, b = rbm.numpy_parameters()
    p_h = 1 / (1 + np.exp(-(v @ W + b)))
    np.testing.assert_allclose(np.asarray(g_w), -(v.T @ p_h) / 5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(g_a), -v.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_b), -p_h.mean(axis=0), atol=1e-5)


def test_annealed_importance_sampling_agrees_with_exact_log_z():
    rbm = small_rbm(L=3, hidden=8, scale=0.8, seed=4)
    estimate, error = rbm.log_partition_ais(runs=200, betas=2000, seed=1)
    assert abs(estimate - rbm.log_partition_exact()) < 4 * error + 0.02


def kl_to_model(rbm, data_v):
    """KL(empirical data || model) with exact log Z, in nats."""
    states, counts = np.unique(data_v, axis=0, return_counts=True)
    p_data = counts / counts.sum()
    log_p_model = -np.asarray(rbm.free_energy(states.astype("float32")), float) - rbm.log_partition_exact()
    return float(np.sum(p_data * (np.log(p_data) - log_p_model)))


@pytest.mark.parametrize("persistent", [False, True])
def test_contrastive_divergence_decreases_the_kl_on_a_tiny_data_set(persistent):
    keras.utils.set_random_seed(0)
    # T = 3 has a broad distribution over the 512 states; at low T two states dominate and CD-1 struggles
    data = ising.simulate(400, seed=3, L=3, temperatures=[3.0]).spins.astype("float32")
    rbm = IsingRBM(L=3, hidden_units=6, cd_steps=1, persistent=persistent, persistent_chains=50)
    rbm.compile(optimizer=keras.optimizers.Adam(0.01))
    rbm(data[:2])
    v = (data.reshape(len(data), -1) + 1) / 2
    before = kl_to_model(rbm, v)
    rbm.fit(np.tile(data, (5, 1, 1)), epochs=8, batch_size=50, verbose=0)
    after = kl_to_model(rbm, v)
    assert after < 0.5 * before, (before, after)


def test_sample_returns_reproducible_plus_minus_one_spins():
    rbm = small_rbm(L=4, hidden=5)
    a, b = rbm.sample(7, gibbs_steps=20, seed=3), rbm.sample(7, gibbs_steps=20, seed=3)
    assert a.shape == (7, 4, 4) and a.dtype == np.int8 and set(np.unique(a)) <= {-1, 1}
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="gibbs_steps"):
        rbm.sample(3, gibbs_steps=0)
    with pytest.raises(TypeError, match=r"number of configurations n must be an integer >= 1; received 2\.5 \(float\)"):
        rbm.sample(2.5)


def test_rbm_rejects_another_lattice_size():
    rbm = small_rbm(L=4, hidden=5)
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5\); expected \(batch, 4, 4\)"):
        rbm.predict(random_spins(2, 5), verbose=0)
    with pytest.raises(ValueError, match="must hold spins"):
        rbm.predict(np.full((2, 4, 4), 3.0), verbose=0)


def test_gibbs_samples_follow_the_rbm_distribution():
    """Block Gibbs sampling of a 4-unit machine reproduces p(v) = exp(-F(v)) / Z state by state."""
    rbm = small_rbm(L=2, hidden=3, scale=1.0)
    spins = rbm.sample(20000, gibbs_steps=50, seed=1)
    codes = ((spins.reshape(len(spins), -1) + 1) // 2).astype(int) @ (2 ** np.arange(4))
    empirical = np.bincount(codes, minlength=16) / len(codes)
    states = ((np.arange(16)[:, None] >> np.arange(4)) & 1).astype("float32")
    exact = np.exp(-np.asarray(rbm.free_energy(states), float) - rbm.log_partition_exact())
    assert exact.sum() == pytest.approx(1.0, abs=1e-5)
    assert 0.5 * np.abs(empirical - exact).sum() < 0.02


@pytest.mark.parametrize("spins, accepted", [
    (np.ones((2, 4, 4)), True),
    (-np.ones((2, 4, 4)), True),
    (np.zeros((2, 4, 4)), True),            # 0/1 occupations, converted
    (np.eye(4)[None].repeat(2, 0), True),   # 0/1
    (np.full((2, 4, 4), 0.5), False),
    (np.full((2, 4, 4), 2.0), False),
    (np.ones((2, 4, 5)), False),            # not square
    (np.ones((2, 2, 2)), False),            # L below the minimum
])
def test_the_spin_check_runs_identically_in_predict_and_in_the_graph(spins, accepted):
    """One declared check, two implementations: they accept the same lattices and convert them the same way."""
    import tensorflow as tf

    from zoo.validation import SpinCheck

    check = SpinCheck("spins", min_size=3)
    spins = spins.astype("float32")
    try:
        in_numpy = check.numpy({"spins": spins})["spins"]
    except ValueError:
        in_numpy = None
    graph = tf.function(lambda s: check.graph({"spins": s})["spins"])
    try:
        in_graph = graph(tf.constant(spins)).numpy()
    except tf.errors.InvalidArgumentError:
        in_graph = None
    assert (in_numpy is not None) == (in_graph is not None) == accepted
    if accepted:
        np.testing.assert_array_equal(in_numpy, in_graph)
