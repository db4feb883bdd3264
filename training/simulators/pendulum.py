"""Damped harmonic oscillator (small-angle pendulum with friction).

    x'' + b x' + kappa x = 0,   x(t) = A0 exp(-b t / 2) cos(omega t + delta0),   omega = sqrt(kappa - b^2 / 4)

b is the damping rate and kappa the squared natural frequency (spring constant
over mass), both in units of 1/time and 1/time^2 of the dimensionless time t.
SciNet sees x at 50 equally spaced times on [0, 5] and is asked for x(t') at a
time t' in [0, 10]: predicting beyond the observed window needs b and kappa.
Default ranges follow Iten et al. (2020): b in [0.5, 1], kappa in [5, 10],
widened by 20% on each side as in the authors' generator so that the edges
are covered; A0 = 1, delta0 = 0.
"""
from __future__ import annotations

import dataclasses

import numpy as np

OBSERVATION_TIMES = np.linspace(0.0, 5.0, 50)
QUESTION_RANGE = (0.0, 10.0)
B_RANGE = (0.4, 1.2)
KAPPA_RANGE = (4.0, 12.0)
PARAMETER_RANGES = {
    "b": list(B_RANGE), "kappa": list(KAPPA_RANGE), "A0": 1.0, "delta0": 0.0,
    "observation_times": "50 equally spaced on [0, 5]", "question_time": list(QUESTION_RANGE),
}


def position(t, b, kappa, amplitude=1.0, phase=0.0):
    """Closed-form x(t); broadcasting over every argument. Needs kappa > b^2 / 4 (underdamped)."""
    b, kappa = np.asarray(b, dtype=float), np.asarray(kappa, dtype=float)
    if np.any(kappa <= b**2 / 4):
        raise ValueError("The pendulum must be underdamped: kappa > b^2 / 4 for every sample.")
    omega = np.sqrt(kappa - b**2 / 4)
    return amplitude * np.exp(-b * t / 2) * np.cos(omega * t + phase)


@dataclasses.dataclass
class PendulumData:
    """observations (n, 50), question (n, 1), answer (n, 1), and the hidden b, kappa (n,)."""

    observations: np.ndarray
    question: np.ndarray
    answer: np.ndarray
    b: np.ndarray
    kappa: np.ndarray


def simulate(n: int, seed: int, b_range=B_RANGE, kappa_range=KAPPA_RANGE, question_range=QUESTION_RANGE) -> PendulumData:
    """``n`` pendulums with uniform b, kappa and one uniform question time each."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(*b_range, size=n)
    kappa = rng.uniform(*kappa_range, size=n)
    t_question = rng.uniform(*question_range, size=n)
    observations = position(OBSERVATION_TIMES[None, :], b[:, None], kappa[:, None])
    answer = position(t_question, b, kappa)
    return PendulumData(
        observations=observations.astype("float32"),
        question=t_question[:, None].astype("float32"),
        answer=answer[:, None].astype("float32"),
        b=b.astype("float32"),
        kappa=kappa.astype("float32"),
    )
