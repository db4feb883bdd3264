"""Kepler orbits and Lorentz transformations: conservation, closed forms, pairs."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from training.simulators import lorentz, orbits


# ---- Kepler ----------------------------------------------------------------

@pytest.mark.parametrize("conserved", orbits.CONSERVED)
@pytest.mark.parametrize("negatives", orbits.NEGATIVES)
def test_positive_pairs_share_energy_and_angular_momentum(conserved, negatives):
    data = orbits.simulate(4000, seed=5, conserved=conserved, negatives=negatives)
    same = data.label == 1
    assert same.sum() == 2000
    for name in ("angular_momentum", "energy"):
        a, b = data.invariants_first[name][same], data.invariants_second[name][same]
        np.testing.assert_allclose(b, a, rtol=1e-6)
    decides = data.invariants_first[data.invariant], data.invariants_second[data.invariant]
    assert np.all(np.abs(decides[0][~same] - decides[1][~same]) > 0)


def test_invariants_recomputed_from_the_float32_points_agree():
    data = orbits.simulate(2000, seed=6)
    np.testing.assert_allclose(orbits.angular_momentum(data.first), data.invariants_first["angular_momentum"], atol=1e-5)
    np.testing.assert_allclose(orbits.energy(data.second), data.invariants_second["energy"], atol=1e-5)


def test_data_sets_fix_the_other_quantity_and_stay_in_range():
    at_fixed_energy = orbits.simulate(2000, seed=7, conserved="angular_momentum")
    np.testing.assert_allclose(at_fixed_energy.invariants_first["energy"], -0.5, rtol=1e-6)
    l = np.abs(at_fixed_energy.invariants_first["angular_momentum"])
    assert l.min() >= 0.4 - 1e-9 and l.max() <= 1 + 1e-9
    assert (at_fixed_energy.invariants_first["angular_momentum"] < 0).mean() == pytest.approx(0.5, abs=0.05)
    at_fixed_l = orbits.simulate(2000, seed=7, conserved="energy")
    np.testing.assert_allclose(at_fixed_l.invariants_second["angular_momentum"], 1.0, rtol=1e-6)
    e = at_fixed_l.invariants_first["energy"]
    assert e.min() >= -0.5 - 1e-9 and e.max() <= -0.2 + 1e-9


def test_exact_orbit_agrees_with_numerical_integration():
    a, e, omega, sense = 1.3, 0.6, 0.7, -1.0
    mean_motion = a**-1.5
    times = np.linspace(0, 5, 11)
    exact = orbits.state_on_orbit(np.full(11, a), np.full(11, e), np.full(11, omega), np.full(11, sense), 0.4 + mean_motion * times)

    def rhs(_, s):
        r3 = np.hypot(s[0], s[1]) ** 3
        return [s[2], s[3], -s[0] / r3, -s[1] / r3]

    ode = solve_ivp(rhs, (0, 5), exact[0], t_eval=times, rtol=1e-11, atol=1e-12, method="DOP853")
    np.testing.assert_allclose(ode.y.T, exact, atol=1e-7)
    assert orbits.angular_momentum(exact[0]) == pytest.approx(sense * np.sqrt(a * (1 - e**2)), rel=1e-12)
    assert orbits.energy(exact[0]) == pytest.approx(-1 / (2 * a), rel=1e-12)


def test_kepler_equation_is_solved_to_rounding():
    m = np.linspace(0, 2 * np.pi, 1001)
    for e in (0.0, 0.5, 0.95):
        ea = orbits.solve_kepler(m, e)
        np.testing.assert_allclose(ea - e * np.sin(ea), np.mod(m, 2 * np.pi), atol=1e-12)
    with pytest.raises(ValueError, match="Bound orbits"):
        orbits.solve_kepler(m, 1.0)


def test_negatives_share_the_pericentre_direction_by_default():
    data = orbits.simulate(2000, seed=8)

    def runge_lenz_angle(s):
        s = np.asarray(s, float)
        l = orbits.angular_momentum(s)
        r = np.hypot(s[:, 0], s[:, 1])
        ax, ay = s[:, 3] * l - s[:, 0] / r, -s[:, 2] * l - s[:, 1] / r
        return np.arctan2(ay, ax)

    diff = np.angle(np.exp(1j * (runge_lenz_angle(data.first) - runge_lenz_angle(data.second))))
    assert np.max(np.abs(diff)) < 1e-3
    independent = orbits.simulate(2000, seed=8, orientation="independent")
    diff = np.angle(np.exp(1j * (runge_lenz_angle(independent.first) - runge_lenz_angle(independent.second))))
    assert np.max(np.abs(diff[independent.label == 0])) > 1.0


def test_kepler_seeds_and_bad_options():
    a, b = orbits.simulate(100, seed=3), orbits.simulate(100, seed=3)
    np.testing.assert_array_equal(a.first, b.first)
    np.testing.assert_array_equal(a.second, b.second)
    assert not np.array_equal(a.first, orbits.simulate(100, seed=4).first)
    with pytest.raises(ValueError, match="conserved"):
        orbits.simulate(10, 0, conserved="momentum")
    with pytest.raises(ValueError, match="negatives"):
        orbits.simulate(10, 0, negatives="shuffle")


# ---- Lorentz ---------------------------------------------------------------

def test_transformations_preserve_the_metric():
    rng = np.random.default_rng(0)
    lam = lorentz.lorentz_matrices(*lorentz.random_transformations(rng, 200, 1.5))
    np.testing.assert_allclose(np.einsum("nai,ab,nbj->nij", lam, lorentz.METRIC, lam), np.broadcast_to(lorentz.METRIC, lam.shape), atol=1e-12)
    rot = lorentz.random_rotations(rng, 200)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_boost_moves_the_origin_with_the_frame():
    # the frame moves with velocity beta along x: a clock at rest at x = 0 moves with -beta in the new frame
    lam = lorentz.boost_matrices(np.array([0.5]), np.array([[1.0, 0.0, 0.0]]))[0]
    beta = np.tanh(0.5)
    t_new, x_new = (lam @ np.array([1.0, 0.0, 0.0, 0.0]))[:2]
    assert x_new / t_new == pytest.approx(-beta, rel=1e-12)


def test_event_pairs_keep_the_interval():
    data = lorentz.simulate(4000, seed=5, kind="events")
    same = data.label == 1
    s1, s2 = data.invariants_first["interval"], data.invariants_second["interval"]
    np.testing.assert_allclose(s2[same], s1[same], rtol=1e-6, atol=1e-12)
    assert np.median(np.abs(s1[~same] - s2[~same])) > 0.1
    np.testing.assert_allclose(lorentz.interval(data.second), s2, atol=1e-5)


@pytest.mark.parametrize("fixed", [None, 0.5, -0.3])
def test_field_pairs_keep_both_invariants(fixed):
    data = lorentz.simulate(4000, seed=6, kind="fields", e2_minus_b2_value=fixed)
    same = data.label == 1
    for name in ("e_dot_b", "e2_minus_b2"):
        a, b = data.invariants_first[name], data.invariants_second[name]
        np.testing.assert_allclose(b[same], a[same], rtol=1e-6, atol=1e-12)
    if fixed is not None:
        np.testing.assert_allclose(data.invariants_first["e2_minus_b2"], fixed, atol=1e-12)


def test_field_transformation_equals_the_field_tensor_transformation():
    rng = np.random.default_rng(1)
    fields = rng.uniform(-1, 1, (50, 6))
    eta, direction, rotation = lorentz.random_transformations(rng, 50, 1.2)
    lam = lorentz.lorentz_matrices(eta, direction, rotation)

    def tensor(f):  # F^{mu nu} = d^mu A^nu - d^nu A^mu, metric (-, +, +, +): F^{0i} = E_i, F^{ij} = eps_ijk B_k
        e, b = f[:, :3], f[:, 3:]
        out = np.zeros((len(f), 4, 4))
        out[:, 0, 1:], out[:, 1:, 0] = e, -e
        out[:, 1, 2], out[:, 2, 3], out[:, 3, 1] = b[:, 2], b[:, 0], b[:, 1]
        out[:, 2, 1], out[:, 3, 2], out[:, 1, 3] = -b[:, 2], -b[:, 0], -b[:, 1]
        return out

    expected = np.einsum("nai,nbj,nij->nab", lam, lam, tensor(fields))
    np.testing.assert_allclose(tensor(lorentz.transform_fields(fields, eta, direction, rotation)), expected, atol=1e-12)


def test_lorentz_seeds_and_bad_options():
    np.testing.assert_array_equal(lorentz.simulate(50, 2).second, lorentz.simulate(50, 2).second)
    with pytest.raises(ValueError, match="kind"):
        lorentz.simulate(10, 0, kind="photons")
    with pytest.raises(ValueError, match="fields only"):
        lorentz.simulate(10, 0, kind="events", e2_minus_b2_value=0.5)
