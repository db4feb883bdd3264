"""The same numbers under JAX (and torch, where installed) as under TensorFlow, one shipped preset per family, in
one subprocess per backend (Keras picks its backend once per process): every endpoint on random valid inputs,
the seeded samplers (the same per-row seeds give the same draws), the same error message for a bad input, and
under JAX one training step (torch serves inference only).

The seeded draws come from zoo.models.backend's counter-based generator, exact integer arithmetic up to the
last float32 step, so a sampler agrees with TensorFlow's as closely as a deterministic endpoint does."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo

REPO = Path(__file__).resolve().parents[2]
# CaloGAN's endpoints and two-optimizer step have their own JAX test (test_calogan_backends.py): under JAX its
# construction alone compiles a minute of initializers, which this shared subprocess need not pay twice
ONE_PER_FAMILY = ["scinet-heliocentric", "ising-cnn", "rbm-ising-L8-T2.27", "siamese-minkowski",
                  "translator-schrodinger", "distiller-schrodinger-k2", "realnvp-phi4-L8", "jet-cnn-w-vs-qcd"]
BAD_INPUT_ROWS = 3


def endpoint_keys(name: str) -> list:
    return [f"{name}|{e.name}" for e in zoo.load(name).endpoints() if not e.stochastic]


def bad_inputs(model, endpoint: str) -> dict:
    """Valid inputs but the first: infinite (every family's check refuses a non-finite value)."""
    inputs = model.random_inputs(BAD_INPUT_ROWS, seed=5, endpoint=endpoint)
    first = next(iter(inputs))
    if np.issubdtype(inputs[first].dtype, np.floating):
        inputs[first] = inputs[first].copy()
        inputs[first].flat[0] = np.inf
    else:  # seeds: a negative one
        inputs[first] = inputs[first].copy()
        inputs[first][0] = -4
    return inputs


def run_everything(inputs: dict, keys: list) -> dict:
    """Run in either backend: the endpoints, the seeded RBM sampler and the bad-input messages."""
    outputs, messages = {}, {}
    for key in keys:
        name, endpoint = key.split("|")
        model = zoo.load(name)
        x = {k.split("|")[2]: inputs[k] for k in inputs if k.startswith(key + "|")}
        for output, value in model.run_endpoint(endpoint, x).items():
            outputs[f"{key}|{output}"] = np.asarray(value)
        bad = {k.split("|")[2]: inputs[k] for k in inputs if k.startswith("bad|" + key + "|")}
        try:
            model.run_endpoint(endpoint, bad)
            messages[key] = "accepted"
        except (ValueError, TypeError) as error:
            messages[key] = f"{type(error).__name__}: {error}"
    outputs["rbm-ising-L8-T2.27|sample(seed)"] = zoo.load("rbm-ising-L8-T2.27").sample(8, 20, seed=3)
    return {"outputs": outputs, "messages": messages}


RUN = """
import json, os, pickle, sys
import numpy as np
import keras
assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
sys.path.insert(0, sys.argv[4])
from tests.zoo.test_backends import run_everything, train_one_step
inputs = dict(np.load(sys.argv[1]))
result = run_everything(inputs, json.loads(sys.argv[2]))
if keras.backend.backend() == "jax":
    result["training"] = train_one_step()
pickle.dump(result, open(sys.argv[3], "wb"))
"""


def train_one_step() -> dict:
    """One step of fit per own-loss family on a tiny batch: the loss and the largest weight change."""
    import keras

    report = {}
    for name, data in [("rbm-ising-L8-T2.27", zoo.load("rbm-ising-L8-T2.27").sample(16, 5, seed=0)),
                       ("realnvp-phi4-L8", np.zeros((16, 1), "float32")),
                       ("ising-cnn", None)]:
        model = zoo.load(name)
        before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        if data is None:  # a family on Keras' own train_step: a supervised batch
            x = model.random_inputs(16, seed=1)["spins"]
            y = (np.arange(16) % 2).astype("float32")[:, None]
            model.compile(optimizer=keras.optimizers.SGD(1e-2), loss=model.training_spec.loss)
            history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        else:
            model.compile(optimizer=keras.optimizers.SGD(1e-2))
            history = model.fit(data, batch_size=16, epochs=1, verbose=0, shuffle=False)
        after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        report[name] = {"loss": float(history.history["loss"][0]),
                        "change": max(float(np.abs(a - b).max()) for a, b in zip(after, before))}
    return report


@pytest.fixture(scope="module")
def tensorflow_run(tmp_path_factory):
    """The inputs (written for the other backends' processes) and TensorFlow's answers."""
    folder = tmp_path_factory.mktemp("backends")
    keys = [key for name in ONE_PER_FAMILY for key in endpoint_keys(name)]
    inputs = {}
    for key in keys:
        name, endpoint = key.split("|")
        model = zoo.load(name)
        inputs.update({f"{key}|{k}": v for k, v in model.random_inputs(5, seed=3, endpoint=endpoint).items()})
        inputs.update({f"bad|{key}|{k}": v for k, v in bad_inputs(model, endpoint).items()})
    np.savez(folder / "inputs.npz", **inputs)
    expected = run_everything(inputs, keys)
    expected["training"] = train_one_step()
    return folder, keys, expected


@pytest.fixture(scope="module", params=["jax", "torch"])
def tensorflow_and_other(request, tensorflow_run):
    """(TensorFlow's results, another backend's); torch is an optional extra, so its case skips without it."""
    pytest.importorskip(request.param)
    folder, keys, expected = tensorflow_run
    env = dict(os.environ, KERAS_BACKEND=request.param, JAX_PLATFORMS="cpu")
    out = folder / f"{request.param}.pkl"
    result = subprocess.run([sys.executable, "-c", RUN, str(folder / "inputs.npz"), json.dumps(keys), str(out),
                             str(REPO)], env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, "rb") as f:
        return expected, pickle.load(f)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_every_endpoint_gives_tensorflows_numbers(tensorflow_and_other, name):
    """To 1e-4 of the output's scale: float32 arithmetic in a different order (XLA fuses what TensorFlow's
    kernels run one by one) moves the last few bits of each of a few hundred accumulated terms. The flows'
    ``sample`` and CaloGAN's ``generate`` are among the endpoints: seeded draws, compared value by value."""
    expected, measured = tensorflow_and_other
    outputs = [k for k in expected["outputs"] if k.startswith(name + "|")]
    assert outputs
    for k in outputs:
        scale = max(float(np.max(np.abs(expected["outputs"][k]))), 1e-6)
        np.testing.assert_allclose(measured["outputs"][k], expected["outputs"][k], rtol=0, atol=1e-4 * scale,
                                   err_msg=k)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_bad_input_gets_the_same_message(tensorflow_and_other, name):
    expected, measured = tensorflow_and_other
    keys = [k for k in expected["messages"] if k.startswith(name + "|")]
    assert keys
    for key in keys:
        assert expected["messages"][key] != "accepted", key
        assert measured["messages"][key] == expected["messages"][key]


def test_the_seeded_rbm_sampler_draws_the_same_chains(tensorflow_and_other):
    """Each chain's uniform numbers are exact multiples of 2**-24 on both backends; a unit flips only where
    float32 rounding of its probability p (a few ulp) puts p on the other side of its number: about 1e-6 per
    draw, a few thousand draws per chain here, so at most one of the eight chains is expected to part."""
    expected, measured = tensorflow_and_other
    key = "rbm-ising-L8-T2.27|sample(seed)"
    same = np.all(measured["outputs"][key] == expected["outputs"][key], axis=(1, 2))
    assert same.sum() >= 7, same


def test_one_training_step_moves_the_same_way(tensorflow_and_other):
    """The own-loss steps (RBM, flow) draw from the optimizer's step count with the counter-based generator and
    the supervised one has no draws: with shuffling off, JAX's first step is TensorFlow's up to float32."""
    expected, measured = tensorflow_and_other
    if "training" not in measured:
        pytest.skip("torch serves inference only")
    for name, report in expected["training"].items():
        got = measured["training"][name]
        assert np.isfinite(got["loss"]) and got["change"] > 0, (name, got)
        assert got["loss"] == pytest.approx(report["loss"], rel=1e-3, abs=1e-3), name
        assert got["change"] == pytest.approx(report["change"], rel=1e-2), name
