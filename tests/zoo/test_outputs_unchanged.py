"""The shipped presets give the outputs they gave before the family contract, to 1e-5 of their scale.

tests/fixtures/preset_outputs.npz holds, for every preset, four inputs and the
outputs of ``predict`` and ``encode`` computed by the zoo at commit bc00859 (Keras' own predict
path, ``encode`` eagerly); 1e-5 of the output's scale bounds the last-bit differences between
float32 kernels (see ``assert_close``), not a loose fit.

A preset retrained on purpose gets its outputs recorded again from the new weights, on the same inputs:
``python tests/zoo/test_outputs_unchanged.py NAME...`` (scinet-qubit-1 and scinet-qubit-2 were, when their
latent scans began to ship with them).
"""
import sys
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
    for key, actual in outputs_of(name).items():
        assert_close(actual, RECORDED[key])


def outputs_of(name: str) -> dict:
    """The preset's ``predict`` (and ``encode``, where recorded) on its recorded inputs, by fixture key."""
    model = zoo.load(name)
    inputs = {k.split("/")[2]: v for k, v in RECORDED.items() if k.startswith(f"{name}/input/")}
    outputs = {f"{name}/serving_default": model.predict(inputs if len(inputs) > 1 else next(iter(inputs.values())))}
    if f"{name}/encode" in RECORDED:
        encode = model.endpoint("encode")
        first = next(iter(inputs.values()))
        outputs[f"{name}/encode"] = model.run_endpoint("encode", {encode.input_names[0]: first})[encode.outputs[0].name]
    return outputs


def assert_close(actual, expected):
    """Within 1e-5 of the output's scale. Eager and compiled float32 kernels, and the kernels another CPU picks
    (FMA or not, another blocking of a matrix product), differ in the last bits of each operation, about
    eps = 1.2e-7 relative; SciNet's decoders chain tens of such layers and time steps, and the recorded
    roll-outs differ by up to 3.8e-6 of their scale on a machine other than the one that wrote them."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_every_preset_of_the_contract_commit_is_still_registered():
    """Presets added after the contract (the jet taggers on) are outside this fixture: they were born under it."""
    assert set(NAMES) <= set(zoo.list_models())


def record(names) -> None:
    """Recompute the recorded outputs of ``names`` from their shipped weights, keeping every recorded input."""
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise SystemExit(f"{unknown} have no recorded inputs in {FIXTURE}; recorded: {NAMES}")
    entries = dict(RECORDED)
    for name in names:
        entries.update(outputs_of(name))
    staging = FIXTURE.with_suffix(".tmp.npz")
    np.savez_compressed(staging, **entries)
    staging.replace(FIXTURE)


if __name__ == "__main__":
    record(sys.argv[1:])
