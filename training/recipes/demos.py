"""``zoo demo FAMILY``: a shipped preset of the family measured on a fresh simulated sample, with the figure
its card shows, in under a minute on 2 cores.

Each demo loads the family's showcase preset, simulates ``--samples`` held-out samples from ``--seed`` (seeds
that training never used), prints the preset's task metrics next to the numbers its card records, and
draws the recipe's evaluation figure of that sample (the Ising crossing, the RBM's observables, the Siamese
invariant, jet images and ROC curves, showers against the simulator, flow samples and their observables,
translated densities). The SciNet demo is the quick start's year of the Sun and Mars (recipes/scinet.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import zoo
from training.evaluation.metrics import is_error_of_another
from zoo import artifacts

# family -> (showcase preset, fresh samples, recipe fields changed for the demo): sized so that simulating,
# measuring and drawing fit a minute on 2 cores
SHOWCASES = {
    "classifiers": ("ising-cnn", 200, {"figure_crossing_samples": 16, "crossing_sizes": (16, 32)}),  # no L = 64 Monte Carlo
    "rbm": ("rbm-ising-L8-T2.27", 2000, {}),
    "siamese": ("siamese-kepler", 2000, {}),
    "jets": ("jet-cnn-w-vs-qcd", 200, {}),  # Pythia 8 at about 60 jets per second; cached after the first run
    "calogan": ("calogan-eplus", 2000, {}),
    "flows": ("realnvp-phi4-L8", 5000, {}),
    "translator": ("translator-schrodinger", 300, {}),
}


def sample_demo(family: str, recipe_for):
    """The ``zoo demo FAMILY`` function of a family in :data:`SHOWCASES`; ``recipe_for(name)`` gives a preset's
    recipe."""
    preset, samples, _ = SHOWCASES[family]

    def demo(argv) -> int:
        parser = argparse.ArgumentParser(prog=f"zoo demo {family}",
                                         description=f"{preset} on a fresh simulated sample, and its card's figure")
        parser.add_argument("--preset", default=preset, help=f"a preset of the {family} family (default {preset})")
        parser.add_argument("--samples", type=int, default=samples, help=f"fresh samples (default {samples})")
        parser.add_argument("--seed", type=int, default=2026, help="simulator seed (training used 1 and 2)")
        parser.add_argument("--out", default=f"outputs/{family}-demo.png", help="the figure (PNG)")
        return run_demo(family, recipe_for, parser.parse_args(argv))

    demo.__doc__ = f"``zoo demo {family}``: {preset} on a fresh sample, with its card's figure."
    return demo


def run_demo(family: str, recipe_for, args) -> int:
    if zoo.get_spec(args.preset).family != family:
        raise ValueError(f"--preset {args.preset} is of the {zoo.get_spec(args.preset).family!r} family; "
                         f"expected one of {zoo.list_models(family)}.")
    recipe = dataclasses.replace(recipe_for(args.preset), **SHOWCASES[family][2])
    if args.samples < recipe.minimum_samples:
        raise ValueError(f"--samples must be at least {recipe.minimum_samples}; received {args.samples}.")
    started = time.perf_counter()
    model = zoo.load(args.preset)
    data = recipe.simulate(args.samples, args.seed)
    metrics = recipe.task_metrics(model, data)
    card = artifacts.read_metadata(zoo.preset_folder(args.preset)).get("metrics", {})
    print(f"{args.preset}: {args.samples} fresh samples from seed {args.seed} "
          f"({time.perf_counter() - started:.0f} s); the card's value on its held-out sample in brackets")
    for name, value in metrics.items():
        if is_error_of_another(name, metrics) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        error = metrics.get(f"{name}_error")
        recorded = card.get(name)
        print(f"  {name} = {value:.4g}" + (f" +- {error:.2g}" if error is not None else "")
              + (f" [{recorded:.4g}]" if isinstance(recorded, (int, float)) else ""))
    scan = artifacts.read_metadata(zoo.preset_folder(args.preset)).get("latent_scan", {})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(recipe.render_figure(model, data, {int(k): v for k, v in scan.items()}))
    print(f"Figure written to {args.out} ({time.perf_counter() - started:.0f} s in all)")
    return 0

