"""Independent samples per second: flow + Metropolis against Hybrid Monte Carlo, side by side on the same cores.

    python benchmarks/flow_sampling.py [--presets realnvp-phi4-L8 realnvp-phi4-L16] [--samples 20000] [--rounds 3]

The point of a flow sampler (Albergo, Kanwar, Shanahan, PRD 100, 034515 (2019)) is
independent configurations per second. For each sampler, in alternating rounds:
wall time to produce ``--samples`` Markov-chain configurations (flow: draw proposals,
compute the action and run the independence Metropolis chain; HMC: the zoo's vectorised
HMC with its tuned defaults, 16 chains, burn-in excluded), and the integrated
autocorrelation times of the action per site and of |m| on that chain. Independent samples
per second = N / (2 tau_int) / seconds (tau_int = 1/2 for independent draws), with the
slower of the two observables. Reported: the best round of each and their ratio, and for
the RealNVP presets at L = 8 and 16 the trend of the ratio with L and where it would reach 1. For the hierarchical presets, HMC in the flow's latent space
too (``training.recipes.flows.latent_hmc``). Results: benchmarks/results/flow_sampling_PRESET.json
and the preset's card.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import record_preset_results, write_results  # noqa: E402

import zoo  # noqa: E402
from training.recipes import flows, recipe_for  # noqa: E402
from training.simulators import lattice  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "flow_sampling.json"


def rates(n: int, seconds: float, taus: dict) -> dict:
    """Independent samples per second of a chain of ``n`` configurations made in ``seconds``, per observable
    (n / (2 tau_int) / seconds), and overall by the slowest observable."""
    out = {f"tau_int_{name}": tau for name, tau in taus.items()}
    out.update({f"independent_per_s_{name}": n / (2 * tau) / seconds for name, tau in taus.items()})
    out["independent_per_s"] = n / (2 * max(taus.values())) / seconds
    return out


def chain_taus(recipe, fields: np.ndarray, chains: int) -> dict:
    """tau_int of the action per site and of |m| on a chain of ``fields`` (steps x chains, flattened)."""
    shape = (-1, chains) if chains > 1 else (-1,)
    action = flows.numpy_action(recipe)(fields) / recipe.L**2
    return {"action": lattice.integrated_autocorrelation_time(action.reshape(shape)),
            "abs_magnetisation": lattice.integrated_autocorrelation_time(flows.abs_magnetisation(fields).reshape(shape))}


def flow_round(recipe, model, n: int, seed: int) -> dict:
    start = time.perf_counter()
    result = flows.flow_chain(recipe, model, n, seed)
    seconds = time.perf_counter() - start
    taus = {"action": result["tau_action"], "abs_magnetisation": result["tau_abs_magnetisation"]}
    return {"seconds": seconds, "acceptance": result["acceptance"], "ess_per_sample": result["ess"],
            **rates(n, seconds, taus)}


def hmc_round(recipe, n: int, seed: int) -> dict:
    chains, burn_in = lattice.HMC_DEFAULTS["n_chains"], lattice.HMC_DEFAULTS["burn_in"]
    start = time.perf_counter()
    samples, acceptance = lattice.model_hmc(recipe.action, recipe.L, recipe.parameters, n // chains, seed,
                                            n_chains=chains, burn_in=burn_in)
    # every trajectory costs the same, so the kept ones took their share of the time (burn-in excluded)
    seconds = (time.perf_counter() - start) * (n // chains) / (n // chains + burn_in)
    fields = samples.reshape((-1,) + samples.shape[2:])
    return {"seconds": seconds, "acceptance": float(acceptance), **rates(n, seconds, chain_taus(recipe, fields, chains))}


def latent_hmc_round(recipe, model, n: int, seed: int) -> dict:
    """HMC in the hierarchical flow's latent space (16 chains), timed like HMC on the fields (burn-in included:
    it is short, 50 trajectories)."""
    chains = 16
    start = time.perf_counter()
    fields, acceptance = flows.latent_hmc(recipe, model, n // chains, seed, n_chains=chains)
    seconds = time.perf_counter() - start
    fields = fields.reshape((-1,) + fields.shape[2:])
    return {"seconds": seconds, "acceptance": float(acceptance), **rates(n, seconds, chain_taus(recipe, fields, chains))}


LABELS = {"flow": "flow + Metropolis", "hmc": "HMC (16 chains)", "latent_hmc": "latent-space HMC (16 chains)"}


def measure(preset: str, samples: int, rounds: int, latent_samples: int) -> dict:
    """Alternating rounds of every sampler of ``preset``; the best round of each by independent samples / s."""
    recipe = recipe_for(preset)
    model = zoo.load(preset)
    flows.flow_chain(recipe, model, 256, 0)  # compile the sampler
    samplers = ("flow", "hmc", "latent_hmc") if recipe.hierarchical else ("flow", "hmc")
    history = []
    for r in range(rounds):
        history.append({"flow": flow_round(recipe, model, samples, 10 + r), "hmc": hmc_round(recipe, samples, 10 + r)})
        if recipe.hierarchical:
            history[-1]["latent_hmc"] = latent_hmc_round(recipe, model, latent_samples, 10 + r)
    best = {k: max((r[k] for r in history), key=lambda x: x["independent_per_s"]) for k in samplers}
    results = {"preset": preset, "L": recipe.L, "machine": f"{len(os.sched_getaffinity(0))} CPU cores",
               "samples": samples, "rounds": history, "best": best,
               "flow_over_hmc": best["flow"]["independent_per_s"] / best["hmc"]["independent_per_s"]}
    print(f"\n{preset} ({samples} configurations, best of {rounds} rounds)\n"
          "| sampler | seconds | acceptance | tau_int(S) | tau_int(abs m) | independent samples / s |\n"
          "|---|---:|---:|---:|---:|---:|")
    for name in samplers:
        b = best[name]
        print(f"| {LABELS[name]} | {b['seconds']:.2f} | {b['acceptance']:.2f} | {b['tau_int_action']:.2f} | "
              f"{b['tau_int_abs_magnetisation']:.2f} | {b['independent_per_s']:.0f} |")
    print(f"flow / HMC: {results['flow_over_hmc']:.3g}x")
    write_results(RESULTS.with_name(f"flow_sampling_{preset}.json"), results)
    recorded = {"flow + Metropolis: acceptance": best["flow"]["acceptance"],
                "flow + Metropolis: ESS / N": best["flow"]["ess_per_sample"]}
    for name in samplers:
        b = best[name]
        recorded.update({f"{LABELS[name]}: tau_int(S)": b["tau_int_action"],
                         f"{LABELS[name]}: tau_int(abs m)": b["tau_int_abs_magnetisation"],
                         f"{LABELS[name]}: independent samples/s": b["independent_per_s"]})
    recorded["HMC: acceptance"] = best["hmc"]["acceptance"]
    recorded["flow / HMC"] = results["flow_over_hmc"]
    if recipe.hierarchical:
        results["latent_hmc_over_hmc"] = best["latent_hmc"]["independent_per_s"] / best["hmc"]["independent_per_s"]
        recorded["latent-space HMC / HMC"] = results["latent_hmc_over_hmc"]
        print(f"latent-space HMC / HMC: {results['latent_hmc_over_hmc']:.3g}x")
    results["card"] = {**recorded, "machine": results["machine"],
                       "independent samples": "N / (2 max(tau_int(S), tau_int(abs m))) per second"}
    return results


def crossing(results: list) -> dict:
    """Flow / HMC against L for presets of one action and couplings, and where a straight line in
    log(ratio) against the volume L^2 through the two largest lattices reaches 1 (None when the ratio does not
    rise with L: the flow falls further behind). Both samplers cost ~ L^2 per configuration, so the ratio's
    trend is that of tau_HMC / tau_flow: HMC's grows like a power of the correlation length, the flow's
    with exp(var log w), and var log w grows like the volume for a flow of fixed quality per site."""
    points = sorted((r["L"], r["flow_over_hmc"]) for r in results)
    out = {"flow_over_hmc_by_L": {str(L): ratio for L, ratio in points}, "crossing_L": None}
    if len(points) >= 2:
        (l1, r1), (l2, r2) = points[-2:]
        slope = (np.log(r2) - np.log(r1)) / (l2**2 - l1**2)
        out["log_ratio_slope_per_site"] = float(slope)
        if r1 >= 1:  # the flow is ahead already at the smaller lattice
            out["crossing_L"] = float(l1)
        elif r2 >= 1:
            out["crossing_L"] = float(np.sqrt(l1**2 - np.log(r1) / slope))
        elif slope > 0:
            out["crossing_L"] = float(np.sqrt(l2**2 - np.log(r2) / slope))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["realnvp-phi4-L8", "realnvp-phi4-L16"],
                        help="flow presets; the real phi^4 ones at one point also give the flow / HMC trend in L")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latent-samples", type=int, default=3200,
                        help="trajectories of latent-space HMC (hierarchical presets), over 16 chains")
    args = parser.parse_args(argv)
    results = [measure(p, args.samples, args.rounds, args.latent_samples) for p in args.presets]
    scaling = [r for r in results if r["preset"].startswith("realnvp-phi4-")]
    if len(scaling) >= 2:
        trend = crossing(scaling)
        write_results(RESULTS.with_name("flow_sampling_scaling.json"), trend)
        print(f"\nflow / HMC by L: {trend['flow_over_hmc_by_L']}; crossing L: {trend['crossing_L']}")
        for r in scaling:
            r["card"].update(trend_entries(trend))
    for r in results:
        record_preset_results(r["preset"], r["card"], "benchmarks/flow_sampling.py")
    return 0


def trend_entries(trend: dict) -> dict:
    """The card's lines on how flow / HMC changes with L (from :func:`crossing`)."""
    by_L = ", ".join(f"{ratio:.2f} at L = {L}" for L, ratio in trend["flow_over_hmc_by_L"].items())
    if trend["crossing_L"] is None:
        where = "nowhere on this trend: the ratio falls as L grows, so HMC's lead widens"
    else:
        where = f"at L = {trend['crossing_L']:.1f} on this trend (log ratio linear in L^2)"
    return {"flow / HMC by lattice size": by_L, "flow overtakes HMC": where}


if __name__ == "__main__":
    raise SystemExit(main())
