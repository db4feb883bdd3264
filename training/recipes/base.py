"""The one train-and-evaluate skeleton every preset's recipe runs.

A recipe is a frozen dataclass of hyperparameters (a subclass of :class:`Recipe`)
whose methods are the family's hooks. :meth:`Recipe.train_and_evaluate` is the
only place that seeds the run, picks the distribution strategy and precision,
writes the run's metadata and figure, and writes and verifies the preset folder;
the families supply what differs:

- ``simulate(n, seed)``: held-out data from the family's simulator (``zoo evaluate``
  and the evaluation set use it too);
- ``training_data()``: what ``fit`` trains on (by default training and validation
  samples from the recipe's two training seeds);
- ``build_model()``: the untrained model (by default the registered preset's architecture);
- ``fit(model, data, epochs, workdir, verbose)`` -> history: resumable training;
- ``evaluate(model, data, history, workdir)`` -> :class:`Evaluation`: metrics on
  data from ``evaluation_seed``, the card's sections and the figure;
- ``task_metrics``, ``render_figure``, ``held_out_checks``: ``zoo evaluate`` and the
  registry-wide quality test.

Strategies and precisions are refused here when a recipe cannot use them, so no
recipe can silently ignore a flag: a recipe declares ``precisions`` (float32 alone
unless its training is known to work in mixed precision) and ``custom_loop``
(whether it trains under ``multiworker`` with :func:`training.distribute.train_custom_loop`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import keras

import zoo
import zoo.artifacts
from training import distribute
from training.recipes import common


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What a trained model measured on held-out data, for metadata.json, the card and the figure.

    Attributes:
        metrics: metric name -> value (the card's numbers).
        targets: (metric, comparison, value) rows; the card reports each as met or missed.
        data: the "data" entry of metadata.json (:func:`common.data_record`).
        sections: the card's extra sections ({"title", "markdown"}).
        figure: PNG bytes of ``evaluation.png``.
        training: entries added to the run's training record.
        extra: top-level entries of metadata.json (a family's own records).
        files: further files shipped beside the model (name -> bytes): the scan's members, whose held-out
            errors ``zoo evaluate`` measures again (:meth:`Recipe.scan_metrics`).
    """

    metrics: dict
    targets: tuple
    data: dict
    figure: bytes
    sections: list = dataclasses.field(default_factory=list)
    training: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe(common.Seeds):
    """Hyperparameters every recipe has; a family's recipe adds its own fields and hooks.

    Attributes:
        preset: the preset this recipe makes (``zoo train PRESET``).
        n_train, n_validation, n_evaluation: sample sizes from the training, validation
            and evaluation seeds.
        epochs, batch_size: of the training run (``zoo train --epochs`` overrides epochs).
        learning_rate, final_learning_rate: Adam's rate, decaying along a cosine to the final one.
    """

    preset: str
    n_train: int = 0
    n_validation: int = 0
    n_evaluation: int = 0
    epochs: int = 1
    batch_size: int = 128
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5

    precisions: ClassVar[tuple] = ("float32",)
    custom_loop: ClassVar[bool] = False
    minimum_samples: ClassVar[int] = 2  # the smallest sample task_metrics is defined on (zoo evaluate refuses less)
    not_measured_by_evaluate: ClassVar[dict] = {}  # card metric -> why zoo evaluate cannot measure it

    # ------------------------------------------------------------------ the skeleton

    def train_and_evaluate(self, workdir, epochs: int | None = None, verbose: int = 2, strategy: str = "cpu",
                           precision: str = "float32") -> dict:
        """Train in ``workdir`` (resuming from its checkpoints), evaluate on held-out seeds, and write and verify
        the preset folder ``workdir/artifact``. Returns its metadata.

        ``strategy`` is a name of :func:`training.distribute.strategy_for` (tf.distribute under TensorFlow,
        keras.distribution data parallelism under JAX: the Keras backend is chosen by ``KERAS_BACKEND`` before
        Keras is imported, which ``zoo train --backend`` does); ``precision`` a Keras dtype policy the recipe
        declares. The shipped model computes in float32 and exports under TensorFlow from its weights file,
        whichever backend trained it.
        """
        recipe = self if epochs is None else dataclasses.replace(self, epochs=epochs)
        workdir = Path(workdir)
        tf_strategy = recipe.distribution(strategy, precision)
        keras.utils.set_random_seed(recipe.train_seed)
        data = recipe.training_data()
        keras.utils.set_random_seed(recipe.train_seed)
        keras.mixed_precision.set_global_policy(precision)
        try:
            with tf_strategy.scope():
                model = recipe.build_model()
                history = recipe.fit(model, data, recipe.epochs, workdir, verbose, tf_strategy)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        if precision != "float32":
            model = zoo.artifacts.inference_copy(model)
        evaluation = recipe.evaluate(model, data, history, workdir)
        return recipe.write_preset(model, evaluation, history, workdir, training={
            "backend": keras.backend.backend(), "strategy": strategy, "replicas": tf_strategy.num_replicas_in_sync,
            "precision": precision})

    def write_preset(self, model, evaluation: Evaluation, history: dict, workdir, training: dict | None = None) -> dict:
        """Write ``model`` with its metadata and figure to ``workdir/artifact``, verify it, return the metadata."""
        metadata = common.run_metadata(
            self, evaluation.metrics, common.check_targets(evaluation.targets, evaluation.metrics), history,
            data=evaluation.data, card_sections=evaluation.sections, training={**(training or {}), **evaluation.training},
            **evaluation.extra)
        folder = zoo.artifacts.write_preset(Path(workdir) / "artifact", model, metadata,
                                            {"evaluation.png": evaluation.figure, **evaluation.files}, force=True)
        return zoo.artifacts.verify_preset(folder)

    def distribution(self, strategy: str, precision: str):
        """The strategy of ``--strategy`` (:func:`training.distribute.strategy_for`), after refusing what this
        recipe cannot do."""
        if precision not in self.precisions:
            raise ValueError(f"{self.preset} trains in {' or '.join(self.precisions)}; received precision={precision!r}.")
        if strategy == "multiworker" and not self.custom_loop:
            raise ValueError(self.multiworker_refusal())
        tf_strategy = distribute.strategy_for(strategy)
        if distribute.is_multiworker(tf_strategy) and not self.custom_loop:  # "auto" found several workers
            raise ValueError(self.multiworker_refusal())
        return tf_strategy

    def multiworker_refusal(self) -> str:
        """Why ``--strategy multiworker`` cannot train this preset: its model's reason, or Keras' ``fit``."""
        return self.spec().model_class.training_spec.multiworker_refusal or distribute.KERAS_FIT_REFUSAL

    def spec(self):
        """The registered preset this recipe makes."""
        return zoo.get_spec(self.preset)

    # ------------------------------------------------------------------ hooks with defaults

    def training_data(self) -> Any:
        """(training, validation) samples from the two training seeds."""
        return (self.simulate(self.n_train, self.train_seed), self.simulate(self.n_validation, self.validation_seed))

    def build_model(self):
        """The preset's architecture, untrained."""
        return zoo.load(self.preset, pretrained=False)

    def render_figure(self, model, data, scan=None) -> bytes:
        """The figure of ``zoo evaluate NAME --plot`` on ``data``."""
        raise NotImplementedError(f"{type(self).__name__} draws no figure of a sample.")

    # ------------------------------------------------------------------ hooks every family supplies

    def simulate(self, n: int, seed: int):
        """``n`` samples of the family's simulator from ``seed``."""
        raise NotImplementedError

    def fit(self, model, data, epochs: int, workdir: Path, verbose: int, strategy) -> dict:
        """Train ``model`` on ``data`` for ``epochs`` (resumable in ``workdir``); the Keras history."""
        raise NotImplementedError

    def evaluate(self, model, data, history: dict, workdir: Path) -> Evaluation:
        """Measure the trained model on data from ``evaluation_seed``."""
        raise NotImplementedError

    def task_metrics(self, model, data) -> dict:
        """The family's metrics of ``model`` on ``data`` (``zoo evaluate``)."""
        raise NotImplementedError

    def held_out_checks(self, model, metadata: dict, seed: int) -> list:
        """The card's numbers measured again on data from ``seed``: a list of :class:`HeldOutCheck`."""
        raise NotImplementedError

    def scan_metrics(self, folder, model, data) -> dict:
        """Metrics of the scan members shipped in the preset ``folder`` beside ``model`` (a knee of error
        against latent size), measured on ``data``; {} for a family without a scan, or a folder without one
        (a fine-tuned descendant)."""
        return {}


@dataclasses.dataclass(frozen=True)
class HeldOutCheck:
    """One metric measured again on held-out data against what the card records.

    ``passed`` when ``|measured - recorded| <= tolerance`` (the statistical error of a
    small sample, stated by the recipe) and, when the card says a target is met, the
    measured value meets it within ``target_slack``.
    """

    metric: str
    measured: float
    recorded: float
    tolerance: float
    target: float | None = None
    comparison: str | None = None
    target_slack: float = 0.0

    @property
    def passed(self) -> bool:
        if not abs(self.measured - self.recorded) <= self.tolerance:
            return False
        if self.target is None:
            return True
        if self.comparison == ">=":
            return self.measured >= self.target - self.target_slack
        if self.comparison == "<=":
            return self.measured <= self.target + self.target_slack
        return abs(self.measured - self.target) <= self.target_slack


def met_targets(metadata: dict) -> dict:
    """metric -> the card's target row, for the targets the card says are met."""
    return {t["metric"]: t for t in metadata.get("targets", []) if t["met"]}
