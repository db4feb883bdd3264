"""Restricted Boltzmann machines that learn the Boltzmann distribution of lattice spins.

Torlai & Melko, "Learning thermodynamics with Boltzmann machines", Phys. Rev.
B 94, 165134 (2016), arXiv:1606.02718: an RBM trained on Monte Carlo
snapshots of the 2D Ising model at one temperature generates new
configurations whose energy, magnetisation, specific heat and susceptibility
reproduce the Monte Carlo values.

Binary visible units v_i = (s_i + 1) / 2 and hidden units h_j in {0, 1}:

    E(v, h) = -a.v - b.h - v^T W h,     p(v) = exp(-F(v)) / Z,
    F(v)    = -a.v - sum_j softplus(b_j + (v W)_j)          (free energy)

Training follows the log-likelihood gradient, the data average of dF/dtheta
minus its model average; the model average comes from k block Gibbs steps
started at the data (CD-k, Hinton 2002) or from chains kept between updates
(persistent CD, Tieleman 2008). log Z is exact by enumeration for small
machines and estimated by annealed importance sampling (Salakhutdinov &
Murray 2008) otherwise.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from zoo.models.backend import (SEED_WORDS, OwnLossTraining, compile_function, seed_words_numpy, step_rows,
                                uniform_rows)
from zoo.models.base import SpinLatticeInputs, ZooModel, require_count, row_seeds
from zoo.spec import RANDOM_DRAWS_ONNX_REFUSAL, Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import SpinCheck

PAPER = (
    "G. Torlai, R. G. Melko, Learning thermodynamics with Boltzmann machines, Phys. Rev. B 94, 165134 (2016), "
    "arXiv:1606.02718"
)
MAX_ENUMERATED_UNITS = 20
GIBBS_SALT = 2654435  # the Gibbs chains' stream of uniform draws


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@keras.saving.register_keras_serializable(package="zoo")
class IsingRBM(OwnLossTraining, SpinLatticeInputs, ZooModel):
    """Bernoulli-Bernoulli RBM over L x L spin configurations; calling it gives the free energy F(v).

    Args:
        L: linear lattice size; the machine has L^2 visible units.
        hidden_units: number of hidden units n_h.
        cd_steps: Gibbs steps k of the negative phase in training.
        persistent: keep the negative-phase chains between updates (PCD) instead of restarting at the data (CD).
        persistent_chains: number of persistent chains.
        sample_steps: default number of Gibbs steps of :meth:`sample`.
        temperature: the Monte Carlo temperature of the training data (metadata, in units of J / k_B).

    Example:
        >>> rbm = zoo.load("rbm-ising-L8-T2.27")
        >>> spins = rbm.sample(1000)                       # (1000, 8, 8) int8, +-1
        >>> f = rbm.predict(spins)                         # free energies (1000, 1)

    Torlai & Melko, Phys. Rev. B 94, 165134 (2016).
    """

    training_spec = TrainingSpec(
        loss=None,
        multiworker_refusal=(
            "RBMs train with their own contrastive-divergence train_step through Keras fit, which fails under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy cpu, auto, mirrored or tpu."
        ),
    )
    fine_tuning = FineTuning(refusal=(
        "RBMs are trained without targets (contrastive divergence), so `zoo finetune` does not apply. Continue "
        "the training in Python: model = zoo.load(NAME); model.compile(optimizer=keras.optimizers.Adam(1e-4)); "
        "model.fit(spins, epochs=..., batch_size=100)."
    ))

    def __init__(self, L: int = 8, hidden_units: int = 64, cd_steps: int = 10, persistent: bool = True,
                 persistent_chains: int = 100, sample_steps: int = 1000, temperature: float | None = None,
                 output_name: str = "free_energy", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(L) < 1 or int(hidden_units) < 1 or int(cd_steps) < 1:
            raise ValueError(f"L, hidden_units and cd_steps must be positive; received {L}, {hidden_units}, {cd_steps}.")
        self.L, self.hidden_units, self.cd_steps = int(L), int(hidden_units), int(cd_steps)
        self.persistent, self.persistent_chains = bool(persistent), int(persistent_chains)
        self.sample_steps, self.temperature = int(sample_steps), temperature
        self.output_name, self.seed = output_name, int(seed)
        self.visible_units = self.L * self.L
        self.weights_vh = self.add_weight(shape=(self.visible_units, self.hidden_units), name="weights",
                                          initializer=keras.initializers.RandomNormal(stddev=0.01, seed=self.seed))
        self.visible_bias = self.add_weight(shape=(self.visible_units,), initializer="zeros", name="visible_bias")
        self.hidden_bias = self.add_weight(shape=(self.hidden_units,), initializer="zeros", name="hidden_bias")
        self.chains = self.add_weight(shape=(self.persistent_chains, self.visible_units), trainable=False,
                                      name="persistent_chains", initializer=keras.initializers.RandomUniform(0, 1, seed=self.seed))
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._compiled_sampler = None

    # ------------------------------------------------------------------ public tensors

    def endpoints(self) -> tuple:
        spins = TensorSpec("spins", (None, self.L, self.L), "spin configurations +-1 (0/1 converted)")
        free_energy = TensorSpec(self.output_name, (None, 1), "free energy F(v), p(s) = exp(-F) / Z")
        default = self.call_endpoint((spins,), free_energy, "spins -> free energy")
        start = TensorSpec("spins", (None, self.L, self.L), "start configurations of the chains, +-1 (0/1 converted)")
        samples = TensorSpec("samples", (None, self.L, self.L), f"configurations after sample_steps = {self.sample_steps} block Gibbs steps")
        sample = Endpoint("sample", self._sample_endpoint, (start,), (samples,), check=SpinCheck("spins"),
                          description="start spins -> spins after sample_steps block Gibbs steps", stochastic=True,
                          onnx_refusal=RANDOM_DRAWS_ONNX_REFUSAL)
        return (dataclasses.replace(default, check=SpinCheck("spins")), sample)

    def _sample_endpoint(self, spins):
        v = self.gibbs_chain(self.to_visible(spins), self.sample_steps, self.fresh_chain_seeds(ops.shape(spins)[0]))
        return {"samples": ops.reshape(2.0 * v - 1.0, (-1, self.L, self.L))}

    @property
    def example_lattice_size(self) -> int:
        return self.L

    def call(self, inputs):
        spins = inputs["spins"] if isinstance(inputs, dict) else inputs
        return ops.expand_dims(self.free_energy(self.to_visible(spins)), -1)

    # ------------------------------------------------------------------ energy and conditionals

    def to_visible(self, spins):
        """(batch, L, L) spins +-1 -> (batch, L^2) visible units in {0, 1}."""
        return (ops.reshape(ops.cast(spins, "float32"), (-1, self.visible_units)) + 1.0) / 2.0

    def free_energy(self, v):
        """F(v) = -a.v - sum_j softplus(b_j + (vW)_j), (batch,)."""
        return -ops.matmul(v, self.visible_bias[:, None])[:, 0] - ops.sum(
            ops.softplus(ops.matmul(v, self.weights_vh) + self.hidden_bias), axis=-1)

    def fresh_chain_seeds(self, n):
        """(n, 4) seed words for n chains, drawn from the model's seed generator (new ones every call)."""
        return keras.random.randint((n, SEED_WORDS), 0, 1 << 16, seed=self.seed_generator, dtype="int32")

    def _bernoulli(self, p, chain_seeds, draw):
        """Units on with probabilities p (chains, units): draw number ``draw`` of each chain's own stream, the
        same numbers on every backend."""
        stride = self.visible_units + self.hidden_units
        u = uniform_rows(chain_seeds, (p.shape[1],), salt=GIBBS_SALT, offset=(draw + 1) * stride)
        return ops.cast(u < p, "float32")

    def gibbs_step(self, v, chain_seeds, step):
        """v -> h ~ p(h|v) -> v' ~ p(v|h); the conditionals factorise over units."""
        h = self._bernoulli(ops.sigmoid(ops.matmul(v, self.weights_vh) + self.hidden_bias), chain_seeds, 2 * step)
        return self._bernoulli(ops.sigmoid(ops.matmul(h, ops.transpose(self.weights_vh)) + self.visible_bias),
                               chain_seeds, 2 * step + 1)

    def gibbs_chain(self, v, steps, chain_seeds):
        return ops.fori_loop(0, steps, lambda i, x: self.gibbs_step(x, chain_seeds, i), v)

    # ------------------------------------------------------------------ training

    def contrastive_loss(self, v_data):
        """mean F(data) - mean F(model samples); its gradient is minus the log-likelihood gradient (CD / PCD)."""
        start = self.chains if self.persistent else v_data
        # the chains' draws are keyed by the optimizer's step: the same training on every backend
        chain_seeds = step_rows(self.optimizer.iterations, ops.shape(start)[0])
        v_model = ops.stop_gradient(self.gibbs_chain(start, self.cd_steps, chain_seeds))
        if self.persistent:
            self.chains.assign(v_model)
        return ops.mean(self.free_energy(v_data)) - ops.mean(self.free_energy(v_model))

    def training_loss(self, data):
        spins = data[0] if isinstance(data, tuple) else data
        v_data = self.to_visible(spins)
        loss = self.contrastive_loss(v_data)
        return loss, {"loss": loss, "free_energy": ops.mean(ops.stop_gradient(self.free_energy(v_data)))}

    def evaluation_loss(self, data):
        """The mean free energy of held-out configurations (lower: more probable under the model)."""
        spins = data[0] if isinstance(data, tuple) else data
        return ops.mean(self.free_energy(self.to_visible(spins)))

    # ------------------------------------------------------------------ sampling

    def sample(self, n: int, gibbs_steps: int | None = None, seed=None) -> np.ndarray:
        """``n`` configurations (n, L, L) int8 +-1 after ``gibbs_steps`` block Gibbs steps from uniform noise.

        Chain i runs on its own seed (``seed`` as in :func:`zoo.row_seeds`: None, an integer or one per chain),
        so a seeded sample is the same on every Keras backend, up to a draw that float32 rounding of p puts on
        the other side of its uniform number."""
        n = require_count(n, "sample's number of configurations n")
        steps = require_count(self.sample_steps if gibbs_steps is None else gibbs_steps, "gibbs_steps")
        if self._compiled_sampler is None:
            self._compiled_sampler = compile_function(self, _sample_chains)
        v = ops.convert_to_numpy(self._compiled_sampler(seed_words_numpy(row_seeds(n, seed)),
                                                        np.asarray(steps, np.int32)))
        return (2 * v - 1).astype(np.int8).reshape(-1, self.L, self.L)

    # ------------------------------------------------------------------ partition function

    def numpy_parameters(self) -> tuple:
        return (np.asarray(self.weights_vh, np.float64), np.asarray(self.visible_bias, np.float64),
                np.asarray(self.hidden_bias, np.float64))

    def log_partition_exact(self) -> float:
        """log Z by summing over every state of the smaller layer (at most 2^20 states)."""
        W, a, b = self.numpy_parameters()
        n_v, n_h = W.shape
        if min(n_v, n_h) > MAX_ENUMERATED_UNITS:
            raise ValueError(
                f"Exact log Z enumerates 2^min(n_v, n_h) states; this machine has n_v = {n_v}, n_h = {n_h} "
                f"(at most {MAX_ENUMERATED_UNITS}). Use log_partition_ais."
            )
        if n_v <= n_h:  # sum over v of exp(-F(v))
            v = _all_binary(n_v)
            log_terms = v @ a + _np_softplus(v @ W + b).sum(axis=1)
        else:  # sum over h of exp(b.h) prod_i (1 + exp(a_i + (W h)_i))
            h = _all_binary(n_h)
            log_terms = h @ b + _np_softplus(h @ W.T + a).sum(axis=1)
        return float(np.logaddexp.reduce(log_terms))

    def log_partition_ais(self, runs: int = 100, betas: int = 10000, seed: int = 0, base_visible_bias=None) -> tuple:
        """Annealed importance sampling estimate of log Z and its standard error (over runs).

        The base machine has the visible biases ``base_visible_bias`` (default
        zero) and no couplings, so log Z_0 = n_h log 2 + sum_i softplus(a0_i);
        the runs anneal to this machine through geometric intermediates.
        """
        W, a, b = self.numpy_parameters()
        a0 = np.zeros_like(a) if base_visible_bias is None else np.asarray(base_visible_bias, np.float64)
        rng = np.random.default_rng(seed)
        schedule = np.linspace(0.0, 1.0, int(betas) + 1)

        def log_unnormalised(v, beta):
            return (1 - beta) * v @ a0 + beta * v @ a + _np_softplus(beta * (v @ W + b)).sum(axis=1)

        v = (rng.random((runs, len(a))) < _np_sigmoid(a0)).astype(np.float64)
        log_w = np.zeros(runs)
        for previous, beta in zip(schedule[:-1], schedule[1:]):
            log_w += log_unnormalised(v, beta) - log_unnormalised(v, previous)
            h = (rng.random((runs, len(b))) < _np_sigmoid(beta * (v @ W + b))).astype(np.float64)
            v = (rng.random(v.shape) < _np_sigmoid((1 - beta) * a0 + beta * (a + h @ W.T))).astype(np.float64)
        log_z0 = len(b) * math.log(2.0) + _np_softplus(a0).sum()
        log_mean_w = np.logaddexp.reduce(log_w) - math.log(runs)
        # delta method on mean(w): error of log mean(w) = std(w) / (sqrt(runs) mean(w))
        w = np.exp(log_w - log_w.max())
        error = float(w.std(ddof=1) / (math.sqrt(runs) * w.mean()))
        return float(log_z0 + log_mean_w), error

    def log_likelihood(self, spins, log_z: float) -> float:
        """Mean log p(s) = -F(v) - log Z per configuration, in nats."""
        v = np.asarray(self.to_visible(np.asarray(spins, np.float32)), np.float64)
        W, a, b = self.numpy_parameters()
        return float(np.mean(v @ a + _np_softplus(v @ W + b).sum(axis=1)) - log_z)

    def get_config(self):
        return {**super().get_config(), "L": self.L, "hidden_units": self.hidden_units, "cd_steps": self.cd_steps,
                "persistent": self.persistent, "persistent_chains": self.persistent_chains,
                "sample_steps": self.sample_steps, "temperature": self.temperature,
                "output_name": self.output_name, "seed": self.seed}


def _sample_chains(rbm, chain_seeds, steps):
    """Chains from independent fair coins per unit (their draw -1), then ``steps`` block Gibbs steps."""
    start = rbm._bernoulli(ops.full((ops.shape(chain_seeds)[0], rbm.visible_units), 0.5), chain_seeds, -1)
    return rbm.gibbs_chain(start, steps, chain_seeds)


def _all_binary(n: int) -> np.ndarray:
    codes = np.arange(2**n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)


PRESET_TEMPERATURES = (1.5, 2.0, 2.27, 2.5, 3.0)


def _preset(temperature: float) -> PresetSpec:
    return PresetSpec(
        name=f"rbm-ising-L8-T{temperature:g}",
        model_class=IsingRBM,
        config=dict(L=8, hidden_units=64, cd_steps=10, persistent=False, persistent_chains=100,
                    sample_steps=1000, temperature=temperature),
        summary=f"RBM of the 8 x 8 Ising model at T = {temperature:g}: 64 visible, 64 hidden units; sample() draws spins.",
        inputs=(TensorSpec("spins", (None, 8, 8), "spin configurations +-1 (0/1 converted)"),),
        outputs=(TensorSpec("free_energy", (None, 1), "free energy F(v), so that p(s) = exp(-F) / Z"),),
        paper=PAPER,
    )


BIBTEX = """@article{torlai2016learning,
  title = {Learning thermodynamics with Boltzmann machines},
  author = {Torlai, Giacomo and Melko, Roger G.},
  journal = {Phys. Rev. B},
  volume = {94},
  pages = {165134},
  year = {2016},
  doi = {10.1103/PhysRevB.94.165134},
  eprint = {1606.02718},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="rbm",
    module=__name__,
    bibtex=BIBTEX,
    task="boltzmann-distribution-learning",
    presets=tuple(_preset(t) for t in PRESET_TEMPERATURES),
    intended_use=(
        "A generative model of 8 x 8 Ising configurations at one temperature, as in Torlai & Melko: draw new "
        "configurations with `sample(n, gibbs_steps)`, score configurations with the free energy, compare "
        "thermodynamic observables with Monte Carlo, or start from these weights to study how RBMs represent "
        "critical fluctuations. The observables of all RBM presets against T, next to Monte Carlo, are drawn "
        "from their metadata by `make cards` into model_cards/rbm-ising-L8-observables.png."
    ),
    limitations=(
        "One machine per temperature and lattice size (L = 8, periodic, J = 1, zero field); it does not "
        "interpolate in temperature. Samples come from block Gibbs chains, which mix slowly between the two "
        "magnetised states at low temperature; fluctuation observables (specific heat, susceptibility) are "
        "harder to reproduce than means, especially near T_c, as the table above shows. AIS gives a stochastic "
        "lower bound on log Z, so the reported log-likelihood can be optimistic if the chains do not mix."
    ),
    tiny_overrides={"L": 4, "hidden_units": 4, "persistent_chains": 4, "sample_steps": 2},
)
