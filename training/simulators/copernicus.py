"""The inner solar system seen from Earth: angles of the Sun and Mars in the sky.

Earth and Mars move on circular, coplanar orbits around the Sun (the setting
of Copernicus, and of SciNet's heliocentric experiment, Iten et al. 2020):

    r_Earth(t) = R_E (cos phi_E(t), sin phi_E(t)),   phi_E(t) = phi_E(0) + 2 pi t / T_E
    r_Mars(t)  = R_M (cos phi_M(t), sin phi_M(t)),   phi_M(t) = phi_M(0) + 2 pi t / T_M

An observer on Earth sees the Sun at theta_Sun = arg(r_Sun - r_Earth) = phi_E + pi
and Mars at theta_Mars = arg(r_Mars - r_Earth), both wrapped to (-pi, pi].
Mars' apparent motion is retrograde around opposition, which is what made the
geocentric description need epicycles.

Units: distances in AU, times in days, angles in radians.
"""
from __future__ import annotations

import dataclasses

import numpy as np

EARTH_ORBIT_RADIUS_AU = 1.0
MARS_ORBIT_RADIUS_AU = 1.52366  # semi-major axis of Mars, AU
EARTH_PERIOD_DAYS = 365.26  # sidereal year
MARS_PERIOD_DAYS = 686.98  # sidereal period of Mars
SYNODIC_PERIOD_DAYS = 1.0 / (1.0 / EARTH_PERIOD_DAYS - 1.0 / MARS_PERIOD_DAYS)  # opposition to opposition, ~780 days
PARAMETER_RANGES = {
    "phi_Earth(0)": [0, "2 pi"], "phi_Mars(0)": [0, "2 pi"], "R_Earth_AU": EARTH_ORBIT_RADIUS_AU,
    "R_Mars_AU": MARS_ORBIT_RADIUS_AU, "T_Earth_days": EARTH_PERIOD_DAYS, "T_Mars_days": MARS_PERIOD_DAYS,
    "observations": "50, every 7 days",
}


def wrap(angle):
    """Angles mapped to (-pi, pi]."""
    wrapped = np.angle(np.exp(1j * np.asarray(angle)))
    return np.where(wrapped == -np.pi, np.pi, wrapped)


def heliocentric_angles(phi_earth0, phi_mars0, days):
    """phi_E(t), phi_M(t) (unwrapped) for start angles (n,) and times (steps,): each (n, steps)."""
    days = np.asarray(days, dtype=float)[None, :]
    phi_e = np.asarray(phi_earth0, dtype=float)[:, None] + 2 * np.pi * days / EARTH_PERIOD_DAYS
    phi_m = np.asarray(phi_mars0, dtype=float)[:, None] + 2 * np.pi * days / MARS_PERIOD_DAYS
    return phi_e, phi_m


def sky_angles(phi_earth, phi_mars):
    """(theta_Sun, theta_Mars) seen from Earth for heliocentric angles; stacked on the last axis."""
    earth = EARTH_ORBIT_RADIUS_AU * np.exp(1j * np.asarray(phi_earth))
    mars = MARS_ORBIT_RADIUS_AU * np.exp(1j * np.asarray(phi_mars))
    return np.stack([wrap(np.angle(-earth)), wrap(np.angle(mars - earth))], axis=-1)


@dataclasses.dataclass
class SkySeries:
    """Observed sky angles and the hidden heliocentric angles behind them.

    Attributes:
        initial_angles: (n, 2) theta_Sun, theta_Mars at t = 0.
        angles: (n, steps, 2) theta_Sun, theta_Mars at t = 0, dt, ..., wrapped.
        heliocentric: (n, steps, 2) phi_Earth, phi_Mars, unwrapped (phi(0) in [0, 2 pi)).
        days: (steps,) observation times.
    """

    initial_angles: np.ndarray
    angles: np.ndarray
    heliocentric: np.ndarray
    days: np.ndarray


def simulate(n: int, seed: int, steps: int = 50, step_days: float = 7.0) -> SkySeries:
    """``n`` weekly series of the Sun and Mars seen from Earth, uniform random start positions."""
    rng = np.random.default_rng(seed)
    phi0 = rng.uniform(0.0, 2 * np.pi, size=(2, n))
    days = step_days * np.arange(steps)
    phi_e, phi_m = heliocentric_angles(phi0[0], phi0[1], days)
    angles = sky_angles(phi_e, phi_m).astype("float32")
    helio = np.stack([phi_e, phi_m], axis=-1).astype("float32")
    return SkySeries(initial_angles=angles[:, 0, :].copy(), angles=angles, heliocentric=helio, days=days)
