"""Preset folders on disk: their file names, reading and verifying them, building the model they hold.

A preset folder has the Hugging Face repository layout, so publishing uploads it as it is::

    config.json         the registered class and its constructor arguments
    model.weights.h5    Keras weights
    metadata.json       sha256 of every other file, metrics, recipe, data seeds, versions
    README.md           the model card, rendered from metadata.json (zoo.cards)
    *.png               figures the card shows

Every file listed in metadata.json is checked before a model is built from the folder. This is the
reading half of :mod:`zoo.artifacts`, which writes folders (and renders their cards with :mod:`zoo.cards`);
it sits below both, so that the cards can read folders without an import cycle.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from zoo.registry import ensure_built
from zoo.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"


class ArtifactError(ValueError):
    """A preset folder that is missing files, or whose files do not match their sha256."""


class UnknownFamilyError(ArtifactError):
    """A preset folder whose model class no installed family provides."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path.name} is missing from {path.parent}.") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON ({e}); the file is corrupt or truncated.") from None


def read_metadata(folder) -> dict:
    """metadata.json of a preset folder, checked to be an object whose "files" maps plain file names to sha256."""
    path = Path(folder) / METADATA_FILE
    refuse_outside_link(path, Path(folder))
    metadata = read_json(path)
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path} must hold a JSON object; it holds a {type(metadata).__name__}.")
    files = metadata.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{path}: \"files\" must map file names to sha256 strings; received {str(files)[:120]}.")
    for name in files:
        if name in ("", ".", "..") or "/" in name or "\\" in name or name != Path(name).name:
            raise ArtifactError(f"{path} lists {name!r}; only plain file names inside the preset folder are allowed.")
    return metadata


def read_config(folder) -> dict:
    """config.json of a preset folder: {"class_name": str, "config": object}."""
    path = Path(folder) / CONFIG_FILE
    saved = read_json(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("class_name"), str) or not isinstance(saved.get("config"), dict):
        raise ArtifactError(
            f"{path} must be an object with \"class_name\" (a string) and \"config\" (an object); "
            f"received {str(saved)[:120]}."
        )
    return saved


def is_preset_folder(folder) -> bool:
    """Whether ``folder`` is a preset folder the zoo wrote (a metadata.json recording file hashes)."""
    try:
        return bool(read_metadata(folder).get("files"))
    except ArtifactError:
        return False


def retired_folder(folder: Path) -> Path:
    """Where a folder being replaced waits, between the two renames of a swap (:mod:`zoo.artifacts`)."""
    return folder.with_name(f".{folder.name}.retired")


def recover_interrupted_swap(folder) -> None:
    """Put back the previous preset folder if a write was interrupted between its two renames,
    and delete staging folders that a killed write left beside it."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return
    retired = retired_folder(folder)
    if not folder.exists() and (retired / METADATA_FILE).is_file():
        os.replace(retired, folder)
    for stale in folder.parent.glob(f".{folder.name}.staging.*"):
        shutil.rmtree(stale, ignore_errors=True)


def verify_preset(folder) -> dict:
    """Check every file recorded in metadata.json against its sha256; return the metadata.

    Raises:
        ArtifactError: naming the first file that is missing, truncated or altered.
    """
    folder = Path(folder)
    metadata = read_metadata(folder)
    recorded = metadata.get("files")
    if not recorded or CONFIG_FILE not in recorded or WEIGHTS_FILE not in recorded:
        raise ArtifactError(
            f"{folder / METADATA_FILE} records no sha256 for {CONFIG_FILE} and {WEIGHTS_FILE}; "
            "the preset folder is incomplete."
        )
    for name, expected in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{name} is missing from the preset folder {folder}.")
        refuse_outside_link(path, folder)
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{name} in {folder} does not match its recorded sha256 "
                f"(expected {expected[:12]}..., found {actual[:12]}..., size {path.stat().st_size} bytes): "
                "the file is corrupt, truncated or was changed after training."
            )
    return metadata


def refuse_outside_link(path: Path, folder: Path) -> None:
    """Refuse a file of ``folder`` that is a link to a file outside it, unless it is a Hugging Face cache blob."""
    if path.is_symlink() and not _inside(path, folder) and not _in_hub_cache(path, folder):
        raise ArtifactError(
            f"{path.name} in {folder} is a link to a file outside the preset folder ({path.resolve()}); refused. "
            f"Expected a file inside {folder.resolve()}, or, in a Hugging Face cache snapshot, a link into "
            "that repo's blobs folder."
        )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _in_hub_cache(path: Path, folder: Path) -> bool:
    """A Hugging Face cache snapshot links each file to ../../blobs/<hash> of the same repo cache."""
    repo = folder.resolve().parent.parent
    return folder.resolve().parent.name == "snapshots" and path.resolve().is_relative_to(repo / "blobs")


def model_class(folder, saved: dict, metadata: dict):
    """The registered zoo model class that config.json names; an error naming the family it needs otherwise."""
    import keras  # here, not at the top: reading and verifying folders needs no TensorFlow

    from zoo.models.base import ZooModel

    ensure_built()  # every installed family registers its classes before any lookup
    cls = keras.saving.get_registered_object(saved["class_name"])
    if cls is None or not (isinstance(cls, type) and issubclass(cls, ZooModel)):
        family = metadata.get("family", "unknown")
        module = metadata.get("family_module")
        needs = f"the package that provides module {module!r}" if module else "the package that defines it"
        raise UnknownFamilyError(
            f"{folder} holds a {family!r} model ({saved['class_name']}) that this zoo {__version__} does not "
            f"know; it was written by zoo {metadata.get('zoo_version', '?')}. Install {needs} (families register "
            "through the 'physics_model_zoo.families' entry points) or upgrade the zoo to at least that version."
        )
    return cls


def construct_model(folder, overrides: dict | None = None, metadata: dict | None = None):
    """The model config.json declares (only registered zoo classes), constructed but not built: no weights read."""
    folder = Path(folder)
    saved = read_config(folder)
    cls = model_class(folder, saved, read_metadata(folder) if metadata is None else metadata)
    try:
        return cls(**dict(saved["config"], **(overrides or {})))
    except (TypeError, ValueError) as e:
        raise ArtifactError(
            f"{folder / CONFIG_FILE} cannot build {saved['class_name']} with this zoo version: {e}"
        ) from None


def build_from_folder(folder, overrides: dict | None = None, verify: bool = True):
    """Verify ``folder``, build its model (only registered zoo classes) and load its weights."""
    return load_folder(folder, overrides, verify)[0]


def load_folder(folder, overrides: dict | None = None, verify: bool = True) -> tuple:
    """(model, metadata) of ``folder``: verified, built (only registered zoo classes) and loaded, reading
    metadata.json once."""
    folder = Path(folder)
    metadata = verify_preset(folder) if verify else read_metadata(folder)
    model = construct_model(folder, overrides, metadata)
    model.build_with_examples()
    try:
        model.load_weights(folder / WEIGHTS_FILE)
    except OSError as e:
        raise ArtifactError(f"{WEIGHTS_FILE} in {folder} cannot be read as Keras weights ({e}).") from None
    except ValueError as e:
        changed = sorted(overrides or {})
        raise ArtifactError(
            f"The pretrained weights in {folder} do not fit the model built with overrides {changed}: {e}. "
            "Overrides that change layer sizes need pretrained=False."
        ) from None
    return model, metadata
