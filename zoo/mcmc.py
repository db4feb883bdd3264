"""Markov chains for the samplers presets offer: HMC, independence Metropolis over a model's proposals, and
the autocorrelation statistics that say how many independent samples a chain holds.

Numpy only, and family-agnostic: the flows' ``mcmc`` method and the simulators' reference samplers (HMC on
the lattice actions) run the same code, so a flow and its HMC baseline are measured alike.
"""
from __future__ import annotations

import math

import numpy as np


def check_finite(array: np.ndarray, name: str) -> None:
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf); expected finite numbers.")


def check_scalar(value, name: str, positive: bool = False) -> float:
    """``value`` as a finite float (and > 0 when ``positive``), or a ValueError naming ``name`` and the value."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, received {value!r}.") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, received {value!r}.")
    return value


# ----------------------------------------------------------------------------- independence Metropolis

def independence_metropolis(log_w: np.ndarray, seed: int) -> tuple:
    """Independence Metropolis-Hastings over proposals x_i ~ q with log weights log w = log p~ - log q (in
    proposal order; p~ the unnormalised target, e.g. exp(-S)). Accepting x_i with min(1, w_i / w_current)
    leaves p exactly invariant whatever q is; q only sets how often the chain moves.

    Returns (index of the state at each step, acceptance rate); the chain starts at the first proposal."""
    log_w = np.asarray(log_w, np.float64)
    uniform = np.random.default_rng(seed).random(len(log_w))
    index, current, accepted = np.zeros(len(log_w), np.int64), 0, 0
    for i in range(1, len(log_w)):
        if math.log(uniform[i] + 1e-300) < log_w[i] - log_w[current]:
            current, accepted = i, accepted + 1
        index[i] = current
    return index, accepted / max(1, len(log_w) - 1)


def effective_sample_size(log_w: np.ndarray) -> float:
    """ESS / N = (sum w)^2 / (N sum w^2) of importance weights: 1 for a perfect proposal, 1/N for one that
    puts all weight on a single draw."""
    log_w = np.asarray(log_w, np.float64) - np.max(log_w)
    w = np.exp(log_w)
    return float(w.sum() ** 2 / (len(w) * (w * w).sum()))


# ----------------------------------------------------------------------------- HMC

def _leapfrog(x, p, grad, force, step_size, n_steps):
    """n_steps leapfrog steps of unit-mass Hamiltonian dynamics; returns x, p and the force at x."""
    p = p - 0.5 * step_size * grad
    for step in range(n_steps):
        x = x + step_size * p
        grad = force(x)
        p = p - (step_size if step < n_steps - 1 else 0.5 * step_size) * grad
    return x, p, grad


def hmc(action, force, phi0, n_samples: int, step_size: float, n_steps: int, seed: int, thin: int = 1,
        step_jitter: float = 0.2):
    """Hybrid Monte Carlo for exp(-S), vectorised over independent chains.

    Args:
        action: fields (n_chains, ...) -> S (n_chains,).
        force: fields -> dS/dphi, same shape as the fields.
        phi0: starting fields (n_chains, ...), one chain per leading index.
        n_samples: fields stored per chain.
        step_size, n_steps: leapfrog step and number of steps per trajectory
            (trajectory length step_size * n_steps).
        seed: seed of numpy's default generator (momenta and accept draws).
        thin: trajectories per stored field.
        step_jitter: each trajectory of each chain draws its step uniformly from
            step_size * [1 - step_jitter, 1 + step_jitter].

    Returns:
        samples (n_samples, n_chains, ...) in Markov-time order, and the
        acceptance rate over all n_samples * thin * n_chains trajectories.

    Leapfrog is reversible and volume preserving, so accepting with probability
    min(1, exp(-dH)), H = p^2/2 + S, leaves exp(-S) exactly invariant; dH = O(step^2).
    A fixed trajectory length t is not ergodic for (near-)harmonic modes with
    frequency omega t close to a multiple of pi (a free-field mode with
    omega t = pi just flips sign and keeps its energy); the jittered step
    breaks this (Mackenzie, PLB 226, 369 (1989)).
    """
    x = np.asarray(phi0, dtype=np.float64).copy()
    if x.ndim < 2:
        raise ValueError(f"phi0 must have shape (n_chains, ...) with at least one site axis, received shape {x.shape}.")
    check_finite(x, "phi0")
    for name, value in (("n_samples", n_samples), ("n_steps", n_steps), ("thin", thin)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, received {value!r}.")
    step_size = check_scalar(step_size, "step_size", positive=True)
    step_jitter = check_scalar(step_jitter, "step_jitter")
    if not 0 <= step_jitter < 1:
        raise ValueError(f"step_jitter must be in [0, 1), received {step_jitter}.")
    rng = np.random.default_rng(seed)
    n_chains = x.shape[0]
    site_axes = tuple(range(1, x.ndim))
    s, grad = np.array(action(x), dtype=np.float64), np.array(force(x), dtype=np.float64)
    samples = np.empty((n_samples,) + x.shape)
    accepted = 0
    for i in range(n_samples * thin):
        p = rng.standard_normal(x.shape)
        step = step_size * rng.uniform(1 - step_jitter, 1 + step_jitter, (n_chains,) + (1,) * (x.ndim - 1))
        h_old = 0.5 * (p * p).sum(axis=site_axes) + s
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged trajectory gives inf / NaN: rejected below
            x_new, p_new, grad_new = _leapfrog(x, p, grad, force, step, n_steps)
            s_new = action(x_new)
            d_h = 0.5 * (p_new * p_new).sum(axis=site_axes) + s_new - h_old
        accept = np.log(rng.random(n_chains)) < -d_h  # False for NaN
        x[accept], grad[accept], s[accept] = x_new[accept], grad_new[accept], s_new[accept]
        accepted += int(accept.sum())
        if (i + 1) % thin == 0:
            samples[(i + 1) // thin - 1] = x
    return samples, accepted / (n_samples * thin * n_chains)


# ----------------------------------------------------------------------------- autocorrelation

def as_series(series, name: str = "series") -> np.ndarray:
    """(T, n_chains) float64 from (T,) or (T, n_chains), checked finite and long enough."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"{name} must have shape (T,) or (T, n_chains) with T >= 4 in Markov-time order, "
                         f"received shape {np.shape(series)}.")
    check_finite(x, name)
    return x


def autocorrelation(series) -> np.ndarray:
    """Normalised autocorrelation rho(t), t = 0..T-1, averaged over chains (FFT, zero-padded: no wrap-around)."""
    x = as_series(series)
    x = x - x.mean(axis=0)
    T = x.shape[0]
    spectrum = np.fft.rfft(x, n=2 * T, axis=0)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * T, axis=0)[:T].sum(axis=1) / (T - np.arange(T))
    return acf / acf[0] if acf[0] > 0 else np.eye(1, T)[0]


def integrated_autocorrelation_time(series, c: float = 6.0) -> float:
    """tau_int = 1/2 + sum_{t=1}^{W} rho(t) with Sokal's window: the smallest W >= c tau_int(W).

    ``series`` is (T,) or (T, n_chains). In this convention independent samples
    have tau_int = 1/2, an AR(1) series x_t = rho x_{t-1} + noise has
    (1 + rho) / (2 (1 - rho)), and the error of a mean is sqrt(2 tau_int var / N).
    The statistical error of the estimate is about tau_int sqrt(2 (2W + 1) / T)
    (Madras & Sokal 1988). A constant series gives 1/2.
    """
    rho = autocorrelation(series)
    tau = 0.5 + np.cumsum(rho[1:])
    inside = np.flatnonzero(np.arange(1, rho.size) >= c * tau)
    return float(tau[inside[0]] if inside.size else tau[-1])
