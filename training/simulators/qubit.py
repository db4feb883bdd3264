"""Quantum state tomography of one or two qubits with fixed projective measurements.

A pure state |psi> of n qubits (dimension d = 2^n) is probed by a fixed set of
reference states |phi_i>: the observation is the vector of probabilities
p_i = |<phi_i|psi>|^2. The question is another state |w>, described the same
way (q_i = |<phi_i|w>|^2), and the answer is the probability |<w|psi>|^2 of
finding |psi> in |w>. A pure state has 2d - 2 real parameters: 2 for one qubit
and 6 for two, the number of latents SciNet needs (Iten et al. 2020).

States are Haar random: normalised vectors of i.i.d. complex Gaussians. For a
Haar-random pair the overlap p = |<w|psi>|^2 follows Beta(1, d - 1).
"""
from __future__ import annotations

import dataclasses

import numpy as np

MEASUREMENT_COUNTS = {1: 10, 2: 30}
PARAMETER_RANGES = {
    "states": "Haar-random pure states", "questions": "Haar-random pure states",
    "reference_states": "10 (one qubit) or 30 (two qubits) Haar-random states from measurement_seed 0",
}


def haar_states(n: int, n_qubits: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Haar-random pure states as complex vectors (n, 2**n_qubits)."""
    d = 2**n_qubits
    z = rng.normal(size=(n, d)) + 1j * rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|<a_i|b_j>|^2 for every pair: (len(a), len(b))."""
    return np.abs(np.conj(a) @ b.T) ** 2


def reference_states(n_qubits: int, count: int | None = None, seed: int = 0) -> np.ndarray:
    """The fixed measurement states |phi_i>; the same seed gives the same set."""
    count = MEASUREMENT_COUNTS[n_qubits] if count is None else count
    return haar_states(count, n_qubits, np.random.default_rng(seed))


@dataclasses.dataclass
class TomographyData:
    """observations (n, m), question (n, m), answer (n, 1), and the states psi, w (n, d)."""

    observations: np.ndarray
    question: np.ndarray
    answer: np.ndarray
    states: np.ndarray
    measurement_states: np.ndarray


def simulate(n: int, seed: int, n_qubits: int, measurement_seed: int = 0) -> TomographyData:
    """``n`` (state, question, answer) triples for the reference set of ``measurement_seed``."""
    refs = reference_states(n_qubits, seed=measurement_seed)
    rng = np.random.default_rng(seed)
    psi = haar_states(n, n_qubits, rng)
    w = haar_states(n, n_qubits, rng)
    answer = np.abs(np.sum(np.conj(w) * psi, axis=1)) ** 2
    return TomographyData(
        observations=overlaps(psi, refs).astype("float32"),
        question=overlaps(w, refs).astype("float32"),
        answer=answer[:, None].astype("float32"),
        states=psi,
        measurement_states=w,
    )
