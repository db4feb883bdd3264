"""Are the error bars of a flow + Metropolis estimate honest? Repeat the card's measurement at many seeds.

    python benchmarks/flow_error_calibration.py [--preset realnvp-phi4-L16] [--seeds 12] [--first-seed 3000]

A card quotes each observable of the flow's independence Metropolis chain with one error: a jackknife over
``training.recipes.flows.FLOW_CHAIN_BLOCKS`` (20) blocks, chosen by this benchmark. It also measures the
alternative, ``"windowed"``: Sokal's windowed autocorrelation time for means and a jackknife over 50 blocks
otherwise, which it found too small. If errors are right, then over independent seeds

* the scatter of the estimates equals the mean quoted error (ratio ~ 1, known to ~ 1 / sqrt(2 (seeds - 1)));
* the pulls against a long reference run (a larger HMC sample at its own seed) have mean ~ 0 and RMS ~ 1.

The same chains are also analysed with every error a jackknife over 20, 10 and 5 blocks: an error that grows
as the blocks lengthen was too small at the card's block length (the chain's correlations outlast it).

A scatter far above the quoted error means the estimator's errors are too small; a pull mean far from 0 with
a scatter ~ 1 means a bias the errors do not cover (for an independence sampler: configurations the flow
almost never proposes, whose heavy importance weights the chain has not met yet). Seeds 3000 and up are
used by no training run and no card. Results: benchmarks/results/flow_error_calibration.json.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "flow_error_calibration.json"


def calibration(estimates: np.ndarray, errors: np.ndarray, reference: tuple) -> dict:
    """Scatter against quoted error, and pulls against the reference, of one observable over seeds."""
    value, error = reference
    pulls = (estimates - value) / np.sqrt(errors ** 2 + error ** 2)
    scatter = float(np.std(estimates, ddof=1))
    return {"mean": float(estimates.mean()), "scatter": scatter, "mean_quoted_error": float(errors.mean()),
            "scatter_over_quoted_error": scatter / float(errors.mean()),
            "scatter_over_quoted_error_uncertainty": scatter / float(errors.mean()) / math.sqrt(2 * (len(errors) - 1)),
            "reference": value, "reference_error": error,
            "pull_mean": float(pulls.mean()), "pull_mean_error": 1.0 / math.sqrt(len(pulls)),
            "pull_rms": float(np.sqrt(np.mean(pulls ** 2))), "pulls": [round(float(p), 3) for p in pulls]}


BLOCKINGS = {"windowed": None, "20 blocks": 20, "10 blocks": 10, "5 blocks": 5}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realnvp-phi4-L16")
    parser.add_argument("--seeds", type=int, default=12, help="independent flow chains")
    parser.add_argument("--first-seed", type=int, default=3000)
    parser.add_argument("--proposals", type=int, default=None, help="per chain (default: the card's)")
    parser.add_argument("--reference-factor", type=int, default=4,
                        help="the reference HMC run is this many times the card's")
    arguments = parser.parse_args(argv)

    import zoo
    from training.recipes import flows

    recipe = flows.RECIPES[arguments.preset]
    model = zoo.load(arguments.preset)
    proposals = arguments.proposals or recipe.n_evaluation
    started = time.perf_counter()
    data = recipe.simulate(arguments.reference_factor * recipe.hmc_trajectories * recipe.hmc_chains,
                           arguments.first_seed - 1)
    reference = flows.observables(data.fields, recipe, data.chains)
    reference_seconds = time.perf_counter() - started
    per_seed = []
    for seed in range(arguments.first_seed, arguments.first_seed + arguments.seeds):
        result = flows.flow_chain(recipe, model, proposals, seed)
        per_seed.append({"seed": seed, "acceptance": result["acceptance"], "ess_per_sample": result["ess"],
                         "errors": {blocking: flows.observables(result["chain"], recipe, n_bins=n_bins)
                                    for blocking, n_bins in BLOCKINGS.items()}})
        print(seed, {k: round(v[0], 5) for k, v in per_seed[-1]["errors"]["windowed"].items()}, flush=True)
    report = {"preset": arguments.preset, "proposals_per_chain": proposals, "seeds": arguments.seeds,
              "first_seed": arguments.first_seed, "reference_fields": len(data),
              "reference_seconds": round(reference_seconds, 1),
              "seconds": round(time.perf_counter() - started, 1), "per_seed": per_seed,
              "calibration": {blocking: {name: calibration(
                  np.array([s["errors"][blocking][name][0] for s in per_seed]),
                  np.array([s["errors"][blocking][name][1] for s in per_seed]), reference[name]) for name in reference}
                  for blocking in BLOCKINGS}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    for blocking, rows in report["calibration"].items():
        print(f"errors: {blocking}")
        for name, row in rows.items():
            print(f"  {name:20s} scatter/error {row['scatter_over_quoted_error']:.2f} +- "
                  f"{row['scatter_over_quoted_error_uncertainty']:.2f}   pull mean {row['pull_mean']:+.2f} +- "
                  f"{row['pull_mean_error']:.2f}   pull rms {row['pull_rms']:.2f}")
    return report


if __name__ == "__main__":
    main()
