"""What every zoo model shares: the family contract in code, checked entry points, dense stacks.

A family's model classes subclass :class:`ZooModel` and declare

- ``endpoints()``: the public entry points (``serving_default`` first), each a
  :class:`zoo.spec.Endpoint` with named inputs, outputs and an input check;
- ``training_spec``: a loss for ``compile``/``fit``, or None for its own ``train_step``;
- ``fine_tuning`` and ``layer_groups()``: what fine-tuning may freeze or re-initialise;
- ``optimizers_to_checkpoint()``: every optimizer whose state a checkpoint keeps.

``predict`` and :meth:`ZooModel.run_endpoint` check numpy inputs with the
endpoint's declared check, then call one compiled function per endpoint, cached,
so a loop of small calls costs about what the exported SavedModel costs.
"""
from __future__ import annotations

import warnings

import keras
import numpy as np

from zoo.models.backend import compile_endpoint, compile_screened_endpoint
from zoo.spec import Endpoint, FineTuning, TensorSpec, TrainingSpec
from zoo.validation import check_inputs, check_ranges

PREDICT_CHUNK = 256  # rows per compiled call when no batch_size is given (Keras used 32)


class ZooModel(keras.Model):
    """Base class of the zoo's Keras models (the family contract).

    Subclasses define :meth:`endpoints`; the class attributes below give the
    defaults of a supervised model trained with mean squared error.
    """

    training_spec: TrainingSpec = TrainingSpec(loss="mse")
    fine_tuning: FineTuning = FineTuning()

    # ------------------------------------------------------------------ endpoints

    def endpoints(self) -> tuple:
        """The model's public entry points, ``serving_default`` first."""
        raise NotImplementedError(f"{type(self).__name__} declares no endpoints().")

    def endpoint(self, name: str = "serving_default") -> Endpoint:
        cache = self._endpoint_cache()
        if cache["declared"] is None:  # a function of the constructor arguments: declared once per model
            cache["declared"] = {e.name: e for e in self.endpoints()}
        if name not in cache["declared"]:
            raise KeyError(f"{type(self).__name__} has no endpoint {name!r}; it has {sorted(cache['declared'])}.")
        return cache["declared"][name]

    def _endpoint_cache(self) -> dict:
        """Declared endpoints and their compiled functions, kept outside Keras' attribute tracking."""
        cache = self.__dict__.get("_zoo_endpoint_cache")
        if cache is None:
            cache = {"declared": None, "compiled": {}}
            object.__setattr__(self, "_zoo_endpoint_cache", cache)
        return cache

    @property
    def input_specs(self) -> dict:
        """Input name -> feature shape (batch axis left out) of ``serving_default``."""
        return dict(self.endpoint().input_shapes)  # a copy: the endpoint keeps its own

    def build_with_examples(self, batch_size: int = 2):
        """Create every weight by one call on example inputs (a one-input model gets the bare array)."""
        inputs = self.example_inputs(batch_size)
        self(inputs if len(inputs) > 1 else next(iter(inputs.values())))
        return self

    def example_inputs(self, batch_size: int = 2) -> dict:
        """Valid inputs of ``serving_default``: build the model or trace a signature."""
        return self.random_inputs(batch_size)

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        """Valid random inputs of an endpoint (uniform in [0, 1), inside every family's training range of
        probabilities, positions and angles, unless the family overrides it)."""
        rng = np.random.default_rng(seed)
        return {t.name: rng.uniform(0, 1, (batch_size, *_concrete(t.feature_shape))).astype(t.dtype)
                for t in self.endpoint(endpoint).inputs}

    def validate_inputs(self, inputs, endpoint: str = "serving_default"):
        """Checked numpy inputs of an endpoint: one array for one input, else a dict."""
        arrays = self.checked_inputs(inputs, endpoint)
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays

    def checked_inputs(self, inputs, endpoint: str = "serving_default", values: bool = True) -> dict:
        """Named numpy inputs after the shape, dtype and finiteness checks and the endpoint's own check; with
        ``values`` False, the names, shapes and dtypes only (the compiled call screens the values)."""
        declared = self.endpoint(endpoint)
        arrays = check_inputs(inputs, declared.input_shapes, declared.input_dtypes, finite=values)
        if not values:
            return arrays
        extrapolations = check_ranges(arrays, declared.inputs)
        arrays = declared.check.numpy(arrays) if declared.check is not None else arrays
        for line in extrapolations:  # warned once every check has passed: a refused input only gets its error
            warnings.warn(line + ".", stacklevel=4)
        return arrays

    def run_endpoint(self, name: str, inputs, batch_size: int | None = None) -> dict:
        """Named numpy outputs of endpoint ``name`` on checked numpy inputs, in chunks of ``batch_size`` rows.

        Under JAX the value checks run inside the compiled call (:func:`zoo.models.backend.compile_screened_endpoint`);
        an input they flag goes through the numpy checks, so errors and warnings are the same everywhere."""
        screened = self._compiled(name, screened=True)
        if screened is not None:
            outputs = _in_chunks(screened, self.checked_inputs(inputs, name, values=False),
                                 self.endpoint(name).input_names, batch_size)
            if outputs is not None:
                return outputs
        return _in_chunks(self._compiled(name), self.checked_inputs(inputs, name), self.endpoint(name).input_names,
                          batch_size)

    def _compiled(self, name: str, screened: bool = False):
        compiled = self._endpoint_cache()["compiled"]
        key = (name, screened)
        if key not in compiled:
            compiled[key] = compile_screened_endpoint(self, name) if screened else compile_endpoint(self, name)
        return compiled[key]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The ``serving_default`` output of checked numpy inputs; datasets and callbacks go through Keras."""
        if _is_dataset(x) or callbacks or steps:
            return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        outputs = self.run_endpoint("serving_default", x, batch_size)
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    # ------------------------------------------------------------------ what it is

    def __repr__(self) -> str:
        info = self.__dict__.get("preset")
        names = ", ".join(e.name for e in self.endpoints())
        what = f" {info.name!r} ({info.family})" if info else ""
        weights = f"; weights sha256 {info.weights_sha256[:12]}..." if info and info.weights_sha256 else (
            "; fresh weights" if info else "")
        size = f"; {self.count_params():,} parameters" if self.built else ""
        return f"<{type(self).__name__}{what}: endpoints {names}{size}{weights}>"

    def serving_layers(self):
        """The layers whose weights an export carries: the whole model, unless a family needs less (a GAN's
        generator)."""
        return self

    # ------------------------------------------------------------------ training and fine-tuning

    def layer_groups(self) -> dict:
        """Group name -> layers that fine-tuning can freeze or re-initialise (``fine_tuning.groups``)."""
        return {}

    def optimizers_to_checkpoint(self) -> dict:
        """Name -> (optimizer, the variables it trains) for every optimizer whose state a checkpoint keeps.

        A model with several optimizers (a GAN's generator and discriminator) returns each;
        the checkpoint saves and restores them all with the weights (and any non-trainable
        state such as persistent chains, which the weights file holds)."""
        return {"optimizer": (self.optimizer, self.trainable_variables)}

    def fine_tuning_error(self, inputs: dict, target) -> float:
        """The error ``zoo finetune`` reports before and after (``fine_tuning.error_name``): RMS by default."""
        predicted = self.predict(inputs if len(inputs) > 1 else next(iter(inputs.values())), batch_size=4096)
        return float(np.sqrt(np.mean((np.asarray(predicted) - target) ** 2)))

    # ------------------------------------------------------------------ helpers for subclasses

    def _unpack(self, inputs):
        """Return the ``serving_default`` inputs in declared order (dict, list or tensor)."""
        names = list(self.input_specs)
        if isinstance(inputs, dict):
            return [inputs[n] for n in names]
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]

    def call_endpoint(self, inputs: tuple, output: TensorSpec, description: str) -> Endpoint:
        """``serving_default``: the model's ``call`` on its declared ``inputs``, giving ``output``."""
        names = [t.name for t in inputs]

        def function(**tensors):
            feed = tensors if len(names) > 1 else tensors[names[0]]
            return {output.name: self(feed, training=False)}

        return Endpoint("serving_default", function, tuple(inputs), (output,), description=description)


class SpinLatticeInputs:
    """Mixin of the lattice families: endpoints whose input ``spins`` (batch, L, L) holds +-1.

    Subclasses give ``example_lattice_size``; random inputs are infinite-temperature spins.
    """

    @property
    def example_lattice_size(self) -> int:
        raise NotImplementedError

    def random_inputs(self, batch_size: int = 2, seed: int = 0, endpoint: str = "serving_default") -> dict:
        """Random spin configurations +-1 (infinite temperature)."""
        L = self.example_lattice_size
        up = np.random.default_rng(seed).random((batch_size, L, L)) < 0.5
        return {"spins": np.where(up, 1.0, -1.0).astype("float32")}


def _in_chunks(function, arrays: dict, order: list, batch_size: int | None):
    """``function``'s outputs as numpy over chunks of ``batch_size`` rows (``PREDICT_CHUNK`` by default), or None
    as soon as a chunk gives None (a screened call that flagged its input)."""
    n = len(arrays[order[0]])
    step = max(1, int(batch_size or PREDICT_CHUNK))
    chunks = []
    for start in range(0, n, step):
        chunk = function(*[arrays[k][start:start + step] if n > step else arrays[k] for k in order])
        if chunk is None:
            return None
        chunks.append(chunk)
    if len(chunks) == 1:
        return {k: np.asarray(v) for k, v in chunks[0].items()}
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks]) for k in chunks[0]}


def _concrete(shape) -> tuple:
    return tuple(8 if d is None else d for d in shape)


def _is_dataset(x) -> bool:
    return type(x).__name__ in {"DatasetV2", "_PrefetchDataset", "PyDataset"} or hasattr(x, "element_spec")


MAX_SEED = 2**63 - 1


def require_count(value, what: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer >= ``minimum`` (numpy integers included); otherwise a
    TypeError or ValueError naming ``what`` was asked for and what was received (2.5 is not 2 fields)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer >= {minimum}; received {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; received {value}.")
    return int(value)


def row_seeds(n: int, seed=None) -> np.ndarray:
    """The per-row seeds (int64 in [0, 2**63)) that a seeded endpoint takes for a request of ``n`` rows.

    A seeded endpoint (CaloGAN's ``generate``, a flow's ``sample``) draws each row, a shower or a field,
    from that row's own seed alone: a row's draw does not depend on the rows beside it or on the batch it
    is computed in. The exported signatures take these seeds as they are, one int64 per row, so the same
    seeds give the same draws in Python, over REST and over gRPC.

    ``seed`` is one of

    - None: fresh operating-system entropy, new draws on every call;
    - an integer s in [0, 2**63), expanded by numpy's ``SeedSequence`` into ``n`` seeds. This is what
      ``generate(energies, seed=s)`` and ``sample(n, seed=s)`` do with an integer, so a served request gets
      their draws by sending ``row_seeds(n, s)`` as its ``seed`` input. The first k seeds of
      ``row_seeds(n, s)`` are ``row_seeds(k, s)``: asking for more rows adds draws and keeps the earlier ones;
    - an integer array of shape (n,): per-row seeds as a request sends them, passed on as int64.

    Raises:
        TypeError: ``n`` is not an integer, or ``seed`` is neither None, an integer nor an integer array.
        ValueError: a negative ``n``, a seed outside [0, 2**63), or a seed array not of shape (n,).
    """
    n = require_count(n, "row_seeds' number of rows n", minimum=0)
    expected = f"None, an integer in [0, 2**63) or an integer array of shape ({n},), one seed per row"
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))):
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be {expected}; received {seed}.")
        state = np.random.SeedSequence(None if seed is None else int(seed)).generate_state(max(int(n), 1),
                                                                                           dtype=np.uint64)[:n]
        return (state & np.uint64(MAX_SEED)).astype(np.int64)
    try:
        seeds = np.asarray(seed)
    except (TypeError, ValueError):  # ragged nesting
        seeds = None
    if seeds is None or seeds.dtype == bool or not np.issubdtype(seeds.dtype, np.integer):
        received = (f"an array of shape {seeds.shape} and dtype {seeds.dtype}" if hasattr(seed, "dtype")
                    and seeds.ndim else f"{seed!r:.80} ({type(seed).__name__})")
        raise TypeError(f"seed must be {expected}; received {received}.")
    if seeds.shape != (n,):
        raise ValueError(f"seed must be {expected}; received an integer array of shape {seeds.shape}.")
    bad = np.flatnonzero((seeds < 0) | (seeds > MAX_SEED))
    if bad.size:
        raise ValueError(f"seed must be {expected}; rows {bad[:5].tolist()}{'...' if bad.size > 5 else ''} "
                         f"hold {seeds[bad[:5]].tolist()}.")
    return seeds.astype(np.int64)


def dense_stack(units, output_size: int, name: str, activation: str = "elu") -> list:
    """Fully connected layers: ``activation`` on the hidden ones, linear output."""
    layers = [keras.layers.Dense(u, activation=activation, name=f"{name}_hidden_{i}") for i, u in enumerate(units)]
    layers.append(keras.layers.Dense(output_size, name=f"{name}_out"))
    return layers


def apply_stack(layers, x):
    for layer in layers:
        x = layer(x)
    return x
