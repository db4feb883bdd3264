"""Every family's training step on an accelerator under JAX against the same steps on 2 CPU cores.

    KERAS_BACKEND=jax python benchmarks/accelerator.py [--steps 50] [--budget-seconds 10] [--presets NAME ...]
                                                       [--out benchmarks/results/accelerator.json]

Meant for a lent machine that has JAX (with CUDA) but neither TensorFlow nor Keras: carry wheels of keras
and the zoo (README, "Training on an accelerator"); TensorFlow is not imported on this path, and the script
says so in its results. For each family's representative preset, the recipe's model and batch size:
``benchmarks/backends.py``'s ``step_seconds`` on JAX's default device, then the same in a process held to 2
CPU cores (``JAX_PLATFORMS=cpu``, affinity to cores 0-1), side by side in one run. A timed epoch has
``--steps`` steps, or as many as fit in ``--budget-seconds`` where a step is slow. Sized for a 15-minute loan:
about a minute per family with the defaults (a dry run on 2 CPU cores with TensorFlow blocked took 6 minutes
at ``--steps 3``, CaloGAN's model construction the largest part). Results are written after each family.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from backends import ONE_PER_FAMILY, REPO, in_backend, step_seconds  # noqa: E402
from common import write_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "accelerator.json"


def on_two_cores(name: str, steps: int, budget_seconds: float) -> dict:
    """``step_seconds`` in a child process on the CPU, pinned to two cores."""
    return in_backend("jax", "step_seconds", name, steps, None, budget_seconds,
                      preamble="import os; os.sched_setaffinity(0, {0, 1})",
                      env={"JAX_PLATFORMS": "cpu",
                           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--budget-seconds", type=float, default=10.0)
    parser.add_argument("--presets", nargs="*", default=ONE_PER_FAMILY)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("Run with KERAS_BACKEND=jax.")
    device = jax.devices()[0]
    results = {"device": f"{device.platform}: {getattr(device, 'device_kind', '')}", "devices": len(jax.devices()),
               "steps": args.steps, "families": {}}
    for name in args.presets:
        try:
            fast = step_seconds(name, args.steps, budget_seconds=args.budget_seconds)
        except Exception as error:  # a family that fails is reported, and the others still run
            fast = {"error": f"{type(error).__name__}: {error}"[:300]}
        slow = on_two_cores(name, args.steps, args.budget_seconds)
        row = {"accelerator": fast, "two_cpu_cores": slow}
        if "seconds_per_step" in fast and "seconds_per_step" in slow:
            row["steps_per_second"] = 1 / fast["seconds_per_step"]
            row["speedup_over_two_cores"] = slow["seconds_per_step"] / fast["seconds_per_step"]
        results["families"][name] = row
        print(name, row, flush=True)
        results["tensorflow_imported"] = "tensorflow" in sys.modules
        write_results(args.out, results, quiet=True)  # a loan that ends early keeps the families it measured
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
