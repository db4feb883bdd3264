"""What every zoo model shares: named inputs, validated entry points, dense stacks."""
from __future__ import annotations

import keras
import numpy as np

from zoo.validation import check_inputs


class ZooModel(keras.Model):
    """Base class of the zoo's Keras models.

    Subclasses define ``input_specs`` (input name -> feature shape, batch axis
    left out). ``predict`` then checks user data (shape, dtype, finiteness)
    before any tensor math and raises errors that name the offending input.
    """

    @property
    def input_specs(self) -> dict:
        raise NotImplementedError

    def example_inputs(self, batch_size: int = 2) -> dict:
        """Zeros with the right shapes: build the model or trace a signature."""
        return {n: np.zeros((batch_size, *s), "float32") for n, s in self.input_specs.items()}

    def random_inputs(self, batch_size: int = 2, seed: int = 0) -> dict:
        """Valid random inputs (uniform in [-1, 1] unless the family needs otherwise): tests and benchmarks."""
        rng = np.random.default_rng(seed)
        return {n: rng.uniform(-1, 1, v.shape).astype("float32") for n, v in self.example_inputs(batch_size).items()}

    def validate_inputs(self, inputs):
        """Checked float32 numpy inputs: one array for one input, else a dict."""
        arrays = check_inputs(inputs, self.input_specs)
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        if not _is_dataset(x):
            x = self.validate_inputs(x)
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)

    def _unpack(self, inputs):
        """Return the inputs in the order of ``input_specs`` (dict, list or tensor)."""
        names = list(self.input_specs)
        if isinstance(inputs, dict):
            return [inputs[n] for n in names]
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]


class SpinLatticeInputs:
    """Mixin of the lattice families: one input ``spins`` (batch, L, L) of +-1.

    Subclasses give ``example_lattice_size`` and, if they need one,
    ``min_lattice_size``; serving exports repeat the spin check inside the
    graph for models with ``spin_inputs``.
    """

    spin_inputs = True
    min_lattice_size = 1

    @property
    def example_lattice_size(self) -> int:
        raise NotImplementedError

    def random_inputs(self, batch_size: int = 2, seed: int = 0) -> dict:
        """Random spin configurations +-1 (infinite temperature)."""
        L = self.example_lattice_size
        up = np.random.default_rng(seed).random((batch_size, L, L)) < 0.5
        return {"spins": np.where(up, 1.0, -1.0).astype("float32")}

    def example_inputs(self, batch_size: int = 2) -> dict:
        return self.random_inputs(batch_size)


def _is_dataset(x) -> bool:
    return type(x).__name__ in {"DatasetV2", "_PrefetchDataset", "PyDataset"} or hasattr(x, "element_spec")


def dense_stack(units, output_size: int, name: str, activation: str = "elu") -> list:
    """Fully connected layers: ``activation`` on the hidden ones, linear output."""
    layers = [keras.layers.Dense(u, activation=activation, name=f"{name}_hidden_{i}") for i, u in enumerate(units)]
    layers.append(keras.layers.Dense(output_size, name=f"{name}_out"))
    return layers


def apply_stack(layers, x):
    for layer in layers:
        x = layer(x)
    return x
