"""What differs between Keras backends, kept in one place so that the families need not know.

- :func:`compile_endpoint`: an endpoint compiled for the backend (a TensorFlow concrete
  function, a ``jax.jit`` of a stateless call, or eager calls elsewhere);
  :func:`compile_screened_endpoint`, under JAX, the same with the input checks inside the call.
- :func:`normal_rows`, :func:`uniform_rows`, :func:`bit_rows`: seeded draws that are
  the same numbers on every backend. Each row is drawn from its own integer seed by a
  counter-based generator written in ``keras.ops`` (an integer hash of the seed, a salt
  and the element's index, then Box-Muller), so a shower or a field served from a
  TensorFlow SavedModel is the one that ``generate`` or ``sample`` draws under JAX.
- :class:`OwnLossTraining`: ``train_step`` for models that minimise a loss of their own
  (reverse KL, contrastive divergence, a reconstruction with hidden state): the family
  writes ``training_loss`` in ``keras.ops``; the step that differentiates and applies it
  is written here once per backend, as the Keras guides write custom steps.
- :func:`replicas_in_sync`: replicas of a TensorFlow strategy (1 on JAX, whose
  ``keras.distribution`` averages over the global batch by itself).

Seeds are int64 in [0, 2**63). JAX runs in 32 bits unless x64 is switched on (the zoo does not
switch it on for its users), so a seed travels to a jitted function as four 16-bit words
(``seed_words``) and the generator works in int32 with wrap-around products on every backend.
"""
from __future__ import annotations

import logging
import math
import weakref

import keras
import numpy as np
from keras import ops

from zoo.validation import can_screen, screened_inputs

SEED_WORDS = 4  # an int64 seed as four 16-bit words, the form every backend holds exactly in int32


def backend() -> str:
    return keras.backend.backend()


# ---------------------------------------------------------------------- compiled endpoints

class _FirstTraceIsNotRetracing(logging.Filter):
    """Every model compiles its own endpoint functions once; TensorFlow counts those first traces as retracing."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


_RETRACING_FILTER = _FirstTraceIsNotRetracing()


def compile_endpoint(model, name: str):
    """Endpoint ``name`` of ``model`` compiled for the Keras backend: numpy arrays in, arrays out.

    TensorFlow: the concrete function over the declared input signature (batch axis free);
    calling it directly skips tf.function's argument matching, which costs as much as a
    small model itself. JAX: ``jax.jit`` of the endpoint with the weights passed in
    (a stateless call, so weights changed later are seen; a stochastic endpoint's random
    state is written back). Other backends run eagerly."""
    declared = model.endpoint(name)
    if backend() == "tensorflow":
        return _concrete_endpoint(model, declared)
    call = compile_function(model, _endpoint_function(name, declared.input_names), stochastic=declared.stochastic)
    if backend() == "jax":
        return lambda *arrays: call(*_host_arrays(declared, arrays))
    return lambda *arrays: {k: ops.convert_to_numpy(v) for k, v in call(*arrays).items()}


def _endpoint_function(name: str, names: list):
    """``function(model, *tensors)`` calling endpoint ``name`` with its inputs in declared order."""
    return lambda model, *tensors: model.endpoint(name).function(**dict(zip(names, tensors)))


def _concrete_endpoint(model, declared):
    import tensorflow as tf

    tf.get_logger().addFilter(_RETRACING_FILTER)
    signature = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in declared.inputs]
    function = _endpoint_function(declared.name, declared.input_names)
    owner = weakref.ref(model)  # the model holds this function: no reference cycle through it

    @tf.function(input_signature=signature, autograph=False)
    def call(*tensors):
        return function(owner(), *tensors)

    concrete = call.get_concrete_function()
    return lambda *arrays: concrete(*[tf.constant(a) for a in arrays])


def compile_screened_endpoint(model, name: str):
    """Under JAX, endpoint ``name`` compiled with its input checks screened inside the call
    (:func:`zoo.validation.screened_inputs`): arrays in, its outputs, or None where the screen flagged an
    input (then ``predict`` runs the numpy checks, which raise or warn with their messages, and the plain
    endpoint). None elsewhere, or for an endpoint that cannot be screened.

    On two CPU cores the numpy checks cost as much as a small model's call (an RBM's is ~15 us), and under
    asynchronous dispatch Python run between two calls is slowed further; in the call they cost almost
    nothing."""
    declared = model.endpoint(name)
    if backend() != "jax" or not can_screen(declared):
        return None
    names = declared.input_names

    def screened(model, *arrays):
        endpoint = model.endpoint(name)
        tensors, passed = screened_inputs(endpoint, dict(zip(names, arrays)))
        if passed is False:  # a shape the numpy checks refuse (a lattice below the kernel): not traced on it
            return {}, False
        return endpoint.function(**tensors), passed

    jitted = compile_function(model, screened)

    def call(*arrays):
        try:
            outputs, passed = jitted(*arrays)
        except Exception:  # an input the numpy checks refuse may fail to trace; they say why (or the error recurs)
            return None
        return outputs if np.asarray(passed) else None  # bool() of a JAX scalar, or jax.device_get, costs more

    return call


def _host_arrays(declared, arrays) -> list:
    """int64 inputs (seeds) as (n, 4) 16-bit words, which a 32-bit JAX holds exactly."""
    return [seed_words_numpy(a) if t.dtype == "int64" else a for t, a in zip(declared.inputs, arrays)]


def compile_function(model, function, stochastic: bool = False):
    """``function(model, *tensors)`` compiled for the backend, called with arrays: a ``tf.function``, a
    ``jax.jit`` with the model's variables passed in (weights changed later are seen; with ``stochastic``,
    variables the function assigns, seed generators, are written back), or eager calls."""
    owner = weakref.ref(model)
    if backend() == "tensorflow":
        import tensorflow as tf

        traced = tf.function(lambda *tensors: function(owner(), *tensors), autograph=False, reduce_retracing=True)
        return lambda *arrays: traced(*[tf.constant(a) for a in arrays])
    if backend() != "jax":
        return lambda *arrays: function(owner(), *[ops.convert_to_tensor(a) for a in arrays])
    import jax

    def stateless(values, *arrays):
        model = owner()
        with keras.StatelessScope(state_mapping=list(zip(model.variables, values))) as scope:
            outputs = function(model, *arrays)
        return outputs, [scope.get_current_value(v) for v in model.variables] if stochastic else []

    jitted = jax.jit(stateless)
    variables = []  # filled on the first call: walking the layers for them costs as much as a small model

    def call(*arrays):
        if not variables:
            variables.extend(owner().variables)
        outputs, updated = jitted([_raw_value(v) for v in variables], *arrays)
        for variable, value in zip(variables, updated):
            if value is not None and value is not variable.value:
                variable.assign(value)
        return outputs

    return call


def compile_energy_and_gradient(model, energy):
    """``z -> (E(z), dE/dz)`` as numpy for ``energy(model, z)`` of a batch (n,) of independent rows (so the
    gradient of their sum is each row's own), compiled for the backend: an HMC's inner loop."""
    owner = weakref.ref(model)
    if backend() == "jax":
        import jax

        def total(z, values):
            model = owner()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
                e = energy(model, z)
            return ops.sum(e), e

        gradient = jax.jit(jax.value_and_grad(total, has_aux=True))

        def call(z):
            (_, e), g = gradient(np.asarray(z, np.float32), [v.value for v in owner().variables])
            return np.asarray(e), np.asarray(g)

        return call
    import tensorflow as tf  # torch trains nothing in the zoo: inference only

    @tf.function(jit_compile=True, autograph=False)
    def energy_and_gradient(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            e = energy(owner(), z)
        return e, tape.gradient(e, z)

    def call(z):
        e, g = energy_and_gradient(tf.constant(z, tf.float32))
        return e.numpy(), g.numpy()

    return call


def _raw_value(variable):
    """A variable's stored array: its ``value`` property costs microseconds (scope and autocast checks), which
    add up to a small model's whole call over its tens of variables; the stateless call reads ``value`` inside."""
    raw = variable._value
    return variable.value if raw is None else raw


# ---------------------------------------------------------------------- seeded draws, equal on every backend

def seed_words_numpy(seeds) -> np.ndarray:
    """int64 seeds (n,) -> (n, 4) int32 16-bit words, least significant first."""
    seeds = np.asarray(seeds, np.int64)
    shifts = np.arange(SEED_WORDS, dtype=np.int64) * 16
    return ((seeds[:, None] >> shifts) & 0xFFFF).astype(np.int32)


def seed_words(seeds):
    """Per-row seeds as (n, 4) int32 16-bit words: from int64 seeds (TensorFlow, torch) or as JAX gets them."""
    if len(seeds.shape) == 2:  # already words: a jitted JAX endpoint receives them so
        return ops.cast(seeds, "int32")
    seeds = ops.cast(seeds, "int64")
    return ops.stack([ops.cast(ops.bitwise_and(ops.right_shift(seeds, 16 * i), 0xFFFF), "int32")
                      for i in range(SEED_WORDS)], axis=1)


def _shift_right(x, bits: int):
    """Logical right shift of int32 bit patterns (the backends' >> on int32 is arithmetic)."""
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _as_int32(constant: int) -> int:
    return constant - (1 << 32) if constant >= 1 << 31 else constant


_MULTIPLIERS = (_as_int32(0x7FEB352D), _as_int32(0x846CA68B))  # C. Wellons' "lowbias32" integer hash


def _mix(x):
    """A bijective 32-bit integer hash with good avalanche, on int32 with wrap-around products."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, ops.cast(_MULTIPLIERS[0], "int32"))
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, ops.cast(_MULTIPLIERS[1], "int32"))
    return ops.bitwise_xor(x, _shift_right(x, 16))


def _row_keys(seeds, salt: int):
    """One 32-bit key per row from its 64-bit seed and a salt that keeps different draws apart."""
    words = seed_words(seeds)
    key = _mix(ops.full((ops.shape(words)[0],), _as_int32(salt & 0xFFFFFFFF), dtype="int32"))
    for i in range(SEED_WORDS):
        key = _mix(ops.bitwise_xor(key, words[:, i]))
    return key


def bit_rows(seeds, count: int, salt: int, offset=0):
    """(n, count) int32 hashes: element j of row r is a hash of (seed_r, salt, offset + j)."""
    keys = _row_keys(seeds, salt)
    counters = _mix(ops.arange(count, dtype="int32") + 1 + ops.cast(offset, "int32"))
    return _mix(ops.bitwise_xor(keys[:, None], counters[None, :]))


def uniform_rows(seeds, shape, salt: int, offset=0):
    """U(0, 1) draws (n, *shape), float32 multiples of 2**-24 strictly inside (0, 1): exact on every backend.
    ``offset`` (an integer tensor allowed) moves the stream on, e.g. by a loop's step."""
    count = math.prod(shape)
    top = ops.cast(_shift_right(bit_rows(seeds, count, salt, offset), 8), "float32")
    return ops.reshape((top + 0.5) * (2.0 ** -24), (-1, *shape))


def normal_rows(seeds, shape, salt: int):
    """N(0, 1) draws (n, *shape) from each row's seed (Box-Muller on two uniform streams)."""
    radius = ops.sqrt(-2.0 * ops.log(uniform_rows(seeds, shape, salt)))
    angle = (2.0 * math.pi) * uniform_rows(seeds, shape, salt ^ 0x5BD1E995)
    return radius * ops.cos(angle)


def step_rows(step, n):
    """Seeds (n, 4 words) for row r of training step ``step``: fresh draws every step, the same on every backend
    (a TensorFlow strategy's replicas take successive blocks of rows, as one global batch would)."""
    step = ops.cast(step, "int32")
    rows = ops.arange(n, dtype="int32") + ops.cast(replica_index(), "int32") * ops.cast(n, "int32")
    words = [ops.bitwise_and(rows, 0xFFFF), _shift_right(rows, 16),
             ops.bitwise_and(step, 0xFFFF) + 0 * rows, _shift_right(step, 16) + 0 * rows]
    return ops.stack(words, axis=1)


def coin_rows(seeds, salt: int):
    """A fair +-1 per row (float32), from one bit of the row's hash: exact on every backend."""
    bit = ops.bitwise_and(bit_rows(seeds, 1, salt)[:, 0], 1)
    return ops.cast(2 * bit - 1, "float32")


# ---------------------------------------------------------------------- training

def replicas_in_sync() -> int:
    """Replicas of the current TensorFlow strategy: their gradients are summed, so a model's own step divides
    each replica's loss by their number. 1 elsewhere: JAX's data parallelism averages the global batch."""
    if backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_replica_context().num_replicas_in_sync


def replica_index():
    """This replica's index under a TensorFlow strategy (0 elsewhere)."""
    if backend() != "tensorflow":
        return 0
    import tensorflow as tf

    return tf.distribute.get_replica_context().replica_id_in_sync_group


class OwnLossTraining:
    """A mixin for models trained on a loss of their own: ``training_loss(data) -> (loss, logs)`` in keras.ops.

    ``train_step`` differentiates it with respect to the trainable variables and applies ``self.optimizer``:
    on TensorFlow through a gradient tape (the loss divided among a strategy's replicas), on JAX through a
    stateless ``jax.value_and_grad`` (variables the loss assigns, persistent chains and seed generators, are
    carried to the next step), on torch through autograd."""

    def training_loss(self, data):
        raise NotImplementedError

    def evaluation_loss(self, data):
        """What ``evaluate`` measures: the training loss unless the family says otherwise."""
        return self.training_loss(data)[0]

    def train_step(self, *args):
        if backend() == "jax":
            return _jax_train_step(self, *args)
        if backend() == "tensorflow":
            return _tensorflow_train_step(self, args[0])
        return _torch_train_step(self, args[0])

    def test_step(self, *args):
        """The epoch mean of ``evaluation_loss`` (Keras' JAX trainer passes the variables' values first)."""
        if backend() != "jax":
            return tracked_loss(self, self.evaluation_loss(args[0]))
        (trainable, non_trainable, metric_values), data = args
        mapping = (list(zip(self.trainable_variables, trainable))
                   + list(zip(self.non_trainable_variables, non_trainable)))
        with keras.StatelessScope(state_mapping=mapping):
            loss = self.evaluation_loss(data)
        logs, metric_values = _stateless_tracked_loss(self, loss, metric_values)
        return logs, (trainable, non_trainable, metric_values)


class EpochMeanLossTraining(OwnLossTraining):
    """:class:`OwnLossTraining` whose ``fit`` reports the epoch mean of the loss (Keras' loss tracker) rather
    than the last batch's logs, on every backend (under JAX the tracker's values travel in the trainer's state,
    so it is updated statelessly: a step that left it alone would make ``fit`` report 0)."""

    def train_step(self, *args):
        if backend() != "jax":
            return tracked_loss(self, super().train_step(*args)["loss"])
        logs, (trainable, non_trainable, optimizer_values, metric_values) = super().train_step(*args)
        logs, metric_values = _stateless_tracked_loss(self, logs["loss"], metric_values)
        return logs, (trainable, non_trainable, optimizer_values, metric_values)


def tracked_loss(model, loss) -> dict:
    """The epoch mean of ``loss`` in the Keras loss tracker (what ``fit`` reports for a step that returns only
    "loss")."""
    model._loss_tracker.update_state(loss)
    return {"loss": model._loss_tracker.result()}


def _stateless_tracked_loss(model, loss, metric_values) -> tuple:
    """:func:`tracked_loss` on the metrics' values that Keras' JAX trainer carries: (logs, new values)."""
    with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metric_values))) as scope:
        logs = tracked_loss(model, loss)
    updated = [scope.get_current_value(v) for v in model.metrics_variables]
    return logs, [old if new is None else new for old, new in zip(metric_values, updated)]


def _tensorflow_train_step(model, data):
    import tensorflow as tf

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss, logs = model.training_loss(data)
        scaled = loss / replicas_in_sync()
    model.optimizer.apply(tape.gradient(scaled, variables), variables)
    return logs


def _torch_train_step(model, data):
    model.zero_grad()
    loss, logs = model.training_loss(data)
    loss.backward()
    variables = model.trainable_variables
    model.optimizer.apply([v.value.grad for v in variables], variables)
    return logs


def _jax_train_step(model, state, data):
    """Keras' JAX trainer passes the variables' values as ``state`` and expects the new values back."""
    import jax

    trainable, non_trainable, optimizer_values, metric_values = state

    def loss_function(trainable_values, non_trainable_values):
        mapping = (list(zip(model.trainable_variables, trainable_values))
                   + list(zip(model.non_trainable_variables, non_trainable_values))
                   + list(zip(model.optimizer.variables, optimizer_values)))  # read: the step count
        with keras.StatelessScope(state_mapping=mapping) as scope:
            loss, logs = model.training_loss(data)
        updated = [scope.get_current_value(v) for v in model.non_trainable_variables]
        return loss, (logs, [old if new is None else new for old, new in zip(non_trainable_values, updated)])

    (_, (logs, non_trainable)), gradients = jax.value_and_grad(loss_function, has_aux=True)(trainable,
                                                                                             non_trainable)
    trainable, optimizer_values = model.optimizer.stateless_apply(optimizer_values, gradients, trainable)
    return logs, (trainable, non_trainable, optimizer_values, metric_values)
