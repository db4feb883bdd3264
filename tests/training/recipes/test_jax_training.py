"""One training path on any backend: the skeleton trains a preset under JAX (a subprocess: Keras picks its
backend once per process) with TensorFlow made unimportable, as on an accelerator that has JAX alone, and the
folder it writes loads, exports and serves under TensorFlow.

Tiny budgets (the skeleton test's), so this checks the path, not the quality: the recipe's result is the same
up to floating point (the JAX parity test compares one step of each own-loss family number for number)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import zoo
from serving import export
from tests.training.recipes.test_skeleton import TINY_RUNS

pytest.importorskip("jax")
REPO = Path(__file__).resolve().parents[3]
ON_JAX = ["rbm-ising-L8-T2.27", "realnvp-phi4-L8", "ising-cnn"]
BLOCK_TENSORFLOW = """
import sys


class NoTensorFlow:  # as on an accelerator that has JAX and no TensorFlow
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_probability", "tf_keras"):
            raise ImportError(f"{name} is not installed on this machine")


sys.meta_path.insert(0, NoTensorFlow())
"""
TRAIN = BLOCK_TENSORFLOW + """
import dataclasses, json
import keras
assert keras.backend.backend() == "jax"
from training import recipes
from tests.training.recipes.test_skeleton import TINY_RUNS
name, workdir = sys.argv[1], sys.argv[2]
recipe = dataclasses.replace(recipes.recipe_for(name), epochs=1, **TINY_RUNS[name])
metadata = recipe.train_and_evaluate(workdir, verbose=0)
print(json.dumps({"training": metadata["training"], "versions": metadata["versions"]}))
"""


@pytest.mark.parametrize("name", ON_JAX)
def test_a_preset_trained_under_jax_exports_and_serves_under_tensorflow(name, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", TRAIN, name, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["training"]["backend"] == "jax" and record["versions"]["jax"]
    assert record["training"]["replicas"] == 1
    folder = tmp_path / "artifact"
    model = zoo.load(str(folder))
    path = export.export_preset(str(folder), tmp_path / "served")
    loaded = tf.saved_model.load(str(path))
    inputs = model.random_inputs(4, seed=2)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    for key, expected in model.run_endpoint("serving_default", inputs).items():
        np.testing.assert_allclose(served[key].numpy(), expected, rtol=1e-5,
                                   atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_the_accelerator_benchmark_runs_where_tensorflow_is_missing(tmp_path):
    """benchmarks/accelerator.py as a lent machine with JAX alone runs it (here on the CPU, two cheap families,
    tiny steps): TensorFlow unimportable in the script and in its 2-core child processes (a sitecustomize on
    the path blocks it in every interpreter), and a row per family with both timings."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    out = tmp_path / "accelerator.json"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    presets = ["rbm-ising-L8-T2.27", "siamese-minkowski"]
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "accelerator.py"), "--steps", "2",
                             "--budget-seconds", "1", "--out", str(out), "--presets", *presets], env=env,
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["tensorflow_imported"] is False
    for name in presets:
        row = results["families"][name]
        assert row["accelerator"]["steps_timed"] == row["two_cpu_cores"]["steps_timed"] == 2, row
        assert row["speedup_over_two_cores"] > 0


DATA_PARALLEL = """
import json, sys
import numpy as np
import keras
import zoo
from training.distribute import strategy_for


def one_epoch(name, strategy_name):
    strategy = strategy_for(strategy_name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = zoo.load(name)
        model.compile(optimizer=keras.optimizers.SGD(1e-2),
                      **({"loss": model.training_spec.loss} if model.training_spec.loss else {}))
        if name == "ising-cnn":
            x, y = model.random_inputs(32, seed=1)["spins"], (np.arange(32) % 2).astype("float32")[:, None]
        else:
            x, y = zoo.load(name).sample(32, 5, seed=0), None
        loss = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history["loss"][-1]
    devices = len(model.trainable_variables[0].value.sharding.device_set)  # replicated on every device
    return devices, float(loss), [keras.ops.convert_to_numpy(v).tolist() for v in model.trainable_variables]


print("RESULT " + json.dumps({name: {s: one_epoch(name, s) for s in ("cpu", "auto")} for name in sys.argv[1:]}))
"""


def test_data_parallel_over_two_devices_trains_as_one_device_does():
    """``--strategy auto`` under JAX (keras.distribution.DataParallel) on two host devices, as on two GPUs: each
    batch of 16 split 8 + 8, the gradients summed by XLA. The same epoch as on one device, a Keras-fit family
    and an own-loss family (whose chains are keyed by rows of the global batch), up to the float32 reordering
    of one gradient sum (1e-5 of the weights' scale is far above it and far below one SGD step's change)."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    names = ["ising-cnn", "rbm-ising-L8-T2.27"]
    result = subprocess.run([sys.executable, "-c", DATA_PARALLEL, *names], env=env, capture_output=True, text=True,
                            timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads([x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1][len("RESULT "):])
    for name in names:
        (one, one_loss, one_weights), (two, two_loss, two_weights) = runs[name]["cpu"], runs[name]["auto"]
        assert (one, two) == (1, 2), name
        scale = max(float(np.max(np.abs(w))) for w in one_weights)
        assert two_loss == pytest.approx(one_loss, rel=1e-5), name
        for a, b in zip(one_weights, two_weights):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5 * scale, err_msg=name)


def test_tf_distribute_strategies_are_refused_under_jax():
    script = ("from training.distribute import strategy_for\n"
              "try:\n    strategy_for('mirrored')\nexcept ValueError as e:\n    print(e)\n"
              "print(strategy_for('auto').num_replicas_in_sync)")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    refusal, replicas = result.stdout.strip().splitlines()[-2:]
    assert "--strategy mirrored names a tf.distribute strategy" in refusal and "--strategy auto" in refusal
    assert int(replicas) >= 1


def test_the_cli_refuses_a_backend_after_keras_is_imported():
    import keras

    from zoo_cli import choose_backend

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(ValueError, match=f"--backend {other} must be chosen before Keras is imported"):
        choose_backend(other)
    assert TINY_RUNS  # the budgets come from the skeleton test


def test_zoo_train_defaults_to_the_measured_faster_backend_of_the_family(monkeypatch):
    """training/faster_backends.json is what benchmarks/backends.py measured; the presets and families it names
    exist, a family is named only where its measured presets agree, a preset's own measurement comes first, and
    a preset of an unmeasured family, or a machine without JAX, trains on TensorFlow."""
    import importlib.util

    from zoo import registry
    from zoo_cli import FASTER_BACKENDS, faster_backend

    measured = json.loads(FASTER_BACKENDS.read_text())
    family_of = {row[0]: row[1] for row in registry.cached_index()}
    assert set(measured["presets"]) <= set(family_of)
    assert set(measured["families"]) <= {f.name for f in registry.list_families()}
    assert set(measured["presets"].values()) | set(measured["families"].values()) <= {"tensorflow", "jax"}
    for name, choice in measured["presets"].items():
        assert measured["families"].get(family_of[name], choice) == choice
    for name, family in family_of.items():
        expected = measured["presets"].get(name) or measured["families"].get(family, "tensorflow")
        assert faster_backend(name) == expected
    assert faster_backend("no-such-preset") == "tensorflow"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert faster_backend("rbm-ising-L8-T2.27") == "tensorflow"


def test_zoo_commands_under_jax_keep_their_compilations_for_the_next(tmp_path):
    """JAX's persistent compilation cache in the user's cache folder (every program, however small); a folder
    the user chose through JAX_COMPILATION_CACHE_DIR is the one used instead."""
    command = [sys.executable, "-m", "zoo", "evaluate", "siamese-minkowski", "--samples", "200", "--quiet"]
    base = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    base.pop("JAX_COMPILATION_CACHE_DIR", None)
    chosen = tmp_path / "chosen"
    for env in (base, dict(base, JAX_COMPILATION_CACHE_DIR=str(chosen))):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
    default = tmp_path / "xdg" / "physics-model-zoo" / "jax"
    assert default.is_dir() and any(default.iterdir())
    assert chosen.is_dir() and any(chosen.iterdir())
