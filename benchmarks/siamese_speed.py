"""Speed of the siamese presets: training time to the quality bar, embedding and pair throughput.

Run on demand (not in CI): ``python benchmarks/siamese_speed.py [NAME ...]``.
Every preset is measured in one process, side by side. The training time is the
recorded wall time of the shipped model's epochs (metadata.json), i.e. the time
to reach the quality bar on the card; throughputs are measured here. Results go
to benchmarks/results/siamese.json and zoo/presets_speed.json, which the
cards read (they are re-rendered).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, record_preset_results, write_results  # noqa: E402

import zoo  # noqa: E402
from zoo import artifacts  # noqa: E402


RESULTS = Path(__file__).resolve().parent / "results" / "siamese.json"


def measure(name: str, batch: int = 1024) -> dict:
    model = zoo.load(name)
    metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, (batch, model.input_size)).astype("float32")
    pairs = {n: rng.uniform(0.5, 1.0, (batch, model.input_size)).astype("float32") for n in model.input_names}
    model.embed(x)  # trace
    model.predict(pairs, batch_size=batch, verbose=0)
    embed_s = median_seconds(lambda: model.embed(x, batch_size=batch), 20)
    pair_s = median_seconds(lambda: model.predict(pairs, batch_size=batch, verbose=0), 10)
    met = all(t["met"] for t in metadata["targets"])
    return {
        "embed_points_per_second_batch_1024": batch / embed_s,
        "pair_predict_pairs_per_second_batch_1024": batch / pair_s,
        "train_seconds_to_quality_bar": metadata["training"]["train_seconds_final_model"] if met else None,
        "train_epochs": metadata["training"]["epochs"],
        "all_targets_met": float(met),
        "cpu_cores": os.cpu_count(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=None)
    args = parser.parse_args(argv)
    names = args.names or [n for n in zoo.list_models() if zoo.get_spec(n).family == "siamese" and zoo.has_weights(n)]
    results = {"machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, shared with other jobs", "presets": {}}
    for name in names:
        measured = measure(name)
        results["presets"][name] = measured
        record_preset_results(name, measured, "benchmarks/siamese_speed.py")
    write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
