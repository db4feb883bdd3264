"""Preset folders: sha256 verified on load, atomic writes, clear errors naming the file."""
import json
import shutil

import numpy as np
import pytest

import zoo
from zoo import artifacts


@pytest.fixture
def folder(tmp_path):
    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    path = artifacts.write_preset(tmp_path / "preset", model, {"name": "test"}, {"figure.png": b"png"})
    return path, model


def test_written_folder_verifies_and_rebuilds_the_same_model(folder):
    path, model = folder
    metadata = artifacts.verify_preset(path)
    assert set(metadata["files"]) == {"config.json", "model.weights.h5", "figure.png"}
    rebuilt = artifacts.build_from_folder(path)
    x = model.example_inputs(3)
    x["observations"] += 0.3
    np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(model(x)), atol=1e-6)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "staging folders left behind"


def test_altered_weights_are_refused_naming_the_file(folder):
    path, _ = folder
    data = bytearray((path / "model.weights.h5").read_bytes())
    data[-100] ^= 0xFF
    (path / "model.weights.h5").write_bytes(bytes(data))
    with pytest.raises(artifacts.ArtifactError, match="model.weights.h5.*sha256"):
        artifacts.build_from_folder(path)


def test_truncated_file_is_refused(folder):
    path, _ = folder
    weights = path / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(artifacts.ArtifactError, match="model.weights.h5.*1000 bytes"):
        artifacts.verify_preset(path)


def test_missing_file_and_corrupt_metadata(folder):
    path, _ = folder
    (path / "figure.png").unlink()
    with pytest.raises(artifacts.ArtifactError, match="figure.png is missing"):
        artifacts.verify_preset(path)
    (path / "metadata.json").write_text("{ not json")
    with pytest.raises(artifacts.ArtifactError, match="metadata.json is not valid JSON"):
        artifacts.verify_preset(path)


def test_unregistered_class_is_refused(folder):
    path, _ = folder
    config = json.loads((path / "config.json").read_text())
    config["class_name"] = "builtins>eval"
    (path / "config.json").write_text(json.dumps(config))
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["files"]["config.json"] = artifacts.sha256_file(path / "config.json")
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(artifacts.ArtifactError, match="does not know"):
        artifacts.build_from_folder(path)


def test_failed_write_leaves_the_previous_folder_intact(folder, monkeypatch):
    path, model = folder
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts, "inference_copy", broken)
    with pytest.raises(OSError, match="disk full"):
        artifacts.write_preset(path, model, {"name": "new"}, force=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_atomic_write_text_never_leaves_partial_file(tmp_path):
    target = tmp_path / "a.json"
    artifacts.atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        artifacts.atomic_write_text(target, 12345)  # write fails midway
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_shipped_preset_tampering_is_detected(tmp_path):
    name = "scinet-pendulum"
    source = zoo.preset_folder(name)
    if not zoo.has_weights(name):
        pytest.skip("no shipped weights")
    copy = tmp_path / name
    shutil.copytree(source, copy)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("2", "3", 1))
    with pytest.raises(artifacts.ArtifactError, match="config.json"):
        artifacts.verify_preset(copy)


def test_no_optimizer_state_is_shipped(tmp_path):
    import h5py

    model = zoo.load("scinet-pendulum", pretrained=False, encoder_units=[8], decoder_units=[8])
    model.compile(optimizer="adam", loss="mse")
    model.fit(model.example_inputs(4), np.zeros((4, 1)), verbose=0)
    path = artifacts.write_preset(tmp_path / "p", model, {"name": "t"})
    with h5py.File(path / "model.weights.h5") as f:
        assert "optimizer" not in f


def test_install_replaces_a_preset_only_with_a_verified_folder(folder, tmp_path):
    path, _ = folder
    destination = tmp_path / "installed"
    artifacts.install_preset(path, destination)
    assert artifacts.verify_preset(destination)["files"] == artifacts.verify_preset(path)["files"]
    (path / "figure.png").write_bytes(b"changed")
    with pytest.raises(artifacts.ArtifactError, match="figure.png"):
        artifacts.install_preset(path, destination)
    assert (destination / "figure.png").read_bytes() == b"png"


def test_the_folder_carries_its_card_which_metadata_does_not_hash(folder):
    path, model = folder
    card = (path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: keras\n") and card.count("# test\n") == 1  # a derived folder's card
    assert all(f"| `{e.name}` |" in card for e in model.endpoints())
    assert "README.md" not in artifacts.verify_preset(path)["files"]
    (path / "README.md").write_text("edited by hand")  # the card is rendered, not hashed: zoo card renders it again
    artifacts.verify_preset(path)


def test_the_card_is_not_an_extra_file(folder, tmp_path):
    path, model = folder
    with pytest.raises(artifacts.ArtifactError, match="pass card=.*received extra files \\['README.md'\\]"):
        artifacts.write_preset(tmp_path / "other", model, {"name": "x"}, {"README.md": b"# x"})
    with pytest.raises(artifacts.ArtifactError, match="other than metadata.json and README.md; received 'README.md'"):
        artifacts.replace_files(path, {"README.md": b"# x"})
    assert not (tmp_path / "other").exists()


def test_a_trained_preset_written_again_gets_the_card_it_ships(tmp_path):
    """write_preset renders the full card from metadata.json: writing a shipped preset's model, metadata and
    figure again gives byte for byte the README.md it ships (so every shipped card is what the code renders)."""
    name = "ising-cnn"
    if not zoo.has_weights(name):
        pytest.skip("no shipped weights")
    shipped = zoo.preset_folder(name)
    metadata = {k: v for k, v in artifacts.read_metadata(shipped).items() if k != "files"}
    path = artifacts.write_preset(tmp_path / name, zoo.load(name), metadata,
                                  {"evaluation.png": (shipped / "evaluation.png").read_bytes()})
    assert (path / "README.md").read_text() == (shipped / "README.md").read_text()
