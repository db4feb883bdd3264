"""The input checks screened inside a compiled call (JAX's ``predict`` path) agree with the numpy checks.

``screened_inputs`` states each value check a second time, in keras.ops, as one flag; the numpy check keeps
the messages. These tests hold the two statements together: every accepted input passes the screen with
the same conversion, every refused or warned-about input fails it (checked here eagerly, on TensorFlow), and
under JAX ``predict`` takes the screened call for a good input and the numpy checks' messages for a bad one
(in a subprocess: Keras picks its backend once per process).
"""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.validation import can_screen, screened_inputs

REPO = Path(__file__).resolve().parents[2]


def _spins(values, shape=(2, 4, 4)):
    return np.broadcast_to(np.asarray(values, "float32"), shape).copy()


def _with(array, index, value):
    array = np.array(array, "float32")
    array[index] = value
    return array


# (preset, endpoint, name of the case, the inputs); each model's own random inputs are the accepted baseline
CASES = [
    ("ising-cnn", "serving_default", "+-1", {"spins": _spins([1.0, -1.0, -1.0, 1.0])}),
    ("ising-cnn", "serving_default", "0/1", {"spins": _spins([0.0, 1.0, 1.0, 0.0])}),
    ("ising-cnn", "serving_default", "all zero (0/1)", {"spins": _spins(0.0)}),
    ("ising-cnn", "serving_default", "a 0.5", {"spins": _with(_spins(1.0), (0, 1, 1), 0.5)}),
    ("ising-cnn", "serving_default", "mixed 0 and -1", {"spins": _with(_spins(-1.0), (1, 0, 0), 0.0)}),
    ("ising-cnn", "serving_default", "not square", {"spins": _spins(1.0, (2, 4, 5))}),
    ("ising-cnn", "serving_default", "below the kernel", {"spins": _spins(1.0, (2, 2, 2))}),
    ("ising-cnn", "serving_default", "NaN", {"spins": _with(_spins(1.0), (1, 2, 3), np.nan)}),
    ("rbm-ising-L8-T2.27", "serving_default", "inf", {"spins": _with(_spins(1.0, (3, 8, 8)), (2, 0, 0), np.inf)}),
    ("siamese-kepler", "serving_default", "random", None),
    ("siamese-kepler", "embed", "at the origin", "origin"),
    ("jet-cnn-w-vs-qcd", "serving_default", "random", None),
    ("jet-cnn-w-vs-qcd", "serving_default", "a negative pixel", "negative"),
    ("jet-cnn-w-vs-qcd", "constituents", "random", None),
    ("jet-cnn-w-vs-qcd", "constituents", "negative p_T", "negative_pt"),
    ("jet-cnn-w-vs-qcd", "constituents", "an empty jet", "empty_jet"),
    ("jet-cnn-w-vs-qcd", "constituents", "eta 4 (outside the trained range)", "eta4"),
    ("jet-cnn-w-vs-qcd", "constituents", "eta 6 (outside the valid range)", "eta6"),
    ("translator-schrodinger", "serving_default", "random", None),
    ("translator-schrodinger", "serving_default", "V = -40 (outside the trained range)", "deep"),
    ("distiller-schrodinger-k2", "serving_default", "one site", "one_site"),
    ("scinet-heliocentric", "serving_default", "random", None),
]


# under JAX (a subprocess, the suite's time): one family per kind of answer, the jets' and the distiller's
# screens checked above against their numpy checks
JAX_FAMILIES = ("ising-cnn", "siamese-kepler", "translator-schrodinger", "scinet-heliocentric")
JAX_CASES = [c for c in CASES if c[0] in JAX_FAMILIES]


def case_inputs(model, endpoint: str, case):
    """The inputs of a case: given, or the model's random inputs with one planted change."""
    if isinstance(case, dict):
        return case
    inputs = {k: v.copy() for k, v in model.random_inputs(4, seed=2, endpoint=endpoint).items()}
    first = next(iter(inputs))
    if case == "origin":
        inputs[first][1, :2] = 0.0
    elif case == "negative":
        inputs[first][2, 3, 4] = -0.1
    elif case == "negative_pt":
        inputs[first][1, 0, 0] = -1.0
    elif case == "empty_jet":
        inputs[first][3, :, 0] = 0.0
    elif case == "eta4":
        inputs[first][0, 0, 1] = 4.0
    elif case == "eta6":
        inputs[first][0, 0, 1] = 6.0
    elif case == "deep":
        inputs[first][1, 5] = -40.0
    elif case == "one_site":
        inputs[first] = inputs[first][:, :1]
    return inputs


def numpy_verdict(model, endpoint: str, inputs: dict):
    """What the numpy checks do: ("accepted", the checked arrays), ("warned", ...) or ("refused", None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            arrays = model.checked_inputs(inputs, endpoint)
        except ValueError:
            return "refused", None
    return ("warned" if caught else "accepted"), arrays


@pytest.mark.parametrize("preset, endpoint, label, case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_the_screen_passes_exactly_what_the_numpy_checks_accept_silently(preset, endpoint, label, case):
    model = zoo.load(preset)
    declared = model.endpoint(endpoint)
    assert can_screen(declared), f"{preset} {endpoint} should be screened"
    inputs = case_inputs(model, endpoint, case)
    verdict, checked = numpy_verdict(model, endpoint, inputs)
    structural = model.checked_inputs(inputs, endpoint, values=False)
    tensors, passed = screened_inputs(declared, structural)
    assert bool(np.asarray(passed)) == (verdict == "accepted"), f"{label}: numpy says {verdict}"
    if verdict == "accepted":
        for name in checked:
            np.testing.assert_array_equal(np.asarray(tensors[name]), checked[name])


def test_samplers_and_seeded_endpoints_are_not_screened():
    """A flagged call is run again: a sampler would move its state twice, so its checks stay in numpy."""
    assert not can_screen(zoo.load("rbm-ising-L8-T2.27").endpoint("sample"))
    assert not can_screen(zoo.load("realnvp-phi4-L8").endpoint("sample"))


JAX_RUN = """
import json, sys, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
import zoo
from zoo.models.base import ZooModel
from tests.zoo.test_screened_checks import JAX_CASES, case_inputs

value_checks = []
original = ZooModel.checked_inputs
def counting(self, inputs, endpoint="serving_default", values=True):
    value_checks.append(values)
    return original(self, inputs, endpoint, values)
ZooModel.checked_inputs = counting

report = {}
for preset, endpoint, label, case in JAX_CASES:
    model = zoo.load(preset)
    inputs = case_inputs(model, endpoint, case)
    value_checks.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = model.run_endpoint(endpoint, inputs)
            answer = {k: np.asarray(v).tolist() for k, v in outputs.items()}
        except ValueError as error:
            answer = "ValueError: " + str(error)
    report[f"{preset}|{endpoint}|{label}"] = {"answer": answer, "warnings": [str(w.message) for w in caught],
                                             "numpy_value_checks": sum(value_checks)}
print("RESULT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def jax_report():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", JAX_RUN, str(REPO)], env=env, capture_output=True, text=True,
                            timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("preset, endpoint, label, case", JAX_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in JAX_CASES])
def test_jax_predict_screens_good_inputs_and_answers_bad_ones_as_tensorflow(jax_report, preset, endpoint, label,
                                                                          case):
    """Under JAX a silently accepted input never meets the numpy value checks; a refused one gets their
    message, a warned one their warning, and the answers are TensorFlow's (to 1e-4 of the output's scale, as
    in test_backends.py: XLA orders float32 sums differently)."""
    measured = jax_report[f"{preset}|{endpoint}|{label}"]
    model = zoo.load(preset)
    inputs = case_inputs(model, endpoint, case)
    verdict, _ = numpy_verdict(model, endpoint, inputs)
    assert (measured["numpy_value_checks"] == 0) == (verdict == "accepted"), measured["numpy_value_checks"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            expected = model.run_endpoint(endpoint, inputs)
        except ValueError as error:
            assert measured["answer"] == f"ValueError: {error}"
            return
    assert measured["warnings"] == [str(w.message) for w in caught]
    for name, value in expected.items():
        scale = max(float(np.max(np.abs(value))), 1e-6)
        np.testing.assert_allclose(np.asarray(measured["answer"][name]), value, rtol=0, atol=1e-4 * scale)
