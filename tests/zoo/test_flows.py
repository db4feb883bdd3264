"""RealNVP flows: exact inverse and log-determinant, seeded sampling, the action, bad input, reverse-KL training."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.recipes import flows as recipe_module
from training.simulators import lattice
from zoo.models.flows import AffineCoupling, RealNVPFlow, checkerboard


def small_flow(L=4, seed=0):
    keras.utils.set_random_seed(seed)
    flow = RealNVPFlow(L=L, coupling_layers=4, hidden_channels=(4,))
    flow.build_with_examples()
    # non-trivial couplings: the last convolution starts at zero (identity flow), so perturb every weight
    rng = np.random.default_rng(seed)
    for weight in flow.weights:
        weight.assign(weight.numpy() + 0.3 * rng.standard_normal(weight.shape).astype("float32"))
    return flow


def test_inverse_of_forward_is_the_identity():
    flow = small_flow()
    z = np.random.default_rng(1).normal(size=(5, 4, 4)).astype("float32")
    phi, log_det = flow.decode(tf.constant(z))
    back, log_det_inverse = flow.encode(phi)
    np.testing.assert_allclose(np.asarray(back), z, atol=1e-5)
    np.testing.assert_allclose(np.asarray(log_det) + np.asarray(log_det_inverse), 0.0, atol=1e-4)


def test_log_determinant_equals_the_jacobian_from_autodiff():
    flow = small_flow()
    z = tf.constant(np.random.default_rng(2).normal(size=(1, 4, 4)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        phi, log_det = flow.decode(z)
    jacobian = tape.jacobian(phi, z).numpy().reshape(16, 16)
    _, log_abs_det = np.linalg.slogdet(jacobian.astype(np.float64))
    np.testing.assert_allclose(float(log_det[0]), log_abs_det, atol=1e-4)


def test_coupling_leaves_the_frozen_checkerboard_unchanged():
    layer = AffineCoupling(4, parity=1, hidden_channels=(3,))
    layer.build((None, 4, 4))
    for weight in layer.weights:
        weight.assign(np.random.default_rng(3).normal(size=weight.shape).astype("float32"))
    z = np.random.default_rng(4).normal(size=(2, 4, 4)).astype("float32")
    phi, _ = layer(z)
    frozen = checkerboard(4, 1).astype(bool)
    np.testing.assert_array_equal(np.asarray(phi)[:, frozen], z[:, frozen])
    assert not np.allclose(np.asarray(phi)[:, ~frozen], z[:, ~frozen])


def test_samples_carry_their_log_prob_and_seeds_reproduce_them():
    flow = small_flow()
    phi, log_q = flow.sample(6, seed=3)
    assert phi.shape == (6, 4, 4) and log_q.shape == (6,)
    np.testing.assert_allclose(flow.log_prob(phi), log_q, rtol=1e-4, atol=1e-3)
    again, _ = flow.sample(6, seed=3)
    np.testing.assert_array_equal(phi, again)
    first_two, _ = flow.sample(2, seed=3)
    np.testing.assert_allclose(first_two, phi[:2], atol=1e-6)
    assert not np.allclose(flow.sample(6, seed=4)[0], phi)


def test_action_is_the_simulators_phi4_action():
    flow = small_flow()
    phi = np.random.default_rng(5).normal(size=(4, 4, 4)).astype("float32")
    np.testing.assert_allclose(flow.action(phi), lattice.phi4_action(phi, -4.0, 8.0), rtol=1e-5, atol=1e-3)


def test_bad_input_is_refused():
    flow = small_flow()
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="seed"):
        flow.sample(2, seed=-1)
    with pytest.raises(ValueError, match="n >= 1"):
        flow.sample(0)
    with pytest.raises(ValueError, match="even lattice size"):
        RealNVPFlow(L=5)


def test_reverse_kl_training_lowers_the_loss():
    flow = RealNVPFlow(L=4, m2=-4.0, lam=8.0, coupling_layers=4, hidden_channels=(8,))
    flow.build_with_examples()
    flow.compile(optimizer=keras.optimizers.Adam(3e-3))
    keras.utils.set_random_seed(0)
    ticks = np.zeros((64 * 60, 1), np.float32)
    history = flow.fit(ticks, batch_size=64, epochs=2, verbose=0).history
    assert history["loss"][1] < history["loss"][0]  # 60 steps each; the identity flow's loss is far above
    assert 0 < history["ess"][-1] <= 1


def test_metropolis_and_ess_on_known_weights():
    index, acceptance = recipe_module.metropolis_chain(np.zeros(100), seed=0)
    assert acceptance == 1.0 and np.array_equal(index, np.arange(100))
    assert recipe_module.effective_sample_size(np.zeros(50)) == pytest.approx(1.0)
    log_w = np.array([0.0] + [-50.0] * 99)  # one proposal carries all the weight
    assert recipe_module.effective_sample_size(log_w) == pytest.approx(0.01)
    index, acceptance = recipe_module.metropolis_chain(log_w, seed=0)
    assert acceptance < 0.01 and np.all(index == 0)
