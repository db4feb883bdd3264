"""What every family's recipe writes the same way: targets, metadata, versions, figures."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
from pathlib import Path

import keras
import numpy as np

import zoo


@dataclasses.dataclass(frozen=True, kw_only=True)
class Seeds:
    """Simulator seeds of a recipe, shared by every family.

    Training and validation data come from seeds 1 and 2; the card's numbers
    come from ``evaluation_seed`` alone, and the tests' held-out checks from
    31337: a model is never scored on data from a seed it was trained on.
    """

    train_seed: int = 1
    validation_seed: int = 2
    evaluation_seed: int = 1_000_003


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
    return {"python": platform.python_version(), "backend": keras.backend.backend(), "keras": keras.__version__,
            **_backend_version(),
            "numpy": np.__version__}


def _backend_version() -> dict:
    """The version of the framework under Keras that trained: {"tensorflow": "2.21.0"} or {"jax": "0.10.2"}."""
    import importlib

    backend = keras.backend.backend()
    return {backend: getattr(importlib.import_module(backend), "__version__", "unknown")}


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}"


def data_record(recipe, simulator: str, parameter_ranges, options, **extra) -> dict:
    """The "data" entry of metadata.json: simulator, ranges, options, seeds and sizes from ``recipe``."""
    return {
        "simulator": simulator, "parameter_ranges": parameter_ranges, "options": options,
        "train_seed": recipe.train_seed, "validation_seed": recipe.validation_seed,
        "evaluation_seed": recipe.evaluation_seed, "n_train": recipe.n_train, "n_evaluation": recipe.n_evaluation,
        **extra,
    }


def run_metadata(recipe, metrics: dict, targets: list, history: dict, data: dict, training: dict | None = None,
                 **extra) -> dict:
    """metadata.json of a trained preset: metrics and targets, recipe, data seeds, training record, versions.

    ``recipe`` is a frozen dataclass with a ``preset`` field; ``targets`` are
    rows of :func:`check_targets`; ``data`` describes the simulator (name,
    parameter ranges, seeds, sizes, options); ``training`` adds to the
    training record; ``extra`` adds top-level entries.
    """
    spec = zoo.get_spec(recipe.preset)
    return {
        "name": recipe.preset,
        "family": spec.family,
        "family_module": zoo.get_family(spec.family).module,
        "zoo_version": zoo.__version__,
        "metrics": jsonable(metrics),
        "targets": targets,
        "recipe": {"class": f"{type(recipe).__module__}.{type(recipe).__qualname__}",
                   "hyperparameters": jsonable(dataclasses.asdict(recipe))},
        "data": jsonable(data),
        "training": {
            "epochs": len(history.get("loss", [])),
            "final_loss": history.get("loss", [None])[-1],
            "final_val_loss": history.get("val_loss", [None])[-1],
            "train_seconds_final_model": float(sum(history.get("epoch_seconds", []))),
            "machine": machine(),
            **(training or {}),
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


# ---------------------------------------------------------------------------- scan members shipped with a preset

MEMBER_WEIGHTS = "member.weights.h5"  # a scan member's weights in its training folder
SCAN_PREFIX, SCAN_SUFFIX = "scan-k", ".weights.h5"  # a preset folder's scan member: scan-kK.weights.h5


def scan_member_file(size: int) -> str:
    """The preset folder's file of the scan member with ``size`` latent variables."""
    return f"{SCAN_PREFIX}{int(size)}{SCAN_SUFFIX}"


def save_scan_member(model, member_dir) -> None:
    """Keep a trained scan member's weights in its training folder, for the preset to ship (without the
    optimizer's state, as the preset's own weights)."""
    zoo.artifacts.inference_copy(model).save_weights(str(Path(member_dir) / MEMBER_WEIGHTS))


def scan_member_files(member_dirs: dict) -> dict:
    """Preset file name -> weights bytes of each trained scan member (size -> its training folder)."""
    return {scan_member_file(size): (Path(folder) / MEMBER_WEIGHTS).read_bytes()
            for size, folder in sorted(member_dirs.items()) if (Path(folder) / MEMBER_WEIGHTS).exists()}


def shipped_scan_members(folder, build) -> dict:
    """Size -> scan member of the preset ``folder`` (``build(size)`` makes the untrained network; zoo.load
    has checked every file's sha256); {} when the folder ships none."""
    members = {}
    for size in sorted(_shipped_sizes(folder)):
        member = build(size)
        member.load_weights(str(Path(folder) / scan_member_file(size)))
        members[size] = member
    return members


def _shipped_sizes(folder) -> list:
    return [int(p.name[len(SCAN_PREFIX):-len(SCAN_SUFFIX)]) for p in Path(folder).glob(f"{SCAN_PREFIX}*{SCAN_SUFFIX}")]
