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
4. flip: the third subjet (else the pT-weighted centroid) on the right;
5. pixels of 0.1 x 0.1 on a 25 x 25 grid holding summed p_T, normalised
   to unit L2 norm (sum of squared pixels = 1), as in the paper.

Every step is exact under a phi rotation of the whole event, a reflection
eta -> -eta and a longitudinal boost (eta translation): the image of a jet is
a function of the jet alone. Arithmetic is float64 so that pixel edges do not
depend on where the jet sits.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.models.base import ZooModel
from zoo.spec import Cost, Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec
from zoo.validation import InputCheck, first_rows

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
        c = tensors[self.name]
        tf.debugging.assert_equal(tf.shape(c)[2], 3, message=f"{self.name} must be (batch, m, 3): (p_T, eta, phi)")
        tf.debugging.Assert(tf.reduce_all(c[..., 0] >= 0), [f"{self.name} has negative p_T; p_T must be >= 0"])
        tf.debugging.Assert(tf.reduce_all(tf.reduce_any(c[..., 0] > 0, axis=1)),
                            [f"{self.name} has a jet with no constituent of p_T > 0"])
        return tensors


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
        tf.debugging.Assert(tf.reduce_all(tensors[self.name] >= 0), [f"{self.name} has negative pixels"])
        return tensors


# ---------------------------------------------------------------------------- preprocessing (graph)

def _wrap(angle):
    """Angle in [-pi, pi]."""
    return angle - 2.0 * math.pi * tf.round(angle / (2.0 * math.pi))


def _kinematics(p):
    """(p_T^2, rapidity, phi) of four-momenta (..., 4) = (px, py, pz, E); zero momenta give zeros."""
    px, py, pz, e = tf.unstack(p, axis=-1)
    pt2 = px * px + py * py
    massless_safe = tf.maximum(e - pz, 1e-300)
    rapidity = tf.where(e > 0, 0.5 * tf.math.log(tf.maximum(e + pz, 1e-300) / massless_safe), tf.zeros_like(e))
    return pt2, rapidity, tf.atan2(py, px)


def kt_subjets(pt, eta, phi, radius: float = SUBJET_RADIUS):
    """Inclusive kt jets (E-scheme) of each row's particles: (p_T, rapidity, phi), (batch, k, 3), hardest first.

    The kt measure d_ij = min(p_T,i^2, p_T,j^2) Delta R_ij^2 / R^2 merges soft, close pairs
    first; a particle whose d_iB = p_T,i^2 is the smallest distance becomes a subjet. One
    particle leaves the active list per step, so k steps finish every row."""
    k = tf.shape(pt)[1]
    p = tf.stack([pt * tf.cos(phi), pt * tf.sin(phi), pt * tf.sinh(eta), pt * tf.cosh(eta)], axis=-1)
    active, final = pt > 0, tf.zeros_like(pt, dtype=tf.bool)
    not_self = ~tf.eye(k, dtype=tf.bool)
    infinity = tf.constant(np.inf, pt.dtype)

    def step(i, p, active, final):
        pt2, rapidity, azimuth = _kinematics(p)
        d_r2 = (rapidity[:, :, None] - rapidity[:, None, :]) ** 2 + _wrap(azimuth[:, :, None] - azimuth[:, None, :]) ** 2
        pair_ok = active[:, :, None] & active[:, None, :] & not_self
        d_ij = tf.where(pair_ok, tf.minimum(pt2[:, :, None], pt2[:, None, :]) * d_r2 / radius ** 2, infinity)
        d_ib = tf.where(active, pt2, infinity)
        flat = tf.reshape(d_ij, (tf.shape(pt)[0], -1))
        pair, beam = tf.argmin(flat, axis=1, output_type=tf.int32), tf.argmin(d_ib, axis=1, output_type=tf.int32)
        live = tf.reduce_any(active, axis=1)
        merge = live & (tf.reduce_min(flat, axis=1) < tf.reduce_min(d_ib, axis=1))
        to_beam = live & ~merge
        a, b = pair // k, pair % k
        keep, absorbed = tf.one_hot(tf.minimum(a, b), k, dtype=p.dtype), tf.one_hot(tf.maximum(a, b), k, dtype=p.dtype)
        absorbed_p = tf.reduce_sum(p * absorbed[..., None], axis=1)
        p = p + tf.where(merge[:, None, None], keep[..., None] * absorbed_p[:, None, :], tf.zeros_like(p))
        becomes_subjet = to_beam[:, None] & tf.one_hot(beam, k, on_value=True, off_value=False)
        leaving = (merge[:, None] & (absorbed > 0)) | becomes_subjet
        return i + 1, p, active & ~leaving, final | becomes_subjet

    _, p, _, final = tf.while_loop(lambda i, p, active, final: (i < k) & tf.reduce_any(active),
                                   step, (tf.constant(0), p, active, final))
    pt2, rapidity, azimuth = _kinematics(p)
    subjet_pt = tf.where(final, tf.sqrt(pt2), tf.zeros_like(pt2))
    order = tf.argsort(subjet_pt, axis=1, direction="DESCENDING", stable=True)
    rows = tf.stack([subjet_pt, tf.where(final, rapidity, tf.zeros_like(rapidity)),
                      tf.where(final, azimuth, tf.zeros_like(azimuth))], axis=-1)
    return tf.gather(rows, order, batch_dims=1)


def _hardest(constituents, count: int):
    order = tf.argsort(constituents[..., 0], axis=1, direction="DESCENDING", stable=True)
    return tf.gather(constituents, order[:, :tf.minimum(count, tf.shape(constituents)[1])], batch_dims=1)


def _direction_angle(dx, dy):
    """atan2(dy, dx), with -pi/2 (no rotation needed) for a zero vector."""
    zero = (dx == 0) & (dy == 0)
    return tf.where(zero, tf.constant(-math.pi / 2, dx.dtype), tf.atan2(dy, tf.where(zero, tf.ones_like(dx), dx)))


def jet_images(constituents, pixels: int = IMAGE_PIXELS, pixel_size: float = PIXEL_SIZE,
               subjet_radius: float = SUBJET_RADIUS, subjet_constituents: int = SUBJET_CONSTITUENTS):
    """Constituents (batch, m, 3) of (p_T, eta, phi) -> centred, rotated, flipped, L2-normalised images (batch, P, P).

    Rows of the image run from +y (top) to -y; columns from -x to +x, where x is along
    eta and y along phi before the rotation."""
    c = tf.cast(constituents, tf.float64)
    pt, eta, phi = c[..., 0], c[..., 1], c[..., 2]
    real = pt > 0
    hard = _hardest(c, subjet_constituents)
    subjets = kt_subjets(hard[..., 0], hard[..., 1], hard[..., 2], subjet_radius)
    subjets = tf.pad(subjets, [[0, 0], [0, tf.maximum(0, 3 - tf.shape(subjets)[1])], [0, 0]])  # >= 3 rows
    n_subjets = tf.reduce_sum(tf.cast(subjets[..., 0] > 0, tf.int32), axis=1)

    def offsets(eta_, phi_):  # from the leading subjet
        return eta_ - subjets[:, :1, 1], _wrap(phi_ - subjets[:, :1, 2])

    dx, dy = offsets(eta, phi)
    weight = tf.where(real, pt, tf.zeros_like(pt))
    centroid = (tf.reduce_sum(weight * dx, axis=1), tf.reduce_sum(weight * dy, axis=1))
    second_x, second_y = offsets(subjets[:, 1:2, 1], subjets[:, 1:2, 2])
    has_second = n_subjets >= 2
    angle = _direction_angle(tf.where(has_second, second_x[:, 0], centroid[0]),
                             tf.where(has_second, second_y[:, 0], centroid[1]))
    turn = (-math.pi / 2 - angle)[:, None]

    def rotated(dx_, dy_):
        return dx_ * tf.cos(turn) - dy_ * tf.sin(turn), dx_ * tf.sin(turn) + dy_ * tf.cos(turn)

    x, y = rotated(dx, dy)
    third_x = rotated(*offsets(subjets[:, 2:3, 1], subjets[:, 2:3, 2]))[0][:, 0]
    side = tf.where(n_subjets >= 3, third_x, tf.reduce_sum(weight * x, axis=1))
    x = x * tf.where(side < 0, -tf.ones_like(side), tf.ones_like(side))[:, None]
    half = pixels * pixel_size / 2.0
    column = tf.cast(tf.floor((x + half) / pixel_size), tf.int32)
    row = tf.cast(tf.floor((half - y) / pixel_size), tf.int32)
    inside = real & (column >= 0) & (column < pixels) & (row >= 0) & (row < pixels)
    batch = tf.shape(pt)[0]
    cells = pixels * pixels
    jet_index = tf.range(batch)[:, None] * cells
    segment = tf.where(inside, jet_index + row * pixels + column, batch * cells)
    flat = tf.math.unsorted_segment_sum(tf.reshape(weight, [-1]), tf.reshape(segment, [-1]), batch * cells + 1)
    images = tf.reshape(flat[:-1], (batch, pixels, pixels))
    norm = tf.sqrt(tf.reduce_sum(images ** 2, axis=(1, 2), keepdims=True))
    return tf.cast(images / tf.maximum(norm, 1e-30), tf.float32)


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
                             error_name="held-out RMS error of P(W)")

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
                     "raw constituents -> P(W), preprocessing in the graph", cost=per_constituent),
            Endpoint("preprocess", preprocess, (constituents,), (image_out,), ConstituentCheck(),
                     "raw constituents -> the model's jet images", cost=per_constituent),
        )

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        """Two-prong toy jets of 30 constituents (constituent endpoints) or their images."""
        constituents = toy_jets(batch_size, seed)
        if endpoint == "serving_default":
            return {"images": jet_images(constituents).numpy()}
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
