"""Training throughput: float32 against mixed precision, and one process against two workers.

    python benchmarks/training_scaling.py [--steps 150]

Each configuration runs in its own process (a dtype policy and a TF_CONFIG
are process-wide), one after the other on the same machine, training the
scinet-heliocentric architecture with the custom loop of training.distribute
on the same global batches. Mixed precision reports the held-out wrapped RMS
error after the same number of steps too: whether the model tolerates it is
measured, not assumed. Results go to benchmarks/results/training_scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import free_port, write_results

GLOBAL_BATCH = 512


def worker(precision: str, strategy_name: str, steps: int) -> dict:
    import keras
    import numpy as np

    import zoo
    from training import distribute
    from training.evaluation.metrics import wrapped_rms
    from training.recipes import scinet as recipes

    keras.mixed_precision.set_global_policy(precision)
    recipe = recipes.RECIPES["scinet-heliocentric"]
    data = recipe.simulate(50_000, recipe.train_seed)
    held_out = recipe.simulate(2000, recipe.evaluation_seed)
    strategy = distribute.strategy_for(strategy_name)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model, losses = distribute.train_custom_loop(
        strategy, lambda: zoo.load(recipe.preset, pretrained=False), lambda: recipes.make_optimizer(recipe, steps),
        data.initial_angles, data.angles, GLOBAL_BATCH, steps,
    )
    seconds = time.perf_counter() - start
    error = wrapped_rms(np.asarray(model.predict(held_out.initial_angles, verbose=0), "float32"), held_out.angles)
    return {"samples_per_second": steps * GLOBAL_BATCH / seconds, "seconds": seconds, "final_loss": losses[-1],
            "held_out_rms_rad": error, "replicas": strategy.num_replicas_in_sync}



def launch(precision, strategy, steps, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, __file__, "--worker", precision, strategy, str(steps)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(process) -> dict:
    out, err = process.communicate(timeout=1800)
    if process.returncode != 0 or not out.strip():
        raise RuntimeError(f"a benchmark worker failed (exit {process.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default="benchmarks/results/training_scaling.json")
    parser.add_argument("--worker", nargs=3, metavar=("PRECISION", "STRATEGY", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return 0
    results = {"global_batch": GLOBAL_BATCH, "steps": args.steps, "cpu_cores": os.cpu_count()}
    for precision in ("float32", "mixed_bfloat16"):
        results[f"one_process_{precision}"] = result_of(launch(precision, "cpu", args.steps))
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [launch("float32", "multiworker", args.steps, {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    results["two_workers_float32"] = [result_of(w) for w in workers]
    one = results["one_process_float32"]["samples_per_second"]
    results["mixed_bfloat16_speedup"] = results["one_process_mixed_bfloat16"]["samples_per_second"] / one
    results["two_worker_speedup"] = results["two_workers_float32"][0]["samples_per_second"] / one
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
