"""Shower-shape evaluation of calorimeter generators (CaloGAN, Paganini, de Oliveira, Nachman, PRL 120, 042003
and PRD 97, 014021 (2018)): simulator showers against generated ones.

A generator can match the average image and still be wrong shower by shower, so the
paper compares the *distributions* of physically meaningful summaries ("shower
shapes", :func:`shape_variables`): how the energy is shared between the three
layers (longitudinal development), how wide the shower is in each layer (lateral
development), how many cells fire (sparsity) and how concentrated the core is.
Each distribution is compared with the 1-D Wasserstein distance (in the
variable's units, and relative to the simulator's spread) and the
Kolmogorov-Smirnov statistic (:func:`compare_shapes`). A classifier two-sample
test (:func:`classifier_two_sample_auc`) looks at all 504 cells at once: an MLP
trained to tell simulator from generated showers has a held-out AUC of 0.5 when it
cannot. :func:`energy_response` checks the calorimeter response and resolution
per incident-energy bin.

Units: showers are dicts {"layer_0": (n, 3, 96), "layer_1": (n, 12, 12),
"layer_2": (n, 12, 6)} of cell energies in GeV (the simulator's MeV / 1000), rows
along x, columns along y as in :mod:`training.simulators.calorimeter`; incident
energies are (n,) in GeV; positions and widths in mm.

Empty layers and empty showers are legal (a pion may punch through layer 0, a
photon may leave layer 2 empty): every variable is then defined as 0 (a ratio with
a zero denominator is 0, a width or depth of nothing is 0), so no NaN or inf ever
enters a histogram or a distance.
"""
from __future__ import annotations

import numpy as np

from training.evaluation.taggers import auc, bootstrap
from training.simulators.calorimeter import CELL_SIZES_MM, HALF_WIDTH_MM, LAYER_SHAPES

LAYERS = tuple(f"layer_{i}" for i in range(len(LAYER_SHAPES)))
CELL_SCALE_GEV = 1e-3  # classifier features are log(1 + E_cell / 1 MeV)
MEAN_TOLERANCE = 0.02  # generated mean E_tot / E_incident within 2 % of the simulator's in every bin
RESOLUTION_TOLERANCE = 0.20  # generated sigma / mean within 20 % of the simulator's in every bin

# name -> axis label with units, in the order of the figures and of compare_shapes
VARIABLES = {
    **{f"E_{i}": f"$E_{i}$ [GeV]" for i in range(3)},
    "E_tot": r"$E_\mathrm{tot}$ [GeV]",
    **{f"f_{i}": f"$E_{i} / E_\\mathrm{{tot}}$" for i in range(3)},
    "E_tot/E_inc": r"$E_\mathrm{tot} / E_\mathrm{incident}$",
    "depth": r"shower depth $s_d$ [layers]",
    "depth_width": r"shower depth width $\sigma_{s_d}$ [layers]",
    "width_weighted": r"energy-weighted lateral width $\sum_i E_i \sigma_i / E_\mathrm{tot}$ [mm]",
    "width_0": r"lateral width $\sigma_0$ (y) [mm]",
    **{f"width_{i}": f"lateral width $\\sigma_{i}$ (x, y) [mm]" for i in (1, 2)},
    **{f"sparsity_{i}": f"sparsity of layer {i} (fraction of cells > 0)" for i in range(3)},
    **{f"E_max_{i}": f"leading cell energy, layer {i} [GeV]" for i in range(3)},
    **{f"max_ratio_{i}": f"$E_{{2nd}} / E_{{1st}}$ cell, layer {i}" for i in range(3)},
}


# ---------------------------------------------------------------------------- shape variables

def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (an empty layer or shower)."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0)


def cell_centres(layer: int) -> tuple:
    """(x, y) cell-centre coordinates in mm of one layer: rows along x, columns along y, over the +-240 mm window.

    The beam enters at x = y = 0, which is a cell *boundary* when the count is even (96, 12 and 6 cells) and
    the centre of the middle row of layer 0's 3 rows of 160 mm."""
    (nx, ny), (dx, dy) = LAYER_SHAPES[layer], CELL_SIZES_MM[layer]
    return -HALF_WIDTH_MM + dx * (np.arange(nx) + 0.5), -HALF_WIDTH_MM + dy * (np.arange(ny) + 0.5)


def _rms(profile, centres, total):
    """Energy-weighted RMS of ``centres`` under the (n, k) ``profile`` whose sums are ``total`` (0 when empty)."""
    mean = _ratio(profile @ centres, total)
    return _ratio((profile * (centres[None, :] - mean[:, None]) ** 2).sum(axis=1), total)


def lateral_width(image: np.ndarray, layer: int) -> np.ndarray:
    """Energy-weighted RMS spread of the cell centres (mm) of one layer's (n, nx, ny) images, 0 for an empty layer.

    Layer 0 (the pre-sampler-like strips, 96 x 5 mm along y, only 3 x 160 mm along x) is measured along y
    alone, the direction it resolves: that is where it separates a narrow electromagnetic core from a wide
    hadronic one. Layers 1 and 2 are measured in both directions, sigma = sqrt(var_x + var_y), the RMS radius
    about the shower axis, since their cells (40 x 40 and 40 x 80 mm) are comparable with the Moliere radius
    (~35 mm) in both directions. A shower in one cell has width 0; one split equally between two neighbouring
    cells has half the cell pitch. (The paper's code measures every layer along its rows, x.)"""
    x, y = cell_centres(layer)
    image = np.asarray(image, float)
    total = image.sum(axis=(1, 2))
    var_y = _rms(image.sum(axis=1), y, total)
    var_x = _rms(image.sum(axis=2), x, total) if layer > 0 else 0.0
    return np.sqrt(var_x + var_y)


def _leading_cells(image: np.ndarray) -> tuple:
    """(largest, second largest) cell energy of each (n, nx, ny) image."""
    flat = np.asarray(image, float).reshape(len(image), -1)
    top = np.partition(flat, flat.shape[1] - 2, axis=1)[:, -2:]
    return top[:, 1], top[:, 0]


def layer_energies(showers: dict) -> np.ndarray:
    """(n, 3) energy deposited in layers 0, 1, 2 (the units of the showers)."""
    return np.stack([np.asarray(showers[name], float).sum(axis=(1, 2)) for name in LAYERS], axis=1)


def shape_variables(showers: dict, incident) -> dict:
    """The shower shapes of :data:`VARIABLES` -> (n,) float arrays, from showers in GeV and incident energies (n,).

    * ``E_i``, ``E_tot``: energy in layer i and in all three (GeV). ``f_i = E_i / E_tot``: the longitudinal
      energy sharing; an electron deposits most in layer 1 (~ 6-28 X0), a pion leaks into layer 2 and beyond.
    * ``E_tot/E_inc``: the response (sampling fraction times containment; ~1 minus leakage here, because the
      CaloGAN readout sums lead and argon).
    * ``depth`` s_d = sum_i i E_i / E_tot and ``depth_width`` sigma_sd = sqrt(sum_i i^2 E_i / E_tot - s_d^2),
      with i = 0, 1, 2 the layer index: the energy-weighted mean and RMS layer, the paper's "shower depth" and
      "shower depth width" (its code, ``shower_depth_width``, is this longitudinal RMS).
    * ``width_i``: :func:`lateral_width` of layer i (mm), and ``width_weighted`` = sum_i E_i width_i / E_tot,
      the layers' lateral widths averaged with their energies (one number for the lateral size of the shower).
    * ``sparsity_i``: fraction of layer i's cells with energy > 0 (the paper's sparsity); a GAN with a ReLU
      output must learn exact zeros to get it right.
    * ``E_max_i``: the leading cell's energy (GeV), and ``max_ratio_i`` = E_2nd / E_1st in [0, 1], the
      second-largest over the largest cell: near 0 for a single narrow core, near 1 for two comparable
      maxima (photon pairs from pi0 -> gamma gamma in layer 0's 5 mm strips). The paper's
      E_ratio = (E_1st - E_2nd) / (E_1st + E_2nd) is (1 - r) / (1 + r) of it (same KS statistic). Here the
      beam enters on the boundary between two strips of layer 0 (and four cells of layer 1), so even a
      single positron shares its core between two cells: r ~ 0.9-1 in layers 0 and 1.

    Empty layers/showers give 0 for every ratio, width and depth (see the module docstring).
    """
    incident = np.asarray(incident, float).reshape(-1)
    images = [np.asarray(showers[name], float) for name in LAYERS]
    energy = layer_energies(showers)
    total = energy.sum(axis=1)
    index = np.arange(len(LAYERS), dtype=float)
    depth = _ratio(energy @ index, total)
    widths = np.stack([lateral_width(image, i) for i, image in enumerate(images)], axis=1)
    leading = [_leading_cells(image) for image in images]
    out = {f"E_{i}": energy[:, i] for i in range(3)}
    out["E_tot"] = total
    out.update({f"f_{i}": _ratio(energy[:, i], total) for i in range(3)})
    out["E_tot/E_inc"] = _ratio(total, incident)
    out["depth"] = depth
    out["depth_width"] = np.sqrt(np.maximum(_ratio(energy @ index ** 2, total) - depth ** 2, 0.0))
    out["width_weighted"] = _ratio((energy * widths).sum(axis=1), total)
    out.update({f"width_{i}": widths[:, i] for i in range(3)})
    out.update({f"sparsity_{i}": (image > 0).mean(axis=(1, 2)) for i, image in enumerate(images)})
    out.update({f"E_max_{i}": first for i, (first, _) in enumerate(leading)})
    out.update({f"max_ratio_{i}": _ratio(second, first) for i, (first, second) in enumerate(leading)})
    assert list(out) == list(VARIABLES)
    return out


# ---------------------------------------------------------------------------- 1-D distances

def wasserstein_1(a, b) -> float:
    """Exact earth mover's distance W1 = int_0^1 |F_a^-1(u) - F_b^-1(u)| du between two empirical samples.

    The empirical quantile functions are step functions with steps at u = k / n_a and k / n_b; on each
    interval between consecutive steps both are constant, so the integral is a finite sum. Unequal sizes are
    fine. W1 is in the units of the variable: the mean distance a unit of probability must be moved."""
    a, b = np.sort(np.asarray(a, float).ravel()), np.sort(np.asarray(b, float).ravel())
    steps = np.union1d(np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b))
    lower = np.concatenate([[0.0], steps[:-1]])
    middle = (lower + steps) / 2
    quantile = lambda x: x[np.minimum((middle * len(x)).astype(np.int64), len(x) - 1)]
    return float(np.sum(np.abs(quantile(a) - quantile(b)) * (steps - lower)))


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)| of the empirical CDFs (exact: the sup is
    attained at a data point). Scale-free, in [0, 1]; unlike W1 it is blind to how far apart the tails are."""
    a, b = np.sort(np.asarray(a, float).ravel()), np.sort(np.asarray(b, float).ravel())
    x = np.concatenate([a, b])
    cdf = lambda s: np.searchsorted(s, x, side="right") / len(s)
    return float(np.max(np.abs(cdf(a) - cdf(b))))


def compare_shapes(reference_showers: dict, generated_showers: dict, reference_incident, generated_incident) -> dict:
    """Every shape variable: name -> {"w1", "w1_over_std", "ks"} between reference (simulator) and generated.

    ``w1_over_std`` = W1 / std(reference) makes the distances comparable across variables (0.1 means the
    generated distribution is off by a tenth of the simulator's spread); it is 0 when both are the same
    constant and inf when the reference is constant and the generated sample is not."""
    return compare_variables(shape_variables(reference_showers, reference_incident),
                     shape_variables(generated_showers, generated_incident))


def compare_variables(reference_vars: dict, generated_vars: dict) -> dict:
    """:func:`compare_shapes` on already computed shape variables (the names of ``reference_vars``)."""
    out = {}
    for name, ref in reference_vars.items():
        w1, spread = wasserstein_1(ref, generated_vars[name]), float(np.std(ref))
        relative = w1 / spread if spread > 0 else (0.0 if w1 == 0 else float("inf"))
        out[name] = {"w1": w1, "w1_over_std": relative, "ks": ks_statistic(ref, generated_vars[name])}
    return out


# ---------------------------------------------------------------------------- classifier two-sample test

def cell_features(showers: dict, incident) -> np.ndarray:
    """(n, 505) float32 classifier inputs: log(1 + E_cell / 1 MeV) of the 504 cells and log(E_incident / GeV).

    Cell energies span ~7 decades (keV halo cells to tens of GeV in a core cell); the logarithm puts the
    halo, where generators usually fail, on the same footing as the core, and the 1 MeV scale keeps empty
    cells at exactly 0 and makes sub-MeV cells (below any realistic noise threshold) nearly indistinguishable
    from 0, so the test is not won on numerical dust. The incident energy makes it a test of the
    *conditional* distribution p(shower | E): a generator must get the energy dependence right."""
    cells = [np.asarray(showers[name], float).reshape(len(showers[name]), -1) for name in LAYERS]
    energy = np.log(np.asarray(incident, float).reshape(-1, 1))
    return np.concatenate([np.log1p(np.maximum(np.concatenate(cells, axis=1), 0.0) / CELL_SCALE_GEV), energy],
                          axis=1).astype(np.float32)


def _halves(n: int, rng) -> tuple:
    """A random split of range(n) into a training half and a held-out half."""
    order = rng.permutation(n)
    return order[:n // 2], order[n // 2:]


def classifier_two_sample_auc(reference: dict, generated: dict, reference_incident, generated_incident,
                              seed: int = 0, epochs: int = 10, hidden=(64, 64), batch_size: int = 128,
                              resamples: int = 200) -> dict:
    """Held-out AUC of a small MLP trained to tell reference (label 1) from generated (label 0) showers.

    Half of each sample (a seeded random split) trains the MLP (features :func:`cell_features`, standardised
    with the training half's mean and spread; classes weighted to equal total weight; Adam, binary
    cross-entropy); the other half is scored. AUC = 0.5 means the classifier found nothing that tells the two
    apart, 1 that they are disjoint. ``auc_error`` is the bootstrap standard error over the held-out
    showers (:func:`training.evaluation.taggers.bootstrap`), ~ sqrt((n_1 + n_2 + 1) / (12 n_1 n_2)) at 0.5;
    it does not include the spread from retraining. The same ``seed`` gives the same number.
    Returns {"auc", "auc_error", "n_train", "n_test"}.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x_ref, x_gen = cell_features(reference, reference_incident), cell_features(generated, generated_incident)
    (ref_train, ref_test), (gen_train, gen_test) = _halves(len(x_ref), rng), _halves(len(x_gen), rng)
    x_train = np.concatenate([x_ref[ref_train], x_gen[gen_train]])
    y_train = np.concatenate([np.ones(len(ref_train)), np.zeros(len(gen_train))]).astype(np.float32)
    weights = np.where(y_train == 1, len(x_train) / (2 * len(ref_train)), len(x_train) / (2 * len(gen_train)))
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    standard = lambda x: ((x - mean) / scale).astype(np.float32)
    model = keras.Sequential([keras.Input((x_train.shape[1],)),
                              *[keras.layers.Dense(width, activation="relu") for width in hidden],
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(standard(x_train), y_train, sample_weight=weights.astype(np.float32), epochs=epochs,
              batch_size=batch_size, shuffle=True, verbose=0)
    score = lambda x: model.predict(standard(x), batch_size=1024, verbose=0).reshape(-1)
    s_ref, s_gen = score(x_ref[ref_test]), score(x_gen[gen_test])
    error = bootstrap(lambda s, b: {"auc": auc(s["score"], b["score"])}, {"score": s_ref}, {"score": s_gen},
                      resamples=resamples, seed=seed)
    return {"auc": auc(s_ref, s_gen), "auc_error": error["auc"], "n_train": len(x_train),
            "n_test": int(len(s_ref) + len(s_gen))}


# ---------------------------------------------------------------------------- energy response

def energy_response(showers: dict, incident, bins) -> dict:
    """Response R = E_tot / E_incident per incident-energy bin (``bins``: edges in GeV, left-closed).

    Returns arrays over bins: "edges", "n", "mean" <R> with "mean_error" = s / sqrt(n), and the relative
    resolution "resolution" = s / <R> (s the sample standard deviation) with "resolution_error" from the
    delta method with the sample's own third and fourth central moments (no Gaussian assumption: pion
    responses are skewed and their leakage tails heavy):

        var(s) = (m4 - s^4) / (4 s^2 n),  cov(<R>, s) = m3 / (2 s n),
        var(s / <R>) = var(s) / <R>^2 + s^2 var(<R>) / <R>^4 - 2 s cov(<R>, s) / <R>^3.

    Without sampling fluctuations the simulator's positron resolution is ~0.1-0.4 % and set by rare leakage
    tails, so s (and its error) is noisy: a few hundred showers per bin cannot test a 20 % resolution target.
    Bins with fewer than 2 showers give NaN (nothing to measure) and are skipped by :func:`compare_response`.
    """
    incident = np.asarray(incident, float).reshape(-1)
    response = _ratio(layer_energies(showers).sum(axis=1), incident)
    edges = np.asarray(bins, float)
    which = np.searchsorted(edges, incident, side="right") - 1
    stats = {k: np.full(len(edges) - 1, np.nan) for k in ("mean", "mean_error", "resolution", "resolution_error")}
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for k in range(len(edges) - 1):
        r = response[which == k]
        counts[k] = n = len(r)
        if n < 2:
            continue
        mean, s = r.mean(), r.std(ddof=1)
        m3, m4 = np.mean((r - mean) ** 3), np.mean((r - mean) ** 4)
        var_s = max(m4 - s ** 4, 0.0) / (4 * s ** 2 * n) if s > 0 else 0.0
        cov = m3 / (2 * s * n) if s > 0 else 0.0
        var_res = var_s / mean ** 2 + s ** 2 * (s ** 2 / n) / mean ** 4 - 2 * s * cov / mean ** 3 if mean > 0 else 0.0
        stats["mean"][k], stats["mean_error"][k] = mean, s / np.sqrt(n)
        stats["resolution"][k] = _ratio(s, mean)
        stats["resolution_error"][k] = np.sqrt(max(var_res, 0.0))
    return {"edges": edges, "n": counts, **stats}


def _quotient(top, top_error, bottom, bottom_error) -> tuple:
    """top / bottom and its error for independent top and bottom (relative errors in quadrature)."""
    q = top / bottom
    return q, np.abs(q) * np.sqrt((top_error / top) ** 2 + (bottom_error / bottom) ** 2)


def compare_response(reference: dict, generated: dict) -> dict:
    """Per-bin generated / reference ratios of the mean response and of the resolution (two
    :func:`energy_response` results on the same bins), their errors, and the worst |ratio - 1| over the bins
    where both are measured. "mean_ok" / "resolution_ok": worst deviations within :data:`MEAN_TOLERANCE`
    (2 %) and :data:`RESOLUTION_TOLERANCE` (20 %), the CaloGAN model card's targets."""
    if not np.array_equal(reference["edges"], generated["edges"]):
        raise ValueError("compare_response needs two energy_response results on the same bins")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean, mean_error = _quotient(generated["mean"], generated["mean_error"], reference["mean"],
                                     reference["mean_error"])
        res, res_error = _quotient(generated["resolution"], generated["resolution_error"], reference["resolution"],
                                   reference["resolution_error"])
    out = {"edges": reference["edges"], "mean_ratio": mean, "mean_ratio_error": mean_error,
           "resolution_ratio": res, "resolution_ratio_error": res_error}
    out["worst_mean_deviation"], out["worst_mean_deviation_error"] = _worst_deviation(mean, mean_error)
    out["worst_resolution_deviation"], out["worst_resolution_deviation_error"] = _worst_deviation(res, res_error)
    out["mean_ok"] = out["worst_mean_deviation"] <= MEAN_TOLERANCE
    out["resolution_ok"] = out["worst_resolution_deviation"] <= RESOLUTION_TOLERANCE
    return out


def _worst_deviation(ratio, error) -> tuple:
    """max |ratio - 1| over the measured bins, and the statistical error of the ratio in that bin (0, 0 when
    no bin is measured)."""
    measured = np.flatnonzero(np.isfinite(ratio))
    if not measured.size:
        return 0.0, 0.0
    worst = measured[np.argmax(np.abs(ratio[measured] - 1.0))]
    return float(abs(ratio[worst] - 1.0)), float(error[worst])


# ---------------------------------------------------------------------------- figures

def _shared_bins(a, b, bins: int = 40) -> np.ndarray:
    """Common histogram edges spanning the 0.5-99.5 % quantiles of both samples pooled (widened if constant)."""
    low, high = np.quantile(np.concatenate([a, b]), [0.005, 0.995])
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def draw_shape_histograms(axes, reference_vars: dict, generated_vars: dict, distances: dict,
                          labels=("simulator", "generated")) -> None:
    """One panel per variable of ``reference_vars`` (as many as ``axes`` holds): both distributions on shared
    bins (values outside the pooled 0.5-99.5 % range are put in the edge bins), fraction of showers per bin,
    W1 / std(reference) and KS in the title, the variable's axis label from :data:`VARIABLES`."""
    for ax, name in zip(np.ravel(axes), reference_vars):
        ref, gen = np.asarray(reference_vars[name], float), np.asarray(generated_vars[name], float)
        edges = _shared_bins(ref, gen)
        for values, label, style in ((ref, labels[0], {"histtype": "stepfilled", "alpha": 0.4}),
                                     (gen, labels[1], {"histtype": "step", "linewidth": 1.5})):
            ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, weights=np.full(len(values), 1 / len(values)),
                    label=label, **style)
        d = distances[name]
        ax.set_title(f"W1/std = {d['w1_over_std']:.3g}, KS = {d['ks']:.3f}", fontsize=8)
        ax.set_xlabel(VARIABLES.get(name, name), fontsize=8)
        ax.set_ylabel("fraction of showers", fontsize=8)
        ax.tick_params(labelsize=7)
    np.ravel(axes)[0].legend(fontsize=7)


def draw_average_images(axes, reference: dict, generated: dict, labels=("simulator", "generated")) -> None:
    """Mean cell energy per layer: ``axes`` holds 6 panels, the reference's layers 0, 1, 2 then the generated
    ones. Each image covers the 480 x 480 mm readout window (y across, x up), so the cell sizes are drawn to
    scale; a log colour scale shared by both images of a layer, from its smallest non-zero mean cell to its
    largest (cells never hit stay blank)."""
    import matplotlib.colors

    axes = np.ravel(axes)
    for i, name in enumerate(LAYERS):
        means = [np.asarray(showers[name], float).mean(axis=0) for showers in (reference, generated)]
        positive = np.concatenate([m[m > 0] for m in means])
        norm = matplotlib.colors.LogNorm(positive.min(), positive.max()) if positive.size else None
        for j, (mean, label) in enumerate(zip(means, labels)):
            ax = axes[3 * j + i]
            image = ax.imshow(np.ma.masked_less_equal(mean, 0), origin="lower", norm=norm, aspect="equal",
                              interpolation="nearest", extent=(-HALF_WIDTH_MM, HALF_WIDTH_MM) * 2)
            ax.set_title(f"{label}, layer {i}", fontsize=9)
            ax.set_xlabel("y [mm]", fontsize=8)
            ax.set_ylabel("x [mm]", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("mean cell energy [GeV]",
                                                                                 fontsize=7)


# ---------------------------------------------------------------------------- the CaloChallenge protocol
#
# The Fast Calorimeter Simulation Challenge 2022 (Krause et al., arXiv:2410.21611) judges a surrogate by
# the same measures for every entry: histograms of high-level features with their separation power, a
# deep classifier on low-level (cells over E_inc) and on high-level inputs (AUC and the JSD estimate from
# its log posterior), and the Frechet and kernel physics distances of Kansal et al. (arXiv:2211.10295).
# Its geometries are voxelised cylinders in (z, alpha, r); here the same definitions are carried over to
# CaloGAN's three rectangular layers: centroids and widths along x and y instead of eta and phi.

CHALLENGE_HIDDEN = (2048, 2048)  # the challenge's DNN: two hidden layers of 2048, ReLU, dropout 0.2
CHALLENGE_DROPOUT = 0.2
CHALLENGE_LEARNING_RATE = 2e-4
CHALLENGE_BATCH = 1000
CHALLENGE_SPLIT = (0.6, 0.2, 0.2)  # train, validation (the epoch kept), test (the AUC)
ENERGY_FLOOR = 1e-8  # the challenge's offset inside log10(E_layer + 1e-8) of the high-level classifier


def high_level_features(showers: dict, incident) -> dict:
    """The challenge's high-level features on CaloGAN's geometry -> name: (n,) float arrays.

    Per layer i: ``E_i/E_inc`` (the longitudinal profile over the incident energy); the energy-weighted
    centroid ``centroid_x_i``, ``centroid_y_i`` and width ``width_x_i``, ``width_y_i`` (mm; layer 0's three
    160 mm rows resolve x only coarsely); ``sparsity_i``, the fraction of cells with energy; and
    ``max_share_i``, the largest cell's share of the layer. And ``E_tot/E_inc``. An empty layer gives 0
    for every ratio, centroid and width (see the module docstring)."""
    incident = np.asarray(incident, float).reshape(-1)
    out = {}
    for i, name in enumerate(LAYERS):
        image = np.asarray(showers[name], float)
        energy = image.sum(axis=(1, 2))
        x, y = cell_centres(i)
        out[f"E_{i}/E_inc"] = _ratio(energy, incident)
        for axis, centres, profile in (("x", x, image.sum(axis=2)), ("y", y, image.sum(axis=1))):
            out[f"centroid_{axis}_{i}"] = _ratio(profile @ centres, energy)
            out[f"width_{axis}_{i}"] = np.sqrt(_rms(profile, centres, energy))
        out[f"sparsity_{i}"] = (image > 0).mean(axis=(1, 2))
        out[f"max_share_{i}"] = _ratio(image.reshape(len(image), -1).max(axis=1), energy)
    out["E_tot/E_inc"] = _ratio(layer_energies(showers).sum(axis=1), incident)
    return out


def separation_power(reference, generated, bins: int = 30) -> float:
    """The challenge's separation power (1/2) sum_k (p_k - q_k)^2 / (p_k + q_k) of two normalised histograms on
    shared bins (the reference's 0.5-99.5 % range widened to both samples' quantiles, values outside in the
    edge bins): 0 for identical histograms, 1 for disjoint ones. A triangular discriminator, i.e. a
    chi^2-like distance that is bounded."""
    reference, generated = np.asarray(reference, float), np.asarray(generated, float)
    edges = _shared_bins(reference, generated, bins)
    p, q = (np.histogram(np.clip(v, edges[0], edges[-1]), edges)[0] / len(v) for v in (reference, generated))
    total = p + q
    return float(0.5 * np.sum(np.divide((p - q) ** 2, total, out=np.zeros_like(p), where=total > 0)))


def low_level_inputs(showers: dict, incident) -> np.ndarray:
    """(n, 505) float32: log10(E_inc / GeV) and the 504 cells over E_inc (the challenge's low-level input)."""
    incident = np.asarray(incident, float).reshape(-1, 1)
    cells = np.concatenate([np.asarray(showers[name], float).reshape(len(incident), -1) for name in LAYERS], axis=1)
    return np.concatenate([np.log10(incident), cells / incident], axis=1).astype(np.float32)


def high_level_inputs(features: dict, incident) -> np.ndarray:
    """(n, 23) float32: log10(E_inc), and the :func:`high_level_features` with every energy fraction as
    log10(fraction + 1e-8), the challenge's high-level classifier input on this geometry."""
    columns = [np.log10(np.asarray(incident, float).reshape(-1))]
    columns += [np.log10(v + ENERGY_FLOOR) if name.startswith("E_") else v for name, v in features.items()]
    return np.stack(columns, axis=1).astype(np.float32)


def _split(n: int, rng) -> tuple:
    """Train, validation and test rows of a seeded permutation of range(n), in :data:`CHALLENGE_SPLIT`."""
    order = rng.permutation(n)
    first, second = int(CHALLENGE_SPLIT[0] * n), int((CHALLENGE_SPLIT[0] + CHALLENGE_SPLIT[1]) * n)
    return order[:first], order[first:second], order[second:]


def challenge_classifier(reference_inputs, generated_inputs, seed: int = 0, epochs: int = 20,
                         resamples: int = 200) -> dict:
    """The challenge's DNN classifier between two samples of the same inputs (rows of a 2-D array).

    Each sample is split 60 / 20 / 20 (seeded); inputs are standardised with the training rows' mean and
    spread; the network (:data:`CHALLENGE_HIDDEN`, ReLU, dropout 0.2, Adam 2e-4, batch 1000, classes weighted
    equally) trains for ``epochs`` and keeps the epoch of lowest validation loss; the test rows give:

    * ``auc`` and ``auc_error`` (bootstrap over the test rows; retraining spread not included);
    * ``jsd``: the challenge's JSD estimate 1 + (1/2)(<log2 p> over reference + <log2 (1 - p)> over generated),
      p the classifier's probability of "reference". 0 for a classifier that cannot tell (p = 1/2), 1 for
      a perfect one; uncalibrated here (the challenge calibrates p on the validation rows first), so
      it can fall below 0 when the classifier overfits, which says the same: it found nothing.

    ``epochs_run`` and ``best_epoch`` record the training."""
    import keras

    reference_inputs, generated_inputs = np.asarray(reference_inputs, np.float32), np.asarray(generated_inputs, np.float32)
    if reference_inputs.ndim != 2 or reference_inputs.shape[1:] != generated_inputs.shape[1:]:
        raise ValueError(f"challenge_classifier needs two (n, d) arrays of the same d; received shapes "
                         f"{reference_inputs.shape} and {generated_inputs.shape}.")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    parts = [(x, _split(len(x), rng)) for x in (reference_inputs, generated_inputs)]
    rows = lambda k: [x[split[k]] for x, split in parts]  # (reference rows, generated rows) of part k
    train, validation, test = rows(0), rows(1), rows(2)
    x_train = np.concatenate(train)
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    standard = lambda x: ((x - mean) / scale).astype(np.float32)
    labelled = lambda pair: (standard(np.concatenate(pair)),
                             np.concatenate([np.ones(len(pair[0])), np.zeros(len(pair[1]))]).astype(np.float32),
                             np.concatenate([np.full(len(pair[0]), 0.5 / len(pair[0])),
                                             np.full(len(pair[1]), 0.5 / len(pair[1]))]) * len(pair[0]) * 2)
    model = keras.Sequential([keras.Input((x_train.shape[1],))] + [
        layer for width in CHALLENGE_HIDDEN for layer in (keras.layers.Dense(width, activation="relu"),
                                                          keras.layers.Dropout(CHALLENGE_DROPOUT))]
        + [keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(CHALLENGE_LEARNING_RATE),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    keep_best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)
    x, y, weights = labelled(train)
    history = model.fit(x, y, sample_weight=weights, validation_data=labelled(validation), epochs=epochs,
                        batch_size=CHALLENGE_BATCH, shuffle=True, verbose=0, callbacks=[keep_best])
    logit = lambda x: model.predict(standard(x), batch_size=4096, verbose=0).reshape(-1).astype(float)
    s_ref, s_gen = logit(test[0]), logit(test[1])
    # log2 p = -log2(1 + e^-s) and log2 (1 - p) = -log2(1 + e^s), without overflow
    log2_p, log2_not_p = -np.logaddexp(0, -s_ref) / np.log(2), -np.logaddexp(0, s_gen) / np.log(2)
    jsd_error = 0.5 * np.hypot(log2_p.std(ddof=1) / np.sqrt(len(log2_p)), log2_not_p.std(ddof=1) / np.sqrt(len(log2_not_p)))
    error = bootstrap(lambda s, b: {"auc": auc(s["score"], b["score"])}, {"score": s_ref}, {"score": s_gen},
                      resamples=resamples, seed=seed)
    losses = history.history["val_loss"]
    return {"auc": auc(s_ref, s_gen), "auc_error": error["auc"],
            "jsd": float(1 + 0.5 * (log2_p.mean() + log2_not_p.mean())), "jsd_error": float(jsd_error),
            "n_test": int(len(s_ref) + len(s_gen)), "epochs_run": len(losses), "best_epoch": int(np.argmin(losses)) + 1}


def _standardised(reference: np.ndarray, generated: np.ndarray) -> tuple:
    """Both samples in units of the reference's per-feature mean and spread (constant features dropped)."""
    mean, scale = reference.mean(axis=0), reference.std(axis=0)
    keep = scale > 0
    return (reference[:, keep] - mean[keep]) / scale[keep], (generated[:, keep] - mean[keep]) / scale[keep]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of the Gaussians with the samples' means and
    covariances (rows are samples). The matrix square root is of C_a^(1/2) C_b C_a^(1/2), which is symmetric
    and has the same trace; both roots come from eigendecompositions of symmetric matrices, so a singular
    covariance (features that are functions of each other) gives no complex round-off."""
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sum(np.sqrt(eigenvalues)))


def _extrapolated_frechet(reference, generated, sizes, batches: int, rng) -> float:
    """The intercept at 1 / N = 0 of the least-squares line through the mean Frechet distance of ``batches``
    random subsets (without replacement) of N rows of each sample, for each N in ``sizes``."""
    means = [np.mean([frechet_distance(reference[rng.choice(len(reference), n, replace=False)],
                                       generated[rng.choice(len(generated), n, replace=False)])
                      for _ in range(batches)]) for n in sizes]
    _, intercept = np.polyfit(1.0 / np.asarray(sizes, float), means, 1)
    return float(intercept)


def frechet_physics_distance(reference, generated, seed: int = 0, min_samples: int = 2000, points: int = 6,
                             batches: int = 10, resamples: int = 20) -> dict:
    """FPD of Kansal et al.: the Frechet distance between the standardised feature samples, extrapolated to
    infinitely many samples.

    The finite-sample Frechet distance is biased upwards by ~ c / N; it is measured on ``batches`` random
    subsets of N rows for ``points`` values of N from ``min_samples`` to the smaller sample, and a straight
    line in 1 / N gives the intercept ``fpd``. ``fpd_error`` is the spread of that whole procedure over
    ``resamples`` bootstrap resamples of both samples (the subsets of one sample are correlated, so their
    own spread would understate it). Two samples of one distribution give fpd ~ 0 within its error (it
    can be slightly negative)."""
    reference, generated = _standardised(np.asarray(reference, float), np.asarray(generated, float))
    rng = np.random.default_rng(seed)
    largest = min(len(reference), len(generated))
    sizes = np.unique(np.linspace(min(min_samples, largest), largest, points).astype(int))
    fpd = _extrapolated_frechet(reference, generated, sizes, batches, rng)
    resampled = [_extrapolated_frechet(reference[rng.integers(0, len(reference), len(reference))],
                                       generated[rng.integers(0, len(generated), len(generated))],
                                       sizes, max(2, batches // 5), rng) for _ in range(resamples)]
    return {"fpd": fpd, "fpd_error": float(np.std(resampled, ddof=1))}


def kernel_physics_distance(reference, generated, seed: int = 0, batch_size: int = 1000, batches: int = 10) -> dict:
    """KPD of Kansal et al.: the unbiased estimate of the squared maximum mean discrepancy with the cubic
    polynomial kernel k(x, y) = (x . y / d + 1)^3 on the standardised features, averaged over ``batches``
    subsets of ``batch_size`` rows of each sample; ``kpd_error`` is the standard error of that mean. The
    estimator is unbiased, so two samples of one distribution give 0 within the error (and it can be
    negative)."""
    reference, generated = _standardised(np.asarray(reference, float), np.asarray(generated, float))
    rng = np.random.default_rng(seed)
    n = min(batch_size, len(reference), len(generated))
    kernel = lambda x, y: (x @ y.T / x.shape[1] + 1.0) ** 3
    off_diagonal = lambda k: (k.sum() - np.trace(k)) / (n * (n - 1))
    values = []
    for _ in range(batches):
        x = reference[rng.choice(len(reference), n, replace=False)]
        y = generated[rng.choice(len(generated), n, replace=False)]
        values.append(off_diagonal(kernel(x, x)) + off_diagonal(kernel(y, y)) - 2 * kernel(x, y).mean())
    return {"kpd": float(np.mean(values)), "kpd_error": float(np.std(values, ddof=1) / np.sqrt(batches))}


def challenge_metrics(reference: dict, generated: dict, reference_incident, generated_incident, seed: int = 0,
                      epochs: int = 20) -> dict:
    """Every measure of the protocol between ``reference`` and ``generated`` showers (dicts of layers in GeV):

    ``separation/NAME`` for each :func:`high_level_features` histogram; ``auc_low``, ``auc_high``, ``jsd_low``
    and ``jsd_high`` (each with ``_error``) of :func:`challenge_classifier` on low- and high-level inputs;
    ``fpd`` and ``kpd`` (with ``_error``) on the high-level features."""
    ref_features = high_level_features(reference, reference_incident)
    gen_features = high_level_features(generated, generated_incident)
    out = {f"separation/{name}": separation_power(ref_features[name], gen_features[name]) for name in ref_features}
    inputs = {"low": (low_level_inputs(reference, reference_incident), low_level_inputs(generated, generated_incident)),
              "high": (high_level_inputs(ref_features, reference_incident),
                       high_level_inputs(gen_features, generated_incident))}
    for level, (ref_x, gen_x) in inputs.items():
        result = challenge_classifier(ref_x, gen_x, seed=seed, epochs=epochs)
        out.update({f"{key}_{level}{suffix}": result[key + suffix] for key in ("auc", "jsd") for suffix in ("", "_error")})
    ref_table, gen_table = (np.stack(list(f.values()), axis=1) for f in (ref_features, gen_features))
    out.update(frechet_physics_distance(ref_table, gen_table, seed=seed))
    out.update(kernel_physics_distance(ref_table, gen_table, seed=seed))
    return out
