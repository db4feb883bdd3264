"""Binary taggers and their physics baselines: ROC curves, background rejection, bootstrap errors.

A tagger gives each jet a score, larger for signal-like jets. Cutting at the
score that keeps a fraction eps_sig of signal keeps eps_bkg of background; the
background rejection 1 / eps_bkg at eps_sig = 50 % is the standard single number
of jet tagging, and the ROC AUC the threshold-free one.

Baselines (de Oliveira et al. 2016, sec. 5), each fitted on training jets only:

* the best single mass window: for each signal efficiency, the window
  [m_lo, m_hi] holding that fraction of signal with the least background;
* N-subjettiness tau_21 (smaller is more W-like), alone and with the mass
  as a two-dimensional likelihood ratio (histograms of (m, tau_21));
* a Fisher linear discriminant on the flattened images, w = (S_W + S_B + lambda I)^-1 (mu_W - mu_B).
"""
from __future__ import annotations

import numpy as np

WORKING_POINT = 0.5  # signal efficiency of the quoted background rejection


def rejection_at(signal_scores, background_scores, efficiency: float = WORKING_POINT) -> float:
    """1 / eps_bkg at the cut that keeps ``efficiency`` of the signal (inf when no background passes)."""
    threshold = np.quantile(signal_scores, 1.0 - efficiency)
    passed = np.mean(background_scores >= threshold)
    return float(1.0 / passed) if passed > 0 else float("inf")


def auc(signal_scores, background_scores) -> float:
    """P(score of a random signal jet > score of a random background jet), ties counting one half (Mann-Whitney)."""
    scores = np.concatenate([signal_scores, background_scores])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties
    unique, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    n_s, n_b = len(signal_scores), len(background_scores)
    return float((ranks[:n_s].sum() - n_s * (n_s + 1) / 2.0) / (n_s * n_b))


def roc_curve(signal_scores, background_scores, efficiencies=None) -> tuple:
    """(eps_sig, 1 / eps_bkg) on a grid of signal efficiencies."""
    efficiencies = np.linspace(0.05, 0.95, 37) if efficiencies is None else np.asarray(efficiencies)
    return efficiencies, np.array([rejection_at(signal_scores, background_scores, e) for e in efficiencies])


def best_mass_window(signal_mass, background_mass, efficiency: float = WORKING_POINT) -> tuple:
    """(m_lo, m_hi) of the window holding ``efficiency`` of the signal jets with the fewest background jets."""
    signal, background = np.sort(signal_mass), np.sort(background_mass)
    k = max(1, int(round(efficiency * len(signal))))
    low, high = signal[:len(signal) - k + 1], signal[k - 1:]
    inside = np.searchsorted(background, high, "right") - np.searchsorted(background, low, "left")
    best = int(np.argmin(inside))
    return float(low[best]), float(high[best])


class HistogramLikelihoodRatio:
    """Score = p_W(x) / p_QCD(x) from histograms of one or two jet observables, with add-one smoothing.

    By the Neyman-Pearson lemma the likelihood ratio is the best cut on these observables,
    so it is the fair "mass + tau_21" baseline (de Oliveira et al. 2016)."""

    def __init__(self, bins):
        self.bins = [np.asarray(b, float) for b in bins]

    def fit(self, signal: np.ndarray, background: np.ndarray):
        hist = lambda x: np.histogramdd(x, bins=self.bins)[0] + 1.0  # noqa: E731
        self.ratio = (hist(signal) / len(signal)) / (hist(background) / len(background))
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        index = tuple(np.clip(np.searchsorted(b, x[:, i], "right") - 1, 0, len(b) - 2)
                      for i, b in enumerate(self.bins))
        return self.ratio[index]


class FisherDiscriminant:
    """Linear discriminant on flattened images: score = w . x with w = (S_W + S_B + lambda I)^-1 (mu_W - mu_B)."""

    def __init__(self, ridge: float = 1e-3):
        self.ridge = ridge

    def fit(self, signal: np.ndarray, background: np.ndarray):
        s, b = signal.reshape(len(signal), -1).astype(float), background.reshape(len(background), -1).astype(float)
        scatter = np.cov(s, rowvar=False) + np.cov(b, rowvar=False)
        scatter += self.ridge * np.trace(scatter) / len(scatter) * np.eye(len(scatter))
        self.weights = np.linalg.solve(scatter, s.mean(0) - b.mean(0))
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(float) @ self.weights


def bootstrap(statistic, signal_scores: dict, background_scores: dict, resamples: int = 200, seed: int = 0) -> dict:
    """Standard error of ``statistic(signal_scores, background_scores)`` -> dict over jets resampled with replacement.

    Every tagger is scored on the same resampled jets, so errors of ratios between taggers
    account for their correlation."""
    rng = np.random.default_rng(seed)
    n_s, n_b = len(next(iter(signal_scores.values()))), len(next(iter(background_scores.values())))
    draws = []
    for _ in range(resamples):
        i, j = rng.integers(0, n_s, n_s), rng.integers(0, n_b, n_b)
        draws.append(statistic({k: v[i] for k, v in signal_scores.items()},
                               {k: v[j] for k, v in background_scores.items()}))
    keys = draws[0].keys()
    return {k: float(np.std([d[k] for d in draws if np.isfinite(d[k])], ddof=1)) for k in keys}
