"""A free particle collides with a body that rotates on a circle: angular momentum is conserved.

The setting of SciNet's angular-momentum experiment (Iten et al. 2020): two
unit masses; the rotating one is held on the unit circle around the origin,
at angle alpha(t) = alpha0 + w t, angular momentum L_rot = w; the free one
moves on a straight line with velocity (v_x, v_y) and angular momentum about
the origin L_free = x v_y - y v_x. They meet at (0, 1) at t_col. After the
collision the free particle leaves with a new velocity (v_x', v_y') from
(0, 1), so L_free' = -v_x', and conservation of the total

    L = w - v_x = w' - v_x'

fixes the rotating body's new angular velocity w' = L + v_x'. SciNet sees
both particles before the collision, is asked about the free particle after
it, and must predict the rotating body's position at a later time: it needs
exactly one number from the observation, L.

Observation (30): 5 noisy times each, grouped by quantity: x, y, t of the free
particle, then x, y, t of the rotating one (t in [0, t_col]).
Question (16): x, y, t of the free particle at 5 times after the collision,
grouped by quantity, then the prediction time t_p in [0, 4].
Answer (2): (cos, sin) of the rotating body's angle at t_p after the collision.
Ranges: v_x in [1, 2], v_y in [-1, 1], w in [1, 3], x0 in [-3, -1],
v_x', v_y' in [-2, 2]; position noise 0.01 (all as in the authors' generator).
"""
from __future__ import annotations

import dataclasses

import numpy as np

SAMPLES = 5
NOISE = 0.01
PARAMETER_RANGES = {
    "v_x": [1, 2], "v_y": [-1, 1], "w": [1, 3], "x0": [-3, -1], "v_x_after": [-2, 2], "v_y_after": [-2, 2],
    "prediction_time": [0, 4], "position_noise_sigma": NOISE, "masses": 1, "radius": 1,
}


def _jittered_times(rng, end, n):
    """``SAMPLES`` times on [0, end] with jitter of half a step; the first is 0."""
    grid = np.linspace(0.0, 1.0, SAMPLES)[None, :] * end[:, None]
    step = end[:, None] / (SAMPLES - 1)
    times = grid + rng.uniform(-0.5, 0.5, size=(n, SAMPLES)) * step
    times[:, 0] = 0.0
    return times


@dataclasses.dataclass
class CollisionData:
    """observations (n, 30), question (n, 16), answer (n, 2), and the conserved L (n,)."""

    observations: np.ndarray
    question: np.ndarray
    answer: np.ndarray
    angular_momentum: np.ndarray
    parameters: dict


def simulate(n: int, seed: int, noise: float = NOISE) -> CollisionData:
    rng = np.random.default_rng(seed)
    vx, vy = rng.uniform(1, 2, n), rng.uniform(-1, 1, n)
    w = rng.uniform(1, 3, n)
    x0 = rng.uniform(-3, -1, n)
    vx_out, vy_out = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    t_predict = rng.uniform(0, 4, n)
    t_col = -x0 / vx
    y0 = 1.0 - t_col * vy  # the free particle reaches (0, 1) at t_col
    alpha0 = np.pi / 2 - w * t_col  # so does the rotating body

    def jitter(shape):
        return rng.normal(0.0, noise, size=shape) if noise else 0.0

    t_free = _jittered_times(rng, t_col, n)
    t_rot = _jittered_times(rng, t_col, n)
    t_after = _jittered_times(rng, np.full(n, 4.0), n)
    shape = (n, SAMPLES)
    free = [x0[:, None] + vx[:, None] * t_free + jitter(shape), y0[:, None] + vy[:, None] * t_free + jitter(shape), t_free]
    angle = alpha0[:, None] + w[:, None] * t_rot
    rot = [np.cos(angle) + jitter(shape), np.sin(angle) + jitter(shape), t_rot]
    after = [vx_out[:, None] * t_after + jitter(shape), 1.0 + vy_out[:, None] * t_after + jitter(shape), t_after]

    angular_momentum = w - vx
    w_out = angular_momentum + vx_out
    final_angle = np.pi / 2 + w_out * t_predict
    answer = np.stack([np.cos(final_angle), np.sin(final_angle)], axis=1) + jitter((n, 2))
    return CollisionData(
        observations=np.concatenate(free + rot, axis=1).astype("float32"),
        question=np.concatenate(after + [t_predict[:, None]], axis=1).astype("float32"),
        answer=answer.astype("float32"),
        angular_momentum=angular_momentum.astype("float32"),
        parameters=dict(x0=x0, y0=y0, vx=vx, vy=vy, alpha0=alpha0, w=w, vx_out=vx_out, vy_out=vy_out, t_predict=t_predict),
    )
