"""CaloGAN training speed on this machine's CPU, the paper's schedule extrapolated, and a checkpoint round trip.

    python benchmarks/calogan_training.py [--preset calogan-eplus] [--steps 20] [--json results.json]

Run on demand, not in CI. In one run:

- ``CaloGAN.fit`` (the TensorFlow ``train_step``: one discriminator step on simulated and one on
  generated showers, then two generator steps) on showers from
  ``CaloGANRecipe.simulate`` / ``fit_arrays``, batch 256, the preset's configuration
  (latent_size 32, discriminator_filters 32), one epoch of ``--warmup + --steps`` batches; steps
  per second from the batch-end times of the last ``--steps`` batches (tracing and first
  allocations fall in the warm-up);
- peak resident memory: ``ru_maxrss`` before and after ``fit`` and the largest VmRSS sampled
  during it (TensorFlow allocates natively, so tracemalloc would not see it);
- extrapolations: the paper's 50 epochs of 100,000 showers (390 steps each), simulating those
  100,000 showers at the simulator speed measured here, and how many such epochs fit in the
  budget of 2 hours for one particle;
- ``training.loop.fit_resumable`` for one epoch on ``--checkpoint-showers`` showers, then
  ``training.loop.restore_checkpoint`` into a fresh model: both optimizers' variables
  (iterations included, > 0) and the weights must come back equal.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import write_results  # noqa: E402

import zoo  # noqa: E402
from training import loop  # noqa: E402
from training.recipes import recipe_for  # noqa: E402
from training.recipes.calogan import fit_arrays  # noqa: E402

PAPER_SHOWERS, PAPER_EPOCHS, BUDGET_HOURS = 100_000, 50, 2.0


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class RssSampler:
    """The largest VmRSS seen every ``interval`` seconds while in the ``with`` block."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


class BatchTimes(keras.callbacks.Callback):
    """perf_counter at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def training_speed(preset: str, batch_size: int, warmup: int, steps: int, seed: int) -> dict:
    recipe = recipe_for(preset)
    n = batch_size * (warmup + steps)
    start = time.perf_counter()
    showers = recipe.simulate(n, seed)
    simulate_seconds = time.perf_counter() - start
    model = zoo.load(preset, pretrained=False)
    keras.utils.set_random_seed(seed)
    model.compile()
    data = fit_arrays(showers, model.particle_index)
    times = BatchTimes()
    rss_before, peak_before = rss_mib(), peak_rss_mib()
    with RssSampler() as sampler:
        start = time.perf_counter()
        history = model.fit(data, batch_size=batch_size, epochs=1, shuffle=True, verbose=0, callbacks=[times])
        fit_seconds = time.perf_counter() - start
    measured = times.ends[warmup - 1:]
    steps_per_s = (len(measured) - 1) / (measured[-1] - measured[0])
    return {
        "preset": preset, "particle": recipe.particle, "latent_size": model.latent_size,
        "discriminator_filters": model.discriminator_filters, "batch_size": batch_size,
        "generator_parameters": model.generator.count_params(),
        "discriminator_parameters": model.discriminator.count_params(),
        "warmup_steps": warmup, "measured_steps": len(measured) - 1, "steps_per_s": steps_per_s,
        "showers_per_s": steps_per_s * batch_size, "first_steps_seconds": measured[0] - start,
        "fit_seconds": fit_seconds, "simulator_ms_per_shower": 1e3 * simulate_seconds / n,
        "rss_mib_before_fit": rss_before, "rss_mib_peak_during_fit": sampler.peak,
        "ru_maxrss_mib_before_fit": peak_before, "ru_maxrss_mib_after_fit": peak_rss_mib(),
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
        "optimizer_iterations": {k: int(o.iterations.numpy()) for k, (o, _) in model.optimizers_to_checkpoint().items()},
    }


def extrapolate(speed: dict, n_train: int = PAPER_SHOWERS, epochs: int = PAPER_EPOCHS,
                budget_hours: float = BUDGET_HOURS) -> dict:
    steps_per_epoch = n_train // speed["batch_size"]
    epoch_hours = steps_per_epoch / speed["steps_per_s"] / 3600
    return {"n_train": n_train, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "hours_per_epoch": epoch_hours, "paper_schedule_hours": epochs * epoch_hours,
            "simulate_training_set_hours": n_train * speed["simulator_ms_per_shower"] / 3.6e6,
            "budget_hours": budget_hours, "epochs_in_budget": budget_hours / epoch_hours,
            "epochs_in_budget_after_simulating": max(0.0, budget_hours - n_train * speed["simulator_ms_per_shower"]
                                                     / 3.6e6) / epoch_hours}


def checkpoint_round_trip(preset: str, n: int, batch_size: int, seed: int) -> dict:
    """One epoch with fit_resumable, then restore_checkpoint into a fresh model: are both optimizers back?"""
    recipe = recipe_for(preset)
    showers = recipe.simulate(n, seed + 1)
    with tempfile.TemporaryDirectory(prefix="zoo-calogan-checkpoint-") as workdir:
        keras.utils.set_random_seed(seed)
        trained = zoo.load(preset, pretrained=False)
        start = time.perf_counter()
        loop.fit_resumable(trained, None, None, (fit_arrays(showers, trained.particle_index), None), None,
                           epochs=1, batch_size=batch_size, workdir=workdir, verbose=0)
        fit_seconds = time.perf_counter() - start
        files = sorted(p.name for p in (Path(workdir) / loop.CHECKPOINT_DIR).iterdir())
        fresh = zoo.load(preset, pretrained=False)
        fresh.compile()
        differed = not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(trained.weights, fresh.weights))
        epoch, _ = loop.restore_checkpoint(workdir, fresh)
    optimizers = {}
    for name, (optimizer, _) in trained.optimizers_to_checkpoint().items():
        restored = fresh.optimizers_to_checkpoint()[name][0]
        optimizers[name] = {
            "iterations_trained": int(optimizer.iterations.numpy()),
            "iterations_restored": int(restored.iterations.numpy()),
            "variables": len(optimizer.variables),
            "all_variables_equal": len(optimizer.variables) == len(restored.variables) and all(
                np.array_equal(a.numpy(), b.numpy()) for a, b in zip(optimizer.variables, restored.variables)),
        }
    weights_equal = len(trained.weights) == len(fresh.weights) and all(
        np.array_equal(a.numpy(), b.numpy()) for a, b in zip(trained.weights, fresh.weights))
    steps = -(-n // batch_size)
    ok = (epoch == 1 and differed and weights_equal and all(
        o["all_variables_equal"] and o["iterations_restored"] == o["iterations_trained"] > 0
        for o in optimizers.values()))
    return {"showers": n, "steps": steps, "fit_seconds": fit_seconds, "restored_epoch": epoch,
            "checkpoint_files": files, "fresh_weights_differed_before_restore": differed,
            "weights_equal": weights_equal, "optimizers": optimizers, "ok": ok}


def markdown(results: dict) -> str:
    s, e, c = results["speed"], results["extrapolation"], results["checkpoint"]
    lines = [
        (f"CaloGAN training, {s['preset']} (latent_size {s['latent_size']}, discriminator_filters "
         f"{s['discriminator_filters']}; {s['generator_parameters']:,} + {s['discriminator_parameters']:,} "
         f"parameters), {results['machine']}"), "",
        "| measured | value |", "|---|---:|",
        (f"| train_step (1 D real + 1 D fake + 2 G), batch {s['batch_size']} | {s['steps_per_s']:.3g} steps/s "
         f"({s['showers_per_s']:.0f} showers/s) over {s['measured_steps']} steps after {s['warmup_steps']} "
         "warm-up |"),
        f"| warm-up (tracing + first {s['warmup_steps']} steps) | {s['first_steps_seconds']:.1f} s |",
        f"| simulator | {s['simulator_ms_per_shower']:.3g} ms/shower |",
        (f"| resident memory before fit / peak during fit (VmRSS) | {s['rss_mib_before_fit']:.0f} / "
         f"{s['rss_mib_peak_during_fit']:.0f} MiB |"),
        (f"| ru_maxrss before / after fit | {s['ru_maxrss_mib_before_fit']:.0f} / "
         f"{s['ru_maxrss_mib_after_fit']:.0f} MiB |"),
        "", "| extrapolated | value |", "|---|---:|",
        f"| one epoch of {e['n_train']:,} showers ({e['steps_per_epoch']} steps) | {e['hours_per_epoch']:.2f} h |",
        f"| the paper's {e['epochs']} epochs | {e['paper_schedule_hours']:.1f} h |",
        f"| simulating the {e['n_train']:,} training showers | {e['simulate_training_set_hours']:.2f} h |",
        (f"| epochs in the {e['budget_hours']:g} h budget for one particle | {e['epochs_in_budget']:.1f} "
         f"({e['epochs_in_budget_after_simulating']:.1f} after simulating) |"),
        "", (f"Checkpoint round trip (fit_resumable, 1 epoch of {c['showers']} showers = {c['steps']} steps, then "
             f"restore_checkpoint into a fresh model, whose weights differed before: "
             f"{c['fresh_weights_differed_before_restore']}): epoch {c['restored_epoch']}, "
             f"weights equal: {c['weights_equal']}, files {c['checkpoint_files']}."), "",
        "| optimizer | iterations trained / restored | variables | all equal |", "|---|---:|---:|---|"]
    for name, o in c["optimizers"].items():
        lines.append(f"| {name} | {o['iterations_trained']} / {o['iterations_restored']} | {o['variables']} | "
                     f"{o['all_variables_equal']} |")
    lines += ["", f"Both optimizers' state survives the checkpoint: **{'yes' if c['ok'] else 'NO'}**."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="calogan-eplus")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3, help="batches before the timed ones (tracing included)")
    parser.add_argument("--steps", type=int, default=20, help="timed batches")
    parser.add_argument("--checkpoint-showers", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")

    start = time.perf_counter()
    speed = training_speed(args.preset, args.batch_size, args.warmup, args.steps, args.seed)
    results = {"machine": f"{len(os.sched_getaffinity(0))} CPU cores", "speed": speed,
               "extrapolation": extrapolate(speed),
               "checkpoint": checkpoint_round_trip(args.preset, args.checkpoint_showers, args.batch_size, args.seed)}
    results["benchmark_seconds"] = time.perf_counter() - start
    print(markdown(results))
    print(f"\n(benchmark wall time {results['benchmark_seconds']:.0f} s)")
    if args.json:
        write_results(args.json, results)
    return 0 if results["checkpoint"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
