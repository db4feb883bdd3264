"""Recipe of ``realnvp-phi4-L8``: a RealNVP flow trained on the phi^4 action, checked against HMC.

Albergo, Kanwar & Shanahan (PRD 100, 034515 (2019)) train a RealNVP flow with 16
affine couplings (checkerboard masks, convolutional networks of 8 channels) on
the action alone, by reverse KL, at L = 8, m2 = -4, lam = 8, and sample exactly
with an independence Metropolis-Hastings chain of flow proposals. Here the same,
judged at seeds training never used: the Metropolis acceptance, the effective
sample size of the importance weights, and observables of the Metropolis chain
against Hybrid Monte Carlo (``training/simulators/lattice.py``) with errors.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

import zoo
import zoo.artifacts
from training import distribute, loop
from training.recipes import common
from training.simulators import lattice

OBSERVABLES = ("action_per_site", "abs_magnetisation", "susceptibility", "two_point_zero", "binder")
LABELS = {"action_per_site": "<S> / V", "abs_magnetisation": "<abs(m)>", "susceptibility": "chi = V var(m)",
          "two_point_zero": "G_c(0)", "binder": "Binder U"}


@dataclasses.dataclass(frozen=True)
class FlowRecipe(common.Seeds):
    """Hyperparameters of a phi^4 flow preset (Albergo et al.'s architecture; Adam with a cosine decay).

    Attributes:
        steps_per_epoch, epochs, batch_size: reverse-KL steps (a checkpoint after every epoch).
        n_evaluation: flow proposals of the Metropolis chain on the card.
        hmc_trajectories, hmc_chains: the reference HMC sample.
    """

    preset: str
    L: int = 8
    m2: float = -4.0
    lam: float = 8.0
    epochs: int = 40
    steps_per_epoch: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    n_train: int = 0  # no data: the flow trains on the action
    n_evaluation: int = 50_000
    hmc_trajectories: int = 4000
    hmc_chains: int = 16
    targets: tuple = (("acceptance", ">=", 0.5), ("max_observable_pull", "<=", 3.0))


def recipe_phi4_L8() -> FlowRecipe:
    return FlowRecipe(preset="realnvp-phi4-L8")


@dataclasses.dataclass(frozen=True)
class Fields:
    """Reference fields in Markov-time order (T * chains, L, L), time-major, from HMC at ``seed``."""

    fields: np.ndarray
    acceptance: float
    seed: int

    def __len__(self) -> int:
        return len(self.fields)


def simulate(recipe, n: int, seed: int) -> Fields:
    """About ``n`` HMC fields (trajectories x chains) of the recipe's action at ``seed``."""
    trajectories = max(8, -(-int(n) // recipe.hmc_chains))
    samples, acceptance = lattice.phi4_hmc(recipe.L, recipe.m2, recipe.lam, trajectories, seed,
                                           n_chains=recipe.hmc_chains)
    return Fields(samples.reshape(-1, recipe.L, recipe.L), float(acceptance), int(seed))


# ----------------------------------------------------------------------------- exact sampling

def metropolis_chain(log_w: np.ndarray, seed: int) -> tuple:
    """Independence Metropolis-Hastings over proposals with log weights log w = -S - log q (in proposal order).

    Returns (index of the state at each step, acceptance rate); the chain starts at the first proposal."""
    uniform = np.random.default_rng(seed).random(len(log_w))
    index, current, accepted = np.zeros(len(log_w), np.int64), 0, 0
    for i in range(1, len(log_w)):
        if math.log(uniform[i] + 1e-300) < log_w[i] - log_w[current]:
            current, accepted = i, accepted + 1
        index[i] = current
    return index, accepted / max(1, len(log_w) - 1)


def effective_sample_size(log_w: np.ndarray) -> float:
    """ESS / N = (sum w)^2 / (N sum w^2) of the importance weights."""
    log_w = np.asarray(log_w, np.float64) - np.max(log_w)
    w = np.exp(log_w)
    return float(w.sum() ** 2 / (len(w) * (w * w).sum()))


def observables(fields: np.ndarray, recipe) -> dict:
    """name -> (value, error) of Markov-time ordered fields (errors from autocorrelation or a jackknife)."""
    volume = recipe.L * recipe.L
    action = lattice.phi4_action(fields, recipe.m2, recipe.lam) / volume
    out = {"action_per_site": lattice.mean_with_error(action),
           "abs_magnetisation": lattice.mean_with_error(np.abs(lattice.magnetisation(fields))),
           "susceptibility": lattice.susceptibility(fields, n_bins=50),
           "binder": lattice.binder_cumulant(fields, n_bins=50)}
    g, g_error = lattice.two_point_function(fields, n_bins=50)
    out["two_point_zero"] = (float(g[0, 0]), float(g_error[0, 0]))
    return {k: (float(value), float(error)) for k, (value, error) in out.items()}


def flow_chain(recipe, model, n: int, seed: int) -> dict:
    """Flow proposals at ``seed``, their Metropolis chain and its statistics."""
    phi, log_q = model.sample(n, seed=seed)
    action = lattice.phi4_action(phi, recipe.m2, recipe.lam)
    log_w = -action - log_q.astype(np.float64)
    index, acceptance = metropolis_chain(log_w, seed)
    chain = phi[index]
    tau = lattice.integrated_autocorrelation_time(action[index] / (recipe.L * recipe.L))
    return {"chain": chain, "proposals": phi, "log_w": log_w, "acceptance": acceptance,
            "ess": effective_sample_size(log_w), "tau_action": tau}


def task_metrics(recipe, model, data: Fields, seed: int | None = None) -> dict:
    """Acceptance, ESS / N and observables of the flow's Metropolis chain against the HMC fields ``data``."""
    seed = data.seed if seed is None else seed
    result = flow_chain(recipe, model, max(len(data), 1000), seed)
    return compare(recipe, result, data)


def compare(recipe, result: dict, data: Fields) -> dict:
    flow, hmc = observables(result["chain"], recipe), observables(data.fields, recipe)
    metrics = {"acceptance": result["acceptance"], "ess_per_sample": result["ess"],
               "tau_int_action_metropolis": result["tau_action"], "hmc_acceptance": data.acceptance,
               "variational_free_energy": float(np.mean(-result["log_w"]))}
    pulls = []
    for name in OBSERVABLES:
        (value, error), (reference, reference_error) = flow[name], hmc[name]
        pull = abs(value - reference) / math.hypot(error, reference_error)
        metrics.update({f"{name}_flow": value, f"{name}_flow_error": error, f"{name}_hmc": reference,
                        f"{name}_hmc_error": reference_error, f"{name}_pull": pull})
        pulls.append(pull)
    metrics["max_observable_pull"] = max(pulls)
    return metrics


# ----------------------------------------------------------------------------- card

def observables_section(metrics: dict, recipe) -> dict:
    rows = ["| observable | flow + Metropolis | HMC | pull (sigma) |", "|---|---|---|---|"]
    for name in OBSERVABLES:
        rows.append(f"| {LABELS[name]} | {metrics[f'{name}_flow']:.4f} +- {metrics[f'{name}_flow_error']:.4f} | "
                    f"{metrics[f'{name}_hmc']:.4f} +- {metrics[f'{name}_hmc_error']:.4f} | "
                    f"{metrics[f'{name}_pull']:.2f} |")
    text = "\n".join(rows) + (
        f"\n\n{recipe.n_evaluation} flow proposals (seed {recipe.evaluation_seed}) through an independence "
        f"Metropolis chain: acceptance {metrics['acceptance']:.1%}, ESS / N of the importance weights "
        f"{metrics['ess_per_sample']:.3f}, integrated autocorrelation time of S {metrics['tau_int_action_metropolis']:.2f} "
        f"steps. HMC: {recipe.hmc_chains} chains x {recipe.hmc_trajectories} trajectories at seed "
        f"{recipe.evaluation_seed + 1} (acceptance {metrics['hmc_acceptance']:.1%}). Errors: autocorrelation-"
        "corrected for means, jackknife over 50 blocks otherwise. Variational free energy E_q[log q + S] = "
        f"{metrics['variational_free_energy']:.3f} (an upper bound on -log Z).")
    return {"title": "Flow + Metropolis against HMC", "markdown": text}


def draw(axes, history: dict, result: dict, data: Fields, recipe) -> None:
    losses = history.get("loss", [])
    axes[0].plot(np.arange(1, len(losses) + 1) * recipe.steps_per_epoch, losses)
    axes[0].set(xlabel="training step", ylabel="E_q[log q + S] (epoch mean)", title="reverse-KL loss")
    volume = recipe.L * recipe.L
    m_flow, m_hmc = lattice.magnetisation(result["chain"]), lattice.magnetisation(data.fields)
    bins = np.linspace(-1.5, 1.5, 61)
    axes[1].hist(m_hmc, bins, density=True, histtype="stepfilled", alpha=0.4, label="HMC")
    axes[1].hist(m_flow, bins, density=True, histtype="step", label="flow + Metropolis")
    axes[1].set(xlabel="magnetisation m = sum phi / V", ylabel="density", title="magnetisation")
    axes[1].legend(fontsize=8)
    s_flow = lattice.phi4_action(result["chain"], recipe.m2, recipe.lam) / volume
    s_hmc = lattice.phi4_action(data.fields, recipe.m2, recipe.lam) / volume
    bins = np.linspace(min(s_hmc.min(), s_flow.min()), max(s_hmc.max(), s_flow.max()), 61)
    axes[2].hist(s_hmc, bins, density=True, histtype="stepfilled", alpha=0.4, label="HMC")
    axes[2].hist(s_flow, bins, density=True, histtype="step", label="flow + Metropolis")
    axes[2].set(xlabel="action per site S / V", ylabel="density", title="action")


def render_figure(recipe, model, data: Fields, scan=None) -> bytes:
    """Figure of ``zoo evaluate --plot``: magnetisation and action of flow + Metropolis against HMC."""
    result = flow_chain(recipe, model, max(len(data), 1000), data.seed)
    return common.render_to_png(draw, {}, result, data, recipe, panels=3, size=(13, 3.6))


# ----------------------------------------------------------------------------- training

def train_and_evaluate(recipe: FlowRecipe, workdir, epochs: int | None = None, verbose: int = 2,
                       strategy: str = "cpu", precision: str = "float32") -> dict:
    """Train by reverse KL (resumable), sample at the evaluation seed, compare with HMC, write ``workdir/artifact``."""
    import keras

    from zoo.models.flows import RealNVPFlow

    tf_strategy = distribute.keras_fit_strategy(strategy, precision, RealNVPFlow.training_spec)
    workdir, epochs = Path(workdir), recipe.epochs if epochs is None else epochs
    keras.utils.set_random_seed(recipe.train_seed)
    ticks = np.zeros((recipe.steps_per_epoch * recipe.batch_size, 1), np.float32)  # the batch size, no data
    with tf_strategy.scope():
        model = zoo.load(recipe.preset, pretrained=False)
        optimizer = common.cosine_adam(recipe.learning_rate, recipe.final_learning_rate, epochs * recipe.steps_per_epoch)
        history = loop.fit_resumable(model, optimizer, None, (ticks, None), None, epochs, recipe.batch_size, workdir,
                                     verbose=verbose)
    recipe = dataclasses.replace(recipe, epochs=epochs)
    data = simulate(recipe, recipe.hmc_trajectories * recipe.hmc_chains, recipe.evaluation_seed + 1)
    result = flow_chain(recipe, model, recipe.n_evaluation, recipe.evaluation_seed)
    metrics = compare(recipe, result, data)
    metadata = common.run_metadata(
        recipe, metrics, common.check_targets(recipe.targets, metrics), history,
        data=common.data_record(recipe, "lattice (HMC reference)", {"m2": [recipe.m2], "lam": [recipe.lam]},
                                {"L": recipe.L, "m2": recipe.m2, "lam": recipe.lam}),
        training={"steps": epochs * recipe.steps_per_epoch, "final_ess": history.get("ess", [None])[-1]},
        card_sections=[observables_section(metrics, recipe)],
    )
    figure = common.render_to_png(draw, history, result, data, recipe, panels=3, size=(13, 3.6))
    folder = zoo.artifacts.write_preset(workdir / "artifact", model, metadata, {"evaluation.png": figure}, force=True)
    return zoo.artifacts.verify_preset(folder)


def held_out_checks(recipe, model, metadata: dict, seed: int, n: int = 4000) -> list:
    """Acceptance on ``n`` fresh proposals (tolerance: five binomial errors of a chain whose acceptance steps are
    correlated, inflated by 3, plus 0.02) and the largest observable pull (at most the target plus 1.5)."""
    from training.recipes import HeldOutCheck

    data = simulate(recipe, n, seed + 1)
    measured = task_metrics(recipe, model, data, seed=seed)
    recorded = metadata["metrics"]
    p = recorded["acceptance"]
    tolerance = 15 * math.sqrt(p * (1 - p) / n) + 0.02
    return [HeldOutCheck("acceptance", measured["acceptance"], p, tolerance),
            HeldOutCheck("max_observable_pull", measured["max_observable_pull"], recorded["max_observable_pull"],
                         max(4.5, recorded["max_observable_pull"] + 1.5))]
