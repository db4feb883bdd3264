"""Jet tagger throughput from raw constituents at batch 1024: in Python and through the served signature.

    python benchmarks/jet_tagger_speed.py [NAME ...]

For each jet preset, interleaved in one process on the same 1024 jets (from the committed
held-out fixture, zero-padded to 128 constituents): ``model.preprocess`` alone,
``model.predict`` on the images, ``model.tag_constituents`` (both in one compiled call),
the exported SavedModel's ``constituents`` signature, and a REST ``:predict`` request to
the zoo's server (in-process client, JSON both ways). Jets per second; ratios to
``tag_constituents``. Results: benchmarks/results/jet_taggers.json and each card's speed table.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from common import median_seconds, record_preset_results, write_results  # noqa: E402

import zoo  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.server import create_app  # noqa: E402
from training.recipes.jets import fixture_path  # noqa: E402
from training.simulators.jets import read_jets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "jet_taggers.json"
BATCH = 1024
PRESETS = ("jet-cnn-w-vs-qcd", "jet-maxout-w-vs-qcd")


def batch_of_jets() -> np.ndarray:
    constituents = read_jets(fixture_path(31337))["constituents"]
    repeats = -(-BATCH // len(constituents))
    jets = np.concatenate([constituents] * repeats)[:BATCH]
    return np.pad(jets, ((0, 0), (0, 128 - jets.shape[1]), (0, 0))).astype("float32")


def measure(name: str, jets: np.ndarray, repeats: int = 5) -> dict:
    from fastapi.testclient import TestClient

    model = zoo.load(name)
    images = model.preprocess(jets)
    body = {"signature_name": "constituents", "instances": jets.tolist()}
    with tempfile.TemporaryDirectory() as folder:
        export_model(model, Path(folder) / name / "1")
        signature = tf.saved_model.load(str(Path(folder) / name / "1")).signatures["constituents"]
        tensor = tf.constant(jets)
        with TestClient(create_app(Path(folder), poll_seconds=0)) as client:
            calls = {
                "preprocess": lambda: model.preprocess(jets, batch_size=BATCH),
                "predict_images": lambda: model.predict(images, batch_size=BATCH),
                "tag_constituents": lambda: model.tag_constituents(jets, batch_size=BATCH),
                "saved_model_constituents": lambda: signature(constituents=tensor),
                "rest_constituents": lambda: client.post(f"/v1/models/{name}:predict", json=body),
            }
            for call in calls.values():
                call()
            seconds = {k: [] for k in calls}
            for _ in range(3):
                for key, call in calls.items():
                    seconds[key].append(median_seconds(call, repeats))
    best = {k: min(v) for k, v in seconds.items()}
    return {"batch": BATCH, "constituents_per_jet": int(jets.shape[1]),
            **{f"{k}_jets_per_s": BATCH / v for k, v in best.items()},
            **{f"{k}_seconds_over_tag_constituents": v / best["tag_constituents"] for k, v in best.items()
               if k != "tag_constituents"}}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or [n for n in PRESETS if zoo.has_weights(n)]
    jets = batch_of_jets()
    results = {"machine": f"{os.cpu_count()} CPU cores"}
    for name in names:
        results[name] = measure(name, jets)
        record_preset_results(name, results[name], "benchmarks/jet_tagger_speed.py")
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
