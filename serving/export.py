"""Export presets as SavedModels in TF Serving's layout: DIR/NAME/VERSION/saved_model.pb.

Each export has one signature per endpoint that the model declares
(``model.endpoints()``: ``serving_default`` first, then e.g. ``encode``,
``embed``, ``sample``), with the declared tensor names and the endpoint's input
check inside the graph, so a served request is checked as ``predict`` checks it.
``DIR/models.config`` lists every exported model for
``tensorflow_model_server --model_config_file``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

import zoo
from zoo.artifacts import atomic_write_text, write_json
from zoo.validation import graph_range_checks


def signatures(model) -> dict:
    """Signature name -> (function of positional tensors, input TensorSpecs), one per declared endpoint."""
    return {endpoint.name: _signature(endpoint) for endpoint in model.endpoints()}


def _signature(endpoint):
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in endpoint.inputs]

    def function(*tensors):
        named = dict(zip(endpoint.input_names, tensors))
        tf.debugging.assert_greater(tf.shape(tensors[0])[0], 0,
                                    message="The batch is empty (0 rows); expected at least one row")
        graph_range_checks(named, endpoint.inputs)
        if endpoint.check is not None:
            named = endpoint.check.graph(named)
        return endpoint.function(**named)

    return function, specs


def export_model(model, directory, say=None) -> Path:
    """Write ``model``'s SavedModel with its signatures to ``directory`` (created, must not exist), and
    ``assets.extra/zoo_signatures.json``: what the server needs to know of each signature before it runs
    (:func:`signature_declarations`). TF Serving ignores that file. ``say(text)`` hears each step (tracing
    the endpoints and serialising their graphs take the time: a flow's stacked couplings, a GAN's three streams)."""
    say = say or (lambda text: None)
    archive = keras.export.ExportArchive()
    archive.track(model.serving_layers())
    functions, traced = signatures(model), {}
    for number, (name, (fn, specs)) in enumerate(functions.items(), 1):
        say(f"tracing endpoint {name} ({number} of {len(functions)})")
        traced[name] = archive.add_endpoint(name=name, fn=fn, input_signature=specs)
    say(f"writing the SavedModel: TensorFlow serialises {len(functions)} graphs and {len(model.weights)} weights")
    archive.write_out(str(directory), verbose=False)
    say("timing each signature on random rows (the server's scheduling estimate)")
    (Path(directory) / SIGNATURES_FILE).parent.mkdir(exist_ok=True)
    write_json(Path(directory) / SIGNATURES_FILE, signature_declarations(model, traced))
    return Path(directory)


SIGNATURES_FILE = Path("assets.extra") / "zoo_signatures.json"  # what serving.repository reads


def signature_declarations(model, traced: dict) -> dict:
    """Per signature: its inputs' valid and trained ranges, its outputs' shapes, its cost's scaling axes,
    and the seconds one row takes per unit of those axes, measured here on the model's own random inputs
    (a scheduling estimate: the server answers a request it expects to take under a millisecond at once,
    and a longer one in a worker thread)."""
    return {endpoint.name: {
        "inputs": {t.name: {"valid_range": _json_ranges(t, "valid"), "trained_range": _json_ranges(t, "trained")}
                   for t in endpoint.inputs},
        "outputs": {t.name: list(t.shape) for t in endpoint.outputs},
        "scaling_axes": [list(axis) for axis in endpoint.cost.scaling_axes],
        "seconds_per_unit": _seconds_per_unit(model, endpoint, traced[endpoint.name]),
    } for endpoint in model.endpoints()}


def _json_ranges(spec, which: str) -> list:
    return [[component, low, high] for component, (low, high) in spec.ranges(which).items()]


def _seconds_per_unit(model, endpoint, function, rows: int = 8, repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls of the exported ``function`` (traced already: no second trace) on
    ``rows`` random rows, per row and unit of the scaling axes."""
    inputs = model.random_inputs(rows, endpoint=endpoint.name)
    tensors = [tf.constant(inputs[name]) for name in endpoint.input_names]
    function(*tensors)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*tensors)
        times.append(time.perf_counter() - start)
    units = endpoint.cost.units({k: v.shape for k, v in inputs.items()})
    return min(times) / (rows * units)


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.name.isdigit()] if model_dir.exists() else []
    return max(versions, default=0) + 1


def model_name(name) -> str:
    """The served model name of a preset name, a preset folder or an ``hf://`` name."""
    source = str(name).rstrip("/")
    if source.startswith(zoo.HUB_PREFIX):
        return source[len(zoo.HUB_PREFIX):].partition("@")[0].split("/")[-1]
    return Path(source).name if zoo.looks_like_path(name) else zoo.get_spec(source).name


def export_preset(name, out_dir, version: int | None = None, say=None) -> Path:
    """Export preset ``name`` (a name, a preset folder or ``hf://``) to ``out_dir/NAME/version``;
    the version folder appears whole or not at all. ``say(text)`` hears each step."""
    if say:
        say("loading the preset")
    model = zoo.load(name)
    model_dir = Path(out_dir) / model_name(name)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"--version must be a positive integer, received {version}.")
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose another --version or remove it.")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}.staging."))
    try:
        export_model(model, staging / "export", say)
        os.replace(staging / "export", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def models_config(out_dir, base_path: str | None = None) -> str:
    """TF Serving's model_config_list for every model folder in ``out_dir``; label ``stable`` on the newest version.

    ``base_path`` replaces ``out_dir`` in the paths written, e.g. ``/models``
    where a container mounts the folder.
    """
    out_dir = Path(out_dir).resolve()
    entries = []
    for model_dir in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
        if not versions:
            continue
        entries.append(
            "  config {\n"
            f"    name: '{model_dir.name}'\n"
            f"    base_path: '{Path(base_path) / model_dir.name if base_path else model_dir}'\n"
            "    model_platform: 'tensorflow'\n"
            "    model_version_policy { all {} }\n"
            f"    version_labels {{ key: 'stable' value: {versions[-1]} }}\n"
            "  }\n"
        )
    return "model_config_list {\n" + "".join(entries) + "}\n"


BATCHING_PARAMETERS = """max_batch_size { value: 64 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 2 }
"""


def export_each(names, out_dir, export_one, progress=None) -> list:
    """``export_one(name)`` for each preset into the folder ``out_dir``, with ``progress(done, total, name)``
    before each and once at the end (name None); the paths written."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file; give a folder (new, or one `zoo export` wrote).")
    names, paths = list(names), []
    for done, name in enumerate(names):
        if progress:
            progress(done, len(names), name)
        paths.append(export_one(name))
    if progress:
        progress(len(names), len(names), None)
    return paths


def export(names, out_dir, version: int | None = None, base_path: str | None = None,
           batching_parameters: bool = False, progress=None, say=None) -> list:
    """Export several presets and (re)write ``out_dir/models.config`` (and batching_parameters.txt).

    ``progress(done, total, name)`` is called before each preset and once at the end (name None);
    ``say(text)`` hears the steps within a preset."""
    paths = export_each(names, out_dir, lambda name: export_preset(name, out_dir, version, say), progress)
    atomic_write_text(Path(out_dir) / "models.config", models_config(out_dir, base_path))
    if batching_parameters:
        atomic_write_text(Path(out_dir) / "batching_parameters.txt", BATCHING_PARAMETERS)
    return paths
