"""Recipe of ``ising-cnn``: Monte Carlo data, training, the crossing and finite-size scaling of T_c.

Training data: L = 32 configurations at temperatures in [1.0, 3.5] (step
0.1, and 0.025 within [2.1, 2.45]), labelled 1 (ordered) when T < T_c =
2.2692 (Carrasquilla & Melko 2017). Held-out evaluation, from seeds that training never used:

* accuracy away from the transition (|T - T_c| > 0.3) on the same grid;
* the temperature T*(L) where the mean output crosses 1/2, for L = 16, 32
  and 64 on a fine grid across T_c, with bootstrap errors;
* finite-size scaling T*(L) = T_c + a L^(-1/nu) with the exact nu = 1 of the
  2D Ising universality class, a weighted linear fit in 1/L whose intercept
  is the extrapolated T_c (Carrasquilla & Melko quote 2.266(2)).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from training import loop
from training.evaluation.metrics import binomial_error
from training.recipes import common
from training.recipes.base import Evaluation, HeldOutCheck, Recipe, met_targets
from training.simulators import ising

# the simulator's grid (step 0.1) plus a finer one across T_c, which pins the decision boundary near T_c
TRAIN_TEMPERATURES = tuple(sorted(set(ising.DEFAULT_TEMPERATURES) | set(np.round(np.arange(2.1, 2.451, 0.025), 4))))
TARGETS = (("accuracy_far_from_tc", ">=", 0.99), ("crossing_L32_relative_error", "<=", 0.01))
PAPER_TC = "2.266(2)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class IsingCNNRecipe(Recipe):
    """Hyperparameters of the ``ising-cnn`` preset.

    Attributes:
        L: lattice size of the training data.
        temperatures: the training (and accuracy) temperature grid.
        n_train, n_validation: configurations, spread evenly over the grid.
        epochs, batch_size, learning_rate, final_learning_rate: Adam on the binary cross-entropy, cosine decay.
        n_evaluation: configurations of the held-out accuracy set.
        crossing_temperatures: fine grid across T_c for the crossing.
        crossing_sizes, crossing_samples: lattice sizes and configurations per temperature.
        far_from_tc: |T - T_c| beyond which the accuracy target applies.
        train_seed, validation_seed, evaluation_seed: simulator seeds (the
            crossing sets use evaluation_seed + L).
    """

    preset: str = "ising-cnn"
    L: int = 32
    temperatures: tuple = TRAIN_TEMPERATURES
    n_train: int = 20800
    n_validation: int = 2600
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    n_evaluation: int = 5200
    crossing_temperatures: tuple = tuple(np.round(np.arange(2.0, 2.601, 0.02), 4))
    crossing_sizes: tuple = (16, 32, 64)
    crossing_samples: int = 160
    figure_crossing_samples: int = 64  # per temperature, in the figure of a sample (zoo evaluate --plot, zoo demo)
    far_from_tc: float = 0.3
    bootstrap: int = 200

    def simulate(self, n: int, seed: int, L: int | None = None, temperatures=None) -> ising.IsingSamples:
        return ising.simulate(n, seed, L=L or self.L, temperatures=self.temperatures if temperatures is None else temperatures)

    def fit(self, model, data, epochs, workdir, verbose, strategy) -> dict:
        train, validation = data
        optimizer = common.cosine_adam(self.learning_rate, self.final_learning_rate, epochs * (len(train.spins) // self.batch_size))
        return loop.fit_resumable(model, optimizer, "binary_crossentropy", _shuffled(train, self.train_seed),
                                  _shuffled(validation, self.validation_seed), epochs, self.batch_size, workdir,
                                  verbose=verbose)

    def evaluate(self, model, data, history, workdir) -> Evaluation:
        """Accuracy on the L = 32 grid, the crossings for L = 16, 32, 64 and their finite-size extrapolation."""
        evaluation = self.simulate(self.n_evaluation, self.evaluation_seed)
        curves = crossing_curves(model, crossing_data(self))
        metrics = self.task_metrics(model, evaluation, curves)
        diagnostics = data[0].diagnostics
        return Evaluation(
            metrics, TARGETS,
            common.data_record(self, "ising", ising.PARAMETER_RANGES, {"L": self.L}, monte_carlo=diagnostics),
            common.render_to_png(draw_crossing, curves, metrics),
            sections=[finite_size_section(metrics, self, diagnostics)])

    def task_metrics(self, model, data: ising.IsingSamples, curves: dict | None = None) -> dict:
        """Held-out metrics: accuracy on ``data`` (L = 32 grid); crossings and T_c extrapolation from ``curves``.

        ``curves`` is :func:`crossing_curves` of the model on the crossing data sets.
        """
        p = predict_p_ordered(model, data)
        far, overall = accuracy_far_from_tc(p, data.temperatures, self.far_from_tc)
        n_far = int(np.sum(far_from_tc(data.temperatures, self.far_from_tc)))
        metrics = {"accuracy_far_from_tc": far, "accuracy_far_from_tc_error": binomial_error(far, n_far),
                   "accuracy_all_temperatures": overall,
                   "accuracy_all_temperatures_error": binomial_error(overall, len(p))}
        grid, outputs = group_by_temperature(p, data.temperatures)
        metrics["crossing_coarse_grid"] = crossing_temperature(grid, [o.mean() for o in outputs])
        if curves is None:  # zoo evaluate: the crossing of L on the fine grid, as many configurations as data
            seed = int(data.diagnostics["seed"])
            per_temperature = max(8, len(p) // len(self.crossing_temperatures))
            curves = crossing_curves(model, crossing_data(self, seed - self.evaluation_seed, per_temperature, (self.L,)))
        if curves:
            values, errors = [], []
            for L, (g, o) in sorted(curves.items()):
                value, error = crossing_with_error(g, o, self.bootstrap)
                metrics[f"crossing_L{L}"], metrics[f"crossing_L{L}_error"] = value, error
                values.append(value), errors.append(error)
            if f"crossing_L{self.L}" in metrics:
                metrics[f"crossing_L{self.L}_relative_error"] = abs(metrics[f"crossing_L{self.L}"] / ising.T_CRITICAL - 1)
                metrics[f"crossing_L{self.L}_relative_error_error"] = metrics[f"crossing_L{self.L}_error"] / ising.T_CRITICAL
            if len(curves) < 2:  # one lattice size: no finite-size extrapolation
                return metrics
            fit = finite_size_extrapolation(sorted(curves), values, errors)
            metrics.update({"tc_extrapolated": fit["tc"], "tc_extrapolated_error": fit["tc_error"],
                            "fss_slope": fit["slope"], "fss_chi2_per_dof": fit["chi2_per_dof"]})
        return metrics

    def held_out_checks(self, model, metadata: dict, seed: int) -> list:
        """The card's two targets measured again on fresh Monte Carlo from ``seed``.

        - accuracy far from T_c on 1024 configurations at T = 1.6, 1.9, 2.65, 3.0: within four
          binomial standard errors (at least 0.01) of the card, and above its target by as much;
        - the L = 32 crossing from 576 configurations on T = 2.15 ... 2.40: within 0.03 of the
          card's crossing (its bootstrap error at this size is about 0.01), and T_c within 1.5%.
        """
        targets = met_targets(metadata)
        data = ising.simulate(256, seed, L=32, temperatures=[1.6, 1.9, 2.65, 3.0])
        p = predict_p_ordered(model, data)
        accuracy = accuracy_far_from_tc(p, data.temperatures, self.far_from_tc)[0]  # every T here is far from T_c
        sigma = max(0.01, 4 * np.sqrt(max(accuracy * (1 - accuracy), 1e-4) / len(p)))
        far = targets.get("accuracy_far_from_tc", {})
        checks = [HeldOutCheck("accuracy_far_from_tc", accuracy, metadata["metrics"]["accuracy_far_from_tc"], sigma,
                               far.get("target"), far.get("comparison"), sigma)]
        crossing_data = ising.simulate(576, seed + 1, L=32, temperatures=np.round(np.arange(2.15, 2.41, 0.05), 3))
        grid, outputs = mean_output_curve(model, crossing_data)
        crossing = crossing_temperature(grid, [o.mean() for o in outputs])
        checks.append(HeldOutCheck("crossing_L32", crossing, metadata["metrics"]["crossing_L32"], 0.03))
        relative = targets.get("crossing_L32_relative_error", {})
        checks.append(HeldOutCheck("crossing_L32_relative_error", abs(crossing / ising.T_CRITICAL - 1),
                                   metadata["metrics"]["crossing_L32_relative_error"], 0.015,
                                   relative.get("target"), relative.get("comparison"), 0.005))
        return checks

    def render_figure(self, model, data, scan=None) -> bytes:
        """Figure of ``zoo evaluate ising-cnn --plot``: output against T for L = 16, 32, 64 and the crossing fit."""
        crossing = crossing_data(self, seed_offset=int(data.diagnostics["seed"]) - self.evaluation_seed,
                                 samples=self.figure_crossing_samples)
        curves = crossing_curves(model, crossing)
        return common.render_to_png(draw_crossing, curves, self.task_metrics(model, data, curves))


RECIPES = {"ising-cnn": IsingCNNRecipe()}


# ----------------------------------------------------------------------------- data

def labels(temperatures) -> np.ndarray:
    """1 for the ordered phase (T < T_c), 0 otherwise; (n, 1) float32."""
    return (np.asarray(temperatures) < ising.T_CRITICAL).astype("float32")[:, None]


def crossing_data(recipe, seed_offset: int = 0, samples: int | None = None, sizes: tuple | None = None) -> dict:
    """L -> samples on the fine grid across T_c, seed evaluation_seed + L (+ offset), for each L of ``sizes``
    (the recipe's crossing sizes by default)."""
    per_t = samples or recipe.crossing_samples
    n = per_t * len(recipe.crossing_temperatures)
    return {L: recipe.simulate(n, recipe.evaluation_seed + L + seed_offset, L=L, temperatures=recipe.crossing_temperatures)
            for L in sizes or recipe.crossing_sizes}


# ----------------------------------------------------------------------------- metrics

def predict_p_ordered(model, data: ising.IsingSamples) -> np.ndarray:
    """P(ordered) of every configuration in ``data``, (n,)."""
    return model.predict(data.spins, batch_size=512, verbose=0)[:, 0]


def accuracy_far_from_tc(p, temperatures, far: float) -> tuple:
    """Accuracy of ``p > 1/2`` for |T - T_c| > ``far``, and over every temperature."""
    correct = (p > 0.5) == (labels(temperatures)[:, 0] > 0.5)
    return float(correct[far_from_tc(temperatures, far)].mean()), float(correct.mean())


def far_from_tc(temperatures, far: float) -> np.ndarray:
    """Which temperatures lie more than ``far`` from T_c, where the accuracy target applies."""
    return np.abs(np.asarray(temperatures) - ising.T_CRITICAL) > far


def group_by_temperature(p, temperatures) -> tuple:
    """Distinct temperatures, and the outputs ``p`` grouped by temperature (list of arrays)."""
    grid = np.unique(temperatures)
    return grid, [p[temperatures == t] for t in grid]


def mean_output_curve(model, data: ising.IsingSamples) -> tuple:
    """Distinct temperatures, the model's outputs grouped by temperature (list of arrays)."""
    return group_by_temperature(predict_p_ordered(model, data), data.temperatures)


def crossing_curves(model, crossing: dict) -> dict:
    """L -> (temperatures, outputs grouped by temperature) on the crossing data sets."""
    return {L: mean_output_curve(model, samples) for L, samples in sorted(crossing.items())}


def crossing_temperature(grid, mean_output) -> float:
    """Where the mean output crosses 1/2, interpolated linearly; the crossing nearest T_c if several."""
    mean_output = np.asarray(mean_output) - 0.5
    changes = np.flatnonzero(np.sign(mean_output[:-1]) != np.sign(mean_output[1:]))
    if not changes.size:
        return float("nan")
    k = changes[np.argmin(np.abs(grid[changes] - ising.T_CRITICAL))]
    t0, t1, y0, y1 = grid[k], grid[k + 1], mean_output[k], mean_output[k + 1]
    return float(t0 + (t1 - t0) * y0 / (y0 - y1))


def crossing_with_error(grid, outputs, bootstrap: int, seed: int = 0) -> tuple:
    """Crossing temperature and its bootstrap standard error (resampling configurations at each T)."""
    rng = np.random.default_rng(seed)
    value = crossing_temperature(grid, [o.mean() for o in outputs])
    resampled = [crossing_temperature(grid, [rng.choice(o, o.size).mean() for o in outputs]) for _ in range(bootstrap)]
    return value, float(np.nanstd(resampled, ddof=1))


def finite_size_extrapolation(sizes, crossings, errors) -> dict:
    """Weighted fit T*(L) = T_c + a / L (nu = 1); T_c with its standard error from the fit covariance."""
    x = 1.0 / np.asarray(sizes, float)
    y, sigma = np.asarray(crossings, float), np.maximum(np.asarray(errors, float), 1e-6)
    design = np.stack([np.ones_like(x), x], axis=1) / sigma[:, None]
    covariance = np.linalg.inv(design.T @ design)
    (tc, slope) = covariance @ design.T @ (y / sigma)
    residual = (y - tc - slope * x) / sigma
    dof = max(len(x) - 2, 1)
    scale = max(1.0, float(residual @ residual) / dof)  # inflate the error when the points scatter more than their errors
    return {"tc": float(tc), "tc_error": float(np.sqrt(covariance[0, 0] * scale)), "slope": float(slope),
            "chi2_per_dof": float(residual @ residual) / dof}


# ----------------------------------------------------------------------------- training

def _shuffled(data: ising.IsingSamples, seed: int) -> tuple:
    order = np.random.default_rng(seed).permutation(len(data.spins))
    return data.spins[order].astype("float32"), labels(data.temperatures[order])


def finite_size_section(metrics: dict, recipe, diagnostics: dict) -> dict:
    rows = ["| L | T*(L), mean output = 1/2 | bootstrap error |", "|---|---|---|"]
    rows += [f"| {L} | {metrics[f'crossing_L{L}']:.4f} | {metrics[f'crossing_L{L}_error']:.4f} |" for L in recipe.crossing_sizes]
    text = "\n".join(rows) + (
        f"\n\nExtrapolated with T*(L) = T_c + a/L (nu = 1): **T_c = {metrics['tc_extrapolated']:.4f} +- "
        f"{metrics['tc_extrapolated_error']:.4f}** (chi^2/dof {metrics['fss_chi2_per_dof']:.2g}); exact "
        f"{ising.T_CRITICAL:.4f}, Carrasquilla & Melko {PAPER_TC}. Crossings from {recipe.crossing_samples} held-out "
        f"configurations per temperature on {len(recipe.crossing_temperatures)} temperatures in "
        f"[{recipe.crossing_temperatures[0]}, {recipe.crossing_temperatures[-1]}]."
        f"\n\nTraining data: Monte Carlo with {diagnostics['equilibration_sweeps']} equilibration sweeps and "
        f"{diagnostics['spacing_sweeps']} sweeps between stored configurations, from the largest measured "
        f"integrated autocorrelation time tau_int = {diagnostics['tau_int_max']:.2f} sweeps (of |m| and E; Wolff "
        f"cluster flips for |T - T_c| < {diagnostics['wolff_window']})."
    )
    return {"title": "Finite-size scaling of the crossing", "markdown": text}


def draw_crossing(axes, curves: dict, metrics: dict) -> None:
    for L, (grid, outputs) in sorted(curves.items()):
        axes[0].plot(grid, [o.mean() for o in outputs], "o-", ms=3, label=f"L = {L}")
    axes[0].axvline(ising.T_CRITICAL, color="k", ls="--", lw=1, label="exact T_c")
    axes[0].axhline(0.5, color="grey", lw=0.5)
    axes[0].set(xlabel="temperature T", ylabel="mean P(ordered)", title="ising-cnn on held-out data")
    axes[0].legend(fontsize=8)
    sizes = sorted(curves)
    x = 1.0 / np.asarray(sizes, float)
    axes[1].errorbar(x, [metrics[f"crossing_L{L}"] for L in sizes], [metrics[f"crossing_L{L}_error"] for L in sizes], fmt="o")
    line = np.linspace(0, x.max() * 1.1, 20)
    axes[1].plot(line, metrics["tc_extrapolated"] + metrics["fss_slope"] * line, "-",
                 label=f"T_c = {metrics['tc_extrapolated']:.4f} +- {metrics['tc_extrapolated_error']:.4f}")
    axes[1].axhline(ising.T_CRITICAL, color="k", ls="--", lw=1)
    axes[1].set(xlabel="1 / L", ylabel="crossing T*(L)", title="finite-size scaling")
    axes[1].legend(fontsize=8)
