"""What each SciNet card reports, measured on held-out simulator data."""
from __future__ import annotations

import numpy as np

from training.evaluation.metrics import bootstrap_error, polynomial_fit_r2, rms_with_error, wrapped_difference

TWO_PI = 2 * np.pi


def question_inputs(data) -> dict:
    return {"observations": data.observations, "question": data.question}


def prediction_error(model, data) -> float:
    """RMS error of a question SciNet's answers."""
    return prediction_metrics(model, data)["rms_error"]


def prediction_metrics(model, data) -> dict:
    """``rms_error`` of a question SciNet's answers, with its standard error over the samples."""
    value, error = rms_with_error(model.predict(question_inputs(data), verbose=0, batch_size=4096), data.answer)
    return {"rms_error": value, "rms_error_error": error}


def fit_r2_with_error(name: str, features, target, degree: int) -> dict:
    """``name``: R^2 of the best polynomial of ``degree`` in ``features`` for ``target``, and ``name_error``, its
    bootstrap error (the fit redone on each resample)."""
    features, target = np.asarray(features), np.asarray(target)
    return {name: polynomial_fit_r2(features, target, degree),
            f"{name}_error": bootstrap_error(lambda rows: polynomial_fit_r2(features[rows], target[rows], degree),
                                             len(target))}


def latent_r2(latents, physics, degree: int, prefix: str) -> dict:
    """R^2 of each latent explained by a polynomial of ``degree`` in the physical parameters, with errors."""
    metrics = {}
    for j in range(latents.shape[1]):
        metrics.update(fit_r2_with_error(f"latent_{j}_r2_{prefix}", physics, latents[:, j], degree))
    return metrics


def scaled(metrics: dict, name: str, source: str, scale: float) -> dict:
    """``metrics[source]`` and its error divided by ``scale``, as ``name`` and ``name_error``."""
    return {name: metrics[source] / scale, f"{name}_error": metrics[f"{source}_error"] / scale}


def pendulum_metrics(model, data) -> dict:
    """RMS error (A0 = 1, so also the fraction of A0) and how well the latents encode b and kappa."""
    latents = model.encode(data.observations)
    physics = np.stack([data.b, data.kappa], axis=1)
    metrics = prediction_metrics(model, data)
    metrics.update(scaled(metrics, "rms_error_fraction_of_A0", "rms_error", 1.0))
    metrics.update(latent_r2(latents, physics, 2, "quadratic_in_b_kappa"))
    metrics.update(fit_r2_with_error("b_r2_quadratic_in_latents", latents, data.b, 2))
    metrics.update(fit_r2_with_error("kappa_r2_quadratic_in_latents", latents, data.kappa, 2))
    return metrics


def collision_metrics(model, data) -> dict:
    """RMS position error and how linear the single latent is in the conserved angular momentum."""
    latents = model.encode(data.observations)
    metrics = prediction_metrics(model, data)
    metrics.update(latent_r2(latents, data.angular_momentum, 1, "linear_in_angular_momentum"))
    return metrics


def qubit_metrics(model, data) -> dict:
    return prediction_metrics(model, data)


def heliocentric_lift(initial_angles, heliocentric0):
    """Heliocentric angles (phi_E, phi_M) on the branch that is continuous in the observed angles.

    phi_E = theta_Sun + pi exactly; phi_M is shifted by a multiple of 2 pi to
    lie within pi of theta_Mars (Mars' heliocentric and geocentric directions
    never differ by more than arcsin(R_E / R_M) = 0.72 rad).
    """
    phi_e = initial_angles[:, 0] + np.pi
    phi_m = heliocentric0[:, 1] + TWO_PI * np.round((initial_angles[:, 1] - heliocentric0[:, 1]) / TWO_PI)
    return np.stack([phi_e, phi_m], axis=1)


def heliocentric_metrics(model, data, margin: float = 0.5) -> dict:
    """Wrapped RMS angle error over the 50 steps, and linearity of the latents in (phi_E, phi_M).

    The linear fit uses the samples whose observed angles are at least
    ``margin`` rad away from the +-pi cut, a range without wrap-around.
    """
    predicted = model.predict(data.initial_angles, verbose=0, batch_size=4096)
    wrapped = wrapped_difference(predicted, data.angles)
    error, error_error = rms_with_error(wrapped, np.zeros_like(wrapped))
    latents = model.encode(data.initial_angles)
    lift = heliocentric_lift(data.initial_angles, data.heliocentric[:, 0])
    interior = np.all(np.abs(data.initial_angles) < np.pi - margin, axis=1)
    metrics = {"rms_angle_error_rad": error, "rms_angle_error_rad_error": error_error}
    metrics.update(scaled(metrics, "rms_angle_error_fraction_of_2pi", "rms_angle_error_rad", TWO_PI))
    metrics.update(latent_r2(latents[interior], lift[interior], 1, "linear_in_heliocentric_angles"))
    return metrics


def reference_heliocentric_prediction(reference_model, initial_angles):
    """Run the authors' copernicus network on the zoo's convention.

    The original generator observes both bodies rotated by pi (its "theta_S" is
    phi_E, in [-0.2 pi, 2.2 pi), and its Mars angle is arg(r_E - r_M)), and
    predicts unwrapped angles; convert in, run, convert back and wrap.
    """
    sun = np.mod(initial_angles[:, 0] - np.pi, TWO_PI)
    mars = np.angle(np.exp(1j * (initial_angles[:, 1] - np.pi)))
    raw = reference_model.predict(np.stack([sun, mars], axis=1).astype("float32"), verbose=0, batch_size=4096)
    return np.angle(np.exp(1j * (raw + np.pi)))
