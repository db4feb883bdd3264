"""Generic metrics: errors, coefficients of determination, polynomial fits."""
from __future__ import annotations

import itertools
import math

import numpy as np


def rms(prediction, target) -> float:
    """Root-mean-square error over every entry."""
    diff = np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def wrapped_difference(prediction, target) -> np.ndarray:
    """Angle differences wrapped to (-pi, pi], so that pi and -pi count as equal."""
    return np.angle(np.exp(1j * (np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float))))


def wrapped_rms(prediction, target) -> float:
    """RMS of angle differences wrapped to (-pi, pi]."""
    return float(np.sqrt(np.mean(wrapped_difference(prediction, target) ** 2)))


def r2_score(target, fitted) -> float:
    """1 - SS_res / SS_tot."""
    target, fitted = np.asarray(target, dtype=float), np.asarray(fitted, dtype=float)
    ss_tot = np.sum((target - target.mean()) ** 2)
    return float(1.0 - np.sum((target - fitted) ** 2) / ss_tot) if ss_tot > 0 else 0.0


def polynomial_features(x, degree: int) -> np.ndarray:
    """All monomials of the columns of ``x`` up to ``degree``, the constant included."""
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    columns = [np.ones(len(x))]
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(x.shape[1]), d):
            columns.append(np.prod(x[:, combo], axis=1))
    return np.stack(columns, axis=1)


def polynomial_fit_r2(features, target, degree: int = 1) -> float:
    """R^2 of the least-squares polynomial of ``degree`` in ``features`` that best explains ``target``."""
    design = polynomial_features(features, degree)
    coef, *_ = np.linalg.lstsq(design, np.asarray(target, dtype=float), rcond=None)
    return r2_score(target, design @ coef)


def knee(errors: dict) -> int:
    """The elbow of an error-versus-size scan: the size k where err(k-1) / err(k) is largest.

    Adding the k-th latent gives the biggest relative improvement there: below
    it a parameter the answer needs is missing, above it extra latents only
    polish the fit.
    """
    sizes = sorted(errors)
    return max(sizes[1:], key=lambda k: errors[k - 1] / max(errors[k], 1e-12))


def floor_ratio(errors: dict, size: int) -> float:
    """err(size) / min over the scan: 1 means the error at ``size`` is already the floor."""
    return errors[size] / min(errors.values())


# ---------------------------------------------------------------------------- statistical errors of held-out metrics
#
# A metric measured on N independent held-out samples fluctuates from one sample to the next; these give that
# spread (its standard error), reported as METRIC_error so that ``zoo evaluate`` can tell a miss from noise.

BOOTSTRAP_RESAMPLES = 30  # enough for a standard error to about 13% of itself


def is_error_of_another(name: str, metrics: dict) -> bool:
    """``name`` is the statistical error of another metric (``X_error`` beside ``X``), not a relative error."""
    return name.endswith("_error") and name[: -len("_error")] in metrics


def rms_with_error(prediction, target) -> tuple:
    """RMS error over every entry and its standard error over the rows (the independent samples).

    The rows' mean squared errors s_i are independent, so mean(s) has error std(s) / sqrt(N), and
    rms = sqrt(mean(s)) has error std(s) / (2 rms sqrt(N)) to first order.
    """
    diff = np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float)
    per_row = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
    value = float(np.sqrt(per_row.mean()))
    error = float(per_row.std(ddof=1) / np.sqrt(len(per_row)) / (2 * value)) if len(per_row) > 1 and value > 0 else 0.0
    return value, error


def ratio_error(numerator: tuple, denominator: tuple) -> float:
    """Standard error of a / b from (a, error of a) and (b, error of b), independent samples."""
    (a, a_error), (b, b_error) = numerator, denominator
    return abs(a / b) * math.hypot(a_error / a, b_error / b) if a and b else float("nan")


def binomial_error(fraction: float, n: int) -> float:
    """Standard error of a fraction measured on ``n`` independent trials."""
    return float(np.sqrt(max(fraction * (1 - fraction), 0.0) / n)) if n > 0 else float("nan")


def bootstrap_error(statistic, n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float:
    """Standard deviation of ``statistic(rows)`` over resamples of the ``n`` rows drawn with replacement: the
    standard error of a metric that is no plain mean (an R^2 with its refit, a rank correlation)."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(resamples)]
    return float(np.std(values, ddof=1))
