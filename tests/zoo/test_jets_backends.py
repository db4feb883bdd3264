"""The jet taggers give the same numbers under JAX as under TensorFlow: every endpoint of both presets, on
the random inputs and on Pythia jets of the test fixture, with the preprocessing (kt subjets, rotation, flip,
pixels) traced into a ``jax.jit``; and a bad jet gets the same error message (the numpy-side check).

The JAX run is a subprocess, as Keras picks its backend once per process (see test_backends.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo

pytest.importorskip("jax")
h5py = pytest.importorskip("h5py")
REPO = Path(__file__).resolve().parents[2]
PRESETS = ("jet-cnn-w-vs-qcd", "jet-maxout-w-vs-qcd")
ENDPOINTS = ("serving_default", "constituents", "preprocess")
# Pythia jets of tests/fixtures/jets-seed31337.h5 (W: rows < 300, QCD after): the first three have one kt subjet,
# whose flip side was once decided by rounding noise; 46 sits within float32 rounding of a pixel edge under a
# rotation in phi (see test_jets.py); 260, 357, 418 and 481 are one-subjet jets whose nearly vanishing centroid
# made the rotation angle sensitive to rounding in float32 until rapidities were computed without cancellation.
PYTHIA_ROWS = [10, 14, 17, 46, 260, 357, 418, 481, 301, 450]
BAD_JETS = {
    "negative p_T": [[[-5.0, 0.0, 0.0], [10.0, 0.1, 0.1]]],
    "all-zero jet": [[[10.0, 0.0, 0.0], [5.0, 0.1, 0.1]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
    "wrong last axis": [[[1.0, 0.0, 0.0, 4.0]]],
    "NaN": [[[np.nan, 0.0, 0.0], [10.0, 0.1, 0.1]]],
}

RUN = """
import json, sys
import numpy as np
import keras, zoo
assert keras.backend.backend() == "jax", keras.backend.backend()
inputs = np.load(sys.argv[1])
presets, endpoints, bad = json.loads(sys.argv[2])
outputs, errors = {}, {}
for name in presets:
    model = zoo.load(name)
    for endpoint in endpoints:
        outputs[f"{name}|{endpoint}|random_inputs"] = model.random_inputs(5, seed=3, endpoint=endpoint)[
            model.endpoint(endpoint).input_names[0]]
        for source in ("random", "pythia"):
            key = f"{name}|{endpoint}|{source}"
            x = {k.split("|")[3]: inputs[k] for k in inputs.files if k.startswith(key + "|")}
            for output, value in model.run_endpoint(endpoint, x).items():
                outputs[f"{key}|{output}"] = value
    for case, jets in bad.items():
        try:
            model.preprocess(np.array(jets, "float32"))
            errors[f"{name}|{case}"] = None
        except ValueError as error:
            errors[f"{name}|{case}"] = str(error)
np.savez(sys.argv[3], **outputs)
with open(sys.argv[4], "w") as f:
    json.dump(errors, f)
"""


def pythia_jets() -> np.ndarray:
    with h5py.File(REPO / "tests" / "fixtures" / "jets-seed31337.h5", "r") as f:
        return f["constituents"][:][PYTHIA_ROWS]


def tensorflow_error(model, jets) -> str | None:
    try:
        model.preprocess(np.array(jets, "float32"))
    except ValueError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def tensorflow_and_jax(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jet_backends")
    inputs, expected, errors = {}, {}, {}
    jets = pythia_jets()
    for name in PRESETS:
        model = zoo.load(name)
        for endpoint in ENDPOINTS:
            random = model.random_inputs(5, seed=3, endpoint=endpoint)
            expected[f"{name}|{endpoint}|random_inputs"] = next(iter(random.values()))
            pythia = {"images": model.preprocess(jets)} if endpoint == "serving_default" else {"constituents": jets}
            for source, x in (("random", random), ("pythia", pythia)):
                key = f"{name}|{endpoint}|{source}"
                inputs.update({f"{key}|{k}": v for k, v in x.items()})
                expected.update({f"{key}|{k}": v for k, v in model.run_endpoint(endpoint, x).items()})
        errors.update({f"{name}|{case}": tensorflow_error(model, bad) for case, bad in BAD_JETS.items()})
    np.savez(folder / "inputs.npz", **inputs)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", RUN, str(folder / "inputs.npz"),
                             json.dumps([PRESETS, ENDPOINTS, BAD_JETS]), str(folder / "jax.npz"),
                             str(folder / "errors.json")], env=env, capture_output=True, text=True, timeout=600,
                             check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return expected, dict(np.load(folder / "jax.npz")), errors, json.loads((folder / "errors.json").read_text())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("name", PRESETS)
def test_jax_gives_tensorflows_numbers(tensorflow_and_jax, name, endpoint):
    """To 1e-4 of the output's scale (images and P(W) are <= 1): both backends preprocess in float32, in
    different orders of operations, and agree to a few units of float32 rounding unless a constituent sits
    within that rounding of a pixel edge."""
    expected, measured = tensorflow_and_jax[:2]
    outputs = [k for k in expected if k.startswith(f"{name}|{endpoint}|")]
    assert len(outputs) == 3  # the random inputs themselves, and the outputs on random and Pythia jets
    for k in outputs:
        scale = max(float(np.max(np.abs(expected[k]))), 1e-6)
        np.testing.assert_allclose(measured[k], expected[k], rtol=0, atol=1e-4 * scale, err_msg=k)


@pytest.mark.parametrize("case", sorted(BAD_JETS))
def test_jax_refuses_bad_jets_with_tensorflows_message(tensorflow_and_jax, case):
    _, _, expected, measured = tensorflow_and_jax
    for name in PRESETS:
        assert expected[f"{name}|{case}"] is not None, "TensorFlow accepted a bad jet"
        assert measured[f"{name}|{case}"] == expected[f"{name}|{case}"]
