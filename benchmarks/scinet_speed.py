"""Speed of every shipped SciNet preset: load time, inference and training throughput.

Run on demand (not in CI): ``python benchmarks/scinet_speed.py [NAME ...]``.
All presets are measured in one process, side by side, so their ratios are
comparable even on a noisy machine. Results go to zoo/presets_speed.json
and the cards are re-rendered from it; the hashed files of shipped preset folders are never written.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import zoo
from common import median_seconds, record_preset_results


LOAD_TARGET_S = 0.5


def measure(name: str) -> dict:
    zoo.load(name)  # warm the file cache and Keras' first-call paths
    load_s = median_seconds(lambda: zoo.load(name), 5)
    model = zoo.load(name)
    results = {"load_seconds_median": load_s, "load_target_seconds": LOAD_TARGET_S}
    for batch in (1, 1024):
        x = model.random_inputs(batch)
        x = next(iter(x.values())) if len(x) == 1 else x
        model.predict(x, verbose=0)  # trace
        seconds = median_seconds(lambda: model.predict(x, verbose=0, batch_size=batch), 10 if batch == 1 else 5)
        results[f"predict_samples_per_second_batch_{batch}"] = batch / seconds
        direct = median_seconds(lambda: model(x), 10)
        results[f"call_samples_per_second_batch_{batch}"] = batch / direct
    results["train_samples_per_second_batch_256"] = training_throughput(model)
    results["cpu_cores"] = os.cpu_count()
    return results


def training_throughput(model, batch=256, steps=30) -> float:
    x = model.random_inputs(batch * steps)
    x = next(iter(x.values())) if len(x) == 1 else x
    y = np.asarray(model(model.random_inputs(batch * steps)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # trace
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=None)
    args = parser.parse_args(argv)
    names = args.names or [n for n in zoo.list_models() if zoo.has_weights(n) and zoo.get_spec(n).family == "scinet"]
    for name in names:
        results = measure(name)
        record_preset_results(name, results, "benchmarks/scinet_speed.py")
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
