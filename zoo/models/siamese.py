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

import keras
import numpy as np
from keras import ops

from zoo.models.base import ZooModel, apply_stack, dense_stack
from zoo.spec import PresetSpec, TensorSpec
from zoo.validation import check_array, check_inputs

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

    training_loss = "binary_crossentropy"

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

    @property
    def input_specs(self):
        return {name: (self.input_size,) for name in self.input_names}

    @property
    def encoder_layers(self) -> list:
        """The twin embedding network f (fine-tuning can freeze it)."""
        return list(self.embedding_layers)

    @property
    def decoder_layers(self) -> list:
        """The comparison head's layers (none for the "distance" head, whose two scalars always train)."""
        return list(self.head_layers)

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

    def _check_origin(self, array, name):
        if self.forbid_origin:
            at_origin = np.flatnonzero((array[:, 0] == 0) & (array[:, 1] == 0))
            if at_origin.size:
                raise ValueError(
                    f"Input {name!r} has {at_origin.size} point(s) at r = 0 (rows {at_origin[:5].tolist()}"
                    f"{'...' if at_origin.size > 5 else ''}), where the 1/r potential is singular; "
                    "every point needs (x, y) != (0, 0)."
                )
        return array

    def validate_inputs(self, inputs):
        if isinstance(inputs, dict) or (isinstance(inputs, (list, tuple)) and len(inputs) == 2):
            if isinstance(inputs, (list, tuple)):
                shapes = [np.shape(v) for v in inputs]
            else:
                shapes = [np.shape(v) for v in inputs.values()]
            if len(shapes) == 2 and len(shapes[0]) == len(shapes[1]) == 2 and shapes[0][1] != shapes[1][1]:
                raise ValueError(
                    f"The two members of each pair must have the same dimension; received {shapes[0][1]} and "
                    f"{shapes[1][1]} coordinates. Expected {self.input_size} for both."
                )
        arrays = check_inputs(inputs, self.input_specs)
        return {name: self._check_origin(a, name) for name, a in arrays.items()}

    def embed(self, x, batch_size: int = 4096) -> np.ndarray:
        """``f(x)`` of checked points (batch, input_size) as numpy (batch, embedding_size)."""
        if isinstance(x, dict):
            if len(x) != 1:
                raise ValueError(f"embed takes one array of points; received a dict with keys {sorted(x)}.")
            x = next(iter(x.values()))
        array = self._check_origin(check_array(x, "x", (self.input_size,)), "x")
        out = [ops.convert_to_numpy(self.embed_tensor(ops.convert_to_tensor(array[i:i + batch_size])))
               for i in range(0, len(array), batch_size)]
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.embedding_size), "float32")

    @property
    def observation_name(self) -> str:
        """Name of the one-point input of the exported ``embed`` and ``encode`` signatures: the first input's."""
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

_RECIPES = "training.recipes.siamese"
_KEPLER = ("x", "y", "v_x", "v_y")
_EVENT = ("t", "x", "y", "z")
_FIELD = ("E_x", "E_y", "E_z", "B_x", "B_y", "B_z")


_SAME = (TensorSpec("same", (None, 1), "probability that the two inputs are related: on the same orbit (Kepler), or Lorentz transforms of each other (events, fields)"),)


def _preset(name, recipe, coordinates, point, summary, units=(64, 64), forbid_origin=False) -> PresetSpec:
    """A siamese preset on points with the named ``coordinates``, each input described by ``point``."""
    return PresetSpec(
        name=name,
        family="siamese",
        model_class=SiameseNet,
        config=dict(input_size=len(coordinates), embedding_size=1, units=list(units), forbid_origin=forbid_origin,
                    coordinate_names=list(coordinates)),
        recipe=f"{_RECIPES}:{recipe}",
        summary=summary,
        inputs=tuple(TensorSpec(n, (None, len(coordinates)), point) for n in ("first", "second")),
        outputs=_SAME,
        paper=PAPER,
    )


PRESETS = (
    _preset("siamese-kepler", "kepler_recipe", _KEPLER,
            "(x, y, v_x, v_y) in units G M = 1, a point of a bound orbit with E = -1/2, (x, y) != 0",
            "Kepler orbits at fixed energy: are two phase-space points on the same orbit? The embedding is L_z.",
            forbid_origin=True),
    _preset("siamese-kepler-energy", "kepler_energy_recipe", _KEPLER,
            "(x, y, v_x, v_y) in units G M = 1, a point of a bound orbit with L_z = 1, (x, y) != 0",
            "Kepler orbits at fixed L_z = 1: are two phase-space points on the same orbit, up to a rotation? "
            "The embedding is the energy.",
            forbid_origin=True),
    _preset("siamese-minkowski", "minkowski_recipe", _EVENT, "an event (t, x, y, z), c = 1",
            "Special relativity: are two events related by a Lorentz transformation? The embedding is s^2."),
    _preset("siamese-em-field", "em_field_recipe", _FIELD,
            "a field (E_x, E_y, E_z, B_x, B_y, B_z), c = 1, with E^2 - B^2 = 0.5 in training",
            "Electromagnetic fields at fixed E^2 - B^2: are two (E, B) related by a Lorentz transformation? "
            "The embedding is E.B.",
            units=(128, 128)),
)
