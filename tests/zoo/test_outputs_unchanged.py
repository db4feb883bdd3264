"""The shipped presets give the outputs they gave before the family contract, to 1e-5 of their scale.

tests/fixtures/preset_outputs.npz holds, for every preset, four inputs and the
outputs of ``predict`` and ``encode`` computed by the zoo at commit bc00859 (Keras' own predict
path, ``encode`` eagerly); 1e-5 of the output's scale bounds the last-bit differences between
float32 kernels (see ``assert_close``), not a loose fit.
"""
from pathlib import Path

import numpy as np
import pytest

import zoo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "preset_outputs.npz"
with np.load(FIXTURE) as f:
    RECORDED = {k: f[k] for k in f.files}
NAMES = sorted({k.split("/")[0] for k in RECORDED})


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_unchanged(name):
    model = zoo.load(name)
    inputs = {k.split("/")[2]: v for k, v in RECORDED.items() if k.startswith(f"{name}/input/")}
    feed = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    expected = RECORDED[f"{name}/serving_default"]
    assert_close(model.predict(feed), expected)
    if f"{name}/encode" in RECORDED:
        encode = model.endpoint("encode")
        first = next(iter(inputs.values()))
        assert_close(model.run_endpoint("encode", {encode.input_names[0]: first})[encode.outputs[0].name],
                     RECORDED[f"{name}/encode"])


def assert_close(actual, expected):
    """Within 1e-5 of the output's scale. Eager and compiled float32 kernels, and the kernels another CPU picks
    (FMA or not, another blocking of a matrix product), differ in the last bits of each operation, about
    eps = 1.2e-7 relative; SciNet's decoders chain tens of such layers and time steps, and the recorded
    roll-outs differ by up to 3.8e-6 of their scale on a machine other than the one that wrote them."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_every_preset_of_the_contract_commit_is_still_registered():
    """Presets added after the contract (the jet taggers on) are outside this fixture: they were born under it."""
    assert set(NAMES) <= set(zoo.list_models())
