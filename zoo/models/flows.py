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
is a torus). Alternating parities update every site. The prior is N(0, 1) on every site, its log
density written out in ``keras.ops``, so the flow runs on every Keras backend.

:class:`NeuralRGFlow` is the hierarchical flow of Li & Wang: small RealNVP bijectors on
2 x 2 plaquettes, arranged like a MERA tensor network. Read from the field towards the
latent variables, each level disentangles across plaquette borders, then decimates:
one variable per plaquette moves on to a lattice of half the size, three stay behind as
the latent variables of that scale. The generator runs this backwards, coarse to fine,
so the latent field is a renormalisation-group flow (Hu, Li, Wang & You read it as a
holographic bulk). :class:`LatticeFlow` holds what both flows share: the prior, the
endpoints, exact sampling and the reverse-KL training step.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from zoo import mcmc
from zoo.models.backend import (
    OwnLossTraining,
    coin_rows,
    compile_energy_and_gradient,
    normal_rows,
    step_rows,
)
from zoo.models.base import MAX_SEED, ZooModel, require_count, row_seeds
from zoo.spec import RANDOM_DRAWS_ONNX_REFUSAL, Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import SeedCheck

TRAINING_SALT = 611953  # the training draws' stream, apart from the samplers'
K_CRITICAL = float(0.5 * np.log1p(np.sqrt(2.0)))  # Onsager: sinh 2K_c = 1
NEURALRG_PAPER = ("S.-H. Li and L. Wang, Neural Network Renormalization Group, Phys. Rev. Lett. 121, 260601 (2018), "
                  "arXiv:1802.02840")
HOLOGRAPHIC_PAPER = ("H.-Y. Hu, S.-H. Li, L. Wang and Y.-Z. You, Machine learning holographic mapping by neural "
                     "network renormalization group, Phys. Rev. Research 2, 023369 (2020), arXiv:1903.00804")
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
        return ops.multiply(h[..., 0], active), ops.multiply(h[..., 1], active)  # s, t vanish on the frozen sites

    def call(self, z):
        """z -> (phi, log |det dphi/dz|) per configuration."""
        s, t = self._scale_shift(ops.multiply(z, self.frozen))
        return z * ops.exp(s) + t, ops.sum(s, axis=(1, 2))

    def inverse(self, phi):
        """phi -> (z, log |det dz/dphi|)."""
        s, t = self._scale_shift(ops.multiply(phi, self.frozen))
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


def complex_phi4_action(phi, kappa: float, lam: float):
    """S = sum_x [|phi|^2 - 2 kappa sum_mu Re(phi_x^* phi_{x+mu}) + lam (|phi|^2 - 1)^2] of fields (batch, L, L, 2)."""
    modulus2 = ops.sum(phi * phi, axis=-1)
    hopping = ops.sum(phi * (ops.roll(phi, -1, axis=1) + ops.roll(phi, -1, axis=2)), axis=-1)
    return ops.sum(modulus2 - 2.0 * kappa * hopping + lam * (modulus2 - 1.0) ** 2, axis=(1, 2))


def hs_inverse_coupling(L: int, K: float) -> np.ndarray:
    """(L^2, L^2) matrix M^{-1} of the continuous Ising model, M = K A + offset I with NeuralRG's offset.

    M is diagonal in momentum space with eigenvalues K a(p) + offset, a(p) = 2 cos p1 + 2 cos p2;
    offset = 0.1 + 4K makes its smallest eigenvalue 0.1 (the lattice simulator's docstring has the derivation).
    """
    p = 2 * np.pi * np.fft.fftfreq(L)
    spectrum = K * (2 * np.cos(p)[:, None] + 2 * np.cos(p)[None, :])
    spectrum = spectrum + 0.1 - spectrum.min()
    kernel = np.fft.ifft2(1.0 / spectrum).real  # M^{-1}(x - y), translation invariant
    x = np.arange(L)
    dx = (x[:, None, None, None] - x[None, None, :, None]) % L
    dy = (x[None, :, None, None] - x[None, None, None, :]) % L
    return kernel[dx, dy].reshape(L * L, L * L).astype("float32")


def logaddexp(a, b):
    """log(e^a + e^b) = max(a, b) + softplus(-|a - b|): keras.ops.logaddexp with Softplus instead of Log1p, which
    ONNX lacks (so the Z2-symmetrised flows export to ONNX)."""
    return ops.maximum(a, b) + ops.softplus(-ops.abs(a - b))


def hs_ising_action(x, inverse_coupling):
    """S(x) = x^T M^{-1} x / 2 - sum_i ln cosh x_i of fields (batch, L, L) (Li & Wang 2018)."""
    flat = ops.reshape(x, (-1, inverse_coupling.shape[0]))
    gaussian = 0.5 * ops.sum(flat * ops.matmul(flat, inverse_coupling), axis=1)
    log_cosh = ops.abs(flat) + ops.softplus(-2.0 * ops.abs(flat)) - np.log(2.0)  # softplus(y) = log(1 + e^y), stable
    return gaussian - ops.sum(log_cosh, axis=1)


@dataclasses.dataclass(frozen=True)
class MarkovChain:
    """What :meth:`LatticeFlow.mcmc` returns.

    Attributes:
        method: ``"metropolis"`` or ``"latent_hmc"``.
        fields: (n, L, L[, 2]) in Markov-time order; with several chains, time-major (``fields[t * chains + c]``).
        acceptance: the fraction of proposals (Metropolis) or trajectories (HMC) accepted.
        tau_int: integrated autocorrelation times (Sokal's window; 1/2 for independent fields) of the action
            per site and of |m|, in steps of one chain (NaN for chains shorter than 4 steps).
        chains: independent chains interleaved in ``fields``.
        ess: the proposals' effective sample size per proposal, (sum w)^2 / (N sum w^2) (Metropolis only).
    """

    method: str
    fields: np.ndarray
    acceptance: float
    tau_int: dict
    chains: int = 1
    ess: float | None = None

    @property
    def independent_samples(self) -> float:
        """About how many independent fields the chain holds: n / (2 tau_int) of the slower observable."""
        slowest = max(self.tau_int.values())
        return float(len(self.fields) / (2 * slowest)) if math.isfinite(slowest) else float("nan")


def latent_energy(model, z):
    """U(z) = S(f(z)) - ln |det df/dz|: exp(-S) pulled back through the flow's generator f."""
    phi, log_det = model.decode(z)
    return model.action_tensor(phi) - log_det


class LatticeFlow(OwnLossTraining, ZooModel):
    """What every lattice flow shares: a N(0, 1) prior on every site, the endpoints, exact sampling, reverse KL.

    A subclass supplies ``decode`` (prior variables -> fields, with log |det|), ``encode`` (its inverse),
    ``action_tensor`` and ``components`` (1 for real fields (n, L, L), 2 for complex ones (n, L, L, 2)).
    """

    components = 1
    symmetrize = False  # sample and score the Z2 mixture (q(phi) + q(-phi)) / 2 instead of q
    training_spec = TrainingSpec(loss=None, multiworker_refusal=(
        "The flow trains with its own reverse-KL train_step through Keras fit, which fails under "
        "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy cpu, auto, mirrored or tpu."))
    fine_tuning = FineTuning(refusal=(
        "A flow trained on the action needs no data, so `zoo finetune` does not apply. Continue the training in "
        "Python for another action: model = zoo.load(NAME, <couplings>=...); model.compile(optimizer=...); "
        "model.fit(np.zeros((steps * batch, 1)), batch_size=batch)."))

    @property
    def field_shape(self) -> tuple:
        return (self.L, self.L) if self.components == 1 else (self.L, self.L, self.components)

    def prior_log_prob(self, z):
        sites = math.prod(z.shape[1:])
        return -0.5 * ops.sum(ops.reshape(ops.square(z), (-1, sites)), axis=1) - 0.5 * math.log(2.0 * math.pi) * sites

    def flow_log_prob(self, phi):
        """log q(phi) of the bijection alone."""
        z, log_det = self.encode(phi)
        return self.prior_log_prob(z) + log_det

    def log_prob_tensor(self, phi):
        """log q(phi), or with ``symmetrize`` the log density of the mixture (q(phi) + q(-phi)) / 2."""
        return self._mixture_log_prob(phi, self.flow_log_prob(phi))

    def _mixture_log_prob(self, phi, log_q):
        """Given log q(phi), the preset's log density: the same, or with ``symmetrize`` that of the mixture.

        The actions are even in phi, so exp(-S) / Z is too, and the mixture is never further from it
        (KL is convex); where q has learned one of two ordered phases (reverse KL's mode collapse at
        a Z2 transition), the mixture has both."""
        if not self.symmetrize:
            return log_q
        return logaddexp(log_q, self.flow_log_prob(-phi)) - np.log(2.0)

    def call(self, inputs, training=False):
        phi = inputs["fields"] if isinstance(inputs, dict) else inputs
        return self.log_prob_tensor(ops.cast(phi, "float32"))

    # ------------------------------------------------------------------ endpoints

    def action_description(self) -> str:
        raise NotImplementedError

    def endpoints(self) -> tuple:
        kind = "real scalar" if self.components == 1 else "complex (Re, Im)"
        fields = TensorSpec("fields", (None,) + self.field_shape, f"{kind} fields on the {self.L} x {self.L} torus")
        log_q = TensorSpec("log_q", (None,), "log q(phi), the flow's exact log density")
        seeds = TensorSpec("seed", (None,), "one seed per field (integer >= 0): equal seeds give equal fields",
                           dtype="int64")
        latent = TensorSpec("latent", (None,) + self.field_shape, "the prior's variables z ~ N(0, 1) per site")
        return (
            Endpoint("serving_default", lambda fields: {"log_q": self.log_prob_tensor(fields)}, (fields,), (log_q,),
                     description="fields -> log q(phi)"),
            Endpoint("sample", self._sample_graph, (seeds,), (fields, log_q), check=SeedCheck(),
                     description="one seed per field -> fields drawn from the flow and their log q",
                     onnx_refusal=RANDOM_DRAWS_ONNX_REFUSAL),
            Endpoint("action", lambda fields: {"action": self.action_tensor(fields)}, (fields,),
                     (TensorSpec("action", (None,), self.action_description()),),
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
        return {name: rng.normal(0, 0.5, (batch_size,) + self.field_shape).astype("float32")}

    def prior_noise(self, seeds):
        """z ~ N(0, 1) on every site of each field, from its own stateless seed."""
        return normal_rows(seeds, self.field_shape, salt=104729)

    def _sample_graph(self, seed):
        z = self.prior_noise(seed)
        phi, log_det = self.decode(z)
        log_q = self._mixture_log_prob(phi, self.prior_log_prob(z) - log_det)
        if self.symmetrize:  # a fair coin per row, from the row's seed, picks phi or -phi
            phi = phi * ops.reshape(coin_rows(seed, salt=15485863), (-1,) + (1,) * len(self.field_shape))
        return {"fields": phi, "log_q": log_q}

    # ------------------------------------------------------------------ numpy entry points

    def sample(self, n: int, seed=None, batch_size: int = 4096) -> tuple:
        """``n`` fields (n, L, L[, 2]) drawn from the flow and their log q (n,), as numpy.

        Each field is drawn from its own seed: ``seed`` is None (fresh entropy), an integer s (expanded into
        per-field seeds by :func:`zoo.row_seeds`) or an integer array (n,) of per-field seeds, exactly what
        the served ``sample`` signature takes; ``{"seed": zoo.row_seeds(n, s)}`` served gives the fields of
        ``sample(n, seed=s)``.
        """
        n = require_count(n, "sample's number of fields n")
        out = self.run_endpoint("sample", {"seed": row_seeds(n, seed)}, batch_size=batch_size)
        return out["fields"], out["log_q"]

    def mcmc(self, n: int, seed=None, method: str = "metropolis", chains: int = 16, step_size: float = 0.2,
             leapfrog_steps: int = 5, burn_in: int = 50) -> MarkovChain:
        """``n`` fields distributed exactly as exp(-S) / Z, from a Markov chain that uses the flow.

        ``method`` is one of

        - ``"metropolis"``: independence Metropolis over ``n`` flow proposals (Albergo, Kanwar & Shanahan
          2019): proposal i replaces the current field with probability min(1, w_i / w), w = exp(-S) / q.
          The flow sets only the acceptance; the chain is exact. ``chains`` is not used.
        - ``"latent_hmc"``: HMC in the flow's latent space on U(z) = S(f(z)) - ln |det df/dz| (Hu, Li, Wang &
          You 2019), ``chains`` chains of ``n // chains`` fields after ``burn_in`` trajectories of
          ``leapfrog_steps`` steps of ``step_size`` (jittered by 20%). Where the flow is good U(z) is close to
          z^2 / 2 and HMC moves nearly independent Gaussians. The actions are even, so each stored field gets
          an independent fair sign: each step is then one of four exp(-S)-preserving kernels (the
          trajectory, with or without a flip before and after) chosen independently of the state, so the
          chain stays exact, and it visits both ordered phases, which a flow that learned one cannot reach
          by HMC alone.

        ``seed``: None (fresh entropy) or an integer; the same integer gives the same chain. S is the flow's
        own float32 action (``action`` endpoint). Returns a :class:`MarkovChain` with the fields in
        Markov-time order, the acceptance and the integrated autocorrelation times of S / V and |m|.
        """
        n = require_count(n, "mcmc's number of fields n")
        seed = np.random.SeedSequence().entropy % MAX_SEED if seed is None else seed
        if method == "metropolis":
            return self._independence_metropolis(n, seed)
        if method == "latent_hmc":
            chains = require_count(chains, "mcmc's number of chains")
            if n < chains:
                raise ValueError(f"mcmc with method='latent_hmc' needs n >= chains; received n = {n}, chains = "
                                 f"{chains}.")
            return self._latent_hmc(n // chains, seed, chains, step_size, leapfrog_steps, burn_in)
        raise ValueError(f"mcmc's method must be 'metropolis' or 'latent_hmc'; received {method!r}.")

    def _independence_metropolis(self, n: int, seed: int) -> MarkovChain:
        proposals, log_q = self.sample(n, seed=seed)
        log_w = -self.action(proposals).astype(np.float64) - log_q.astype(np.float64)
        index, acceptance = mcmc.independence_metropolis(log_w, seed)
        return self._chain("metropolis", proposals[index], acceptance, 1, mcmc.effective_sample_size(log_w))

    def _latent_hmc(self, per_chain: int, seed: int, chains: int, step_size: float, leapfrog_steps: int,
                    burn_in: int) -> MarkovChain:
        energy_and_gradient = compile_energy_and_gradient(self, latent_energy)
        last = {}

        def evaluate(z):  # HMC asks for the force and then the energy of the same array: one pass gives both
            if "z" not in last or not np.array_equal(last["z"], z):
                energy, force = energy_and_gradient(z.astype(np.float32))
                last.update(z=np.array(z), energy=energy.astype(np.float64), force=force.astype(np.float64))
            return last

        rng = np.random.default_rng(seed)
        z = rng.standard_normal((chains,) + self.field_shape)
        burn_seed, run_seed = rng.integers(2 ** 63, size=2)
        energy, force = (lambda z: evaluate(z)["energy"]), (lambda z: evaluate(z)["force"])
        if burn_in > 0:
            z = mcmc.hmc(energy, force, z, burn_in, step_size, leapfrog_steps, int(burn_seed))[0][-1]
        latent, acceptance = mcmc.hmc(energy, force, z, per_chain, step_size, leapfrog_steps, int(run_seed))
        fields = self.run_endpoint("decode", {"latent": latent.reshape((-1,) + self.field_shape).astype(np.float32)})
        signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(latent) * chains,) + (1,) * len(self.field_shape))
        return self._chain("latent_hmc", fields["fields"] * signs, acceptance, chains)

    def _chain(self, method: str, fields: np.ndarray, acceptance: float, chains: int, ess=None) -> MarkovChain:
        """The chain's record; autocorrelations per chain, over Markov time (fields are time-major)."""
        volume = self.L * self.L
        per_site = (self.action(fields).astype(np.float64) / volume).reshape(-1, chains)
        mean_field = fields.reshape(len(fields), volume, -1).mean(axis=1)
        magnetisation = np.sqrt((mean_field.astype(np.float64) ** 2).sum(axis=-1)).reshape(-1, chains)
        enough = len(per_site) >= 4  # an autocorrelation needs a few steps of Markov time
        tau = {"action_per_site": mcmc.integrated_autocorrelation_time(per_site) if enough else float("nan"),
               "abs_magnetisation": mcmc.integrated_autocorrelation_time(magnetisation) if enough else float("nan")}
        return MarkovChain(method, fields, float(acceptance), tau, chains, ess)

    def log_prob(self, fields, batch_size: int = 4096) -> np.ndarray:
        """log q(phi) (n,) of fields (n, L, L[, 2])."""
        return self.run_endpoint("serving_default", {"fields": fields}, batch_size=batch_size)["log_q"]

    def action(self, fields, batch_size: int = 4096) -> np.ndarray:
        """The action S(phi) (n,) in the preset's convention."""
        return self.run_endpoint("action", {"fields": fields}, batch_size=batch_size)["action"]

    # ------------------------------------------------------------------ training: reverse KL on the action

    def training_loss(self, data):
        """Reverse KL to exp(-S) / Z up to log Z (the variational free energy) on fresh prior draws; the
        effective sample size of the batch rides along as a log."""
        x = data[0] if isinstance(data, tuple) else data
        n = ops.shape(x)[0]
        z = normal_rows(step_rows(self.optimizer.iterations, n), self.field_shape, salt=TRAINING_SALT)
        phi, log_det = self.decode(z)
        # with symmetrize, E over the mixture = E over q of the same integrand: S and the mixture are even
        log_q = self._mixture_log_prob(phi, self.prior_log_prob(z) - log_det)
        action = self.action_tensor(phi)
        loss = ops.mean(log_q + action)
        log_w = ops.stop_gradient(-action - log_q)
        ess = ops.exp(2 * ops.logsumexp(log_w) - ops.logsumexp(2 * log_w)) / ops.cast(n, "float32")
        return loss, {"loss": loss, "ess": ess}


@keras.saving.register_keras_serializable(package="zoo")
class RealNVPFlow(LatticeFlow):
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

    def action_tensor(self, phi):
        return phi4_action(phi, self.m2, self.lam)

    def action_description(self) -> str:
        return f"S(phi) with m2 = {self.m2:g}, lam = {self.lam:g}"

    def layer_groups(self) -> dict:
        return {"couplings": self.couplings}

    def get_config(self):
        return {**super().get_config(), "L": self.L, "m2": self.m2, "lam": self.lam,
                "coupling_layers": self.coupling_layers, "hidden_channels": list(self.hidden_channels),
                "kernel_size": self.kernel_size}


# ---------------------------------------------------------------------------- the hierarchical (NeuralRG) flow

# which sites of a 2 x 2 plaquette (0 = top left, 1 = top right, 2 = bottom left, 3 = bottom right) a block's
# couplings keep frozen, in turn: rows, columns, diagonals and their complements, so every pair talks
PLAQUETTE_MASKS = ((0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2))


def to_plaquettes(y, components: int):
    """(batch, n, n, c) -> (batch, n/2, n/2, 4c): the 2 x 2 plaquettes with corners at even sites, site-major."""
    n = y.shape[1]
    y = ops.reshape(y, (-1, n // 2, 2, n // 2, 2, components))
    return ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, n // 2, n // 2, 4 * components))


def from_plaquettes(blocks, components: int):
    """Inverse of :func:`to_plaquettes`."""
    m = blocks.shape[1]
    y = ops.reshape(blocks, (-1, m, m, 2, 2, components))
    return ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, 2 * m, 2 * m, components))


@keras.saving.register_keras_serializable(package="zoo")
class PlaquetteRealNVP(keras.layers.Layer):
    """A RealNVP bijection of the 4c variables of a 2 x 2 plaquette, the same for every plaquette of a layer.

    NeuralRG's disentangler and decimator blocks (Li & Wang 2018): translation invariance makes one
    small bijector serve every plaquette of a level. Each coupling freezes two of the four sites (all their
    components) and scales and shifts the other two by a multilayer perceptron of the frozen ones,
    s = scale * tanh(.), so the log-determinant is the sum of s. With ``z2_symmetric`` s is made even and
    t odd in the frozen variables, so the bijection commutes with phi -> -phi (Z2 equivariance).

    With ``separate_networks`` each coupling has NeuralRG's own structure instead: two perceptrons, one for s
    and one for t, each fed the whole plaquette with the active sites zeroed and giving a value for every
    site (of which the active ones are used), and a learned scale per site: about twice the parameters for
    the same map. It exists to compare like with like against the original code (benchmarks/).
    """

    def __init__(self, components: int = 1, couplings: int = 4, hidden=(32, 32), z2_symmetric: bool = False,
                 activation: str = "tanh", separate_networks: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.components, self.couplings, self.activation = int(components), int(couplings), str(activation)
        self.hidden, self.z2_symmetric = tuple(int(h) for h in hidden), bool(z2_symmetric)
        self.separate_networks = bool(separate_networks)
        c = self.components
        self.masks = []
        for k in range(self.couplings):
            frozen_sites = PLAQUETTE_MASKS[k % len(PLAQUETTE_MASKS)]
            frozen = [s * c + a for s in frozen_sites for a in range(c)]
            active = [i for i in range(4 * c) if i not in frozen]
            self.masks.append((np.array(frozen), np.array(active), np.argsort(frozen + active)))
        # one perceptron per coupling for (s, t); with separate networks, these give s and shift_networks t
        last = "scale" if self.separate_networks else "scale_shift"
        self.networks = [self._perceptron(f"coupling_{k}", last) for k in range(self.couplings)]
        self.shift_networks = ([self._perceptron(f"coupling_{k}_shift", "output") for k in range(self.couplings)]
                               if self.separate_networks else [])

    def _perceptron(self, name: str, last: str) -> list:
        """Hidden layers of ``hidden`` units and a zero-initialised output of 4c (the coupling starts as the identity)."""
        return ([keras.layers.Dense(h, activation=self.activation, name=f"{name}_hidden_{i}")
                 for i, h in enumerate(self.hidden)]
                + [keras.layers.Dense(4 * self.components, kernel_initializer="zeros", name=f"{name}_{last}")])

    @property
    def _scale_width(self) -> int:
        """Entries of s per coupling: the active sites' components, or every site's with separate networks."""
        return (4 if self.separate_networks else 2) * self.components

    def build(self, input_shape):
        width = (4 if self.separate_networks else 2) * self.components
        for network in self.networks + self.shift_networks:
            size = width
            for layer in network:
                layer.build((None, size))
                size = layer.units
        self.scales = self.add_weight(shape=(self.couplings, self._scale_width), initializer="ones", name="scales")

    def _scale_shift(self, k, x):
        """(s, t) on the active sites of coupling ``k`` from the plaquettes ``x`` (only their frozen sites are read)."""
        frozen_index, active_index, _ = self.masks[k]

        def network(layers, h):
            for layer in layers:
                h = layer(h)
            return h

        if self.separate_networks:
            mask = np.zeros(4 * self.components, "float32")
            mask[frozen_index] = 1.0
            masked = x * mask
            run = lambda h: ops.concatenate([network(self.networks[k], h),
                                             network(self.shift_networks[k], h)], axis=-1)
        else:
            masked = ops.take(x, frozen_index, axis=-1)
            run = lambda h: network(self.networks[k], h)
        out = run(masked)
        half = self._scale_width
        if self.z2_symmetric:
            mirrored = run(-masked)
            s = 0.5 * (out[..., :half] + mirrored[..., :half])
            t = 0.5 * (out[..., half:] - mirrored[..., half:])
        else:
            s, t = out[..., :half], out[..., half:]
        s = self.scales[k] * ops.tanh(s)
        if self.separate_networks:  # every site got a value; the active ones are used
            s, t = ops.take(s, active_index, axis=-1), ops.take(t, active_index, axis=-1)
        return s, t

    def _coupling(self, k, x, inverse: bool):
        frozen_index, active_index, order = self.masks[k]
        frozen, active = ops.take(x, frozen_index, axis=-1), ops.take(x, active_index, axis=-1)
        s, t = self._scale_shift(k, x)
        active = (active - t) * ops.exp(-s) if inverse else active * ops.exp(s) + t
        log_det = ops.sum(s, axis=-1)
        return ops.take(ops.concatenate([frozen, active], axis=-1), order, axis=-1), -log_det if inverse else log_det

    def call(self, blocks):
        """Plaquettes (..., 4c) -> (transformed plaquettes, log |det| per plaquette (...))."""
        log_det = 0.0
        for k in range(self.couplings):
            blocks, step = self._coupling(k, blocks, inverse=False)
            log_det = log_det + step
        return blocks, log_det

    def inverse(self, blocks):
        log_det = 0.0
        for k in reversed(range(self.couplings)):
            blocks, step = self._coupling(k, blocks, inverse=True)
            log_det = log_det + step
        return blocks, log_det

    def get_config(self):
        return {**super().get_config(), "components": self.components, "couplings": self.couplings,
                "hidden": list(self.hidden), "z2_symmetric": self.z2_symmetric, "activation": self.activation,
                "separate_networks": self.separate_networks}


ACTIONS = {  # name -> (its couplings, field components)
    "phi4": (("m2", "lam"), 1),
    "complex_phi4": (("kappa", "lam"), 2),
    "hs_ising": (("K",), 1),
}


@keras.saving.register_keras_serializable(package="zoo")
class NeuralRGFlow(LatticeFlow):
    """NeuralRG: a hierarchical, MERA-structured RealNVP whose latent variables are a renormalisation-group flow.

    Reading a field phi (L x L, L a power of two) towards its latent variables (``encode``, the RG direction):
    at each level a *disentangler* block acts on the 2 x 2 plaquettes offset by one site (mixing across the
    plaquette borders of the next step), then a *decimator* block on the aligned plaquettes; the decimator's
    first (top-left) output moves on to the next, coarser (L/2 x L/2) level, and its other three outputs are
    this scale's latent variables. After log2 L levels one variable is left. ``encode`` places each latent
    variable on the site it was decimated at: sites at multiples of 2^l hold the variables of level >= l, so
    the latent field is the holographic "bulk" (Hu, Li, Wang & You 2019). ``decode`` runs it backwards from the
    coarsest level down: it is the generator. Blocks have their own weights at every level and are shared by all
    plaquettes of a level (translation invariance).

    Args:
        L: lattice size (a power of two >= 2).
        action: "hs_ising" (NeuralRG's continuous Ising model, couplings {"K": K}), "complex_phi4"
            ({"kappa", "lam"}, fields (n, L, L, 2)) or "phi4" ({"m2", "lam"}).
        couplings: the action's parameters.
        block_couplings, hidden, activation: each block's affine couplings, their perceptrons' widths and
            hidden activation.
        z2_symmetric: make every block odd under phi -> -phi (so q(phi) = q(-phi)).
        symmetrize: sample and score the mixture (q(phi) + q(-phi)) / 2 (exact; the cure for a flow that
            learned only one of the two ordered phases).
        separate_networks, top_disentangler: the original code's structure (benchmarks/neuralrg_training.py
            compares like with like): NeuralRG's separate s and t networks of the masked plaquette
            (:class:`PlaquetteRealNVP`), and a disentangler on the single top plaquette too, which the zoo
            leaves out because there it acts on the same four variables as the decimator after it.

    Li & Wang, PRL 121, 260601 (2018); Hu, Li, Wang & You, PRR 2, 023369 (2020).
    """

    def __init__(self, L: int = 16, action: str = "hs_ising", couplings: dict | None = None,
                 block_couplings: int = 4, hidden=(32, 32), z2_symmetric: bool = False, activation: str = "tanh",
                 symmetrize: bool = False, separate_networks: bool = False, top_disentangler: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        L = int(L)
        if L < 2 or L & (L - 1):
            raise ValueError(f"The hierarchical flow needs L to be a power of two >= 2 (it halves the lattice at "
                             f"every level); received L = {L}.")
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}; expected one of {sorted(ACTIONS)}.")
        names, self.components = ACTIONS[action]
        couplings = dict(couplings or {})
        if sorted(couplings) != sorted(names):
            raise ValueError(f"The {action} action takes the couplings {list(names)}; received {sorted(couplings)}.")
        self.L, self.action_name = L, action
        self.action_couplings = {k: float(couplings[k]) for k in names}
        self.block_couplings, self.hidden, self.z2_symmetric = int(block_couplings), tuple(hidden), bool(z2_symmetric)
        self.activation, self.symmetrize = str(activation), bool(symmetrize)
        self.separate_networks, self.top_disentangler = bool(separate_networks), bool(top_disentangler)
        self.levels = []
        n, level = L, 0
        while n >= 2:
            block = dict(components=self.components, couplings=self.block_couplings, hidden=self.hidden,
                         z2_symmetric=self.z2_symmetric, activation=self.activation,
                         separate_networks=self.separate_networks)
            has_disentangler = n > 2 or self.top_disentangler
            disentangler = PlaquetteRealNVP(**block, name=f"level_{level}_disentangler") if has_disentangler else None
            self.levels.append((disentangler, PlaquetteRealNVP(**block, name=f"level_{level}_decimator")))
            n, level = n // 2, level + 1
        self._inverse_coupling = (hs_inverse_coupling(L, self.action_couplings["K"]) if action == "hs_ising"
                                  else None)

    def build(self, input_shape=None):
        for disentangler, decimator in self.levels:
            for block in (disentangler, decimator):
                if block is not None:
                    block.build((None, 4 * self.components))
        self.built = True

    # ------------------------------------------------------------------ the hierarchy

    def _with_components(self, x):
        return x[..., None] if self.components == 1 else x

    def _without_components(self, x):
        return x[..., 0] if self.components == 1 else x

    def _disentangle(self, block, y, inverse: bool):
        """The block on plaquettes offset by one site: roll, cut into plaquettes, transform, reassemble, roll back."""
        c = self.components
        blocks = to_plaquettes(ops.roll(ops.roll(y, -1, axis=1), -1, axis=2), c)
        blocks, log_det = block.inverse(blocks) if inverse else block(blocks)
        y = ops.roll(ops.roll(from_plaquettes(blocks, c), 1, axis=1), 1, axis=2)
        return y, ops.sum(log_det, axis=(1, 2))

    def _encode_level(self, y, level: int):
        """RG step on y (batch, n, n, c): latent variables of this level and all coarser ones, and log |det|."""
        c, (disentangler, decimator) = self.components, self.levels[level]
        log_det = 0.0
        if disentangler is not None:
            y, log_det = self._disentangle(disentangler, y, inverse=True)
        blocks, step = decimator.inverse(to_plaquettes(y, c))
        log_det = log_det + ops.sum(step, axis=(1, 2))
        coarse = blocks[..., :c]
        if level + 1 < len(self.levels):
            coarse, step = self._encode_level(coarse, level + 1)
            log_det = log_det + step
        return from_plaquettes(ops.concatenate([coarse, blocks[..., c:]], axis=-1), c), log_det

    def _decode_level(self, z, level: int):
        c, (disentangler, decimator) = self.components, self.levels[level]
        blocks = to_plaquettes(z, c)
        coarse, log_det = blocks[..., :c], 0.0
        if level + 1 < len(self.levels):
            coarse, log_det = self._decode_level(coarse, level + 1)
        blocks, step = decimator(ops.concatenate([coarse, blocks[..., c:]], axis=-1))
        y = from_plaquettes(blocks, c)
        log_det = log_det + ops.sum(step, axis=(1, 2))
        if disentangler is not None:
            y, step = self._disentangle(disentangler, y, inverse=False)
            log_det = log_det + step
        return y, log_det

    def encode(self, phi):
        """Fields -> (latent variables on the sites they were decimated at, log |det dz/dphi|)."""
        z, log_det = self._encode_level(self._with_components(phi), 0)
        return self._without_components(z), log_det

    def decode(self, z):
        """Latent variables -> (fields, log |det dphi/dz|): the generator, coarse to fine."""
        phi, log_det = self._decode_level(self._with_components(z), 0)
        return self._without_components(phi), log_det

    # ------------------------------------------------------------------ the action

    def action_tensor(self, phi):
        p = self.action_couplings
        if self.action_name == "hs_ising":
            return hs_ising_action(phi, self._inverse_coupling)
        if self.action_name == "complex_phi4":
            return complex_phi4_action(phi, p["kappa"], p["lam"])
        return phi4_action(phi, p["m2"], p["lam"])

    def action_description(self) -> str:
        values = ", ".join(f"{k} = {v:g}" for k, v in self.action_couplings.items())
        return f"S of the {self.action_name} model with {values}"

    def layer_groups(self) -> dict:
        return {f"level_{i}": [b for b in blocks if b is not None] for i, blocks in enumerate(self.levels)}

    def get_config(self):
        return {**super().get_config(), "L": self.L, "action": self.action_name, "couplings": self.action_couplings,
                "block_couplings": self.block_couplings, "hidden": list(self.hidden),
                "z2_symmetric": self.z2_symmetric, "activation": self.activation, "symmetrize": self.symmetrize,
                "separate_networks": self.separate_networks, "top_disentangler": self.top_disentangler}


# ---------------------------------------------------------------------------- presets

def realnvp_phi4_preset(L: int, summary: str) -> PresetSpec:
    """A RealNVP preset of Albergo et al.'s architecture and point (m2 = -4, lam = 8) on the L x L torus."""
    return PresetSpec(
        name=f"realnvp-phi4-L{L}",
        model_class=RealNVPFlow,
        config=dict(L=L, m2=-4.0, lam=8.0, coupling_layers=16, hidden_channels=[8, 8], kernel_size=3),
        summary=summary,
        inputs=(TensorSpec("fields", (None, L, L), f"real scalar fields on the {L} x {L} torus"),),
        outputs=(TensorSpec("log_q", (None,), "log q(phi)"),),
        paper=PAPER,
    )


_PRESETS = (
    realnvp_phi4_preset(8, "RealNVP flow of 2D phi^4 on 8 x 8 at Albergo et al.'s point (m2 = -4, lam = 8): exact "
                           "samples with log q; Metropolis makes them exact draws of exp(-S)."),
    realnvp_phi4_preset(16, "RealNVP flow of 2D phi^4 on 16 x 16 at Albergo et al.'s point (m2 = -4, lam = 8), grown "
                            "from the 8 x 8 flow (its convolutions do not depend on L): exact samples with log q for "
                            "Metropolis."),
    PresetSpec(
        name="neuralrg-ising-L16",
        model_class=NeuralRGFlow,
        config=dict(L=16, action="hs_ising", couplings={"K": K_CRITICAL}, block_couplings=6, hidden=[32, 32],
                    z2_symmetric=False, symmetrize=True),
        summary="NeuralRG hierarchical flow of the continuous (Hubbard-Stratonovich) Ising model on 16 x 16 at T_c: "
                "exact samples with log q, latent variables on the renormalisation-group scales.",
        inputs=(TensorSpec("fields", (None, 16, 16), "continuous Ising fields x on the 16 x 16 torus"),),
        outputs=(TensorSpec("log_q", (None,), "log q(x)"),),
        paper=NEURALRG_PAPER,
    ),
    PresetSpec(
        name="neuralrg-phi4-complex-L32",
        model_class=NeuralRGFlow,
        config=dict(L=32, action="complex_phi4", couplings={"kappa": 0.15, "lam": 1.145}, block_couplings=6,
                    hidden=[32, 32], z2_symmetric=False, symmetrize=True),
        summary="NeuralRG hierarchical flow of complex phi^4 on 32 x 32 (kappa = 0.15, lam = 1.145), the "
                "holographic-mapping model: exact samples with log q, bulk latent variables per RG level.",
        inputs=(TensorSpec("fields", (None, 32, 32, 2), "complex fields (Re, Im) on the 32 x 32 torus"),),
        outputs=(TensorSpec("log_q", (None,), "log q(phi)"),),
        paper=HOLOGRAPHIC_PAPER,
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
}
@article{li2018neural,
  title = {Neural Network Renormalization Group},
  author = {Li, Shuo-Hui and Wang, Lei},
  journal = {Phys. Rev. Lett.},
  volume = {121},
  pages = {260601},
  year = {2018},
  doi = {10.1103/PhysRevLett.121.260601},
  eprint = {1802.02840},
  archivePrefix = {arXiv}
}
@article{hu2020holographic,
  title = {Machine learning holographic mapping by neural network renormalization group},
  author = {Hu, Hong-Ye and Li, Shuo-Hui and Wang, Lei and You, Yi-Zhuang},
  journal = {Phys. Rev. Research},
  volume = {2},
  pages = {023369},
  year = {2020},
  doi = {10.1103/PhysRevResearch.2.023369},
  eprint = {1903.00804},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="flows",
    module=__name__,
    bibtex=BIBTEX,
    task="lattice-field-sampling",
    presets=_PRESETS,
    intended_use=(
        "Sampling 2D lattice field theories (real phi^4, complex phi^4, the continuous Ising model) at the "
        "preset's couplings without a Markov chain: `sample(n, seed)` "
        "draws fields with their exact log density, which importance weights or an independence Metropolis "
        "step turn into exact samples of exp(-S) / Z; `mcmc(n, seed, method)` runs that chain (or HMC in the "
        "latent space) and reports acceptance and autocorrelation times. The methods `log_prob` (served as the "
        "default signature) and `action`, and the endpoints `encode` and `decode`, expose the flow. The "
        "hierarchical (NeuralRG) presets' `encode` gives the latent variables of each "
        "renormalisation-group level on the sites where they were decimated (the holographic bulk), and their "
        "latent space is where HMC can run with the flow as a preconditioner. "
        "A starting point for flows at nearby couplings (continue the reverse-KL training in Python). "
        "The couplings are Keras layers, so that Keras tracks, saves and exports their networks' weights like "
        "any other layer's, on every backend."
    ),
    limitations=(
        "One lattice size and one point (m2, lam) per preset; the flow is trained by reverse KL, which can miss "
        "modes (a symmetric double well is the classic case), and the Metropolis acceptance and ESS in the "
        "tables say how close q is to exp(-S) / Z. Observables are only exact after the accept/reject step. "
        "The hierarchical flow needs L to be a power of two; at L = 32 the flow trained on 2 CPU cores is far "
        "from exp(-S) / Z (see its acceptance), so its Metropolis chain moves rarely."
    ),
    tiny_overrides={"coupling_layers": 2, "hidden_channels": [2], "block_couplings": 2, "hidden": [4]},
)
