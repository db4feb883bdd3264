"""Crashes at every step of a checkpoint save and of a preset-folder write: the next run sees the old or the
new state, complete, and never starts over from nothing."""
import os

import keras
import numpy as np
import pytest

import zoo
from training import loop
from zoo import artifacts


class Crash(Exception):
    pass


def crash_at_replace(monkeypatch, module, call_number):
    """Make the ``call_number``-th os.replace of ``module`` raise (the rename never happens)."""
    calls = {"n": 0}
    real = os.replace

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise Crash(f"killed at rename {call_number}")
        return real(src, dst)

    monkeypatch.setattr(module.os, "replace", replace)


def crash_at_cleanup(monkeypatch, module):
    """Crash where the retired copy would be deleted once both renames are done (the last step of a swap)."""
    real = module.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if str(path).endswith("retired") and os.path.exists(path):
            raise Crash("killed before cleanup")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module.shutil, "rmtree", rmtree)


def crash_at(monkeypatch, module, step: str):
    """The three moments of a swap: before the first rename, between the two, before the cleanup."""
    if step == "after staging":
        crash_at_replace(monkeypatch, module, 1)
    elif step == "between the renames":
        crash_at_replace(monkeypatch, module, 2)
    else:
        crash_at_cleanup(monkeypatch, module)


def tiny_model():
    keras.utils.set_random_seed(0)
    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[4], decoder_units=[4])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def train_one_epoch(model):
    x = model.random_inputs(16, seed=1)
    model.fit(x, np.zeros((16, 1)), epochs=1, verbose=0)


@pytest.mark.parametrize("step", ["after staging", "between the renames", "before cleanup"])
def test_a_crash_in_a_checkpoint_save_keeps_a_complete_checkpoint(tmp_path, monkeypatch, step):
    model = tiny_model()
    train_one_epoch(model)
    loop.save_checkpoint(tmp_path, model, 1, {"loss": [1.0]})
    old_weights = [w.copy() for w in model.get_weights()]
    train_one_epoch(model)
    new_weights = model.get_weights()
    with monkeypatch.context() as patch:
        crash_at(patch, loop, step)
        with pytest.raises(Crash):
            loop.save_checkpoint(tmp_path, model, 2, {"loss": [1.0, 0.5]})
    resumed = tiny_model()
    epoch, history = loop.restore_checkpoint(tmp_path, resumed)
    expected = new_weights if step == "before cleanup" else old_weights
    assert epoch == (2 if step == "before cleanup" else 1) and len(history["loss"]) == epoch
    for a, b in zip(resumed.get_weights(), expected):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".checkpoint.staging.*")), "a killed save's staging folder is cleaned up"
    loop.save_checkpoint(tmp_path, resumed, epoch + 1, {"loss": [0.0] * (epoch + 1)})  # the next save works
    assert loop.restore_checkpoint(tmp_path, tiny_model())[0] == epoch + 1


def test_a_killed_save_leaves_no_staging_behind_after_the_next_restore(tmp_path):
    model = tiny_model()
    loop.save_checkpoint(tmp_path, model, 1, {"loss": [1.0]})
    (tmp_path / ".checkpoint.staging.abc").mkdir()  # what SIGKILL in the middle of a save leaves
    (tmp_path / ".checkpoint.staging.abc" / "model.weights.h5").write_bytes(b"half")
    assert loop.restore_checkpoint(tmp_path, tiny_model())[0] == 1
    assert not (tmp_path / ".checkpoint.staging.abc").exists()


@pytest.mark.parametrize("step", ["after staging", "between the renames", "before cleanup"])
def test_a_crash_in_a_preset_write_keeps_the_old_or_the_new_folder(tmp_path, monkeypatch, step):
    folder = tmp_path / "preset"
    model = tiny_model()
    artifacts.write_preset(folder, model, {"name": "old"})
    train_one_epoch(model)
    with monkeypatch.context() as patch:
        crash_at(patch, artifacts, step)
        with pytest.raises(Crash):
            artifacts.write_preset(folder, model, {"name": "new"}, force=True)
    loaded = zoo.load(folder)  # the next reader
    assert artifacts.verify_preset(folder)["name"] == ("new" if step == "before cleanup" else "old")
    assert loaded is not None and not list(tmp_path.glob(".preset.staging.*"))
