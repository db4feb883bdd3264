"""Public API: names, errors that say what was received and what was expected."""
import numpy as np
import pytest

import zoo
from zoo import registry


def test_list_models_is_sorted_names():
    names = zoo.list_models()
    assert names == sorted(names) and "scinet-heliocentric" in names


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="scinet-pendulum"):
        zoo.load("scinet-pendulm")


def test_non_string_name():
    with pytest.raises(TypeError, match="string"):
        zoo.get_spec(3)


def test_unknown_override_lists_valid_options():
    with pytest.raises(TypeError, match="latent_sise.*expected some of.*latent_size"):
        zoo.load("scinet-pendulum", pretrained=False, latent_sise=3)


def test_override_changes_fresh_model():
    model = zoo.load("scinet-pendulum", pretrained=False, latent_size=3, encoder_units=[8], decoder_units=[8])
    assert model.encode(np.zeros((2, 50))).shape == (2, 3)


def test_pretrained_with_shape_changing_override_fails_clearly():
    if not zoo.has_weights("scinet-pendulum"):
        pytest.skip("no shipped weights")
    with pytest.raises(ValueError, match="pretrained=False"):
        zoo.load("scinet-pendulum", latent_size=5)


def test_duplicate_preset_names_fail_at_registry_build():
    import dataclasses

    scinet = zoo.get_family("scinet")
    fake = dataclasses.replace(scinet, name="fake", module="fake_family")
    fresh = registry._Registry()
    fresh.add(scinet)
    with pytest.raises(RuntimeError, match="'scinet-pendulum' is declared twice"):
        fresh.add(fake)


def test_first_zoo_call_in_a_new_process_can_be_a_folder_load(tmp_path):
    """Loading a saved folder first (as zoo.load("hf://...") does) must register every family first."""
    import subprocess
    import sys

    script = f"import zoo; print(zoo.load({str(zoo.preset_folder('scinet-pendulum'))!r}).__class__.__name__)"
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "SciNet" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((3, 49)), ValueError, r"shape \(3, 49\); expected \(batch, 50\)"),
        (np.zeros(50), ValueError, r"shape \(50,\)"),
        (np.full((2, 50), np.nan), ValueError, "NaN"),
        (np.array([["a"] * 50]), TypeError, "real numbers"),
    ],
)
def test_bad_observations(bad, error, message):
    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    with pytest.raises(error, match=message):
        model.encode(bad)
    with pytest.raises(error, match=message):
        model.predict({"observations": bad, "question": np.zeros((len(np.atleast_2d(bad)), 1))}, verbose=0)


def test_missing_and_mismatched_inputs():
    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    with pytest.raises(ValueError, match="missing.*question"):
        model.predict({"observations": np.zeros((2, 50))}, verbose=0)
    with pytest.raises(ValueError, match="batch size"):
        model.predict({"observations": np.zeros((2, 50)), "question": np.zeros((3, 1))}, verbose=0)
    with pytest.raises(ValueError, match="pass a dict"):
        model.predict(np.zeros((2, 50)), verbose=0)


def test_heliocentric_contract_shapes_fresh():
    model = zoo.load("scinet-heliocentric", pretrained=False)
    x = np.array([[0.5, 1.0], [-2.0, 3.0]], dtype="float32")
    assert model.predict(x, verbose=0).shape == (2, 50, 2)
    assert model.encode(x).shape == (2, 2)
    with pytest.raises(ValueError, match=r"expected \(batch, 2\)"):
        model.predict(np.zeros((2, 3)), verbose=0)


def test_a_loaded_model_knows_what_it_is(tmp_path):
    model = zoo.load("scinet-pendulum")
    from zoo import artifacts

    shipped = artifacts.read_metadata(zoo.preset_folder("scinet-pendulum"))
    assert model.preset.name == "scinet-pendulum" and model.preset.family == "scinet"
    assert model.preset.weights_sha256 == shipped["files"]["model.weights.h5"]
    assert model.preset.card == zoo.preset_folder("scinet-pendulum") / "README.md"  # the folder carries its card
    assert model.preset.card.read_text().startswith("---\nlibrary_name: keras\n")
    assert "'scinet-pendulum' (scinet): endpoints serving_default, encode" in repr(model)
    assert zoo.load("scinet-pendulum", pretrained=False).preset.weights_sha256 is None


def test_save_to_preset_writes_a_verified_folder_that_loads_back(tmp_path):
    from zoo import artifacts

    model = zoo.load("ising-cnn")
    metadata = artifacts.save_to_preset(model, tmp_path / "my-cnn", metadata={"metrics": {"note": 1.0}})
    assert metadata["parent"]["preset"] == "ising-cnn" and metadata["metrics"] == {"note": 1.0}
    again = zoo.load(tmp_path / "my-cnn")
    spins = np.where(np.random.default_rng(0).random((3, 16, 16)) < 0.5, -1.0, 1.0)
    np.testing.assert_array_equal(again.predict(spins), model.predict(spins))
    assert again.preset.name == "my-cnn" and again.preset.card == tmp_path / "my-cnn" / "README.md"
    card = again.preset.card.read_text()
    assert "base_model: ising-cnn" in card and "Derived from `ising-cnn`" in card and "| `serving_default` |" in card
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="never replaced"):
        artifacts.save_to_preset(model, tmp_path / "notes")


def test_save_to_preset_takes_the_callers_card(tmp_path):
    from zoo import artifacts

    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    metadata = artifacts.save_to_preset(model, tmp_path / "mine", card=lambda m: f"# {m['name']}: {sorted(m['files'])}\n")
    assert (tmp_path / "mine" / "README.md").read_text() == "# mine: ['config.json', 'model.weights.h5']\n"
    assert "parent" not in metadata and "README.md" not in metadata["files"]  # fresh weights; the card is not hashed
