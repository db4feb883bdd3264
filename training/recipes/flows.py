"""Recipes of the flows: ``realnvp-phi4-L8`` (checked against HMC) and ``neuralrg-ising-L16`` (against the exact ln Z).

Albergo, Kanwar & Shanahan (PRD 100, 034515 (2019)) train a RealNVP flow with 16
affine couplings (checkerboard masks, convolutional networks of 8 channels) on
the action alone, by reverse KL, at L = 8, m2 = -4, lam = 8, and sample exactly
with an independence Metropolis-Hastings chain of flow proposals. Here the same,
judged at seeds training never used: the Metropolis acceptance, the effective
sample size of the importance weights, and observables of the Metropolis chain
against Hybrid Monte Carlo (``training/simulators/lattice.py``) with errors.
``realnvp-phi4-L16`` is the same flow on 16 x 16, started from the L = 8 preset's
couplings (``warm_start``).

Li & Wang (PRL 121, 260601 (2018)) train their hierarchical NeuralRG flow the same
way on the continuous (Hubbard-Stratonovich) Ising model at T_c on 16 x 16, whose
ln Z is exact (Kaufman's Ising partition function plus the Gaussian constants); the
card reports the variational free energy against it, and the observables against
Swendsen-Wang spins turned into exact continuous fields.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np

import zoo
from training import loop
from training.recipes import common
from training.recipes.base import Evaluation, HeldOutCheck, Recipe
from training.simulators import lattice
from zoo import mcmc

OBSERVABLES = ("action_per_site", "abs_magnetisation", "susceptibility", "two_point_zero", "two_point_half", "binder")
COMPLEX_OBSERVABLES = ("action_per_site", "abs_magnetisation", "susceptibility", "two_point_zero", "two_point_half")
LABELS = {"action_per_site": "<S> / V", "abs_magnetisation": "<abs(m)>", "susceptibility": "chi = V var(m)",
          "two_point_zero": "G_c(0)", "two_point_half": "G_c(L/2, 0)", "binder": "Binder U"}
COMPLEX_LABELS = {**LABELS, "susceptibility": "chi = V <abs(m)^2>", "two_point_zero": "G(0) = <abs(phi)^2>",
                  "two_point_half": "G(L/2, 0) = <Re phi_x^* phi_{x+L/2}>"}


MIN_EFFECTIVE_PROPOSALS = 100  # a held-out acceptance is compared with the card's only above this many


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlowRecipe(Recipe):
    """Hyperparameters of a flow preset (reverse KL with Adam and a cosine decay) and its reference sampler.

    Attributes:
        action, couplings: the lattice model ("phi4": m2, lam; "hs_ising": K) as (name, value) pairs.
        steps_per_epoch, epochs, batch_size: reverse-KL steps (a checkpoint after every epoch).
        n_evaluation: flow proposals of the Metropolis chain on the card.
        reference_samples, reference_chains: the reference sample (HMC for phi^4, Swendsen-Wang spins
            turned into exact continuous fields for the Ising model).
    """

    L: int = 8
    action: str = "phi4"
    couplings: tuple = (("m2", -4.0), ("lam", 8.0))
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
    hierarchical: bool = False  # a NeuralRG flow: the card adds its latent levels and latent-space HMC
    jit_compile: object = "auto"  # True: XLA-compile the training step (2x faster for the hierarchical flow on CPU)
    latent_hmc_trajectories: int = 1000
    warm_start: str | None = None  # a preset whose couplings' weights start the training (same networks, any L)

    @property
    def parameters(self) -> dict:
        return dict(self.couplings)

    def simulate(self, n: int, seed: int) -> Fields:
        """About ``n`` reference fields (trajectories x chains) of the recipe's model at ``seed``.

        phi^4: HMC (acceptance recorded). Continuous Ising: Swendsen-Wang spins, then exact fields x | s
        (acceptance 1: every draw is exact; consecutive sweeps are correlated, as for HMC)."""
        trajectories = max(8, -(-int(n) // self.hmc_chains))
        p = self.parameters
        if self.action == "hs_ising":
            spins = lattice.ising_swendsen_wang(self.L, p["K"], trajectories, seed, n_chains=self.hmc_chains)
            fields = lattice.hs_ising_fields_from_spins(spins.reshape(-1, self.L, self.L), p["K"], seed + 1)
            return Fields(fields, 1.0, int(seed), self.hmc_chains)
        samples, acceptance = lattice.model_hmc(self.action, self.L, p, trajectories, seed, n_chains=self.hmc_chains)
        return Fields(samples.reshape((-1,) + samples.shape[2:]), float(acceptance), int(seed), self.hmc_chains)

    def training_data(self) -> np.ndarray:
        """No data: the flow trains on the action. One row per sample of an epoch, so fit knows the batch size."""
        return np.zeros((self.steps_per_epoch * self.batch_size, 1), np.float32)

    def build_model(self):
        """The preset's flow, untrained, or with ``warm_start`` the couplings of that preset's trained flow.

        A coupling's networks are convolutions with periodic padding, the same function of a site's
        neighbourhood at every lattice size, so a flow trained at L = 8 is already a good flow at L = 16
        (its log-weight variance per site carries over) and training continues from there: a curriculum
        in volume, cheaper than starting from the identity at the larger L."""
        model = super().build_model()
        if self.warm_start:
            transfer_couplings(zoo.load(self.warm_start), model)
        return model

    def fit(self, model, data, epochs, workdir, verbose, strategy) -> dict:
        optimizer = common.cosine_adam(self.learning_rate, self.final_learning_rate, epochs * self.steps_per_epoch)
        return loop.fit_resumable(model, optimizer, None, (data, None), None, epochs, self.batch_size, workdir,
                                  verbose=verbose, jit_compile=self.jit_compile)

    def evaluate(self, model, data, history, workdir) -> Evaluation:
        """The flow's Metropolis chain against the reference sampler; for NeuralRG flows the latent levels and
        latent-space HMC as well."""
        reference = self.simulate(self.hmc_trajectories * self.hmc_chains, self.evaluation_seed + 1)
        result = flow_chain(self, model, self.n_evaluation, self.evaluation_seed)
        metrics = compare(self, result, reference)
        sections = [observables_section(metrics, self)]
        if self.hierarchical:
            bulk = bulk_statistics(model, reference.fields)
            comparison = hmc_comparison(self, model, self.latent_hmc_trajectories, self.evaluation_seed + 2, reference)
            metrics.update(comparison)
            metrics["latent_std_by_level"] = bulk["std"]
            sections += [hmc_section(comparison, self), bulk_section(bulk)]
        return Evaluation(
            metrics, self.targets,
            common.data_record(self, f"lattice ({reference_sampler(self)} reference)",
                               {k: [v] for k, v in self.parameters.items()},
                               {"L": self.L, "action": self.action, **self.parameters}),
            common.render_to_png(draw, history, result, reference, self, panels=3, size=(13, 3.6)),
            sections=sections,
            training={"steps": self.epochs * self.steps_per_epoch, "final_ess": history.get("ess", [None])[-1]})

    def task_metrics(self, model, data: Fields, seed: int | None = None, latent_hmc: bool = True) -> dict:
        """Acceptance, ESS / N and observables of the flow's Metropolis chain against the reference fields
        ``data``; for a NeuralRG flow (unless ``latent_hmc`` is False) its exact sampler, latent-space HMC, as
        well, with trajectories in the card's proportion to the sample (minutes at the card's size)."""
        seed = data.seed if seed is None else seed
        result = flow_chain(self, model, max(len(data), 1000), seed)
        metrics = compare(self, result, data)
        if self.hierarchical and latent_hmc:
            trajectories = max(50, round(self.latent_hmc_trajectories * len(data) / self.n_evaluation))
            metrics.update(hmc_comparison(self, model, trajectories, seed + 2, data))
        return metrics

    def held_out_checks(self, model, metadata: dict, seed: int, n: int = 4000) -> list:
        """On ``n`` fresh proposals: the Metropolis acceptance, where the card's ESS / N promises at least
        MIN_EFFECTIVE_PROPOSALS effective samples among them (tolerance: five binomial errors of a chain whose
        acceptance steps are correlated, inflated by 3, plus 0.02); the variational free energy, where the card
        records its error (five standard errors of the mean of log w on n proposals); and for the RealNVP presets
        the largest observable pull of the Metropolis chain (at most the target plus 1.5). The hierarchical
        presets' Metropolis chains are too sticky for a pull or an acceptance on 4000 proposals to mean anything
        (the few heaviest weights a chain has met set both, and a longer chain meets heavier ones); their exact
        sampler, latent-space HMC, takes minutes and is on the card."""
        data = self.simulate(n, seed + 1)
        measured = self.task_metrics(model, data, seed=seed, latent_hmc=False)
        recorded = metadata["metrics"]
        p = recorded["acceptance"]
        checks = []
        if recorded["ess_per_sample"] * n >= MIN_EFFECTIVE_PROPOSALS:
            checks.append(HeldOutCheck("acceptance", measured["acceptance"], p, 15 * math.sqrt(p * (1 - p) / n) + 0.02))
        if not self.hierarchical:
            checks.append(HeldOutCheck("max_observable_pull", measured["max_observable_pull"],
                                       recorded["max_observable_pull"], max(4.5, recorded["max_observable_pull"] + 1.5)))
        if "variational_free_energy_error" in recorded:
            tolerance = 5 * recorded["variational_free_energy_error"] * math.sqrt(self.n_evaluation / n)
            checks.append(HeldOutCheck("variational_free_energy", measured["variational_free_energy"],
                                       recorded["variational_free_energy"], tolerance))
        return checks

    def render_figure(self, model, data: Fields, scan=None) -> bytes:
        """Figure of ``zoo evaluate --plot``: magnetisation and action of flow + Metropolis against HMC."""
        result = flow_chain(self, model, max(len(data), 1000), data.seed)
        return common.render_to_png(draw, {}, result, data, self, panels=3, size=(13, 3.6))


RECIPES = {recipe.preset: recipe for recipe in (
    FlowRecipe(preset="realnvp-phi4-L8"),
    # The same flow on 16 x 16, started from the 8 x 8 preset's couplings (acceptance 27% before any training
    # at L = 16) and trained on at a third of L = 8's learning rate, since it starts close; the target is
    # Albergo et al.'s kind of usefulness at four times the volume: acceptance >= 30%.
    FlowRecipe(preset="realnvp-phi4-L16", L=16, warm_start="realnvp-phi4-L8", epochs=60,
               steps_per_epoch=100, batch_size=128, learning_rate=3e-4, final_learning_rate=1e-5,
               n_evaluation=50_000, targets=(("acceptance", ">=", 0.3), ("max_observable_pull", "<=", 3.0))),
    # NeuralRG's continuous Ising model on 16 x 16 at T_c; the target is the free energy to 1%. The shipped
    # weights trained 60 epochs on the flow's own q, then 30 more (resumed, XLA-compiled) on the Z2 mixture
    # (q(x) + q(-x)) / 2 that the preset samples: the first run had learned one ordered phase.
    FlowRecipe(preset="neuralrg-ising-L16", L=16, action="hs_ising", couplings=(("K", lattice.K_CRITICAL),),
               epochs=90, steps_per_epoch=200, batch_size=64, learning_rate=1e-3, final_learning_rate=1e-5,
               hierarchical=True, jit_compile=True,
               targets=(("free_energy_relative_error", "<=", 0.01), ("latent_hmc_max_pull", "<=", 3.0))),
    # Complex phi^4 of NeuralRG's holographic mapping on 32 x 32 at kappa = 0.15, lam = 1.145 (the defaults of
    # li012589/NeuralRG's complex-field script, removed in commit b52bd72), trained for what 2 CPU cores do in
    # about 50 minutes (the zoo's budget: the largest L that trains in 2 hours).
    FlowRecipe(preset="neuralrg-phi4-complex-L32", L=32, action="complex_phi4",
               couplings=(("kappa", 0.15), ("lam", 1.145)), epochs=60, steps_per_epoch=250, batch_size=32,
               learning_rate=1e-3, final_learning_rate=1e-5, n_evaluation=20_000, hmc_trajectories=2000,
               hierarchical=True, jit_compile=True, latent_hmc_trajectories=400,
               targets=(("latent_hmc_max_pull", "<=", 3.0),)),
)}


def transfer_couplings(source, target) -> None:
    """Copy the coupling networks of the flow ``source`` into ``target`` (same couplings, any lattice size)."""
    if len(source.couplings) != len(target.couplings):
        raise ValueError(f"cannot start a flow of {len(target.couplings)} couplings from one of "
                         f"{len(source.couplings)}")
    for to, start in zip(target.couplings, source.couplings):
        for variable, value in zip(to.weights, start.weights, strict=True):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(f"coupling weight {variable.path}: shape {tuple(variable.shape)} here, "
                                 f"{tuple(value.shape)} in the starting flow")
            variable.assign(value)


def numpy_action(recipe):
    """fields -> S (float64) of the recipe's model, from the simulators (independent of the flow's own action)."""
    p = recipe.parameters
    if recipe.action == "hs_ising":
        return lambda fields: lattice.hs_ising_action(fields, p["K"])
    if recipe.action == "complex_phi4":
        return lambda fields: lattice.complex_phi4_action(fields, p["kappa"], p["lam"])
    return lambda fields: lattice.phi4_action(fields, p["m2"], p["lam"])


def exact_log_z(recipe) -> float | None:
    """ln Z where it is known exactly (the continuous Ising model), else None."""
    return lattice.hs_ising_log_z(recipe.L, recipe.parameters["K"]) if recipe.action == "hs_ising" else None


@dataclasses.dataclass(frozen=True)
class Fields:
    """Reference fields in Markov-time order (T * chains, L, L), time-major, from the reference sampler at ``seed``."""

    fields: np.ndarray
    acceptance: float
    seed: int
    chains: int = 1  # independent chains, interleaved: fields[t * chains + c]

    def __len__(self) -> int:
        return len(self.fields)


# ----------------------------------------------------------------------------- exact sampling

def observables(fields: np.ndarray, recipe, chains: int = 1, n_bins: int | None = None) -> dict:
    """name -> (value, error) of Markov-time ordered fields (errors from a jackknife, or autocorrelation).

    ``chains`` > 1 independent chains interleaved time-major (as HMC returns them): every error is a jackknife
    that leaves out one whole chain at a time. The chains are independent, so this needs no autocorrelation
    time, where 50 blocks of the interleaved series would each hold only N / (50 chains) steps of every chain:
    too few for |m| or the Binder cumulant near T_c. One chain with ``n_bins``: a jackknife over that many
    contiguous blocks, means included (a flow's Metropolis chain, FLOW_CHAIN_BLOCKS). One chain without:
    Sokal's windowed autocorrelation time for means and a jackknife over 50 blocks otherwise (what
    ``benchmarks/flow_error_calibration.py`` found too small for an independence sampler).

    Real fields: connected two-point function G_c(y) at y = 0 and (L/2, 0). Complex fields: U(1)-invariant
    observables (<m> = 0 by symmetry, so G is not connected), per configuration."""
    volume, half = recipe.L * recipe.L, recipe.L // 2
    if chains > 1:  # chain-major: contiguous blocks of one chain each
        fields = np.reshape(np.swapaxes(np.reshape(fields, (-1, chains) + fields.shape[1:]), 0, 1), fields.shape)
        n_bins = chains
    action = numpy_action(recipe)(fields) / volume

    def series_mean(values):
        if n_bins:
            return lattice.block_mean_with_error(values, n_bins)
        return lattice.mean_with_error(values)

    bins = n_bins or 50

    if fields.ndim == 4:
        m2 = (fields.mean(axis=(1, 2)) ** 2).sum(axis=-1)
        far = (fields * np.roll(fields, -half, axis=1)).sum(axis=-1).mean(axis=(1, 2))
        out = {"action_per_site": series_mean(action),
               "abs_magnetisation": series_mean(abs_magnetisation(fields)),
               "susceptibility": series_mean(volume * m2),
               "two_point_zero": series_mean((fields ** 2).sum(axis=-1).mean(axis=(1, 2))),
               "two_point_half": series_mean(far)}
    else:
        out = {"action_per_site": series_mean(action),
               "abs_magnetisation": series_mean(abs_magnetisation(fields)),
               "susceptibility": lattice.susceptibility(fields, n_bins=bins),
               "binder": lattice.binder_cumulant(fields, n_bins=bins)}
        g, g_error = lattice.two_point_function(fields, n_bins=bins)
        out["two_point_zero"] = (float(g[0, 0]), float(g_error[0, 0]))
        out["two_point_half"] = (float(g[half, 0]), float(g_error[half, 0]))
    return {k: (float(value), float(error)) for k, (value, error) in out.items()}


def observable_names(recipe) -> tuple:
    return COMPLEX_OBSERVABLES if recipe.action == "complex_phi4" else OBSERVABLES


def flow_chain(recipe, model, n: int, seed: int) -> dict:
    """Flow proposals at ``seed``, their Metropolis chain and its statistics."""
    phi, log_q = model.sample(n, seed=seed)
    action = numpy_action(recipe)(phi)
    log_w = -action - log_q.astype(np.float64)
    index, acceptance = mcmc.independence_metropolis(log_w, seed)
    chain = phi[index]
    tau = lattice.integrated_autocorrelation_time(action[index] / (recipe.L * recipe.L))
    return {"chain": chain, "proposals": phi, "log_w": log_w, "acceptance": acceptance,
            "acceptance_error": acceptance_error(index), "ess": mcmc.effective_sample_size(log_w), "tau_action": tau,
            "tau_abs_magnetisation": lattice.integrated_autocorrelation_time(abs_magnetisation(chain))}


def abs_magnetisation(fields: np.ndarray) -> np.ndarray:
    """|m| per configuration: |mean field| for real fields (n, L, L), the modulus of the mean for complex ones
    (n, L, L, 2). The slowest observable of a local sampler near a Z2 (or U(1)) transition: HMC must tunnel
    between the wells, where an independence sampler proposes either with equal ease."""
    if fields.ndim == 4:
        return np.sqrt((fields.mean(axis=(1, 2)) ** 2).sum(axis=-1))
    return np.abs(lattice.magnetisation(fields))


def acceptance_error(index: np.ndarray) -> float:
    """Standard error of a Metropolis chain's acceptance rate: the accept steps are correlated (a chain stuck on
    a heavy proposal rejects many in a row), so the binomial variance is scaled by 2 tau_int of the steps."""
    accepted = (index[1:] == np.arange(1, len(index))).astype(np.float64)
    if len(accepted) < 2:
        return float("nan")
    tau = lattice.integrated_autocorrelation_time(accepted)
    return float(np.sqrt(accepted.var() * 2 * tau / len(accepted)))


def reference_sampler(recipe) -> str:
    return "Swendsen-Wang" if recipe.action == "hs_ising" else "HMC"


# Every error of a flow's Metropolis chain is a jackknife over this many contiguous blocks. An independence
# sampler sticks on a heavy-weighted proposal for a stretch whose length has a long tail, which Sokal's
# window cuts off: over 32 seeds of realnvp-phi4-L16 (benchmarks/flow_error_calibration.py) the scatter of
# <|m|> was 1.37 +- 0.17 times its windowed error and 1.17 +- 0.15 times its 20-block error.
FLOW_CHAIN_BLOCKS = 20


def compare(recipe, result: dict, data: Fields) -> dict:
    """Metrics of a flow chain against the reference fields; with an exact ln Z, the free energy's relative error."""
    reference = observables(data.fields, recipe, data.chains)
    metrics = {"acceptance": result["acceptance"], "acceptance_error": result["acceptance_error"],
               "ess_per_sample": result["ess"],
               "tau_int_action_metropolis": result["tau_action"], "reference_acceptance": data.acceptance,
               "variational_free_energy": float(np.mean(-result["log_w"])),
               "variational_free_energy_error": float(np.std(result["log_w"]) / math.sqrt(len(result["log_w"])))}
    log_z = exact_log_z(recipe)
    if log_z is not None:
        metrics["exact_free_energy"] = -log_z
        metrics["free_energy_relative_error"] = (metrics["variational_free_energy"] + log_z) / abs(log_z)
        metrics["free_energy_relative_error_error"] = metrics["variational_free_energy_error"] / abs(log_z)
    chain = observables(result["chain"], recipe, n_bins=FLOW_CHAIN_BLOCKS)
    metrics.update(pulls(recipe, chain, reference, "flow"))
    metrics["max_observable_pull"] = metrics.pop("flow_max_pull")
    metrics["max_observable_pull_error"] = metrics.pop("flow_max_pull_error")
    return metrics


def pulls(recipe, measured: dict, reference: dict, name: str) -> dict:
    """``name``'s observables next to the reference's, each with its pull |a - b| / sqrt(da^2 + db^2), and the
    largest pull's statistical error: 1, since a pull is a difference in units of its own standard error (from
    one pair of independent samples to the next it moves by about 1)."""
    out, largest = {}, 0.0
    for observable in observable_names(recipe):
        (value, error), (expected, expected_error) = measured[observable], reference[observable]
        pull = abs(value - expected) / math.hypot(error, expected_error)
        out.update({f"{observable}_{name}": value, f"{observable}_{name}_error": error,
                    f"{observable}_reference": expected, f"{observable}_reference_error": expected_error})
        out[f"{observable}_pull" if name == "flow" else f"{observable}_{name}_pull"] = pull
        largest = max(largest, pull)
    return {**out, f"{name}_max_pull": largest, f"{name}_max_pull_error": 1.0}


# ----------------------------------------------------------------------------- the hierarchical flow's bulk

def decimation_levels(L: int) -> np.ndarray:
    """(L, L) level at which each site's latent variable of the hierarchical flow was decimated.

    Site (i, j) survives level l while both i and j are multiples of 2^(l+1); so its level is the 2-adic
    valuation min(v2(i), v2(j)), and site (0, 0), the last one left, gets log2 L."""
    top = round(math.log2(L))
    v2 = np.array([top if i == 0 else (i & -i).bit_length() - 1 for i in range(L)])
    return np.minimum(v2[:, None], v2[None, :])


def bulk_statistics(model, fields: np.ndarray) -> dict:
    """How the latent variables of exact samples spread over the renormalisation-group levels.

    If q = p exactly, the encoded fields are i.i.d. N(0, 1): unit standard deviation on every level and no
    correlation between levels. Per level: the standard deviation of its latent variables, the mean absolute
    correlation of each with the magnetisation m (where the long-wavelength physics sits), and the mean
    absolute correlation between latent variables of two levels (levels x levels; the diagonal excludes
    a variable with itself)."""
    z = model.run_endpoint("encode", {"fields": fields})["latent"]
    n, L = len(z), fields.shape[1]
    levels = decimation_levels(L)
    flat = z.reshape(n, L * L, -1)[..., 0].astype(np.float64)  # first component for complex fields
    m = fields.reshape(n, L * L, -1)[..., 0].mean(axis=1)
    standardised = (flat - flat.mean(axis=0)) / flat.std(axis=0)
    correlation = standardised.T @ standardised / n
    with_m = np.abs(standardised.T @ ((m - m.mean()) / m.std()) / n)
    level_of = levels.reshape(-1)
    names = sorted(set(level_of.tolist()))
    across = np.zeros((len(names), len(names)))
    for a, la in enumerate(names):
        for b, lb in enumerate(names):
            block = np.abs(correlation[np.ix_(level_of == la, level_of == lb)])
            if la == lb:
                block = block[~np.eye(len(block), dtype=bool)] if len(block) > 1 else np.full(1, np.nan)
            across[a, b] = float(np.mean(block))
    return {"levels": names, "count": [int((level_of == lv).sum()) for lv in names],
            "std": [float(flat[:, level_of == lv].std()) for lv in names],
            "correlation_with_m": [float(with_m[level_of == lv].mean()) for lv in names],
            "correlation_across_levels": across.tolist(), "samples": n}


def bulk_section(bulk: dict) -> dict:
    names = bulk["levels"]
    header = "| level (lattice L / 2^l) | variables | std of z | mean abs corr(z, m) | " + " | ".join(
        f"with level {b}" for b in names) + " |"
    rows = [header, "|" + "---|" * (4 + len(names))]
    for a, level in enumerate(names):
        cells = " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in bulk["correlation_across_levels"][a])
        rows.append(f"| {level} | {bulk['count'][a]} | {bulk['std'][a]:.3f} | {bulk['correlation_with_m'][a]:.3f} | "
                    f"{cells} |")
    noise = math.sqrt(2 / math.pi / bulk["samples"])
    text = "\n".join(rows) + (
        f"\n\n{bulk['samples']} exact reference fields encoded into the flow's latent variables, grouped by the "
        "level at which the hierarchy decimated them (0: the finest plaquettes; the last: the single variable "
        "left at the top). A perfect flow gives std 1 and no correlations; the mean absolute correlation of "
        f"independent variables over this many samples is about {noise:.4f} (the noise floor). The magnetisation, "
        "the longest wavelength, is carried by the coarsest levels: the renormalisation-group picture.")
    return {"title": "Latent variables across renormalisation-group levels", "markdown": text}


def latent_hmc(recipe, model, n_samples: int, seed: int, n_chains: int = 16, step_size: float = 0.2,
               n_steps: int = 5, burn_in: int = 50) -> tuple:
    """The flow's latent-space HMC (:meth:`zoo.models.flows.LatticeFlow.mcmc`) as the recipe's comparisons
    take it: fields (n_samples, n_chains, ...) and the acceptance rate."""
    chain = model.mcmc(n_samples * n_chains, seed=seed, method="latent_hmc", chains=n_chains, step_size=step_size,
                       leapfrog_steps=n_steps, burn_in=burn_in)
    return chain.fields.reshape((n_samples, n_chains) + model.field_shape), chain.acceptance


def hmc_comparison(recipe, model, n_samples: int, seed: int, data: Fields) -> dict:
    """Latent-space HMC against field-space HMC (same trajectory length and chains): acceptance, tau_int of S / V,
    <S> / V; and the latent chain's observables against the reference fields ``data`` (it is an exact sampler)."""
    volume = recipe.L * recipe.L
    out = {}
    latent_fields, latent_acceptance = latent_hmc(recipe, model, n_samples, seed)
    field_samples, field_acceptance = lattice.model_hmc(recipe.action, recipe.L, recipe.parameters, n_samples,
                                                        seed + 1, n_chains=16, step_size=0.1, n_steps=10)
    for name, samples, acceptance in (("latent", latent_fields, latent_acceptance),
                                      ("field", field_samples, field_acceptance)):
        action = numpy_action(recipe)(samples.reshape((-1,) + samples.shape[2:])).reshape(n_samples, -1) / volume
        out[f"{name}_hmc_acceptance"] = float(acceptance)
        out[f"{name}_hmc_tau_action"] = lattice.integrated_autocorrelation_time(action)
        out[f"{name}_hmc_action_per_site"], out[f"{name}_hmc_action_per_site_error"] = lattice.mean_with_error(action)
    chain = latent_fields.reshape((-1,) + latent_fields.shape[2:])
    reference = observables(data.fields, recipe, data.chains)
    out.update(pulls(recipe, observables(chain, recipe, latent_fields.shape[1]), reference, "latent_hmc"))
    return out


def hmc_section(comparison: dict, recipe) -> dict:
    n_samples = recipe.latent_hmc_trajectories
    rows = ["| sampler | acceptance | tau_int(S) in trajectories | <S> / V |", "|---|---:|---:|---:|"]
    for name in ("latent", "field"):
        rows.append(f"| HMC in {name} space | {comparison[f'{name}_hmc_acceptance']:.1%} | "
                    f"{comparison[f'{name}_hmc_tau_action']:.2f} | {comparison[f'{name}_hmc_action_per_site']:.4f} "
                    f"+- {comparison[f'{name}_hmc_action_per_site_error']:.4f} |")
    rows.append(f"| {reference_sampler(recipe)} (reference) | | | {comparison['action_per_site_reference']:.4f} +- "
                f"{comparison['action_per_site_reference_error']:.4f} |")
    rows += ["", observables_table(comparison, recipe, "latent-space HMC", "latent_hmc")]
    text = "\n".join(rows) + (
        f"\n\n16 chains x {n_samples} trajectories each, trajectory length 1 (latent: 5 steps of 0.2; field: 10 "
        "steps of 0.1, jittered by 20%), 50 (latent) and 200 (field) trajectories of burn-in. Latent-space HMC "
        "samples exp(-S) pulled back through the flow, U(z) = S(f(z)) - ln |det df/dz| (Hu, Li, Wang & You 2019): "
        "its accept/reject step makes it exact whatever the flow's quality, and it mixes fast where the flow has "
        "made U nearly Gaussian. Field-space HMC from small random fields has the same trajectory length; where "
        "its <S> / V is many errors from the reference it has not equilibrated (critical slowing down of the "
        "long-wavelength modes), and its tau_int is then an underestimate.")
    return {"title": "Exact sampling by HMC in the latent space, against HMC on the fields", "markdown": text}


# ----------------------------------------------------------------------------- card

def reference_description(recipe, metrics: dict) -> str:
    if recipe.action == "hs_ising":
        return (f"Reference: Swendsen-Wang, {recipe.hmc_chains} chains x {recipe.hmc_trajectories} sweeps at seed "
                f"{recipe.evaluation_seed + 1}, each spin configuration turned into an exact continuous field "
                "x | s ~ N(M s, M).")
    return (f"HMC: {recipe.hmc_chains} chains x {recipe.hmc_trajectories} trajectories at seed "
            f"{recipe.evaluation_seed + 1} (acceptance {metrics['reference_acceptance']:.1%}).")


def free_energy_text(metrics: dict) -> str:
    text = (f"Variational free energy E_q[log q + S] = {metrics['variational_free_energy']:.3f} +- "
            f"{metrics['variational_free_energy_error']:.3f} (an upper bound on -log Z)")
    if "exact_free_energy" in metrics:
        text += (f"; exact -ln Z = {metrics['exact_free_energy']:.3f}, relative error "
                 f"{metrics['free_energy_relative_error']:.3%}")
    return text + "."


def observables_table(metrics: dict, recipe, sampler: str, key: str) -> str:
    """Markdown table of the observables of ``sampler`` (metric names ``{observable}_{key}``) against the reference."""
    rows = [f"| observable | {sampler} | {reference_sampler(recipe)} | pull (sigma) |", "|---|---|---|---|"]
    labels = COMPLEX_LABELS if recipe.action == "complex_phi4" else LABELS
    for name in observable_names(recipe):
        pull = metrics[f"{name}_pull" if key == "flow" else f"{name}_{key}_pull"]
        rows.append(f"| {labels[name]} | {metrics[f'{name}_{key}']:.4f} +- {metrics[f'{name}_{key}_error']:.4f} | "
                    f"{metrics[f'{name}_reference']:.4f} +- {metrics[f'{name}_reference_error']:.4f} | {pull:.2f} |")
    return "\n".join(rows)


def observables_section(metrics: dict, recipe) -> dict:
    sampler = reference_sampler(recipe)
    text = observables_table(metrics, recipe, "flow + Metropolis", "flow") + (
        f"\n\n{recipe.n_evaluation} flow proposals (seed {recipe.evaluation_seed}) through an independence "
        f"Metropolis chain: acceptance {metrics['acceptance']:.1%}, ESS / N of the importance weights "
        f"{metrics['ess_per_sample']:.3f}, integrated autocorrelation time of S {metrics['tau_int_action_metropolis']:.2f} "
        f"steps. {reference_description(recipe, metrics)} Errors: the flow chain's a jackknife over "
        f"{FLOW_CHAIN_BLOCKS} blocks; the reference's a jackknife leaving out one of its {recipe.hmc_chains} "
        f"independent chains at a time. {free_energy_text(metrics)}")
    if metrics["tau_int_action_metropolis"] * 20 > recipe.n_evaluation / FLOW_CHAIN_BLOCKS:
        text += (f" The chain's autocorrelation time is not small against the jackknife's blocks "
                 f"(N / {FLOW_CHAIN_BLOCKS} proposals), "
                 "so these errors are underestimated and the pulls overstated: the flow is too far from exp(-S) / Z "
                 "for independence Metropolis on this lattice, and the latent-space HMC below is the exact sampler "
                 "to use.")
    return {"title": f"Flow + Metropolis against {sampler}", "markdown": text}


def plotted_magnetisation(fields: np.ndarray) -> np.ndarray:
    """m = sum phi / V for real fields, abs(m) for complex ones (whose phase is uniform)."""
    m = fields.mean(axis=(1, 2))
    return np.sqrt((m ** 2).sum(axis=-1)) if fields.ndim == 4 else m


def draw(axes, history: dict, result: dict, data: Fields, recipe) -> None:
    losses = history.get("loss", [])
    axes[0].plot(np.arange(1, len(losses) + 1) * recipe.steps_per_epoch, losses)
    axes[0].set(xlabel="training step", ylabel="E_q[log q + S] (epoch mean)", title="reverse-KL loss")
    volume = recipe.L * recipe.L
    m_flow, m_reference = plotted_magnetisation(result["chain"]), plotted_magnetisation(data.fields)
    edge = 1.1 * max(np.abs(m_reference).max(), 1e-6)
    bins = np.linspace(-edge, edge, 61)
    axes[1].hist(m_reference, bins, density=True, histtype="stepfilled", alpha=0.4, label=reference_sampler(recipe))
    axes[1].hist(m_flow, bins, density=True, histtype="step", label="flow + Metropolis")
    axes[1].set(xlabel="magnetisation m = sum phi / V", ylabel="density", title="magnetisation")
    axes[1].legend(fontsize=8)
    s_flow = numpy_action(recipe)(result["chain"]) / volume
    s_reference = numpy_action(recipe)(data.fields) / volume
    bins = np.linspace(min(s_reference.min(), s_flow.min()), max(s_reference.max(), s_flow.max()), 61)
    axes[2].hist(s_reference, bins, density=True, histtype="stepfilled", alpha=0.4, label=reference_sampler(recipe))
    axes[2].hist(s_flow, bins, density=True, histtype="step", label="flow + Metropolis")
    axes[2].set(xlabel="action per site S / V", ylabel="density", title="action")


# ----------------------------------------------------------------------------- measuring an installed preset again

def evaluate_again(recipe: FlowRecipe, folder=None) -> dict:
    """Measure an installed flow preset again on its card's seeds (the same proposals, the same reference
    fields) with this code's estimators: the metrics, targets and card sections are replaced. The weights and
    the training record stay, and so does the figure (it draws the training history, which a preset does not
    keep). Returns the new metadata; render the card afterwards (``zoo card NAME``)."""
    folder = Path(folder or zoo.preset_folder(recipe.preset))
    metadata = zoo.artifacts.verify_preset(folder)
    evaluation = recipe.evaluate(zoo.load(str(folder)), None, {}, None)
    metrics = {**metadata["metrics"], **evaluation.metrics}  # keeps what other tools added
    return zoo.artifacts.replace_files(folder, {}, metadata_updates=common.jsonable({
        "metrics": metrics, "card_sections": evaluation.sections,
        "targets": common.check_targets(recipe.targets, metrics)}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Measure installed flow presets again on their cards' seeds.")
    parser.add_argument("presets", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--evaluate-again", action="store_true", required=True,
                        help="replace the metrics, targets and card sections with this code's measurement")
    for name in parser.parse_args(argv).presets:
        metadata = evaluate_again(RECIPES[name])
        print(name, {t["metric"]: t["measured"] for t in metadata["targets"]}, flush=True)


if __name__ == "__main__":
    main()
