"""Resumable Keras training: a checkpoint after every epoch, resume after Ctrl-C.

The checkpoint folder holds the model weights, the optimizer's variables and
the history so far; it is written to a staging folder and renamed into place,
so an interrupt at any moment leaves the previous checkpoint usable.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np

CHECKPOINT_DIR = "checkpoint"
RETIRED_DIR = ".checkpoint.retired"
STAGING_PREFIX = ".checkpoint.staging."


def _optimizer_file(name: str) -> str:
    return "optimizer.npz" if name == "optimizer" else f"optimizer-{name}.npz"


def save_checkpoint(workdir, model, epoch: int, history: dict) -> None:
    """Weights, every optimizer the model declares and the history, as one folder that appears whole.

    The folder is written to a staging sibling, the previous checkpoint is renamed
    aside, the new one renamed into place, and only then is the previous one deleted:
    a crash at any point leaves a complete checkpoint that :func:`restore_checkpoint` finds.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=workdir, prefix=STAGING_PREFIX))
    try:
        model.save_weights(staging / "model.weights.h5")
        for name, (optimizer, variables) in model.optimizers_to_checkpoint().items():
            if not optimizer.built:  # saved before its first step: the same variables restore will build
                optimizer.build(variables)
            np.savez(staging / _optimizer_file(name), *[np.asarray(v.numpy()) for v in optimizer.variables])
        (staging / "progress.json").write_text(json.dumps({"epoch": epoch, "history": history}))
        _replace_checkpoint(workdir, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_checkpoint(workdir: Path, staging: Path) -> None:
    target, retired = workdir / CHECKPOINT_DIR, workdir / RETIRED_DIR
    if target.exists():  # target is complete, so an older retired copy is no longer needed
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return (folder / "progress.json").is_file()


def _usable_checkpoint(workdir: Path) -> Path | None:
    """The checkpoint folder to resume from: the current one, else the retired one a crash left behind."""
    for stale in workdir.glob(STAGING_PREFIX + "*"):  # a killed save's half-written folder
        shutil.rmtree(stale, ignore_errors=True)
    for folder in (workdir / CHECKPOINT_DIR, workdir / RETIRED_DIR):
        if _complete(folder):
            return folder
    return None


def restore_checkpoint(workdir, model):
    """Load the last checkpoint into ``model`` and all its optimizers; return (epoch, history) or (0, {})."""
    workdir = Path(workdir)
    folder = _usable_checkpoint(workdir) if workdir.exists() else None
    if folder is None:
        return 0, {}
    progress = json.loads((folder / "progress.json").read_text())
    with warnings.catch_warnings():  # the optimizers' state comes from their own files just below
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(folder / "model.weights.h5")
    for name, (optimizer, variables) in model.optimizers_to_checkpoint().items():
        optimizer.build(variables)
        with np.load(folder / _optimizer_file(name)) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(optimizer.variables):
            raise ValueError(
                f"The checkpoint in {folder} holds {len(values)} variables of optimizer {name!r} but this model's "
                f"has {len(optimizer.variables)}: it was written for another configuration. Remove it to start over."
            )
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)
    if folder.name == RETIRED_DIR:  # promote it, so the next save retires it properly
        os.replace(folder, workdir / CHECKPOINT_DIR)
    return progress["epoch"], progress["history"]


def training_seconds(workdir) -> float:
    """Wall time of all epochs recorded in ``workdir``'s checkpoint, across resumes."""
    progress = Path(workdir) / CHECKPOINT_DIR / "progress.json"
    if not progress.exists():
        return 0.0
    return float(sum(json.loads(progress.read_text())["history"].get("epoch_seconds", [])))


class _EpochCheckpoint(keras.callbacks.Callback):
    def __init__(self, workdir, history):
        super().__init__()
        self.workdir, self.history_so_far, self.epoch_start = workdir, history, time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history_so_far.setdefault(key, []).append(float(value))
        self.history_so_far.setdefault("epoch_seconds", []).append(time.time() - self.epoch_start)
        save_checkpoint(self.workdir, self.model, epoch + 1, self.history_so_far)


class KLWarmup(keras.callbacks.Callback):
    """Ramp the KL weight (a model variable ``kl_weight``) linearly from 0 to ``beta`` over ``epochs``."""

    def __init__(self, beta: float, epochs: int):
        super().__init__()
        self.beta, self.epochs = beta, epochs

    def on_epoch_begin(self, epoch, logs=None):
        fraction = 1.0 if self.epochs <= 0 else min(1.0, epoch / self.epochs)
        self.model.kl_weight.assign(self.beta * fraction)


def fit_resumable(model, optimizer, loss, train, validation, epochs: int, batch_size: int, workdir,
                  callbacks=(), verbose: int = 2, jit_compile="auto") -> dict:
    """Compile and fit ``model`` on ``train = (x, y)``, resuming from ``workdir``'s checkpoint.

    ``loss`` is the model's declared loss, or None for a model with its own
    ``train_step`` (``y`` is then None); the checkpoint keeps every optimizer that
    ``model.optimizers_to_checkpoint()`` names.

    Returns the history of every epoch, those before a resume included, with
    ``epoch_seconds`` (the wall time of each epoch). ``jit_compile`` goes to ``compile`` (Keras' "auto" leaves
    XLA off for a model with its own ``train_step``; True compiles the whole step).
    """
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile)
    done, history = restore_checkpoint(workdir, model)
    if done >= epochs:
        return history
    if done and verbose:
        print(f"Resuming from the checkpoint in {workdir} after epoch {done} of {epochs}.", flush=True)
    checkpoint = _EpochCheckpoint(workdir, history)
    model.fit(
        train[0], train[1], validation_data=validation, epochs=epochs, initial_epoch=done,
        batch_size=batch_size, shuffle=True, verbose=verbose, callbacks=[*callbacks, checkpoint],
    )
    return history
