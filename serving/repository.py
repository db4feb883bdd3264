"""The models a server holds: SavedModel versions found on disk, loaded, refreshed while running.

Layout as TF Serving reads it: BASE/NAME/VERSION/saved_model.pb, and an
optional BASE/models.config (model_config_list) naming models, their base
paths and version labels. A version folder that fails to load (half-written,
corrupt) is refused with a logged error and retried when its files change;
the versions already loaded keep serving.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

log = logging.getLogger("zoo.serving")


CALL_ROWS = 256  # rows per model call; larger requests run in chunks of this size


class NotFound(LookupError):
    """An unknown model, version, label or signature (HTTP 404)."""


class BadRequest(ValueError):
    """A request the model cannot answer as sent (HTTP 400)."""


@dataclasses.dataclass
class Signature:
    """A callable signature with its named input and output specs."""

    function: object
    inputs: dict  # name -> tf.TensorSpec
    outputs: dict  # name -> tf.TensorSpec

    def check(self, name: str, values: dict, max_rows: int | None = None, from_json: bool = True) -> dict:
        """Named float inputs as arrays of the right shapes, or a BadRequest naming the bad field.

        JSON values must be nested lists of numbers, exactly as deep as the input's rank:
        booleans, strings and nulls are refused, as TF Serving refuses them. ``max_rows``
        bounds the batch of one request.
        """
        missing = sorted(set(self.inputs) - set(values))
        unknown = sorted(set(values) - set(self.inputs))
        if missing or unknown:
            raise BadRequest(
                f"signature '{name}' takes inputs {sorted(self.inputs)}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else "")
            )
        arrays = {key: self._array(key, values[key], spec, from_json) for key, spec in self.inputs.items()}
        sizes = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise BadRequest(f"inputs disagree on the batch size: {sizes}")
        rows = next(iter(sizes.values()))
        if max_rows is not None and rows > max_rows:
            raise BadRequest(
                f"the request has {rows} rows; this server answers at most {max_rows} rows per request "
                "(split the request, or start the server with a larger --max-rows-per-request)"
            )
        return arrays

    @staticmethod
    def _array(key, value, spec, from_json: bool) -> np.ndarray:
        expected = tuple(spec.shape.as_list()[1:])
        shown = tuple("batch" if d is None else d for d in spec.shape.as_list())
        if from_json:
            leaf_types = _leaf_types(value, len(expected) + 1)
            if leaf_types is None:
                raise BadRequest(f"input '{key}' is not a nested list of rank {len(shown)}; expected shape {shown}")
            if not leaf_types <= {int, float}:
                received = sorted(t.__name__ for t in leaf_types - {int, float})
                raise BadRequest(f"input '{key}' must hold numbers; received {received} values")
        if spec.dtype.is_integer:
            _refuse_fractions(key, value, spec.dtype.name)
        try:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
                array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError, OverflowError):
            raise BadRequest(
                f"input '{key}' could not be read as {spec.dtype.name} of shape {shown}: received {str(value)[:80]}"
            ) from None
        if array.ndim != len(expected) + 1 or any(e is not None and a != e for a, e in zip(array.shape[1:], expected)):
            raise BadRequest(f"input '{key}' has shape {array.shape}; expected {shown}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise BadRequest(f"input '{key}' contains NaN or infinite values (or numbers beyond float32)")
        return array

    def __call__(self, arrays: dict) -> dict:
        """The model's outputs, computed ``CALL_ROWS`` rows at a time: a large request's activations never
        exceed those of one chunk, so its memory grows with its outputs only."""
        rows = len(next(iter(arrays.values())))
        if rows <= CALL_ROWS:
            return self._call(arrays)
        chunks = [self._call({k: v[i:i + CALL_ROWS] for k, v in arrays.items()}) for i in range(0, rows, CALL_ROWS)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _call(self, arrays: dict) -> dict:
        try:
            outputs = self.function(**{k: tf.constant(v) for k, v in arrays.items()})
        except tf.errors.InvalidArgumentError as e:  # a check inside the model's graph, as TF Serving reports it
            raise BadRequest(_assertion_message(e.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _refuse_fractions(key: str, value, dtype: str) -> None:
    """An integer input (seeds, indices) takes whole numbers only, never rounded (as the zoo's checks do)."""
    try:
        given = np.asarray(value)
    except (TypeError, ValueError):
        return  # ragged: the cast in _array reports it
    if given.dtype.kind != "f":
        return
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(given) & (np.floor(given) == given) & (np.abs(given) < 2.0**63)
    if not np.all(whole):
        raise BadRequest(f"input '{key}' must hold whole numbers ({dtype}); received e.g. "
                         f"{given[~whole].ravel()[:3].tolist()}")


def _leaf_types(value, rank: int):
    """The set of types at depth ``rank`` of nested lists, or None if some branch is shallower.

    Iterative, level by level, so a hostile nesting depth costs no recursion."""
    level = [value]
    for _ in range(rank):
        if not all(type(v) is list for v in level):
            return None
        level = [item for v in level for item in v]
    return {type(v) for v in level}


def _assertion_message(text: str) -> str:
    """The message of a failed tf.debugging assertion, without TF's graph trace."""
    found = re.search(r"assertion failed: \[([^\]]*)\](.*)", text)
    if not found:
        return text.strip().splitlines()[-1][:300]
    values = re.findall(r"\[(-?[\d.]+)\]", found.group(2))
    return found.group(1) + (f" (received {values[0]}, expected {values[1]})" if len(values) >= 2 else "")


@dataclasses.dataclass
class Servable:
    name: str
    version: int
    path: Path
    signatures: dict  # signature name -> Signature
    module: object = None

    def signature(self, name: str | None) -> Signature:
        key = name or "serving_default"
        if key not in self.signatures:
            raise BadRequest(
                f"signature_name '{key}' is not a signature of {self.name} version {self.version}; "
                f"available: {sorted(self.signatures)}"
            )
        return self.signatures[key]


def load_servable(name: str, version: int, path: Path) -> Servable:
    if not (path / "saved_model.pb").exists():
        raise FileNotFoundError(f"{path} has no saved_model.pb")
    module = tf.saved_model.load(str(path))
    signatures = {}
    for sig_name, fn in module.signatures.items():
        inputs = dict(fn.structured_input_signature[1])
        signatures[sig_name] = Signature(fn, inputs, dict(fn.structured_outputs))
    if not signatures:
        raise ValueError(f"{path} has no signatures")
    return Servable(name, version, path, signatures, module)


@dataclasses.dataclass
class ModelEntry:
    base_path: Path
    labels: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)  # version -> Servable
    failed: dict = dataclasses.field(default_factory=dict)  # version -> (signature of files, error message)


def _config_blocks(text: str) -> list:
    """The bodies of the ``config { ... }`` entries of a model_config_list, nested braces included."""
    blocks = []
    for match in re.finditer(r"\bconfig\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                blocks.append(text[start:i])
                break
        else:
            raise ValueError("models.config has an unclosed 'config {' entry")
    return blocks


def parse_models_config(text: str, base: Path) -> dict:
    """name -> ModelEntry from a text model_config_list (the fields the zoo writes and reads)."""
    entries = {}
    for block in _config_blocks(text):
        name = re.search(r"name:\s*['\"]([^'\"]+)['\"]", block)
        path = re.search(r"base_path:\s*['\"]([^'\"]+)['\"]", block)
        if not name:
            raise ValueError(f"a config entry in models.config has no name: {block.strip()[:80]}")
        labels = {k: int(v) for k, v in re.findall(r"version_labels\s*\{\s*key:\s*['\"]([^'\"]+)['\"]\s*value:\s*(\d+)\s*\}", block)}
        base_path = Path(path.group(1)) if path else base / name.group(1)
        entries[name.group(1)] = ModelEntry(base_path if base_path.is_absolute() else base / base_path, labels)
    return entries


class ModelRepository:
    """Every model and version under ``base_dir``, kept in step with the disk by :meth:`refresh`."""

    def __init__(self, base_dir, config_file=None):
        self.base_dir = Path(base_dir)
        self.config_file = Path(config_file) if config_file else self.base_dir / "models.config"
        self.models: dict = {}
        self._lock = threading.Lock()
        self.refresh()

    def _declared_models(self) -> dict:
        if self.config_file.exists():
            return parse_models_config(self.config_file.read_text(), self.base_dir)
        return {p.name: ModelEntry(p) for p in sorted(self.base_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")}

    def refresh(self) -> None:
        """Load version folders that appeared, drop those that disappeared, refuse broken ones."""
        declared = self._declared_models()
        with self._lock:
            for name, entry in declared.items():
                current = self.models.setdefault(name, entry)
                current.labels, current.base_path = entry.labels, entry.base_path
        for name, entry in list(self.models.items()):
            on_disk = {int(p.name): p for p in entry.base_path.glob("*") if p.name.isdigit() and p.is_dir()} if entry.base_path.exists() else {}
            for version, path in sorted(on_disk.items()):
                if version in entry.versions:
                    continue
                stamp = tuple(sorted((str(f), f.stat().st_size) for f in path.rglob("*") if f.is_file()))
                if entry.failed.get(version, (None,))[0] == stamp:
                    continue
                try:
                    servable = load_servable(name, version, path)
                except Exception as e:  # a broken export must never stop the server
                    entry.failed[version] = (stamp, str(e).splitlines()[0][:300])
                    log.error("refusing %s version %d at %s: %s", name, version, path, entry.failed[version][1])
                    continue
                with self._lock:
                    entry.versions[version] = servable
                    entry.failed.pop(version, None)
                log.info("serving %s version %d from %s", name, version, path)
            with self._lock:
                for version in set(entry.versions) - set(on_disk):
                    del entry.versions[version]

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        with self._lock:
            entry = self.models.get(name)
            if entry is None or not (entry.versions or entry.failed):
                raise NotFound(f"Servable not found for request: model '{name}' is not served")
            if label is not None:
                if label not in entry.labels:
                    raise NotFound(f"Unrecognized servable version label: {label}")
                version = entry.labels[label]
            if version is None:
                if not entry.versions:
                    raise NotFound(f"Servable not found for request: no loadable version of '{name}'")
                return entry.versions[max(entry.versions)]
            if version not in entry.versions:
                raise NotFound(f"Servable not found for request: Specific({name}, {version})")
            return entry.versions[version]

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list:
        """TF Serving's model_version_status entries."""
        with self._lock:
            entry = self.models.get(name)
            if entry is None:
                raise NotFound(f"Could not find any versions of model {name}")
            rows = {v: ("AVAILABLE", "OK", "") for v in entry.versions}
            rows.update({v: ("END", "UNKNOWN", msg) for v, (_, msg) in entry.failed.items() if v not in rows})
        if label is not None or version is not None:
            wanted = self.resolve(name, version, label).version
            rows = {wanted: rows[wanted]}
        return [
            {"version": str(v), "state": state, "status": {"error_code": code, "error_message": msg}}
            for v, (state, code, msg) in sorted(rows.items(), reverse=True)
        ]
