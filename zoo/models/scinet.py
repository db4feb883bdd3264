"""SciNet: an encoder, a small Gaussian latent and a question-answering decoder.

Iten, Metger, Wilming, del Rio & Renner, "Discovering physical concepts with
neural networks", Phys. Rev. Lett. 124, 010508 (2020), arXiv:1807.10300.

SciNet compresses an observation ``o`` into a few latent neurons
``z ~ N(mu(o), sigma(o)^2)`` and answers a question ``q`` about the same
system from ``[z, q]`` alone. A KL term pulls every latent towards a narrow
prior ``N(0, sigma_prior^2)``, weighted by ``beta``: a latent that carries no
information is pushed to the prior and stops being used, so the number of
latents left active counts the parameters the physics needs (two for a
damped pendulum, b and kappa; two for a qubit; one conserved angular momentum).
"""
from __future__ import annotations

import math

import keras
from keras import ops

import numpy as np

from zoo.models.base import ZooModel, apply_stack, dense_stack
from zoo.spec import Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec

PAPER = (
    "R. Iten, T. Metger, H. Wilming, L. del Rio, R. Renner, Discovering physical concepts "
    "with neural networks, Phys. Rev. Lett. 124, 010508 (2020), arXiv:1807.10300"
)
LATENT_LAYOUTS = ("mean_first", "log_sigma_first")


def gaussian_kl(mean, log_sigma, prior_sigma):
    """KL( N(mean, exp(log_sigma)^2) || N(0, prior_sigma^2) ), summed over latents, batch mean."""
    var_ratio = ops.exp(2.0 * log_sigma) / prior_sigma**2
    per_latent = 0.5 * (ops.square(mean) / prior_sigma**2 + var_ratio - 1.0 - ops.log(var_ratio))
    return ops.mean(ops.sum(per_latent, axis=-1))


def wrap_angle(x):
    """Map angles to (-pi, pi]; the derivative is 1 everywhere except on the cut."""
    return ops.arctan2(ops.sin(x), ops.cos(x))


@keras.saving.register_keras_serializable(package="zoo")
def wrapped_angle_mse(y_true, y_pred):
    """Squared angle difference, wrapped so that an error of 2 pi costs nothing; mean over the last axis."""
    return ops.mean(ops.square(wrap_angle(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32"))), axis=-1)


class _GaussianEncoderMixin:
    """Encoder whose last layer gives the latent mean and log sigma."""

    wrap_angles = False  # outputs are plain numbers unless a subclass says they are angles

    def _init_encoder(self, latent_size, units, latent_layout, mean_activation):
        if latent_layout not in LATENT_LAYOUTS:
            raise ValueError(f"latent_layout must be one of {LATENT_LAYOUTS}, received {latent_layout!r}.")
        if mean_activation not in (None, "tanh"):
            raise ValueError(f"mean_activation must be None or 'tanh', received {mean_activation!r}.")
        if int(latent_size) < 0:
            raise ValueError(f"latent_size must be >= 0, received {latent_size}.")
        self.encoder_layers = dense_stack(units, 2 * latent_size, "encoder", self.activation) if latent_size else []
        self.seed_generator = keras.random.SeedGenerator(1)
        # beta as a variable, so that a training schedule can anneal it without retracing
        self.kl_weight = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.beta), trainable=False, name="kl_weight"
        )

    def _latent_distribution(self, observation):
        """Mean and log sigma of the latent posterior, each (batch, latent_size)."""
        if not self.latent_size:
            empty = ops.zeros((ops.shape(observation)[0], 0), dtype=observation.dtype)
            return empty, empty
        params = apply_stack(self.encoder_layers, observation)
        first, second = params[:, : self.latent_size], params[:, self.latent_size :]
        mean, log_sigma = (first, second) if self.latent_layout == "mean_first" else (second, first)
        if self.mean_activation == "tanh":
            mean = ops.tanh(mean)
        return mean, log_sigma

    def _latent_sample(self, mean, log_sigma, training):
        """Reparameterised sample while training (and the beta-weighted KL loss); the mean otherwise."""
        if not training or not self.latent_size:
            return mean
        mean, log_sigma = ops.cast(mean, "float32"), ops.cast(log_sigma, "float32")  # the KL in float32 under mixed precision
        # inputs far outside the training range can drive log sigma past exp's float32 range (NaN losses);
        # sigma in [e^-15, e^5] spans 1e-7 to 1500 prior widths, so in-range training never meets the bounds
        log_sigma = ops.clip(log_sigma, -15.0, 5.0)
        self.add_loss(self.kl_weight * gaussian_kl(mean, log_sigma, self.prior_sigma))
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return ops.cast(mean + ops.exp(log_sigma) * noise, self.compute_dtype)

    def encode(self, observation):
        """Latent means (batch, latent_size) of checked observations, as numpy."""
        if isinstance(observation, dict):
            observation = observation.get(self.observation_name, observation)
        return self.run_endpoint("encode", {self.observation_name: observation})["latent_means"]

    def encode_endpoint(self) -> Endpoint:
        """Observation -> the means of the latent posterior: the physical parameters SciNet found."""
        observation = TensorSpec(self.observation_name, (None, self.observation_size), "an observation")
        latent = TensorSpec("latent_means", (None, self.latent_size), "means of the latent neurons")
        return Endpoint("encode", lambda **t: {"latent_means": self._latent_distribution(t[self.observation_name])[0]},
                        (observation,), (latent,), description="observation -> latent means")

    @property
    def training_spec(self) -> TrainingSpec:
        return TrainingSpec(loss=wrapped_angle_mse if self.wrap_angles else "mse")

    @property
    def fine_tuning(self) -> FineTuning:
        return FineTuning(groups=("encoder", "decoder"), loss=self.training_spec.loss,
                          error_name="held-out RMS error" + (" (angles, wrapped)" if self.wrap_angles else ""))

    def layer_groups(self) -> dict:
        return {"encoder": list(self.encoder_layers), "decoder": list(self.decoder_layers)}

    def fine_tuning_error(self, inputs: dict, target) -> float:
        predicted = self.predict(inputs if len(inputs) > 1 else next(iter(inputs.values())), batch_size=4096)
        diff = np.asarray(predicted) - target
        if self.wrap_angles:
            diff = np.angle(np.exp(1j * diff))
        return float(np.sqrt(np.mean(diff**2)))


@keras.saving.register_keras_serializable(package="zoo")
class SciNet(_GaussianEncoderMixin, ZooModel):
    """SciNet with a question input: ``answer = decoder([z, question])``, ``z ~ encoder(observation)``.

    Training minimises ``|answer - target|^2 + beta * KL(q(z|o) || N(0, prior_sigma^2))``.

    Args:
        observation_size: length of the observation vector ``o``.
        question_size: length of the question vector ``q``.
        output_size: length of the answer.
        latent_size: number of latent neurons (0 allowed: the decoder sees the question only).
        encoder_units, decoder_units: hidden layer widths.
        activation: of the hidden layers (ELU in the original).
        beta: weight of the KL term.
        prior_sigma: width of the latent prior (0.1 in the original code).
        latent_layout: order of the encoder's last layer, ``"mean_first"`` or
            ``"log_sigma_first"`` (the layout of the authors' checkpoints).
        mean_activation: ``None`` or ``"tanh"`` applied to the latent mean.
        observation_name, question_name, output_name: public tensor names.

    Example:
        >>> m = SciNet(observation_size=50, question_size=1, output_size=1, latent_size=2)
        >>> m.predict({"observations": np.zeros((4, 50)), "question": np.ones((4, 1))}).shape
        (4, 1)
    """

    def __init__(
        self,
        observation_size,
        question_size,
        output_size,
        latent_size,
        encoder_units=(500, 100),
        decoder_units=(100, 100),
        beta=1e-3,
        prior_sigma=0.1,
        latent_layout="mean_first",
        mean_activation=None,
        activation="elu",
        observation_name="observations",
        question_name="question",
        output_name="answer",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.observation_size = int(observation_size)
        self.question_size = int(question_size)
        self.output_size = int(output_size)
        self.latent_size = int(latent_size)
        self.encoder_units = tuple(int(u) for u in encoder_units)
        self.decoder_units = tuple(int(u) for u in decoder_units)
        self.beta = float(beta)
        self.prior_sigma = float(prior_sigma)
        self.latent_layout = latent_layout
        self.mean_activation = mean_activation
        self.activation = activation
        self.observation_name = observation_name
        self.question_name = question_name
        self.output_name = output_name
        self._init_encoder(self.latent_size, self.encoder_units, latent_layout, mean_activation)
        self.decoder_layers = dense_stack(self.decoder_units, self.output_size, "decoder", activation)

    def endpoints(self) -> tuple:
        inputs = (TensorSpec(self.observation_name, (None, self.observation_size), "observation"),
                  TensorSpec(self.question_name, (None, self.question_size), "question"))
        answer = TensorSpec(self.output_name, (None, self.output_size), "answer to the question")
        return (self.call_endpoint(inputs, answer, "observation and question -> answer"), self.encode_endpoint())

    def call(self, inputs, training=False):
        observation, question = self._unpack(inputs)
        mean, log_sigma = self._latent_distribution(observation)
        latent = self._latent_sample(mean, log_sigma, training)
        return self.decode_tensor(latent, question)

    def decode_tensor(self, latent, question):
        """The decoder on tensors: answer from ``[latent, question]``."""
        return apply_stack(self.decoder_layers, ops.concatenate([latent, question], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(
            observation_size=self.observation_size,
            question_size=self.question_size,
            output_size=self.output_size,
            latent_size=self.latent_size,
            encoder_units=list(self.encoder_units),
            decoder_units=list(self.decoder_units),
            beta=self.beta,
            prior_sigma=self.prior_sigma,
            latent_layout=self.latent_layout,
            mean_activation=self.mean_activation,
            activation=self.activation,
            observation_name=self.observation_name,
            question_name=self.question_name,
            output_name=self.output_name,
        )
        return config


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentSciNet(_GaussianEncoderMixin, ZooModel):
    """SciNet whose latent state evolves in time: ``r(t_{k+1}) = r(t_k) + b``.

    The encoder maps one observation to the latent state ``r(t_0)``; a single
    learned vector ``b`` moves the state by one time step, and the decoder maps
    each ``r(t_k)`` back to an observation. Because the update is a constant
    shift, ``r(t_k) = r(t_0) + k b`` is computed for all steps at once. Trained on
    the angles of the Sun and Mars seen from Earth, the only latent variables
    that evolve this simply are the heliocentric angles of Earth and Mars:
    the network finds Copernicus' model.

    Args:
        observation_size: size of one observation (2 angles).
        output_size: size of each decoded observation.
        latent_size: size of the latent state.
        steps: number of decoded time steps (the first is ``t_0``).
        encoder_units, decoder_units: hidden widths.
        activation: of the hidden layers (ELU in the original).
        beta, prior_sigma: KL weight and prior width, as in :class:`SciNet`.
        latent_layout, mean_activation: as in :class:`SciNet` (the authors'
            copernicus checkpoint uses ``"mean_first"`` and ``"tanh"``).
        wrap_angles: wrap every output to (-pi, pi] (outputs are angles).
        input_name, output_name: public tensor names.

    Example:
        >>> m = RecurrentSciNet(steps=50)
        >>> m.predict(np.zeros((3, 2))).shape
        (3, 50, 2)
    """

    def __init__(
        self,
        observation_size=2,
        output_size=2,
        latent_size=2,
        steps=50,
        encoder_units=(100, 100),
        decoder_units=(100, 100),
        beta=1e-3,
        prior_sigma=0.1,
        latent_layout="mean_first",
        mean_activation=None,
        activation="elu",
        wrap_angles=True,
        input_name="initial_angles",
        output_name="angles",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(latent_size) < 1 or int(steps) < 1:
            raise ValueError(f"latent_size and steps must be >= 1, received {latent_size} and {steps}.")
        self.observation_size = int(observation_size)
        self.output_size = int(output_size)
        self.latent_size = int(latent_size)
        self.steps = int(steps)
        self.encoder_units = tuple(int(u) for u in encoder_units)
        self.decoder_units = tuple(int(u) for u in decoder_units)
        self.beta = float(beta)
        self.prior_sigma = float(prior_sigma)
        self.latent_layout = latent_layout
        self.mean_activation = mean_activation
        self.wrap_angles = bool(wrap_angles)
        self.activation = activation
        self.input_name = input_name
        self.observation_name = input_name
        self.output_name = output_name
        self._init_encoder(self.latent_size, self.encoder_units, latent_layout, mean_activation)
        self.decoder_layers = dense_stack(self.decoder_units, self.output_size, "decoder", activation)
        self.latent_step = self.add_weight(
            shape=(self.latent_size,), initializer=keras.initializers.RandomNormal(stddev=0.1), name="latent_step"
        )

    def endpoints(self) -> tuple:
        initial = TensorSpec(self.input_name, (None, self.observation_size), "observation at t_0")
        series = TensorSpec(self.output_name, (None, self.steps, self.output_size), "observations at t_0 ... t_{steps-1}")
        return (self.call_endpoint((initial,), series, "first observation -> time series"), self.encode_endpoint())

    def latent_trajectory(self, initial_state):
        """``r(t_k) = r(t_0) + k b`` for k = 0..steps-1: (batch, steps, latent_size)."""
        k = ops.arange(self.steps, dtype=initial_state.dtype)
        step = ops.cast(self.latent_step, initial_state.dtype)
        return initial_state[:, None, :] + k[None, :, None] * step[None, None, :]

    def call(self, inputs, training=False):
        (observation,) = self._unpack(inputs)
        mean, log_sigma = self._latent_distribution(observation)
        state = self._latent_sample(mean, log_sigma, training)
        return self.decode_tensor(self.latent_trajectory(state))

    def decode_tensor(self, states):
        """Observations decoded from latent states (..., latent_size) -> (..., output_size)."""
        out = apply_stack(self.decoder_layers, states)
        return wrap_angle(out) if self.wrap_angles else out

    def get_config(self):
        config = super().get_config()
        config.update(
            observation_size=self.observation_size,
            output_size=self.output_size,
            latent_size=self.latent_size,
            steps=self.steps,
            encoder_units=list(self.encoder_units),
            decoder_units=list(self.decoder_units),
            beta=self.beta,
            prior_sigma=self.prior_sigma,
            latent_layout=self.latent_layout,
            mean_activation=self.mean_activation,
            wrap_angles=self.wrap_angles,
            activation=self.activation,
            input_name=self.input_name,
            output_name=self.output_name,
        )
        return config


# --------------------------------------------------------------------------
# The authors' TF1 checkpoints (shared/reference/scinet-original)
# --------------------------------------------------------------------------

def _original_dense_names(prefix, count, recurrent):
    if recurrent and prefix == "encoder":
        return [(f"dynamic_encoder/{k}th_enc_layer/w_enc{k}", f"dynamic_encoder/{k}th_enc_layer/b_enc{k}") for k in range(count)]
    if recurrent:
        return [(f"RNN/decoder_vars/w_dec{k}", f"RNN/decoder_vars/b_dec{k}") for k in range(count)]
    short = "enc" if prefix == "encoder" else "dec"
    return [(f"{prefix}/{k}th_{short}_layer/w", f"{prefix}/{k}th_{short}_layer/b") for k in range(count)]


def from_original_checkpoint(checkpoint_prefix: str, constructor_args: dict):
    """Build a zoo SciNet holding the weights of one of the authors' TF1 checkpoints.

    Args:
        checkpoint_prefix: path without extension, e.g. ``.../oscillator.ckpt``.
        constructor_args: the JSON saved next to the checkpoint (``input_size``,
            ``latent_size``, ``encoder_num_units``, ...).

    The pendulum and collision networks are question SciNets whose encoder
    emits ``[log_sigma | mean]``; the copernicus network is recurrent, emits
    ``[mean | log_sigma]`` with ``tanh`` on the mean, and does not wrap angles.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint_prefix)
    args = constructor_args
    recurrent = "time_series_length" in args
    if recurrent:
        model = RecurrentSciNet(
            observation_size=args["input_size"] * args["output_size"],
            output_size=args["output_size"],
            latent_size=args["latent_size"],
            steps=args["time_series_length"],
            encoder_units=args["encoder_num_units"],
            decoder_units=args["decoder_num_units"],
            mean_activation="tanh",
            wrap_angles=False,
        )
    else:
        model = SciNet(
            observation_size=args["input_size"],
            question_size=args["input2_size"],
            output_size=args["output_size"],
            latent_size=args["latent_size"],
            encoder_units=args["encoder_num_units"],
            decoder_units=args["decoder_num_units"],
            latent_layout="log_sigma_first",
        )
    model.build_with_examples()
    for layers, prefix in ((model.encoder_layers, "encoder"), (model.decoder_layers, "decoder")):
        for layer, (w, b) in zip(layers, _original_dense_names(prefix, len(layers), recurrent)):
            layer.set_weights([reader.get_tensor(w), reader.get_tensor(b)])
    if recurrent:
        model.latent_step.assign(reader.get_tensor("RNN/euler_vars/b_euler0"))
    return model


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

TWO_PI = 2 * math.pi

_PRESETS = (
    PresetSpec(
        name="scinet-pendulum",
        model_class=SciNet,
        config=dict(
            observation_size=50, question_size=1, output_size=1, latent_size=2,
            encoder_units=[500, 100], decoder_units=[100, 100], beta=1e-4, output_name="position",
        ),
        summary="Damped pendulum: 50 positions on t in [0, 5] -> 2 latents (b, kappa) -> position at a later time.",
        inputs=(
            TensorSpec("observations", (None, 50), "x(t) at 50 equally spaced times on [0, 5], amplitude A0 = 1"),
            TensorSpec("question", (None, 1), "the time t' in [0, 10] at which to predict the position"),
        ),
        outputs=(TensorSpec("position", (None, 1), "predicted x(t')"),),
        paper=PAPER,
    ),
    PresetSpec(
        name="scinet-qubit-1",
        model_class=SciNet,
        config=dict(
            observation_size=10, question_size=10, output_size=1, latent_size=2,
            encoder_units=[100, 100], decoder_units=[100, 100], beta=1e-6, output_name="probability",
        ),
        summary="One-qubit tomography: 10 fixed projective measurement probabilities -> 2 latents -> |<w|psi>|^2.",
        inputs=(
            TensorSpec("observations", (None, 10), "probabilities |<phi_i|psi>|^2 of the 10 fixed reference states"),
            TensorSpec("question", (None, 10), "the measurement state w, given as |<phi_i|w>|^2 for the same references"),
        ),
        outputs=(TensorSpec("probability", (None, 1), "predicted |<w|psi>|^2"),),
        paper=PAPER,
    ),
    PresetSpec(
        name="scinet-qubit-2",
        model_class=SciNet,
        config=dict(
            observation_size=30, question_size=30, output_size=1, latent_size=6,
            encoder_units=[300, 100], decoder_units=[300, 100], beta=1e-6, output_name="probability",
        ),
        summary="Two-qubit tomography: 30 fixed projective measurement probabilities -> 6 latents -> |<w|psi>|^2.",
        inputs=(
            TensorSpec("observations", (None, 30), "probabilities |<phi_i|psi>|^2 of the 30 fixed reference states"),
            TensorSpec("question", (None, 30), "the measurement state w, given as |<phi_i|w>|^2 for the same references"),
        ),
        outputs=(TensorSpec("probability", (None, 1), "predicted |<w|psi>|^2"),),
        paper=PAPER,
    ),
    PresetSpec(
        name="scinet-collision",
        model_class=SciNet,
        config=dict(
            observation_size=30, question_size=16, output_size=2, latent_size=1,
            encoder_units=[150, 100], decoder_units=[100, 150], beta=1e-4, output_name="position",
        ),
        summary="Collision of a free particle with a rotating body: 1 latent (the conserved angular momentum).",
        inputs=(
            TensorSpec("observations", (None, 30), "before the collision: 5 samples of (x, y, t) of the free particle, then 5 of the rotating one, grouped by quantity"),
            TensorSpec("question", (None, 16), "after the collision: 5 samples of (x, y, t) of the free particle, grouped by quantity, then the prediction time"),
        ),
        outputs=(TensorSpec("position", (None, 2), "(x, y) of the rotating body at the prediction time"),),
        paper=PAPER,
    ),
    PresetSpec(
        name="scinet-heliocentric",
        model_class=RecurrentSciNet,
        config=dict(
            observation_size=2, output_size=2, latent_size=2, steps=50,
            encoder_units=[100, 100], decoder_units=[150, 150], beta=1e-6, wrap_angles=True,
            input_name="initial_angles", output_name="angles",
        ),
        summary="Sun and Mars seen from Earth: 2 latents (the heliocentric angles) evolving r <- r + b, 50 weekly steps.",
        inputs=(TensorSpec("initial_angles", (None, 2), "(theta_Sun, theta_Mars) seen from Earth at t = 0, radians in (-pi, pi]"),),
        outputs=(TensorSpec("angles", (None, 50, 2), "predicted (theta_Sun, theta_Mars) at t = 0, 7, ..., 343 days, radians in (-pi, pi]"),),
        paper=PAPER,
    ),
)


def latent_scan_section(metadata) -> str:
    """The latent-size scan table of the recipes that ran one (the qubit presets)."""
    scan = metadata.get("latent_scan") or {}
    if not scan:
        return ""
    hyper = metadata["recipe"]["hyperparameters"]
    metrics = metadata["metrics"]
    rows = [
        f"\n### Latent-size scan\n\nEach scan point is a fresh model trained for {hyper.get('scan_epochs')} epochs on "
        f"{hyper.get('scan_n_train')} samples (shorter than the shipped preset); error on the held-out set. The knee is "
        f"the size k whose latent gives the largest relative improvement, err(k-1)/err(k); at the knee the error is "
        f"{metrics.get('latent_scan_knee_error_over_floor', float('nan')):.3g} times the smallest error of the scan. "
        f"Knee: **{metrics.get('latent_scan_knee')}**.\n",
        "| latents | held-out RMS error |",
        "|---|---|",
    ]
    rows += [f"| {k} | {v:.4g} |" for k, v in sorted(scan.items(), key=lambda kv: int(kv[0]))]
    return "\n".join(rows) + "\n"


BIBTEX = """@article{iten2020discovering,
  title = {Discovering Physical Concepts with Neural Networks},
  author = {Iten, Raban and Metger, Tony and Wilming, Henrik and del Rio, L{\\'i}dia and Renner, Renato},
  journal = {Phys. Rev. Lett.},
  volume = {124},
  pages = {010508},
  year = {2020},
  doi = {10.1103/PhysRevLett.124.010508},
  eprint = {1807.10300},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="scinet",
    module=__name__,
    bibtex=BIBTEX,
    task="physical-concept-discovery",
    presets=_PRESETS,
    intended_use=(
        "Reproducing and extending the SciNet experiments of Iten et al.: reading physical parameters "
        "off the latent neurons, predicting the system's behaviour, and fine-tuning on related systems. "
        "The models are trained on idealised, noise-free (or lightly noised) simulations in the parameter "
        "ranges below; outside those ranges predictions are extrapolations."
    ),
    limitations=(
        "Trained on simulations of idealised systems; no measurement noise beyond what the simulator documents. "
        "The latent interpretation (which latent carries which parameter) holds up to invertible smooth maps, "
        "as the fits above quantify."
    ),
    tiny_overrides={"encoder_units": [8], "decoder_units": [8]},
    card_sections=latent_scan_section,
)
