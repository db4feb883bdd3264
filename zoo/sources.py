"""Where a preset's files come from: a registered preset's shipped folder, a folder path, or a pinned
revision of a Hugging Face Hub repository, downloaded into the Hugging Face cache.

Downloads go through ``huggingface_hub.snapshot_download`` and its cache, so ``HF_HUB_OFFLINE=1`` works
from the cache. Nothing here builds a model: :func:`locate` says which folder (and which registered preset)
a name stands for, and :mod:`zoo.folders` verifies the folder before anything is built from it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from zoo import folders, registry
from zoo.version import __version__

HUB_PREFIX = "hf://"


class HubError(ValueError):
    """A Hub repo, revision or file that cannot give a zoo preset."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What a preset name, a preset folder or an ``hf://`` name points to.

    Attributes:
        name: what the user gave.
        spec: the registered preset it is, or descends from (a fine-tuned folder's
            parent); None for a folder of an unregistered preset.
        folder: the preset folder holding its files (None: no weights shipped).
        shipped: given by its registered name, so its folder is the one the zoo ships.
    """

    name: str
    spec: object
    folder: Path | None
    shipped: bool = False


def preset_folder(name: str) -> Path:
    """Where the shipped weights, config, metadata and card of registered preset ``name`` live."""
    spec = registry.get_spec(name)
    base = registry.get_family(spec.family).pretrained_dir
    return Path(base or registry.PRETRAINED_DIR) / spec.name


def has_weights(name: str) -> bool:
    """Whether pretrained weights are shipped for registered preset ``name``."""
    return (preset_folder(name) / folders.METADATA_FILE).exists()


def looks_like_path(name) -> bool:
    return isinstance(name, Path) or (isinstance(name, str) and (os.sep in name or "/" in name or name.startswith(".")))


def locate(name) -> Source:
    """Resolve a preset name, a preset folder path or ``hf://ORG/NAME[@REVISION]`` (downloaded if need be).

    Raises:
        KeyError: an unknown preset name (with close matches).
        zoo.folders.ArtifactError: a path that is not a preset folder.
        HubError: a malformed ``hf://`` name, or a repo or revision that cannot be downloaded.
    """
    if isinstance(name, str) and name.startswith(HUB_PREFIX):
        return folder_source(str(name), preset_snapshot(*parse(name)))
    if looks_like_path(name):
        folder = Path(name)
        folders.recover_interrupted_swap(folder)
        if not (folder / folders.METADATA_FILE).is_file():
            what = "does not exist" if not folder.exists() else f"has no {folders.METADATA_FILE}"
            raise folders.ArtifactError(f"{folder} is not a preset folder: it {what}.")
        return folder_source(str(name), folder)
    spec = registry.get_spec(name)
    folder = preset_folder(spec.name)
    return Source(spec.name, spec, folder if (folder / folders.METADATA_FILE).is_file() else None, shipped=True)


def folder_source(name: str, folder: Path) -> Source:
    """The Source of a preset folder: its spec is the registered preset it is, or its parent if fine-tuned."""
    metadata = folders.read_metadata(folder)
    registered = {s.name: s for s in registry.list_specs()}
    return Source(name, registered.get(registry.registered_ancestor(metadata, registered)), folder)


def parse(name: str) -> tuple:
    """``hf://ORG/NAME@REVISION`` -> (``ORG/NAME``, ``REVISION`` or None)."""
    if not name.startswith(HUB_PREFIX):
        raise HubError(f"A Hub preset name starts with {HUB_PREFIX!r}; received {name!r}.")
    repo_id, _, revision = name[len(HUB_PREFIX):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"Expected {HUB_PREFIX}ORG/NAME[@REVISION]; received {name!r}.")
    return repo_id, revision or None


def preset_snapshot(repo_id: str, revision: str | None = None, cache_dir=None) -> Path:
    """The local snapshot folder of a zoo preset on the Hub: :func:`download`, refusing a repo that is not one."""
    folder = download(repo_id, revision, cache_dir)
    if not (folder / folders.METADATA_FILE).exists():
        raise HubError(f"{repo_id!r} is not a zoo preset: it has no {folders.METADATA_FILE}.")
    return folder


def download(repo_id: str, revision: str | None = None, cache_dir=None) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (branch, tag or commit hash)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir,
            library_name="physics-model-zoo", library_version=__version__,
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
