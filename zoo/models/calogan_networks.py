"""CaloGAN's generator and discriminator and their losses, in backend-neutral Keras (``keras.ops`` only).

Paganini, de Oliveira, Nachman, "CaloGAN", PRL 120, 042003 and PRD 97, 014021 (2018);
architecture as in hep-lbdl/CaloGAN (``models/train.py``, ``architectures.py``,
``ops.py`` at commit 79b63a7), re-written here for Keras 3.

This module imports neither TensorFlow nor the rest of the zoo, so the same two
networks train under any Keras backend: :mod:`zoo.models.calogan` wraps them in the
zoo's TensorFlow model (``train_step``, endpoints, export), and
``training/recipes/calogan_jax.py`` trains them with JAX on accelerators that have
no TensorFlow. The weights files of both are the same.

Units: the networks see and produce GeV (the data are stored in MeV and divided
by 1000, as in the paper's code).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from zoo.models.layers import LocallyConnected2D

LAYER_SHAPES = ((3, 96), (12, 12), (12, 6))  # calorimeter layers 0, 1, 2: (rows in x, columns in y)
LAYER_NAMES = ("layer_0", "layer_1", "layer_2")
STREAM_CHANNELS = 36  # channels of each stream's first image (paper)
ENERGY_SCALE_GEV = 100.0  # the latent vector is multiplied by E / 100 GeV (paper)
MBD_KERNELS, MBD_DIMENSIONS = 10, 10  # minibatch discrimination: 10 kernels of 10 dimensions (paper)
TOO_FAR_GEV = 5.0  # the discriminator flags |E_total - E_incident| > 5 GeV (paper)
INITIAL_RESPONSE = 0.95  # the response head's starting E_deposited / E_incident (an EM shower deposits nearly all)
RESPONSE_HIDDEN = 64  # width of the response head's hidden layer


@keras.saving.register_keras_serializable(package="zoo")
class LastChannelConstant(keras.initializers.Initializer):
    """Zeros, except ``value`` in the last channel: the attention starts by keeping each layer's own image."""

    def __init__(self, value: float = -10.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        channel = ops.arange(shape[-1]) == shape[-1] - 1
        return ops.broadcast_to(ops.where(channel, self.value, 0.0), shape)

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


@keras.saving.register_keras_serializable(package="zoo")
class ScaleToResponse(layers.Layer):
    """Rescale the three images so that together they hold r * E_incident, r in (0, 1) a per-shower response.

    The paper's generator makes E_total a sum of 504 independent ReLU outputs, which spreads by about
    +-20% where a calorimeter's response to an electromagnetic shower spreads by well under 1%: the
    showers' shapes can be right and their sum still plainly wrong. With this layer the streams set
    only how the energy is shared among the cells, and a separate head sets how much is deposited.
    Energy conservation bounds the response by 1, hence a sigmoid. A shower whose cells are all zero
    stays zero."""

    def call(self, images, response_logit, energy):
        total = sum(ops.sum(image, axis=(1, 2, 3)) for image in images)[:, None, None, None]
        deposited = (ops.sigmoid(response_logit) * energy)[:, :, None, None]
        scale = deposited / ops.maximum(total, 1e-9)
        return [image * scale for image in images]

    def compute_output_shape(self, images_shape, response_logit_shape, energy_shape):
        return list(images_shape)


@keras.saving.register_keras_serializable(package="zoo")
class ResponseInputs(layers.Layer):
    """[z, ln(E / 100 GeV)]: what the response head sees."""

    def call(self, noise, energy):
        return ops.concatenate([noise, ops.log(energy / ENERGY_SCALE_GEV)], axis=-1)

    def compute_output_shape(self, noise_shape, energy_shape):
        return (noise_shape[0], noise_shape[1] + 1)


def _response_logit(noise, energy):
    """The response head: logit of E_deposited / E_incident from the noise and ln(E / 100 GeV)."""
    x = ResponseInputs(name="response_inputs")(noise, energy)
    x = layers.Dense(RESPONSE_HIDDEN, name="response_hidden")(x)
    x = layers.LeakyReLU(0.3, name="response_hidden_act")(x)
    initial = float(np.log(INITIAL_RESPONSE / (1.0 - INITIAL_RESPONSE)))
    return layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(initial),
                        name="response_logit")(x)


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


def build_generator(latent_size: int, particles: int = 1, attention: bool = True,
                    response_head: bool = False) -> keras.Model:
    """Inputs noise (batch, latent), energy (batch, 1) GeV, particle (batch,) index; outputs three (r, c, 1) images.

    Each layer has its own stream from the shared conditioned latent vector; layer 1 then
    mixes in layer 0 (resampled 3 x 96 -> 12 x 12) and layer 2 mixes in layer 1
    (12 x 12 -> 12 x 6) through :class:`InpaintingAttention`; ReLU makes every cell >= 0.
    ``response_head=True`` (not in the paper) adds :class:`ScaleToResponse`: a head predicts the
    deposited fraction of the incident energy and the images are rescaled to hold it.
    """
    noise = keras.Input((latent_size,), name="noise")
    energy = keras.Input((1,), name="energy")
    particle = keras.Input((), dtype="int32", name="particle")
    h = LatentConditioning(latent_size, particles, name="conditioning")(noise, energy, particle)
    images = [_stream(h, rows, columns, f"g{i}") for i, (rows, columns) in enumerate(LAYER_SHAPES)]
    if attention:
        zero_on_one = layers.AveragePooling2D((1, 8), name="layer_0_to_1_pool")(
            layers.UpSampling2D((4, 1), name="layer_0_to_1_up")(images[0]))
        images[1] = InpaintingAttention(name="attention_1")([images[1], zero_on_one])
        one_on_two = layers.AveragePooling2D((1, 2), name="layer_1_to_2_pool")(images[1])
        images[2] = InpaintingAttention(name="attention_2")([images[2], one_on_two])
    if response_head:
        images = [layers.ReLU(name=f"{name}_cells")(image) for name, image in zip(LAYER_NAMES, images)]
        images = ScaleToResponse(name="scale_to_response")(images, _response_logit(noise, energy), energy)
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
