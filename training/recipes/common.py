"""What every family's recipe writes the same way: targets, metadata, versions, figures."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import platform

import keras
import numpy as np
import tensorflow as tf

import zoo

COMPARISONS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def check_targets(targets, metrics: dict) -> list:
    """``targets`` as (metric, comparison, value) -> the card's rows with the measured value and whether it is met."""
    return [
        {"metric": m, "comparison": op, "target": t, "measured": metrics.get(m),
         "met": bool(m in metrics and COMPARISONS[op](metrics[m], t))}
        for m, op, t in targets
    ]


def jsonable(value):
    """``value`` with numpy scalars and arrays turned into plain JSON types."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__}


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}"


def run_metadata(recipe, metrics: dict, targets, history: dict, data: dict, **extra) -> dict:
    """metadata.json of a trained preset: metrics and targets, recipe, data seeds, training record, versions.

    ``recipe`` is a frozen dataclass with a ``preset`` field; ``data`` describes
    the simulator (name, parameter ranges, seeds, sizes, options).
    """
    spec = zoo.get_spec(recipe.preset)
    return {
        "name": recipe.preset,
        "family": spec.family,
        "zoo_version": zoo.__version__,
        "metrics": jsonable(metrics),
        "targets": check_targets(targets, metrics),
        "recipe": {"function": spec.recipe, "hyperparameters": jsonable(dataclasses.asdict(recipe))},
        "data": jsonable(data),
        "training": {
            "epochs": len(history.get("loss", [])),
            "final_loss": history.get("loss", [None])[-1],
            "final_val_loss": history.get("val_loss", [None])[-1],
            "train_seconds_final_model": float(sum(history.get("epoch_seconds", []))),
            "machine": machine(),
        },
        "versions": versions(),
        **jsonable(extra),
    }


def cosine_adam(learning_rate: float, final_learning_rate: float, steps: int, clipnorm: float | None = None):
    """Adam whose learning rate decays along a cosine from ``learning_rate`` to ``final_learning_rate`` over ``steps``."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps), alpha=final_learning_rate / learning_rate)
    return keras.optimizers.Adam(schedule, clipnorm=clipnorm)


def render_to_png(draw, *args, panels: int = 2, size=(9, 3.6)) -> bytes:
    """Call ``draw(axes, *args)`` on ``panels`` side-by-side axes and return the PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=size, dpi=80)
    draw(axes, *args)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
