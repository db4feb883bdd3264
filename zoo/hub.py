"""Hugging Face Hub: publish a preset folder as it is, load ``hf://ORG/NAME[@REVISION]`` pinned and verified.

Downloads go through ``huggingface_hub.snapshot_download`` and its cache, so
``HF_HUB_OFFLINE=1`` works from the cache. Every file is checked against the
sha256 recorded in metadata.json before any model is built, and only
registered zoo classes are ever constructed.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import zoo
from zoo import artifacts

PREFIX = "hf://"
README = "README.md"


class HubError(ValueError):
    """A Hub repo, revision or file that cannot give a zoo preset."""


def parse(name: str) -> tuple:
    """``hf://ORG/NAME@REVISION`` -> (``ORG/NAME``, ``REVISION`` or None)."""
    if not name.startswith(PREFIX):
        raise HubError(f"A Hub preset name starts with {PREFIX!r}; received {name!r}.")
    repo_id, _, revision = name[len(PREFIX):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"Expected {PREFIX}ORG/NAME[@REVISION]; received {name!r}.")
    return repo_id, revision or None


def download(repo_id: str, revision: str | None = None, cache_dir=None) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (branch, tag or commit hash)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir,
            library_name="physics-model-zoo", library_version=zoo.__version__,
        ))
    except RevisionNotFoundError:
        raise HubError(f"Revision {revision!r} does not exist in the Hub repo {repo_id!r}.") from None
    except RepositoryNotFoundError:
        raise HubError(f"The Hub repo {repo_id!r} does not exist or is not accessible with your token.") from None
    except LocalEntryNotFoundError:
        raise HubError(
            f"{repo_id!r} at revision {revision or 'main'!r} is not in the Hugging Face cache and the Hub "
            "cannot be reached (offline, HF_HUB_OFFLINE=1, or no network). Download it once while online."
        ) from None


def load(name: str, cache_dir=None, **config_overrides):
    """Build the model of ``hf://ORG/NAME[@REVISION]`` after verifying every file."""
    repo_id, revision = parse(name)
    folder = download(repo_id, revision, cache_dir)
    if not (folder / artifacts.METADATA_FILE).exists():
        raise HubError(f"{repo_id!r} is not a zoo preset: it has no {artifacts.METADATA_FILE}.")
    metadata = artifacts.verify_preset(folder)
    saved = artifacts.read_json(folder / artifacts.CONFIG_FILE)
    import keras

    if keras.saving.get_registered_object(saved.get("class_name", "")) is None:
        raise HubError(
            f"{repo_id!r} holds a {metadata.get('family', 'unknown')!r} model ({saved.get('class_name')}) that this "
            f"zoo {zoo.__version__} does not know; it was written by zoo {metadata.get('zoo_version', '?')}: "
            "upgrade the zoo to at least that version."
        )
    return artifacts.build_from_folder(folder, config_overrides, verify=False)


def staged_repo(name: str, with_export: bool = False) -> Path:
    """A temporary folder with what is uploaded: the preset folder, README.md = its card, optionally the export."""
    from zoo import cards

    folder = zoo.preset_folder(name)
    metadata = artifacts.verify_preset(folder)
    if not metadata.get("metrics") or not metadata.get("targets"):
        raise HubError(f"{name!r} has no measured metrics in its metadata.json; evaluate it before publishing.")
    staging = Path(tempfile.mkdtemp(prefix=f"zoo-publish-{name}-"))
    for path in folder.iterdir():
        if path.is_file():
            shutil.copy2(path, staging / path.name)
    (staging / README).write_text(cards.render_card(name, figure_dir=""))
    if with_export:
        from serving.export import export_model  # serving imports zoo; imported only when asked for

        export_model(zoo.load(name), staging / "saved_model" / "1")
    return staging


def publish(name: str, repo_id: str, revision: str | None = None, private: bool = False,
            with_export: bool = False, api=None) -> str:
    """Upload preset ``name`` to ``repo_id`` in one commit, tag it with the zoo version; return the commit hash.

    The token comes from HF_TOKEN or ``huggingface-cli login`` through ``HfApi``.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    staging = staged_repo(name, with_export)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(staging), revision=revision,
            commit_message=f"Upload {name} (physics model zoo {zoo.__version__})",
        )
        api.create_tag(repo_id, tag=f"zoo-v{zoo.__version__}", revision=info.oid, exist_ok=True)
        return info.oid
    finally:
        shutil.rmtree(staging, ignore_errors=True)
