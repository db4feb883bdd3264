"""The family contract: frozen descriptions of families, presets, endpoints, training and fine-tuning.

A family module declares one :class:`Family` (its presets, card text, tiny test
config, demo) and its model classes subclass :class:`zoo.models.base.ZooModel`,
which states the rest of the contract in code: the endpoints (:class:`Endpoint`),
how it trains (:class:`TrainingSpec`), the layer groups fine-tuning can freeze or
re-initialise and the fine-tuning loss (:class:`FineTuning`). Serving, cards,
fine-tuning, the training loop and the registry-wide tests read these
declarations and never ask which family a model belongs to.
"""
from __future__ import annotations

import dataclasses
import functools
from types import MappingProxyType
from typing import Any, Callable, Mapping


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for the batch axis and for any size) and meaning of one input or output.

    An input may declare the values it takes, as (low, high), inclusive, for every element, or as
    ``{component: (low, high)}`` for components of its last axis (a jet constituent's eta):

    - ``valid_range``: where the physics, or the network, means anything at all; outside it a
      request is refused, in Python, by the server and inside the exported graph alike;
    - ``trained_range``: where the network saw data; outside it the answer is an extrapolation,
      given with a warning the caller can see.
    """

    name: str
    shape: tuple
    description: str = ""
    dtype: str = "float32"
    valid_range: Any = None
    trained_range: Any = None

    @property
    def feature_shape(self) -> tuple:
        """The shape without the batch axis."""
        return tuple(self.shape[1:])

    def ranges(self, which: str) -> dict:
        """``{component or None: (low, high)}`` of ``valid_range`` or ``trained_range`` (None: every element)."""
        declared = getattr(self, f"{which}_range")
        if declared is None:
            return {}
        if isinstance(declared, Mapping):
            return {int(k): (float(lo), float(hi)) for k, (lo, hi) in declared.items()}
        low, high = declared
        return {None: (float(low), float(high))}


@dataclasses.dataclass(frozen=True)
class Cost:
    """How a request's work and output grow past its rows, declared so that a server can schedule a
    request, and refuse one too large, before it runs.

    Attributes:
        scaling_axes: ``(input name, axis)`` pairs whose sizes multiply each row's work: the
            translator's potential length N, a jet's constituent count m, a lattice's L and L.
            An output's free axes past the batch axis take these sizes, in order (the
            translator's densities (batch, N) and hidden states (batch, N, 96)).
    """

    scaling_axes: tuple = ()

    def units(self, shapes: Mapping[str, tuple]) -> int:
        """The product of the scaling axes' sizes in a request of input ``shapes`` (1 when none)."""
        units = 1
        for name, axis in self.scaling_axes:
            units *= int(shapes[name][axis])
        return units

    def output_elements(self, outputs, shapes: Mapping[str, tuple]) -> int:
        """The number of output elements a request of input ``shapes`` will get, before it runs."""
        rows = int(next(iter(shapes.values()))[0])
        sizes = [int(shapes[name][axis]) for name, axis in self.scaling_axes]
        total = 0
        for spec in outputs:
            free = iter(sizes)
            elements = rows
            for d in spec.shape[1:]:
                elements *= d if d is not None else next(free, 1)
            total += elements
        return total


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One public entry point of a model, exported as a serving signature of the same name.

    Attributes:
        name: the signature name (``serving_default``, ``encode``, ``embed``, ``sample``, ...).
        function: tensors in, dict of named tensors out; called with the inputs
            as keyword arguments, after ``check``; must be traceable by tf.function.
        inputs, outputs: named :class:`TensorSpec` with the batch axis first.
        check: an :class:`InputCheck` run on the inputs before ``function``, by
            ``predict`` on numpy and inside the exported graph alike (None: shape,
            dtype and finiteness only).
        description: one line for ``zoo info`` and the card.
        stochastic: the outputs are random draws (a sampler), so two calls agree in
            distribution, not number for number.
        cost: how its work and outputs grow with free axes past the batch (:class:`Cost`).
        onnx_refusal: why ``zoo export --format onnx`` cannot express this endpoint (empty: it can; e.g.
            :data:`RANDOM_DRAWS_ONNX_REFUSAL` for a sampler).
    """

    name: str
    function: Callable
    inputs: tuple
    outputs: tuple
    check: Any = None
    description: str = ""
    stochastic: bool = False
    cost: Cost = Cost()
    onnx_refusal: str = ""

    @property
    def input_names(self) -> list:
        return [t.name for t in self.inputs]

    @functools.cached_property
    def input_shapes(self) -> dict:
        """Input name -> feature shape (batch axis left out), what ``check_inputs`` takes."""
        return {t.name: t.feature_shape for t in self.inputs}

    @functools.cached_property
    def input_dtypes(self) -> dict:
        return {t.name: t.dtype for t in self.inputs}


RANDOM_DRAWS_ONNX_REFUSAL = (
    "a sampler: its draws come from TensorFlow's counter-based generator (StatelessRandom* ops, keyed by the "
    "seeds), and ONNX's random operators take a fixed seed attribute instead, so the same seeds could not give "
    "the same draws")


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """How a model trains.

    Attributes:
        loss: the Keras loss for ``compile``/``fit`` (a name or a callable
            ``loss(y_true, y_pred)`` returning per-example losses), or None when the
            model trains with its own ``train_step`` on inputs alone.
        multiworker_refusal: None when the custom multi-worker loop can train the
            model; otherwise the reason ``--strategy multiworker`` is refused.
    """

    loss: Any = None
    multiworker_refusal: str | None = None

    @property
    def own_train_step(self) -> bool:
        return self.loss is None


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """What ``zoo finetune`` may do with a model.

    Attributes:
        groups: names of the layer groups that can be frozen or re-initialised
            (the model's ``layer_groups()`` keys), e.g. ``("encoder", "decoder")``.
        loss: the fine-tuning loss (as :attr:`TrainingSpec.loss`; None: the model's own
            ``train_step`` on inputs alone, with no ``target`` array in the data).
        error_name: what :meth:`ZooModel.fine_tuning_error` measures before and after.
        refusal: None when fine-tuning applies, else why it does not and what to do instead.
        preprocessing: raw input name -> the endpoint that turns it into the default endpoint's inputs, so data
            may come raw (a jet tagger's ``{"constituents": "preprocess"}``: constituents become images).
    """

    groups: tuple = ()
    loss: Any = "mse"
    error_name: str = "held-out RMS error"
    refusal: str | None = None
    preprocessing: dict = dataclasses.field(default_factory=dict)

    @property
    def needs_target(self) -> bool:
        return self.loss is not None


@dataclasses.dataclass(frozen=True)
class PresetSpec:
    """Everything the zoo knows about a preset before any weights are read.

    Attributes:
        name: the preset name users pass to ``zoo.load``.
        family: the family's short name (``"scinet"``); the registry fills it in.
        model_class: the registered Keras class that builds the preset.
        config: constructor arguments of ``model_class``.
        summary: one line for ``zoo list``.
        inputs, outputs: descriptions of the ``serving_default`` tensors, by name;
            the other endpoints describe their own tensors.
        paper: citation of the architecture's paper.
    """

    name: str
    model_class: type
    config: Mapping[str, Any]
    summary: str
    inputs: tuple
    outputs: tuple
    paper: str
    family: str = ""

    def __post_init__(self):
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    def descriptions(self) -> dict:
        """Tensor name -> the preset's own description (the card and ``zoo info`` prefer it)."""
        return {t.name: t.description for t in (*self.inputs, *self.outputs)}


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of architectures, declared once in its module as ``FAMILY``.

    Attributes:
        name: short name (``"scinet"``), shown by ``zoo list`` and in cards.
        module: the module that declares it (``__name__``); a Hub repo of this family
            names it when the family is not installed.
        presets: its :class:`PresetSpec` tuple.
        intended_use, limitations: the card's sections of those names (markdown).
        tiny_overrides: constructor overrides that make any preset of the family build
            and run in milliseconds (registry-wide tests); each preset takes those of
            its own config keys (:meth:`tiny_config`), so presets of different classes
            can share one mapping.
        card_sections: optional ``metadata -> markdown`` for extra card sections.
        pretrained_dir: where this family's preset folders live (None: ``zoo/pretrained``).
        bibtex: the BibTeX entry of the family's paper (cards and ``zoo cite``).
        task: what the models do, for the card's Hub metadata (``phase-classification``).
        card_ranges: optional ``metadata -> dict``: the recorded simulator parameter ranges
            that apply to one preset (a simulator with several modes records them all);
            None shows every recorded range.
    """

    name: str
    module: str
    presets: tuple
    intended_use: str
    limitations: str
    tiny_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    card_sections: Callable | None = None
    pretrained_dir: Any = None
    bibtex: str = ""
    task: str = ""
    card_ranges: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "tiny_overrides", MappingProxyType(dict(self.tiny_overrides)))
        object.__setattr__(self, "presets", tuple(dataclasses.replace(p, family=self.name) for p in self.presets))

    def tiny_config(self, preset: PresetSpec) -> dict:
        """The ``tiny_overrides`` that apply to ``preset`` (those naming one of its config keys)."""
        return {k: v for k, v in self.tiny_overrides.items() if k in preset.config}
