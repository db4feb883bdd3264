"""Introspective learning: a recurrent translator from potentials to densities, and its knowledge distiller.

Wang, Zhai & You, "Emergent Schroedinger equation in an introspective machine learning
architecture", Science Bulletin 64, 1228 (2019), arXiv:1901.11103.

The translator reads a one-dimensional potential V_i site by site, like a sentence,
and writes the density n_i = psi(x_i)^2 of the zero-energy solution of
psi'' = V psi that starts from psi = 1, psi' = 0 (the conventions of the Schroedinger
simulator that made its data). Nothing tells it that a wave function exists.

The distiller then asks what the translator's hidden state h_i really carries. It
compresses h_i into k latent numbers z, lets z evolve along the chain with an
update that may depend on the potential, and must rebuild the translator's later
hidden states from z alone. The update is linear in z with a matrix affine in the
potential, z_{i+1} = (A + V_{i+1} B) z_i: the most general first-order linear
recursion, so what is learned can be read off and compared with the discretised
Schroedinger equation, g_{i+1} = [[1, a], [a V_i, 1]] g_i for g = (psi, psi'),
up to a change of basis z = P g. The reconstruction loss against k says how many
numbers the translator needs: the knee sits at k = 2. Which pair it is depends on
what the translator tracks: a translator that reads out only the density need not
know the sign of psi, and then the pair is the density's oscillating part
w = (psi'^2 + V psi^2, 2 psi psi'), which obeys the Schroedinger equation with 4 V
(w'' = 4 V w where V is constant); the shipped distiller's card says which rule its
update matches. With k = 3 the linear recursion can carry (psi^2, psi psi',
psi'^2), whose first entry is the density itself: the density formulation.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.models import update_rules
from zoo.models.backend import EpochMeanLossTraining
from zoo.models.base import ZooModel, apply_stack, dense_stack
from zoo.spec import (
    Cost,
    Endpoint,
    Family,
    FineTuning,
    PresetSpec,
    TensorSpec,
    TrainingSpec,
)
from zoo.validation import InputCheck

PAPER = (
    "C. Wang, H. Zhai, Y.-Z. You, Emergent Schroedinger equation in an introspective machine learning "
    "architecture, Science Bulletin 64, 1228 (2019), arXiv:1901.11103"
)
GRID_SPACING = 0.1  # a of the training data (the Schroedinger simulator's grid spacing)


def relative_density_error(densities, predicted):
    """Per potential, ||n_pred - n||^2 / ||n||^2 over its sites: every potential weighs the same, whatever
    the size of its density (rough potentials grow theirs by Anderson localisation)."""
    return ops.sum(ops.square(predicted - densities), axis=-1) / ops.maximum(
        ops.sum(ops.square(densities), axis=-1), 1e-12)


class PotentialCheck(InputCheck):
    """Potentials (n, N) with at least ``min_sites`` sites; shape and finiteness are checked before."""

    def __init__(self, name: str = "potentials", min_sites: int = 1):
        self.name, self.min_sites = name, int(min_sites)

    def _expected(self) -> str:
        return f"expected at least {self.min_sites} (shape (n, N) with N >= {self.min_sites})"

    def numpy(self, arrays: dict) -> dict:
        sites = arrays[self.name].shape[1]
        if sites < self.min_sites:
            raise ValueError(f"Input {self.name!r} has {sites} site(s) per potential; {self._expected()}.")
        return arrays

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf  # the TF Serving export only

        tf.debugging.assert_greater_equal(tf.shape(tensors[self.name])[1], self.min_sites,
                                          message=f"{self.name} has too few sites per potential; {self._expected()}")
        return tensors

    def screen(self, tensors: dict):
        return tensors, tensors[self.name].shape[1] >= self.min_sites


# Trained on the Schroedinger simulator's three potential classes, V in [-30, -0.25]: wells,
# where psi oscillates. Any finite V is a Schroedinger equation, so none is refused.
_POTENTIALS = TensorSpec("potentials", (None, None), "V_i on sites x_i = i a, a = 0.1, hbar^2 / 2m = 1",
                         trained_range=(-30.0, -0.25))
_PER_SITE = Cost(scaling_axes=(("potentials", 1),))  # work and the outputs' site axis grow with N


ROLLOUT_ONNX_REFUSAL = ("the distiller rolls its latent state out in a while loop that stacks each site into a "
                        "TensorList (TensorListReserve / TensorListSetItem), which tf2onnx 1.17 does not convert")


@keras.saving.register_keras_serializable(package="zoo")
class SchrodingerTranslator(EpochMeanLossTraining, ZooModel):
    """A GRU that translates a potential V_i into the density n_i, site by site.

    The readout is an amplitude r_i whose square is the density, n_i = r_i^2 >= 0. The
    preset's readout is linear, r_i = w . h_i + b, so the hidden state must carry r with
    its sign: the wave function itself, not only its square. (With a hidden readout layer
    the GRU may track the sign-blind density alone, whose oscillation runs at twice the
    wave number, and the distiller then finds that rotation instead of the equation for
    (psi, psi').) ``fit`` trains with truncated back-propagation
    through time: a batch of systems of N sites is cut into windows of ``window``
    sites, the hidden state runs on from one window to the next, and gradients stop
    at each window's start, so no gradient spans more than ``window`` sites.

    Args:
        hidden_size: GRU units.
        readout_units: hidden widths of the readout h -> r (none: linear).
        potential_scale: the GRU reads V / potential_scale.
        window: sites per window of truncated back-propagation.
        grid_spacing: a of the potentials the preset was trained on (documentation only).

    Example:
        >>> m = SchrodingerTranslator()
        >>> m.predict(-np.ones((2, 120))).shape
        (2, 120)
    """

    training_spec = TrainingSpec(loss=relative_density_error)
    fine_tuning = FineTuning(groups=("recurrent", "readout"), loss=relative_density_error,
                             error_name="held-out RMS error of the density")

    def __init__(self, hidden_size: int = 64, readout_units=(), potential_scale: float = 10.0,
                 window: int = 50, grid_spacing: float = GRID_SPACING, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.readout_units = int(hidden_size), tuple(int(u) for u in readout_units)
        self.potential_scale, self.window = float(potential_scale), int(window)
        self.grid_spacing = float(grid_spacing)
        if self.hidden_size < 1 or self.window < 1 or self.potential_scale <= 0:
            raise ValueError(f"hidden_size and window must be >= 1 and potential_scale > 0; received "
                             f"{hidden_size}, {window}, {potential_scale}.")
        self.recurrent = keras.layers.GRU(self.hidden_size, return_sequences=True, return_state=True, name="gru")
        self.readout = dense_stack(self.readout_units, 1, "readout", activation="tanh")

    # ------------------------------------------------------------------ the network

    def run(self, potentials, state=None):
        """(densities (n, N), hidden states (n, N, H), last state (n, H)) from an optional initial state."""
        x = ops.expand_dims(ops.convert_to_tensor(potentials, "float32") / self.potential_scale, -1)
        hidden, last = self.recurrent(x, initial_state=state) if state is not None else self.recurrent(x)
        return self.density_of(hidden), hidden, last

    def density_of(self, hidden):
        """n = r^2 of the readout's amplitude r, for hidden states (..., H)."""
        return ops.square(apply_stack(self.readout, hidden)[..., 0])

    def call(self, potentials, training=False):
        return self.run(potentials)[0]

    def training_loss(self, data):
        """The mean relative density error over windows of ``window`` sites (truncated back-propagation)."""
        potentials, densities = data[0], data[1]
        length = potentials.shape[1]
        if length is None:
            raise ValueError("Training needs systems of a fixed number of sites (a static sequence length).")
        state, losses = None, []
        for start in range(0, length, self.window):
            predicted, _, state = self.run(potentials[:, start:start + self.window],
                                           None if state is None else ops.stop_gradient(state))
            losses.append(ops.mean(relative_density_error(densities[:, start:start + self.window], predicted)))
        loss = ops.mean(ops.stack(losses))
        return loss, {"loss": loss}

    def evaluation_loss(self, data):
        return ops.mean(relative_density_error(data[1], self(data[0])))

    # ------------------------------------------------------------------ public entry points

    def endpoints(self) -> tuple:
        check = PotentialCheck()

        def hidden_states(potentials):
            return {"hidden_states": self.run(potentials)[1]}

        return (
            Endpoint("serving_default", lambda potentials: {"densities": self(potentials)}, (_POTENTIALS,),
                     (TensorSpec("densities", (None, None), "n_i = psi(x_i)^2 with psi(0) = 1, psi'(0) = 0"),),
                     check=check, cost=_PER_SITE, description="densities of potentials of any length"),
            Endpoint("hidden_states", hidden_states, (_POTENTIALS,),
                     (TensorSpec("hidden_states", (None, None, self.hidden_size), "the GRU state after each site"),),
                     check=check, cost=_PER_SITE, description="the translator's hidden state at every site (the distiller's data)"),
        )

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        """Smooth shallow wells on 60 sites, inside the training classes."""
        rng = np.random.default_rng(seed)
        x = np.arange(60) * self.grid_spacing
        depth = rng.uniform(1.0, 3.0, (batch_size, 1))
        return {"potentials": (-depth * (1.0 + 0.3 * np.sin(x / 2.0 + rng.uniform(0, 6, (batch_size, 1)))))
                .astype("float32")}

    def hidden_states(self, potentials, batch_size: int | None = None) -> np.ndarray:
        """The GRU state after each site, (n, N, hidden_size)."""
        return self.run_endpoint("hidden_states", {"potentials": potentials}, batch_size)["hidden_states"]

    def layer_groups(self) -> dict:
        return {"recurrent": [self.recurrent], "readout": self.readout}

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "readout_units": list(self.readout_units),
                "potential_scale": self.potential_scale, "window": self.window, "grid_spacing": self.grid_spacing}


@keras.saving.register_keras_serializable(package="zoo")
class PotentialLinearUpdate(keras.layers.Layer):
    """z_{i+1} = (A + V B) z_i with learned k x k matrices; A starts at the identity and B at zero."""

    def __init__(self, latent_size: int, potential_scale: float, **kwargs):
        super().__init__(**kwargs)
        self.latent_size, self.potential_scale = int(latent_size), float(potential_scale)

    def build(self, input_shape=None):
        k = self.latent_size
        self.constant = self.add_weight((k, k), initializer=keras.initializers.Identity(), name="A")
        self.potential = self.add_weight((k, k), initializer="zeros", name="B")

    def call(self, z, potential):
        """One step for z (n, k) and the potential (n,) at the site stepped onto."""
        v = ops.expand_dims(potential / self.potential_scale, -1)
        return ops.matmul(z, ops.transpose(self.constant)) + v * ops.matmul(z, ops.transpose(self.potential))

    def matrices(self) -> tuple:
        """(A, B) for the potential in its own units: z_{i+1} = (A + V_{i+1} B) z_i."""
        return (np.asarray(self.constant, np.float64),
                np.asarray(self.potential, np.float64) / self.potential_scale)

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size, "potential_scale": self.potential_scale}


# basis name -> (latent numbers it applies to, the reference rule (A0, B0) at grid spacing a)
UPDATE_RULE_BASES = {
    "psi": (2, update_rules.euler_rule),
    "density_pair": (2, lambda a: update_rules.euler_rule(a, potential_factor=4.0)),
    "density": (3, update_rules.density_rule),
}


@keras.saving.register_keras_serializable(package="zoo")
class SchrodingerDistiller(EpochMeanLossTraining, ZooModel):
    """A recurrent autoencoder on a frozen translator's hidden states, through a bottleneck of k numbers.

    For a window of ``rollout`` sites starting at site s: z_s = E(h_s), then
    z_{i+1} = (A + V_{i+1} B) z_i, and a decoder rebuilds h_i = D(z_i, V_i) at every
    site of the window (the decoder sees the current potential, as the translator's
    own state does, so the latent numbers need not store it). Training minimises
    the squared error of the rebuilt hidden states; ``fit(potentials)`` runs the
    translator on every batch, ``fit(potential_windows, hidden_state_windows)``
    trains on states computed once (as the recipe does, cutting long chains). ``predict(potentials)`` gives
    the densities the translator's readout makes of the rebuilt states, running the
    latent recursion over the whole chain from site 0.

    Args:
        latent_size: k, the bottleneck.
        translator: the config of the :class:`SchrodingerTranslator` it distils.
        units: hidden widths of the encoder and the decoder.
        rollout: sites per training window.
    """

    training_spec = TrainingSpec(loss=None, multiworker_refusal=(
        "The distiller trains with its own train_step through Keras fit, which fails under "
        "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy cpu, auto or mirrored."))
    fine_tuning = FineTuning(refusal=(
        "`zoo finetune` does not apply: the distiller explains one translator. To distil another, train a new one "
        "in Python: "
        "model = zoo.load(NAME, pretrained=False); model.translator.set_weights(...); model.compile(...); "
        "model.fit(potentials, ...)."))

    def __init__(self, latent_size: int = 2, translator=None, units=(64, 64), rollout: int = 25, **kwargs):
        super().__init__(**kwargs)
        self.latent_size, self.units, self.rollout = int(latent_size), tuple(int(u) for u in units), int(rollout)
        if self.latent_size < 1 or self.rollout < 2:
            raise ValueError(f"latent_size must be >= 1 and rollout >= 2; received {latent_size}, {rollout}.")
        self.translator_config = dict(translator or {})
        self.translator = SchrodingerTranslator(**self.translator_config, name="translator")
        self.translator.trainable = False
        scale = self.translator.potential_scale
        self.encoder = dense_stack(self.units, self.latent_size, "encoder", activation="tanh")
        self.update = PotentialLinearUpdate(self.latent_size, scale, name="latent_update")
        self.decoder = dense_stack(self.units, self.translator.hidden_size, "decoder", activation="tanh")

    def build(self, input_shape=None):
        potentials = ops.zeros((1, 2))
        _, hidden, _ = self.translator.run(potentials)
        z = apply_stack(self.encoder, hidden[:, 0])
        self.update.build()
        self.decode(z, potentials[:, 0])
        self.built = True

    def decode(self, z, potentials):
        """Hidden states rebuilt from z (..., k) and the potential at the same sites (...)."""
        v = ops.expand_dims(potentials / self.translator.potential_scale, -1)
        return apply_stack(self.decoder, ops.concatenate([z, v], axis=-1))

    def roll_out(self, z, potentials, unroll: bool = False):
        """Latent states (n, T, k) from z at the first site, stepping onto sites 1 .. T - 1 of ``potentials``:
        a scan over the sites, so T may be known only at run time, or with ``unroll`` (T static: a training
        window) the steps written out, which TensorFlow's XLA can differentiate (Keras' scan on TensorFlow is a
        while loop without a bound on its iterations, whose gradient XLA refuses)."""
        if unroll:
            states = [z]
            for site in range(1, potentials.shape[1]):
                states.append(self.update(states[-1], potentials[:, site]))
            return ops.stack(states, axis=1)

        def step(state, v):
            state = self.update(state, v)
            return state, state

        _, later = ops.scan(step, z, ops.transpose(potentials[:, 1:]))  # (T - 1, n, k)
        return ops.concatenate([z[:, None], ops.transpose(later, (1, 0, 2))], axis=1)

    def latent(self, potentials):
        """Latent trajectory (n, N, k) from the encoded hidden state of site 0."""
        potentials = ops.convert_to_tensor(potentials, "float32")
        _, hidden, _ = self.translator.run(potentials)
        return self.roll_out(apply_stack(self.encoder, hidden[:, 0]), potentials)

    def call(self, potentials, training=False):
        potentials = ops.convert_to_tensor(potentials, "float32")
        return self.translator.density_of(self.decode(self.latent(potentials), potentials))

    def window_loss(self, potentials, hidden=None):
        """Mean squared error of the rebuilt hidden states over windows of ``rollout`` sites.

        ``hidden``: the translator's states at the same sites (computed here when None); a recipe
        that cuts long chains into windows passes the states of the whole chain."""
        if hidden is None:
            hidden = self.translator.run(potentials)[1]
        hidden = ops.stop_gradient(hidden)
        errors = []
        rollout = min(self.rollout, potentials.shape[1])  # shorter windows given: roll out over each whole
        for start in range(0, potentials.shape[1] - rollout + 1, rollout):
            window = potentials[:, start:start + rollout]
            z = self.roll_out(apply_stack(self.encoder, hidden[:, start]), window, unroll=True)
            errors.append(ops.mean(ops.square(self.decode(z, window) - hidden[:, start:start + rollout])))
        return ops.mean(ops.stack(errors))

    def training_loss(self, data):
        loss = self.window_loss(*_potentials_and_states(data))
        return loss, {"loss": loss}

    def evaluation_loss(self, data):
        return self.window_loss(*_potentials_and_states(data))

    def update_matrices(self) -> tuple:
        """(A, B): the learned update z_{i+1} = (A + V_{i+1} B) z_i, V in the potential's own units."""
        return self.update.matrices()

    def update_rule(self, basis: str = "psi") -> dict:
        """The learned update z_{i+1} = (A + V_{i+1} B) z_i read in a physical basis: the change of basis P
        (z -> P z) that brings (A, B) closest to a reference rule, the pair in that basis, and what is left.

        ``basis`` (:data:`UPDATE_RULE_BASES`): ``"psi"``, g = (psi, psi') with the Euler rule of
        psi'' = V psi, [[1, a], [a V, 1]]; ``"density_pair"``, the density's oscillating pair with w'' = 4 V w,
        [[1, a], [4 a V, 1]] (what a network that reads out only psi^2 can learn; the card explains); both for
        two latent numbers. ``"density"``, u = (psi^2, psi psi', psi'^2), for three. ``"learned"`` gives the
        raw (A, B). a is the grid spacing (0.1).

        Returns {"basis", "A", "B" (in that basis), "A_reference", "B_reference", "P", "residual"}: the
        residual is the Frobenius norm of (A, B) - (A_reference, B_reference) over the reference's step
        ((A_reference - I, B_reference)); 0 would be the Schroedinger equation exactly, in another basis.
        """
        a, b = (np.asarray(m, np.float64) for m in self.update_matrices())
        if basis == "learned":
            return {"basis": basis, "A": a, "B": b, "A_reference": None, "B_reference": None, "P": np.eye(len(a)),
                    "residual": None}
        allowed = {k for k, (size, _) in UPDATE_RULE_BASES.items() if size == self.latent_size} | {"learned"}
        if basis not in allowed:
            raise ValueError(f"update_rule's basis must be one of {sorted(allowed)} for {self.latent_size} latent "
                             f"numbers; received {basis!r}.")
        a0, b0 = UPDATE_RULE_BASES[basis][1](self.translator.grid_spacing)
        fit = update_rules.basis_change_fit(a, b, a0, b0)
        return {"basis": basis, "A": fit["A_in_reference_basis"], "B": fit["B_in_reference_basis"],
                "A_reference": a0, "B_reference": b0, "P": fit["P"], "residual": fit["residual"]}

    # ------------------------------------------------------------------ public entry points

    def endpoints(self) -> tuple:
        check = PotentialCheck(min_sites=2)
        return (
            Endpoint("serving_default", lambda potentials: {"densities": self(potentials)}, (_POTENTIALS,),
                     (TensorSpec("densities", (None, None), "the translator's density of the distilled states"),),
                     check=check, cost=_PER_SITE, description="densities through the k-number bottleneck, over the whole chain",
                     onnx_refusal=ROLLOUT_ONNX_REFUSAL),
            Endpoint("latent", lambda potentials: {"latent": self.latent(potentials)}, (_POTENTIALS,),
                     (TensorSpec("latent", (None, None, self.latent_size),
                                        "z_i, the distilled state: up to a change of basis the density's "
                                        "oscillating pair (2 numbers) or (psi^2, psi psi', psi'^2) (3); "
                                        "see update_rule"),),
                     check=check, cost=_PER_SITE, description="the latent trajectory", onnx_refusal=ROLLOUT_ONNX_REFUSAL),
        )

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        return self.translator.random_inputs(batch_size, seed)

    def layer_groups(self) -> dict:
        return {"encoder": self.encoder, "decoder": self.decoder, "update": [self.update]}

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size, "translator": self.translator_config,
                "units": list(self.units), "rollout": self.rollout}


def _potentials_and_states(data) -> tuple:
    """(potentials, the translator's hidden states or None) of a batch: potentials alone, or (potentials,
    hidden states) as (x, y)."""
    if not isinstance(data, tuple):
        return data, None
    return data[0], (data[1] if len(data) > 1 else None)


# ---------------------------------------------------------------------------- presets

TRANSLATOR_CONFIG = dict(hidden_size=96, readout_units=[], potential_scale=10.0, window=50,
                         grid_spacing=GRID_SPACING)

_PRESETS = (
    PresetSpec(
        name="translator-schrodinger",
        model_class=SchrodingerTranslator,
        config=TRANSLATOR_CONFIG,
        summary="Recurrent translator from a 1D potential V_i to the density n_i of psi'' = V psi, any length.",
        inputs=(_POTENTIALS,),
        outputs=(TensorSpec("densities", (None, None), "n_i = psi(x_i)^2, psi(0) = 1, psi'(0) = 0"),),
        paper=PAPER,
    ),
    PresetSpec(
        name="distiller-schrodinger-k2",
        model_class=SchrodingerDistiller,
        config=dict(latent_size=2, translator=TRANSLATOR_CONFIG, units=[64, 64], rollout=25),
        summary="Knowledge distiller of the translator through 2 latent numbers, whose learned update is a "
                "Schroedinger equation up to a change of basis (of the density's oscillating pair, w'' = 4 V w).",
        inputs=(_POTENTIALS,),
        outputs=(TensorSpec("densities", (None, None), "the translator's density of the distilled states"),),
        paper=PAPER,
    ),
)

BIBTEX = """@article{wang2019emergent,
  title = {Emergent Schr{\\"o}dinger equation in an introspective machine learning architecture},
  author = {Wang, Ce and Zhai, Hui and You, Yi-Zhuang},
  journal = {Science Bulletin},
  volume = {64},
  number = {17},
  pages = {1228--1233},
  year = {2019},
  doi = {10.1016/j.scib.2019.07.014},
  eprint = {1901.11103},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="translator",
    module=__name__,
    bibtex=BIBTEX,
    task="sequence-translation",
    presets=_PRESETS,
    intended_use=(
        "Reproducing the introspective-learning experiment of Wang, Zhai & You: `model.predict(potentials)` "
        "translates potentials (n, N), any N, on the grid x_i = 0.1 i into the densities n_i = psi(x_i)^2 of the "
        "zero-energy solution of psi'' = V psi from psi(0) = 1, psi'(0) = 0 (units hbar^2 / 2m = 1); "
        "`hidden_states` gives what the distiller reads. The distiller's `update_matrices()` give the learned "
        "recursion of its latent pair, and `update_rule(basis)` reads it in the basis of (psi, psi') or of the "
        "density's oscillating pair, with the residual against the Schroedinger equation."
    ),
    limitations=(
        "Trained on negative (classically allowed) potentials of the three classes in the Training data table, "
        "at grid spacing 0.1 and zero energy with one initial condition: other spacings, energies, initial "
        "values, or barriers where psi grows exponentially are outside what it has seen. The density is not "
        "normalised. Errors grow with the length of the chain (the tables give them at several lengths)."
    ),
    tiny_overrides={"hidden_size": 4, "readout_units": [], "units": [4],
                    "translator": dict(hidden_size=4, readout_units=[])},
)
