"""Each simulator against a closed form or an independent computation."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from training.simulators import collision, copernicus, pendulum, qubit


# ---- damped pendulum -------------------------------------------------------

def test_pendulum_solves_the_damped_oscillator_equation():
    b, kappa = 0.7, 6.5
    t = pendulum.OBSERVATION_TIMES
    x0 = pendulum.position(0.0, b, kappa)
    v0 = (pendulum.position(1e-6, b, kappa) - pendulum.position(-1e-6, b, kappa)) / 2e-6
    ode = solve_ivp(lambda _, y: [y[1], -b * y[1] - kappa * y[0]], (0, 5), [x0, v0], t_eval=t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pendulum.position(t, b, kappa), ode.y[0], atol=1e-6)


def test_pendulum_data_shapes_ranges_and_seed():
    a, b = pendulum.simulate(500, seed=3), pendulum.simulate(500, seed=3)
    np.testing.assert_array_equal(a.observations, b.observations)
    assert a.observations.shape == (500, 50) and a.question.shape == (500, 1) and a.answer.shape == (500, 1)
    assert a.b.min() >= 0.4 and a.b.max() <= 1.2 and a.kappa.min() >= 4 and a.kappa.max() <= 12
    assert a.question.min() >= 0 and a.question.max() <= 10
    np.testing.assert_allclose(a.observations[:, 0], 1.0)  # A0 = 1, delta0 = 0
    np.testing.assert_allclose(a.answer[:, 0], pendulum.position(a.question[:, 0], a.b, a.kappa), atol=1e-6)


def test_pendulum_rejects_overdamped_parameters():
    with pytest.raises(ValueError, match="underdamped"):
        pendulum.position(1.0, b=5.0, kappa=1.0)


# ---- qubits ----------------------------------------------------------------

def test_one_qubit_overlap_matches_bloch_vectors():
    data = qubit.simulate(200, seed=4, n_qubits=1)
    pauli = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]

    def bloch(states):
        return np.stack([np.real(np.einsum("ni,ij,nj->n", states.conj(), p, states)) for p in pauli], axis=1)

    expected = 0.5 * (1 + np.sum(bloch(data.states) * bloch(data.measurement_states), axis=1))
    np.testing.assert_allclose(data.answer[:, 0], expected, atol=1e-6)


@pytest.mark.parametrize("n_qubits", [1, 2])
def test_haar_overlaps_follow_beta_distribution(n_qubits):
    d = 2**n_qubits
    p = qubit.simulate(40_000, seed=5, n_qubits=n_qubits).answer[:, 0]
    assert abs(p.mean() - 1 / d) < 0.01  # Beta(1, d-1) has mean 1/d
    for x in (0.1, 0.3, 0.6):
        assert abs(np.mean(p > x) - (1 - x) ** (d - 1)) < 0.01


def test_qubit_observations_are_probabilities_of_fixed_references():
    a = qubit.simulate(100, seed=6, n_qubits=2)
    assert a.observations.shape == (100, 30) and a.question.shape == (100, 30)
    assert np.all((a.observations >= 0) & (a.observations <= 1 + 1e-6))
    refs = qubit.reference_states(2, seed=0)
    np.testing.assert_allclose(a.observations, qubit.overlaps(a.states, refs), atol=1e-6)


# ---- collision -------------------------------------------------------------

def test_collision_conserves_angular_momentum():
    data = collision.simulate(1000, seed=7, noise=0.0)
    p = data.parameters
    # free particle before the collision, L = x v_y - y v_x on its own trajectory, plus the rotating body's w
    t = np.linspace(0, 1, 5)[None, :] * (-p["x0"] / p["vx"])[:, None]
    x, y = p["x0"][:, None] + p["vx"][:, None] * t, p["y0"][:, None] + p["vy"][:, None] * t
    l_before = x * p["vy"][:, None] - y * p["vx"][:, None] + p["w"][:, None]
    np.testing.assert_allclose(l_before, np.repeat(data.angular_momentum[:, None], 5, axis=1), atol=1e-5)
    # after: the free particle leaves (0, 1) with (vx', vy'); the rotating body's angle gives w'
    w_out = (np.arctan2(data.answer[:, 1], data.answer[:, 0]) - np.pi / 2)
    w_out = np.angle(np.exp(1j * w_out))
    expected = np.angle(np.exp(1j * (data.angular_momentum + p["vx_out"]) * p["t_predict"]))
    np.testing.assert_allclose(w_out, expected, atol=1e-5)
    # both bodies are at (0, 1) at the collision
    t_col = -p["x0"] / p["vx"]
    np.testing.assert_allclose(p["y0"] + p["vy"] * t_col, 1.0, atol=1e-9)
    np.testing.assert_allclose(np.cos(p["alpha0"] + p["w"] * t_col), 0.0, atol=1e-9)


def test_collision_layout():
    data = collision.simulate(50, seed=8)
    assert data.observations.shape == (50, 30) and data.question.shape == (50, 16) and data.answer.shape == (50, 2)
    assert np.all(data.observations[:, 10] == 0) and np.all(data.observations[:, 25] == 0)  # first times are 0


# ---- heliocentric ----------------------------------------------------------

def test_sun_is_opposite_to_earth_and_mars_at_opposition_is_opposite_the_sun():
    phi = np.linspace(0, 2 * np.pi, 7, endpoint=False)
    angles = copernicus.sky_angles(phi, phi)  # Mars at opposition
    np.testing.assert_allclose(np.exp(1j * angles[:, 0]), -np.exp(1j * phi), atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * angles[:, 1]), np.exp(1j * phi), atol=1e-12)


def test_mars_direction_by_law_of_sines():
    rng = np.random.default_rng(9)
    phi_e, phi_m = rng.uniform(0, 2 * np.pi, (2, 100))
    theta = copernicus.sky_angles(phi_e, phi_m)[:, 1]
    # Earth-Mars vector from components, independently of complex arithmetic
    dx = copernicus.MARS_ORBIT_RADIUS_AU * np.cos(phi_m) - np.cos(phi_e)
    dy = copernicus.MARS_ORBIT_RADIUS_AU * np.sin(phi_m) - np.sin(phi_e)
    np.testing.assert_allclose(np.cos(theta), dx / np.hypot(dx, dy), atol=1e-12)
    np.testing.assert_allclose(np.sin(theta), dy / np.hypot(dx, dy), atol=1e-12)


def test_sky_repeats_after_a_synodic_period_up_to_a_rotation():
    s = copernicus.simulate(20, seed=10, steps=2, step_days=copernicus.SYNODIC_PERIOD_DAYS)
    rotation = 2 * np.pi * copernicus.SYNODIC_PERIOD_DAYS / copernicus.EARTH_PERIOD_DAYS
    shifted = copernicus.wrap(s.angles[:, 0, :] + rotation)
    np.testing.assert_allclose(np.exp(1j * shifted), np.exp(1j * s.angles[:, 1, :]), atol=1e-5)


def test_heliocentric_series_layout():
    s = copernicus.simulate(10, seed=11)
    assert s.angles.shape == (10, 50, 2) and s.initial_angles.shape == (10, 2)
    assert np.all(s.angles <= np.pi) and np.all(s.angles > -np.pi)
    np.testing.assert_allclose(s.days, 7 * np.arange(50))
    np.testing.assert_allclose(s.heliocentric[:, -1, 0] - s.heliocentric[:, 0, 0], 2 * np.pi * 343 / 365.26, rtol=1e-5)
