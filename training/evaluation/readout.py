"""Read a learned invariant off an embedding: a sparse polynomial in the raw coordinates.

A siamese network's embedding ``z = f(x)`` is, once trained, some monotonic
function ``g`` of the invariant ``I(x)`` (Wetzel et al. 2020). The read-out
recovers a formula for ``I`` without knowing it:

1. Linearise: find the combination ``t = sum_k b_k z^k`` (k <= ``embedding_degree``)
   that is best explained by polynomials of the coordinates (the first
   canonical correlation between polynomial features of ``z`` and of ``x``).
   This undoes a smooth monotonic ``g``; ``t`` is ``I`` up to scale and offset.
2. Select: L1-regularised least squares (lasso, coordinate descent in numpy)
   of ``t`` on the monomials of ``x`` up to ``degree`` (plus ``1/r`` terms
   where the caller allows them), along a path of penalties; the sparsest fit
   whose least-squares refit on its terms explains ``t`` nearly as well as all
   terms together (R^2 within ``tolerance``) is kept.
3. Report: the refitted coefficients divided by the largest one (the leading
   term gets +1), the formula as text, and its R^2 against ``t`` and against a
   true invariant.

An optional symbolic-regression read-out (:func:`symbolic_readout`) uses PySR
when it is installed; nothing here needs it.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------

def _monomial_name(names, combo) -> str:
    parts = []
    for index, group in itertools.groupby(combo):
        power = len(list(group))
        parts.append(names[index] + (f"^{power}" if power > 1 else ""))
    return "*".join(parts)


def polynomial_terms(x, names, degree: int = 2, inverse_radius=None):
    """Monomials of the columns of ``x`` of degree 1..``degree`` and optional inverse-radius terms.

    Args:
        x: (n, d) coordinates.
        names: the d column names, used in the term names (``"x*v_y"``, ``"x^2"``).
        degree: highest total degree.
        inverse_radius: column indices whose Euclidean norm r gives the extra
            terms ``1/r`` and ``1/r^2`` (e.g. ``(0, 1)`` for (x, y) in a
            central potential); ``None`` for none.

    Returns:
        (features (n, k), term names (k,)).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"x has shape {x.shape}; expected (n, {len(names)}) for names {list(names)}.")
    if degree < 1:
        raise ValueError(f"degree must be >= 1; received {degree}.")
    columns, terms = [], []
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(x.shape[1]), d):
            columns.append(np.prod(x[:, combo], axis=1))
            terms.append(_monomial_name(names, combo))
    if inverse_radius is not None:
        r = np.sqrt(np.sum(x[:, list(inverse_radius)] ** 2, axis=1))
        if np.any(r == 0):
            raise ValueError("inverse_radius terms need r > 0 for every point; some points are at r = 0.")
        columns += [1.0 / r, 1.0 / r**2]
        terms += ["1/r", "1/r^2"]
    return np.stack(columns, axis=1), terms


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def ranks(values) -> np.ndarray:
    """Ranks 0..n-1 of ``values``, ties sharing their average rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values), dtype=float)
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1]):
        rank[order[start:start + count]] = start + (count - 1) / 2.0
    return rank


def spearman(a, b) -> float:
    """Spearman's rank correlation of two 1-d samples."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt(np.sum(ra**2) * np.sum(rb**2))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else 0.0


def r2_linear(values, target) -> float:
    """R^2 of the best affine map from ``values`` to ``target`` (the squared Pearson correlation)."""
    values, target = np.asarray(values, float), np.asarray(target, float)
    if np.std(values) == 0 or np.std(target) == 0:
        return 0.0
    return float(np.corrcoef(values, target)[0, 1] ** 2)


def _r2(target, fitted) -> float:
    ss = np.sum((target - target.mean()) ** 2)
    return float(1.0 - np.sum((target - fitted) ** 2) / ss) if ss > 0 else 0.0


# --------------------------------------------------------------------------
# Lasso
# --------------------------------------------------------------------------

def lasso(features, target, alpha: float, coef=None, max_sweeps: int = 5000, tol: float = 1e-10) -> np.ndarray:
    """Coefficients minimising ``|t - X b|^2 / (2 n) + alpha |b|_1`` (centred data, no intercept).

    Coordinate descent on the Gram matrix; ``coef`` warm-starts the solution.
    """
    x, t = np.asarray(features, float), np.asarray(target, float)
    n, p = x.shape
    gram, xt = x.T @ x / n, x.T @ t / n
    b = np.zeros(p) if coef is None else np.array(coef, dtype=float)
    diag = np.maximum(np.diag(gram), 1e-300)
    for _ in range(max_sweeps):
        largest_change = 0.0
        for j in range(p):
            rho = xt[j] - gram[j] @ b + diag[j] * b[j]
            new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / diag[j]
            largest_change = max(largest_change, abs(new - b[j]))
            b[j] = new
        if largest_change < tol:
            break
    return b


def _least_squares(x, t, support):
    coef = np.zeros(x.shape[1])
    if support.any():
        coef[support] = np.linalg.lstsq(x[:, support], t, rcond=None)[0]
    return coef


@dataclasses.dataclass
class Readout:
    """A sparse polynomial read-out.

    Attributes:
        terms: names of the selected terms, largest |coefficient| first.
        coefficients: their coefficients divided by the leading one (so it is +1).
        intercept: the constant, in the same normalisation.
        scale: the leading coefficient before normalisation (target units per term unit).
        r2: R^2 of the refitted sparse polynomial against the fitted target.
        r2_all_terms: R^2 of least squares on every candidate term.
        canonical_correlation: of the linearisation step (1 for a target given directly).
        degree, inverse_radius, names: how the features were built.
    """

    terms: list
    coefficients: np.ndarray
    intercept: float
    scale: float
    r2: float
    r2_all_terms: float
    canonical_correlation: float
    degree: int
    inverse_radius: tuple | None
    names: tuple

    @property
    def formula(self) -> str:
        """The normalised formula, terms below 1% of the leading one left out."""
        kept = [(t, c) for t, c in zip(self.terms, self.coefficients) if abs(c) >= 0.01]
        return format_formula([t for t, _ in kept], [c for _, c in kept])

    def dominant_terms(self, threshold: float = 0.1) -> list:
        """Terms whose normalised |coefficient| is at least ``threshold``."""
        return [t for t, c in zip(self.terms, self.coefficients) if abs(c) >= threshold]

    def evaluate(self, x) -> np.ndarray:
        """The normalised formula (without intercept) at points ``x``."""
        features, names = polynomial_terms(x, self.names, self.degree, self.inverse_radius)
        index = {name: k for k, name in enumerate(names)}
        return sum(c * features[:, index[t]] for t, c in zip(self.terms, self.coefficients))

    def r2_against(self, x, invariant) -> float:
        """R^2 of the best affine map from the formula to a true invariant at the same points."""
        return r2_linear(self.evaluate(x), invariant)


def format_formula(terms, coefficients, digits: int = 3) -> str:
    """``"x*v_y - 1.000 y*v_x"``: the leading term first, signs written out."""
    text = ""
    for k, (term, c) in enumerate(zip(terms, coefficients)):
        magnitude = abs(float(c))
        body = term if np.isclose(magnitude, 1.0, atol=0.5 * 10**-digits) and k == 0 else f"{magnitude:.{digits}f} {term}"
        if k == 0:
            text = ("-" if c < 0 else "") + body
        else:
            text += (" - " if c < 0 else " + ") + body
    return text or "0"


def fit_sparse_polynomial(x, target, names, degree: int = 2, inverse_radius=None, tolerance: float = 0.005,
                          n_alphas: int = 40) -> Readout:
    """The sparsest lasso fit of ``target`` whose refit has R^2 within ``tolerance`` of all terms'."""
    features, term_names = polynomial_terms(x, names, degree, inverse_radius)
    t = np.asarray(target, float).reshape(-1)
    if len(t) != len(features):
        raise ValueError(f"target has {len(t)} values for {len(features)} points.")
    mean, std = features.mean(0), features.std(0)
    usable = std > 1e-12 * np.maximum(1.0, np.abs(mean))  # constant columns carry nothing beyond the intercept
    z = np.zeros_like(features)
    z[:, usable] = (features[:, usable] - mean[usable]) / std[usable]
    tc = t - t.mean()
    full = _least_squares(z, tc, usable)
    r2_full = _r2(tc, z @ full)
    alpha_max = np.max(np.abs(z.T @ tc)) / len(tc)
    best, coef = None, None
    for alpha in alpha_max * np.geomspace(1.0, 1e-5, n_alphas):
        coef = lasso(z, tc, alpha, coef)
        support = (np.abs(coef) > 1e-12) & usable
        if not support.any():
            continue
        refit = _least_squares(z, tc, support)
        if _r2(tc, z @ refit) >= r2_full - tolerance:
            best = refit
            break
    if best is None:
        best = full
    raw = np.where(usable, best / np.where(usable, std, 1.0), 0.0)  # coefficients of the unscaled terms
    intercept = t.mean() - raw @ mean
    order = [k for k in np.argsort(-np.abs(raw)) if raw[k] != 0]
    lead = raw[order[0]] if order else 1.0
    return Readout(
        terms=[term_names[k] for k in order],
        coefficients=np.array([raw[k] / lead for k in order]),
        intercept=float(intercept / lead),
        scale=float(lead),
        r2=_r2(tc, z @ best),
        r2_all_terms=r2_full,
        canonical_correlation=1.0,
        degree=degree,
        inverse_radius=None if inverse_radius is None else tuple(inverse_radius),
        names=tuple(names),
    )


# --------------------------------------------------------------------------
# Linearising a monotonic embedding
# --------------------------------------------------------------------------

def _orthonormal_basis(a):
    a = a - a.mean(0)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > s[0] * 1e-9] if s.size and s[0] > 0 else u[:, :0]


def linearise_embedding(x, embedding, names, degree: int = 2, inverse_radius=None, embedding_degree: int = 3):
    """The polynomial of the embedding best explained by polynomials of x: (values, canonical correlation)."""
    z = np.asarray(embedding, float)
    z = z[:, None] if z.ndim == 1 else z
    z = (z - z.mean(0)) / np.where(z.std(0) > 0, z.std(0), 1.0)
    z_features, _ = polynomial_terms(z, [f"z{k}" for k in range(z.shape[1])], embedding_degree)
    x_features, _ = polynomial_terms(x, names, degree, inverse_radius)
    ux, uz = _orthonormal_basis(x_features), _orthonormal_basis(z_features)
    if ux.shape[1] == 0 or uz.shape[1] == 0:
        return np.zeros(len(z)), 0.0
    left, correlations, right = np.linalg.svd(ux.T @ uz)
    values = uz @ right[0]
    # orient the result so that it grows with the first embedding component
    if np.corrcoef(values, z[:, 0])[0, 1] < 0:
        values = -values
    return values, float(min(1.0, correlations[0]))


def polynomial_readout(x, embedding, names, degree: int = 2, inverse_radius=None, embedding_degree: int = 3,
                       tolerance: float = 0.005) -> Readout:
    """Read the invariant that ``embedding`` encodes off as a sparse polynomial of ``x`` (see the module doc)."""
    x = np.asarray(x, float)
    if len(x) != len(embedding):
        raise ValueError(f"{len(x)} points but {len(embedding)} embeddings.")
    target, correlation = linearise_embedding(x, embedding, names, degree, inverse_radius, embedding_degree)
    readout = fit_sparse_polynomial(x, target, names, degree, inverse_radius, tolerance)
    return dataclasses.replace(readout, canonical_correlation=correlation)


def symbolic_readout(x, target, names, **pysr_options) -> str:
    """A symbolic-regression formula for ``target`` (PySR), when the optional package is installed."""
    try:
        import pysr
    except ImportError:
        raise ImportError(
            "symbolic_readout needs the optional package pysr (pip install pysr); "
            "the polynomial read-out (polynomial_readout) needs nothing extra."
        ) from None
    options = dict(niterations=40, binary_operators=["+", "-", "*", "/"], unary_operators=[], verbosity=0)
    options.update(pysr_options)
    model = pysr.PySRRegressor(**options)
    model.fit(np.asarray(x, float), np.asarray(target, float), variable_names=list(names))
    return str(model.sympy())
