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


def save_checkpoint(workdir, model, optimizer, epoch: int, history: dict) -> None:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=workdir, prefix=".checkpoint.staging."))
    try:
        model.save_weights(staging / "model.weights.h5")
        np.savez(staging / "optimizer.npz", *[np.asarray(v.numpy()) for v in optimizer.variables])
        (staging / "progress.json").write_text(json.dumps({"epoch": epoch, "history": history}))
        target, retired = workdir / CHECKPOINT_DIR, workdir / ".checkpoint.retired"
        shutil.rmtree(retired, ignore_errors=True)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def restore_checkpoint(workdir, model, optimizer):
    """Load the last checkpoint into ``model`` and ``optimizer``; return (epoch, history) or (0, {})."""
    folder = Path(workdir) / CHECKPOINT_DIR
    if not (folder / "progress.json").exists():
        return 0, {}
    progress = json.loads((folder / "progress.json").read_text())
    with warnings.catch_warnings():  # the optimizer's state comes from optimizer.npz just below
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(folder / "model.weights.h5")
    optimizer.build(model.trainable_variables)
    with np.load(folder / "optimizer.npz") as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"The checkpoint in {folder} holds {len(values)} optimizer variables but this model's optimizer "
            f"has {len(optimizer.variables)}: it was written for another configuration. Remove it to start over."
        )
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
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
        save_checkpoint(self.workdir, self.model, self.model.optimizer, epoch + 1, self.history_so_far)


class KLWarmup(keras.callbacks.Callback):
    """Ramp the KL weight (a model variable ``kl_weight``) linearly from 0 to ``beta`` over ``epochs``."""

    def __init__(self, beta: float, epochs: int):
        super().__init__()
        self.beta, self.epochs = beta, epochs

    def on_epoch_begin(self, epoch, logs=None):
        fraction = 1.0 if self.epochs <= 0 else min(1.0, epoch / self.epochs)
        self.model.kl_weight.assign(self.beta * fraction)


def fit_resumable(model, optimizer, loss, train, validation, epochs: int, batch_size: int, workdir,
                  callbacks=(), verbose: int = 2) -> dict:
    """Compile and fit ``model`` on ``train = (x, y)``, resuming from ``workdir``'s checkpoint.

    Returns the history of every epoch, those before a resume included, with
    ``epoch_seconds`` (the wall time of each epoch).
    """
    model.compile(optimizer=optimizer, loss=loss)
    done, history = restore_checkpoint(workdir, model, optimizer)
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
