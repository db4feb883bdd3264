"""MirroredStrategy over two virtual CPUs for the Keras-fit families: same update as one device.

TensorFlow fixes its devices at start-up, so each check runs in a fresh
interpreter that first splits the CPU into two logical devices.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.recipes import recipe_for

REPO = Path(__file__).resolve().parents[3]

SETUP = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, zoo
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def one_step(strategy, name, x, y, **overrides):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = zoo.load(name, pretrained=False, **overrides)
        model(x[:2])
        before = [np.array(w) for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=None if y is None else "binary_crossentropy")
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return [np.array(w) - b for w, b in zip(model.trainable_weights, before)]
"""

CNN = SETUP + """
rng = np.random.default_rng(1)
x = np.where(rng.random((8, 8, 8)) < 0.5, -1.0, 1.0).astype("float32")
y = (rng.random((8, 1)) < 0.5).astype("float32")
single = one_step(tf.distribute.get_strategy(), "ising-cnn", x, y, filters=[4], dense_units=4)
double = one_step(mirrored, "ising-cnn", x, y, filters=[4], dense_units=4)
print(json.dumps({"replicas": mirrored.num_replicas_in_sync,
                  "max_difference": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
                  "max_update": max(float(np.abs(a).max()) for a in single)}))
"""

RBM = SETUP + """
x = np.ones((400, 4, 4), "float32")  # every spin up: the positive phase dominates the first update
single = one_step(tf.distribute.get_strategy(), "rbm-ising-L8-T2.27", x, None, L=4, hidden_units=4, cd_steps=1)
double = one_step(mirrored, "rbm-ising-L8-T2.27", x, None, L=4, hidden_units=4, cd_steps=1)
norm = lambda updates: float(np.sqrt(sum(np.sum(u ** 2) for u in updates)))
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "ratio": norm(double) / norm(single)}))
"""


def run(code):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_classifier_step_on_two_replicas_equals_one_device():
    out = run(CNN)
    assert out["replicas"] == 2 and out["max_update"] > 1e-4
    assert out["max_difference"] < 1e-5 * max(1.0, out["max_update"] * 100), out


def test_rbm_contrastive_divergence_is_averaged_over_replicas():
    """Without dividing the CD loss by the replicas, the summed gradients would make the step twice as long."""
    out = run(RBM)
    assert out["replicas"] == 2 and 0.8 < out["ratio"] < 1.25, out


def test_multiworker_is_refused_with_the_reason():
    os.environ.pop("TF_CONFIG", None)
    with pytest.raises(ValueError, match="keras-team/keras#20585"):
        recipe_for("ising-cnn").distribution("multiworker", "float32")
