"""Every malformed preset folder is refused with an ArtifactError naming the file, and metadata.json can never
make the loader read files outside the folder."""
import hashlib
import json
import os
import shutil

import pytest

import zoo
from zoo import artifacts

NAME = "scinet-pendulum"


@pytest.fixture
def copy(tmp_path):
    folder = tmp_path / NAME
    shutil.copytree(zoo.preset_folder(NAME), folder)
    return folder


def rewrite(folder, file, text: str, rehash: bool = True):
    (folder / file).write_text(text)
    if rehash:
        metadata = json.loads((folder / "metadata.json").read_text())
        metadata["files"][file] = hashlib.sha256(text.encode()).hexdigest()
        (folder / "metadata.json").write_text(json.dumps(metadata))


def edit_metadata(folder, change):
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps(change(metadata)))


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], r"metadata.json must hold a JSON object; it holds a list"),
    (lambda m: {**m, "files": list(m["files"])}, r'"files" must map file names'),
    (lambda m: {**m, "files": {**m["files"], "../../../../etc/hostname": "0" * 64}}, "only plain file names"),
    (lambda m: {**m, "files": {**m["files"], "/etc/hostname": "0" * 64}}, "only plain file names"),
])
def test_bad_metadata_is_an_artifact_error(copy, change, message):
    edit_metadata(copy, change)
    with pytest.raises(artifacts.ArtifactError, match=message):
        zoo.load(copy)


@pytest.mark.parametrize("config, message", [
    ("[1, 2]", r"config.json must be an object"),
    ('{"class_name": "zoo>SciNet"}', r'config.json must be an object with "class_name"'),
])
def test_bad_config_is_an_artifact_error(copy, config, message):
    rewrite(copy, "config.json", config)
    with pytest.raises(artifacts.ArtifactError, match=message):
        zoo.load(copy)


def test_truncated_weights_with_a_recomputed_hash_are_an_artifact_error(copy):
    data = (copy / "model.weights.h5").read_bytes()[:5000]
    (copy / "model.weights.h5").write_bytes(data)
    edit_metadata(copy, lambda m: {**m, "files": {**m["files"], "model.weights.h5": hashlib.sha256(data).hexdigest()}})
    with pytest.raises(artifacts.ArtifactError, match="model.weights.h5"):
        zoo.load(copy)


def test_a_listed_file_that_links_outside_the_folder_is_refused(copy, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, copy / "figure.png")
    edit_metadata(copy, lambda m: {**m, "files": {**m["files"], "figure.png": hashlib.sha256(b"not yours").hexdigest()}})
    with pytest.raises(artifacts.ArtifactError, match="link to a file outside"):
        zoo.load(copy)


def link_metadata_outside(folder, tmp_path):
    """Move metadata.json out of ``folder`` (its hashes still match) and leave a link to it behind."""
    outside = tmp_path / "elsewhere" / "metadata.json"
    outside.parent.mkdir()
    (folder / "metadata.json").rename(outside)
    os.symlink(outside, folder / "metadata.json")
    return outside


def test_metadata_that_links_outside_the_folder_is_refused_by_load(copy, tmp_path):
    outside = link_metadata_outside(copy, tmp_path)
    with pytest.raises(artifacts.ArtifactError, match="metadata.json .*link to a file outside") as raised:
        zoo.load(copy)
    assert str(outside) in str(raised.value) and "Expected a file inside" in str(raised.value)


def test_metadata_that_links_outside_the_folder_is_refused_by_info(copy, tmp_path, capsys):
    from zoo_cli import main

    outside = link_metadata_outside(copy, tmp_path)
    assert main(["info", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "metadata.json" in err and "link to a file outside" in err and str(outside) in err


def test_hub_snapshot_metadata_must_link_into_its_own_repo_blobs(tmp_path):
    """In a Hugging Face cache a snapshot's files link into ../../blobs; a link into another repo's blobs is refused."""
    source = zoo.preset_folder(NAME)
    ours, theirs = tmp_path / "models--org--ours", tmp_path / "models--org--theirs"
    snapshot = ours / "snapshots" / ("1" * 40)
    for repo in (ours, theirs):
        (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in source.iterdir():
        blobs = theirs / "blobs" if path.name == "metadata.json" else ours / "blobs"
        (blobs / path.name).write_bytes(path.read_bytes())
        os.symlink(os.path.relpath(blobs / path.name, snapshot), snapshot / path.name)
    with pytest.raises(artifacts.ArtifactError, match="metadata.json .*link to a file outside"):
        artifacts.verify_preset(snapshot)
    (snapshot / "metadata.json").unlink()
    shutil.move(theirs / "blobs" / "metadata.json", ours / "blobs" / "metadata.json")
    os.symlink("../../blobs/metadata.json", snapshot / "metadata.json")
    assert artifacts.verify_preset(snapshot)["files"]


def test_metadata_that_links_inside_the_folder_is_accepted(copy):
    (copy / "metadata.json").rename(copy / "recorded.json")
    os.symlink("recorded.json", copy / "metadata.json")
    assert zoo.load(copy).preset.folder == copy


@pytest.mark.parametrize("change", [
    lambda saved: {**saved, "config": {**saved["config"], "latent_size": 4000}},
    lambda saved: {**saved, "class_name": "zoo>IsingPhaseClassifier"},
], ids=["latent_size", "class_name"])
def test_info_checks_every_sha256_before_it_constructs_the_model(copy, capsys, monkeypatch, change):
    from zoo_cli import main

    saved = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(change(saved)))
    constructed = []

    def never(*args, **kwargs):
        constructed.append(args)
        pytest.fail("zoo info constructed the model of a folder whose sha256s it had not checked")

    monkeypatch.setattr(artifacts, "construct_model", never)
    monkeypatch.setattr(artifacts, "model_class", never)
    assert main(["info", str(copy)]) == 2
    err = capsys.readouterr().err
    assert constructed == []
    assert "config.json" in err and "does not match its recorded sha256" in err
