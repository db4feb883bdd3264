"""CaloGAN under JAX: the shipped positron generator serves TensorFlow's showers, and ``model.fit`` takes the
paper's adversarial steps (both networks, both optimizers, fresh draws every step) as it does under TensorFlow.

The JAX run is a subprocess, as Keras picks its backend once per process (see test_backends.py); it starts
first and runs beside the TensorFlow half. JAX compiles every weight initializer and every step for its own
shapes, minutes on two cores, so the subprocess keeps JAX's persistent compilation cache (in the temporary
folder, or ``$JAX_COMPILATION_CACHE_DIR``): the first run fills it, later runs take well under a minute."""
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import zoo

pytest.importorskip("jax")
REPO = Path(__file__).resolve().parents[2]
PRESET = "calogan-eplus"
BAD_REQUEST = {"energies": np.array([5.0, -1.0], "float32"), "seed": np.array([1, 2], "int64")}
SHOWERS, BATCH = 8, 4

RUN = """
import pickle, sys
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
sys.path.insert(0, sys.argv[3])
from tests.zoo.test_calogan_backends import serve, train_tiny
with open(sys.argv[1], "rb") as f:
    inputs = pickle.load(f)
result = {"served": serve(inputs), "training": train_tiny()}
with open(sys.argv[2], "wb") as f:
    pickle.dump(result, f)
"""


def serve(inputs: dict) -> dict:
    """Every endpoint's outputs on its inputs, and the message that refuses a negative energy (either backend)."""
    model = zoo.load(PRESET)
    outputs = {endpoint: {k: np.asarray(v) for k, v in model.run_endpoint(endpoint, x).items()}
               for endpoint, x in inputs.items()}
    try:
        model.run_endpoint("generate", BAD_REQUEST)
        message = "accepted"
    except ValueError as error:
        message = str(error)
    return {"outputs": outputs, "message": message}


def fake_showers(n: int, seed: int = 0) -> dict:
    """A few showers of the fit dict's form (GeV): exponential cells, incident energies of 1-100 GeV."""
    from zoo.models.calogan_networks import LAYER_NAMES, LAYER_SHAPES

    rng = np.random.default_rng(seed)
    data = {name: rng.exponential(0.05, (n, *shape)).astype("float32") for name, shape in zip(LAYER_NAMES, LAYER_SHAPES)}
    data["energy"] = rng.uniform(1.0, 100.0, (n, 1)).astype("float32")
    data["particle"] = np.zeros(n, "int32")
    return data


def train_tiny() -> dict:
    """The preset's configuration with the family's tiny overrides, trained with ``fit`` on fake showers: one batch,
    another, then two in one ``fit`` from the first seed state again; then its energy head for two epochs."""
    import keras

    from zoo.models.calogan import FAMILY, CaloGAN
    from zoo.models.calogan_networks import energy_head

    spec = next(p for p in FAMILY.presets if p.name == PRESET)
    model = CaloGAN(**{**spec.config, **FAMILY.tiny_overrides})
    model.compile()
    data = fake_showers(SHOWERS)
    numpy = lambda variables: [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
    groups = {"generator": lambda: model.adversarial_variables,
              "discriminator": lambda: model.discriminator.trainable_variables,
              "energy head": lambda: energy_head(model.generator).trainable_variables}
    before = {name: numpy(variables()) for name, variables in groups.items()}
    seed_state = lambda: np.array(keras.ops.convert_to_numpy(model.training_seed.state))
    states, logs = [seed_state()], []
    first = {k: v[:BATCH] for k, v in data.items()}
    for _ in range(2):  # two fits of one batch each
        history = model.fit(first, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        logs.append({k: float(v[-1]) for k, v in history.history.items()})
        states.append(seed_state())
    changed = {name: max(float(np.max(np.abs(a - b))) for a, b in zip(before[name], numpy(variables())))
               for name, variables in groups.items()}
    draws = []
    for state in states[:2]:  # the draws of the first step and of the second
        model.training_seed.state.assign(state)
        draws.append([np.array(keras.ops.convert_to_numpy(x)) for x in model._random_requests(BATCH)])
    model.training_seed.state.assign(states[0])
    history = model.fit(data, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # two steps in one fit
    logs.append({k: float(v[-1]) for k, v in history.history.items()})
    head_before = numpy(groups["energy head"]())
    layer_energies = np.stack([data[f"layer_{i}"].sum(axis=(1, 2)) for i in range(3)], axis=1)
    head_losses = model.fit_energy_head(data["energy"][:, 0], layer_energies, epochs=2, batch_size=BATCH)
    head_change = max(float(np.max(np.abs(a - b))) for a, b in zip(head_before, numpy(groups["energy head"]())))
    return {"logs": logs, "changed": changed, "states": states, "two_steps_in_one_fit": seed_state(),
            "draws": draws, "iterations": [int(model.generator_optimizer.iterations),
                                           int(model.discriminator_optimizer.iterations)],
            "head_losses": head_losses, "head_change": head_change}


@pytest.fixture(scope="module")
def tensorflow_and_jax(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calogan_backends")
    model = zoo.load(PRESET)
    inputs = {e.name: model.random_inputs(5, seed=3, endpoint=e.name) for e in model.endpoints()}
    with open(folder / "inputs.pkl", "wb") as f:
        pickle.dump(inputs, f)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "zoo-jax-compilation-cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    jax_run = subprocess.Popen([sys.executable, "-c", RUN, str(folder / "inputs.pkl"), str(folder / "jax.pkl"),
                                str(REPO)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        expected = serve(inputs)
        _, stderr = jax_run.communicate(timeout=900)
    finally:
        if jax_run.poll() is None:
            jax_run.kill()
            jax_run.communicate()
    assert jax_run.returncode == 0, stderr[-3000:]
    with open(folder / "jax.pkl", "rb") as f:
        return expected, pickle.load(f)


def test_every_endpoint_gives_tensorflows_showers(tensorflow_and_jax):
    """``serving_default`` and ``generate`` on the same energies and per-shower seeds: the latent vectors are the
    counter-based draws of zoo.models.backend (the same numbers on both backends), so the showers agree to float32
    rounding, 1e-4 of each layer's largest cell."""
    expected, measured = tensorflow_and_jax
    assert sorted(expected["outputs"]) == ["generate", "serving_default"]
    for endpoint, outputs in expected["outputs"].items():
        assert sorted(outputs) == ["layer_0", "layer_1", "layer_2"]
        for name, value in outputs.items():
            scale = max(float(np.max(np.abs(value))), 1e-6)
            got = measured["served"]["outputs"][endpoint][name]
            assert got.shape == value.shape
            np.testing.assert_allclose(got, value, rtol=0, atol=1e-4 * scale, err_msg=f"{endpoint} {name}")


def test_a_negative_energy_gets_the_same_message(tensorflow_and_jax):
    expected, measured = tensorflow_and_jax
    assert expected["message"] != "accepted" and "'energies'" in expected["message"]
    assert measured["served"]["message"] == expected["message"]


def test_fit_takes_the_adversarial_steps_under_jax(tensorflow_and_jax):
    """Finite losses; the generator (but not its energy head) and the discriminator move; each optimizer steps
    twice per batch (the paper's loop); the training seed generator's state advances from step to step, within
    a fit as across fits, so each step draws fresh requests; and the energy head fits under JAX too."""
    training = tensorflow_and_jax[1]["training"]
    for logs in training["logs"]:
        assert sorted(logs) == ["d_fake", "d_real", "g_energy", "g_loss"]
        assert all(np.isfinite(v) for v in logs.values()), logs
    assert training["changed"]["generator"] > 0 and training["changed"]["discriminator"] > 0, training["changed"]
    assert training["changed"]["energy head"] == 0  # it learns from layer energies only
    assert training["iterations"] == [2 * 4, 2 * 4]  # 1 + 1 + 2 batches, two steps of each network per batch
    states = training["states"]
    assert not np.array_equal(states[0], states[1]) and not np.array_equal(states[1], states[2])
    np.testing.assert_array_equal(training["two_steps_in_one_fit"], states[2])
    first, second = training["draws"]  # noise, energy and particle (one class here) of the first step and the second
    assert [a.shape for a in first] == [b.shape for b in second] == [(BATCH, 4), (BATCH, 1), (BATCH,)]
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[1], second[1])
    assert all(np.isfinite(training["head_losses"])) and training["head_change"] > 0
