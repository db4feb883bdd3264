"""Recipes of ``jet-cnn-w-vs-qcd`` and ``jet-maxout-w-vs-qcd``: Pythia 8 jets, images, training, ROC against baselines.

Data (training/simulators/jets.py): ``n_train`` W and ``n_train`` QCD jets from
seed 1, ``n_validation`` of each from seed 2, and the card's numbers from
``n_evaluation`` of each from ``evaluation_seed`` (1,000,003), which training
never sees. Generated files are cached in :func:`data_dir` (``$ZOO_DATA_DIR/jets``, else
``~/.cache/physics-model-zoo/jets``); a missing one is generated (about 60 jets/s on 2 cores).

Held-out evaluation of the network and of every baseline fitted on the training
jets (training/evaluation/taggers.py): ROC AUC and background rejection
1/eps_bkg at eps_sig = 50 %, with bootstrap errors, and the paper's ordering as
targets: the network rejects at least 1.2x as much background as the best
single mass window, and 20 % more than the mass + tau_21 likelihood ratio.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import keras
import numpy as np

import zoo
import zoo.artifacts
from training import loop
from training.evaluation import taggers
from training.recipes import common
from training.recipes.base import Evaluation, HeldOutCheck, Recipe
from training.simulators import jets as simulator
from zoo.models.jets import jet_images

TARGETS = (("rejection_ratio_vs_mass_window", ">=", 1.2), ("rejection_ratio_vs_mass_tau21", ">=", 1.2))
BASELINES = ("mass_window", "tau21", "mass_tau21", "fisher")
MASS_BINS = np.linspace(0.0, 300.0, 61)
TAU21_BINS = np.linspace(0.0, 1.0, 21)
IMAGE_BATCH = 4096


@dataclasses.dataclass(frozen=True, kw_only=True)
class JetTaggerRecipe(Recipe):
    """Hyperparameters of the jet taggers.

    Attributes:
        preset: the preset trained.
        n_train, n_validation, n_evaluation: jets per class (W and QCD) from seeds 1, 2 and evaluation_seed.
        epochs, batch_size, learning_rate, final_learning_rate: Adam on the binary cross-entropy, cosine decay.
        bootstrap: resamples of the held-out jets for the errors.
    """

    n_train: int = 40000
    n_validation: int = 5000
    n_evaluation: int = 20000
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    bootstrap: int = 200

    def simulate(self, n: int, seed: int, quiet: bool = False) -> dict:
        """``n`` W and ``n`` QCD jets from ``seed`` (read from the cache, generated when missing), with their images."""
        path = sample_path(n, seed)
        say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
        if path.exists():
            say(f"reading {2 * n} cached jets from {path} (ZOO_DATA_DIR moves the cache)")
        else:
            say(f"generating {2 * n} jets into {path} (ZOO_DATA_DIR moves the cache)")
            simulator.generate(path, n, seed, quiet=quiet)
        return with_images(simulator.read_jets(path))

    def fit(self, model, data, epochs, workdir, verbose, strategy) -> dict:
        train, validation = data
        optimizer = common.cosine_adam(self.learning_rate, self.final_learning_rate,
                                       epochs * (2 * self.n_train // self.batch_size))
        return loop.fit_resumable(model, optimizer, "binary_crossentropy", _inputs(train, self.train_seed),
                                  _inputs(validation, self.validation_seed), epochs, self.batch_size, workdir,
                                  verbose=verbose)

    def evaluate(self, model, data, history, workdir) -> Evaluation:
        """The network against the mass window, tau_21 and their Fisher combination, fitted on the training jets."""
        baselines = Baselines.fit(data[0])
        evaluation = self.simulate(self.n_evaluation, self.evaluation_seed)
        scores = tagger_scores(model, evaluation, baselines)  # once, for the metrics and the figure
        metrics = metrics_of_scores(scores, evaluation, self.bootstrap)
        return Evaluation(
            metrics, TARGETS,
            common.data_record(self, "pythia8 + fastjet (training/simulators/jets.py)",
                               simulator.JetSelection().to_json(),
                               {"processes": {"w": "q qbar' -> Z(nu nu) W(q qbar')", "qcd": "HardQCD:all"},
                                "pythia8mc": simulator.package_version("pythia8mc"),
                                "fastjet": simulator.package_version("fastjet")},
                               baselines=baselines.to_json()),
            render_evaluation(scores, evaluation), sections=[roc_section(metrics)])

    def task_metrics(self, model, data: dict, baselines=None, resamples: int | None = None) -> dict:
        """AUC and rejection at eps_sig = 50 % of the network and every baseline on ``data``, with bootstrap errors.

        ``baselines`` are fitted on training jets (by default those recorded with the preset)."""
        scores = tagger_scores(model, data, baselines or Baselines.of_model(self, model))
        return metrics_of_scores(scores, data, resamples or self.bootstrap)

    def held_out_checks(self, model, metadata: dict, seed: int) -> list:
        """The network's AUC and 50 % rejection on the committed fixture (300 jets per class, seed 31337).

        Tolerances: four bootstrap standard errors of this small sample (AUC ~0.01, rejection ~25 %
        of its value), so the check catches wrong weights or preprocessing, not fluctuations."""
        data = with_images(simulator.read_jets(fixture_path(seed)))
        signal = data["label"] == 1
        p = network_scores(model, data)
        sig, bkg = {"network": p[signal]}, {"network": p[~signal]}
        summary = lambda s, b: {"auc": taggers.auc(s["network"], b["network"]),
                                "rejection": taggers.rejection_at(s["network"], b["network"])}
        measured, errors = summary(sig, bkg), taggers.bootstrap(summary, sig, bkg, 200, seed)
        recorded = metadata["metrics"]
        return [
            HeldOutCheck("auc_network", measured["auc"], recorded["auc_network"], 4 * errors["auc"]),
            HeldOutCheck("rejection50_network", measured["rejection"], recorded["rejection50_network"],
                         4 * errors["rejection"]),
        ]

    def render_figure(self, model, data, scan=None) -> bytes:
        """Figure of ``zoo evaluate --plot``: ROC of the network and the baselines, mean images, output against mass."""
        return render_evaluation(tagger_scores(model, data, Baselines.of_model(self, model)), data)


RECIPES = {
    "jet-cnn-w-vs-qcd": JetTaggerRecipe(preset="jet-cnn-w-vs-qcd"),
    # The MaxOut network (800k weights in its first layer) overfits 80k jets after about 5 epochs: a first run of
    # 20 epochs reached its lowest validation loss, 0.423, at epoch 4 and 0.451 by epoch 11, so it trains for 5.
    "jet-maxout-w-vs-qcd": JetTaggerRecipe(preset="jet-maxout-w-vs-qcd", epochs=5),
}


# ----------------------------------------------------------------------------- data

def data_dir() -> Path:
    """Where generated jet samples are kept: ``$ZOO_DATA_DIR/jets`` when set, else the user's cache
    (``$XDG_CACHE_HOME/physics-model-zoo/jets``, by default ``~/.cache/physics-model-zoo/jets``)."""
    if os.environ.get("ZOO_DATA_DIR"):
        return Path(os.environ["ZOO_DATA_DIR"]) / "jets"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "physics-model-zoo" / "jets"


def sample_path(n: int, seed: int) -> Path:
    return data_dir() / f"jets-seed{seed}-n{n}.h5"


def with_images(data: dict) -> dict:
    """``data`` plus ``images``: the preset's preprocessing of every jet's constituents."""
    c = data["constituents"]
    data["images"] = np.concatenate([keras.ops.convert_to_numpy(jet_images(c[i:i + IMAGE_BATCH]))
                                     for i in range(0, len(c), IMAGE_BATCH)]) if len(c) else np.zeros((0, 25, 25))
    return data


def _by_class(data: dict, key: str) -> tuple:
    signal = data["label"] == 1
    return data[key][signal], data[key][~signal]


# ----------------------------------------------------------------------------- baselines and metrics

@dataclasses.dataclass
class Baselines:
    """The physics baselines, fitted on training jets; stored in the preset's metadata.json, so evaluating a
    shipped preset needs no training sample."""

    mass_centre: float
    mass_window: tuple
    mass_tau21: taggers.HistogramLikelihoodRatio
    fisher: taggers.FisherDiscriminant

    @classmethod
    def fit(cls, train: dict) -> Baselines:
        mass_w, mass_q = _by_class(train, "mass")
        window = taggers.best_mass_window(mass_w, mass_q)
        pairs = np.stack([train["mass"], train["tau21"]], axis=1)
        signal = train["label"] == 1
        likelihood = taggers.HistogramLikelihoodRatio([MASS_BINS, TAU21_BINS]).fit(pairs[signal], pairs[~signal])
        images_w, images_q = _by_class(train, "images")
        return cls(float(np.mean(window)), window, likelihood, taggers.FisherDiscriminant().fit(images_w, images_q))

    @classmethod
    def of_model(cls, recipe, model) -> Baselines:
        """The baselines recorded with the model's preset, or fitted on the training sample for a fresh model."""
        from zoo import artifacts

        info = model.__dict__.get("preset")
        folders = [info.folder, zoo.locate(info.base).folder if info.base else None] if info is not None else []
        for folder in filter(None, folders):  # its own folder, then the preset a fine-tuned folder descends from
            recorded = artifacts.read_metadata(folder).get("data", {}).get("baselines")
            if recorded and "fisher_weights" in recorded:
                return cls.from_json(recorded)
        return cls.fit(recipe.simulate(recipe.n_train, recipe.train_seed))

    def scores(self, data: dict) -> dict:
        """Baseline name -> score of every jet (larger: more W-like)."""
        return {
            "mass_window": -np.abs(data["mass"] - self.mass_centre),  # windows of growing width around the centre
            "tau21": -data["tau21"],
            "mass_tau21": self.mass_tau21.score(np.stack([data["mass"], data["tau21"]], axis=1)),
            "fisher": self.fisher.score(data["images"]),
        }

    def to_json(self) -> dict:
        return {"mass_window_train_50pct": list(self.mass_window), "mass_window_centre": self.mass_centre,
                "mass_bins": MASS_BINS.tolist(), "tau21_bins": TAU21_BINS.tolist(),
                "mass_tau21_likelihood_ratio": np.round(self.mass_tau21.ratio, 6).tolist(),
                "fisher_ridge": self.fisher.ridge, "fisher_weights": [float(f"{w:.7g}") for w in self.fisher.weights]}

    @classmethod
    def from_json(cls, record: dict) -> Baselines:
        likelihood = taggers.HistogramLikelihoodRatio([record["mass_bins"], record["tau21_bins"]])
        likelihood.ratio = np.asarray(record["mass_tau21_likelihood_ratio"])
        fisher = taggers.FisherDiscriminant(record["fisher_ridge"])
        fisher.weights = np.asarray(record["fisher_weights"])
        return cls(record["mass_window_centre"], tuple(record["mass_window_train_50pct"]), likelihood, fisher)


def network_scores(model, data: dict) -> np.ndarray:
    return model.predict(data["images"], batch_size=1024, verbose=0)[:, 0]


def _summary(signal: dict, background: dict) -> dict:
    out = {}
    for name in signal:
        out[f"auc_{name}"] = taggers.auc(signal[name], background[name])
        out[f"rejection50_{name}"] = taggers.rejection_at(signal[name], background[name])
    out["rejection_ratio_vs_mass_window"] = out["rejection50_network"] / out["rejection50_mass_window"]
    out["rejection_ratio_vs_mass_tau21"] = out["rejection50_network"] / out["rejection50_mass_tau21"]
    return out


def tagger_scores(model, data: dict, baselines: Baselines) -> dict:
    """Tagger name -> score of every jet in ``data``: the network and every baseline."""
    return {"network": network_scores(model, data), **baselines.scores(data)}


def metrics_of_scores(scores: dict, data: dict, resamples: int) -> dict:
    signal = data["label"] == 1
    sig, bkg = {k: v[signal] for k, v in scores.items()}, {k: v[~signal] for k, v in scores.items()}
    metrics = _summary(sig, bkg)
    errors = taggers.bootstrap(_summary, sig, bkg, resamples)
    metrics.update({f"{k}_error": v for k, v in errors.items()})
    metrics["n_jets_per_class"] = int(signal.sum())
    metrics["output_mass_correlation_qcd"] = float(np.corrcoef(scores["network"][~signal], data["mass"][~signal])[0, 1])
    return metrics


def fixture_path(seed: int) -> Path:
    return Path(__file__).resolve().parents[2] / "tests" / "fixtures" / f"jets-seed{seed}.h5"


# ----------------------------------------------------------------------------- training

def _inputs(data: dict, seed: int) -> tuple:
    order = np.random.default_rng(seed).permutation(len(data["label"]))
    return data["images"][order].astype("float32"), data["label"][order].astype("float32")[:, None]


LABELS = {"network": "network", "mass_window": "mass window", "tau21": "tau_21", "mass_tau21": "mass + tau_21",
          "fisher": "Fisher on images"}


def roc_section(metrics: dict) -> dict:
    rows = ["| tagger | ROC AUC | 1/eps_bkg at eps_sig = 50% |", "|---|---|---|"]
    for name in ("network", *BASELINES):
        rows.append(f"| {LABELS[name]} | {metrics[f'auc_{name}']:.4f} +- {metrics[f'auc_{name}_error']:.4f} | "
                    f"{metrics[f'rejection50_{name}']:.2f} +- {metrics[f'rejection50_{name}_error']:.2f} |")
    text = "\n".join(rows) + (
        f"\n\nOn {metrics['n_jets_per_class']} held-out jets per class; errors are bootstrap standard deviations. "
        f"The network rejects **{metrics['rejection_ratio_vs_mass_window']:.2f} +- "
        f"{metrics['rejection_ratio_vs_mass_window_error']:.2f}** times the background of the best mass window "
        f"and **{metrics['rejection_ratio_vs_mass_tau21']:.2f} +- "
        f"{metrics['rejection_ratio_vs_mass_tau21_error']:.2f}** times that of the mass + tau_21 likelihood ratio. "
        f"Correlation of the network output with the jet mass on QCD jets: "
        f"{metrics['output_mass_correlation_qcd']:.2f}."
    )
    return {"title": "ROC against the physics baselines", "markdown": text}


def draw_evaluation(axes, curves: dict, mean_images: tuple, profile: tuple) -> None:
    for name, (eps, rejection) in curves.items():
        axes[0].plot(eps, rejection, label=LABELS[name], lw=2 if name == "network" else 1)
    axes[0].set(yscale="log", xlabel="signal efficiency eps_sig", ylabel="background rejection 1/eps_bkg",
                title="ROC, held-out jets")
    axes[0].legend(fontsize=7)
    for ax, image, title in zip(axes[1:3], mean_images, ("average W jet image", "average QCD jet image")):
        shown = ax.imshow(np.log10(image + 1e-6), extent=(-1.25, 1.25, -1.25, 1.25), cmap="viridis", vmin=-4)
        ax.set(title=title, xlabel="eta' (rotated, from the leading subjet)", ylabel="phi' (rotated)")
        ax.figure.colorbar(shown, ax=ax, label="log10 mean pixel (L2-normalised p_T)", fraction=0.046)
    centres, mean_w, mean_q = profile
    axes[3].plot(centres, mean_w, "o-", ms=3, label="W jets")
    axes[3].plot(centres, mean_q, "o-", ms=3, label="QCD jets")
    axes[3].set(xlabel="trimmed jet mass [GeV]", ylabel="mean network output P(W)", title="output against mass")
    axes[3].legend(fontsize=7)


def render_evaluation(scores: dict, data: dict) -> bytes:
    """ROC curves, mean W and QCD images, and the network output against mass, from :func:`tagger_scores`."""
    signal = data["label"] == 1
    curves = {k: taggers.roc_curve(v[signal], v[~signal]) for k, v in scores.items()}
    mean_images = (data["images"][signal].mean(0), data["images"][~signal].mean(0))
    edges = np.linspace(0, 200, 21)
    centres = 0.5 * (edges[1:] + edges[:-1])
    bins = np.digitize(data["mass"], edges) - 1

    def profile(mask):
        return np.array([scores["network"][mask & (bins == b)].mean() if np.any(mask & (bins == b)) else np.nan
                         for b in range(len(centres))])

    return common.render_to_png(draw_evaluation, curves, mean_images, (centres, profile(signal), profile(~signal)),
                                panels=4, size=(16, 3.8))
