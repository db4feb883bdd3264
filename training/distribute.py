"""Training on GPUs, TPUs or several machines: tf.distribute under TensorFlow, keras.distribution under JAX.

Under JAX (``zoo train NAME --backend jax``) ``strategy_for`` returns a :class:`JaxDataParallel`:
``cpu`` is one device, ``auto`` every local device (GPUs or TPU cores) with Keras'
``DataParallel``, which splits each global batch over the devices and averages the
gradients; the tf.distribute names (``mirrored``, ``multiworker``, ``tpu``) are refused.

``strategy_for(name)`` picks a strategy: ``auto`` (a TPU when one is
configured, else every visible GPU with MirroredStrategy, else several
workers when TF_CONFIG names them, else the default), ``cpu``, ``mirrored``,
``multiworker`` or ``tpu``. Keras 3's ``fit`` does not work under
MultiWorkerMirroredStrategy (keras-team/keras#20585), so
``train_custom_loop`` runs the steps itself with ``strategy.run`` and
``strategy.reduce``; it serves every strategy, the default one included.

Several machines: start the same command on each with TF_CONFIG set, e.g.
``{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}``.
"""
from __future__ import annotations

import contextlib
import json
import os

import keras
import numpy as np

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu")


def _tpu_configured() -> bool:
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_WORKER_ID"))


def _workers_in_tf_config() -> int:
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return len(config.get("cluster", {}).get("worker", []))


def strategy_for(name: str = "auto"):
    """The strategy that ``--strategy NAME`` asks for: a tf.distribute strategy, or under JAX a
    :class:`JaxDataParallel` (a strategy-like object with ``scope()`` and ``num_replicas_in_sync``)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}, received {name!r}.")
    if keras.backend.backend() == "jax":
        return JaxDataParallel.for_strategy(name)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"zoo train runs on the tensorflow or jax backend; KERAS_BACKEND is "
                         f"{keras.backend.backend()!r} (torch serves inference only).")
    import tensorflow as tf

    if name == "auto":
        if _tpu_configured():
            name = "tpu"
        elif tf.config.list_physical_devices("GPU"):
            name = "mirrored"
        elif _workers_in_tf_config() > 1:
            name = "multiworker"
        else:
            name = "cpu"
    if name == "cpu":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


class JaxDataParallel:
    """Data parallelism under JAX through ``keras.distribution``: inside ``scope()`` Keras places the variables
    on every device (replicated) and splits each batch along its first axis; XLA sums the gradients."""

    def __init__(self, devices: list):
        self.devices = list(devices)

    @classmethod
    def for_strategy(cls, name: str) -> "JaxDataParallel":
        import jax

        if name in ("mirrored", "multiworker", "tpu"):
            raise ValueError(f"--strategy {name} names a tf.distribute strategy; under --backend jax use "
                             f"--strategy auto (every local device: {len(jax.local_devices())} here) or cpu (one).")
        return cls(jax.local_devices() if name == "auto" else jax.local_devices()[:1])

    @property
    def num_replicas_in_sync(self) -> int:
        return len(self.devices)

    @contextlib.contextmanager
    def scope(self):
        if len(self.devices) == 1:
            yield self
            return
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=self.devices))
        try:
            yield self
        finally:
            keras.distribution.set_distribution(previous)


def is_multiworker(strategy) -> bool:
    """Whether ``strategy`` spans several machines (where Keras 3's ``fit`` fails)."""
    return type(strategy).__name__ == "MultiWorkerMirroredStrategy"


KERAS_FIT_REFUSAL = (
    "This recipe trains with Keras fit, which fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); "
    "use --strategy cpu, auto, mirrored (GPUs) or tpu."
)


def per_example_loss(loss):
    """A Keras loss (name or ``loss(y_true, y_pred)``) as per-example values in float32: mean over all but the batch axis."""
    import keras

    function = keras.losses.get(loss) if isinstance(loss, str) else loss

    def per_example(targets, predictions):
        import tensorflow as tf

        values = function(tf.cast(targets, tf.float32), tf.cast(predictions, tf.float32))
        return tf.reduce_mean(tf.reshape(values, (tf.shape(values)[0], -1)), axis=-1)

    return per_example


def global_batches(x, y, global_batch_size: int, steps: int, seed: int = 0):
    """``steps`` global batches drawn with a fixed seed: every worker and a single process see the same ones."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = y.shape[0]
    index = rng.integers(0, n, size=(steps, global_batch_size))
    xs = {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]
    dataset = tf.data.Dataset.from_tensor_slices((xs, y[index]))  # one element = one global batch
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def train_custom_loop(strategy, build_model, build_optimizer, x, y, global_batch_size: int, steps: int,
                      seed: int = 0, training: bool = True):
    """Train ``build_model()`` for ``steps`` steps under ``strategy`` without ``fit``; return (model, losses).

    The loss is the one the model declares (``model.training_spec.loss``); a model
    that trains with its own ``train_step`` is refused with its family's reason.

    Each replica computes its per-example losses, scales them by the global
    batch size (so the summed gradient is the mean over the global batch) and
    ``strategy.run`` applies the all-reduced gradient everywhere.
    ``training=False`` runs the model deterministically (no latent noise), which
    makes a distributed run comparable number for number with a single process.
    """
    with strategy.scope():
        model = build_model()
        optimizer = build_optimizer()
    if model.training_spec.own_train_step or model.training_spec.multiworker_refusal:
        raise ValueError(model.training_spec.multiworker_refusal or
                         f"{type(model).__name__} trains with its own train_step, which the custom loop does not run.")
    import tensorflow as tf

    loss_of = per_example_loss(model.training_spec.loss)
    batches = global_batches(x, y, global_batch_size, steps, seed).unbatch().batch(global_batch_size)
    distributed = strategy.experimental_distribute_dataset(batches)

    @tf.function
    def step(inputs, targets):
        def replica_step(inputs, targets):
            with tf.GradientTape() as tape:
                predictions = model(inputs, training=training)
                loss = tf.nn.compute_average_loss(loss_of(targets, predictions), global_batch_size=global_batch_size)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        per_replica = strategy.run(replica_step, args=(inputs, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    losses = [float(step(inputs, targets)) for inputs, targets in distributed]
    return model, losses
