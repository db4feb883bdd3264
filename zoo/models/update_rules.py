"""Reading a learned linear recursion against the Schroedinger equation, up to a change of basis.

The distiller's latent state obeys z_{i+1} = (A + V B) z_i. The discretised
zero-energy Schroedinger equation psi'' = V psi obeys, for g = (psi, psi'),

    Euler:  g_{i+1} = [[1, a], [a V, 1]] g_i = (A0 + V B0) g_i,
            A0 = [[1, a], [0, 1]],  B0 = [[0, 0], [a, 0]],

and any invertible P with z = P^{-1} g gives an equally good latent description
(A = P^{-1} A0 P, B = P^{-1} B0 P). So the question "is the learned rule the
Schroedinger equation?" is whether some P maps (A, B) onto (A0, B0):
:func:`basis_change_fit` finds the best P and reports what is left.

The reference rules:
- :func:`euler_rule`, the rule above (first order in a).
- :func:`exact_rule`, the least-squares affine fit A + V B to the exact one-site
  transfer matrix of a constant potential, [[cos ka, sin(ka) / k], [-k sin ka, cos ka]]
  with k^2 = -V, over a range of V: what a perfect distiller of exact data can reach
  with an update affine in V. It differs from Euler at O(a^2 V).
- The same two rules with ``potential_factor=4``: the equation of the density's
  oscillating part. A network that reads out only n = psi^2 need not know the sign
  of psi, and the sign-blind pair w = (psi'^2 + V psi^2, 2 psi psi') obeys, where V
  is constant, w_1' = 2 V w_2 and w_2' = 2 w_1, i.e. w'' = 4 V w: the Schroedinger
  equation with 4 V, oscillating at twice the wave number (psi^2 = (1 + cos 2kx) / 2
  for psi = cos kx). Its Euler rule [[1, a], [4 a V, 1]] is the one above with
  V -> 4 V. (Where V varies, w_1' gains V' psi^2, so the pair is closed only
  approximately; the three numbers below are closed exactly.)
- :func:`density_rule`, the three-variable density formulation: u = (psi^2, psi psi',
  psi'^2) obeys u' = (2 psi psi', psi'^2 + V psi^2, 2 V psi psi'), linear in u, so
  with Euler steps u_{i+1} = (I + a [[0, 2, 0], [V, 0, 1], [0, 2V, 0]]) u_i. Its first
  entry is the density itself; no closed rule in fewer than three real numbers gives
  the density linearly.
"""
from __future__ import annotations

import numpy as np


def euler_rule(a: float, potential_factor: float = 1.0) -> tuple:
    """(A0, B0) of the Euler rule g_{i+1} = (A0 + V B0) g_i of g'' = c V g, g = (psi, psi') for c = 1
    (``potential_factor`` c = 4: the density's oscillating part, module docstring)."""
    return np.array([[1.0, a], [0.0, 1.0]]), np.array([[0.0, 0.0], [potential_factor * a, 0.0]])


def density_rule(a: float) -> tuple:
    """(A0, B0) of the Euler step of u = (psi^2, psi psi', psi'^2): u_{i+1} = (A0 + V B0) u_i."""
    constant = np.eye(3) + a * np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    potential = a * np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    return constant, potential


def constant_potential_transfer(v: np.ndarray, a: float) -> np.ndarray:
    """Exact one-site transfer matrices (len(v), 2, 2) of psi'' = V psi for constant V (any sign)."""
    v = np.asarray(v, np.float64)
    w = np.sqrt(np.abs(v)) * a
    well = v < 0
    c = np.where(well, np.cos(w), np.cosh(w))
    s_over = np.where(w > 0, np.where(well, np.sin(w), np.sinh(w)) / np.where(w > 0, w, 1.0), 1.0)  # sin(w) / w
    return np.stack([np.stack([c, a * s_over], -1), np.stack([a * v * s_over, c], -1)], -2)


def exact_rule(a: float, v_range: tuple, potential_factor: float = 1.0, points: int = 401) -> tuple:
    """(A, B) of the least-squares fit A + V B to the exact transfer matrices of g'' = c V g over V in
    ``v_range`` (c = ``potential_factor``)."""
    v = np.linspace(*v_range, points)
    design = np.stack([np.ones_like(v), v], axis=1)
    transfer = constant_potential_transfer(potential_factor * v, a).reshape(points, 4)
    coefficients, *_ = np.linalg.lstsq(design, transfer, rcond=None)
    return coefficients[0].reshape(2, 2), coefficients[1].reshape(2, 2)


def _commutator_system(pairs) -> np.ndarray:
    """M with M vec(P) = vec(P M_j - R_j P) for every pair (M_j, R_j) (row-major vec)."""
    eye = np.eye(len(pairs[0][0]))
    return np.vstack([np.kron(eye, m.T) - np.kron(r, eye) for m, r in pairs])


def _mismatch(p: np.ndarray, pairs) -> np.ndarray:
    inverse = np.linalg.inv(p)
    return np.concatenate([(p @ m @ inverse - r).ravel() for m, r in pairs])


def basis_change_fit(a: np.ndarray, b: np.ndarray, a0: np.ndarray, b0: np.ndarray) -> dict:
    """The P that brings the learned (A, B) closest to the reference (A0, B0): P A P^{-1} ~ A0, P B P^{-1} ~ B0.

    ``residual`` is the Frobenius norm of what is left, over the size of the reference's step
    (A0 - I, B0): 0 means the same rule in another basis. The identity commutes with every P,
    so only the step away from it is compared.
    """
    a, b, a0, b0 = (np.asarray(m, np.float64) for m in (a, b, a0, b0))
    if not a.shape == b.shape == a0.shape == b0.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"Expected four k x k matrices; received shapes {a.shape}, {b.shape}, {a0.shape}, "
                         f"{b0.shape}.")
    fit = fit_pairs([(a, a0), (b, b0)], scale=np.linalg.norm(np.concatenate([(a0 - np.eye(len(a))).ravel(),
                                                                               b0.ravel()])))
    return {**fit, "A_in_reference_basis": fit["in_reference_basis"][0],
            "B_in_reference_basis": fit["in_reference_basis"][1]}


def exact_basis_change_fit(a: np.ndarray, b: np.ndarray, a_spacing: float, potentials, potential_factor=1.0) -> dict:
    """One P for which P (A + V B) P^{-1} is closest to the exact one-site transfer matrix of g'' = c V g at
    every V of ``potentials``; ``residual`` is over the size of the exact steps (T(V) - I)."""
    v = np.asarray(potentials, np.float64)
    exact = constant_potential_transfer(potential_factor * v, a_spacing)
    pairs = [(np.asarray(a) + v_j * np.asarray(b), t) for v_j, t in zip(v, exact)]
    return fit_pairs(pairs, scale=float(np.linalg.norm([t - np.eye(2) for t in exact])))


def fit_pairs(pairs, scale: float) -> dict:
    """The P minimising sum_j ||P M_j P^{-1} - R_j||^2: start from the P that best solves the linear
    conditions P M_j = R_j P (the smallest right singular vector), then minimise the mismatch itself."""
    from scipy.optimize import least_squares

    pairs = [(np.asarray(m, np.float64), np.asarray(r, np.float64)) for m, r in pairs]
    k = len(pairs[0][0])
    *_, vt = np.linalg.svd(_commutator_system(pairs))
    start = vt[-1].reshape(k, k)
    if abs(np.linalg.det(start)) < 1e-12 * np.linalg.norm(start) ** k:
        start = start + 1e-3 * np.eye(k) * np.linalg.norm(start)
    fit = least_squares(lambda x: _mismatch(x.reshape(k, k), pairs), start.ravel() / np.linalg.norm(start),
                        xtol=1e-14, ftol=1e-14, gtol=1e-14)
    p = fit.x.reshape(k, k)
    inverse = np.linalg.inv(p)
    return {"P": p, "residual": float(np.linalg.norm(_mismatch(p, pairs)) / scale),
            "in_reference_basis": [p @ m @ inverse for m, _ in pairs]}
