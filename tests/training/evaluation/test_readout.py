"""The polynomial read-out: features, lasso, planted formulas, rank correlation."""
import numpy as np
import pytest
from scipy import stats

from training.evaluation import readout


def test_term_names_and_values():
    x = np.array([[2.0, 3.0], [1.0, -1.0]])
    features, names = readout.polynomial_terms(x, ("a", "b"), degree=2, inverse_radius=(0, 1))
    assert names == ["a", "b", "a^2", "a*b", "b^2", "1/r", "1/r^2"]
    np.testing.assert_allclose(features[0], [2, 3, 4, 6, 9, 1 / np.sqrt(13), 1 / 13])
    with pytest.raises(ValueError, match="r = 0"):
        readout.polynomial_terms(np.zeros((1, 2)), ("a", "b"), 2, inverse_radius=(0, 1))
    with pytest.raises(ValueError, match="expected"):
        readout.polynomial_terms(x, ("a",), 2)


def test_lasso_on_an_orthonormal_design_is_soft_thresholding():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(400, 5)))
    x = q * np.sqrt(400)  # columns with x_j . x_j / n = 1, orthogonal
    coef_true = np.array([2.0, -1.0, 0.3, 0.0, 0.05])
    t = x @ coef_true
    coef = readout.lasso(x, t, alpha=0.1)
    np.testing.assert_allclose(coef, np.sign(coef_true) * np.maximum(np.abs(coef_true) - 0.1, 0), atol=1e-8)


def test_planted_polynomial_is_recovered_exactly():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (3000, 4))
    target = 3.0 * x[:, 0] * x[:, 3] - 2.0 * x[:, 1] ** 2 + 0.5
    fit = readout.fit_sparse_polynomial(x, target, ("a", "b", "c", "d"), degree=3)
    assert fit.terms == ["a*d", "b^2"]
    np.testing.assert_allclose(fit.coefficients, [1.0, -2.0 / 3.0], atol=1e-10)
    assert fit.intercept == pytest.approx(0.5 / 3.0, abs=1e-10)
    assert fit.scale == pytest.approx(3.0)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.formula == "a*d - 0.667 b^2"
    assert fit.r2_against(x, target) == pytest.approx(1.0, abs=1e-12)


def test_a_monotonic_function_of_an_invariant_is_linearised():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 1.5, (4000, 4))
    invariant = x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2]
    embedding = np.tanh(1.5 * invariant) + 0.3 * invariant**3
    fit = readout.polynomial_readout(x, embedding, ("x", "y", "v_x", "v_y"), degree=2)
    assert sorted(fit.dominant_terms()) == ["x*v_y", "y*v_x"]
    assert fit.r2_against(x, invariant) > 0.9999
    assert fit.canonical_correlation > 0.995  # a cubic in z undoes tanh only approximately


def test_inverse_radius_terms_recover_the_kepler_energy():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.3, 1.5, (3000, 4)) * rng.choice([-1, 1], (3000, 4))
    energy = 0.5 * (x[:, 2] ** 2 + x[:, 3] ** 2) - 1 / np.hypot(x[:, 0], x[:, 1])
    fit = readout.polynomial_readout(x, np.exp(energy), ("x", "y", "v_x", "v_y"), degree=2, inverse_radius=(0, 1))
    assert sorted(fit.dominant_terms()) == ["1/r", "v_x^2", "v_y^2"]
    coefficients = dict(zip(fit.terms, fit.coefficients))
    assert coefficients["v_x^2"] == pytest.approx(-0.5, abs=0.05)
    assert fit.r2_against(x, energy) > 0.999


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 20, 300).astype(float)
    b = a + rng.normal(size=300) * 5
    assert readout.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert readout.spearman(a, -np.exp(a)) == pytest.approx(-1.0)
    np.testing.assert_array_equal(readout.ranks([3.0, 1.0, 3.0, 2.0]), [2.5, 0.0, 2.5, 1.0])


def test_symbolic_backend_is_optional():
    try:
        import pysr  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pysr"):
            readout.symbolic_readout(np.zeros((3, 1)), np.zeros(3), ("a",))
    else:
        pytest.skip("pysr is installed; the symbolic backend is exercised by its own runs")
