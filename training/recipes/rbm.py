"""Recipes of the ``rbm-ising-L8-T<temp>`` presets: one RBM per temperature, checked against Monte Carlo.

Torlai & Melko (2016) train a restricted Boltzmann machine on Monte Carlo
snapshots of the L = 8 Ising model at one temperature and compare the
thermodynamics of configurations sampled from the machine with Monte Carlo.
Here each preset is trained with contrastive divergence (CD-10) on
configurations from seed 1 and judged on seeds training never used: the RBM's
samples (block Gibbs chains from noise) against a fresh Monte Carlo data set
at the same temperature, and the log-likelihood of the held-out Monte Carlo
configurations with log Z from annealed importance sampling.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

import zoo
from training import loop
from training.evaluation.metrics import ratio_error
from training.recipes import common
from training.recipes.base import Evaluation, HeldOutCheck, Recipe
from training.simulators import ising

OBSERVABLES = ("energy", "abs_magnetisation", "specific_heat", "susceptibility")
TARGETS = (("energy_relative_error", "<=", 0.02), ("abs_magnetisation_relative_error", "<=", 0.02))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RBMRecipe(Recipe):
    """Hyperparameters of one RBM preset.

    Attributes:
        preset, temperature: the preset and the temperature of its data (J / k_B).
        L: lattice size.
        n_train: Monte Carlo configurations for training.
        epochs, batch_size, learning_rate: Adam on the CD gradient, cosine decay to final_learning_rate.
        cd_steps, persistent: Gibbs steps of the negative phase, and whether its chains persist (PCD).
        n_evaluation: held-out Monte Carlo configurations (reference observables, log-likelihood).
        rbm_samples, gibbs_steps: configurations drawn from the trained RBM and Gibbs steps per chain.
        ais_runs, ais_betas: annealed importance sampling for log Z.
        entropy_samples: Monte Carlo configurations per temperature of the entropy's thermodynamic integration.
    """

    preset: str
    temperature: float
    L: int = 8
    n_train: int = 50000
    epochs: int = 120
    cd_steps: int = 10
    persistent: bool = False
    batch_size: int = 100
    learning_rate: float = 2e-3
    final_learning_rate: float = 1e-4
    n_evaluation: int = 20000
    rbm_samples: int = 20000
    gibbs_steps: int = 2000
    ais_runs: int = 200
    ais_betas: int = 20000
    entropy_samples: int = 2000

    def simulate(self, n: int, seed: int) -> ising.IsingSamples:
        return ising.simulate(n, seed, L=self.L, temperatures=[self.temperature])

    def training_data(self) -> ising.IsingSamples:
        return self.simulate(self.n_train, self.train_seed)

    def build_model(self):
        return zoo.load(self.preset, pretrained=False, cd_steps=self.cd_steps, persistent=self.persistent)

    def fit(self, model, data, epochs, workdir, verbose, strategy) -> dict:
        """Contrastive divergence on the training configurations, shuffled once."""
        spins = data.spins[np.random.default_rng(self.train_seed).permutation(len(data.spins))].astype("float32")
        optimizer = common.cosine_adam(self.learning_rate, self.final_learning_rate,
                                       epochs * (len(spins) // self.batch_size))
        return loop.fit_resumable(model, optimizer, None, (spins, None), None, epochs, self.batch_size, workdir,
                                  verbose=verbose)

    def evaluate(self, model, data, history, workdir) -> Evaluation:
        """RBM samples against held-out Monte Carlo, and the held-out log-likelihood with log Z from AIS."""
        evaluation = self.simulate(self.n_evaluation, self.evaluation_seed)
        drawn = model.sample(self.rbm_samples, gibbs_steps=self.gibbs_steps, seed=self.evaluation_seed)
        metrics = compare_observables(drawn, evaluation.spins, self.temperature)
        metrics.update(log_likelihood_metrics(self, model, evaluation))
        return Evaluation(
            metrics, TARGETS,
            common.data_record(self, "ising", ising.PARAMETER_RANGES, {"L": self.L, "temperature": self.temperature},
                               monte_carlo=data.diagnostics),
            common.render_to_png(draw_histograms, drawn, evaluation.spins, self),
            sections=[observables_section(metrics, self)])

    def task_metrics(self, model, data: ising.IsingSamples, samples: int | None = None, seed: int | None = None) -> dict:
        """RBM samples against the Monte Carlo configurations ``data`` at the preset's temperature."""
        seed = int(data.diagnostics["seed"]) if seed is None else seed
        drawn = model.sample(samples or len(data.spins), gibbs_steps=self.gibbs_steps, seed=seed)
        return compare_observables(drawn, data.spins, self.temperature)

    def held_out_checks(self, model, metadata: dict, seed: int, n: int = 2000) -> list:
        """The card's targets (relative errors of RBM observables against Monte Carlo) from ``n`` fresh samples.

        Each relative error must stay below the card's target (or, for a missed target, the
        card's value) plus three combined standard errors of the two estimates (binning errors
        of both samples, relative to the Monte Carlo value) plus 0.005 for the RBM's own bias.
        Relative errors are >= 0, so that bound also bounds the distance to the card's value.
        """
        data = self.simulate(n, seed)
        measured = self.task_metrics(model, data, samples=n, seed=seed)
        checks = []
        for target in metadata["targets"]:
            key = target["metric"].replace("_relative_error", "")
            sigma = math.hypot(measured[f"{key}_rbm_error"], measured[f"{key}_monte_carlo_error"]) / abs(measured[f"{key}_monte_carlo"])
            slack = 3 * sigma + 0.005
            bound = target["target"] if target["met"] else target["measured"]
            checks.append(HeldOutCheck(target["metric"], measured[target["metric"]], target["measured"],
                                       bound + slack, bound, "<=", slack))
        return checks

    def render_figure(self, model, data, scan=None) -> bytes:
        """Figure of ``zoo evaluate``: energy and |m| histograms of RBM samples against Monte Carlo."""
        drawn = model.sample(len(data.spins), gibbs_steps=self.gibbs_steps, seed=int(data.diagnostics["seed"]))
        return common.render_to_png(draw_histograms, drawn, data.spins, self)


PRESET_TEMPERATURES = (1.5, 2.0, 2.27, 2.5, 3.0)
RECIPES = {f"rbm-ising-L8-T{t:g}": RBMRecipe(preset=f"rbm-ising-L8-T{t:g}", temperature=t) for t in PRESET_TEMPERATURES}


# ----------------------------------------------------------------------------- data and metrics

def compare_observables(rbm_spins, reference_spins, temperature: float) -> dict:
    """Observables of RBM samples and of Monte Carlo, with errors, and their relative differences."""
    rbm, mc = ising.observables(rbm_spins, temperature), ising.observables(reference_spins, temperature)
    metrics = {}
    for key in OBSERVABLES:
        metrics[f"{key}_rbm"], metrics[f"{key}_rbm_error"] = rbm[key]
        metrics[f"{key}_monte_carlo"], metrics[f"{key}_monte_carlo_error"] = mc[key]
        metrics[f"{key}_relative_error"] = abs(rbm[key][0] / mc[key][0] - 1)
        metrics[f"{key}_relative_error_error"] = ratio_error(rbm[key], mc[key])
    return metrics



def log_likelihood_metrics(recipe, model, data: ising.IsingSamples) -> dict:
    log_z, log_z_error = model.log_partition_ais(runs=recipe.ais_runs, betas=recipe.ais_betas, seed=recipe.evaluation_seed,
                                                 base_visible_bias=base_visible_bias(data.spins))
    n_visible = recipe.L**2
    log_likelihood = model.log_likelihood(data.spins, log_z) / n_visible
    entropy, entropy_error = ising.entropy_per_spin(recipe.L, recipe.temperature, seed=recipe.evaluation_seed + 1,
                                                    samples=recipe.entropy_samples)
    return {
        "log_z_ais": log_z, "log_z_ais_error": log_z_error,
        "held_out_log_likelihood_per_spin": log_likelihood,
        "held_out_log_likelihood_per_spin_error": log_z_error / n_visible,
        "entropy_per_spin_monte_carlo": entropy,
        "entropy_per_spin_monte_carlo_error": entropy_error,
        "kl_per_spin_estimate": -log_likelihood - entropy,
        "kl_per_spin_estimate_error": math.hypot(entropy_error, log_z_error / n_visible),
    }


def base_visible_bias(spins) -> np.ndarray:
    """AIS base machine: independent units with the data's marginals, logit of the mean occupation."""
    mean = np.clip(((np.asarray(spins, float).reshape(len(spins), -1) + 1) / 2).mean(axis=0), 0.02, 0.98)
    return np.log(mean / (1 - mean))


def observables_section(metrics: dict, recipe) -> dict:
    rows = ["| observable (per spin) | RBM samples | Monte Carlo | relative difference |", "|---|---|---|---|"]
    for key in OBSERVABLES:
        rows.append(
            f"| {key.replace('_', ' ')} | {metrics[f'{key}_rbm']:.4f} +- {metrics[f'{key}_rbm_error']:.4f} | "
            f"{metrics[f'{key}_monte_carlo']:.4f} +- {metrics[f'{key}_monte_carlo_error']:.4f} | "
            f"{metrics[f'{key}_relative_error']:.2%} |"
        )
    distance = abs(recipe.temperature - ising.T_CRITICAL)
    text = "\n".join(rows) + (
        f"\n\n{recipe.rbm_samples} RBM configurations, each after {recipe.gibbs_steps} block Gibbs steps from "
        f"uniform noise, against {recipe.n_evaluation} held-out Monte Carlo configurations at T = {recipe.temperature} "
        f"({distance:.2f} from T_c). Errors: binning (energy, |m|) and jackknife (specific heat c = N var(e) / T^2, "
        f"susceptibility chi = N var(|m|) / T). "
        f"\n\nHeld-out log-likelihood: {metrics['held_out_log_likelihood_per_spin']:.4f} +- "
        f"{metrics['held_out_log_likelihood_per_spin_error']:.4f} nats per spin, with log Z = "
        f"{metrics['log_z_ais']:.3f} +- {metrics['log_z_ais_error']:.3f} from {recipe.ais_runs} AIS runs of "
        f"{recipe.ais_betas} intermediate temperatures; the uniform distribution scores -log 2 = {-math.log(2):.3f}. "
        f"The Boltzmann distribution itself scores minus its entropy, {metrics['entropy_per_spin_monte_carlo']:.4f} +- "
        f"{metrics['entropy_per_spin_monte_carlo_error']:.4f} nats per spin (thermodynamic integration of Monte Carlo "
        f"energies from infinite temperature), so the RBM's KL divergence from it is about "
        f"{metrics['kl_per_spin_estimate']:.4f} +- {metrics['kl_per_spin_estimate_error']:.4f} nats per spin "
        f"(a KL below zero beyond its error would mean that AIS overestimates the likelihood)."
    )
    return {"title": "Thermodynamics of RBM samples against Monte Carlo", "markdown": text}


def level_bins(values, step: float) -> np.ndarray:
    """Histogram edges halfway between the levels of a discrete observable spaced by ``step``, one level a bin."""
    low, high = np.min(values), np.max(values)
    return np.arange(low - step / 2, high + step, step)


def draw_histograms(axes, rbm_spins, mc_spins, recipe) -> None:
    """On N = L^2 sites E/N moves in steps of 4/N (a flip changes four bonds by 2) and |m| in steps of 2/N."""
    sites = mc_spins.shape[1] * mc_spins.shape[2]
    for axis, observable, label, step in (
            (axes[0], ising.energy_per_spin, "energy per spin E / (N J)", 4.0 / sites),
            (axes[1], lambda s: np.abs(ising.magnetisation(s)), "|m| = |sum of spins| / N", 2.0 / sites)):
        values_mc, values_rbm = observable(mc_spins), observable(rbm_spins)
        bins = level_bins(np.concatenate([values_mc, values_rbm]), step)
        axis.hist(values_mc, bins, histtype="step", density=True, label="Monte Carlo (held out)")
        axis.hist(values_rbm, bins, histtype="step", density=True, label="RBM samples")
        axis.set(xlabel=label, ylabel="density", title=f"{recipe.preset}")
        axis.legend(fontsize=8)


# ----------------------------------------------------------------------------- all presets side by side

OBSERVABLE_UNITS = {"energy": "energy per spin E / (N J)", "abs_magnetisation": "<|m|> per spin",
                    "specific_heat": "specific heat per spin C / (N k_B)", "susceptibility": "susceptibility per spin (1 / J)"}


def draw_observables_against_temperature(axes, metadata_by_temperature: dict) -> None:
    temperatures = sorted(metadata_by_temperature)
    for axis, key in zip(axes, OBSERVABLES):
        for source, marker in (("monte_carlo", "o"), ("rbm", "s")):
            values = [metadata_by_temperature[t]["metrics"][f"{key}_{source}"] for t in temperatures]
            errors = [metadata_by_temperature[t]["metrics"][f"{key}_{source}_error"] for t in temperatures]
            axis.errorbar(temperatures, values, errors, fmt=marker, ms=4, capsize=2,
                          label="Monte Carlo (held out)" if source == "monte_carlo" else "RBM samples")
        axis.axvline(ising.T_CRITICAL, color="k", ls="--", lw=0.8)
        axis.set(xlabel="temperature T (J / k_B)", ylabel=OBSERVABLE_UNITS.get(key, key), title=key.replace("_", " "))
    axes[0].legend(fontsize=7)


def observables_figure() -> bytes:
    """Observables of every shipped RBM preset against T, next to Monte Carlo, from their metadata.json."""
    from zoo import artifacts

    shipped = [n for n in zoo.list_models() if n.startswith("rbm-ising-L8-T") and zoo.has_weights(n)]
    by_temperature = {}
    for name in shipped:
        metadata = artifacts.read_json(zoo.preset_folder(name) / artifacts.METADATA_FILE)
        by_temperature[metadata["data"]["options"]["temperature"]] = metadata
    return common.render_to_png(draw_observables_against_temperature, by_temperature, panels=4, size=(13, 3.2))


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "model_cards/rbm-ising-L8-observables.png")
    out.write_bytes(observables_figure())
    print(f"Figure written to {out}")
