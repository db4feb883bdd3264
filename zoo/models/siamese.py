"""Siamese networks that find symmetry invariants and conserved quantities.

Wetzel, Melko, Scott, Panju & Ganesh, "Discovering symmetry invariants and
conserved quantities by interpreting siamese neural networks", Phys. Rev.
Research 2, 033499 (2020), arXiv:2003.04299.

One embedding network ``f`` (the same weights for both twins) maps each member
of a pair to a few numbers; a head compares ``f(a)`` with ``f(b)`` and gives the
probability that the two are related by the symmetry (or lie on the same
trajectory). Two points are related exactly when every invariant agrees, so a
network that solves the task must make ``f`` a function of the invariants
only: reading ``f`` off with a sparse polynomial fit
(:mod:`training.evaluation.readout`) recovers the invariant's formula.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from zoo.models.base import ZooModel, apply_stack, dense_stack
from zoo.spec import Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import AwayFromOriginCheck

PAPER = (
    "S. J. Wetzel, R. G. Melko, J. Scott, M. Panju, V. Ganesh, Discovering symmetry invariants and conserved "
    "quantities by interpreting siamese neural networks, Phys. Rev. Research 2, 033499 (2020), arXiv:2003.04299"
)
HEADS = ("distance", "abs_difference")


@keras.saving.register_keras_serializable(package="zoo")
class SiameseNet(ZooModel):
    """Twin embedding networks and a symmetric comparison head: ``P(same | a, b)``.

    ``z = f(x)`` is a dense stack (shared weights). The head is symmetric under
    swapping the two inputs by construction:

    - ``"distance"``: ``logit = c - softplus(s) * sum_k (f_k(a) - f_k(b))^2``
      (a learned threshold ``c`` and scale ``s``; close embeddings mean "same").
    - ``"abs_difference"``: ``logit = g(|f(a) - f(b)|)`` with a small dense stack ``g``.

    ``P(same) = sigmoid(logit)``, trained with binary cross-entropy.

    Args:
        input_size: number of coordinates of one point (4 for (x, y, v_x, v_y)
            or (t, x, y, z), 6 for (E, B)).
        embedding_size: size of ``f(x)`` (one number per invariant that decides).
        units: hidden widths of ``f``.
        head: ``"distance"`` or ``"abs_difference"``.
        head_units: hidden widths of ``g`` (``"abs_difference"`` only).
        activation: of the hidden layers.
        forbid_origin: reject points whose first two coordinates are both 0
            (r = 0, where the 1/r potential of the Kepler problem is singular).
        coordinate_names: names of the input columns (documentation and read-out).
        input_names: public names of the two inputs.
        output_name: public name of the probability.

    Example:
        >>> m = SiameseNet(input_size=4, embedding_size=1)
        >>> m.predict({"first": np.ones((3, 4)), "second": np.ones((3, 4))}).shape
        (3, 1)
        >>> m.embed(np.ones((3, 4))).shape
        (3, 1)
    """

    training_spec = TrainingSpec(loss="binary_crossentropy")
    fine_tuning = FineTuning(groups=("embedding", "head"), loss="binary_crossentropy",
                             error_name="held-out RMS error of P(same)")

    def __init__(
        self,
        input_size,
        embedding_size=1,
        units=(64, 64),
        head="distance",
        head_units=(16,),
        activation="tanh",
        forbid_origin=False,
        coordinate_names=None,
        input_names=("first", "second"),
        output_name="same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}; received {head!r}.")
        if int(input_size) < 1 or int(embedding_size) < 1:
            raise ValueError(f"input_size and embedding_size must be >= 1; received {input_size} and {embedding_size}.")
        if len(input_names) != 2 or input_names[0] == input_names[1]:
            raise ValueError(f"input_names must be two distinct names; received {input_names!r}.")
        if coordinate_names is not None and len(coordinate_names) != int(input_size):
            raise ValueError(
                f"coordinate_names has {len(coordinate_names)} names; expected input_size={input_size}."
            )
        if forbid_origin and int(input_size) < 2:
            raise ValueError("forbid_origin needs at least two coordinates (x, y).")
        self.input_size = int(input_size)
        self.embedding_size = int(embedding_size)
        self.units = tuple(int(u) for u in units)
        self.head = head
        self.head_units = tuple(int(u) for u in head_units)
        self.activation = activation
        self.forbid_origin = bool(forbid_origin)
        self.coordinate_names = None if coordinate_names is None else tuple(str(c) for c in coordinate_names)
        self.input_names = tuple(str(n) for n in input_names)
        self.output_name = output_name
        self.embedding_layers = dense_stack(self.units, self.embedding_size, "embedding", activation)
        if head == "distance":
            self.head_layers = []
            self.threshold = self.add_weight(shape=(), initializer=keras.initializers.Constant(1.0), name="threshold")
            self.log_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(1.0), name="log_scale")
        else:
            self.head_layers = dense_stack(self.head_units, 1, "head", activation)

    def endpoints(self) -> tuple:
        pair = tuple(TensorSpec(n, (None, self.input_size), "a point") for n in self.input_names)
        same = TensorSpec(self.output_name, (None, 1), "P(the two points are related)")
        default = dataclasses.replace(self.call_endpoint(pair, same, "pair of points -> P(related)"),
                                      check=self._origin_check(self.input_names))
        point = (TensorSpec(self.observation_name, (None, self.input_size), "one point"),)
        check = self._origin_check((self.observation_name,))
        embed = Endpoint("embed", lambda **t: {"embedding": self.embed_tensor(t[self.observation_name])}, point,
                         (TensorSpec("embedding", (None, self.embedding_size), "f(x), a function of the invariant"),),
                         check=check, description="one point -> its embedding")
        encode = Endpoint("encode", lambda **t: {"latent_means": self.embed_tensor(t[self.observation_name])}, point,
                          (TensorSpec("latent_means", (None, self.embedding_size), "the embedding, as SciNet's encode"),),
                          check=check, description="the same map as embed, under the zoo's common name")
        return (default, embed, encode)

    def _origin_check(self, names):
        return AwayFromOriginCheck(names) if self.forbid_origin else None

    def layer_groups(self) -> dict:
        """``embedding``: the twin network f; ``head``: the comparison's layers (none for the "distance" head)."""
        return {"embedding": list(self.embedding_layers), "head": list(self.head_layers)}

    def embed_tensor(self, x):
        """``f(x)`` on tensors: (batch, input_size) -> (batch, embedding_size)."""
        return apply_stack(self.embedding_layers, x)

    def compare(self, first_embedding, second_embedding):
        """The head's logit from two embeddings; symmetric in its arguments."""
        diff = first_embedding - second_embedding
        if self.head == "distance":
            return self.threshold - ops.softplus(self.log_scale) * ops.sum(ops.square(diff), axis=-1, keepdims=True)
        return apply_stack(self.head_layers, ops.abs(diff))

    def call(self, inputs, training=False):
        first, second = self._unpack(inputs)
        logit = self.compare(self.embed_tensor(first), self.embed_tensor(second))
        return ops.sigmoid(logit)

    def checked_inputs(self, inputs, endpoint: str = "serving_default", values: bool = True) -> dict:
        if endpoint == "serving_default" and isinstance(inputs, (dict, list, tuple)) and len(inputs) == 2:
            shapes = [np.shape(v) for v in (inputs.values() if isinstance(inputs, dict) else inputs)]
            if len(shapes[0]) == len(shapes[1]) == 2 and shapes[0][1] != shapes[1][1]:
                raise ValueError(
                    f"The two members of each pair must have the same dimension; received {shapes[0][1]} and "
                    f"{shapes[1][1]} coordinates. Expected {self.input_size} for both."
                )
        return super().checked_inputs(inputs, endpoint, values)

    def embed(self, x, batch_size: int = 4096) -> np.ndarray:
        """``f(x)`` of checked points (batch, input_size) as numpy (batch, embedding_size)."""
        if isinstance(x, dict):
            if len(x) != 1:
                raise ValueError(f"embed takes one array of points; received a dict with keys {sorted(x)}.")
            x = next(iter(x.values()))
        return self.run_endpoint("embed", {self.observation_name: x}, batch_size)["embedding"]

    @property
    def observation_name(self) -> str:
        """Name of the one-point input of the ``embed`` and ``encode`` endpoints: the first input's."""
        return self.input_names[0]

    def encode(self, x) -> np.ndarray:
        """The same as :meth:`embed`: the zoo's common name for observation -> latent (as SciNet's ``encode``)."""
        return self.embed(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            input_size=self.input_size,
            embedding_size=self.embedding_size,
            units=list(self.units),
            head=self.head,
            head_units=list(self.head_units),
            activation=self.activation,
            forbid_origin=self.forbid_origin,
            coordinate_names=None if self.coordinate_names is None else list(self.coordinate_names),
            input_names=list(self.input_names),
            output_name=self.output_name,
        )
        return config


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

# recorded simulator ranges that belong to one mode only, by the option that picks the mode
_MODE_RANGES = {
    "conserved": ("angular_momentum", "energy", "both"),
    "kind": {"events": ("event_components", "time_reversal_of_events"),
             "fields": ("field_components", "fixed_e2_minus_b2_field_magnitude_B")},
}


def applicable_ranges(metadata) -> dict:
    """The simulator ranges of this preset's mode: the Kepler simulator records the ranges of its three
    ``conserved`` modes and the Lorentz simulator those of events and of fields; a card shows its own."""
    data = metadata.get("data", {})
    ranges, options = dict(data.get("parameter_ranges") or {}), data.get("options") or {}
    if options.get("conserved") in _MODE_RANGES["conserved"]:
        ranges = {k: v for k, v in ranges.items()
                  if k not in _MODE_RANGES["conserved"] or k == options["conserved"]}
    if options.get("kind") in _MODE_RANGES["kind"]:
        other = [key for kind, keys in _MODE_RANGES["kind"].items() if kind != options["kind"] for key in keys]
        ranges = {k: v for k, v in ranges.items() if k not in other}
    return ranges


_KEPLER = ("x", "y", "v_x", "v_y")
_EVENT = ("t", "x", "y", "z")
_FIELD = ("E_x", "E_y", "E_z", "B_x", "B_y", "B_z")


_SAME = (TensorSpec("same", (None, 1), "probability that the two inputs are related: on the same orbit (Kepler), or Lorentz transforms of each other (events, fields)"),)


def _preset(name, coordinates, point, summary, units=(64, 64), forbid_origin=False) -> PresetSpec:
    """A siamese preset on points with the named ``coordinates``, each input described by ``point``."""
    return PresetSpec(
        name=name,
        model_class=SiameseNet,
        config=dict(input_size=len(coordinates), embedding_size=1, units=list(units), forbid_origin=forbid_origin,
                    coordinate_names=list(coordinates)),
        summary=summary,
        inputs=tuple(TensorSpec(n, (None, len(coordinates)), point) for n in ("first", "second")),
        outputs=_SAME,
        paper=PAPER,
    )


_PRESETS = (
    _preset("siamese-kepler", _KEPLER,
            "(x, y, v_x, v_y) in units G M = 1, a point of a bound orbit with E = -1/2, (x, y) != 0",
            "Kepler orbits at fixed energy: are two phase-space points on the same orbit? The embedding is L_z.",
            forbid_origin=True),
    _preset("siamese-kepler-energy", _KEPLER,
            "(x, y, v_x, v_y) in units G M = 1, a point of a bound orbit with L_z = 1, (x, y) != 0",
            "Kepler orbits at fixed L_z = 1: are two phase-space points on the same orbit, up to a rotation? "
            "The embedding is the energy.",
            forbid_origin=True),
    _preset("siamese-minkowski", _EVENT, "an event (t, x, y, z), c = 1",
            "Special relativity: are two events related by a Lorentz transformation? The embedding is s^2."),
    _preset("siamese-em-field", _FIELD,
            "a field (E_x, E_y, E_z, B_x, B_y, B_z), c = 1, with E^2 - B^2 = 0.5 in training",
            "Electromagnetic fields at fixed E^2 - B^2: are two (E, B) related by a Lorentz transformation? "
            "The embedding is E.B.",
            units=(128, 128)),
)

BIBTEX = """@article{wetzel2020discovering,
  title = {Discovering symmetry invariants and conserved quantities by interpreting siamese neural networks},
  author = {Wetzel, Sebastian J. and Melko, Roger G. and Scott, Joseph and Panju, Maysum and Ganesh, Vijay},
  journal = {Phys. Rev. Research},
  volume = {2},
  pages = {033499},
  year = {2020},
  doi = {10.1103/PhysRevResearch.2.033499},
  eprint = {2003.04299},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="siamese",
    module=__name__,
    bibtex=BIBTEX,
    task="invariant-discovery",
    presets=_PRESETS,
    intended_use=(
        "Reproducing the siamese-network experiments of Wetzel et al.: deciding whether two points are related "
        "by a symmetry (Lorentz transformations) or lie on the same trajectory (Kepler orbits), and reading "
        "the invariant or conserved quantity off the embedding `model.embed(x)` with the polynomial read-out of "
        "`training.evaluation.readout`. Inputs should come from the simulator ranges in the Training data table."
    ),
    limitations=(
        "The embedding is a monotonic function of the invariant only on the training distribution: outside "
        "the simulator ranges in the Training data table above it is an extrapolation. A preset learns the one "
        "invariant that decides in its own data set (what its simulator holds fixed is in the same table); "
        "pairs whose invariants differ by less than the network's resolution are misclassified, which bounds "
        "the pair accuracy."
    ),
    card_ranges=applicable_ranges,
    tiny_overrides={"units": [8], "head_units": [4]},
)
