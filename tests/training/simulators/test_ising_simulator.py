"""The Ising Monte Carlo against exact results: enumeration on tiny lattices, Onsager on L = 32."""
import numpy as np
import pytest

from training.simulators import ising


@pytest.mark.parametrize("L", [2, 3, 4, 5, 8])
def test_sublattices_cover_every_site_once_and_hold_no_neighbours(L):
    groups = ising.sublattices(L)
    assert np.array_equal(groups.sum(axis=0), np.ones((L, L)))
    for mask in groups:
        for axis in (0, 1):
            assert not np.any(mask & np.roll(mask, 1, axis=axis))
    assert len(groups) == (2 if L % 2 == 0 else len(groups))


def test_energy_and_magnetisation_count_every_bond_once():
    rng = np.random.default_rng(0)
    spins = np.where(rng.random((3, 5, 5)) < 0.5, -1, 1).astype(np.int8)
    for s, e, m in zip(spins, ising.energy_per_spin(spins), ising.magnetisation(spins)):
        bonds = sum(int(s[i, j]) * int(s[(i + 1) % 5, j]) + int(s[i, j]) * int(s[i, (j + 1) % 5])
                    for i in range(5) for j in range(5))
        assert e == pytest.approx(-bonds / 25) and m == pytest.approx(s.sum() / 25)


def test_onsager_energy_at_the_critical_point_is_minus_root_two():
    assert ising.onsager_energy(ising.T_CRITICAL) == pytest.approx(-np.sqrt(2), abs=1e-9)
    assert ising.onsager_magnetisation(1.0) == pytest.approx((1 - np.sinh(2.0) ** -4) ** 0.125)
    assert ising.onsager_magnetisation(2.3) == 0


def _agree(measured, exact, sigmas=4.0, slack=0.0):
    value, error = measured
    assert abs(value - exact) <= sigmas * error + slack, f"{value} +- {error} against exact {exact}"


@pytest.mark.parametrize("L,temperature", [(4, 2.0), (4, 2.5), (3, 3.0)])
def test_monte_carlo_matches_exact_enumeration(L, temperature):
    exact = ising.exact_enumeration(L, temperature)
    data = ising.simulate(6000, seed=11, L=L, temperatures=[temperature])
    measured = ising.observables(data.spins, temperature)
    for key in measured:
        _agree(measured[key], exact[key])


def test_wolff_alone_samples_the_boltzmann_distribution():
    """Cluster flips only (no Metropolis) must reproduce exact L = 4 averages: detailed balance of the BFS."""
    temperature, rng = 2.3, np.random.default_rng(3)
    spins = ising.initial_spins(np.full(4000, temperature), 4, rng)
    for _ in range(30):
        ising.wolff_update(spins, np.full(len(spins), temperature), rng)
    exact = ising.exact_enumeration(4, temperature)
    measured = ising.observables(spins, temperature)
    for key in ("energy", "abs_magnetisation"):
        _agree(measured[key], exact[key])


@pytest.mark.parametrize("temperature", [1.8, 3.0])
def test_monte_carlo_matches_onsager_away_from_the_critical_point(temperature):
    data = ising.simulate(1024, seed=13, L=32, temperatures=[temperature])
    measured = ising.observables(data.spins, temperature)
    _agree(measured["energy"], ising.onsager_energy(temperature), slack=1e-3)
    if temperature < ising.T_CRITICAL:
        _agree(measured["abs_magnetisation"], ising.onsager_magnetisation(temperature), slack=1e-3)
    assert data.spins.dtype == np.int8 and set(np.unique(data.spins)) <= {-1, 1}


def test_autocorrelation_time_of_an_ar1_process():
    """x_t = phi x_{t-1} + noise has tau_int = (1 + phi) / (2 (1 - phi))."""
    phi, rng = 0.8, np.random.default_rng(5)
    x = np.zeros((64, 4000))
    noise = rng.normal(size=x.shape)
    for t in range(1, x.shape[1]):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    assert ising.integrated_autocorrelation_time(x) == pytest.approx((1 + phi) / (2 * (1 - phi)), rel=0.1)


def test_simulate_reports_measured_decorrelation_and_is_reproducible():
    a = ising.simulate(64, seed=2, L=8, temperatures=[1.5, 2.3, 3.0], threads=1)
    b = ising.simulate(64, seed=2, L=8, temperatures=[1.5, 2.3, 3.0], threads=2)
    np.testing.assert_array_equal(a.spins, b.spins)
    np.testing.assert_array_equal(a.temperatures, b.temperatures)
    d = a.diagnostics
    assert set(d["tau_int"]) == {"1.5", "2.3", "3"}
    assert d["spacing_sweeps"] >= 2 * d["tau_int_max"] and d["equilibration_sweeps"] >= 20 * d["tau_int_max"]
    assert a.spins.shape == (64, 8, 8) and sorted(set(a.temperatures)) == [1.5, 2.3, 3.0]


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=0), "positive number"),
    (dict(L=1), "at least 2"),
    (dict(temperatures=[2.0, -1.0]), "finite and positive"),
    (dict(temperatures=[np.nan]), "finite and positive"),
])
def test_simulate_rejects_bad_arguments(kwargs, message):
    args = dict(n=8, seed=0, L=4, temperatures=[2.0]) | kwargs
    with pytest.raises(ValueError, match=message):
        ising.simulate(**args)


def test_entropy_by_thermodynamic_integration_matches_exact_enumeration():
    exact = ising.exact_enumeration(4, 2.5)["entropy"]
    value, error = ising.entropy_per_spin(4, 2.5, seed=8, points=21, samples=400)
    assert 0 < error < 0.03 and abs(value - exact) < 4 * error + 1e-3, (value, error, exact)
    assert 0 < exact < np.log(2)
