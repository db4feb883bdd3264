"""Translating 1000-site potentials: the recurrent translator against the accurate solver and the Euler rule.

    python benchmarks/translator_speed.py [--sites 1000] [--batch 256] [--rounds 3]

On the same cores, in alternating rounds: the translator (``predict``, one compiled GRU
pass) at batch 1 and at ``--batch``; the simulator's fourth-order Magnus solver
(``training.simulators.schrodinger.densities``, 16 steps per site, numpy) and the
Euler rule (one 2 x 2 step per site, numpy) on the same potentials. Reported: potentials
per second (best round) and the translator's speed over each. The training time on
2 cores is the preset's own record (metadata ``train_seconds_final_model``).
Results: benchmarks/results/translator_speed.json and the preset's card.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import record_preset_results, write_results  # noqa: E402

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from training.simulators import schrodinger  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "translator_speed.json"


def best_rate(function, n: int, rounds: int) -> float:
    """Potentials per second of the fastest of ``rounds`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return n / min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="translator-schrodinger")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    model = zoo.load(args.preset)
    potentials = schrodinger.mixed_dataset(args.batch, args.sites, seed=5)[0]
    single = potentials[:1]
    rates = {
        "translator_batch_1": best_rate(lambda: model.predict(single), 1, args.rounds),
        f"translator_batch_{args.batch}": best_rate(lambda: model.predict(potentials, batch_size=args.batch),
                                                     args.batch, args.rounds),
        "magnus_solver": best_rate(lambda: schrodinger.densities(potentials.astype(np.float64)), args.batch,
                                   args.rounds),
        "euler_rule": best_rate(lambda: schrodinger.euler_transfer(potentials.astype(np.float64),
                                                                   schrodinger.GRID_SPACING, 1.0, 0.0),
                                args.batch, args.rounds),
    }
    batched = rates[f"translator_batch_{args.batch}"]
    results = {f"potentials_per_s/{k}": v for k, v in rates.items()}
    results.update({"sites": args.sites, "batch": args.batch, "cores": os.cpu_count(),
                    "translator_over_magnus_solver": batched / rates["magnus_solver"],
                    "translator_over_euler_rule": batched / rates["euler_rule"]})
    for key, value in results.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    write_results(RESULTS, results)
    if zoo.has_weights(args.preset):
        record_preset_results(args.preset, results, "benchmarks/translator_speed.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
