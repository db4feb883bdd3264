"""Events and electromagnetic fields under random Lorentz transformations (boosts and rotations).

Units: c = 1, metric signature (-, +, +, +). A transformation is a boost of
rapidity ``eta`` (speed ``beta = tanh eta``) along a uniformly random direction
followed by a uniformly random rotation (Haar measure on SO(3)); it is exact
(no series), so the invariants below are kept to rounding.

Events ``(t, x, y, z)``: the invariant interval ``s^2 = -t^2 + x^2 + y^2 + z^2``.
Fields ``(E_x, E_y, E_z, B_x, B_y, B_z)``: the invariants ``E . B`` and
``E^2 - B^2`` of ``F_{mu nu}``. A boost with velocity ``beta`` transforms

    E' = gamma (E + beta x B) - gamma^2 / (gamma + 1) beta (beta . E)
    B' = gamma (B - beta x E) - gamma^2 / (gamma + 1) beta (beta . B)

and a rotation turns both vectors.

Events are also time-reversed (t -> -t) with probability 1/2
(``time_reversal=True``, the default): the interval is invariant under the whole
Lorentz group, while under proper orthochronous transformations alone the sign
of t of a time-like event is a second invariant that would decide many pairs.
Fields are transformed by proper orthochronous transformations only (E . B
changes sign under time reversal and parity).

Pairs for a siamese network (Wetzel et al. 2020): a positive pair is an event
(field) and a Lorentz transform of it; a negative pair takes the transformed
partner of another event (field), by permuting partners among the negatives.

Ranges: event components uniform in [-1, 1]; field components uniform in
[-1, 1], or with ``e2_minus_b2 = c``: |B| uniform in [0.3, 1.5], |E| =
sqrt(|B|^2 + c), directions independent and uniform, so that every field has
the same E^2 - B^2 and only E . B tells two fields apart (the siamese-em-field
data set, c = 0.5); rapidity uniform in [0, max_rapidity] (default 1, beta up
to 0.76).
"""
from __future__ import annotations

import numpy as np

from .orbits import PairData

EVENT_COORDINATES = ("t", "x", "y", "z")
FIELD_COORDINATES = ("E_x", "E_y", "E_z", "B_x", "B_y", "B_z")
MAX_RAPIDITY = 1.0
METRIC = np.diag([-1.0, 1.0, 1.0, 1.0])
PARAMETER_RANGES = {
    "units": "c = 1, metric (-, +, +, +)",
    "event_components": [-1, 1],
    "field_components": [-1, 1],
    "fixed_e2_minus_b2_field_magnitude_B": [0.3, 1.5],
    "rapidity": [0, "max_rapidity (1.0 unless options say otherwise)"],
    "boost_direction": "uniform on the sphere",
    "rotation": "Haar-uniform on SO(3)",
    "time_reversal_of_events": "with probability 1/2 (option time_reversal)",
}


def interval(events) -> np.ndarray:
    """s^2 = -t^2 + x^2 + y^2 + z^2 of events (..., 4)."""
    e = np.asarray(events, dtype=float)
    return -e[..., 0] ** 2 + np.sum(e[..., 1:] ** 2, axis=-1)


def e_dot_b(fields) -> np.ndarray:
    f = np.asarray(fields, dtype=float)
    return np.sum(f[..., :3] * f[..., 3:], axis=-1)


def e2_minus_b2(fields) -> np.ndarray:
    f = np.asarray(fields, dtype=float)
    return np.sum(f[..., :3] ** 2, axis=-1) - np.sum(f[..., 3:] ** 2, axis=-1)


def random_rotations(rng, n: int) -> np.ndarray:
    """(n, 3, 3) Haar-uniform rotations, from normalised Gaussian quaternions."""
    q = rng.normal(size=(n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def random_directions(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def boost_matrices(rapidity, direction) -> np.ndarray:
    """(n, 4, 4) pure boosts acting on (t, x, y, z): to the frame moving with velocity tanh(rapidity) n."""
    eta, n = np.asarray(rapidity, float), np.asarray(direction, float)
    ch, sh = np.cosh(eta), np.sinh(eta)
    lam = np.zeros((len(eta), 4, 4))
    lam[:, 0, 0] = ch
    lam[:, 0, 1:] = lam[:, 1:, 0] = -sh[:, None] * n
    lam[:, 1:, 1:] = np.eye(3) + (ch - 1)[:, None, None] * n[:, :, None] * n[:, None, :]
    return lam


def lorentz_matrices(rapidity, direction, rotation) -> np.ndarray:
    """(n, 4, 4): the boost followed by the rotation."""
    rot4 = np.zeros((len(rotation), 4, 4))
    rot4[:, 0, 0] = 1.0
    rot4[:, 1:, 1:] = rotation
    return rot4 @ boost_matrices(rapidity, direction)


def transform_events(events, rapidity, direction, rotation) -> np.ndarray:
    return np.einsum("nij,nj->ni", lorentz_matrices(rapidity, direction, rotation), np.asarray(events, float))


def transform_fields(fields, rapidity, direction, rotation) -> np.ndarray:
    """(E, B) seen in the boosted frame, then rotated: (n, 6)."""
    f = np.asarray(fields, float)
    e, b = f[:, :3], f[:, 3:]
    eta = np.asarray(rapidity, float)[:, None]
    beta = np.tanh(eta) * np.asarray(direction, float)
    gamma = np.cosh(eta)
    k = gamma**2 / (gamma + 1)
    e_new = gamma * (e + np.cross(beta, b)) - k * beta * np.sum(beta * e, axis=1, keepdims=True)
    b_new = gamma * (b - np.cross(beta, e)) - k * beta * np.sum(beta * b, axis=1, keepdims=True)
    rotation = np.asarray(rotation, float)
    return np.concatenate([np.einsum("nij,nj->ni", rotation, e_new), np.einsum("nij,nj->ni", rotation, b_new)], axis=1)


def random_transformations(rng, n: int, max_rapidity: float):
    if max_rapidity < 0:
        raise ValueError(f"max_rapidity must be >= 0; received {max_rapidity}.")
    return rng.uniform(0, max_rapidity, n), random_directions(rng, n), random_rotations(rng, n)


def sample_fields(rng, n: int, e2_minus_b2_value=None) -> np.ndarray:
    if e2_minus_b2_value is None:
        return rng.uniform(-1, 1, (n, 6))
    c = float(e2_minus_b2_value)
    small = rng.uniform(0.3, 1.5, n)
    large = np.sqrt(small**2 + abs(c))
    b_norm, e_norm = (small, large) if c >= 0 else (large, small)
    return np.concatenate([e_norm[:, None] * random_directions(rng, n), b_norm[:, None] * random_directions(rng, n)], axis=1)


def _pairs(rng, n, points, transform, max_rapidity):
    if n < 4:
        raise ValueError(f"Need at least 4 pairs; received n={n}.")
    second = transform(points, *random_transformations(rng, n, max_rapidity))
    label = np.zeros(n)
    negative = rng.permutation(n)[: n - n // 2]
    label[np.setdiff1d(np.arange(n), negative)] = 1.0
    second[negative] = second[np.roll(negative, 1)]
    return points, second, label


def simulate_events(n: int, seed: int, max_rapidity: float = MAX_RAPIDITY, time_reversal: bool = True) -> PairData:
    """``n`` pairs of events; positives are related by a random Lorentz transformation.

    With ``time_reversal`` half of the transformations also flip t: without it
    the sign of t of a time-like event is invariant too, and a network can
    separate many pairs by it instead of by s^2.
    """
    rng = np.random.default_rng(seed)
    events = rng.uniform(-1, 1, (n, 4))

    def transform(points, rapidity, direction, rotation):
        moved = transform_events(points, rapidity, direction, rotation)
        if time_reversal:
            moved[:, 0] *= rng.choice([-1.0, 1.0], len(moved))
        return moved

    first, second, label = _pairs(rng, n, events, transform, max_rapidity)
    return PairData(
        first=first.astype("float32"), second=second.astype("float32"), label=label.astype("float32"),
        invariants_first={"interval": interval(first)}, invariants_second={"interval": interval(second)},
        coordinate_names=EVENT_COORDINATES, invariant="interval",
    )


def simulate_fields(n: int, seed: int, max_rapidity: float = MAX_RAPIDITY, e2_minus_b2_value=None) -> PairData:
    """``n`` pairs of (E, B) fields; positives are related by a random Lorentz transformation."""
    rng = np.random.default_rng(seed)
    fields = sample_fields(rng, n, e2_minus_b2_value)
    first, second, label = _pairs(rng, n, fields, transform_fields, max_rapidity)
    return PairData(
        first=first.astype("float32"), second=second.astype("float32"), label=label.astype("float32"),
        invariants_first={"e_dot_b": e_dot_b(first), "e2_minus_b2": e2_minus_b2(first)},
        invariants_second={"e_dot_b": e_dot_b(second), "e2_minus_b2": e2_minus_b2(second)},
        coordinate_names=FIELD_COORDINATES, invariant="e_dot_b",
    )


def simulate(n: int, seed: int, kind: str = "events", max_rapidity: float = MAX_RAPIDITY,
             e2_minus_b2_value=None, time_reversal: bool = True) -> PairData:
    """Pairs of ``kind`` ``"events"`` (s^2 decides) or ``"fields"`` (E . B, and E^2 - B^2 unless fixed)."""
    if kind == "events":
        if e2_minus_b2_value is not None:
            raise ValueError("e2_minus_b2_value applies to fields only.")
        return simulate_events(n, seed, max_rapidity, time_reversal)
    if kind == "fields":
        return simulate_fields(n, seed, max_rapidity, e2_minus_b2_value)
    raise ValueError(f"kind must be 'events' or 'fields'; received {kind!r}.")
