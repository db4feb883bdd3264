"""The same numbers under JAX as under TensorFlow: one shipped preset per family whose endpoints are
backend-neutral today, every deterministic endpoint, random valid inputs, in a JAX subprocess (Keras picks
its backend once per process).

Not yet here (the multi-backend work in progress): the seeded samplers (the RBM's, the flows' and CaloGAN's
draws differ between backends), the flows and the jet preprocessing (numpy inside the traced call), CaloGAN
(its call mixes tensors and Python values under JAX) and the distiller."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo

pytest.importorskip("jax")
REPO = Path(__file__).resolve().parents[2]
DETERMINISTIC = {
    "scinet-heliocentric": ("serving_default", "encode"),
    "ising-cnn": ("serving_default",),
    "rbm-ising-L8-T2.27": ("serving_default",),
    "siamese-minkowski": ("serving_default", "embed"),
    "translator-schrodinger": ("serving_default", "hidden_states"),
}
RUN = """
import json, sys
import numpy as np
import keras, zoo
assert keras.backend.backend() == "jax", keras.backend.backend()
inputs = np.load(sys.argv[1])
outputs = {}
for key in json.loads(sys.argv[2]):
    name, endpoint = key.split("|")
    model = zoo.load(name)
    x = {k.split("|")[2]: inputs[k] for k in inputs.files if k.startswith(key + "|")}
    for output, value in model.run_endpoint(endpoint, x).items():
        outputs[f"{key}|{output}"] = value
np.savez(sys.argv[3], **outputs)
"""


@pytest.fixture(scope="module")
def tensorflow_and_jax(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    inputs, expected = {}, {}
    for name, endpoints in DETERMINISTIC.items():
        model = zoo.load(name)
        for endpoint in endpoints:
            x = model.random_inputs(5, seed=3, endpoint=endpoint)
            inputs.update({f"{name}|{endpoint}|{k}": v for k, v in x.items()})
            expected.update({f"{name}|{endpoint}|{k}": v for k, v in model.run_endpoint(endpoint, x).items()})
    np.savez(folder / "inputs.npz", **inputs)
    keys = [f"{n}|{e}" for n, endpoints in DETERMINISTIC.items() for e in endpoints]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", RUN, str(folder / "inputs.npz"), json.dumps(keys),
                             str(folder / "jax.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return expected, dict(np.load(folder / "jax.npz"))


@pytest.mark.parametrize("key", [f"{n}|{e}" for n, endpoints in DETERMINISTIC.items() for e in endpoints])
def test_jax_gives_tensorflows_numbers(tensorflow_and_jax, key):
    """To 1e-4 of the output's scale: float32 arithmetic in a different order (XLA fuses what TensorFlow's
    kernels run one by one) moves the last few bits of each of a few hundred accumulated terms."""
    expected, measured = tensorflow_and_jax
    outputs = [k for k in expected if k.startswith(key + "|")]
    assert outputs
    for k in outputs:
        scale = max(float(np.max(np.abs(expected[k]))), 1e-6)
        np.testing.assert_allclose(measured[k], expected[k], rtol=0, atol=1e-4 * scale, err_msg=k)
