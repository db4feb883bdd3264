"""The models a server holds: SavedModel versions found on disk, loaded, refreshed while running.

Layout as TF Serving reads it: BASE/NAME/VERSION/saved_model.pb, and an
optional BASE/models.config (model_config_list) naming models, their base
paths and version labels. A version folder that fails to load (half-written,
corrupt) is refused with a logged error and retried when its files change;
the versions already loaded keep serving.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

log = logging.getLogger("zoo.serving")


CALL_ROWS = 256  # rows per model call; larger requests run in chunks of this size


LONG_CALL_SECONDS = 1e-3  # a model call expected to take longer holds one of the long-call slots


class _LongCalls:
    """How many long model calls may run at once, so that one inter-op thread always stays free.

    A function call's executor keeps a TensorFlow inter-op thread for as long as its ops keep each other
    ready: a recurrent scan over 10^5 sites holds one for seconds. With as many such threads as long calls,
    every other request waits behind them. :func:`configure_model_threads` sizes the pool and the slots;
    unconfigured (tests, an embedding application), calls are not limited."""

    def __init__(self):
        self.slots = None

    def __enter__(self):
        if self.slots is not None:
            self.slots.acquire()

    def __exit__(self, *exc):
        if self.slots is not None:
            self.slots.release()


LONG_CALLS = _LongCalls()


def configure_model_threads(inter_op_threads: int | None = None) -> int:
    """Give TensorFlow ``inter_op_threads`` inter-op threads (default: twice the cores, at least 4) and let
    long model calls hold all but one of them. Call it before any model is loaded; returns the thread count."""
    threads = inter_op_threads or max(4, 2 * len(os.sched_getaffinity(0)))
    try:
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started: keep its pool, size the slots to it
        threads = tf.config.threading.get_inter_op_parallelism_threads() or len(os.sched_getaffinity(0))
        log.warning("TensorFlow's inter-op threads were already set; long model calls share %d", threads)
    LONG_CALLS.slots = threading.BoundedSemaphore(max(1, threads - 1))
    return threads


class NotFound(LookupError):
    """An unknown model, version, label or signature (HTTP 404)."""


class BadRequest(ValueError):
    """A request the model cannot answer as sent (HTTP 400)."""


@dataclasses.dataclass
class Signature:
    """A callable signature with its named input and output specs, and what the zoo's export declared of it
    (``declared``: ranges, output shapes, cost; None for a SavedModel from elsewhere)."""

    function: object
    inputs: dict  # name -> tf.TensorSpec
    outputs: dict  # name -> tf.TensorSpec
    declared: dict | None = None

    def check(self, name: str, values: dict, max_rows: int | None = None, from_json: bool = True) -> dict:
        """Named inputs as arrays of the right shapes and dtypes, or a BadRequest naming the bad field.

        JSON values must be nested lists of numbers, exactly as deep as the input's rank:
        booleans, strings and nulls are refused, as TF Serving refuses them. ``max_rows``
        bounds the batch of one request; an empty batch is refused; values outside an input's
        declared valid range are refused.
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
        if rows == 0:
            shown = ", ".join(f"{k!r} of shape {a.shape}" for k, a in arrays.items())
            raise BadRequest(f"The batch is empty: received {shown}; expected at least one row.")
        if max_rows is not None and rows > max_rows:
            raise BadRequest(
                f"the request has {rows} rows; this server answers at most {max_rows} rows per request "
                "(split the request, or start the server with a larger --max-rows-per-request)"
            )
        invalid = self._range_violations(arrays, "valid_range")
        if invalid:
            raise BadRequest("; ".join(invalid) + ".")
        return arrays

    def warnings(self, arrays: dict) -> list:
        """Inputs outside the range the network was trained on: answered, with these lines for the client."""
        return [line + ": the answer there is an extrapolation" for line in self._range_violations(arrays, "trained_range")]

    def _range_violations(self, arrays: dict, which: str) -> list:
        lines = []
        for key, declared in (self.declared or {}).get("inputs", {}).items():
            for component, low, high in declared.get(which, []):
                values = arrays[key] if component is None else arrays[key][..., component]
                outside = (values < low) | (values > high)
                rows = np.flatnonzero(outside.reshape(len(values), -1).any(axis=1))
                if rows.size:
                    where = f"'{key}'" if component is None else f"'{key}'[..., {component}]"
                    lines.append(f"{where} of rows {rows[:5].tolist()}{'...' if rows.size > 5 else ''} holds "
                                 f"[{', '.join(f'{v:.7g}' for v in values[outside][:3])}]; the {which.replace('_', ' ')} is "
                                 f"[{low:g}, {high:g}]")
        return lines

    def _units(self, arrays: dict) -> int:
        units = 1
        for key, axis in (self.declared or {}).get("scaling_axes", []):
            units *= arrays[key].shape[axis]
        return units

    def output_elements(self, arrays: dict) -> int:
        """How many elements the outputs of ``arrays`` will hold, known before the model runs: free axes past
        the batch take the sizes of the declared scaling axes in order (1 where nothing is declared)."""
        rows = len(next(iter(arrays.values())))
        sizes = [arrays[key].shape[axis] for key, axis in (self.declared or {}).get("scaling_axes", [])]
        total = 0
        for spec in self.outputs.values():
            free, elements = iter(sizes), rows
            for d in spec.shape.as_list()[1:]:
                elements *= d if d is not None else next(free, 1)
            total += elements
        return total

    def refuse_oversized(self, arrays: dict, max_output_elements: int) -> int:
        """The request's output elements, or a BadRequest naming the limit and the flag when they pass it."""
        elements = self.output_elements(arrays)
        if elements > max_output_elements:
            shapes = {k: a.shape for k, a in arrays.items()}
            raise BadRequest(
                f"the request {shapes} would produce {elements:,} output elements ({elements * 4 / 2**20:.1f} MiB "
                f"as float32); this server answers at most {max_output_elements:,} per request. Send fewer rows "
                "(or shorter free axes), or start the server with a larger --max-output-elements")
        return elements

    def estimated_seconds(self, arrays: dict) -> float | None:
        """The model time ``arrays`` should take, from the export's measured seconds per row and unit of the
        scaling axes; None for a signature with no declaration."""
        per_unit = (self.declared or {}).get("seconds_per_unit")
        if per_unit is None:
            return None
        return len(next(iter(arrays.values()))) * self._units(arrays) * per_unit

    @staticmethod
    def _array(key, value, spec, from_json: bool) -> np.ndarray:
        expected = tuple(spec.shape.as_list()[1:])
        shown = "(" + ", ".join(["batch"] + ["any" if d is None else str(d) for d in expected]) + ")"
        if from_json:
            if value == []:
                raise BadRequest(f"The batch is empty: received '{key}': []; expected at least one row of shape {shown}.")
            leaf_types = _leaf_types(value, len(expected) + 1)
            if leaf_types is None:
                raise BadRequest(f"input '{key}' is not a nested list of rank {len(expected) + 1}; expected shape "
                                 f"{shown}, received {_outline(value)}")
            if not leaf_types <= {int, float}:
                received = sorted(t.__name__ for t in leaf_types - {int, float})
                raise BadRequest(f"input '{key}' must hold numbers; received {received} values")
        if spec.dtype.is_integer:
            _refuse_non_integers(key, value, spec.dtype)
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
            bad = array[~np.isfinite(array)][:3].tolist()
            raise BadRequest(f"input '{key}' contains non-finite values {bad} (NaN, infinite, or beyond float32's "
                             f"range of +-{float(np.finfo(np.float32).max):.3g}); every entry must be finite")
        return array

    def __call__(self, arrays: dict, rows_per_call: int = CALL_ROWS) -> dict:
        """The model's outputs, computed ``rows_per_call`` rows at a time: a large request's activations never
        exceed those of one chunk, so its memory grows with its outputs only, and other requests' calls
        run between its chunks."""
        rows = len(next(iter(arrays.values())))
        step = max(1, min(int(rows_per_call), CALL_ROWS))
        seconds = self.estimated_seconds(arrays)
        long = seconds is None or seconds * min(step, rows) / rows > LONG_CALL_SECONDS
        if rows <= step:
            return self._call(arrays, long)
        chunks = [self._call({k: v[i:i + step] for k, v in arrays.items()}, long) for i in range(0, rows, step)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _call(self, arrays: dict, long: bool = False) -> dict:
        try:
            with LONG_CALLS if long else contextlib.nullcontext():
                outputs = self.function(**{k: tf.constant(v) for k, v in arrays.items()})
        except tf.errors.InvalidArgumentError as e:  # a check inside the model's graph, as TF Serving reports it
            raise BadRequest(_assertion_message(e.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _outline(value) -> str:
    """The nesting of a JSON value, for an error: 'nested lists of shape (3, 2)', 'a float'."""
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return f"nested lists of shape {tuple(dims)}" if dims else f"a {type(value).__name__}"


def _refuse_non_integers(key: str, value, dtype) -> None:
    """An integer input (seeds, indices) takes whole numbers within its dtype's range, never rounded or
    wrapped around (as the zoo's checks do)."""
    info = np.iinfo(dtype.as_numpy_dtype)
    try:
        given = np.asarray(value, dtype=object if dtype.size == 8 else None)
    except (TypeError, ValueError):
        return  # ragged: the cast in _array reports it
    flat = given.ravel().tolist() if given.dtype == object else np.asarray(given).ravel().tolist()
    fractions = [v for v in flat if isinstance(v, float) and not v.is_integer()]
    if fractions:
        raise BadRequest(f"input '{key}' must hold whole numbers ({dtype.name}); received e.g. {fractions[:3]}")
    beyond = [v for v in flat if isinstance(v, (int, float)) and not info.min <= v <= info.max]
    if beyond:
        raise BadRequest(f"input '{key}' holds {beyond[:3]}, beyond {dtype.name}'s range [{info.min}, {info.max}]")


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
    """The message of a failed check in a graph, with the values it received, without TF's graph trace."""
    found = re.search(r"assertion failed: \[(.*?)\]((?: \[[^\]]*\])*)", text, re.DOTALL)
    if not found:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip() and "{{node" not in line]
        return " ".join(lines)[:500] or "the model refused the input"
    message, data = found.group(1), re.findall(r"\[([^\]]*)\]", found.group(2))
    condition = next((d for d in data if d.startswith("Condition x")), None)
    if condition is None:
        return " ".join([message, *data])[:500]
    values = [d for d in data if not d.startswith(("Condition", "x (", "y ("))]
    relation = re.search(r"Condition x (\S+) y", condition).group(1)
    if len(values) >= 2:
        return f"{message} (received {values[0]}, expected {relation} {values[1]})"
    return message


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


SIGNATURES_FILE = Path("assets.extra") / "zoo_signatures.json"


def _declarations(path: Path) -> dict:
    """What the zoo's export declared of each signature (ranges, cost); {} for a SavedModel from elsewhere."""
    file = path / SIGNATURES_FILE
    if not file.exists():
        return {}
    declarations = json.loads(file.read_text())
    if not isinstance(declarations, dict):
        raise ValueError(f"{file} must hold a JSON object of signatures; received a {type(declarations).__name__}")
    return declarations


def load_servable(name: str, version: int, path: Path) -> Servable:
    if not (path / "saved_model.pb").exists():
        raise FileNotFoundError(f"{path} has no saved_model.pb")
    module = tf.saved_model.load(str(path))
    declarations = _declarations(path)
    signatures = {}
    for sig_name, fn in module.signatures.items():
        inputs = dict(fn.structured_input_signature[1])
        signatures[sig_name] = Signature(fn, inputs, dict(fn.structured_outputs), declarations.get(sig_name))
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
