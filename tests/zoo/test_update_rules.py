"""The basis-change fit behind the distiller's comparison with the Schroedinger equation."""
import numpy as np
import pytest

from training.simulators import schrodinger
from zoo.models import update_rules


@pytest.mark.parametrize("rule", [update_rules.euler_rule, update_rules.density_rule])
def test_a_planted_basis_change_is_found(rule):
    a0, b0 = rule(0.1)
    rng = np.random.default_rng(3)
    p = rng.normal(size=a0.shape) + 2 * np.eye(len(a0))
    inverse = np.linalg.inv(p)
    fit = update_rules.basis_change_fit(inverse @ a0 @ p, inverse @ b0 @ p, a0, b0)
    assert fit["residual"] < 1e-8
    np.testing.assert_allclose(fit["A_in_reference_basis"], a0, atol=1e-8)
    np.testing.assert_allclose(fit["B_in_reference_basis"], b0, atol=1e-8)


def test_a_different_rule_leaves_a_residual():
    a0, b0 = update_rules.euler_rule(0.1)
    # the same A but B acting on psi' instead of psi: eigenvalues of A + V B differ, so no basis change fits
    fit = update_rules.basis_change_fit(a0, np.array([[0.0, 0.0], [0.0, 0.1]]), a0, b0)
    assert fit["residual"] > 0.1


def test_exact_transfer_matrices_match_the_solver():
    v = np.array([-20.0, -3.0, -0.2, 0.0, 0.5])
    matrices = update_rules.constant_potential_transfer(v, 0.1)
    potentials = np.repeat(v[:, None], 2, axis=1)
    for column, (psi0, dpsi0) in enumerate(((1.0, 0.0), (0.0, 1.0))):
        psi, dpsi = schrodinger.solve(potentials, a=0.1, psi0=psi0, dpsi0=dpsi0)
        # a constant potential is solved exactly by the Magnus steps (to rounding)
        np.testing.assert_allclose(matrices[:, :, column], np.stack([psi[:, 1], dpsi[:, 1]], -1), atol=1e-12)


def test_the_exact_rule_tends_to_euler_as_the_spacing_shrinks():
    residuals = []
    for a in (0.1, 0.05, 0.025):
        exact, euler = update_rules.exact_rule(a, (-10.0, -0.5)), update_rules.euler_rule(a)
        residuals.append(update_rules.basis_change_fit(*exact, *euler)["residual"])
    # the difference is O(a^2 V) on a step of size O(a): the relative residual halves with a
    assert residuals[0] > residuals[1] > residuals[2]
    np.testing.assert_allclose(residuals[0] / residuals[1], 2.0, rtol=0.15)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="k x k"):
        update_rules.basis_change_fit(np.eye(2), np.eye(3), np.eye(2), np.eye(2))


def test_exact_fit_recovers_a_planted_basis_where_the_rule_is_affine():
    """Over a narrow range of V the exact transfer matrices are affine in V to O(range^2), so their affine fit,
    seen in a random basis, is matched by one P at every V."""
    v = np.linspace(-1.0, -0.9, 11)
    a0, b0 = update_rules.exact_rule(0.1, (-1.0, -0.9), potential_factor=4.0)
    p = np.array([[2.0, 0.5], [-0.3, 1.0]])
    inverse = np.linalg.inv(p)
    fit = update_rules.exact_basis_change_fit(inverse @ a0 @ p, inverse @ b0 @ p, 0.1, v, potential_factor=4.0)
    assert fit["residual"] < 1e-4
    other = update_rules.exact_basis_change_fit(inverse @ a0 @ p, inverse @ b0 @ p, 0.1, v, potential_factor=1.0)
    assert other["residual"] > 0.3  # half the wave number: no basis change makes up for it


def test_the_distillers_update_rule_in_the_cards_bases():
    """update_rule(basis) is what the card's table shows: the learned pair in the basis closest to each
    reference, and the residual the card reports."""
    import zoo
    from zoo.artifacts import read_metadata

    model = zoo.load("distiller-schrodinger-k2")
    metrics = read_metadata(zoo.preset_folder("distiller-schrodinger-k2"))["metrics"]
    for basis, key in (("psi", "euler"), ("density_pair", "density_euler")):
        rule = model.update_rule(basis)
        assert rule["residual"] == pytest.approx(metrics[f"basis_change_residual/{key}"], rel=1e-6)
        p = rule["P"]
        a, b = model.update_matrices()
        np.testing.assert_allclose(rule["A"], p @ a @ np.linalg.inv(p), atol=1e-9)
        np.testing.assert_allclose(rule["B"], p @ b @ np.linalg.inv(p), atol=1e-9)
    learned = model.update_rule("learned")
    np.testing.assert_array_equal(learned["A"], np.asarray(model.update_matrices()[0], np.float64))
    with pytest.raises(ValueError, match=r"basis must be one of \['density_pair', 'learned', 'psi'\] for 2 latent "
                                         r"numbers; received 'density'"):
        model.update_rule("density")
