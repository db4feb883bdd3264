"""RealNVP flows: exact inverse and log-determinant, seeded sampling, the action, bad input, reverse-KL training."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.recipes import flows as recipe_module
from training.simulators import lattice
from zoo import mcmc
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
    first_two, _ = flow.sample(2, seed=3)  # the same draws; a batch of 2 may round a log or cos another way
    np.testing.assert_allclose(first_two, phi[:2], rtol=1e-5, atol=1e-6)
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
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
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
    index, acceptance = mcmc.independence_metropolis(np.zeros(100), seed=0)
    assert acceptance == 1.0 and np.array_equal(index, np.arange(100))
    assert mcmc.effective_sample_size(np.zeros(50)) == pytest.approx(1.0)
    log_w = np.array([0.0] + [-50.0] * 99)  # one proposal carries all the weight
    assert mcmc.effective_sample_size(log_w) == pytest.approx(0.01)
    index, acceptance = mcmc.independence_metropolis(log_w, seed=0)
    assert acceptance < 0.01 and np.all(index == 0)


def test_mcmc_method_gives_a_seeded_exact_chain_and_its_statistics():
    """The sampler the cards recommend, as a method: independence Metropolis over the flow's proposals
    (the recipe's chain on the same seed) and latent-space HMC, with acceptance and tau_int."""
    flow = small_flow()
    chain = flow.mcmc(200, seed=5)
    again = flow.mcmc(200, seed=5)
    proposals, log_q = flow.sample(200, seed=5)
    log_w = -flow.action(proposals).astype(np.float64) - log_q
    index, acceptance = mcmc.independence_metropolis(log_w, seed=5)
    np.testing.assert_array_equal(chain.fields, proposals[index])
    np.testing.assert_array_equal(chain.fields, again.fields)
    assert chain.acceptance == acceptance and chain.ess == pytest.approx(mcmc.effective_sample_size(log_w))
    assert set(chain.tau_int) == {"action_per_site", "abs_magnetisation"}
    assert all(t >= 0.5 - 1e-9 for t in chain.tau_int.values())
    assert 0 < chain.independent_samples <= 200 / (2 * 0.5) + 1e-9
    hmc = flow.mcmc(24, seed=6, method="latent_hmc", chains=4, burn_in=3)
    assert hmc.fields.shape == (24, 4, 4) and hmc.chains == 4 and 0 <= hmc.acceptance <= 1 and hmc.ess is None


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n": 10, "method": "gibbs"}, ValueError, "method must be 'metropolis' or 'latent_hmc'; received 'gibbs'"),
    ({"n": 2.5}, TypeError, r"number of fields n must be an integer >= 1; received 2\.5"),
    ({"n": 3, "method": "latent_hmc", "chains": 4}, ValueError, "n >= chains; received n = 3, chains = 4"),
])
def test_mcmc_refuses_what_it_cannot_run(kwargs, error, message):
    with pytest.raises(error, match=message):
        small_flow().mcmc(seed=1, **kwargs)


# ---------------------------------------------------------------------------- the hierarchical (NeuralRG) flow

def small_hierarchy(L=4, action="hs_ising", couplings=None, z2_symmetric=False, seed=0, original=False):
    from zoo.models.flows import NeuralRGFlow

    keras.utils.set_random_seed(seed)
    couplings = couplings or {"K": lattice.K_CRITICAL}
    flow = NeuralRGFlow(L=L, action=action, couplings=couplings, block_couplings=3, hidden=(5,),
                        z2_symmetric=z2_symmetric, separate_networks=original, top_disentangler=original)
    flow.build_with_examples()
    rng = np.random.default_rng(seed)
    for weight in flow.weights:  # the last layers start at zero (identity blocks): perturb every weight
        weight.assign(weight.numpy() + 0.3 * rng.standard_normal(weight.shape).astype("float32"))
    return flow


@pytest.mark.parametrize("L, action, couplings, original", [
    (4, "hs_ising", None, False), (8, "hs_ising", None, False), (4, "complex_phi4", {"kappa": 0.3, "lam": 1.0}, False),
    (4, "hs_ising", None, True), (4, "complex_phi4", {"kappa": 0.3, "lam": 1.0}, True)])
def test_hierarchy_inverse_and_log_determinant(L, action, couplings, original):
    """Also with NeuralRG's own block structure (separate s and t networks of the masked plaquette, a top
    disentangler): still a bijection whose log-determinant is the Jacobian's."""
    flow = small_hierarchy(L, action, couplings, original=original)
    shape = (L, L) if action == "hs_ising" else (L, L, 2)
    z = tf.constant(np.random.default_rng(1).normal(size=(1,) + shape), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        phi, log_det = flow.decode(z)
    back, log_det_inverse = flow.encode(phi)
    np.testing.assert_allclose(np.asarray(back), z.numpy(), atol=1e-4)
    np.testing.assert_allclose(float(log_det[0]) + float(log_det_inverse[0]), 0.0, atol=1e-4)
    size = int(np.prod(shape))
    jacobian = tape.jacobian(phi, z).numpy().reshape(size, size)
    _, log_abs_det = np.linalg.slogdet(jacobian.astype(np.float64))
    assert not np.allclose(jacobian, np.eye(size), atol=1e-2)  # a non-trivial bijection
    np.testing.assert_allclose(float(log_det[0]), log_abs_det, atol=1e-3)


def test_hierarchy_latent_variables_sit_where_they_were_decimated():
    """Changing the coarsest latent variable (site (0, 0)) moves the whole lattice; a finest-level one only its
    neighbourhood: the generator runs from coarse to fine."""
    flow = small_hierarchy(8)
    z = np.random.default_rng(2).normal(size=(1, 8, 8)).astype("float32")
    base = np.asarray(flow.decode(tf.constant(z))[0])
    coarse, fine = z.copy(), z.copy()
    coarse[0, 0, 0] += 1.0
    fine[0, 5, 5] += 1.0  # an odd site: decimated at the first level
    moved_coarse = np.abs(np.asarray(flow.decode(tf.constant(coarse))[0]) - base) > 1e-6
    moved_fine = np.abs(np.asarray(flow.decode(tf.constant(fine))[0]) - base) > 1e-6
    assert moved_coarse.sum() == 64
    assert 0 < moved_fine.sum() <= 16  # its decimator plaquette and the disentangler plaquettes around it


def test_z2_symmetric_hierarchy_commutes_with_the_sign_flip():
    flow = small_hierarchy(4, z2_symmetric=True)
    z = np.random.default_rng(3).normal(size=(3, 4, 4)).astype("float32")
    phi, log_det = flow.decode(tf.constant(z))
    flipped, log_det_flipped = flow.decode(tf.constant(-z))
    np.testing.assert_allclose(np.asarray(flipped), -np.asarray(phi), atol=1e-5)
    np.testing.assert_allclose(np.asarray(log_det_flipped), np.asarray(log_det), atol=1e-4)
    fields = np.asarray(phi)
    np.testing.assert_allclose(flow.log_prob(-fields), flow.log_prob(fields), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("action, couplings, reference", [
    ("hs_ising", {"K": 0.4}, lambda x: lattice.hs_ising_action(x, 0.4)),
    ("phi4", {"m2": -4.0, "lam": 8.0}, lambda x: lattice.phi4_action(x, -4.0, 8.0)),
    ("complex_phi4", {"kappa": 0.3, "lam": 1.5}, lambda x: lattice.complex_phi4_action(x, 0.3, 1.5)),
])
def test_hierarchy_actions_are_the_simulators(action, couplings, reference):
    flow = small_hierarchy(4, action, couplings)
    shape = (4, 4, 2) if action == "complex_phi4" else (4, 4)
    fields = np.random.default_rng(4).normal(size=(3,) + shape).astype("float32")
    np.testing.assert_allclose(flow.action(fields), reference(fields), rtol=1e-5, atol=1e-3)


def test_hierarchy_samples_carry_their_log_prob():
    flow = small_hierarchy(4, "complex_phi4", {"kappa": 0.3, "lam": 1.0})
    phi, log_q = flow.sample(5, seed=7)
    assert phi.shape == (5, 4, 4, 2)
    np.testing.assert_allclose(flow.log_prob(phi), log_q, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(flow.sample(5, seed=7)[0], phi)


def test_hierarchy_refuses_bad_configurations_and_input():
    from zoo.models.flows import NeuralRGFlow

    with pytest.raises(ValueError, match="power of two"):
        NeuralRGFlow(L=12)
    with pytest.raises(ValueError, match="Unknown action"):
        NeuralRGFlow(L=4, action="potts")
    with pytest.raises(ValueError, match=r"\['K'\]"):
        NeuralRGFlow(L=4, action="hs_ising", couplings={"kappa": 0.2})
    flow = small_hierarchy(4)
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(np.full((1, 4, 4), np.nan))


def test_decimation_levels_count_the_hierarchys_latent_variables():
    levels = recipe_module.decimation_levels(16)
    assert [int((levels == level).sum()) for level in range(5)] == [192, 48, 12, 3, 1]
    assert levels[0, 0] == 4 and levels[8, 8] == 3 and levels[4, 12] == 2 and levels[1, 0] == 0


def test_bulk_statistics_of_independent_gaussians_through_the_identity_flow():
    """The untrained hierarchical flow is the identity (its last layers start at zero): encoding i.i.d. N(0, 1)
    fields gives unit spreads and correlations at the noise floor."""
    from zoo.models.flows import NeuralRGFlow

    flow = NeuralRGFlow(L=8, couplings={"K": 0.3}, block_couplings=2, hidden=(4,))
    flow.build_with_examples()
    fields = np.random.default_rng(0).standard_normal((4000, 8, 8)).astype("float32")
    bulk = recipe_module.bulk_statistics(flow, fields)
    assert bulk["levels"] == [0, 1, 2, 3] and bulk["count"] == [48, 12, 3, 1]
    np.testing.assert_allclose(bulk["std"], 1.0, atol=0.05)
    noise = np.sqrt(2 / np.pi / 4000)
    assert np.nanmax(bulk["correlation_across_levels"]) < 2 * noise
    # only the magnetisation's own building blocks correlate with it: 1/8 each, as 64 equal parts of m
    np.testing.assert_allclose(bulk["correlation_with_m"], 1 / 8, atol=0.03)


def test_symmetrized_flow_is_the_exact_mixture_and_samples_both_signs():
    from zoo.models.flows import NeuralRGFlow

    flow = small_hierarchy(4)
    mixture = NeuralRGFlow.from_config({**flow.get_config(), "symmetrize": True})
    mixture.build_with_examples()
    mixture.set_weights(flow.get_weights())
    phi = np.random.default_rng(5).normal(size=(4, 4, 4)).astype("float32")
    expected = np.logaddexp(flow.log_prob(phi), flow.log_prob(-phi)) - np.log(2.0)
    np.testing.assert_allclose(mixture.log_prob(phi), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mixture.log_prob(-phi), mixture.log_prob(phi), rtol=1e-5, atol=1e-4)
    fields, log_q = mixture.sample(64, seed=3)
    np.testing.assert_allclose(mixture.log_prob(fields), log_q, rtol=1e-4, atol=1e-3)
    plain, _ = flow.sample(64, seed=3)
    same = np.all(np.isclose(fields, plain, atol=1e-5), axis=(1, 2))
    flipped = np.all(np.isclose(fields, -plain, atol=1e-5), axis=(1, 2))
    assert np.all(same | flipped) and 16 < flipped.sum() < 48  # a fair coin per row (binomial, 4 sigma)


def test_observable_errors_of_interleaved_chains_leave_out_one_chain_at_a_time():
    """16 AR(1) chains (rho = 0.9) interleaved time-major, as HMC returns them: the error of a mean is the scatter
    of the chains' own means (a jackknife over whole chains), not the naive one of the interleaved (apparently
    uncorrelated) series."""
    import dataclasses

    rng = np.random.default_rng(0)
    T, chains, rho = 4000, 16, 0.9
    x = np.zeros((T, chains))
    for t in range(1, T):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(chains)
    fields = np.broadcast_to(x.reshape(-1)[:, None, None], (T * chains, 2, 2)).copy()  # constant fields: m = x
    recipe = dataclasses.replace(recipe_module.RECIPES["realnvp-phi4-L8"], L=2)
    value, error = recipe_module.observables(fields, recipe, chains)["abs_magnetisation"]
    chain_means = np.abs(x).mean(axis=0)
    assert value == pytest.approx(np.abs(x).mean(), rel=1e-12)
    assert error == pytest.approx(chain_means.std(ddof=1) / np.sqrt(chains), rel=1e-9)
    _, naive = recipe_module.observables(fields, recipe, 1, n_bins=T * chains // 4)["abs_magnetisation"]
    assert naive < 0.6 * error  # read as one chain in short blocks, the interleaving hides the autocorrelation
    chi, chi_error = recipe_module.observables(fields, recipe, chains)["susceptibility"]  # V var(m), per chain left out
    left_out = [4 * np.delete(x, k, axis=1).var() for k in range(chains)]
    assert chi == pytest.approx(4 * x.var(), rel=1e-9)
    assert chi_error == pytest.approx(np.sqrt((chains - 1) / chains * np.sum((left_out - np.mean(left_out)) ** 2)),
                                      rel=1e-6)


def test_an_integer_seed_stands_for_its_row_seeds():
    """sample(n, seed=s) is the served signature fed zoo.row_seeds(n, s): the request that reproduces it."""
    import zoo

    flow = small_flow()
    seeds = zoo.row_seeds(5, 3)
    phi, log_q = flow.sample(5, seed=3)
    from_array, log_q_array = flow.sample(5, seed=seeds)
    served = flow.run_endpoint("sample", {"seed": seeds})
    np.testing.assert_array_equal(phi, from_array)
    np.testing.assert_array_equal(log_q, log_q_array)
    np.testing.assert_array_equal(phi, served["fields"])
    assert not np.allclose(flow.sample(5, seed=np.full(5, 3))[0], phi)  # every field seeded 3 is another draw


def test_per_row_seeds_make_each_field_independent_of_its_neighbours():
    flow = small_flow()
    seeds = np.array([21, 22, 23, 24])
    phi, log_q = flow.sample(4, seed=seeds)
    picked, picked_log_q = flow.sample(2, seed=seeds[[3, 1]])
    alone, _ = flow.sample(1, seed=[22])
    twins, _ = flow.sample(2, seed=np.array([23, 23]))
    np.testing.assert_allclose(picked, phi[[3, 1]], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(picked_log_q, log_q[[3, 1]], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(alone[0], phi[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(twins[0], twins[1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(phi[0], phi[1])


@pytest.mark.parametrize("n, seed, error, message", [
    (2.5, 1, TypeError, r"number of fields n must be an integer >= 1; received 2\.5 \(float\)"),
    (True, 1, TypeError, r"received True \(bool\)"),
    (0, 1, ValueError, r"fields n must be an integer >= 1; received 0"),
    (2, 2.5, TypeError, r"received 2\.5 \(float\)"),
    (2, -3, ValueError, "received -3"),
    (2, 2**63, ValueError, "received 9223372036854775808"),
    (2, np.array([5, 2**63], dtype=np.uint64), ValueError, r"rows \[1\] hold \[9223372036854775808\]"),
    (2, [0, -1], ValueError, r"rows \[1\] hold \[-1\]"),
    (3, [1, 2], ValueError, r"shape \(3,\), one seed per row; received an integer array of shape \(2,\)"),
    (2, np.zeros((2, 1), dtype=np.int64), ValueError, r"shape \(2, 1\)"),
    (2, np.array([1.0, 2.0]), TypeError, "dtype float64"),
])
def test_bad_counts_and_seeds_are_refused_with_what_was_expected(n, seed, error, message):
    flow = small_flow()
    with pytest.raises(error, match=message) as refused:
        flow.sample(n, seed=seed)
    assert "\n" not in str(refused.value)


def test_a_flow_starts_from_the_couplings_of_another_lattice_size():
    """The couplings are convolutions with periodic padding: copied from L = 4 to L = 8, the larger flow is the
    same local map, so a field made of 2 x 2 copies of a small one has twice the small one's log q per copy...
    exactly: log q is a sum over sites of the same terms, and the tiled field has four times as many."""
    small, large = small_flow(L=4), RealNVPFlow(L=8, coupling_layers=4, hidden_channels=(4,))
    large.build_with_examples()
    recipe_module.transfer_couplings(small, large)
    phi = small.sample(3, seed=1)[0]
    tiled = np.tile(phi, (1, 2, 2))
    np.testing.assert_allclose(large.log_prob(tiled), 4 * small.log_prob(phi), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="cannot start a flow of 2 couplings from one of 4"):
        other = RealNVPFlow(L=8, coupling_layers=2, hidden_channels=(4,))
        other.build_with_examples()
        recipe_module.transfer_couplings(small, other)
    with pytest.raises(ValueError, match=r"shape \(3, 3, 1, 8\) here, \(3, 3, 1, 4\) in the starting flow"):
        wider = RealNVPFlow(L=8, coupling_layers=4, hidden_channels=(8,))
        wider.build_with_examples()
        recipe_module.transfer_couplings(small, wider)


def flow_sampling_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "flow_sampling.py"
    spec = importlib.util.spec_from_file_location("flow_sampling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sampler_comparison_on_a_tiny_lattice():
    """The benchmark's flow and HMC rounds on 4 x 4: both autocorrelation times, the rates they imply."""
    import dataclasses

    bench = flow_sampling_benchmark()
    recipe = dataclasses.replace(recipe_module.RECIPES["realnvp-phi4-L8"], L=4)
    flow, hmc = bench.flow_round(recipe, small_flow(L=4), 512, 1), bench.hmc_round(recipe, 512, 1)
    for result in (flow, hmc):
        taus = result["tau_int_action"], result["tau_int_abs_magnetisation"]
        assert min(taus) > 0 and result["seconds"] > 0
        slowest = 512 / (2 * max(taus)) / result["seconds"]
        assert result["independent_per_s"] == pytest.approx(slowest)
    assert 0 < flow["acceptance"] <= 1 and 0 < flow["ess_per_sample"] <= 1


def test_where_flow_and_hmc_cross():
    """log(flow / HMC) linear in L^2 through the two largest lattices: rising from 0.5 at L = 8 to 0.8 at L = 16,
    it reaches 1 where L^2 = 256 + ln(1 / 0.8) * 192 / ln(1.6); falling, never."""
    bench = flow_sampling_benchmark()
    rising = bench.crossing([{"L": 8, "flow_over_hmc": 0.5}, {"L": 16, "flow_over_hmc": 0.8}])
    assert rising["crossing_L"] == pytest.approx(np.sqrt(256 + np.log(1 / 0.8) * 192 / np.log(1.6)))
    assert bench.crossing([{"L": 16, "flow_over_hmc": 0.1}, {"L": 8, "flow_over_hmc": 0.4}])["crossing_L"] is None
    assert bench.crossing([{"L": 8, "flow_over_hmc": 1.5}, {"L": 16, "flow_over_hmc": 2.0}])["crossing_L"] == 8
    falling = bench.crossing([{"L": 8, "flow_over_hmc": 0.4}, {"L": 16, "flow_over_hmc": 0.1}])
    assert bench.trend_entries(falling) == {"flow / HMC by lattice size": "0.40 at L = 8, 0.10 at L = 16",
                                            "flow overtakes HMC": "nowhere on this trend: the ratio falls as L "
                                                                  "grows, so HMC's lead widens"}
    assert bench.trend_entries(rising)["flow overtakes HMC"].startswith(f"at L = {rising['crossing_L']:.1f}")


def test_the_original_structure_has_the_original_size():
    """NeuralRG's README configuration at L = 16 (10 couplings per block, perceptrons of 3 x 10 ELU units):
    50,560 parameters in li012589/NeuralRG (counted by benchmarks/neuralrg_peer_torch.py), and the zoo's own
    structure (one network of the 2 frozen sites, no top disentangler) 20,720."""
    from zoo.models.flows import NeuralRGFlow

    sizes = {}
    for original in (False, True):
        flow = NeuralRGFlow(L=16, couplings={"K": lattice.K_CRITICAL}, block_couplings=10, hidden=(10, 10, 10),
                            activation="elu", separate_networks=original, top_disentangler=original)
        flow.build_with_examples()
        sizes[original] = flow.count_params()
        assert NeuralRGFlow.from_config(flow.get_config()).get_config() == flow.get_config()
    assert sizes == {False: 20_720, True: 50_560}


def test_evaluate_again_renews_the_measurement_and_keeps_the_weights_and_training(tmp_path):
    """An installed flow measured again with this code's estimators: the flow chain's errors are the 20-block
    jackknife, the targets follow the new metrics, and the weights, figure and training record stay."""
    import dataclasses
    import shutil

    import zoo

    folder = tmp_path / "realnvp-phi4-L8"
    shutil.copytree(zoo.preset_folder("realnvp-phi4-L8"), folder)
    before = zoo.artifacts.verify_preset(folder)
    recipe = dataclasses.replace(recipe_module.RECIPES["realnvp-phi4-L8"], n_evaluation=400, hmc_trajectories=40,
                                 hmc_chains=2)
    after = recipe_module.evaluate_again(recipe, folder)
    assert after["files"] == before["files"] and after["training"] == before["training"]
    chain = recipe_module.flow_chain(recipe, zoo.load(str(folder)), recipe.n_evaluation, recipe.evaluation_seed)
    action = recipe_module.numpy_action(recipe)(chain["chain"]) / recipe.L ** 2
    expected = lattice.block_mean_with_error(action, recipe_module.FLOW_CHAIN_BLOCKS)
    assert after["metrics"]["action_per_site_flow"] == pytest.approx(expected[0], rel=1e-9)
    assert after["metrics"]["action_per_site_flow_error"] == pytest.approx(expected[1], rel=1e-9)
    assert "jackknife over 20 blocks" in after["card_sections"][0]["markdown"]
    assert {t["metric"]: t["measured"] for t in after["targets"]} == {
        t["metric"]: after["metrics"][t["metric"]] for t in after["targets"]}
    assert recipe_module.evaluate_again(recipe, folder)["metrics"] == after["metrics"]  # the same seeds
