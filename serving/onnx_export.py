"""Export presets as ONNX, one file per endpoint: DIR/NAME/ENDPOINT.onnx beside DIR/NAME/zoo_onnx.json.

Experiments run networks inside their own software through ONNX Runtime (CMS's CMSSW and ATLAS's Athena
both do), where neither Python nor the zoo is at hand. So the folder carries what ``zoo.load`` would know:
the preset, its version and weights' sha256, and each endpoint's named inputs and outputs with their dtypes,
shapes (the batch axis free) and valid ranges.

Each file is the endpoint's serving graph (``serving.export``) converted by tf2onnx at opset 17, so the
conversions an input check makes (0/1 spins to +-1) are in it, and the typed inputs refuse a wrong dtype,
rank or fixed size. ONNX has no operator that fails a run, so the range assertions of the SavedModel cannot
travel: the valid ranges are in zoo_onnx.json for the caller to check. An endpoint ONNX cannot express (a
seeded sampler, a while loop the converter cannot map) is named there with the reason. The export is
checked before it is kept: ONNX Runtime must load every file, and its inputs and outputs must carry the
declared names. The model folder appears whole or not at all.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import zoo
from serving.export import _json_ranges, _signature, export_each, model_name
from zoo.extras import import_extra

OPSET = 17
METADATA_FILE = "zoo_onnx.json"
PURPOSE = "zoo export --format onnx"


class OnnxExportError(RuntimeError):
    """An endpoint (or a whole preset) that cannot be exported as ONNX; the message names the endpoint and
    the operation."""


def export_onnx(names, out_dir, say=None, progress=None) -> list:
    """Export several presets to ``out_dir/NAME/``; ``progress(done, total, name)`` as :func:`serving.export.export`."""
    return export_each(names, out_dir, lambda name: export_onnx_preset(name, out_dir, say), progress)


def export_onnx_preset(name, out_dir, say=None) -> Path:
    """Export preset ``name`` (a name, a preset folder or ``hf://``) to ``out_dir/NAME/``: one ``.onnx`` file
    per endpoint ONNX can express, and zoo_onnx.json. Refuses an existing folder; leaves nothing behind when
    it fails."""
    say = say or (lambda text: None)
    _check_converters()
    target = Path(out_dir) / model_name(name)
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or choose another --out.")
    say("loading the preset")
    model = zoo.load(name)
    refused = {e.name: e.onnx_refusal for e in model.endpoints() if e.onnx_refusal}
    exportable = [e for e in model.endpoints() if not e.onnx_refusal]
    if not exportable:
        raise OnnxExportError(f"{name} has no endpoint ONNX can express: " + "; ".join(
            f"{endpoint}: {reason}" for endpoint, reason in refused.items()))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{target.name}.staging."))
    try:
        folder = staging / "export"  # made with the user's umask, unlike the private staging folder
        folder.mkdir()
        for number, endpoint in enumerate(exportable, 1):
            say(f"converting endpoint {endpoint.name} ({number} of {len(exportable)}) with tf2onnx, opset {OPSET}")
            (folder / f"{endpoint.name}.onnx").write_bytes(convert_endpoint(endpoint))
        metadata = onnx_metadata(model, exportable, refused)
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for endpoint, reason in refused.items():
        say(f"not exported: {endpoint} ({reason})")
    return target


def convert_endpoint(endpoint) -> bytes:
    """The endpoint's serving graph as a serialised ONNX model, checked to load in ONNX Runtime with the
    declared input and output names."""
    import tensorflow as tf

    tf2onnx = import_extra("tf2onnx", "onnx", PURPOSE)
    function, specs = _signature(endpoint)
    try:
        proto, _ = tf2onnx.convert.from_function(tf.function(function), input_signature=specs, opset=OPSET)
        session = _session(proto.SerializeToString())
    except Exception as error:  # the converter's and the runtime's own errors, named for the user
        raise OnnxExportError(f"endpoint {endpoint.name!r} cannot be exported as ONNX: {failing_operation(error)}") from error
    names = ([i.name for i in session.get_inputs()], sorted(o.name for o in session.get_outputs()))
    declared = (endpoint.input_names, sorted(t.name for t in endpoint.outputs))
    if names != declared:
        raise OnnxExportError(f"endpoint {endpoint.name!r}: the ONNX graph has inputs {names[0]} and outputs "
                              f"{names[1]}; expected {declared[0]} and {declared[1]}")
    return proto.SerializeToString()


def _session(model_bytes: bytes):
    ort = import_extra("onnxruntime", "onnx", PURPOSE)
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def failing_operation(error: Exception) -> str:
    """The operation an ONNX conversion or load failed on, in one line, with the tool's own words."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for pattern in (r"No Op registered for (\w+)", r'\("[^"]*", (\w+),', r"operator \((\w+)\)",
                    r"[Tt]ensorflow op \[?(\w+)\]?"):
        found = re.search(pattern, str(error))
        if found:
            return f"operation {found.group(1)}: {text[:300]}"
    return f"{type(error).__name__}: {text[:300]}"


def onnx_metadata(model, exported, refused: dict) -> dict:
    """zoo_onnx.json: the preset's identity and each exported endpoint's contract, for a caller without the zoo."""
    onnxruntime = import_extra("onnxruntime", "onnx", PURPOSE)
    info = model.__dict__.get("preset")
    return {
        "preset": getattr(info, "name", None), "family": getattr(info, "family", None),
        "zoo_version": zoo.__version__, "weights_sha256": getattr(info, "weights_sha256", None),
        "opset": OPSET, "checked_with": {"onnxruntime": onnxruntime.__version__},
        "endpoints": {e.name: {
            "file": f"{e.name}.onnx", "description": e.description,
            "inputs": {t.name: _tensor_record(t) | {"valid_range": _json_ranges(t, "valid"),
                                                    "trained_range": _json_ranges(t, "trained")} for t in e.inputs},
            "outputs": {t.name: _tensor_record(t) for t in e.outputs},
        } for e in exported},
        "not_exported": refused,
        "input_checks": ("dtype, rank and fixed sizes by the typed inputs, and the checks' conversions, are in "
                         "the graph; ONNX cannot fail a run, so check each input against valid_range before "
                         "running (a value outside it gives a number, not an error)"),
    }


def _tensor_record(spec) -> dict:
    return {"dtype": spec.dtype, "shape": list(spec.shape), "description": spec.description}


def _check_converters() -> None:
    for module in ("tf2onnx", "onnxruntime", "onnx"):
        import_extra(module, "onnx", PURPOSE)
