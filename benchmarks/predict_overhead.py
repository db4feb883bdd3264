"""``model.predict`` at batch 1 against the exported SavedModel's bare signature call, side by side.

    python benchmarks/predict_overhead.py [NAME ...]

For each shipped preset, in one process and interleaved: the median time of
``model.predict(x)`` on one sample (the zoo's compiled endpoint path), of the
SavedModel's ``serving_default`` signature called with a tf.constant, and of
Keras' own ``keras.Model.predict`` (the path ``predict`` took before). The aim:
predict within 2x of the SavedModel. Results:
benchmarks/results/predict_overhead.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from common import median_seconds, write_results  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "predict_overhead.json"


def measure(name: str, repeats: int) -> dict:
    model = zoo.load(name)
    inputs = model.random_inputs(1, seed=0)
    feed = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    with tempfile.TemporaryDirectory() as folder:
        signature = tf.saved_model.load(str(export_model(model, Path(folder) / "1"))).signatures["serving_default"]
        tensors = {k: tf.constant(v) for k, v in inputs.items()}
        calls = {
            "predict": lambda: model.predict(feed),
            "saved_model": lambda: signature(**tensors),
            "keras_predict": lambda: keras.Model.predict(model, feed, verbose=0),
        }
        for call in calls.values():  # trace and warm up
            call(), call()
        rounds = {key: [] for key in calls}
        for _ in range(5):  # interleaved rounds: drifts of a noisy machine hit every path alike
            for key, call in calls.items():
                rounds[key].append(median_seconds(call, repeats))
    ms = {key: 1e3 * float(np.median(values)) for key, values in rounds.items()}
    return {"predict_ms": ms["predict"], "saved_model_ms": ms["saved_model"], "keras_predict_ms": ms["keras_predict"],
            "predict_over_saved_model": ms["predict"] / ms["saved_model"],
            "keras_predict_over_saved_model": ms["keras_predict"] / ms["saved_model"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    names = args.names or [n for n in zoo.list_models() if zoo.has_weights(n)]
    results = {"cpu_cores": os.cpu_count(), "aim": "predict_over_saved_model <= 2", "presets": {}}
    for name in names:
        results["presets"][name] = measure(name, args.repeats)
        print(name, {k: round(v, 3) for k, v in results["presets"][name].items()}, flush=True)
    ratios = [r["predict_over_saved_model"] for r in results["presets"].values()]
    results["worst_predict_over_saved_model"] = max(ratios)
    results["aim_met"] = bool(max(ratios) <= 2)
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
