"""Every malformed preset folder is refused with an ArtifactError naming the file, and metadata.json can never
make the loader read files outside the folder (issue 11)."""
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
