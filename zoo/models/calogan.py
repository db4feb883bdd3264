"""CaloGAN: a GAN that generates electromagnetic and hadronic showers in a three-layer calorimeter.

Paganini, de Oliveira, Nachman, "Accelerating science with generative adversarial
networks: an application to 3D particle showers in multilayer calorimeters", PRL 120,
042003 (2018), and "CaloGAN", PRD 97, 014021 (2018). Full simulation (Geant4) of a
shower costs seconds; a generator that has learned the distribution of cell energies
given the incident energy costs a millisecond.

The calorimeter is the paper's lead / liquid-argon stack, read out in three layers of
3 x 96, 12 x 12 and 12 x 6 cells (the zoo's calorimeter simulator models it cell by cell). The
generator turns a latent vector z ~ N(0, 1), scaled by E / 100 GeV (and, here, by a
learned embedding of the particle, the reference code's conditional mode), into the
three images; the networks are in :mod:`zoo.models.calogan_networks`.

Each preset (``calogan-eplus``, ``calogan-gamma``, ``calogan-piplus``) is its own
network, as in the paper. The model also takes several ``particles`` (the reference
code's conditional mode: the latent vector is multiplied by a learned particle
embedding and the discriminator classifies the particle, ACGAN-style); trained for as
many steps, one conditional network for all three came out clearly worse than
separate ones (see the CaloGAN note in the repository's history), so none ships.

The model is backend-neutral Keras (``keras.ops``): it loads, serves and trains under TensorFlow and JAX. The
paper's loop (:meth:`CaloGAN.adversarial_steps`) is written once; each backend takes its optimizer steps as the
Keras guides write a GAN's ``train_step``: a gradient tape on TensorFlow (:class:`TapeSteps`), and on JAX
``jax.value_and_grad`` of stateless calls and ``stateless_apply`` of each network's optimizer on the values
that Keras' JAX trainer threads from step to step (:class:`JaxSteps`, :class:`AdversarialOptimizers`).
"""
from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from zoo.models.backend import backend, normal_rows, replicas_in_sync, seed_words_numpy
from zoo.models.base import ZooModel, row_seeds
from zoo.models.calogan_networks import (
    LAYER_NAMES,
    LAYER_SHAPES,
    adversarial_loss,
    build_discriminator,
    build_generator,
    energy_head,
)
from zoo.spec import RANDOM_DRAWS_ONNX_REFUSAL, Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import SeedCheck, first_rows

PAPER = (
    "M. Paganini, L. de Oliveira, B. Nachman, CaloGAN: Simulating 3D high energy particle showers in multilayer "
    "electromagnetic calorimeters with generative adversarial networks, Phys. Rev. D 97, 014021 (2018), "
    "arXiv:1712.10321; PRL 120, 042003 (2018), arXiv:1705.02355"
)
PARTICLES = ("eplus", "gamma", "piplus")
PARTICLE_NAMES = {"eplus": "positrons (e+)", "gamma": "photons", "piplus": "charged pions (pi+)"}
ENERGY_RANGE_GEV = (1.0, 100.0)  # the paper's incident energies, E ~ U[1, 100] GeV
# Twice the trained range at most. Beyond it the shipped e+ generator's showers stop carrying the energy
# asked for: mean deposited fraction 0.996 at 200 GeV, 0.69 at 500, 0.38 at 1000, and 98% of showers empty
# at 10^4 GeV (200 showers each, seed 1). Energies <= 0 are refused by ShowerRequestCheck, with their own message.
ENERGY_VALID_GEV = (0.0, 200.0)


class ShowerRequestCheck(SeedCheck):
    """Incident energies in GeV (> 0; the declared ranges of the input do the rest) and integer seeds >= 0."""

    def __init__(self, energy_range=ENERGY_RANGE_GEV):
        super().__init__("seed")
        self.low, self.high = (float(e) for e in energy_range)

    def numpy(self, arrays: dict) -> dict:
        energies = arrays["energies"]
        bad = np.flatnonzero(energies <= 0)
        if bad.size:
            raise ValueError(f"Input 'energies' must be incident energies > 0 GeV; rows {first_rows(bad)} hold "
                             f"{energies[bad[:5]].tolist()}. This network was trained on {self.low:g} to "
                             f"{self.high:g} GeV.")
        return super().numpy(arrays)

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf  # the checks of an exported TF Serving signature

        energies = tensors["energies"]
        tf.debugging.Assert(tf.reduce_all(energies > 0), ["energies must be > 0 GeV; received",
                                                          tf.boolean_mask(energies, energies <= 0)[:5]])
        return super().graph(tensors)


@keras.saving.register_keras_serializable(package="zoo")
class CaloGAN(ZooModel):
    """The CaloGAN generator and discriminator with the paper's adversarial training.

    ``generate(energies, seed)`` draws one shower per incident energy: a dict of cell
    energies in GeV, ``layer_0`` (n, 3, 96), ``layer_1`` (n, 12, 12), ``layer_2`` (n, 12, 6),
    every cell >= 0. Each shower's latent vector comes from its own stateless seed, so
    the same (energy, seed) pair gives the same shower in any batch, here and in the
    exported ``generate`` signature.

    Training (``fit`` on showers; the paper's loop): per batch, the discriminator takes
    one step on simulated showers and one on generated ones (never mixed: minibatch
    discrimination and batch normalisation see whole batches), then the generator two
    steps; Adam with beta_1 = 0.5 and learning rates 2e-4 (generator), 2e-5
    (discriminator); the loss adds lambda_E = 0.05 times |E_total - E_requested|. With the energy
    head, :meth:`fit_energy_head` comes first, and the adversarial steps leave the head alone.

    Args:
        particle: the particle this preset generates (one of ``particles``).
        particles: the classes of the conditional network (one class: unconditional).
        latent_size: dimension of z (the paper used 1024; see the card for this preset's).
        discriminator_filters: filters of each layer's first convolution (paper: 64).
        energy_range: incident energies of the training data in GeV; others get a warning.
        attention: the layer-to-layer in-painting connections.
        energy_head: not in the paper: a head draws each shower's three layer energies, fitted to simulated
            ones by :meth:`fit_energy_head` before the adversarial training, and the streams only share each
            layer's energy among its cells (see ``ScaleToLayerEnergies``). One particle only.
        generator_learning_rate, discriminator_learning_rate, beta_1: Adam settings.

    Example:
        >>> gan = zoo.load("calogan-eplus")
        >>> showers = gan.generate(np.full(1000, 50.0), seed=1)   # 1000 showers of 50 GeV positrons
        >>> showers["layer_1"].shape
        (1000, 12, 12)

    Paganini, de Oliveira, Nachman, PRD 97, 014021 (2018).
    """

    training_spec = TrainingSpec(loss=None, multiworker_refusal=(
        "CaloGAN trains with its own two-optimizer train_step through Keras fit, which fails under "
        "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy cpu, auto, mirrored or tpu."))
    fine_tuning = FineTuning(refusal=(
        "`zoo finetune` does not apply to a GAN: it feeds a model's serving inputs and a target, and a GAN learns "
        "from showers instead. Fine-tune "
        "in Python, with both networks' pretrained weights: model = zoo.load(NAME); model.compile(); "
        "model.fit({'layer_0': ..., 'layer_1': ..., 'layer_2': ... (GeV), 'energy': (n, 1) GeV, 'particle': (n,) "
        "class index}, batch_size=256, epochs=...). The fit leaves the energy head alone: refit it to your showers' "
        "layer energies first, model.fit_energy_head(energies, layer_energies) (GeV, shapes (n,) and (n, 3))."))

    def __init__(self, particle: str = "eplus", particles=PARTICLES, latent_size: int = 1024,
                 discriminator_filters: int = 64, energy_range=ENERGY_RANGE_GEV, attention: bool = True,
                 energy_head: bool = False, generator_learning_rate: float = 2e-4, discriminator_learning_rate: float = 2e-5,
                 beta_1: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.particles = tuple(particles)
        if particle not in self.particles:
            raise ValueError(f"particle must be one of {self.particles}; received {particle!r}.")
        low, high = (float(e) for e in energy_range)
        if not 0 < low < high:
            raise ValueError(f"energy_range must be (low, high) with 0 < low < high GeV; received {energy_range!r}.")
        self.particle, self.energy_range = particle, (low, high)
        self.latent_size, self.discriminator_filters = int(latent_size), int(discriminator_filters)
        self.attention, self.energy_head = bool(attention), bool(energy_head)
        if self.energy_head and len(self.particles) > 1:
            raise ValueError(f"energy_head=True needs one particle (the head does not see the particle); received "
                             f"particles={list(self.particles)}.")
        self.generator_learning_rate = float(generator_learning_rate)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.beta_1 = float(beta_1)
        self.generator = build_generator(self.latent_size, len(self.particles), self.attention, self.energy_head)
        self.discriminator = build_discriminator(self.discriminator_filters, len(self.particles))
        self.generator_optimizer = self.discriminator_optimizer = None
        self.training_seed = keras.random.SeedGenerator(0)
        self.built = True  # every weight is in the two networks, built above: fit needs no call first

    @property
    def particle_index(self) -> int:
        return self.particles.index(self.particle)

    # ------------------------------------------------------------------ endpoints

    def endpoints(self) -> tuple:
        inputs = (TensorSpec("energies", (None,), "incident energies (GeV)", valid_range=ENERGY_VALID_GEV,
                             trained_range=tuple(self.energy_range)),
                  TensorSpec("seed", (None,), "one seed per shower (integer >= 0): equal (energy, seed) give "
                             "equal showers", dtype="int64"))
        outputs = tuple(TensorSpec(name, (None, *shape), f"cell energies of calorimeter layer {i} (GeV)")
                        for i, (name, shape) in enumerate(zip(LAYER_NAMES, LAYER_SHAPES)))
        check = ShowerRequestCheck(self.energy_range)
        what = f"incident energies and seeds -> {PARTICLE_NAMES.get(self.particle, self.particle)} showers"
        return tuple(Endpoint(name, self._generate_graph, inputs, outputs, check=check, description=what,
                              onnx_refusal=RANDOM_DRAWS_ONNX_REFUSAL) for name in ("serving_default", "generate"))

    def serving_layers(self):
        """A SavedModel needs the generator alone."""
        return self.generator

    def example_inputs(self, batch_size: int = 2) -> dict:
        """Valid inputs to build the model with; on JAX the seeds as the (n, 4) int32 words that a 32-bit JAX
        holds exactly (what a jitted endpoint receives), not int64."""
        inputs = self.random_inputs(batch_size)
        if backend() == "jax":
            inputs["seed"] = seed_words_numpy(inputs["seed"])
        return inputs

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        rng = np.random.default_rng(seed)
        return {"energies": rng.uniform(*self.energy_range, batch_size).astype("float32"),
                "seed": rng.integers(0, 2**31, batch_size).astype("int64")}

    def call(self, inputs, training=False):
        return self._generate_graph(inputs["energies"], inputs["seed"])

    def _generate_graph(self, energies, seed):
        noise = self.latent_noise(seed)
        return self.showers_from_noise(noise, energies, self._particle_like(energies))

    def _particle_like(self, energies):
        """This preset's particle index (int32) for every row of ``energies``."""
        return ops.full_like(ops.reshape(energies, (-1,)), self.particle_index, dtype="int32")

    def latent_noise(self, seeds):
        """z ~ N(0, 1) of each shower from its own seed (stateless: independent of the batch it is in)."""
        return normal_rows(seeds, (self.latent_size,), salt=7919)

    def showers_from_noise(self, noise, energies, particle, training=False) -> dict:
        """The generator's three layers (batch, rows, columns) in GeV for latent vectors and energies (GeV)."""
        images = self.generator([noise, ops.reshape(energies, (-1, 1)), particle], training=training)
        return {name: ops.squeeze(image, -1) for name, image in zip(LAYER_NAMES, images)}

    def generate(self, energies, seed=None, batch_size: int = 1024) -> dict:
        """Showers (dict of numpy (n, rows, columns) in GeV) for incident energies (n,) in GeV.

        Each shower is drawn from its own seed: ``seed`` is None (fresh entropy), an integer s (expanded into
        per-shower seeds by :func:`zoo.row_seeds`) or an integer array (n,) of per-shower seeds, exactly what
        the served ``generate`` signature takes. A served request with ``"seed": zoo.row_seeds(n, s)`` gets the
        showers of ``generate(energies, seed=s)``; a shower depends only on its own energy and seed.
        """
        energies = np.asarray(energies, dtype=np.float64)
        if energies.ndim == 0 or (energies.ndim == 2 and energies.shape[1] == 1):
            energies = energies.reshape(-1)
        inputs = {"energies": energies, "seed": row_seeds(len(energies), seed)}
        return self.run_endpoint("generate", inputs, batch_size=batch_size)

    # ------------------------------------------------------------------ training

    def compile(self, optimizer=None, loss=None, **kwargs):
        """Adam for each network with the paper's settings (an ``optimizer`` given here trains the generator).

        On JAX ``model.optimizer`` is then :class:`AdversarialOptimizers`, both of them as one: Keras' JAX trainer
        threads the values of ``model.optimizer.variables`` through its jitted steps, and only those."""
        super().compile(**kwargs)
        self.generator_optimizer = optimizer or keras.optimizers.Adam(self.generator_learning_rate, beta_1=self.beta_1)
        self.discriminator_optimizer = keras.optimizers.Adam(self.discriminator_learning_rate, beta_1=self.beta_1)
        if backend() == "jax":
            self.optimizer = AdversarialOptimizers(self)

    @property
    def adversarial_variables(self) -> list:
        """The generator's variables that the adversarial steps train: all but the energy head's."""
        head = {id(v) for v in energy_head(self.generator).trainable_variables} if self.energy_head else set()
        return [v for v in self.generator.trainable_variables if id(v) not in head]

    def optimizers_to_checkpoint(self) -> dict:
        return {"generator": (self.generator_optimizer, self.adversarial_variables),
                "discriminator": (self.discriminator_optimizer, self.discriminator.trainable_variables)}

    def _random_requests(self, n):
        low, high = self.energy_range
        energy = keras.random.uniform((n, 1), low, high, seed=self.training_seed)
        particle = keras.random.randint((n,), 0, len(self.particles), seed=self.training_seed)
        noise = keras.random.normal((n, self.latent_size), seed=self.training_seed)
        return noise, energy, particle

    def _generated_showers(self, n) -> tuple:
        """Images, energies and particles of ``n`` showers of the generator in inference mode (the paper's
        ``generator.predict``), for the discriminator's step on generated showers."""
        noise, energy, particle = self._random_requests(n)
        return self.generator([noise, energy, particle], training=False), energy, particle

    def _discriminator_loss(self, images, energy, particle, target: float):
        return adversarial_loss(self.discriminator([*images, energy], training=True), target, energy, particle)

    def _generator_loss(self, noise, energy, particle):
        fake = self.generator([noise, energy, particle], training=True)
        return adversarial_loss(self.discriminator([*fake, energy], training=True), 1.0, energy, particle)

    def _discriminator_steps(self, data: dict, steps) -> tuple:
        real = [ops.expand_dims(data[name], -1) for name in LAYER_NAMES]
        energy, n = ops.reshape(data["energy"], (-1, 1)), ops.shape(data["energy"])[0]
        particle = data["particle"] if "particle" in data else self._particle_like(energy)
        real_parts = steps.minimise("discriminator", lambda: self._discriminator_loss(real, energy, particle, 1.0))
        fake, fake_energy, fake_particle = steps.run(lambda: self._generated_showers(n))
        return real_parts, steps.minimise("discriminator",
                                          lambda: self._discriminator_loss(fake, fake_energy, fake_particle, 0.0))

    def adversarial_steps(self, data: dict, steps) -> dict:
        """The paper's loop on a batch of showers (the ``fit`` dict), each optimizer step taken by ``steps``
        (:class:`TapeSteps` on TensorFlow, :class:`JaxSteps` on JAX): the discriminator on the simulated showers,
        then on as many generated ones, then the generator twice, each time on fresh draws. Returns the logs."""
        real_parts, fake_parts = self._discriminator_steps(data, steps)
        n = ops.shape(data["energy"])[0]
        generator_parts = []
        for _ in range(2):
            requests = steps.run(lambda: self._random_requests(n))
            generator_parts.append(steps.minimise("generator", lambda r=requests: self._generator_loss(*r)))
        return {"d_real": real_parts["adversarial"], "d_fake": fake_parts["adversarial"],
                "g_loss": sum(p["adversarial"] for p in generator_parts) / 2.0,
                "g_energy": sum(p["energy"] for p in generator_parts) / 2.0}

    def discriminator_steps(self, data: dict) -> tuple:
        """The paper's two discriminator steps on a batch of showers (the ``fit`` dict): one on the simulated
        showers, one on as many generated ones (the generator in inference mode, as the paper's
        ``generator.predict``). Returns the loss parts of each. Needs :meth:`compile` first."""
        if backend() != "jax":
            return self._discriminator_steps(data, TapeSteps(self))
        steps = JaxSteps(self)  # eagerly, on the variables' values, written back after
        parts = self._discriminator_steps(data, steps)
        steps.write_back()
        return parts

    def train_step(self, *args):
        """One batch of the paper's loop: ``train_step(data)`` on TensorFlow; on JAX ``train_step(state, data)``
        on the values that Keras' JAX trainer passes in (trainable, non-trainable, both optimizers', metrics),
        returning (logs, the new values)."""
        if backend() == "jax":
            state, data = args
            steps = JaxSteps(self, state)
            logs = self.adversarial_steps(data[0] if isinstance(data, tuple) else data, steps)
            return logs, steps.state()
        if backend() != "tensorflow":
            raise NotImplementedError(f"CaloGAN trains under TensorFlow and JAX, not {backend()!r}; its endpoints "
                                      "serve under any backend.")
        data = args[0]
        return self.adversarial_steps(data[0] if isinstance(data, tuple) else data, TapeSteps(self))

    def fit_energy_head(self, energies, layer_energies, epochs: int = 30, batch_size: int = 1024,
                        learning_rate: float = 1e-3, seed: int = 0) -> list:
        """Fit the energy head to showers' layer energies; returns each epoch's mean pinball loss.

        ``energies`` (n,) are incident energies and ``layer_energies`` (n, 3) the energies deposited in
        layers 0, 1, 2, both in GeV. Each step draws a quantile level u = Phi(z), z ~ N(0, 1), per shower and
        chain variable and takes an Adam step on the pinball loss (:meth:`LayerEnergyQuantiles.pinball_loss`),
        whose minimum is the simulator's conditional quantile function. The streams and the
        discriminator are untouched; the learning rate decays to zero on a cosine.
        """
        if not self.energy_head:
            raise ValueError("fit_energy_head needs a generator with the energy head (energy_head=True); "
                             "this one has the paper's generator.")
        energies = np.asarray(energies, np.float64).reshape(-1)
        layer_energies = np.asarray(layer_energies, np.float64)
        if layer_energies.shape != (len(energies), 3) or not (np.all(np.isfinite(layer_energies))
                                                              and np.all(energies > 0)):
            raise ValueError(f"fit_energy_head needs energies (n,) > 0 GeV and finite layer_energies (n, 3); "
                             f"received shapes {energies.shape} and {layer_energies.shape}.")
        shares = (layer_energies / energies[:, None]).astype(np.float32)
        steps_per_epoch = max(len(energies) // batch_size, 1)
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate,
                                                                                 epochs * steps_per_epoch))
        step = self._pinball_step(energy_head(self.generator), optimizer)
        rng, history = np.random.default_rng(seed), []
        for _ in range(epochs):
            order = rng.permutation(len(energies))[: steps_per_epoch * batch_size].reshape(steps_per_epoch, -1)
            losses = [step(energies[rows, None].astype(np.float32), shares[rows],
                           rng.standard_normal((len(rows), 3)).astype(np.float32)) for rows in order]
            history.append(float(np.mean([np.asarray(loss) for loss in losses])))
        return history

    @staticmethod
    def _pinball_step(head, optimizer):
        """``(energy, shares, normals) -> loss``: one step of ``optimizer`` on the head's pinball loss, compiled for
        the backend (a ``tf.function`` with a gradient tape; a ``jax.jit`` of ``jax.value_and_grad`` of a
        stateless call and ``stateless_apply``, whose new values are assigned after each step)."""
        variables = head.trainable_variables
        if backend() == "jax":
            return _jax_pinball_step(head, optimizer, variables)
        import tensorflow as tf

        @tf.function(autograph=False, reduce_retracing=True)
        def step(energy, shares, normals):
            with tf.GradientTape() as tape:
                loss = head.pinball_loss(normals, energy, shares)
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        return step

    def layer_groups(self) -> dict:
        return {"generator": self.generator.layers, "discriminator": self.discriminator.layers}

    def get_config(self):
        return {**super().get_config(), "particle": self.particle, "particles": list(self.particles),
                "latent_size": self.latent_size, "discriminator_filters": self.discriminator_filters,
                "energy_range": list(self.energy_range), "attention": self.attention,
                "energy_head": self.energy_head,
                "generator_learning_rate": self.generator_learning_rate,
                "discriminator_learning_rate": self.discriminator_learning_rate, "beta_1": self.beta_1}


# ---------------------------------------------------------------------------- the optimizer steps per backend

class AdversarialOptimizers:
    """Both networks' optimizers as one ``model.optimizer``, for Keras' JAX trainer.

    That trainer passes the values of ``model.optimizer.variables`` (with the model's own) into each jitted
    ``train_step`` and writes back the values the step returns: here the generator's optimizer's variables,
    then the discriminator's. ``build`` builds each on the variables it trains
    (:meth:`CaloGAN.optimizers_to_checkpoint`), as their first ``apply`` does on TensorFlow."""

    def __init__(self, model):
        self._model = weakref.ref(model)  # the model holds this object: no reference cycle through it

    def _optimizers(self) -> list:
        return list(self._model().optimizers_to_checkpoint().values())

    @property
    def variables(self) -> list:
        return [v for optimizer, _ in self._optimizers() for v in optimizer.variables]

    @property
    def built(self) -> bool:
        return all(optimizer.built for optimizer, _ in self._optimizers())

    def build(self, variables=None):
        """Each optimizer on its own network's variables (``variables``, the model's, are not what they train)."""
        for optimizer, trained in self._optimizers():
            if not optimizer.built:
                optimizer.build(trained)

    @property
    def iterations(self):
        """The generator optimizer's step count (two per batch, as in the paper)."""
        return self._model().generator_optimizer.iterations

    def finalize_variable_values(self, variables):
        """Nothing to finalise (no moving average of the weights)."""

    def __repr__(self) -> str:
        return f"<AdversarialOptimizers: {', '.join(type(o).__name__ for o, _ in self._optimizers())}>"


class TapeSteps:
    """The paper's optimizer steps on TensorFlow: a gradient tape per step, the network's optimizer applied in
    place. Each replica of a strategy divides its loss by their number (their gradients are summed)."""

    def __init__(self, model):
        self.model = model

    def run(self, function):
        """``function()``, which may draw from the training seed generator or read weights."""
        return function()

    def minimise(self, network: str, loss) -> dict:
        """One step of ``network``'s optimizer on ``loss() -> (loss, parts)``; returns the parts."""
        import tensorflow as tf

        optimizer, variables = self.model.optimizers_to_checkpoint()[network]
        with tf.GradientTape() as tape:
            total, parts = loss()
            scaled = total / replicas_in_sync()
        optimizer.apply(tape.gradient(scaled, variables), variables)
        return parts


class JaxSteps:
    """The paper's optimizer steps on JAX, on the values of the model's variables, as the Keras guide's GAN.

    The values are those Keras' JAX trainer passes to ``train_step``: trainable, non-trainable (batch-norm
    statistics, the training seed generator's state), both optimizers' (:class:`AdversarialOptimizers`) and the
    metrics'. ``minimise`` differentiates a stateless call (``keras.StatelessScope`` over every variable) with
    ``jax.value_and_grad`` and applies the network's optimizer with ``stateless_apply``; what a call assigns
    (batch-norm statistics, the seed generator's state) is carried to the next step. Without ``state``, the
    variables' current values are taken (eager use; :meth:`write_back` assigns the results)."""

    def __init__(self, model, state=None):
        if model.generator_optimizer is None or model.discriminator_optimizer is None:
            raise ValueError("CaloGAN's training steps need its optimizers: call model.compile() first.")
        self.model = model
        optimizers = AdversarialOptimizers(model)
        optimizers.build()
        self.groups = (model.trainable_variables, model.non_trainable_variables, optimizers.variables)
        if state is None:
            state = tuple([v.value for v in group] for group in self.groups) + (None,)
        self.metrics = state[3]
        self.values, self.variables = {}, []
        for group, values in zip(self.groups, state[:3]):
            if len(group) != len(values):
                raise ValueError(f"train_step received {len(values)} values for {len(group)} variables: "
                                 "compile the model again after changing what it trains.")
            for variable, value in zip(group, values):
                if id(variable) not in self.values:
                    self.variables.append(variable)
                self.values[id(variable)] = value

    def _call(self, values: dict, function) -> tuple:
        """``function()`` with every variable at ``values``: (its result, the values after it)."""
        with keras.StatelessScope(state_mapping=[(v, values[id(v)]) for v in self.variables]) as scope:
            result = function()
        return result, {id(v): scope.get_current_value(v) for v in self.variables}

    def run(self, function):
        """``function()`` on the current values; what it assigns (the seed generator's state) is kept."""
        result, self.values = self._call(self.values, function)
        return result

    def minimise(self, network: str, loss) -> dict:
        """One step of ``network``'s optimizer on ``loss() -> (loss, parts)``; returns the parts."""
        import jax

        optimizer, trained = self.model.optimizers_to_checkpoint()[network]
        trained_ids = [id(v) for v in trained]

        def loss_function(trained_values):
            values = {**self.values, **dict(zip(trained_ids, trained_values))}
            (total, parts), values = self._call(values, loss)
            return total, (parts, values)

        weights = [self.values[i] for i in trained_ids]
        (_, (parts, values)), gradients = jax.value_and_grad(loss_function, has_aux=True)(weights)
        optimizer_ids = [id(v) for v in optimizer.variables]
        weights, optimizer_values = optimizer.stateless_apply([values[i] for i in optimizer_ids], gradients, weights)
        values.update(zip(trained_ids, weights))
        values.update(zip(optimizer_ids, optimizer_values))
        self.values = values
        return parts

    def state(self) -> tuple:
        """The values in the trainer's order: (trainable, non-trainable, optimizers', metrics')."""
        return tuple([self.values[id(v)] for v in group] for group in self.groups) + (self.metrics,)

    def write_back(self):
        for variable in self.variables:
            variable.assign(self.values[id(variable)])


def _jax_pinball_step(head, optimizer, variables):
    """The energy head's step on JAX: a ``jax.jit`` of ``jax.value_and_grad`` of the stateless pinball loss and
    ``optimizer.stateless_apply``; the new values are assigned to the variables after each step."""
    import jax

    optimizer.build(variables)

    def step(values, optimizer_values, energy, shares, normals):
        def loss_function(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return head.pinball_loss(normals, energy, shares)

        loss, gradients = jax.value_and_grad(loss_function)(values)
        values, optimizer_values = optimizer.stateless_apply(optimizer_values, gradients, values)
        return loss, values, optimizer_values

    jitted = jax.jit(step)

    def call(energy, shares, normals):
        loss, values, optimizer_values = jitted([v.value for v in variables], [v.value for v in optimizer.variables],
                                                energy, shares, normals)
        for variable, value in zip([*variables, *optimizer.variables], [*values, *optimizer_values]):
            variable.assign(value)
        return loss

    return call


# ---------------------------------------------------------------------------- presets

PRESET_LATENT_SIZE = 32  # the paper's 1024 makes a 120 MB generator; see the card
PRESET_DISCRIMINATOR_FILTERS = 32
# Every shipped generator has the energy head (not in the paper): see the cards for what it changed.
PRESET_ENERGY_HEAD = {"eplus": True, "gamma": True, "piplus": True}


def _preset(particle: str) -> PresetSpec:
    return PresetSpec(
        name=f"calogan-{particle}",
        model_class=CaloGAN,
        config=dict(particle=particle, particles=[particle], latent_size=PRESET_LATENT_SIZE,
                    discriminator_filters=PRESET_DISCRIMINATOR_FILTERS, energy_range=list(ENERGY_RANGE_GEV),
                    energy_head=PRESET_ENERGY_HEAD[particle]),
        summary=f"CaloGAN showers of {PARTICLE_NAMES[particle]} of 1-100 GeV in the three-layer Pb/LAr "
                "calorimeter: generate(energies, seed).",
        inputs=(TensorSpec("energies", (None,), "incident energies (GeV)"),
                TensorSpec("seed", (None,), "one seed per shower", dtype="int64")),
        outputs=tuple(TensorSpec(name, (None, *shape), f"cell energies of layer {i} (GeV)")
                      for i, (name, shape) in enumerate(zip(LAYER_NAMES, LAYER_SHAPES))),
        paper=PAPER,
    )


BIBTEX = """@article{paganini2018calogan,
  title = {CaloGAN: Simulating 3D high energy particle showers in multilayer electromagnetic calorimeters
           with generative adversarial networks},
  author = {Paganini, Michela and de Oliveira, Luke and Nachman, Benjamin},
  journal = {Phys. Rev. D},
  volume = {97},
  pages = {014021},
  year = {2018},
  doi = {10.1103/PhysRevD.97.014021},
  eprint = {1712.10321},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="calogan",
    module=__name__,
    bibtex=BIBTEX,
    task="shower-generation",
    presets=tuple(_preset(p) for p in PARTICLES),
    intended_use=(
        "Fast simulation of showers in the CaloGAN calorimeter (Pb/LAr, three layers of 3 x 96, 12 x 12 and 12 x 6 "
        "cells) for positrons, photons and charged pions of 1-100 GeV at normal incidence: "
        "`model.generate(energies, seed)` gives the cell energies in GeV, and the exported `generate` signature "
        "serves them. A starting point for fine-tuning on the public Geant4 CaloGAN data set (same HDF5 layout) "
        "or on one's own showers; the preset ships the discriminator for that."
    ),
    limitations=(
        "Trained on the zoo's parametrised (GFlash-style) shower simulation, not on Geant4: the showers it "
        "imitates are smoother than Geant4's, and pion showers come from an approximate hadronic model. Normal "
        "incidence at the centre of the calorimeter only; energies outside 1-100 GeV are extrapolations (a "
        "warning says so). A GAN matches distributions, not individual showers; the tables above say how well "
        "each shower-shape variable is reproduced, and the classifier test how distinguishable the showers are."
    ),
    tiny_overrides={"latent_size": 4, "discriminator_filters": 2},
)
