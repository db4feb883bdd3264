"""Every preset, parametrised over zoo.list_models(): a new preset is tested without a new test."""
import json

import keras
import numpy as np
import pytest

import zoo
from zoo import artifacts, cards

PRESETS = zoo.list_models()
SHIPPED = [n for n in PRESETS if zoo.has_weights(n)]


def small_overrides(name):
    """Narrow layers so the fresh-model tests take milliseconds."""
    config = zoo.get_spec(name).config
    return {"encoder_units": [8], "decoder_units": [8]} if "encoder_units" in config else {}


@pytest.mark.parametrize("name", PRESETS)
def test_builds_and_forward_pass_is_finite(name):
    model = zoo.load(name, pretrained=False, **small_overrides(name))
    out = np.asarray(model(model.example_inputs(3)))
    assert out.shape[0] == 3 and np.all(np.isfinite(out))
    expected = zoo.get_spec(name).outputs[0].shape[1:]
    assert out.shape[1:] == tuple(expected)


@pytest.mark.parametrize("name", PRESETS)
def test_get_config_round_trip(name):
    model = zoo.load(name, pretrained=False, **small_overrides(name))
    clone = type(model).from_config(model.get_config())
    clone(clone.example_inputs())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("name", PRESETS)
def test_keras_file_round_trip(name, tmp_path):
    model = zoo.load(name, pretrained=False, **small_overrides(name))
    x = model.example_inputs(4)
    x = {k: np.random.default_rng(0).normal(size=v.shape).astype("float32") for k, v in x.items()}
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_verify_and_metrics_present(name):
    metadata = artifacts.verify_preset(zoo.preset_folder(name))
    assert metadata["name"] == name
    assert metadata["metrics"] and all(np.isfinite(v) for v in metadata["metrics"].values())
    assert metadata["targets"], "every shipped preset records its quality targets"
    for target in metadata["targets"]:
        assert target["measured"] == metadata["metrics"][target["metric"]]
    import h5py

    with h5py.File(zoo.preset_folder(name) / artifacts.WEIGHTS_FILE) as f:
        assert "optimizer" not in f, "shipped weights must not carry optimizer state"
    assert metadata["data"]["evaluation_seed"] not in (metadata["data"]["train_seed"], metadata["data"]["validation_seed"])


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_present_and_rendered_from_metadata(name):
    path = cards.card_path(name)
    assert path.exists(), f"model card {path} is missing; run `zoo card {name}`"
    text = path.read_text()
    assert text == cards.render_card(name), "the card differs from what its metadata.json renders"
    assert text.startswith("---\nlibrary_name: keras\n") and "model-index:" in text
    metadata = json.loads((zoo.preset_folder(name) / artifacts.METADATA_FILE).read_text())
    for target in metadata["targets"]:
        assert target["metric"] in text


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_load_gives_finite_outputs(name):
    model = zoo.load(name)
    assert np.all(np.isfinite(np.asarray(model(model.example_inputs(2)))))


def test_every_preset_is_shipped():
    assert SHIPPED == PRESETS, f"presets without weights: {sorted(set(PRESETS) - set(SHIPPED))}"
