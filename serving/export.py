"""Export presets as SavedModels in TF Serving's layout: DIR/NAME/VERSION/saved_model.pb.

Each export has named signatures whose tensors carry the preset's public
names (``initial_angles`` -> ``angles``): ``serving_default`` answers the
preset's main question, and SciNet presets add ``encode`` (observation ->
``latent_means``); siamese presets add ``embed`` (one point ``x`` ->
``embedding``) and the same map as ``encode`` (``x`` -> ``latent_means``). ``DIR/models.config`` lists every exported model for
``tensorflow_model_server --model_config_file``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

import zoo
from zoo.artifacts import atomic_write_text


def _spec(name, shape):
    return tf.TensorSpec((None, *shape), tf.float32, name=name)


def checked_spins(spins, min_size: int = 1):
    """The zoo's spin check inside the graph: square lattices of +-1, 0/1 converted; INVALID_ARGUMENT otherwise."""
    shape = tf.shape(spins)
    tf.debugging.assert_equal(shape[1], shape[2], message="spins must be square L x L lattices")
    tf.debugging.assert_greater_equal(shape[1], min_size, message=f"spins need L >= {min_size}")
    zero_one = tf.reduce_all((spins == 0.0) | (spins == 1.0))
    plus_minus = tf.reduce_all(tf.abs(spins) == 1.0)
    tf.debugging.Assert(zero_one | plus_minus, ["spins must be +-1 (or 0/1, converted to -1/+1)"])
    return tf.where(zero_one & ~plus_minus, 2.0 * spins - 1.0, spins)


def signatures(model) -> dict:
    """Signature name -> (function of named tensors, input TensorSpecs)."""
    specs = [_spec(n, s) for n, s in model.input_specs.items()]
    names = list(model.input_specs)

    def serving_default(*tensors):
        if getattr(model, "spin_inputs", False):  # the lattice families validate spins as predict() does
            tensors = [checked_spins(t, model.min_lattice_size) for t in tensors]
        inputs = dict(zip(names, tensors))
        return {model.output_name: model(inputs if len(names) > 1 else tensors[0], training=False)}

    endpoints = {"serving_default": (serving_default, specs)}
    if hasattr(model, "_latent_distribution"):
        observation = model.observation_name

        def encode(x):
            return {"latent_means": model._latent_distribution(x)[0]}

        endpoints["encode"] = (encode, [_spec(observation, model.input_specs[observation])])
    elif hasattr(model, "embed_tensor"):  # siamese presets: one point -> its embedding, under both names
        point_spec = [_spec(model.observation_name, (model.input_size,))]

        def encode_point(x):
            return {"latent_means": model.embed_tensor(x)}

        def embed(x):
            return {"embedding": model.embed_tensor(x)}

        endpoints["encode"] = (encode_point, point_spec)
        endpoints["embed"] = (embed, point_spec)
    return endpoints


def export_model(model, directory) -> Path:
    """Write ``model``'s SavedModel with its signatures to ``directory`` (created, must not exist)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, specs) in signatures(model).items():
        archive.add_endpoint(name=name, fn=fn, input_signature=specs)
    archive.write_out(str(directory), verbose=False)
    return Path(directory)


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.name.isdigit()] if model_dir.exists() else []
    return max(versions, default=0) + 1


def export_preset(name: str, out_dir, version: int | None = None) -> Path:
    """Export preset ``name`` to ``out_dir/name/version``; the version folder appears whole or not at all."""
    model_dir = Path(out_dir) / zoo.get_spec(name).name
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"--version must be a positive integer, received {version}.")
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose another --version or remove it.")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}.staging."))
    try:
        export_model(zoo.load(name), staging / "export")
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


def export(names, out_dir, version: int | None = None, base_path: str | None = None,
           batching_parameters: bool = False) -> list:
    """Export several presets and (re)write ``out_dir/models.config`` (and batching_parameters.txt)."""
    paths = [export_preset(name, out_dir, version) for name in names]
    atomic_write_text(Path(out_dir) / "models.config", models_config(out_dir, base_path))
    if batching_parameters:
        atomic_write_text(Path(out_dir) / "batching_parameters.txt", BATCHING_PARAMETERS)
    return paths
