"""Hugging Face Hub: load ``hf://ORG/NAME[@REVISION]`` pinned and verified, publish a preset folder as it is.

A preset folder is a Hub repository already (config, weights, metadata.json, figures and README.md, the
card): publishing uploads its files unchanged. Downloads go through the Hugging Face cache
(:func:`zoo.sources.download`), so ``HF_HUB_OFFLINE=1`` works from the cache. Every file is checked against
the sha256 recorded in metadata.json before any model is built, and only registered zoo classes are ever
constructed.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from zoo import folders, sources
from zoo.sources import HUB_PREFIX as PREFIX
from zoo.sources import HubError, download, parse, preset_snapshot
from zoo.version import __version__

__all__ = ["PREFIX", "README", "HubError", "download", "load", "load_with_folder", "parse", "publish", "staged_repo"]

README = folders.README_FILE


def load(name: str, cache_dir=None, **config_overrides):
    """Build the model of ``hf://ORG/NAME[@REVISION]`` after verifying every file."""
    return load_with_folder(name, cache_dir, **config_overrides)[0]


def load_with_folder(name: str, cache_dir=None, **config_overrides) -> tuple:
    """(model, the verified snapshot folder it was built from) of ``hf://ORG/NAME[@REVISION]``."""
    repo_id, revision = parse(name)
    folder = preset_snapshot(repo_id, revision, cache_dir)
    return load_snapshot(repo_id, folder, config_overrides)[0], folder


def load_snapshot(repo_id: str, folder, config_overrides: dict) -> tuple:
    """(model, metadata) of the snapshot ``folder`` of a zoo preset on the Hub (:func:`preset_snapshot`),
    after verifying every file."""
    try:
        return folders.load_folder(folder, config_overrides)
    except folders.UnknownFamilyError as e:
        raise HubError(str(e).replace(str(folder), f"The Hub repo {repo_id!r}")) from None


def staged_repo(name, export_dir=None) -> Path:
    """A temporary folder with what is uploaded: the preset folder's files as they are (README.md, its card,
    included), and ``export_dir`` (a SavedModel that ``zoo export`` already wrote) as saved_model/1 when given.

    ``name`` is a preset name, a preset folder or an ``hf://`` name (:func:`zoo.sources.locate`)."""
    source = sources.locate(name)
    if source.folder is None:
        raise HubError(f"{name!r} has no preset folder to publish; train it or fine-tune it first.")
    metadata = folders.verify_preset(source.folder)
    if not metadata.get("metrics") or not metadata.get("targets"):
        raise HubError(f"{name!r} has no measured metrics in its metadata.json; evaluate it before publishing.")
    if not (source.folder / README).is_file():
        raise HubError(f"{source.folder} has no {README}, the card the Hub shows; expected one rendered from its "
                       "metadata.json (`zoo card NAME` renders a registered preset's).")
    if export_dir is not None and not (Path(export_dir) / "saved_model.pb").is_file():
        raise HubError(f"{export_dir} is not a SavedModel folder (no saved_model.pb); run `zoo export` first.")
    staging = Path(tempfile.mkdtemp(prefix="zoo-publish-"))
    for path in source.folder.iterdir():
        if path.is_file():
            shutil.copy2(path, staging / path.name)
    if export_dir is not None:
        shutil.copytree(export_dir, staging / "saved_model" / "1")
    return staging


def publish(name, repo_id: str, revision: str | None = None, private: bool = False,
            export_dir=None, api=None) -> str:
    """Upload preset ``name`` (a name or a preset folder) to ``repo_id`` in one commit, tag it with the zoo
    version; return the commit hash.

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
            commit_message=f"Upload {name} (physics model zoo {__version__})",
        )
        api.create_tag(repo_id, tag=f"zoo-v{__version__}", revision=info.oid, exist_ok=True)
        return info.oid
    finally:
        shutil.rmtree(staging, ignore_errors=True)
