"""Generic metrics: errors, coefficients of determination, polynomial fits."""
from __future__ import annotations

import itertools

import numpy as np


def rms(prediction, target) -> float:
    """Root-mean-square error over every entry."""
    diff = np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def wrapped_rms(prediction, target) -> float:
    """RMS of angle differences wrapped to (-pi, pi], so that pi and -pi count as equal."""
    diff = np.angle(np.exp(1j * (np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float))))
    return float(np.sqrt(np.mean(diff**2)))


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


def knee(errors: dict, remaining_fraction: float = 0.1) -> int:
    """Smallest key k (an int) past which less than ``remaining_fraction`` of the total drop is left.

    With e_0 the error of the smallest key and e_min the best, the knee is the
    first k with e_k <= e_min + remaining_fraction * (e_0 - e_min): where the
    error has reached its floor.
    """
    first, floor = errors[min(errors)], min(errors.values())
    return min(k for k, e in errors.items() if e <= floor + remaining_fraction * (first - floor))
