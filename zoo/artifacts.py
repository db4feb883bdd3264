"""Preset folders: write them atomically, verify every file, build the model.

A preset folder has the Hugging Face repository layout, so publishing uploads
it as it is::

    config.json         the registered class and its constructor arguments
    model.weights.h5    Keras weights
    metadata.json       sha256 of every other file, metrics, recipe, data seeds, versions
    *.png               figures the card shows

Nothing is ever half-written: files go to a temporary sibling first and are
renamed into place. Every file listed in metadata.json is checked on load.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


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


def write_preset(folder, model, metadata: dict, extra_files: dict | None = None, force: bool = False) -> Path:
    """Write a complete preset folder, replacing ``folder`` only once everything is written.

    An existing ``folder`` is replaced only if it is a zoo preset folder and
    ``force`` is set (:func:`check_destination`).

    Args:
        folder: destination folder.
        model: a built zoo model.
        metadata: everything but ``files`` (filled here with each file's sha256).
        extra_files: name -> bytes of figures or other files to ship.
    """
    folder = Path(folder)
    recover_interrupted_swap(folder)
    check_destination(folder, force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging."))
    try:
        write_json(staging / CONFIG_FILE, model_config(model))
        inference_copy(model).save_weights(staging / WEIGHTS_FILE)
        for name, data in (extra_files or {}).items():
            (staging / name).write_bytes(data)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        metadata = dict(metadata, files={name: sha256_file(staging / name) for name in files})
        write_json(staging / METADATA_FILE, metadata)
        _swap_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


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


def _retired(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.retired")


def replace_files(folder, files: dict) -> dict:
    """Replace or add files (name -> bytes) of a verified preset folder, e.g. a figure redrawn by newer code,
    keeping every other file byte for byte; metadata.json records the new sha256s. The folder changes in one
    swap, so a reader sees the old or the new folder, complete. Returns the new metadata."""
    folder = Path(folder)
    metadata = verify_preset(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging."))
    try:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        for name, data in files.items():
            if Path(name).name != name or name == METADATA_FILE:
                raise ArtifactError(f"replace_files takes plain file names other than {METADATA_FILE}; received {name!r}.")
            (staging / name).write_bytes(data)
        recorded = dict(metadata["files"], **{name: sha256_file(staging / name) for name in files})
        write_json(staging / METADATA_FILE, dict(metadata, files=recorded))
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
    retired = _retired(folder)
    if folder.exists():
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
    os.replace(staging, folder)
    shutil.rmtree(retired, ignore_errors=True)


def recover_interrupted_swap(folder) -> None:
    """Put back the previous preset folder if a write was interrupted between its two renames,
    and delete staging folders that a killed write left beside it."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return
    retired = _retired(folder)
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
    from zoo.registry import ensure_built
    from zoo.models.base import ZooModel

    ensure_built()  # every installed family registers its classes before any lookup
    import keras

    cls = keras.saving.get_registered_object(saved["class_name"])
    if cls is None or not (isinstance(cls, type) and issubclass(cls, ZooModel)):
        import zoo

        family = metadata.get("family", "unknown")
        module = metadata.get("family_module")
        needs = f"the package that provides module {module!r}" if module else "the package that defines it"
        raise UnknownFamilyError(
            f"{folder} holds a {family!r} model ({saved['class_name']}) that this zoo {zoo.__version__} does not "
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
    return model
