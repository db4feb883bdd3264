"""ONNX Runtime against the SavedModel, each endpoint at batch 1 and 256, side by side in one process.

    python benchmarks/onnx_speed.py [NAME ...] [--repeats 20]

For each preset (default: one per family with an ONNX endpoint) both exports are written from the same
weights; then, in interleaved rounds, the median time of the SavedModel signature called with tf.constants
and of an ONNX Runtime session (default CPU options: threads = cores) on the same random valid rows. The
ratio savedmodel_ms / onnx_ms > 1 means ONNX Runtime is faster. Results: benchmarks/results/onnx_speed.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from common import median_seconds, write_results  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.onnx_export import export_onnx_preset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "onnx_speed.json"
DEFAULT = ["scinet-heliocentric", "ising-cnn", "rbm-ising-L8-T2.27", "siamese-minkowski", "jet-cnn-w-vs-qcd",
           "realnvp-phi4-L8", "neuralrg-ising-L16", "translator-schrodinger"]
BATCHES = (1, 256)


def measure(name: str, repeats: int) -> dict:
    model = zoo.load(name)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        saved = tf.saved_model.load(str(export_model(model, Path(folder) / "savedmodel" / "1")))
        onnx_folder = export_onnx_preset(name, Path(folder) / "onnx")
        for endpoint in model.endpoints():
            if endpoint.onnx_refusal:
                continue
            session = onnxruntime.InferenceSession(str(onnx_folder / f"{endpoint.name}.onnx"),
                                                   providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                inputs = model.random_inputs(batch, seed=1, endpoint=endpoint.name)
                tensors = {k: tf.constant(v) for k, v in inputs.items()}
                calls = {"savedmodel": lambda: saved.signatures[endpoint.name](**tensors),
                         "onnx": lambda: session.run(None, inputs)}
                for call in calls.values():
                    call(), call()
                rounds = {key: [] for key in calls}
                for _ in range(5):  # interleaved: a noisy machine's drifts hit both alike
                    for key, call in calls.items():
                        rounds[key].append(median_seconds(call, repeats))
                ms = {key: 1e3 * float(np.median(v)) for key, v in rounds.items()}
                results[f"{endpoint.name}@{batch}"] = {"savedmodel_ms": ms["savedmodel"], "onnx_ms": ms["onnx"],
                                                       "savedmodel_over_onnx": ms["savedmodel"] / ms["onnx"]}
                print(f"{name} {endpoint.name} batch {batch}: SavedModel {ms['savedmodel']:.3f} ms, "
                      f"ONNX Runtime {ms['onnx']:.3f} ms ({ms['savedmodel'] / ms['onnx']:.2f}x)", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    results = {"machine": f"{os.cpu_count()} CPU cores", "onnxruntime": onnxruntime.__version__,
               "tensorflow": tf.__version__, "presets": {name: measure(name, args.repeats) for name in args.names}}
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
