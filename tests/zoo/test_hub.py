"""Hub loading from a cache in huggingface_hub's own layout (offline), and publishing through a stand-in HfApi."""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo import artifacts, hub

NAME = "scinet-pendulum"
REPO = "physics-zoo/scinet-pendulum"
MAIN, DEV = "1" * 40, "2" * 40


def add_snapshot(repo_dir: Path, commit: str, files: dict):
    """Write ``files`` (name -> bytes) as the snapshot of ``commit``: blobs plus relative symlinks."""
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo_dir / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", snapshot / name)


def set_ref(repo_dir: Path, ref: str, commit: str):
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / ref).write_text(commit)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    if not zoo.has_weights(NAME):
        pytest.skip("no shipped weights")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo_dir = tmp_path / ("models--" + REPO.replace("/", "--"))
    files = {p.name: p.read_bytes() for p in zoo.preset_folder(NAME).iterdir() if p.is_file()}
    add_snapshot(repo_dir, MAIN, files)
    set_ref(repo_dir, "main", MAIN)
    set_ref(repo_dir, "zoo-v0.1.0", MAIN)
    tampered = dict(files)
    weights = bytearray(tampered["model.weights.h5"])
    weights[-64] ^= 0xFF
    tampered["model.weights.h5"] = bytes(weights)
    add_snapshot(repo_dir, DEV, tampered)
    set_ref(repo_dir, "dev", DEV)
    return tmp_path


@pytest.mark.parametrize("revision", ["", "@main", "@zoo-v0.1.0", f"@{MAIN}"])
def test_load_pinned_revisions_offline(offline_cache, revision):
    model = zoo.load(f"hf://{REPO}{revision}")
    local = zoo.load(NAME)
    x = {"observations": np.cos(np.linspace(0, 5, 50))[None].astype("float32"), "question": np.array([[3.0]], "float32")}
    np.testing.assert_allclose(model.predict(x, verbose=0), local.predict(x, verbose=0), atol=1e-6)


def test_tampered_revision_is_refused(offline_cache):
    with pytest.raises(artifacts.ArtifactError, match="model.weights.h5.*sha256"):
        zoo.load(f"hf://{REPO}@dev")


def test_uncached_revision_says_so(offline_cache):
    with pytest.raises(hub.HubError, match="not in the Hugging Face cache"):
        zoo.load(f"hf://{REPO}@v9")
    with pytest.raises(hub.HubError, match="not in the Hugging Face cache"):
        zoo.load("hf://physics-zoo/never-downloaded")


def test_repo_that_is_not_a_preset(offline_cache):
    repo_dir = offline_cache / "models--physics-zoo--bert"
    add_snapshot(repo_dir, "3" * 40, {"config.json": b"{}"})
    set_ref(repo_dir, "main", "3" * 40)
    with pytest.raises(hub.HubError, match="not a zoo preset"):
        zoo.load("hf://physics-zoo/bert")


def test_unknown_family_names_the_zoo_version(offline_cache):
    repo_dir = offline_cache / "models--physics-zoo--future"
    folder = zoo.preset_folder(NAME)
    config = json.loads((folder / "config.json").read_text())
    config["class_name"] = "zoo>FutureNet"
    config_bytes = json.dumps(config).encode()
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata.update(zoo_version="9.0.0", family="future")
    metadata["files"]["config.json"] = hashlib.sha256(config_bytes).hexdigest()
    files = {"config.json": config_bytes, "metadata.json": json.dumps(metadata).encode(),
             "model.weights.h5": (folder / "model.weights.h5").read_bytes(), "evaluation.png": (folder / "evaluation.png").read_bytes()}
    add_snapshot(repo_dir, "4" * 40, files)
    set_ref(repo_dir, "main", "4" * 40)
    with pytest.raises(hub.HubError, match="'future'.*zoo 9.0.0"):
        zoo.load("hf://physics-zoo/future")


@pytest.mark.parametrize("bad", ["hf://only-one-part", "hf://a/b/c", "hf:///x"])
def test_malformed_hub_names(bad):
    with pytest.raises(hub.HubError, match="ORG/NAME"):
        zoo.load(bad)


class StandInHfApi:
    """Records what the real HfApi would be asked to do, and what the upload folder holds."""

    def __init__(self):
        self.calls, self.uploaded = [], {}

    def create_repo(self, repo_id, private=False, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private))

    def create_branch(self, repo_id, branch, exist_ok=False):
        self.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None):
        self.uploaded = {p.relative_to(folder_path).as_posix(): p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()}
        self.calls.append(("upload_folder", repo_id, revision, commit_message))

        class Info:
            oid = "5" * 40

        return Info()

    def create_tag(self, repo_id, tag, revision=None, exist_ok=False):
        self.calls.append(("create_tag", repo_id, tag, revision))


def test_publish_uploads_the_folder_and_card_in_one_commit():
    if not zoo.has_weights(NAME):
        pytest.skip("no shipped weights")
    api = StandInHfApi()
    oid = hub.publish(NAME, REPO, revision="v1", private=True, api=api)
    assert oid == "5" * 40
    folder = zoo.preset_folder(NAME)
    assert set(api.uploaded) == {p.name for p in folder.iterdir() if p.is_file()}  # the folder as it is
    for name in ("config.json", "model.weights.h5", "metadata.json", "README.md"):
        assert api.uploaded[name] == (folder / name).read_bytes()
    card = api.uploaded["README.md"].decode()
    assert card.startswith("---\nlibrary_name: keras\n") and "model-index:" in card and "](evaluation.png)" in card
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder", "create_tag"]
    assert api.calls[2] == ("upload_folder", REPO, "v1", f"Upload {NAME} (physics model zoo {zoo.__version__})")
    assert api.calls[3] == ("create_tag", REPO, f"zoo-v{zoo.__version__}", "5" * 40)


def test_publish_refuses_a_tampered_preset(tmp_path):
    if not zoo.has_weights(NAME):
        pytest.skip("no shipped weights")
    copy = tmp_path / NAME
    shutil.copytree(zoo.preset_folder(NAME), copy)
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    api = StandInHfApi()
    with pytest.raises(artifacts.ArtifactError, match="config.json"):
        hub.publish(str(copy), REPO, api=api)
    assert api.calls == []


def test_publish_uploads_the_folders_own_card_and_refuses_a_folder_without_one(tmp_path):
    if not zoo.has_weights(NAME):
        pytest.skip("no shipped weights")
    copy = tmp_path / NAME
    shutil.copytree(zoo.preset_folder(NAME), copy)
    (copy / "README.md").write_text("---\nlibrary_name: keras\n---\n# the card of this folder\n")
    api = StandInHfApi()
    hub.publish(str(copy), REPO, api=api)
    assert api.uploaded["README.md"] == (copy / "README.md").read_bytes()
    (copy / "README.md").unlink()
    api = StandInHfApi()
    with pytest.raises(hub.HubError, match="has no README.md, the card the Hub shows"):
        hub.publish(str(copy), REPO, api=api)
    assert api.calls == []


def test_hub_load_as_the_first_zoo_call_of_a_new_process(offline_cache):
    """Before the registry was built on first use, this failed: "holds a 'scinet' model ... does not know"."""
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(offline_cache))
    script = f"import zoo; m = zoo.load('hf://{REPO}@{MAIN}'); print(type(m).__name__, m.encode([[0.0] * 50]).shape)"
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SciNet (1, 2)" in result.stdout


def test_publish_with_an_export_uploads_the_folder_the_export_wrote(tmp_path):
    """zoo publish --with-export: the command line exports, the hub code only uploads that folder."""
    if not zoo.has_weights(NAME):
        pytest.skip("no shipped weights")
    from serving.export import export_model

    export_dir = export_model(zoo.load(NAME), tmp_path / "export" / "1")
    api = StandInHfApi()
    hub.publish(NAME, REPO, api=api, export_dir=export_dir)
    assert api.uploaded["saved_model/1/saved_model.pb"] == (export_dir / "saved_model.pb").read_bytes()
    with pytest.raises(hub.HubError, match="not a SavedModel folder"):
        hub.publish(NAME, REPO, api=StandInHfApi(), export_dir=tmp_path)
