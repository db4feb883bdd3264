"""ROC metrics and the physics baselines of the jet taggers, against brute force and hand-made samples."""
import numpy as np
import pytest

from training.evaluation import taggers


def test_auc_is_the_probability_that_signal_outscores_background_with_ties_half():
    rng = np.random.default_rng(0)
    s, b = rng.integers(0, 5, 60).astype(float), rng.integers(0, 4, 50).astype(float)
    brute = np.mean((s[:, None] > b[None, :]) + 0.5 * (s[:, None] == b[None, :]))
    assert taggers.auc(s, b) == pytest.approx(brute, abs=1e-12)


def test_rejection_at_half_signal_efficiency():
    s = np.arange(100.0)          # the cut keeps s >= 49.5: half the signal
    b = np.arange(100.0) - 40.0   # 50 ... 59 reach it: 10 of 100 background jets, 1/eps_bkg = 10
    assert taggers.rejection_at(s, b) == pytest.approx(10.0)
    assert taggers.rejection_at(s, b - 1000) == float("inf")


def test_best_mass_window_holds_half_the_signal_with_least_background():
    signal = np.linspace(70, 90, 101)              # uniform W peak
    background = np.concatenate([np.linspace(0, 79, 400), np.linspace(79, 200, 20)])  # falls steeply above 79
    low, high = taggers.best_mass_window(signal, background)
    assert np.mean((signal >= low) & (signal <= high)) == pytest.approx(0.5, abs=0.01)
    assert low >= 79.0, "the window slides up to where the background is thin"


def test_likelihood_ratio_and_fisher_separate_what_differs():
    rng = np.random.default_rng(1)
    signal, background = rng.normal(1.0, 0.3, (500, 2)), rng.normal(0.0, 0.3, (500, 2))
    bins = [np.linspace(-2, 3, 11)] * 2
    ratio = taggers.HistogramLikelihoodRatio(bins).fit(signal, background)
    assert taggers.auc(ratio.score(signal), ratio.score(background)) > 0.95
    fisher = taggers.FisherDiscriminant().fit(signal, background)
    assert taggers.auc(fisher.score(signal), fisher.score(background)) > 0.95
    assert np.allclose(fisher.weights[0], fisher.weights[1], rtol=0.3), "equal separation on both axes"


def test_bootstrap_error_shrinks_as_one_over_root_n():
    rng = np.random.default_rng(2)
    statistic = lambda s, b: {"auc": taggers.auc(s["x"], b["x"])}  # noqa: E731
    errors = [taggers.bootstrap(statistic, {"x": rng.normal(1, 1, n)}, {"x": rng.normal(0, 1, n)}, 100)["auc"]
              for n in (200, 3200)]
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.35)
