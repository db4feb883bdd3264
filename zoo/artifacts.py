"""Preset folders: write them atomically with their card, install and update them, save any zoo model as one.

A preset folder has the Hugging Face repository layout, so publishing uploads it as it is::

    config.json         the registered class and its constructor arguments
    model.weights.h5    Keras weights
    metadata.json       sha256 of every other file, metrics, recipe, data seeds, versions
    README.md           the model card, rendered from metadata.json by zoo.cards
    *.png               figures the card shows

Nothing is ever half-written: files go to a temporary sibling first and are renamed into place. Every file
listed in metadata.json is checked on load. The card is not hashed, as metadata.json is not: both are
rendered from the hashed files and the evaluation's outputs, and ``zoo card`` may render the card again.

Reading and verifying folders lives in :mod:`zoo.folders`, below :mod:`zoo.cards`; its functions are
re-exported here, so that ``zoo.artifacts`` is the one module to save, load and verify with.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from zoo import cards, registry
from zoo.folders import (
    CONFIG_FILE,
    METADATA_FILE,
    README_FILE,
    WEIGHTS_FILE,
    ArtifactError,
    UnknownFamilyError,
    atomic_write_text,
    build_from_folder,
    construct_model,
    is_preset_folder,
    model_class,
    read_config,
    read_json,
    read_metadata,
    recover_interrupted_swap,
    refuse_outside_link,
    retired_folder,
    sha256_file,
    verify_preset,
    write_json,
)
from zoo.version import __version__

__all__ = [
    "CONFIG_FILE", "METADATA_FILE", "README_FILE", "WEIGHTS_FILE", "ArtifactError", "UnknownFamilyError",
    "atomic_write_text", "build_from_folder", "check_destination", "construct_model", "inference_copy",
    "install_preset", "is_preset_folder", "model_class", "model_config", "read_config", "read_json",
    "read_metadata", "recover_interrupted_swap", "refuse_outside_link", "replace_files", "save_to_preset",
    "sha256_file", "verify_preset", "write_json", "write_preset",
]


def check_destination(folder, force: bool = False) -> None:
    """Refuse to replace ``folder`` unless it is empty, missing, or a zoo preset folder and ``force`` is set.

    A folder that holds anything else (notes, data, other results) is never replaced.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; choose another destination.")
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not is_preset_folder(folder):
        raise FileExistsError(
            f"{folder} exists and holds files that are not a zoo preset folder; it is never replaced. "
            "Choose a new or empty folder."
        )
    if not force:
        raise FileExistsError(f"{folder} already holds a preset; pass --force (force=True) to replace it.")


def model_config(model) -> dict:
    """What config.json holds: the registered class name and the constructor arguments."""
    import keras  # here, not at the top: verifying and reading folders needs no TensorFlow

    return {"class_name": keras.saving.get_registered_name(type(model)), "config": _constructor_config(model)}


def _constructor_config(model) -> dict:
    config = model.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    return config


def write_preset(folder, model, metadata: dict, extra_files: dict | None = None, force: bool = False,
                 card=None) -> Path:
    """Write a complete preset folder with its card, replacing ``folder`` only once everything is written.

    An existing ``folder`` is replaced only if it is a zoo preset folder and
    ``force`` is set (:func:`check_destination`).

    Args:
        folder: destination folder.
        model: a built zoo model.
        metadata: everything but ``files`` (filled here with each file's sha256).
        extra_files: name -> bytes of figures or other files to ship (README.md is the card's).
        card: ``card(metadata) -> markdown`` for README.md, given the final metadata; by default
            :func:`zoo.cards.folder_card` (the full card of a trained preset, else a short one).
    """
    folder = Path(folder)
    if README_FILE in (extra_files or {}):
        raise ArtifactError(f"extra_files holds {README_FILE}, which is the card: pass card=, a function of the "
                            f"metadata, instead; received extra files {sorted(extra_files)}.")
    recover_interrupted_swap(folder)
    check_destination(folder, force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging."))
    try:
        config = model_config(model)
        write_json(staging / CONFIG_FILE, config)
        inference_copy(model).save_weights(staging / WEIGHTS_FILE)
        for name, data in (extra_files or {}).items():
            (staging / name).write_bytes(data)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        metadata = dict(metadata, files={name: sha256_file(staging / name) for name in files})
        write_json(staging / METADATA_FILE, metadata)
        readme = card(metadata) if card is not None else cards.folder_card(metadata, model, config["config"])
        (staging / README_FILE).write_text(readme)
        _swap_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def save_to_preset(model, folder, metadata: dict | None = None, force: bool = False, card=None) -> dict:
    """Write ``model`` as a verified preset folder (config, weights, metadata, README card), as fine-tuning
    does; ``zoo.load(folder)`` loads it back. Returns the folder's metadata.

    ``metadata`` adds entries (e.g. measured ``metrics``); the parent preset, if the model was loaded
    from one (``model.preset``), is recorded with the sha256 of its weights. ``card(metadata)`` writes the
    README (default: :func:`zoo.cards.derived_card`). An occupied folder is refused unless it is a preset
    folder and ``force`` is set."""
    info, family = vars(model).get("preset"), registry.family_of_class(type(model))
    record = {"name": Path(folder).name, "family": family.name if family else None,
              "family_module": family.module if family else type(model).__module__,
              "zoo_version": __version__, "metrics": {}, "targets": [], **(metadata or {})}
    if info is not None and info.weights_sha256:
        record.setdefault("parent", {"preset": info.base or info.name, "source": info.source,
                                     "zoo_version": info.zoo_version, "weights_sha256": info.weights_sha256})
    write_preset(folder, model, record, force=force,
                 card=card if card is not None else (lambda written: cards.derived_card(written, model)))
    return verify_preset(folder)


def inference_copy(model):
    """The same weights in an uncompiled model, so that no optimizer state is shipped."""
    copy = type(model).from_config(model.get_config())
    copy.build_with_examples()
    copy.set_weights(model.get_weights())
    return copy


def install_preset(source, destination, force: bool = True) -> Path:
    """Copy a verified preset folder over ``destination``, which changes only once the copy is complete."""
    source, destination = Path(source), Path(destination)
    verify_preset(source)
    recover_interrupted_swap(destination)
    check_destination(destination, force)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.staging."))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        _swap_into_place(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def replace_files(folder, files: dict, metadata_updates: dict | None = None) -> dict:
    """Replace or add files (name -> bytes) of a verified preset folder, e.g. a figure redrawn by newer code,
    keeping every other file byte for byte; metadata.json records the new sha256s, and ``metadata_updates``
    (top-level key -> new value: metrics measured again, say) replace those entries. The folder changes in one
    swap, so a reader sees the old or the new folder, complete. Returns the new metadata.

    metadata.json and README.md are not among the files: the card is rendered from metadata.json
    (:func:`zoo.cards.write_card`)."""
    folder = Path(folder)
    metadata = verify_preset(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging."))
    try:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        for name, data in files.items():
            if Path(name).name != name or name in (METADATA_FILE, README_FILE):
                raise ArtifactError(f"replace_files takes plain file names other than {METADATA_FILE} and "
                                    f"{README_FILE}; received {name!r}.")
            (staging / name).write_bytes(data)
        recorded = dict(metadata["files"], **{name: sha256_file(staging / name) for name in files})
        write_json(staging / METADATA_FILE, dict(metadata, **(metadata_updates or {}), files=recorded))
        _swap_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return verify_preset(folder)


def _swap_into_place(staging: Path, folder: Path) -> None:
    """Replace ``folder`` by ``staging``: retire the old one, rename the new one in, delete the retired one.

    A crash between the two renames leaves only the retired folder, which
    :func:`recover_interrupted_swap` renames back: a reader sees the old or the new folder, complete.
    """
    retired = retired_folder(folder)
    if folder.exists():
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
    os.replace(staging, folder)
    shutil.rmtree(retired, ignore_errors=True)
