"""Lattice field theories: actions against explicit sums and finite differences, exact ln Z against
enumeration and quadrature, HMC against the free-field propagator, statistics against closed forms."""
import itertools
import math

import numpy as np
import pytest

from training.simulators import lattice as lt

T_C = 2.269185314213022  # the temperature of li012589/NeuralRG etc/exactz.md


def _dense_adjacency(L):
    """sum_mu (T_mu + T_mu^{-1}) built site by site; on L = 2 the two bonds of a pair both count."""
    A = np.zeros((L * L, L * L))
    for i, j in itertools.product(range(L), repeat=2):
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            A[i * L + j, ((i + di) % L) * L + (j + dj) % L] += 1
    return A


def _finite_difference_gradient(action, phi, h=1e-5):
    grad = np.zeros_like(phi)
    for index in np.ndindex(phi.shape[1:]):
        step = np.zeros_like(phi)
        step[(slice(None),) + index] = h
        grad[(slice(None),) + index] = (action(phi + step) - action(phi - step)) / (2 * h)
    return grad


# ----------------------------------------------------------------------------- actions

def test_phi4_action_is_the_sum_over_sites_and_bonds_written_out():
    rng = np.random.default_rng(0)
    phi, m2, lam = rng.normal(size=(3, 3, 3)), -1.3, 0.7
    expected = []
    for f in phi:
        total = 0.0
        for i, j in itertools.product(range(3), repeat=2):
            gradient2 = (f[(i + 1) % 3, j] - f[i, j]) ** 2 + (f[i, (j + 1) % 3] - f[i, j]) ** 2
            total += gradient2 + m2 * f[i, j] ** 2 + lam * f[i, j] ** 4
        expected.append(total)
    np.testing.assert_allclose(lt.phi4_action(phi, m2, lam), expected, rtol=1e-12)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_phi4_force_is_the_gradient_of_the_action(L):
    phi = np.random.default_rng(1).normal(size=(2, L, L))
    numeric = _finite_difference_gradient(lambda f: lt.phi4_action(f, -4.0, 8.0), phi)
    np.testing.assert_allclose(lt.phi4_force(phi, -4.0, 8.0), numeric, rtol=1e-6, atol=1e-6)


def test_complex_phi4_force_is_the_gradient_and_the_action_is_u1_invariant():
    phi = np.random.default_rng(2).normal(size=(2, 3, 3, 2))
    numeric = _finite_difference_gradient(lambda f: lt.complex_phi4_action(f, 0.3, 1.1), phi)
    np.testing.assert_allclose(lt.complex_phi4_force(phi, 0.3, 1.1), numeric, rtol=1e-6, atol=1e-6)
    a = 0.83
    rotated = np.stack([np.cos(a) * phi[..., 0] - np.sin(a) * phi[..., 1],
                        np.sin(a) * phi[..., 0] + np.cos(a) * phi[..., 1]], axis=-1)
    np.testing.assert_allclose(lt.complex_phi4_action(rotated, 0.3, 1.1), lt.complex_phi4_action(phi, 0.3, 1.1), rtol=1e-12)


def test_complex_phi4_maps_onto_the_albergo_convention():
    """phi_A = sqrt(kappa) phi:  S_LW(phi) = S_A(phi_A; (1 - 2 lam)/kappa - 4, lam/kappa^2) + V lam (real direction)."""
    kappa, lam = 0.27, 0.9
    phi = np.random.default_rng(3).normal(size=(4, 4, 4))
    complex_field = np.stack([phi, np.zeros_like(phi)], axis=-1)
    albergo = lt.phi4_action(np.sqrt(kappa) * phi, (1 - 2 * lam) / kappa - 4, lam / kappa ** 2)
    np.testing.assert_allclose(lt.complex_phi4_action(complex_field, kappa, lam), albergo + 16 * lam, rtol=1e-12)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_hs_ising_action_matches_the_dense_inverse_and_its_force_the_gradient(L):
    K, x = 0.37, np.random.default_rng(4).normal(size=(3, L, L))
    A = _dense_adjacency(L)
    offset = 0.1 - np.linalg.eigvalsh(K * A).min()
    M_inv = np.linalg.inv(K * A + offset * np.eye(L * L))
    flat = x.reshape(3, -1)
    expected = 0.5 * np.einsum("ni,ij,nj->n", flat, M_inv, flat) - np.log(np.cosh(flat)).sum(axis=1)
    np.testing.assert_allclose(lt.hs_ising_action(x, K), expected, rtol=1e-12)
    numeric = _finite_difference_gradient(lambda f: lt.hs_ising_action(f, K), x)
    np.testing.assert_allclose(lt.hs_ising_force(x, K), numeric, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- exact partition functions

def _ising_log_z_enumerated(L, K):
    states = np.arange(2 ** (L * L))
    spins = (((states[:, None] >> np.arange(L * L)) & 1) * 2 - 1).reshape(-1, L, L).astype(float)
    bonds = (spins * (np.roll(spins, -1, 1) + np.roll(spins, -1, 2))).sum(axis=(1, 2))
    top = (K * bonds).max()
    return top + math.log(np.exp(K * bonds - top).sum())


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("K", [0.2, lt.K_CRITICAL, 0.7, 2.0])
def test_kaufman_matches_enumeration_on_even_and_odd_tori(L, K):
    assert lt.ising_log_z_exact(L, K) == pytest.approx(_ising_log_z_enumerated(L, K), abs=1e-12, rel=1e-13)


def test_kaufman_limits_and_the_neuralrg_reference_values():
    assert lt.ising_log_z_exact(4, 40.0) == pytest.approx(40.0 * 32 + math.log(2), rel=1e-15)  # two ground states
    assert lt.ising_log_z_exact(6, 1e-6) == pytest.approx(36 * math.log(2), abs=1e-9)  # free spins
    # li012589/NeuralRG etc/exactz.md, L = 16 and 32 at T_c: "lnZ" is ln Z_Ising, "fix" the HS constant
    K = 1 / T_C
    assert lt.ising_log_z_exact(16, K) == pytest.approx(238.64225663513287, abs=1e-9)
    assert lt.ising_log_z_exact(32, K) == pytest.approx(952.6480795485427, abs=1e-9)
    assert lt.hs_ising_log_z(16, K) - lt.ising_log_z_exact(16, K) == pytest.approx(354.2334832224499, abs=1e-9)
    assert lt.hs_ising_log_z(16, K) / 256 == pytest.approx(2.31592086, abs=1e-8)  # its "sum/n" column


@pytest.mark.parametrize("K,offset", [(lt.K_CRITICAL, None), (0.3, 1.7)])
def test_hs_log_z_matches_quadrature_on_2x2(K, offset):
    """int dx exp(-S(x)) over R^4 by the trapezoid rule in the eigenbasis of M.

    There exp(-S) is a mixture of axis-aligned Gaussians of widths sigma_k = sqrt(eig_k) centred within
    2 eig_k of 0, for which the rule's relative error at spacing sigma / 1.5 is exp(-2 pi^2 1.5^2) ~ 1e-19.
    """
    M = K * _dense_adjacency(2) + (0.1 + 4 * K if offset is None else offset) * np.eye(4)
    eigenvalues, U = np.linalg.eigh(M)
    sigma = np.sqrt(eigenvalues)
    axes = [np.arange(-(2 * e + 8 * s), 2 * e + 8 * s + 1e-9, s / 1.5) for e, s in zip(eigenvalues, sigma)]
    y23 = np.stack(np.meshgrid(axes[1], axes[2], axes[3], indexing="ij"), axis=-1).reshape(-1, 3)
    total = 0.0
    for y0 in axes[0]:
        y = np.concatenate([np.full((len(y23), 1), y0), y23], axis=1)
        total += np.exp(-lt.hs_ising_action((y @ U.T).reshape(-1, 2, 2), K, offset)).sum()
    log_z = math.log(total) + sum(math.log(a[1] - a[0]) for a in axes)
    assert lt.hs_ising_log_z(2, K, offset) == pytest.approx(log_z, abs=1e-9)


# ----------------------------------------------------------------------------- free field and HMC

def test_free_field_propagator_is_the_inverse_of_twice_the_quadratic_form():
    L, m2 = 4, 0.5
    A = -_dense_adjacency(L) + (4 + m2) * np.eye(L * L)  # S = phi^T A phi at lam = 0
    covariance = np.linalg.inv(2 * A)
    np.testing.assert_allclose(lt.free_field_propagator(L, m2).ravel(), covariance[:, 0], rtol=1e-12)


@pytest.fixture(scope="module")
def free_field_chain():
    L, m2 = 6, 0.3
    action = lambda f: lt.phi4_action(f, m2, 0.0)
    force = lambda f: lt.phi4_force(f, m2, 0.0)
    phi0 = np.random.default_rng(5).normal(size=(64, L, L))
    samples, acceptance = lt.hmc(action, force, phi0, n_samples=500, step_size=0.2, n_steps=5, seed=6)
    return L, m2, samples[50:], acceptance  # the first 50 trajectories equilibrate


def test_hmc_reproduces_the_free_field_propagator_within_errors(free_field_chain):
    L, m2, samples, acceptance = free_field_chain
    assert 0.7 < acceptance < 1.0
    G, error = lt.two_point_function(samples.reshape(-1, L, L))
    exact = lt.free_field_propagator(L, m2)
    assert error.max() < 0.03 * exact[0, 0]  # the check has power ...
    pulls = np.abs(G - exact) / error
    assert pulls.max() < 5, f"largest pull {pulls.max():.2f} at {np.unravel_index(pulls.argmax(), pulls.shape)}"
    wrong = np.abs(G - lt.free_field_propagator(L, 1.3 * m2)) / error
    assert wrong.max() > 5  # ... and would notice a 30% error in the mass


def test_hmc_gives_equipartition_for_the_gaussian_action(free_field_chain):
    """A quadratic action in V variables has <S> = V / 2 exactly."""
    L, m2, samples, _ = free_field_chain
    S = np.stack([lt.phi4_action(f, m2, 0.0) for f in samples])  # (T, chains)
    mean, error = lt.mean_with_error(S)
    assert abs(mean - L * L / 2) < 5 * error and error < 0.02 * L * L / 2


def test_phi4_hmc_at_albergo_point_is_reproducible_and_z2_symmetric():
    kwargs = {"L": 8, "m2": -4.0, "lam": 8.0, "n_samples": 300, "seed": 7, "burn_in": 100}
    samples, acceptance = lt.phi4_hmc(**kwargs)
    again, _ = lt.phi4_hmc(**kwargs)
    assert samples.shape == (300, lt.HMC_DEFAULTS["n_chains"], 8, 8) and np.array_equal(samples, again)
    assert 0.75 < acceptance < 0.98
    m = samples.mean(axis=(2, 3))
    mean, error = lt.mean_with_error(m)
    assert abs(mean) < 5 * error
    assert lt.integrated_autocorrelation_time(m) < 10


# ----------------------------------------------------------------------------- statistics

def _ar1(rho, T, chains, seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(T, chains)) * math.sqrt(1 - rho ** 2)
    x = np.empty((T, chains))
    x[0] = rng.normal(size=chains)
    for t in range(1, T):
        x[t] = rho * x[t - 1] + noise[t]
    return x


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_integrated_autocorrelation_time_of_ar1(rho):
    """tau_int = 1/2 + sum_t rho^t = (1 + rho) / (2 (1 - rho)); tolerance 4 Madras-Sokal errors."""
    exact = (1 + rho) / (2 * (1 - rho))
    for series in (_ar1(rho, 100_000, 1, seed=8)[:, 0], _ar1(rho, 5_000, 20, seed=9)):
        tau = lt.integrated_autocorrelation_time(series)
        window = 6 * exact
        assert tau == pytest.approx(exact, abs=4 * exact * math.sqrt(2 * (2 * window + 1) / series.size))


def test_mean_with_error_accounts_for_autocorrelation():
    rho, T = 0.8, 100_000
    mean, error = lt.mean_with_error(_ar1(rho, T, 1, seed=10)[:, 0])
    exact_error = math.sqrt((1 + rho) / (1 - rho) / T)  # var(mean) of AR(1) with unit variance
    assert error == pytest.approx(exact_error, rel=0.1)
    assert abs(mean) < 5 * exact_error


def test_susceptibility_and_binder_of_gaussian_and_ordered_fields():
    white = np.random.default_rng(11).normal(scale=1.5, size=(4000, 4, 4))  # chi = sum_x G_c(x) = 1.5^2
    chi, chi_error = lt.susceptibility(white)
    assert abs(chi - 2.25) < 5 * chi_error and chi_error < 0.1
    U, U_error = lt.binder_cumulant(white)
    assert abs(U) < 5 * U_error and U_error < 0.05
    ordered = np.where(np.arange(40)[:, None, None] % 2 == 0, 1.0, -1.0) * np.ones((40, 4, 4))
    assert lt.binder_cumulant(ordered)[0] == pytest.approx(2 / 3)
    G, _ = lt.two_point_function(ordered, connected=False)
    np.testing.assert_allclose(G, 1.0)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,pattern", [
    (lambda: lt.phi4_action(np.zeros((4, 4)), 1.0, 1.0), r"shape \(n, L, L\).*received shape \(4, 4\)"),
    (lambda: lt.phi4_force(np.zeros((2, 4, 5)), 1.0, 1.0), r"received shape \(2, 4, 5\)"),
    (lambda: lt.phi4_action(np.full((1, 3, 3), np.nan), 1.0, 1.0), r"1 non-finite|9 non-finite"),
    (lambda: lt.complex_phi4_action(np.zeros((2, 4, 4)), 0.3, 1.0), r"\(n, L, L, 2\).*received shape \(2, 4, 4\)"),
    (lambda: lt.phi4_action(np.zeros((1, 3, 3)) + 0j, 1.0, 1.0), r"real numbers, received dtype complex"),
    (lambda: lt.phi4_action(np.zeros((1, 3, 3)), float("nan"), 1.0), r"m2 must be a finite number, received nan"),
    (lambda: lt.ising_log_z_exact(1, 0.4), r"integer >= 2, received 1"),
    (lambda: lt.ising_log_z_exact(4, -0.4), r"K must be a finite positive number, received -0.4"),
    (lambda: lt.hs_ising_log_z(4, 0.4, offset=1.0), r"positive definite.*Expected offset > 1.6"),
    (lambda: lt.free_field_propagator(4, 0.0), r"m2 must be a finite positive number"),
    (lambda: lt.hmc(np.sum, np.sign, np.zeros((2, 3, 3)), 0, 0.1, 5, seed=0), r"n_samples must be a positive integer"),
    (lambda: lt.integrated_autocorrelation_time(np.zeros((2, 3, 4))), r"\(T,\) or \(T, n_chains\).*\(2, 3, 4\)"),
    (lambda: lt.mean_with_error([1.0, np.inf, 2.0, 3.0]), r"non-finite"),
])
def test_bad_input_is_refused_with_what_was_received_and_expected(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_diverging_trajectories_are_rejected_not_raised():
    phi0 = np.random.default_rng(12).normal(scale=0.1, size=(4, 8, 8))
    action = lambda f: lt._phi4_action(f, -4.0, 8.0)
    force = lambda f: lt._phi4_force(f, -4.0, 8.0)
    samples, acceptance = lt.hmc(action, force, phi0, n_samples=5, step_size=0.6, n_steps=10, seed=13)
    assert acceptance == 0.0 and np.array_equal(samples[-1], phi0)


def test_swendsen_wang_energy_matches_the_exact_partition_function():
    """<E> / V = -(1/V) d ln Z / dK on a 4 x 4 torus near T_c, within five standard errors."""
    L, K = 4, 0.4
    spins = lt.ising_swendsen_wang(L, K, 2000, seed=0, n_chains=8).astype(float)
    bonds = (spins * (np.roll(spins, -1, axis=2) + np.roll(spins, -1, axis=3))).sum(axis=(2, 3)) / (L * L)
    h = 1e-5
    exact = (lt.ising_log_z_exact(L, K + h) - lt.ising_log_z_exact(L, K - h)) / (2 * h) / (L * L)
    mean, error = lt.mean_with_error(bonds)
    assert abs(mean - exact) < 5 * error


def test_continuous_fields_from_spins_have_the_exact_mean_action():
    """<S> of x | s ~ N(M s, M) over exact Ising spins equals -d ln Z_cont / d(scale) at scale 1, computed here
    as the exact identity <x^T M^{-1} x> = N + <s^T M s> checked on enumerated 2 x 2 spins."""
    L, K = 2, 0.3
    configurations = np.array(np.meshgrid(*[[-1, 1]] * 4, indexing="ij")).reshape(4, -1).T.reshape(-1, 2, 2)
    spins = configurations.astype(float)
    weights = np.exp(K * (spins * (np.roll(spins, -1, 1) + np.roll(spins, -1, 2))).sum(axis=(1, 2)))
    picks = np.random.default_rng(0).choice(len(spins), size=40_000, p=weights / weights.sum())
    x = lt.hs_ising_fields_from_spins(spins[picks], K, seed=1)
    spectrum = K * lt.adjacency_eigenvalues(L) + lt.hs_default_offset(L, K)
    minv_x = np.fft.ifft2(np.fft.fft2(x) / spectrum).real
    quadratic = (x * minv_x).sum(axis=(1, 2))
    m_s = np.fft.ifft2(np.fft.fft2(spins) * spectrum).real
    expected = 4 + np.average((spins * m_s).sum(axis=(1, 2)), weights=weights)
    assert abs(quadratic.mean() - expected) < 5 * quadratic.std() / np.sqrt(len(quadratic))


@pytest.mark.parametrize("model, couplings, reference", [
    ("hs_ising", {"K": 0.3}, lambda x: lt.hs_ising_action(x, 0.3)),
    ("complex_phi4", {"kappa": 0.2, "lam": 1.0}, lambda x: lt.complex_phi4_action(x, 0.2, 1.0)),
])
def test_model_hmc_kernels_are_the_checked_actions_and_forces(model, couplings, reference):
    action, force, components = lt._unchecked_kernels(model, 4, couplings)
    shape = (3, 4, 4) + ((2,) if components == 2 else ())
    x = np.random.default_rng(0).normal(size=shape)
    np.testing.assert_allclose(action(x), reference(x), rtol=1e-12)
    h, direction = 1e-6, np.random.default_rng(1).normal(size=shape)
    numeric = (action(x + h * direction) - action(x - h * direction)) / (2 * h)
    np.testing.assert_allclose((force(x) * direction).sum(axis=tuple(range(1, len(shape)))), numeric, rtol=1e-5)
    samples, acceptance = lt.model_hmc(model, 4, couplings, 20, seed=0, n_chains=2, burn_in=5)
    assert samples.shape == (20,) + (2,) + shape[1:] and 0.5 < acceptance <= 1
