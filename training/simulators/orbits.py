"""Bound orbits in a central 1/r potential (Kepler), solved exactly through Kepler's equation.

Units: G M = 1 and a unit test mass, so that for a phase-space point
``(x, y, v_x, v_y)``

    E   = (v_x^2 + v_y^2) / 2 - 1 / r,        r = sqrt(x^2 + y^2)
    L_z = x v_y - y v_x

are conserved along the motion. An ellipse of semi-major axis ``a`` and
eccentricity ``e`` has ``E = -1 / (2 a)`` and ``|L_z| = sqrt(a (1 - e^2))``; the
position at mean anomaly ``M`` follows from Kepler's equation
``M = E_a - e sin E_a``, solved by Newton's method to machine precision, so
that every generated point lies on its orbit up to rounding (no integrator
drift). The mean anomaly is uniform in time, so a uniform ``M`` samples the
orbit as an observer sampling at random times would.

Pairs for a siamese network (Wetzel et al. 2020): a positive pair is two points
of the same orbit at two independent random times; a negative pair takes the
second point of another orbit, chosen by permuting partners among the
negatives (``negatives="permute"``), or of a neighbouring orbit whose varying
conserved quantity differs by a relative amount drawn from
``perturbation`` (``negatives="perturb"``, hard negatives in the spirit of
Ha & Jeong 2021).

An orbit is fixed by E, L_z and the direction of its pericentre (the
direction of the conserved Runge-Lenz vector). With ``orientation="shared"``
(the default) a negative partner lies on an orbit with another E and L_z but
the same pericentre direction as the first point's orbit, so that only E and
L_z tell orbits apart; with ``"independent"`` its pericentre direction is
random too, and the Runge-Lenz direction alone already separates most pairs
(a network then learns it instead of L_z or E). With ``"rotated"`` the
second point of every pair, related or not, is also turned by a random angle
about the centre (a symmetry of the potential): related points then lie on the
same orbit up to a rotation, and no component of the Runge-Lenz vector is
shared, only E, L_z and functions of them (|A| = sqrt(1 + 2 E L_z^2)). At
fixed L_z = 1 this is what makes the energy decide: with a shared pericentre
direction a network finds a Runge-Lenz component first (it is conserved along
each orbit and differs between orbits of different eccentricity).

Data sets (``conserved``):
    ``"angular_momentum"``: every orbit has energy E = -1/2 (a = 1), L_z is
        uniform in +-[0.4, 1] (both senses of rotation): L_z decides.
    ``"energy"``: every orbit has L_z = 1 (prograde), E uniform in [-0.5, -0.2]
        (eccentricity 0 to 0.77): E decides.
    ``"both"``: E uniform in [-0.5, -0.25], L_z uniform in +-[0.4, 1] times the
        largest |L_z| the energy allows: both quantities vary.
"""
from __future__ import annotations

import dataclasses

import numpy as np

COORDINATES = ("x", "y", "v_x", "v_y")
CONSERVED = ("angular_momentum", "energy", "both")
NEGATIVES = ("permute", "perturb")
ORIENTATIONS = ("shared", "independent", "rotated")
PARAMETER_RANGES = {
    "units": "G M = 1, unit mass",
    "angular_momentum": {"energy": -0.5, "abs_angular_momentum": [0.4, 1.0], "sense": "both"},
    "energy": {"angular_momentum": 1.0, "energy": [-0.5, -0.2]},
    "both": {"energy": [-0.5, -0.25], "abs_angular_momentum_over_circular": [0.4, 1.0], "sense": "both"},
    "mean_anomaly": [0, "2 pi"],
    "perturbation": [0.03, 0.3],
    "pericentre_direction": "uniform in [0, 2 pi); option orientation: shared by the two members of every pair, independent for negatives, or every second point rotated by a uniform angle",
}


@dataclasses.dataclass
class PairData:
    """Pairs of points and the invariants of each point.

    Attributes:
        first, second: (n, dim) float32 coordinates of the two members of each pair.
        label: (n,) float32, 1 where both members share the invariant(s), else 0.
        invariants_first, invariants_second: name -> (n,) float64 true invariants.
        coordinate_names: names of the dim columns.
        invariant: the name of the invariant that decides (the card's read-out target).
    """

    first: np.ndarray
    second: np.ndarray
    label: np.ndarray
    invariants_first: dict
    invariants_second: dict
    coordinate_names: tuple
    invariant: str


def angular_momentum(state) -> np.ndarray:
    """L_z = x v_y - y v_x of states (..., 4)."""
    s = np.asarray(state, dtype=float)
    return s[..., 0] * s[..., 3] - s[..., 1] * s[..., 2]


def energy(state) -> np.ndarray:
    """E = |v|^2 / 2 - 1 / r of states (..., 4), G M = 1."""
    s = np.asarray(state, dtype=float)
    return 0.5 * (s[..., 2] ** 2 + s[..., 3] ** 2) - 1.0 / np.hypot(s[..., 0], s[..., 1])


def solve_kepler(mean_anomaly, eccentricity, iterations: int = 50) -> np.ndarray:
    """Eccentric anomaly E_a with ``E_a - e sin E_a = M`` (Newton's method, 0 <= e < 1)."""
    m = np.mod(np.asarray(mean_anomaly, dtype=float), 2 * np.pi)
    e = np.broadcast_to(np.asarray(eccentricity, dtype=float), m.shape)
    if np.any((e < 0) | (e >= 1)):
        raise ValueError(f"Bound orbits need 0 <= e < 1; received eccentricities in [{e.min()}, {e.max()}].")
    ea = np.where(e > 0.8, np.pi, m)  # a start from which Newton converges for every M
    for _ in range(iterations):
        step = (ea - e * np.sin(ea) - m) / (1.0 - e * np.cos(ea))
        ea = ea - step
        if np.max(np.abs(step)) < 1e-15:
            break
    return ea


def state_on_orbit(a, e, omega, sense, mean_anomaly) -> np.ndarray:
    """(x, y, v_x, v_y) at ``mean_anomaly`` on the ellipse (a, e), pericentre at angle ``omega``.

    ``sense`` is +1 (counter-clockwise, L_z > 0) or -1.
    """
    a, e, omega, sense = (np.asarray(v, dtype=float) for v in (a, e, omega, sense))
    ea = solve_kepler(mean_anomaly, e)
    cos_e, sin_e = np.cos(ea), np.sin(ea)
    b = a * np.sqrt(1.0 - e**2)
    rate = a**-1.5 / (1.0 - e * cos_e)  # dE_a/dt, mean motion n = a^(-3/2)
    xp, yp = a * (cos_e - e), sense * b * sin_e
    vxp, vyp = -a * sin_e * rate, sense * b * cos_e * rate
    c, s = np.cos(omega), np.sin(omega)
    return np.stack([c * xp - s * yp, s * xp + c * yp, c * vxp - s * vyp, s * vxp + c * vyp], axis=-1)


def rotate(state, angle) -> np.ndarray:
    """States (n, 4) turned by ``angle`` about the centre: a symmetry, so E and L_z do not change."""
    c, s = np.cos(angle), np.sin(angle)
    x, y, vx, vy = np.moveaxis(np.asarray(state, dtype=float), -1, 0)
    return np.stack([c * x - s * y, s * x + c * y, c * vx - s * vy, s * vx + c * vy], axis=-1)


def orbit_elements(energy_value, angular_momentum_value):
    """(a, e, sense) of the bound orbit with energy E < 0 and angular momentum L_z."""
    energy_value, l = np.asarray(energy_value, float), np.asarray(angular_momentum_value, float)
    a = -0.5 / energy_value
    e = np.sqrt(np.clip(1.0 + 2.0 * energy_value * l**2, 0.0, None))
    return a, e, np.where(l >= 0, 1.0, -1.0)


def _signed_uniform(rng, low, high, n):
    return rng.uniform(low, high, n) * rng.choice([-1.0, 1.0], n)


def sample_orbits(rng, n: int, conserved: str):
    """Energies and angular momenta of ``n`` orbits of data set ``conserved``."""
    if conserved == "angular_momentum":
        return np.full(n, -0.5), _signed_uniform(rng, 0.4, 1.0, n)
    if conserved == "energy":
        return rng.uniform(-0.5, -0.2, n), np.ones(n)
    if conserved == "both":
        en = rng.uniform(-0.5, -0.25, n)
        return en, _signed_uniform(rng, 0.4, 1.0, n) / np.sqrt(-2.0 * en)  # |L| <= 1/sqrt(-2E): circular orbit
    raise ValueError(f"conserved must be one of {CONSERVED}; received {conserved!r}.")


def _perturbed(rng, en, l, conserved, perturbation):
    """Neighbouring orbits: the varying quantity moved by a relative amount in ``perturbation``."""
    shift = rng.uniform(*perturbation, len(en)) * rng.choice([-1.0, 1.0], len(en))
    if conserved == "energy":
        lo, hi = -0.5, -0.2
        moved = en * (1 + shift)
        return np.where((moved < lo) | (moved > hi), en * (1 - shift), moved), l
    l_max = 1.0 / np.sqrt(-2.0 * en)
    moved = l * (1 + shift)
    moved = np.where(np.abs(moved) > l_max, l * (1 - shift), moved)
    if conserved == "both":
        en = np.clip(en * (1 + rng.uniform(-1, 1, len(en)) * perturbation[0]), -0.5, -0.25)
        moved = np.clip(moved, -1 / np.sqrt(-2 * en), 1 / np.sqrt(-2 * en))
    return en, moved


def simulate(n: int, seed: int, conserved: str = "angular_momentum", negatives: str = "permute",
             perturbation=(0.03, 0.3), orientation: str = "shared") -> PairData:
    """``n`` pairs of phase-space points, half on the same orbit (label 1), half not (label 0)."""
    if conserved not in CONSERVED:
        raise ValueError(f"conserved must be one of {CONSERVED}; received {conserved!r}.")
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}; received {negatives!r}.")
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}; received {orientation!r}.")
    if n < 4:
        raise ValueError(f"Need at least 4 pairs; received n={n}.")
    rng = np.random.default_rng(seed)
    en, l = sample_orbits(rng, n, conserved)
    a, e, sense = orbit_elements(en, l)
    omega = rng.uniform(0, 2 * np.pi, n)
    first = state_on_orbit(a, e, omega, sense, rng.uniform(0, 2 * np.pi, n))
    second = state_on_orbit(a, e, omega, sense, rng.uniform(0, 2 * np.pi, n))
    label = np.zeros(n)
    negative = rng.permutation(n)[: n - n // 2]
    label[np.setdiff1d(np.arange(n), negative)] = 1.0
    if negatives == "permute":
        # a cyclic shift of the shuffled negatives: every negative gets another orbit's E and L_z
        en2, l2 = en[np.roll(negative, 1)], l[np.roll(negative, 1)]
    else:
        en2, l2 = _perturbed(rng, en[negative], l[negative], conserved, tuple(perturbation))
    a2, e2, sense2 = orbit_elements(en2, l2)
    omega2 = omega[negative] if orientation == "shared" else rng.uniform(0, 2 * np.pi, len(negative))
    second[negative] = state_on_orbit(a2, e2, omega2, sense2, rng.uniform(0, 2 * np.pi, len(negative)))
    if orientation == "rotated":
        second = rotate(second, rng.uniform(0, 2 * np.pi, n))
    invariant = {"angular_momentum": "angular_momentum", "energy": "energy", "both": "angular_momentum"}[conserved]
    return PairData(
        first=first.astype("float32"),
        second=second.astype("float32"),
        label=label.astype("float32"),
        invariants_first={"angular_momentum": angular_momentum(first), "energy": energy(first)},
        invariants_second={"angular_momentum": angular_momentum(second), "energy": energy(second)},
        coordinate_names=COORDINATES,
        invariant=invariant,
    )
