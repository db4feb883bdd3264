"""Independent samples per second: flow + Metropolis against Hybrid Monte Carlo, side by side on the same cores.

    python benchmarks/flow_sampling.py [--preset realnvp-phi4-L8] [--samples 20000] [--rounds 3]

The point of a flow sampler (Albergo, Kanwar, Shanahan, PRD 100, 034515 (2019)) is
independent configurations per second. For each sampler, in alternating rounds:
wall time to produce ``--samples`` Markov-chain configurations (flow: draw proposals,
compute the action and run the independence Metropolis chain; HMC: the zoo's vectorised
HMC with its tuned defaults, 16 chains, burn-in excluded), and the integrated
autocorrelation time of the action per site on that chain. Independent samples per second
= N / (2 tau_int) / seconds (tau_int = 1/2 for independent draws). Reported: the best
round of each and their ratio. For the hierarchical presets, HMC in the flow's latent space
too (``training.recipes.flows.latent_hmc``). Results: benchmarks/results/flow_sampling_PRESET.json
and the preset's card.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import record_preset_results, write_results  # noqa: E402

import zoo  # noqa: E402
from training.recipes import flows, recipe_for  # noqa: E402
from training.simulators import lattice  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "flow_sampling.json"


def flow_round(recipe, model, n: int, seed: int) -> dict:
    start = time.perf_counter()
    result = flows.flow_chain(recipe, model, n, seed)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tau_int": result["tau_action"], "acceptance": result["acceptance"],
            "independent_per_s": n / (2 * result["tau_action"]) / seconds}


def hmc_round(recipe, n: int, seed: int) -> dict:
    chains = lattice.HMC_DEFAULTS["n_chains"]
    burn_start = time.perf_counter()
    # burn-in alone, subtracted below
    lattice.model_hmc(recipe.action, recipe.L, recipe.parameters, 1, seed, n_chains=chains)
    burn_seconds = time.perf_counter() - burn_start
    start = time.perf_counter()
    samples, acceptance = lattice.model_hmc(recipe.action, recipe.L, recipe.parameters, n // chains, seed,
                                            n_chains=chains)
    seconds = time.perf_counter() - start - burn_seconds
    action = flows.numpy_action(recipe)(samples.reshape((-1,) + samples.shape[2:]))
    tau = lattice.integrated_autocorrelation_time(action.reshape(n // chains, chains) / recipe.L**2)
    return {"seconds": seconds, "tau_int": tau, "acceptance": float(acceptance),
            "independent_per_s": n / (2 * tau) / seconds}


def latent_hmc_round(recipe, model, n: int, seed: int) -> dict:
    """HMC in the hierarchical flow's latent space (16 chains), timed like HMC on the fields (burn-in included:
    it is short, 50 trajectories)."""
    chains = 16
    start = time.perf_counter()
    fields, acceptance = flows.latent_hmc(recipe, model, n // chains, seed, n_chains=chains)
    seconds = time.perf_counter() - start
    action = flows.numpy_action(recipe)(fields.reshape((-1,) + fields.shape[2:])).reshape(n // chains, chains)
    tau = lattice.integrated_autocorrelation_time(action / recipe.L**2)
    return {"seconds": seconds, "tau_int": tau, "acceptance": float(acceptance),
            "independent_per_s": n / (2 * tau) / seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realnvp-phi4-L8")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latent-samples", type=int, default=3200,
                        help="trajectories of latent-space HMC (hierarchical presets), over 16 chains")
    args = parser.parse_args(argv)
    recipe = recipe_for(args.preset)
    model = zoo.load(args.preset)
    flows.flow_chain(recipe, model, 256, 0)  # compile the sampler
    samplers = ("flow", "hmc", "latent_hmc") if recipe.hierarchical else ("flow", "hmc")
    rounds = []
    for r in range(args.rounds):
        rounds.append({"flow": flow_round(recipe, model, args.samples, 10 + r),
                       "hmc": hmc_round(recipe, args.samples, 10 + r)})
        if recipe.hierarchical:
            rounds[-1]["latent_hmc"] = latent_hmc_round(recipe, model, args.latent_samples, 10 + r)
    best = {k: max((r[k] for r in rounds), key=lambda x: x["independent_per_s"]) for k in samplers}
    results = {"preset": args.preset, "machine": f"{len(os.sched_getaffinity(0))} CPU cores", "samples": args.samples,
               "rounds": rounds, "best": best,
               "flow_over_hmc": best["flow"]["independent_per_s"] / best["hmc"]["independent_per_s"]}
    print("| sampler | seconds | tau_int(S) | acceptance | independent samples / s |\n|---|---:|---:|---:|---:|")
    labels = {"flow": "flow + Metropolis", "hmc": "HMC (16 chains)", "latent_hmc": "latent-space HMC (16 chains)"}
    for name in samplers:
        label, b = labels[name], best[name]
        print(f"| {label} | {b['seconds']:.2f} | {b['tau_int']:.2f} | {b['acceptance']:.2f} | {b['independent_per_s']:.0f} |")
    print(f"\nflow / HMC: {results['flow_over_hmc']:.2f}x ({args.samples} configurations, best of {args.rounds} rounds)")
    write_results(RESULTS.with_name(f"flow_sampling_{args.preset}.json"), results)
    recorded = {"flow + Metropolis, independent samples/s": best["flow"]["independent_per_s"],
                "HMC, independent samples/s": best["hmc"]["independent_per_s"], "flow / HMC": results["flow_over_hmc"]}
    if recipe.hierarchical:
        results["latent_hmc_over_hmc"] = best["latent_hmc"]["independent_per_s"] / best["hmc"]["independent_per_s"]
        recorded.update({"latent-space HMC, independent samples/s": best["latent_hmc"]["independent_per_s"],
                         "latent-space HMC / HMC": results["latent_hmc_over_hmc"]})
        print(f"latent-space HMC / HMC: {results['latent_hmc_over_hmc']:.2f}x")
    record_preset_results(args.preset, {**recorded, "machine": results["machine"]}, "benchmarks/flow_sampling.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
