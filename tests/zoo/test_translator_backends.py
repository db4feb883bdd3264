"""The translator family gives the same numbers under JAX as under TensorFlow (see test_backends.py): every
endpoint of both presets (the distiller's latent recursion is a scan over the sites), the same error message
for a bad input, and one training step of each model, on the tiny config the family declares, from the same
weights: the truncated back-propagation of the translator and the distiller's windowed roll-out, differentiated
by ``OwnLossTraining`` on each backend, with ``fit`` and ``evaluate`` reporting the mean loss.

The JAX run is one subprocess, as Keras picks its backend once per process."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo

pytest.importorskip("jax")
REPO = Path(__file__).resolve().parents[2]
PRESETS = ("translator-schrodinger", "distiller-schrodinger-k2")
TRAINING_ROWS, TRAINING_SITES = 6, 20
TRAINING_WINDOWS = {"translator-schrodinger": {"window": 10}, "distiller-schrodinger-k2": {"rollout": 10}}

RUN = """
import pickle, sys
sys.path.insert(0, sys.argv[3])
import zoo.models.translator
imported_tensorflow = "tensorflow" in sys.modules  # before anything else could import it
import numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
from tests.zoo.test_translator_backends import run_endpoints, train_one_step
inputs = pickle.load(open(sys.argv[1], "rb"))
result = run_endpoints(inputs["endpoints"], inputs["bad"])
result["training"] = {name: train_one_step(name, weights) for name, weights in inputs["weights"].items()}
result["imported_tensorflow"] = imported_tensorflow
pickle.dump(result, open(sys.argv[2], "wb"))
"""


def tiny(name: str):
    """The preset with the family's ``tiny_overrides``, freshly initialised, and windows of half the training
    chain (two truncation windows of the translator, two roll-out windows of the distiller)."""
    spec = zoo.get_spec(name)
    return zoo.load(name, pretrained=False, **zoo.get_family(spec.family).tiny_config(spec), **TRAINING_WINDOWS[name])


def bad_inputs(model) -> dict:
    """Too few sites for the model (the distiller needs two), and a NaN."""
    check = model.endpoint("serving_default").check
    potentials = model.random_inputs(3, seed=5)["potentials"]
    potentials[1, 7] = np.nan
    return {"too few sites": np.zeros((2, check.min_sites - 1), "float32"), "NaN": potentials}


def run_endpoints(inputs: dict, bad: dict) -> dict:
    """In either backend: every endpoint of each preset on its inputs, and the message for each bad input."""
    outputs, messages = {}, {}
    for name in PRESETS:
        model = zoo.load(name)
        for endpoint in model.endpoints():
            for output, value in model.run_endpoint(endpoint.name, inputs[f"{name}|{endpoint.name}"]).items():
                outputs[f"{name}|{endpoint.name}|{output}"] = np.asarray(value)
        for case, potentials in bad[name].items():
            try:
                model.predict(potentials, verbose=0)
                messages[f"{name}|{case}"] = "accepted"
            except (ValueError, TypeError) as error:
                messages[f"{name}|{case}"] = f"{type(error).__name__}: {error}"
    return {"outputs": outputs, "messages": messages}


def training_data(model) -> tuple:
    """Potentials of ``TRAINING_SITES`` sites, and for the translator densities to fit."""
    from zoo.models.translator import SchrodingerDistiller

    potentials = model.random_inputs(TRAINING_ROWS, seed=1)["potentials"][:, :TRAINING_SITES]
    if isinstance(model, SchrodingerDistiller):
        return (potentials,)
    densities = 1.0 + 0.2 * np.sin(np.arange(TRAINING_SITES) / 5.0)
    return potentials, np.tile(densities, (TRAINING_ROWS, 1)).astype("float32")


def train_one_step(name: str, weights: list) -> dict:
    """One step of ``fit`` of the tiny model from ``weights``, then ``evaluate``: the losses and the largest change
    of a trainable weight."""
    import keras

    model = tiny(name)
    model.set_weights(weights)
    data = training_data(model)
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(*data, batch_size=TRAINING_ROWS, epochs=1, verbose=0, shuffle=False)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return {"loss": float(history.history["loss"][0]),
            "change": max(float(np.abs(a - b).max()) for a, b in zip(after, before)),
            "evaluate": float(model.evaluate(*data, batch_size=TRAINING_ROWS, verbose=0))}


@pytest.fixture(scope="module")
def tensorflow_and_jax(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("translator_backends")
    endpoints, bad = {}, {}
    for name in PRESETS:
        model = zoo.load(name)
        for endpoint in model.endpoints():
            endpoints[f"{name}|{endpoint.name}"] = model.random_inputs(5, seed=3, endpoint=endpoint.name)
        bad[name] = bad_inputs(model)
    keras.utils.set_random_seed(0)
    weights = {name: tiny(name).get_weights() for name in PRESETS}
    with open(folder / "inputs.pkl", "wb") as f:
        pickle.dump({"endpoints": endpoints, "bad": bad, "weights": weights}, f)
    expected = run_endpoints(endpoints, bad)
    expected["training"] = {name: train_one_step(name, w) for name, w in weights.items()}
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", RUN, str(folder / "inputs.pkl"), str(folder / "jax.pkl"),
                             str(REPO)], env=env, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(folder / "jax.pkl", "rb") as f:
        return expected, pickle.load(f)


@pytest.mark.parametrize("name", PRESETS)
def test_every_endpoint_gives_tensorflows_numbers(tensorflow_and_jax, name):
    """To 1e-4 of the output's scale: float32 in another order of operations along a recurrence of 60 sites."""
    expected, measured = tensorflow_and_jax
    keys = [k for k in expected["outputs"] if k.startswith(name + "|")]
    assert len(keys) == len(zoo.load(name).endpoints())
    for k in keys:
        assert measured["outputs"][k].shape == expected["outputs"][k].shape, k
        scale = max(float(np.max(np.abs(expected["outputs"][k]))), 1e-6)
        np.testing.assert_allclose(measured["outputs"][k], expected["outputs"][k], rtol=0, atol=1e-4 * scale,
                                   err_msg=k)


def test_bad_input_gets_the_same_message(tensorflow_and_jax):
    expected, measured = tensorflow_and_jax
    assert len(expected["messages"]) == 2 * len(PRESETS)
    for key, message in expected["messages"].items():
        assert message != "accepted", key
        assert measured["messages"][key] == message, key


@pytest.mark.parametrize("name", PRESETS)
def test_one_training_step_moves_the_same_way(tensorflow_and_jax, name):
    """From the same weights and without draws, JAX's step is TensorFlow's up to float32; ``fit`` and
    ``evaluate`` report the loss tracker's mean on both (a tracker left alone under JAX would report 0)."""
    expected, measured = tensorflow_and_jax
    report, got = expected["training"][name], measured["training"][name]
    assert np.isfinite(got["loss"]) and got["loss"] > 0 and got["change"] > 0, got
    assert got["loss"] == pytest.approx(report["loss"], rel=1e-4), got
    assert got["change"] == pytest.approx(report["change"], rel=1e-3), got
    assert got["evaluate"] == pytest.approx(report["evaluate"], rel=1e-3), got
    assert got["evaluate"] != pytest.approx(got["loss"], rel=1e-6), "evaluate saw the weights before the step"


def test_the_module_does_not_import_tensorflow(tensorflow_and_jax):
    """Only the TF Serving export's input check imports TensorFlow, when it is traced."""
    assert not tensorflow_and_jax[1]["imported_tensorflow"]
