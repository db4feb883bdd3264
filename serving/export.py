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


def export_model(model, directory) -> Path:
    """Write ``model``'s SavedModel with its signatures to ``directory`` (created, must not exist), and
    ``assets.extra/zoo_signatures.json``: what the server needs to know of each signature before it runs
    (:func:`signature_declarations`). TF Serving ignores that file."""
    archive = keras.export.ExportArchive()
    archive.track(model.serving_layers())
    traced = {name: archive.add_endpoint(name=name, fn=fn, input_signature=specs)
              for name, (fn, specs) in signatures(model).items()}
    archive.write_out(str(directory), verbose=False)
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
