"""Jet-image taggers of boosted hadronic W bosons against QCD jets.

de Oliveira, Kagan, Mackey, Nachman & Schwartzman, "Jet-images — deep learning
edition", JHEP 07 (2016) 069, arXiv:1511.05190. A W boson with p_T ~ 275 GeV
decays to two quarks about Delta R ~ 2 m_W / p_T ~ 0.6 apart, so its trimmed
large-R jet shows two hard prongs, while a QCD jet is mostly one prong with
diffuse radiation. Drawn as a calorimeter picture in (eta, phi), the difference
is visual, and a network trained on the pictures learns the mass and the
two-prong structure, and more.

Preprocessing belongs to the preset, and runs in the exported graph too, so a
TF Serving client sends raw constituents (p_T, eta, phi):

1. subjets: kt clustering with R = 0.2 (the trimming subjets) of the hardest
   ``subjet_constituents`` constituents, E-scheme, massless constituents;
2. translation: (eta, phi) measured from the leading subjet, phi wrapped
   into (-pi, pi] first, so jets across the +-pi seam are whole;
3. rotation: the second subjet points straight down (the pT-weighted
   centroid of the jet when there is no second subjet);
4. flip: the third subjet on the right; with two subjets the pT-weighted
   centroid; with one (whose centroid step 3 put on the axis) the half of
   the image, right or left of the centre column, with more p_T;
5. pixels of 0.1 x 0.1 on a 25 x 25 grid holding summed p_T, normalised
   to unit L2 norm (sum of squared pixels = 1), as in the paper.

Every step is exact under a phi rotation of the whole event, a reflection
eta -> -eta and a longitudinal boost (eta translation): the image of a jet is
a function of the jet alone. The preprocessing is ``keras.ops``, so the same
code runs in a TensorFlow graph (the exported signatures), a jitted JAX
function and eagerly.
Arithmetic is float32 (a 32-bit JAX holds nothing wider): positions are
measured from the hardest constituent, and rapidities come from sums without
cancellation, so pixel edges do not depend on where the jet sits; on the 600
Pythia jets of the test fixture the images agree with float64 arithmetic to
1.2e-7 (no constituent changes pixel, no subjet merges in another order).
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from zoo.models.base import ZooModel
from zoo.spec import Cost, Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import InputCheck, all_of, first_rows

PAPER = (
    "L. de Oliveira, M. Kagan, L. Mackey, B. Nachman, A. Schwartzman, Jet-images — deep learning edition, "
    "JHEP 07 (2016) 069, arXiv:1511.05190"
)
IMAGE_PIXELS = 25
PIXEL_SIZE = 0.1
SUBJET_RADIUS = 0.2
SUBJET_CONSTITUENTS = 40


# ---------------------------------------------------------------------------- input checks

# Constituents within |eta| < 5 (the calorimeters' reach) enter the generator's clustering, and jets of
# R = 1.0 are kept at |eta| < 2 (the jet generator's selection): the taggers saw constituents at |eta| < 3.
CONSTITUENT_ETA_VALID = {1: (-5.0, 5.0)}
CONSTITUENT_ETA_TRAINED = {1: (-3.0, 3.0)}


IMAGING_ONNX_REFUSAL = ("the jet image is built in a while loop over the constituents, which tf2onnx 1.17 turns into "
                        "a Loop that ONNX Runtime rejects; export serving_default (images) and make the images "
                        "with the zoo's preprocessing (model.preprocess)")


class ConstituentCheck(InputCheck):
    """Jets as (batch, m, 3) rows of (p_T >= 0 in GeV, eta, phi); rows with p_T = 0 are padding.

    Negative p_T and jets with no constituent of p_T > 0 are refused; phi may be any real
    angle (it is wrapped)."""

    def __init__(self, name: str = "constituents"):
        self.name = name

    def numpy(self, arrays: dict) -> dict:
        c = arrays[self.name]
        if c.shape[1] < 1:
            raise ValueError(f"Input {self.name!r} has shape {c.shape}; expected (batch, m >= 1, 3).")
        negative = np.flatnonzero((c[..., 0] < 0).any(axis=1))
        if negative.size:
            raise ValueError(f"Input {self.name!r} has negative p_T in jet(s) {first_rows(negative)}; p_T "
                             "(column 0, GeV) must be >= 0, with 0 marking padding rows.")
        empty = np.flatnonzero(~(c[..., 0] > 0).any(axis=1))
        if empty.size:
            raise ValueError(f"Input {self.name!r} has {empty.size} jet(s) with no constituent of p_T > 0 (rows "
                             f"{first_rows(empty)}); every jet needs at least one.")
        return arrays

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf  # the checks of an exported TF Serving signature

        c = tensors[self.name]
        tf.debugging.assert_equal(tf.shape(c)[2], 3, message=f"{self.name} must be (batch, m, 3): (p_T, eta, phi)")
        tf.debugging.Assert(tf.reduce_all(c[..., 0] >= 0), [f"{self.name} has negative p_T; p_T must be >= 0"])
        tf.debugging.Assert(tf.reduce_all(tf.reduce_any(c[..., 0] > 0, axis=1)),
                            [f"{self.name} has a jet with no constituent of p_T > 0"])
        return tensors

    def screen(self, tensors: dict):
        pt = tensors[self.name][..., 0]
        if pt.shape[1] < 1:
            return tensors, False
        return tensors, all_of([ops.all(pt >= 0.0), ops.all(ops.any(pt > 0.0, axis=1))])


class ImageCheck(InputCheck):
    """Jet images: non-negative pixel intensities (L2-normalised p_T)."""

    def __init__(self, name: str = "images"):
        self.name = name

    def numpy(self, arrays: dict) -> dict:
        negative = np.flatnonzero((arrays[self.name] < 0).any(axis=(1, 2)))
        if negative.size:
            raise ValueError(f"Input {self.name!r} has negative pixels in image(s) {first_rows(negative)}; jet "
                             "images hold p_T, which is >= 0 (make them with model.preprocess(constituents)).")
        return arrays

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf  # the checks of an exported TF Serving signature

        tf.debugging.Assert(tf.reduce_all(tensors[self.name] >= 0), [f"{self.name} has negative pixels"])
        return tensors

    def screen(self, tensors: dict):
        return tensors, ops.all(tensors[self.name] >= 0.0)


# ---------------------------------------------------------------------------- preprocessing (graph)

def _wrap(angle):
    """Angle in [-pi, pi]."""
    return angle - (2.0 * math.pi) * ops.round(angle / (2.0 * math.pi))


def _momenta(pt, eta, phi):
    """Massless four-momenta as (px, py, pz, E + pz, E - pz) = p_T (cos phi, sin phi, sinh eta, e^eta, e^-eta).

    E-scheme sums of these are the sums of four-momenta, each component summed on its own:
    E +- pz are sums of positive terms, and pz of terms as small as the rapidities (which
    :func:`jet_images` measures from the hardest constituent), so the rapidity of a sum (see
    :func:`_kinematics`) has no cancellation in it. float64 does not need the care; float32 does."""
    return ops.stack([pt * ops.cos(phi), pt * ops.sin(phi), pt * ops.sinh(eta), pt * ops.exp(eta),
                      pt * ops.exp(-eta)], axis=-1)


def _kinematics(p):
    """(p_T^2, rapidity, phi) of momenta (..., 5) from :func:`_momenta`; zero momenta give zeros.

    y = atanh(pz / E) = 0.5 log1p(2 pz / (E - pz)) for pz >= 0, and -0.5 log1p(-2 pz / (E + pz)) below."""
    px, py, pz, plus, minus = (p[..., i] for i in range(5))
    nonzero = (plus > 0) & (minus > 0)
    below = ops.where(pz >= 0, minus, plus)
    half_log = 0.5 * ops.log1p(2.0 * ops.abs(pz) / ops.where(nonzero, below, 1.0))
    rapidity = ops.where(nonzero, ops.where(pz >= 0, half_log, -half_log), 0.0)
    return px * px + py * py, rapidity, ops.arctan2(py, px)


def _descending(values):
    """Indices that sort each row of ``values`` (batch, k) from largest to smallest, ties in index order."""
    return ops.top_k(values, ops.shape(values)[1], sorted=True)[1]


def kt_subjets(pt, eta, phi, radius: float = SUBJET_RADIUS):
    """Inclusive kt jets (E-scheme) of each row's particles: (p_T, rapidity, phi), (batch, k, 3), hardest first.

    The kt measure d_ij = min(p_T,i^2, p_T,j^2) Delta R_ij^2 / R^2 merges soft, close pairs
    first; a particle whose d_iB = p_T,i^2 is the smallest distance becomes a subjet. One
    particle leaves the active list per step, so k steps finish every row. Arithmetic is in
    the inputs' float type."""
    pt, eta, phi = ops.convert_to_tensor(pt), ops.convert_to_tensor(eta), ops.convert_to_tensor(phi)
    k = ops.shape(pt)[1]
    index = ops.arange(k, dtype="int32")
    not_self = index[:, None] != index[None, :]
    p = _momenta(pt, eta, phi)
    active, final = pt > 0, ops.zeros_like(pt, dtype="bool")
    infinity = ops.cast(np.inf, pt.dtype)

    def step(i, p, active, final):
        pt2, rapidity, azimuth = _kinematics(p)
        d_r2 = (rapidity[:, :, None] - rapidity[:, None, :]) ** 2 + _wrap(azimuth[:, :, None] - azimuth[:, None, :]) ** 2
        pair_ok = active[:, :, None] & active[:, None, :] & not_self
        d_ij = ops.where(pair_ok, ops.minimum(pt2[:, :, None], pt2[:, None, :]) * d_r2 / radius ** 2, infinity)
        d_ib = ops.where(active, pt2, infinity)
        # the first smallest d_ij in row-major order: a < b, as d_ij is symmetric
        row_min = ops.min(d_ij, axis=2)
        a = ops.cast(ops.argmin(row_min, axis=1), "int32")
        b = ops.cast(ops.argmin(ops.take_along_axis(d_ij, a[:, None, None], axis=1)[:, 0, :], axis=1), "int32")
        beam = ops.cast(ops.argmin(d_ib, axis=1), "int32")
        live = ops.any(active, axis=1)
        merge = live & (ops.min(row_min, axis=1) < ops.min(d_ib, axis=1))
        to_beam = live & ~merge
        keep = index[None, :] == ops.minimum(a, b)[:, None]
        absorbed = index[None, :] == ops.maximum(a, b)[:, None]
        absorbed_p = ops.sum(ops.where(absorbed[..., None], p, 0.0), axis=1)
        p = p + ops.where((merge[:, None] & keep)[..., None], absorbed_p[:, None, :], 0.0)
        becomes_subjet = to_beam[:, None] & (index[None, :] == beam[:, None])
        leaving = (merge[:, None] & absorbed) | becomes_subjet
        return i + 1, p, active & ~leaving, final | becomes_subjet

    _, p, _, final = ops.while_loop(lambda i, p, active, final: (i < k) & ops.any(active), step,
                                    (ops.convert_to_tensor(0, "int32"), p, active, final))
    pt2, rapidity, azimuth = _kinematics(p)
    subjet_pt = ops.where(final, ops.sqrt(pt2), 0.0)
    order = _descending(subjet_pt)
    rows = ops.stack([subjet_pt, ops.where(final, rapidity, 0.0), ops.where(final, azimuth, 0.0)], axis=-1)
    return ops.take_along_axis(rows, order[..., None], axis=1)


def _hardest(constituents, count: int):
    """The ``count`` constituents of highest p_T (all when there are fewer), hardest first."""
    m = ops.shape(constituents)[1]
    n = min(count, m) if isinstance(m, int) else ops.minimum(count, m)
    order = _descending(constituents[..., 0])[:, :n]
    return ops.take_along_axis(constituents, order[..., None], axis=1)


def jet_images(constituents, pixels: int = IMAGE_PIXELS, pixel_size: float = PIXEL_SIZE,
               subjet_radius: float = SUBJET_RADIUS, subjet_constituents: int = SUBJET_CONSTITUENTS,
               dtype: str = "float32"):
    """Constituents (batch, m, 3) of (p_T, eta, phi) -> centred, rotated, flipped, L2-normalised images (batch, P, P).

    Rows of the image run from +y (top) to -y; columns from -x to +x, where x is along
    eta and y along phi before the rotation. ``keras.ops`` throughout, so it runs in a
    TensorFlow graph, a jitted JAX function or eagerly; arithmetic in ``dtype`` (float64
    needs a backend that holds it: not a 32-bit JAX), float32 images out. Positions are
    measured from the hardest constituent first, so the numbers stay small wherever the
    jet sits."""
    c = ops.cast(constituents, dtype)
    hardest = _hardest(c, subjet_constituents)
    reference = hardest[:, :1, :]  # the hardest constituent
    pt = c[..., 0]
    eta, phi = c[..., 1] - reference[..., 1], _wrap(c[..., 2] - reference[..., 2])
    real = pt > 0
    subjets = kt_subjets(hardest[..., 0], hardest[..., 1] - reference[..., 1],
                         _wrap(hardest[..., 2] - reference[..., 2]), subjet_radius)
    subjets = ops.pad(subjets, [[0, 0], [0, 2], [0, 0]])  # >= 3 rows
    n_subjets = ops.sum(ops.cast(subjets[..., 0] > 0, "int32"), axis=1)

    def offsets(eta_, phi_):  # from the leading subjet
        return eta_ - subjets[:, :1, 1], _wrap(phi_ - subjets[:, :1, 2])

    dx, dy = offsets(eta, phi)
    weight = ops.where(real, pt, 0.0)
    centroid = (ops.sum(weight * dx, axis=1), ops.sum(weight * dy, axis=1))
    second_x, second_y = offsets(subjets[:, 1:2, 1], subjets[:, 1:2, 2])
    has_second = n_subjets >= 2
    # unit vector (ux, uy) towards the second subjet (else the centroid); (0, -1), no rotation, for a zero vector
    vx = ops.where(has_second, second_x[:, 0], centroid[0])
    vy = ops.where(has_second, second_y[:, 0], centroid[1])
    length = ops.sqrt(vx * vx + vy * vy)
    zero = length == 0
    ux = ops.where(zero, 0.0, vx / ops.where(zero, 1.0, length))[:, None]
    uy = ops.where(zero, -1.0, vy / ops.where(zero, 1.0, length))[:, None]

    def rotated(dx_, dy_):  # the rotation taking (ux, uy) to (0, -1)
        return dy_ * ux - dx_ * uy, -(dx_ * ux + dy_ * uy)

    x, y = rotated(dx, dy)
    third_x = rotated(*offsets(subjets[:, 2:3, 1], subjets[:, 2:3, 2]))[0][:, 0]
    half = pixels * pixel_size / 2.0

    def column_of(x_):
        return ops.cast(ops.floor((x_ + half) / pixel_size), "int32")

    row = ops.cast(ops.floor((half - y) / pixel_size), "int32")
    inside = real & (row >= 0) & (row < pixels)
    # one subjet: the rotation put the centroid on the axis, which leaves it no side (only rounding noise); the
    # image's half with more p_T goes right: the columns right of the centre one against those left of it
    column = column_of(x)
    pixel_pt = ops.where(inside & (column >= 0) & (column < pixels), weight, 0.0)
    more_pt = (ops.sum(ops.where(column >= (pixels + 1) // 2, pixel_pt, 0.0), axis=1)
               - ops.sum(ops.where(column < pixels // 2, pixel_pt, 0.0), axis=1))
    side = ops.where(n_subjets >= 3, third_x, ops.where(n_subjets == 2, ops.sum(weight * x, axis=1), more_pt))
    column = column_of(ops.where((side < 0)[:, None], -x, x))
    inside = inside & (column >= 0) & (column < pixels)
    batch = ops.shape(pt)[0]
    cells = pixels * pixels
    jet_index = ops.arange(batch, dtype="int32")[:, None] * cells
    segment = ops.where(inside, jet_index + row * pixels + column, batch * cells)
    flat = ops.segment_sum(ops.reshape(weight, (-1,)), ops.reshape(segment, (-1,)), num_segments=batch * cells + 1)
    images = ops.reshape(flat[:-1], (batch, pixels, pixels))
    norm = ops.sqrt(ops.sum(images ** 2, axis=(1, 2), keepdims=True))
    return ops.cast(images / ops.maximum(norm, 1e-30), "float32")


# ---------------------------------------------------------------------------- layers and models

@keras.saving.register_keras_serializable(package="zoo")
class MaxOut(keras.layers.Layer):
    """max over ``pieces`` affine maps: h_i = max_k (W_k x + b_k)_i (Goodfellow et al. 2013), a learned
    piecewise-linear convex activation."""

    def __init__(self, units: int, pieces: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.units, self.pieces = int(units), int(pieces)
        self.affine = keras.layers.Dense(self.units * self.pieces, name="affine")

    def build(self, input_shape):
        self.affine.build(input_shape)

    def call(self, x):
        z = self.affine(x)
        return ops.max(ops.reshape(z, (-1, self.units, self.pieces)), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "pieces": self.pieces}


class JetImageTagger(ZooModel):
    """P(W | jet): a network on 25 x 25 jet images, with the image-making preprocessing as part of the model.

    Endpoints: ``serving_default`` (images -> p_w), ``constituents`` (raw constituents ->
    p_w, the preprocessing in the graph) and ``preprocess`` (constituents -> images).
    Subclasses give ``features`` and ``feature_layers`` (the layers on the image); the dense head
    (``dense_units`` ReLU layers with ``dropout``, then the logit) is shared."""

    training_spec = TrainingSpec(loss="binary_crossentropy")
    fine_tuning = FineTuning(groups=("features", "head"), loss="binary_crossentropy",
                             error_name="held-out RMS error of P(W)", preprocessing={"constituents": "preprocess"})

    def __init__(self, dense_units=(64,), dropout: float = 0.2, output_name: str = "p_w",
                 subjet_constituents: int = SUBJET_CONSTITUENTS, **kwargs):
        super().__init__(**kwargs)
        self.dense_units, self.dropout = [int(u) for u in dense_units], float(dropout)
        self.output_name, self.subjet_constituents = output_name, int(subjet_constituents)
        self.head_layers = [layer for i, u in enumerate(self.dense_units) for layer in (
            keras.layers.Dense(u, activation="relu", name=f"head_dense_{i}"),
            keras.layers.Dropout(self.dropout, name=f"head_dropout_{i}"))] + [keras.layers.Dense(1, name="head_logit")]

    # the network
    def features(self, images, training=False):
        raise NotImplementedError

    def feature_layers(self) -> list:
        """The trainable layers of :meth:`features` (the ``features`` group of fine-tuning)."""
        raise NotImplementedError

    def layer_groups(self) -> dict:
        """``features``: the layers on the image; ``head``: the dense layers to the logit."""
        return {"features": self.feature_layers(),
                "head": [layer for layer in self.head_layers if not isinstance(layer, keras.layers.Dropout)]}

    def call(self, inputs, training=False):
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        x = self.features(ops.cast(images, self.compute_dtype), training=training)
        for layer in self.head_layers:
            x = layer(x, training=training) if isinstance(layer, keras.layers.Dropout) else layer(x)
        return ops.sigmoid(ops.cast(x, "float32"))

    # preprocessing
    def images_of(self, constituents):
        """The graph preprocessing (tensors in, tensors out); :meth:`preprocess` is its checked numpy form."""
        return jet_images(constituents, subjet_constituents=self.subjet_constituents)

    def preprocess(self, constituents, batch_size: int | None = None) -> np.ndarray:
        """Constituents (n, m, 3) of (p_T [GeV], eta, phi), zero-padded -> the (n, 25, 25) images the model takes."""
        return self.run_endpoint("preprocess", constituents, batch_size)["images"]

    def tag_constituents(self, constituents, batch_size: int | None = None) -> np.ndarray:
        """P(W) (n, 1) straight from constituents: preprocess and predict in one compiled call."""
        return self.run_endpoint("constituents", constituents, batch_size)[self.output_name]

    # the contract
    def endpoints(self) -> tuple:
        images = TensorSpec("images", (None, IMAGE_PIXELS, IMAGE_PIXELS),
                            "jet images (batch, 25, 25): L2-normalised p_T in 0.1 x 0.1 (eta, phi) pixels, "
                            "from preprocess")
        constituents = TensorSpec("constituents", (None, None, 3),
                                  "jet constituents (batch, m, 3): (p_T GeV >= 0, eta, phi), p_T = 0 rows are padding",
                                  valid_range=CONSTITUENT_ETA_VALID, trained_range=CONSTITUENT_ETA_TRAINED)
        per_constituent = Cost(scaling_axes=(("constituents", 1),))
        output = TensorSpec(self.output_name, (None, 1), "P(W | jet)")
        image_out = TensorSpec("images", (None, IMAGE_PIXELS, IMAGE_PIXELS), "jet images (batch, 25, 25)")
        default = self.call_endpoint((images,), output, "jet images -> P(W)")

        def from_constituents(constituents):
            return {self.output_name: self(self.images_of(constituents), training=False)}

        def preprocess(constituents):
            return {"images": self.images_of(constituents)}

        return (
            dataclasses.replace(default, check=ImageCheck("images")),
            Endpoint("constituents", from_constituents, (constituents,), (output,), ConstituentCheck(),
                     "raw constituents -> P(W), preprocessing in the graph", cost=per_constituent,
                     onnx_refusal=IMAGING_ONNX_REFUSAL),
            Endpoint("preprocess", preprocess, (constituents,), (image_out,), ConstituentCheck(),
                     "raw constituents -> the model's jet images", cost=per_constituent,
                     onnx_refusal=IMAGING_ONNX_REFUSAL),
        )

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        """Two-prong toy jets of 30 constituents (constituent endpoints) or their images."""
        constituents = toy_jets(batch_size, seed)
        if endpoint == "serving_default":
            return {"images": ops.convert_to_numpy(jet_images(constituents))}
        return {"constituents": constituents}

    def get_config(self):
        return {**super().get_config(), "dense_units": self.dense_units, "dropout": self.dropout,
                "output_name": self.output_name, "subjet_constituents": self.subjet_constituents}


def toy_jets(n: int, seed: int = 0, constituents: int = 30) -> np.ndarray:
    """Random two-prong jets (n, constituents, 3) around eta ~ 0, phi ~ 1 with p_T ~ 275 GeV, for examples and tests."""
    rng = np.random.default_rng(seed)
    prong = rng.integers(0, 2, (n, constituents))
    axis = rng.uniform(0, 2 * np.pi, (n, 1))
    spread = rng.uniform(0.2, 0.6, (n, 1))
    eta = rng.normal(0, 0.05, (n, constituents)) + prong * spread * np.cos(axis)
    phi = rng.normal(1.0, 0.05, (n, constituents)) + prong * spread * np.sin(axis)
    pt = rng.exponential(275.0 / constituents, (n, constituents)) + 0.5
    return np.stack([pt, eta, np.angle(np.exp(1j * phi))], axis=-1).astype("float32")


@keras.saving.register_keras_serializable(package="zoo")
class JetCNN(JetImageTagger):
    """The paper's convolutional tagger: conv blocks (ReLU, 'same' padding, max-pooling, dropout), then dense.

    Args:
        filters, kernel_sizes, pool_sizes: one entry per convolution block.
        dropout: rate after each block and before the last dense layer.
        dense_units: hidden dense layers of the head (ReLU).
    """

    def __init__(self, filters=(32, 32, 32), kernel_sizes=(11, 3, 3), pool_sizes=(2, 2, 2), dropout: float = 0.2,
                 dense_units=(64,), **kwargs):
        if not (len(filters) == len(kernel_sizes) == len(pool_sizes)) or not filters:
            raise ValueError(f"filters, kernel_sizes and pool_sizes need one entry per block; received {filters}, "
                             f"{kernel_sizes}, {pool_sizes}.")
        super().__init__(dense_units=dense_units, dropout=dropout, **kwargs)
        self.filters, self.kernel_sizes = [int(f) for f in filters], [int(k) for k in kernel_sizes]
        self.pool_sizes = [int(p) for p in pool_sizes]
        self.blocks = [
            [keras.layers.Conv2D(f, k, padding="same", activation="relu", name=f"conv_{i}"),
             keras.layers.MaxPooling2D(p, name=f"pool_{i}"), keras.layers.Dropout(self.dropout, name=f"dropout_{i}")]
            for i, (f, k, p) in enumerate(zip(self.filters, self.kernel_sizes, self.pool_sizes))]
        self.flatten = keras.layers.Flatten(name="flatten")

    def features(self, images, training=False):
        x = ops.expand_dims(images, -1)
        for conv, pool, dropout in self.blocks:
            x = dropout(pool(conv(x)), training=training)
        return self.flatten(x)

    def feature_layers(self) -> list:
        """The convolutions."""
        return [block[0] for block in self.blocks]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_sizes": self.kernel_sizes,
                "pool_sizes": self.pool_sizes}


@keras.saving.register_keras_serializable(package="zoo")
class JetMaxOut(JetImageTagger):
    """The paper's MaxOut tagger on the flattened image: MaxOut layers, then dense ReLU layers.

    Args:
        maxout_units: units of each MaxOut layer; pieces: affine pieces per unit.
        dense_units: hidden dense layers (ReLU); dropout: rate after every hidden layer.
    """

    def __init__(self, maxout_units=(256, 128), pieces: int = 5, dense_units=(64, 25), dropout: float = 0.2,
                 **kwargs):
        super().__init__(dense_units=dense_units, dropout=dropout, **kwargs)
        self.maxout_units, self.pieces = [int(u) for u in maxout_units], int(pieces)
        self.flatten = keras.layers.Flatten(name="flatten")
        self.maxouts = [MaxOut(u, self.pieces, name=f"maxout_{i}") for i, u in enumerate(self.maxout_units)]
        self.maxout_dropouts = [keras.layers.Dropout(self.dropout, name=f"maxout_dropout_{i}")
                                for i in range(len(self.maxouts))]

    def features(self, images, training=False):
        x = self.flatten(images)
        for maxout, dropout in zip(self.maxouts, self.maxout_dropouts):
            x = dropout(maxout(x), training=training)
        return x

    def feature_layers(self) -> list:
        """The MaxOut layers."""
        return list(self.maxouts)

    def get_config(self):
        return {**super().get_config(), "maxout_units": self.maxout_units, "pieces": self.pieces}


def sample_section(metadata) -> str:
    """The jet selection and sample sizes as a table (from the ``data`` entry the recipe recorded)."""
    data = metadata.get("data", {})
    cuts = data.get("parameter_ranges") or {}
    if not cuts:
        return ""
    window = cuts.get("mass_window")
    rows = [
        ("collisions", f"pp at sqrt(s) = {cuts['sqrt_s'] / 1000:g} TeV, Pythia 8 defaults (showers, multiple "
                       "interactions, hadronisation)"),
        ("signal (label 1)", "q qbar' -> Z W, Z -> nu nu, W -> q qbar'"),
        ("background (label 0)", "QCD 2 -> 2 (HardQCD:all)"),
        ("hard-process window", f"{cuts['pt_min'] - cuts['pt_hat_margin'][0]:g} < pT-hat < "
                                f"{cuts['pt_max'] + cuts['pt_hat_margin'][1]:g} GeV"),
        ("jets", f"anti-kt R = {cuts['radius']:g} on visible final-state particles with |eta| < 5; the hardest "
                 f"jet, trimmed with kt subjets R_sub = {cuts['subjet_radius']:g}, f_cut = "
                 f"{100 * cuts['trim_fraction']:g}%"),
        ("selection", f"{cuts['pt_min']:g} < p_T < {cuts['pt_max']:g} GeV, |eta| < {cuts['eta_max']:g}"
                      + (f", {window[0]:g} < m < {window[1]:g} GeV" if window else ", no mass window")),
        ("jets per class", f"training {data.get('n_train')} (seed {data.get('train_seed')}), validation seed "
                           f"{data.get('validation_seed')}, evaluation {data.get('n_evaluation')} (seed "
                           f"{data.get('evaluation_seed')})"),
        ("generators", f"pythia8mc {data.get('options', {}).get('pythia8mc')}, fastjet "
                       f"{data.get('options', {}).get('fastjet')}"),
    ]
    escaped = [(name, value.replace("|", "\\|")) for name, value in rows]  # a bare | would end the cell
    table = "\n".join(["| | |", "|---|---|"] + [f"| {name} | {value} |" for name, value in escaped])
    return f"\n### The jet sample\n\n{table}\n"


_IMAGES = TensorSpec("images", (None, IMAGE_PIXELS, IMAGE_PIXELS),
                     "jet images (batch, 25, 25) from model.preprocess(constituents)")
_P_W = TensorSpec("p_w", (None, 1), "P(W | jet): probability that the trimmed jet is a boosted hadronic W, not QCD")

_PRESETS = (
    PresetSpec(
        name="jet-cnn-w-vs-qcd",
        model_class=JetCNN,
        config=dict(filters=[32, 32, 32], kernel_sizes=[11, 3, 3], pool_sizes=[2, 2, 2], dropout=0.2,
                    dense_units=[64]),
        summary="Boosted W vs QCD jet images (25x25, or raw constituents) -> P(W); Pythia 8 at 13 TeV, "
                "250 < p_T < 300 GeV.",
        inputs=(_IMAGES,), outputs=(_P_W,), paper=PAPER,
    ),
    PresetSpec(
        name="jet-maxout-w-vs-qcd",
        model_class=JetMaxOut,
        config=dict(maxout_units=[256, 128], pieces=5, dense_units=[64, 25], dropout=0.2),
        summary="MaxOut network on flattened W vs QCD jet images -> P(W); same sample as jet-cnn-w-vs-qcd.",
        inputs=(_IMAGES,), outputs=(_P_W,), paper=PAPER,
    ),
)

BIBTEX = """@article{deoliveira2016jetimages,
  title = {Jet-images -- deep learning edition},
  author = {de Oliveira, Luke and Kagan, Michael and Mackey, Lester and Nachman, Benjamin and Schwartzman, Ariel},
  journal = {JHEP},
  volume = {07},
  pages = {069},
  year = {2016},
  doi = {10.1007/JHEP07(2016)069},
  eprint = {1511.05190},
  archivePrefix = {arXiv}
}"""

FAMILY = Family(
    name="jets",
    module=__name__,
    bibtex=BIBTEX,
    task="image-classification",
    presets=_PRESETS,
    intended_use=(
        "Tagging boosted hadronically decaying W bosons against QCD jets from the jet's constituents, as "
        "de Oliveira et al. did: `model.preprocess(constituents)` makes the jet image, `model.predict(images)` "
        "gives P(W); the `constituents` serving signature does both in the graph. A pretrained starting point "
        "for fine-tuning on jets from another generator or a detector simulation, and a reference to compare "
        "new taggers with the physics baselines (jet mass, N-subjettiness tau_21, their combination, a "
        "Fisher discriminant on the images) on the same events."
    ),
    limitations=(
        "Trained on Pythia 8 particle-level jets (no detector simulation, no pile-up) at sqrt(s) = 13 TeV: "
        "anti-kt R = 1.0, trimmed (R_sub = 0.2, f_cut = 5%), 250 < p_T < 300 GeV, |eta| < 2, signal "
        "q qbar' -> Z(nu nu) W(q qbar'). Other p_T ranges change the W's opening angle and are outside what it "
        "learned; real detectors smear and merge the pixels. The output is strongly correlated with the jet "
        "mass (see the figure), so a cut on it sculpts the QCD mass distribution: do not use it where a "
        "mass-decorrelated tagger is needed. Hadronisation-model dependence (Pythia vs Herwig) is not measured."
    ),
    card_sections=sample_section,
    tiny_overrides={"filters": [2], "kernel_sizes": [3], "pool_sizes": [2], "dense_units": [4],
                    "maxout_units": [4], "pieces": 2},
)
