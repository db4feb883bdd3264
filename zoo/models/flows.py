"""RealNVP normalising flows that sample lattice field theories, trained on the action alone.

Albergo, Kanwar & Shanahan, "Flow-based generative models for Markov chain Monte
Carlo in lattice field theory", PRD 100, 034515 (2019); the RealNVP of Dinh,
Sohl-Dickstein & Bengio (arXiv:1605.08803); the flow-RG view of Li & Wang, PRL 121,
260601 (2018).

A flow f maps prior noise z ~ N(0, 1) on every site to a field phi = f(z), with an
exact density q(phi) = N(z) |det df/dz|^-1. Trained by minimising
KL(q || p) = E_q[log q(phi) + S(phi)] + log Z, it needs no data, only the action; the
loss bounds the free energy, -log Z <= E_q[log q + S]. Since q(phi) is exact, an
independence Metropolis-Hastings chain with flow proposals (accept with
min(1, w(phi') / w(phi)), w = exp(-S) / q) samples exp(-S) / Z exactly.

Each coupling layer updates half of the sites, a checkerboard, from the other half:

    phi_active = z_active * exp(s(z_frozen)) + t(z_frozen),   log |det| = sum_active s

with s and t from a small convolutional network with periodic padding (the lattice
is a torus). Alternating parities update every site. The prior is a
``tensorflow_probability`` Normal: its ``log_prob`` returns tensors inside the layer,
as the zoo's design asks (``tfp.layers`` do not work in Keras 3).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from zoo.models.base import ZooModel, replicas_in_sync, row_seeds, stateless_normal_rows
from zoo.spec import Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import SeedCheck

PAPER = ("M. S. Albergo, G. Kanwar, P. E. Shanahan, Flow-based generative models for Markov chain Monte Carlo in "
         "lattice field theory, Phys. Rev. D 100, 034515 (2019), arXiv:1904.12072")


def checkerboard(L: int, parity: int) -> np.ndarray:
    """(L, L) float mask, 1 on the sites with (x + y) % 2 == parity: the sites a coupling layer keeps frozen."""
    x, y = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    return ((x + y) % 2 == parity).astype("float32")


def periodic_pad(x, width: int):
    """Pad (batch, L, L, C) by ``width`` sites on every side with the opposite edge (a torus)."""
    if width == 0:
        return x
    x = ops.concatenate([x[:, -width:], x, x[:, :width]], axis=1)
    return ops.concatenate([x[:, :, -width:], x, x[:, :, :width]], axis=2)


@keras.saving.register_keras_serializable(package="zoo")
class AffineCoupling(keras.layers.Layer):
    """One RealNVP affine coupling on a checkerboard: active sites scaled and shifted by a function of the frozen ones.

    Args:
        L: lattice size; parity: which checkerboard is frozen (0 or 1).
        hidden_channels: channels of each hidden convolution; kernel_size: their (odd) size.
    """

    def __init__(self, L: int, parity: int, hidden_channels=(8, 8), kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if int(kernel_size) % 2 != 1:
            raise ValueError(f"kernel_size must be odd (periodic 'same' padding); received {kernel_size}.")
        self.L, self.parity = int(L), int(parity)
        self.hidden_channels, self.kernel_size = tuple(int(c) for c in hidden_channels), int(kernel_size)
        self.frozen = checkerboard(self.L, self.parity)[None, :, :]
        self.convolutions = [keras.layers.Conv2D(c, self.kernel_size, padding="valid", activation="leaky_relu",
                                                 name=f"hidden_{i}") for i, c in enumerate(self.hidden_channels)]
        self.convolutions.append(keras.layers.Conv2D(2, self.kernel_size, padding="valid", activation="tanh",
                                                     kernel_initializer="zeros", name="scale_shift"))

    def build(self, input_shape):
        channels = 1
        for convolution in self.convolutions:
            convolution.build((None, self.L + self.kernel_size - 1, self.L + self.kernel_size - 1, channels))
            channels = convolution.filters

    def _scale_shift(self, frozen_part):
        h = frozen_part[..., None]
        for convolution in self.convolutions:
            h = convolution(periodic_pad(h, self.kernel_size // 2))
        active = 1.0 - self.frozen
        return h[..., 0] * active, h[..., 1] * active  # s, t vanish on the frozen sites

    def call(self, z):
        """z -> (phi, log |det dphi/dz|) per configuration."""
        s, t = self._scale_shift(z * self.frozen)
        return z * ops.exp(s) + t, ops.sum(s, axis=(1, 2))

    def inverse(self, phi):
        """phi -> (z, log |det dz/dphi|)."""
        s, t = self._scale_shift(phi * self.frozen)
        return (phi - t) * ops.exp(-s), -ops.sum(s, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "L": self.L, "parity": self.parity,
                "hidden_channels": list(self.hidden_channels), "kernel_size": self.kernel_size}


def phi4_action(phi, m2: float, lam: float):
    """S = sum_x [-2 sum_mu phi_x phi_{x+mu} + (4 + m2) phi_x^2 + lam phi_x^4] (Albergo et al., eq. 2), (batch,)."""
    hopping = phi * (ops.roll(phi, -1, axis=1) + ops.roll(phi, -1, axis=2))
    return ops.sum(-2.0 * hopping + (4.0 + m2) * phi**2 + lam * phi**4, axis=(1, 2))


@keras.saving.register_keras_serializable(package="zoo")
class RealNVPFlow(ZooModel):
    """A RealNVP flow over L x L real scalar fields with the phi^4 action of Albergo et al.

    ``sample(n, seed)`` gives fields (n, L, L) and their log q (n,), exactly (no Markov chain);
    ``log_prob(fields)`` gives log q; ``action(fields)`` the action S in the preset's convention;
    ``encode`` maps fields to the prior's variables and ``decode`` back.

    Args:
        L: lattice size; m2, lam: the action's parameters.
        coupling_layers: number of affine couplings (alternating checkerboard parities).
        hidden_channels, kernel_size: each coupling's convolutional network.

    Example:
        >>> flow = zoo.load("realnvp-phi4-L8")
        >>> phi, log_q = flow.sample(1000, seed=1)
        >>> log_w = -flow.action(phi) - log_q        # importance weights of exp(-S)

    Albergo, Kanwar, Shanahan, PRD 100, 034515 (2019).
    """

    training_spec = TrainingSpec(loss=None, multiworker_refusal=(
        "The flow trains with its own reverse-KL train_step through Keras fit, which fails under "
        "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy cpu, auto, mirrored or tpu."))
    fine_tuning = FineTuning(refusal=(
        "A flow trained on the action needs no data, so `zoo finetune` does not apply. Continue the training in "
        "Python for another action: model = zoo.load(NAME, m2=..., lam=...); model.compile(optimizer=...); "
        "model.fit(np.zeros((steps * batch, 1)), batch_size=batch)."))

    def __init__(self, L: int = 8, m2: float = -4.0, lam: float = 8.0, coupling_layers: int = 16,
                 hidden_channels=(8, 8), kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if int(L) < 2 or int(L) % 2:
            raise ValueError(f"L must be an even lattice size >= 2 (checkerboard couplings); received {L}.")
        self.L, self.m2, self.lam = int(L), float(m2), float(lam)
        self.coupling_layers = int(coupling_layers)
        self.hidden_channels, self.kernel_size = tuple(int(c) for c in hidden_channels), int(kernel_size)
        self.couplings = [AffineCoupling(self.L, i % 2, self.hidden_channels, self.kernel_size, name=f"coupling_{i}")
                          for i in range(self.coupling_layers)]
        self.prior = tfp.distributions.Normal(0.0, 1.0)
        self._compiled_sampler = None

    # ------------------------------------------------------------------ the bijection

    def build(self, input_shape=None):
        for coupling in self.couplings:
            coupling.build((None, self.L, self.L))
        self.built = True

    def decode(self, z):
        """Prior variables z (batch, L, L) -> (fields, log |det dphi/dz|)."""
        log_det = ops.zeros(ops.shape(z)[:1])
        for coupling in self.couplings:
            z, step = coupling(z)
            log_det = log_det + step
        return z, log_det

    def encode(self, phi):
        """Fields (batch, L, L) -> (prior variables z, log |det dz/dphi|)."""
        log_det = ops.zeros(ops.shape(phi)[:1])
        for coupling in reversed(self.couplings):
            phi, step = coupling.inverse(phi)
            log_det = log_det + step
        return phi, log_det

    def prior_log_prob(self, z):
        return ops.sum(self.prior.log_prob(z), axis=(1, 2))

    def log_prob_tensor(self, phi):
        z, log_det = self.encode(phi)
        return self.prior_log_prob(z) + log_det

    def action_tensor(self, phi):
        return phi4_action(phi, self.m2, self.lam)

    def call(self, inputs, training=False):
        phi = inputs["fields"] if isinstance(inputs, dict) else inputs
        return self.log_prob_tensor(ops.cast(phi, "float32"))

    # ------------------------------------------------------------------ endpoints

    def endpoints(self) -> tuple:
        fields = TensorSpec("fields", (None, self.L, self.L), f"real scalar fields on the {self.L} x {self.L} torus")
        log_q = TensorSpec("log_q", (None,), "log q(phi), the flow's exact log density")
        seeds = TensorSpec("seed", (None,), "one seed per field (integer >= 0): equal seeds give equal fields",
                           dtype="int64")
        latent = TensorSpec("latent", (None, self.L, self.L), "the prior's variables z ~ N(0, 1) per site")
        return (
            Endpoint("serving_default", lambda fields: {"log_q": self.log_prob_tensor(fields)}, (fields,), (log_q,),
                     description="fields -> log q(phi)"),
            Endpoint("sample", self._sample_graph, (seeds,), (fields, log_q), check=SeedCheck(),
                     description="one seed per field -> fields drawn from the flow and their log q"),
            Endpoint("action", lambda fields: {"action": self.action_tensor(fields)}, (fields,),
                     (TensorSpec("action", (None,), f"S(phi) with m2 = {self.m2:g}, lam = {self.lam:g}"),),
                     description="fields -> the action S"),
            Endpoint("encode", lambda fields: {"latent": self.encode(fields)[0]}, (fields,), (latent,),
                     description="fields -> prior variables"),
            Endpoint("decode", lambda latent: {"fields": self.decode(latent)[0]}, (latent,), (fields,),
                     description="prior variables -> fields"),
        )

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        rng = np.random.default_rng(seed)
        if endpoint == "sample":
            return {"seed": rng.integers(0, 2**31, batch_size).astype("int64")}
        name = "latent" if endpoint == "decode" else "fields"
        return {name: rng.normal(0, 0.5, (batch_size, self.L, self.L)).astype("float32")}

    def prior_noise(self, seeds):
        """z ~ N(0, 1) on every site of each field, from its own stateless seed."""
        return stateless_normal_rows(seeds, (self.L, self.L), salt=104729)

    def _sample_graph(self, seed):
        z = self.prior_noise(seed)
        phi, log_det = self.decode(z)
        return {"fields": phi, "log_q": self.prior_log_prob(z) - log_det}

    # ------------------------------------------------------------------ numpy entry points

    def sample(self, n: int, seed: int | None = None, batch_size: int = 4096) -> tuple:
        """``n`` fields (n, L, L) and their log q (n,) as numpy; the same seed gives the same fields."""
        if int(n) < 1:
            raise ValueError(f"sample needs n >= 1; received {n}.")
        out = self.run_endpoint("sample", {"seed": row_seeds(n, seed)}, batch_size=batch_size)
        return out["fields"], out["log_q"]

    def log_prob(self, fields, batch_size: int = 4096) -> np.ndarray:
        """log q(phi) (n,) of fields (n, L, L)."""
        return self.run_endpoint("serving_default", {"fields": fields}, batch_size=batch_size)["log_q"]

    def action(self, fields, batch_size: int = 4096) -> np.ndarray:
        """The action S(phi) (n,) in the preset's convention."""
        return self.run_endpoint("action", {"fields": fields}, batch_size=batch_size)["action"]

    # ------------------------------------------------------------------ training: reverse KL on the action

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        n = ops.shape(x)[0]
        z = keras.random.normal((n, self.L, self.L), seed=self._training_seed())
        with tf.GradientTape() as tape:
            phi, log_det = self.decode(z)
            log_q = self.prior_log_prob(z) - log_det
            action = self.action_tensor(phi)
            loss = ops.mean(log_q + action)  # KL(q || p) - log Z: the variational free energy
            scaled = loss / replicas_in_sync()
        self.optimizer.apply(tape.gradient(scaled, self.trainable_variables), self.trainable_variables)
        log_w = -action - log_q
        ess = ops.exp(2 * ops.logsumexp(log_w) - ops.logsumexp(2 * log_w)) / ops.cast(n, "float32")
        return {"loss": loss, "ess": ess}

    def _training_seed(self):
        if "_zoo_seed" not in self.__dict__:
            object.__setattr__(self, "_zoo_seed", keras.random.SeedGenerator(0))
        return self.__dict__["_zoo_seed"]

    def layer_groups(self) -> dict:
        return {"couplings": self.couplings}

    def get_config(self):
        return {**super().get_config(), "L": self.L, "m2": self.m2, "lam": self.lam,
                "coupling_layers": self.coupling_layers, "hidden_channels": list(self.hidden_channels),
                "kernel_size": self.kernel_size}


# ---------------------------------------------------------------------------- presets

_PRESETS = (
    PresetSpec(
        name="realnvp-phi4-L8",
        model_class=RealNVPFlow,
        config=dict(L=8, m2=-4.0, lam=8.0, coupling_layers=16, hidden_channels=[8, 8], kernel_size=3),
        recipe="training.recipes.flows:recipe_phi4_L8",
        summary="RealNVP flow of 2D phi^4 on 8 x 8 at Albergo et al.'s point (m2 = -4, lam = 8): exact samples "
                "with log q; Metropolis makes them exact draws of exp(-S).",
        inputs=(TensorSpec("fields", (None, 8, 8), "real scalar fields on the 8 x 8 torus"),),
        outputs=(TensorSpec("log_q", (None,), "log q(phi)"),),
        paper=PAPER,
    ),
)

BIBTEX = """@article{albergo2019flow,
  title = {Flow-based generative models for Markov chain Monte Carlo in lattice field theory},
  author = {Albergo, M. S. and Kanwar, G. and Shanahan, P. E.},
  journal = {Phys. Rev. D},
  volume = {100},
  pages = {034515},
  year = {2019},
  doi = {10.1103/PhysRevD.100.034515},
  eprint = {1904.12072},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="flows",
    module=__name__,
    bibtex=BIBTEX,
    task="lattice-field-sampling",
    presets=_PRESETS,
    intended_use=(
        "Sampling 2D lattice phi^4 theory at the preset's couplings without a Markov chain: `sample(n, seed)` "
        "draws fields with their exact log density, which importance weights or an independence Metropolis "
        "step turn into exact samples of exp(-S) / Z; `log_prob`, `action`, `encode` and `decode` expose the "
        "flow. A starting point for flows at nearby couplings (continue the reverse-KL training in Python). "
        "tensorflow-probability supplies the prior (a `Normal` whose `log_prob` returns tensors inside the model); "
        "the couplings are Keras layers rather than tfp bijectors, so that Keras tracks, saves and exports their "
        "networks' weights like any other layer's."
    ),
    limitations=(
        "One lattice size and one point (m2, lam) per preset; the flow is trained by reverse KL, which can miss "
        "modes (a symmetric double well is the classic case), and the Metropolis acceptance and ESS in the "
        "tables say how close q is to exp(-S) / Z. Observables are only exact after the accept/reject step."
    ),
    tiny_overrides={"coupling_layers": 2, "hidden_channels": [2]},
)
