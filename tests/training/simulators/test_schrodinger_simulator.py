"""Zero-energy Schroedinger data: the solver against closed forms (free particle, infinite well,
harmonic oscillator), its order and default accuracy, the Euler rule written out and its first
order, seeded potential classes in their documented ranges, bounded densities, input errors."""
import itertools
import math

import numpy as np
import pytest

from training.simulators import schrodinger as sch

# ----------------------------------------------------------------------------- closed forms

def test_infinite_well_eigenfunctions_are_sines_that_vanish_at_the_far_wall():
    # V = 0 on [0, L], psi(0) = 0, psi'(0) = 1: psi = sin(k x) / k with k^2 = E_n = (n pi / L)^2, so psi(L) = 0.
    L, a = 3.0, 0.1
    x = sch.grid(31, a)
    E = (np.arange(1, 4) * np.pi / L) ** 2
    k = np.sqrt(E)[:, None]
    psi, dpsi = sch.solve(np.zeros((3, x.size)), a, psi0=0.0, dpsi0=1.0, energy=E)
    # A constant potential makes every Magnus step exact: only rounding (~1e-15 per step) is left.
    np.testing.assert_allclose(psi, np.sin(k * x) / k, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dpsi, np.cos(k * x), rtol=0, atol=1e-12)
    assert np.abs(psi[:, -1]).max() < 1e-12


@pytest.mark.parametrize("V0, exact", [(-4.0, np.cos), (4.0, np.cosh)])
def test_constant_potentials_give_cos_in_a_well_and_cosh_under_a_barrier(V0, exact):
    x = sch.grid(31)
    psi, _ = sch.solve(np.full((1, x.size), V0))
    np.testing.assert_allclose(psi[0], exact(2.0 * x), rtol=1e-12)


def _oscillator(n, x):
    """Eigenfunction H_n(x) exp(-x^2 / 2) (n = 0, 1) of -psi'' + x^2 psi = (2n + 1) psi, and its derivative."""
    gauss = np.exp(-x ** 2 / 2)
    if n == 0:
        return gauss, -x * gauss
    return 2 * x * gauss, (2 - 2 * x ** 2) * gauss


def _oscillator_error(n, a, energy_shift):
    """max |psi - exact| / max |exact| on [-5, 1.5], started from the exact values at x = -5."""
    x = sch.grid(round(6.5 / a) + 1, a, x0=-5.0)
    exact, slope = _oscillator(n, x)
    psi, _ = sch.solve((x ** 2)[None], a, psi0=exact[0], dpsi0=slope[0], energy=2 * n + 1 + energy_shift)
    return np.abs(psi[0] - exact).max() / np.abs(exact).max()


@pytest.mark.parametrize("n", [0, 1])
def test_harmonic_oscillator_eigenfunctions_once_the_interpolation_shift_is_taken_out(n):
    # The chord of x^2 lies above it by (x - x_i)(x_{i+1} - x), on average a^2 / 6: an energy shift.
    # Solving at E + a^2 / 6 leaves the zero-mean part, an O(a^4) error (measured 2.85e-7 at a = 0.1,
    # 1.8e-8 at a = 0.05); without it the error is O(a^2) (4.2e-3 and 1.05e-3 for n = 0).
    a = sch.GRID_SPACING
    assert _oscillator_error(n, a, a * a / 6) < 1e-6
    assert _oscillator_error(n, a / 2, a * a / 24) < 1e-7
    ratio = _oscillator_error(n, a, 0.0) / _oscillator_error(n, a / 2, 0.0)
    assert 3.8 < ratio < 4.2


# ----------------------------------------------------------------------------- order and accuracy

def test_the_solver_is_fourth_order_in_the_substep():
    V = sch.random_potentials("rough", 8, 300, seed=11)  # steep slopes: the largest error constant
    reference = sch.solve(V, substeps=64)[0]
    errors = [np.abs(sch.solve(V, substeps=m)[0] - reference).max() for m in (2, 4, 8)]
    # Asymptotic ratio 2^4 = 16 (measured 16.0); the reference's own error is 4^4 = 256x below the m = 8 one.
    for coarse, fine in itertools.pairwise(errors):
        assert 14.0 < coarse / fine < 18.0


@pytest.mark.parametrize("kind", sch.POTENTIAL_CLASSES)
def test_default_substeps_are_accurate_to_1e6_over_2000_sites(kind):
    V = sch.random_potentials(kind, 12, 2000, seed=12)
    psi = sch.solve(V)[0]
    reference = sch.solve(V, substeps=64)[0]  # 256x more accurate than the default
    relative = np.abs(psi - reference).max(axis=1) / np.abs(reference).max(axis=1)
    assert relative.max() < 1e-6  # measured worst rows: 7e-11, 9e-9, 1e-7


def test_the_wronskian_of_two_solutions_stays_one():
    # Every Magnus step has determinant C^2 - S^2 w^2 = 1, so W = psi_1 psi_2' - psi_1' psi_2 = 1 to rounding.
    V = sch.random_potentials("smooth-deep", 10, 2000, seed=13)
    p1, d1 = sch.solve(V)
    p2, d2 = sch.solve(V, psi0=0.0, dpsi0=1.0)
    np.testing.assert_allclose(p1 * d2 - d1 * p2, 1.0, rtol=0, atol=1e-11)


# ----------------------------------------------------------------------------- the Euler rule

def test_euler_transfer_is_the_distilled_matrix_rule():
    a, V, E = 0.3, np.array([[-2.0, 1.5, -0.5, 4.0]]), 0.7
    g = np.array([1.2, -0.4])
    expected = [g]
    for Vi in V[0, :-1]:
        g = np.array([[1.0, a], [a * (Vi - E), 1.0]]) @ g
        expected.append(g)
    psi, dpsi = sch.euler_transfer(V, a, psi0=1.2, dpsi0=-0.4, energy=E)
    np.testing.assert_allclose(np.stack([psi[0], dpsi[0]], axis=1), np.array(expected), rtol=1e-14)


def test_euler_rule_is_first_order_in_the_grid_spacing():
    def euler_error(a):
        x = sch.grid(round(2.0 / a) + 1, a)
        V = (-2.0 - np.cos(x))[None]
        return np.abs(sch.euler_transfer(V, a)[0] - sch.solve(V, a)[0]).max()

    # Global error c a + O(a^2): halving a halves it (measured 0.0570 -> 0.0281, ratio 2.03).
    assert 0.01 < euler_error(0.02) < 0.1
    assert 1.9 < euler_error(0.02) / euler_error(0.01) < 2.1


# ----------------------------------------------------------------------------- potentials

@pytest.mark.parametrize("kind", sch.POTENTIAL_CLASSES)
def test_potentials_are_seeded_and_stay_in_their_class_range(kind):
    V = sch.random_potentials(kind, 300, 500, seed=3)
    assert V.shape == (300, 500) and V.dtype == np.float64
    np.testing.assert_array_equal(V, sch.random_potentials(kind, 300, 500, seed=3))
    assert not np.array_equal(V, sch.random_potentials(kind, 300, 500, seed=4))
    low, high = sch.potential_range(kind)
    assert low <= V.min() and V.max() <= high < 0
    assert V.min() < low + 0.25 * (high - low) and V.max() > high - 0.25 * (high - low)  # the range is used
    longer = sch.random_potentials(kind, 300, 800, seed=3)
    np.testing.assert_array_equal(longer[:, :500], V)  # a longer draw extends a shorter one


def test_class_ranges_follow_from_the_parameters():
    assert sch.potential_range("smooth-shallow") == (-4.5, -0.25)
    assert sch.potential_range("smooth-deep") == (-30.0, -2.5)
    assert sch.potential_range("rough") == pytest.approx((-10 - 0.5 * math.sqrt(10), -0.5))


def test_rough_potentials_are_constant_on_blocks_of_one_to_three_sites():
    V = sch.random_potentials("rough", 60, 300, seed=5)
    changes = np.diff(V, axis=1) != 0
    blocks = []
    for row in changes:
        steps = np.flatnonzero(row) + 1  # indices where a new block starts
        block = np.gcd.reduce(steps)
        assert block in (1, 2, 3) and np.all(np.diff(np.concatenate([[0], steps])) == block)
        blocks.append(block)
    assert set(blocks) == {1, 2, 3}


@pytest.mark.parametrize("kind", sch.POTENTIAL_CLASSES)
def test_densities_start_at_one_and_stay_below_the_documented_bound_over_2000_sites(kind):
    rho = sch.densities(sch.random_potentials(kind, 100, 2000, seed=21))
    assert np.all(np.isfinite(rho)) and rho.min() >= 0
    np.testing.assert_array_equal(rho[:, 0], 1.0)
    assert rho.max() < sch.DENSITY_BOUND


def test_dataset_is_float32_and_the_densities_belong_to_the_rounded_potentials():
    potentials, rho = sch.dataset("smooth-deep", 5, 200, seed=7)
    assert potentials.dtype == rho.dtype == np.float32 and potentials.shape == rho.shape == (5, 200)
    np.testing.assert_allclose(rho, sch.densities(potentials.astype(np.float64)), rtol=1e-6, atol=1e-7)


def test_mixed_dataset_has_equal_shuffled_shares_within_each_class_range():
    potentials, rho, labels = sch.mixed_dataset(31, 100, seed=8)
    assert potentials.shape == rho.shape == (31, 100) and labels.shape == (31,)
    assert sorted(np.bincount(labels, minlength=3)) == [10, 10, 11]
    assert not np.all(np.diff(labels) >= 0)  # shuffled
    for label, kind in enumerate(sch.POTENTIAL_CLASSES):
        low, high = sch.potential_range(kind)
        rows = potentials[labels == label]
        assert rows.min() >= np.float32(low) and rows.max() <= np.float32(high)
    again = sch.mixed_dataset(31, 100, seed=8)
    for first, second in zip((potentials, rho, labels), again):
        np.testing.assert_array_equal(first, second)


# ----------------------------------------------------------------------------- input errors

@pytest.mark.parametrize("potentials, message", [
    (np.zeros(10), r"shape \(n, N\).*received shape \(10,\)"),
    (np.zeros((2, 3, 4)), r"shape \(n, N\).*received shape \(2, 3, 4\)"),
    (np.zeros((0, 5)), r"shape \(n, N\)"),
    (np.array([[0.0, np.nan, 1.0]]), r"1 non-finite"),
    (np.array([[0.0, np.inf, -np.inf]]), r"2 non-finite"),
    (np.zeros((2, 3), dtype=bool), r"real numbers.*bool"),
    (np.zeros((2, 3), dtype=complex), r"real numbers.*complex"),
])
def test_bad_potentials_are_refused(potentials, message):
    for function in (sch.solve, sch.densities, sch.euler_transfer):
        with pytest.raises(ValueError, match=message):
            function(potentials)


@pytest.mark.parametrize("a", [0.0, -0.1, float("nan"), "wide"])
def test_the_grid_spacing_must_be_positive(a):
    for function in (sch.solve, sch.euler_transfer):
        with pytest.raises(ValueError, match=r"a must be a"):
            function(np.zeros((1, 5)), a=a)


def test_other_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"Unknown potential class 'smoth'.*smooth-shallow, smooth-deep, rough"):
        sch.random_potentials("smoth", 2, 10, seed=0)
    with pytest.raises(ValueError, match=r"n must be a positive integer, received 0"):
        sch.random_potentials("rough", 0, 10, seed=0)
    with pytest.raises(ValueError, match=r"length must be a positive integer, received 2.5"):
        sch.dataset("rough", 2, 2.5, seed=0)
    with pytest.raises(ValueError, match=r"substeps must be a positive integer, received 0"):
        sch.solve(np.zeros((1, 5)), substeps=0)
    with pytest.raises(ValueError, match=r"energy must be a number or an array of shape \(2,\).*\(3,\)"):
        sch.solve(np.zeros((2, 5)), energy=np.ones(3))
    with pytest.raises(ValueError, match=r"psi0 holds 1 non-finite"):
        sch.solve(np.zeros((2, 5)), psi0=np.array([1.0, np.nan]))
