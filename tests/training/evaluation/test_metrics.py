"""Statistical errors of held-out metrics: each agrees with the spread it claims to estimate."""
import numpy as np
import pytest

from training.evaluation import metrics
from training.evaluation.showers import compare_response
from training.recipes.flows import acceptance_error


def test_rms_error_matches_its_spread_over_independent_samples():
    rng = np.random.default_rng(0)
    draws = [metrics.rms_with_error(rng.normal(0, 0.1, (400, 3)), np.zeros((400, 3))) for _ in range(300)]
    values, errors = np.array(draws).T
    assert values.mean() == pytest.approx(0.1, rel=0.01)
    # the spread of 300 measurements is known to ~4% of itself; the delta method is exact to first order
    assert errors.mean() == pytest.approx(values.std(ddof=1), rel=0.15)


def test_binomial_and_bootstrap_errors_of_a_fraction_agree():
    rng = np.random.default_rng(1)
    hits = rng.random(2000) < 0.3
    binomial = metrics.binomial_error(hits.mean(), hits.size)
    bootstrap = metrics.bootstrap_error(lambda rows: hits[rows].mean(), hits.size, resamples=400)
    assert bootstrap == pytest.approx(binomial, rel=0.15)  # 400 resamples: a 3.5% scatter of the estimate
    assert metrics.binomial_error(1.0, 50) == 0.0 and np.isnan(metrics.binomial_error(0.5, 0))


def test_knee_survives_a_zero_error():
    assert metrics.knee({0: 0.3, 1: 0.1, 2: 0.0}) == 2


def test_ratio_error_propagates_both_relative_errors():
    assert metrics.ratio_error((2.0, 0.02), (1.0, 0.01)) == pytest.approx(2.0 * np.hypot(0.01, 0.01))
    assert np.isnan(metrics.ratio_error((0.0, 0.1), (1.0, 0.1)))


def test_acceptance_error_grows_with_correlated_accept_steps():
    rng = np.random.default_rng(2)
    n = 20_000
    independent = np.where(rng.random(n) < 0.5, np.arange(n), 0)  # accept with probability 1/2, step by step
    independent = np.maximum.accumulate(independent)
    assert acceptance_error(independent) == pytest.approx(np.sqrt(0.25 / n), rel=0.2)
    runs = np.repeat(rng.random(n // 50) < 0.5, 50)  # accepts and rejects in runs of 50
    sticky = np.maximum.accumulate(np.where(np.concatenate([[True], runs[1:]]), np.arange(n), 0))
    assert acceptance_error(sticky) > 3 * acceptance_error(independent)


def test_worst_response_deviation_carries_its_bins_error():
    edges = np.array([1.0, 10.0, 100.0])
    reference = {"edges": edges, "mean": np.array([1.0, 1.0]), "mean_error": np.array([0.01, 0.01]),
                 "resolution": np.array([0.1, 0.1]), "resolution_error": np.array([0.001, 0.001])}
    generated = {"edges": edges, "mean": np.array([1.01, 1.05]), "mean_error": np.array([0.01, 0.03]),
                 "resolution": np.array([0.1, 0.1]), "resolution_error": np.array([0.001, 0.001])}
    response = compare_response(reference, generated)
    assert response["worst_mean_deviation"] == pytest.approx(0.05)
    assert response["worst_mean_deviation_error"] == pytest.approx(response["mean_ratio_error"][1])
