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
    return load_with_folder(name, cache_dir, **config_overrides)[0]


def load_with_folder(name: str, cache_dir=None, **config_overrides) -> tuple:
    """(model, the verified snapshot folder it was built from) of ``hf://ORG/NAME[@REVISION]``."""
    repo_id, revision = parse(name)
    folder = download(repo_id, revision, cache_dir)
    if not (folder / artifacts.METADATA_FILE).exists():
        raise HubError(f"{repo_id!r} is not a zoo preset: it has no {artifacts.METADATA_FILE}.")
    try:
        return artifacts.build_from_folder(folder, config_overrides), folder
    except artifacts.UnknownFamilyError as e:
        raise HubError(str(e).replace(str(folder), f"The Hub repo {repo_id!r}")) from None


def staged_repo(name: str, export_dir=None) -> Path:
    """A temporary folder with what is uploaded: the preset folder, README.md = its card, and ``export_dir``
    (a SavedModel that ``zoo export`` already wrote) as saved_model/1 when given."""
    from zoo import cards

    source = zoo.locate(name)
    if source.folder is None:
        raise HubError(f"{name!r} has no preset folder to publish; train it or fine-tune it first.")
    metadata = artifacts.verify_preset(source.folder)
    if not metadata.get("metrics") or not metadata.get("targets"):
        raise HubError(f"{name!r} has no measured metrics in its metadata.json; evaluate it before publishing.")
    staging = Path(tempfile.mkdtemp(prefix="zoo-publish-"))
    for path in source.folder.iterdir():
        if path.is_file():
            shutil.copy2(path, staging / path.name)
    (staging / README).write_text(cards.render_card(name, figure_dir=""))
    if export_dir is not None:
        if not (Path(export_dir) / "saved_model.pb").is_file():
            raise HubError(f"{export_dir} is not a SavedModel folder (no saved_model.pb); run `zoo export` first.")
        shutil.copytree(export_dir, staging / "saved_model" / "1")
    return staging


def publish(name: str, repo_id: str, revision: str | None = None, private: bool = False,
            export_dir=None, api=None) -> str:
    """Upload preset ``name`` to ``repo_id`` in one commit, tag it with the zoo version; return the commit hash.

    The token comes from HF_TOKEN or ``huggingface-cli login`` through ``HfApi``.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    staging = staged_repo(name, export_dir)
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
