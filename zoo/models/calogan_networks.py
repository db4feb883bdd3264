"""CaloGAN's generator and discriminator and their losses, in backend-neutral Keras (``keras.ops`` only).

Paganini, de Oliveira, Nachman, "CaloGAN", PRL 120, 042003 and PRD 97, 014021 (2018);
architecture as in hep-lbdl/CaloGAN (``models/train.py``, ``architectures.py``,
``ops.py`` at commit 79b63a7), re-written here for Keras 3.

This module imports neither TensorFlow nor the rest of the zoo, so the same two
networks train under any Keras backend: :mod:`zoo.models.calogan` wraps them in the
zoo's model (endpoints, export, and a ``train_step`` for TensorFlow and for JAX), so
``model.fit`` trains them on accelerators that have no TensorFlow. The weights files are
the same under every backend.

Units: the networks see and produce GeV (the data are stored in MeV and divided
by 1000, as in the paper's code).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from zoo.models.layers import LocallyConnected2D

LAYER_SHAPES = ((3, 96), (12, 12), (12, 6))  # calorimeter layers 0, 1, 2: (rows in x, columns in y)
LAYER_NAMES = ("layer_0", "layer_1", "layer_2")
STREAM_CHANNELS = 36  # channels of each stream's first image (paper)
ENERGY_SCALE_GEV = 100.0  # the latent vector is multiplied by E / 100 GeV (paper)
MBD_KERNELS, MBD_DIMENSIONS = 10, 10  # minibatch discrimination: 10 kernels of 10 dimensions (paper)
TOO_FAR_GEV = 5.0  # the discriminator flags |E_total - E_incident| > 5 GeV (paper)
ENERGY_HEAD_HIDDEN = 128  # width of the two hidden layers of each of the energy head's quantile networks
ENERGY_HEAD_NAME = "energy_head"
SHARE_FLOOR = 1e-6  # fractions are clipped to [this, 1 - this] before their logit
# A drawn fraction within this of 0 or 1 is 0 or 1: the head has learnt a point mass there, such as the
# deepest layer left exactly empty by most electromagnetic showers below 10 GeV (a logit beyond +-9.2).
EMPTY_FRACTION = 1e-4
# The head draws its levels at z clipped to +-3 (u between 0.13 % and 99.87 %). 100,000 training showers leave
# rarer quantiles unresolved, and the networks extrapolate them wildly: unclipped, a 95 GeV positron's
# response came out 0.08 at z = -4, where the simulator's lowest of 25,000 was 0.985.
LEVEL_LIMIT = 3.0


@keras.saving.register_keras_serializable(package="zoo")
class LastChannelConstant(keras.initializers.Initializer):
    """Zeros, except ``value`` in the last channel: the attention starts by keeping each layer's own image."""

    def __init__(self, value: float = -10.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        channel = ops.arange(shape[-1]) == shape[-1] - 1
        # added to zeros rather than broadcast: torch's broadcast is a view that loading weights cannot write into
        return ops.zeros(shape, dtype=dtype) + ops.cast(ops.where(channel, self.value, 0.0), dtype or "float32")

    def get_config(self):
        return {"value": self.value}


@keras.saving.register_keras_serializable(package="zoo")
class InpaintingAttention(layers.Layer):
    """CaloGAN's trainable layer-to-layer connection: a per-cell convex mix of a layer and its predecessor.

        w(x) = softmax over 2 channels of LC_3x3([primary, carried]),  out = w_0 primary + w_1 carried

    ``carried`` is the previous calorimeter layer resampled onto this layer's grid. A
    locally connected 3 x 3 kernel sees both images around each cell, so the network
    learns where a shower continues from the layer in front. The bias of the second
    channel starts at -10, so an untrained network keeps each layer's own image.
    """

    def __init__(self, initial_bias: float = -10.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_bias = float(initial_bias)
        self.pad = layers.ZeroPadding2D((1, 1))
        self.mixer = LocallyConnected2D(2, (3, 3), bias_initializer=LastChannelConstant(self.initial_bias),
                                        name="mixer")

    def build(self, input_shapes):
        primary_shape = tuple(input_shapes[0])
        padded = (primary_shape[0], primary_shape[1] + 2, primary_shape[2] + 2, 2 * primary_shape[3])
        self.pad.build((*primary_shape[:3], 2 * primary_shape[3]))  # no weights; built, so the model is
        self.mixer.build(padded)

    def call(self, inputs):
        both = ops.concatenate(list(inputs), axis=-1)
        weights = ops.softmax(self.mixer(self.pad(both)), axis=-1)
        return ops.sum(both * weights, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shapes):
        return (*tuple(input_shapes[0])[:3], 1)

    def get_config(self):
        return {**super().get_config(), "initial_bias": self.initial_bias}


@keras.saving.register_keras_serializable(package="zoo")
class MinibatchDiscrimination(layers.Layer):
    """Salimans et al. (2016) minibatch features: how close each example is to the others in its batch.

        M_i = x_i T (kernels x dimensions),  o_i,k = tanh(sum_j exp(-||M_i,k - M_j,k||_1))

    A generator that collapses onto a few showers makes o large; the discriminator sees it.
    This is why a batch must hold only real or only generated showers (the paper's rule).
    """

    def __init__(self, kernels: int = MBD_KERNELS, dimensions: int = MBD_DIMENSIONS, **kwargs):
        super().__init__(**kwargs)
        self.kernels, self.dimensions = int(kernels), int(dimensions)

    def build(self, input_shape):
        self.tensor = self.add_weight(shape=(input_shape[-1], self.kernels * self.dimensions),
                                      initializer="glorot_uniform", name="tensor")

    def call(self, x):
        m = ops.reshape(ops.matmul(x, self.tensor), (-1, self.kernels, self.dimensions))
        l1 = ops.sum(ops.abs(m[:, None] - m[None, :]), axis=-1)  # (batch, batch, kernels)
        return ops.tanh(ops.sum(ops.exp(-l1), axis=1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.kernels)

    def get_config(self):
        return {**super().get_config(), "kernels": self.kernels, "dimensions": self.dimensions}


@keras.saving.register_keras_serializable(package="zoo")
class ShowerSummary(layers.Layer):
    """Energy per layer (batch, 3) and the fraction of non-empty cells of each image (batch, 3)."""

    def call(self, images):
        energies = [ops.sum(image, axis=(1, 2, 3)) for image in images]
        occupied = [ops.mean(ops.cast(image > 0, image.dtype), axis=(1, 2, 3)) for image in images]
        return ops.stack(energies, axis=-1), ops.stack(occupied, axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], len(input_shapes)), (input_shapes[0][0], len(input_shapes))


@keras.saving.register_keras_serializable(package="zoo")
class EnergyFeatures(layers.Layer):
    """The discriminator's global energy features (paper): E_i / 10, E_total / 100, |E_total - E_in|, 10 [> 5 GeV].

    Returns (features, E_total); E_total is the auxiliary energy-reconstruction output."""

    def call(self, layer_energies, incident):
        total = ops.sum(layer_energies, axis=-1, keepdims=True)
        distance = ops.abs(total - incident)
        too_far = 10.0 * ops.cast(distance > TOO_FAR_GEV, distance.dtype)
        return ops.concatenate([layer_energies / 10.0, total / 100.0, distance, too_far], axis=-1), total

    def compute_output_shape(self, layer_energies_shape, incident_shape):
        return (layer_energies_shape[0], layer_energies_shape[1] + 3), (layer_energies_shape[0], 1)


@keras.saving.register_keras_serializable(package="zoo")
class LatentConditioning(layers.Layer):
    """h = z * E / 100 GeV, times a learned particle embedding when the network knows several particles."""

    def __init__(self, latent_size: int, particles: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_size, self.particles = int(latent_size), int(particles)
        self.embedding = layers.Embedding(self.particles, self.latent_size, embeddings_initializer="glorot_normal",
                                          name="particle_embedding") if self.particles > 1 else None

    def build(self, input_shapes):
        if self.embedding is not None:
            self.embedding.build((None,))

    def call(self, noise, energy, particle):
        h = noise * energy / ENERGY_SCALE_GEV
        if self.embedding is not None:
            h = h * self.embedding(ops.cast(particle, "int32"))
        return h

    def compute_output_shape(self, noise_shape, energy_shape, particle_shape):
        return noise_shape

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size, "particles": self.particles}


def _logit(p):
    p = ops.clip(p, SHARE_FLOOR, 1.0 - SHARE_FLOOR)
    return ops.log(p) - ops.log(1.0 - p)


def chain_variables(shares):
    """(R, a, b): the response R = E_total / E, a = E_1 / E_total and b = E_0 / (E_0 + E_2), from the
    layers' shares E_i / E (batch, 3). Each lies in [0, 1], and the three layer energies follow back from
    them: E_1 = R a E, E_0 = R (1 - a) b E, E_2 = R (1 - a) (1 - b) E."""
    total = ops.sum(shares, axis=-1)
    a = shares[:, 1] / ops.maximum(total, 1e-30)
    b = shares[:, 0] / ops.maximum(shares[:, 0] + shares[:, 2], 1e-30)
    return ops.stack([total, a, b], axis=-1)


def shares_from_chain(chain):
    """The layers' shares E_i / E (batch, 3) from (R, a, b) (the inverse of :func:`chain_variables`)."""
    total, a, b = chain[:, 0], chain[:, 1], chain[:, 2]
    return ops.stack([total * (1.0 - a) * b, total * a, total * (1.0 - a) * (1.0 - b)], axis=-1)


@keras.saving.register_keras_serializable(package="zoo")
class LayerEnergyQuantiles(layers.Layer):
    """The energy head: draws each shower's layer energies from learned conditional quantile functions.

    The three layer energies are written as a chain of fractions in [0, 1] (:func:`chain_variables`):
    the response R, then a given R, then b given R and a. One small network per variable maps a
    level u = Phi(z) and what comes before it in the chain (ln(E / 100 GeV) and the earlier variables'
    logits) to the logit of that variable's u-quantile. Trained by the pinball loss with the observed
    earlier variables (:meth:`pinball_loss`), each network converges to the conditional quantile function,
    so drawing z ~ N(0, 1) samples the conditional distribution exactly in the limit (autoregressive
    implicit quantile networks: Dabney et al., ICML 2018; Ostrovski et al., ICML 2018): the narrow
    electromagnetic response, with its leakage tail, and a pion's minimum-ionising spike beside its
    showers alike. The z's are the first three latent components, clipped to +-``LEVEL_LIMIT``. A layer the simulator
    often leaves exactly empty is a point mass of a fraction at 0 or 1, which the clipped logits learn as
    a quantile beyond +-13.8; a drawn fraction within ``EMPTY_FRACTION`` of 0 or 1 is set to it.
    """

    def __init__(self, hidden: int = ENERGY_HEAD_HIDDEN, **kwargs):
        super().__init__(**kwargs)
        self.hidden = int(hidden)
        self.networks = [self._network(i) for i in range(3)]

    def _network(self, i: int):
        return keras.Sequential([layers.Dense(self.hidden, activation="gelu", name=f"q{i}_hidden_0"),
                                 layers.Dense(self.hidden, activation="gelu", name=f"q{i}_hidden_1"),
                                 layers.Dense(1, name=f"q{i}_logit")], name=f"quantile_{i}")

    def build(self, noise_shape, energy_shape=None):
        for i, network in enumerate(self.networks):
            network.build((None, 2 + i))

    def _quantile_logit(self, i: int, normals, log_energy, earlier_logits):
        """Logit of chain variable i's quantile at level Phi(z_i), given ln(E / 100 GeV) and the earlier
        variables' logits. The network sees z_i itself, not Phi(z_i): a Gaussian's quantile function is
        linear in z, and a leakage tail is steep in u but gentle in z."""
        return self.networks[i](ops.concatenate([normals[:, i:i + 1], log_energy, earlier_logits], axis=-1))

    def call(self, noise, energy):
        """The layers' shares E_i / E (batch, 3) of one draw per shower, from the first three latent components."""
        normals, log_energy = ops.clip(noise[:, :3], -LEVEL_LIMIT, LEVEL_LIMIT), ops.log(energy / ENERGY_SCALE_GEV)
        logits = log_energy[:, :0]
        for i in range(3):
            logits = ops.concatenate([logits, self._quantile_logit(i, normals, log_energy, logits)], axis=-1)
        chain = ops.sigmoid(logits)
        chain = ops.where(chain < EMPTY_FRACTION, 0.0, ops.where(chain > 1.0 - EMPTY_FRACTION, 1.0, chain))
        return shares_from_chain(chain)

    def pinball_loss(self, normals, energy, shares):
        """Mean pinball loss of the three quantile networks at levels u = Phi(z) of ``normals`` z (batch, 3)
        against observed shares (batch, 3), each network given the observed earlier variables (teacher forcing)."""
        observed, log_energy = _logit(chain_variables(shares)), ops.log(energy / ENERGY_SCALE_GEV)
        predicted = ops.concatenate([self._quantile_logit(i, normals, log_energy, observed[:, :i])
                                     for i in range(3)], axis=-1)
        uniforms, error = 0.5 * (1.0 + ops.erf(normals / 2.0**0.5)), observed - predicted
        return ops.mean(ops.maximum(uniforms * error, (uniforms - 1.0) * error))

    def compute_output_shape(self, noise_shape, energy_shape):
        return (noise_shape[0], 3)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="zoo")
class ScaleToLayerEnergies(layers.Layer):
    """Rescale each image to hold E_i = s_i E_incident, the share s_i the energy head drew for its layer.

    The paper's generator makes each layer's energy a sum of independent ReLU outputs, so E_total spreads
    by about +-20 % where a calorimeter's response to an electromagnetic shower spreads by well under 1 %:
    the shapes can be right and the sums plainly wrong. Here, as in CaloFlow's split of p(E_0, E_1, E_2 | E)
    from the shapes given the layer energies (Krause & Shih, arXiv:2106.05285), the energy head learns the
    layer energies and the streams only share each layer's energy among its cells. The head's output
    passes through ``stop_gradient``: it learns from its own pinball loss on simulated layer energies
    (:meth:`LayerEnergyQuantiles.pinball_loss`), never from the discriminator. The head decides which layers
    are empty (its drawn share is 0); a layer the head fills but its stream left empty takes the shape of
    a neighbour resampled onto its grid (``carried``: layer 1 on layer 0's grid, layer 0 on layer 1's, layer 1
    on layer 2's), as a shower carries on from where it was. Without it a photon whose layer-0 stream came
    out empty (2 in 1000) lost that layer's 20-30 % of its energy."""

    def call(self, images, shares, energy, carried):
        shares = ops.stop_gradient(shares)
        scaled = []
        for image, fallback, share in zip(images, carried, ops.unstack(shares, axis=-1)):
            empty = ops.sum(image, axis=(1, 2, 3))[:, None, None, None] <= 0
            image = ops.where(empty, fallback, image)  # a layer the stream left empty: its neighbour's shape
            total = ops.sum(image, axis=(1, 2, 3))[:, None, None, None]
            target = (share[:, None] * energy)[:, :, None, None]
            scaled.append(image * target / ops.maximum(total, 1e-9))
        return scaled

    def compute_output_shape(self, images_shape, shares_shape, energy_shape, carried_shape):
        return list(images_shape)


def energy_head(generator: keras.Model) -> LayerEnergyQuantiles:
    """The generator's energy head (a :class:`LayerEnergyQuantiles` layer)."""
    return generator.get_layer(ENERGY_HEAD_NAME)


def _stream(h, rows: int, columns: int, name: str):
    """One LAGAN-style stream: dense -> (rows + 2, columns + 2, 36) -> conv -> two locally connected layers."""
    x = layers.Dense((rows + 2) * (columns + 2) * STREAM_CHANNELS, name=f"{name}_dense")(h)
    x = layers.Reshape((rows + 2, columns + 2, STREAM_CHANNELS), name=f"{name}_reshape")(x)
    x = layers.Conv2D(16, (2, 2), padding="same", kernel_initializer="he_uniform", name=f"{name}_conv")(x)
    x = layers.LeakyReLU(0.3, name=f"{name}_conv_act")(x)
    x = layers.BatchNormalization(name=f"{name}_conv_bn")(x)
    x = LocallyConnected2D(6, (2, 2), kernel_initializer="he_uniform", name=f"{name}_lc_1")(x)
    x = layers.LeakyReLU(0.3, name=f"{name}_lc_1_act")(x)
    return LocallyConnected2D(1, (2, 2), use_bias=False, kernel_initializer="glorot_normal", name=f"{name}_lc_2")(x)


def _onto_next_layer(image, layer: int, role: str):
    """Layer 0's image resampled onto layer 1's grid (3 x 96 -> 12 x 12), or layer 1's onto layer 2's (12 x 12 ->
    12 x 6), by averaging the cells each new cell covers."""
    if layer == 0:
        image = layers.UpSampling2D((4, 1), name=f"layer_0_{role}_1_up")(image)
        return layers.AveragePooling2D((1, 8), name=f"layer_0_{role}_1_pool")(image)
    return layers.AveragePooling2D((1, 2), name=f"layer_1_{role}_2_pool")(image)


def _layer_1_onto_layer_0(image):
    """Layer 1's image resampled onto layer 0's grid (12 x 12 -> 3 x 96): four rows averaged, each column split."""
    image = layers.AveragePooling2D((4, 1), name="layer_1_fallback_0_pool")(image)
    return layers.UpSampling2D((1, 8), name="layer_1_fallback_0_up")(image)


def build_generator(latent_size: int, particles: int = 1, attention: bool = True,
                    energy_head: bool = False) -> keras.Model:
    """Inputs noise (batch, latent), energy (batch, 1) GeV, particle (batch,) index; outputs three (r, c, 1) images.

    Each layer has its own stream from the shared conditioned latent vector; layer 1 then
    mixes in layer 0 (resampled 3 x 96 -> 12 x 12) and layer 2 mixes in layer 1
    (12 x 12 -> 12 x 6) through :class:`InpaintingAttention`; ReLU makes every cell >= 0.
    ``energy_head=True`` (not in the paper) adds :class:`ScaleToLayerEnergies`: a head draws the three
    layer energies and each image is rescaled to hold its layer's.
    """
    noise = keras.Input((latent_size,), name="noise")
    energy = keras.Input((1,), name="energy")
    particle = keras.Input((), dtype="int32", name="particle")
    h = LatentConditioning(latent_size, particles, name="conditioning")(noise, energy, particle)
    images = [_stream(h, rows, columns, f"g{i}") for i, (rows, columns) in enumerate(LAYER_SHAPES)]
    if attention:
        images[1] = InpaintingAttention(name="attention_1")([images[1], _onto_next_layer(images[0], 0, "to")])
        images[2] = InpaintingAttention(name="attention_2")([images[2], _onto_next_layer(images[1], 1, "to")])
    if energy_head:
        images = [layers.ReLU(name=f"{name}_cells")(image) for name, image in zip(LAYER_NAMES, images)]
        carried = [_layer_1_onto_layer_0(images[1]), *(_onto_next_layer(images[i], i, "fallback") for i in range(2))]
        images = ScaleToLayerEnergies(name="scale_to_layer_energies")(
            images, LayerEnergyQuantiles(name=ENERGY_HEAD_NAME)(noise, energy), energy, carried)
        outputs = [layers.Identity(name=name)(image) for name, image in zip(LAYER_NAMES, images)]
    else:
        outputs = [layers.ReLU(name=name)(image) for name, image in zip(LAYER_NAMES, images)]
    return keras.Model([noise, energy, particle], outputs, name="generator")


def _layer_features(image, filters: int, name: str):
    """Per-layer discriminator features: conv, three locally connected blocks, minibatch and sparsity terms."""
    x = layers.Conv2D(filters, (2, 2), padding="same", name=f"{name}_conv")(image)
    x = layers.LeakyReLU(0.3, name=f"{name}_conv_act")(x)
    for i, (channels, kernel, strides) in enumerate(((16, (3, 3), (1, 2)), (8, (2, 2), (1, 1)), (8, (2, 2), (1, 2)))):
        x = layers.ZeroPadding2D((1, 1), name=f"{name}_pad_{i}")(x)
        x = LocallyConnected2D(channels, kernel, strides=strides, name=f"{name}_lc_{i}")(x)
        x = layers.LeakyReLU(0.3, name=f"{name}_lc_{i}_act")(x)
        x = layers.BatchNormalization(name=f"{name}_lc_{i}_bn")(x)
    return layers.Flatten(name=f"{name}_flat")(x)


def build_discriminator(filters: int = 64, particles: int = 1) -> keras.Model:
    """Inputs the three images (r, c, 1) and the incident energy (batch, 1) in GeV.

    Outputs ``real`` (probability that the shower is simulated rather than generated),
    ``total_energy`` (the summed cells: the auxiliary energy-reconstruction output) and,
    with several particles, ``particle`` (class probabilities, the ACGAN auxiliary task)."""
    images = [keras.Input((rows, columns, 1), name=name) for name, (rows, columns) in zip(LAYER_NAMES, LAYER_SHAPES)]
    incident = keras.Input((1,), name="energy")
    layer_energies, sparsity = ShowerSummary(name="summary")(images)
    features = []
    for i, image in enumerate(images):
        x = _layer_features(image, filters, f"d{i}")
        sparsity_i = layers.Reshape((1,), name=f"d{i}_sparsity")(sparsity[:, i:i + 1])
        features += [x, MinibatchDiscrimination(name=f"d{i}_mbd")(x), sparsity_i,
                     MinibatchDiscrimination(name=f"d{i}_sparsity_mbd")(sparsity_i)]
    energy_features, total = EnergyFeatures(name="energy_features")(layer_energies, incident)
    energy_mbd = MinibatchDiscrimination(name="energy_mbd")(layer_energies)
    p = layers.Concatenate(name="features")([*features, energy_features, energy_mbd])
    outputs = {"real": layers.Dense(1, activation="sigmoid", name="real")(p),
               "total_energy": layers.Identity(name="total_energy")(total)}
    if particles > 1:
        outputs["particle"] = layers.Dense(particles, activation="softmax", name="particle")(p)
    return keras.Model([*images, incident], outputs, name="discriminator")


# ----------------------------------------------------------------------------- losses (paper's weights)

ENERGY_LOSS_WEIGHT = 0.05  # lambda_E: weight of |E_total - E_requested| (paper, train.py)
PARTICLE_LOSS_WEIGHT = 0.2  # weight of the ACGAN particle classification (reference code)


def _bce(target: float, p):
    p = ops.clip(p, 1e-7, 1.0 - 1e-7)
    return -ops.mean(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


def adversarial_loss(outputs: dict, target: float, energy, particle, energy_weight: float = ENERGY_LOSS_WEIGHT,
                     particle_weight: float = PARTICLE_LOSS_WEIGHT):
    """BCE of ``real`` against ``target`` + lambda_E |E_total - E| + the particle cross-entropy.

    The discriminator minimises it with target 1 on simulated and 0 on generated
    batches, the generator with target 1 on its own showers. The energy term has no
    discriminator weights (E_total is a sum of cells), so only the generator learns
    from it. Returns (total loss, dict of its parts)."""
    parts = {"adversarial": _bce(target, outputs["real"]),
             "energy": ops.mean(ops.abs(outputs["total_energy"] - energy))}
    total = parts["adversarial"] + energy_weight * parts["energy"]
    if "particle" in outputs:
        probabilities = ops.clip(ops.take_along_axis(outputs["particle"], ops.cast(particle, "int32")[:, None], axis=1),
                                 1e-7, 1.0)
        parts["particle"] = -ops.mean(ops.log(probabilities))
        total = total + particle_weight * parts["particle"]
    return total, parts
