"""Input checks shared by every family: clear errors before any tensor math."""
from __future__ import annotations

import numpy as np


def _describe(array) -> str:
    return f"shape {tuple(np.shape(array))} and dtype {getattr(array, 'dtype', type(array).__name__)}"


def first_rows(indices) -> str:
    """The first five of the ``indices`` of offending rows, for an error message: ``[0, 3, 7, 8, 9]...``."""
    indices = np.asarray(indices)
    return f"{indices[:5].tolist()}{'...' if indices.size > 5 else ''}"


def _matches(shape, feature_shape) -> bool:
    """Whether ``shape`` equals ``feature_shape``, where None in ``feature_shape`` matches any size."""
    return len(shape) == len(feature_shape) and all(d is None or d == s for s, d in zip(shape, feature_shape))


def check_array(value, name: str, feature_shape: tuple, allow_unbatched: bool = False,
                dtype: str = "float32") -> np.ndarray:
    """Return ``value`` as a ``dtype`` (float32 unless an input declares integers) array of shape ``(batch, *feature_shape)``.

    Args:
        value: array-like from the user.
        name: the input's public name, used in error messages.
        feature_shape: expected shape without the batch axis; None matches any size.
        allow_unbatched: accept a single example of shape ``feature_shape``
            and add the batch axis.

    Raises:
        TypeError: non-numeric data (strings, objects, complex numbers).
        ValueError: wrong rank or feature shape, NaN or infinite entries.
    """
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(
            f"Input {name!r} must be real numbers; received {_describe(array)}. "
            f"Expected a float array of shape (batch, {', '.join(map(str, feature_shape))})."
        )
    if np.iscomplexobj(array):
        raise TypeError(f"Input {name!r} must be real; received complex {_describe(array)}.")
    expected = "(batch" + "".join(f", {'any' if d is None else d}" for d in feature_shape) + ")"
    if allow_unbatched and _matches(array.shape, feature_shape):
        array = array[None]
    if array.ndim != len(feature_shape) + 1 or not _matches(array.shape[1:], feature_shape):
        hint = ""
        if array.ndim == len(feature_shape) + 2 and 1 in (array.shape[1], array.shape[-1]):
            hint = " Drop the channel axis of size 1 (x[..., 0] or x[:, 0]): the model adds its own."
        raise ValueError(f"Input {name!r} has shape {array.shape}; expected {expected}.{hint}")
    if np.issubdtype(np.dtype(dtype), np.integer):
        return _as_integers(array, name, dtype)
    array = array.astype("float32", copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"Input {name!r} contains {bad} NaN or infinite value(s); every entry must be finite."
        )
    return array


def _as_integers(array: np.ndarray, name: str, dtype: str) -> np.ndarray:
    """An integer input (seeds, indices): whole numbers only, never silently rounded."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return array.astype(dtype, copy=False)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**63)  # int64's range
    if not np.all(whole):
        raise ValueError(f"Input {name!r} must hold whole numbers ({dtype}); received e.g. "
                         f"{array[~whole].ravel()[:3].tolist()}.")
    return array.astype(dtype)


def check_inputs(value, specs: dict, dtypes: dict | None = None) -> dict:
    """Validate a dict (or a tuple/list in the order of ``specs``) of named inputs.

    ``specs`` maps each input name to its feature shape, ``dtypes`` (optional) to its
    dtype (float32 by default). A single array is accepted when the model has exactly one input.
    """
    names = list(specs)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        missing = [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(
                f"Inputs received keys {sorted(value)}; expected exactly {names}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {unknown})" if unknown else "")
                + "."
            )
        items = [value[n] for n in names]
    elif isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(f"Received {len(value)} inputs; expected {len(names)}: {names}.")
        items = list(value)
    elif len(names) == 1:
        items = [value]
    else:
        raise ValueError(
            f"This model takes {len(names)} inputs {names}; pass a dict with those keys, "
            f"received a single {type(value).__name__}."
        )
    dtypes = dtypes or {}
    arrays = {n: check_array(v, n, specs[n], dtype=dtypes.get(n, "float32")) for n, v in zip(names, items)}
    batch_sizes = {n: a.shape[0] for n, a in arrays.items()}
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"Inputs disagree on the batch size: {batch_sizes}.")
    rows = next(iter(batch_sizes.values()))
    if rows == 0:
        raise ValueError(empty_batch_message({n: a.shape for n, a in arrays.items()}))
    return arrays


def empty_batch_message(shapes: dict) -> str:
    """The one answer to a request of zero rows, in Python and from the server alike."""
    shown = ", ".join(f"{n!r} of shape {tuple(s)}" for n, s in shapes.items())
    return f"The batch is empty: received {shown}; expected at least one row."


def _where(name: str, component) -> str:
    return f"{name!r}" if component is None else f"{name!r}[..., {component}]"


def _selected(array: np.ndarray, component) -> np.ndarray:
    return array if component is None else array[..., component]


def range_violations(arrays: dict, specs, which: str) -> list:
    """One line per declared ``which`` range (``valid`` or ``trained``) that some rows of ``arrays`` leave:
    which input, which rows, what they hold and the range."""
    lines = []
    for spec in specs:
        for component, (low, high) in spec.ranges(which).items():
            values = _selected(arrays[spec.name], component)
            outside = (values < low) | (values > high)
            rows = np.flatnonzero(outside.reshape(len(values), -1).any(axis=1))
            if rows.size:
                shown = f"[{', '.join(f'{v:.7g}' for v in values[outside][:3])}]"
                lines.append(f"{_where(spec.name, component)} of rows {first_rows(rows)} holds {shown}; "
                             f"the {which} range is [{low:g}, {high:g}]")
    return lines


def check_ranges(arrays: dict, specs) -> list:
    """Refuse values outside an input's ``valid_range`` (ValueError); return warnings for values outside its
    ``trained_range``, where the network extrapolates."""
    invalid = range_violations(arrays, specs, "valid")
    if invalid:
        raise ValueError("; ".join(invalid) + ".")
    return [line + ": the answer there is an extrapolation" for line in range_violations(arrays, specs, "trained")]


def graph_range_checks(tensors: dict, specs) -> None:
    """``valid_range`` of each input asserted inside an exported graph, with the same wording as Python's."""
    import tensorflow as tf

    for spec in specs:
        for component, (low, high) in spec.ranges("valid").items():
            values = tensors[spec.name]
            values = values if component is None else values[..., component]
            outside = (values < low) | (values > high)
            tf.debugging.Assert(~tf.reduce_any(outside), [
                f"{_where(spec.name, component)} must lie in the valid range [{low:g}, {high:g}]; received",
                tf.boolean_mask(values, outside)[:3]])


def check_spins(value, name: str = "spins") -> np.ndarray:
    """Square spin lattices (batch, L, L) as float32 +-1; 0/1 occupations are converted with s = 2 n - 1.

    Any other value, a non-square lattice or a wrong rank is an error naming what was received.
    """
    array = check_array(value, name, (None, None))
    if array.shape[1] != array.shape[2]:
        raise ValueError(f"Input {name!r} must hold square L x L lattices; received shape {array.shape}.")
    values = np.unique(array)
    if np.all(np.isin(values, (-1.0, 1.0))):
        return array
    if np.all(np.isin(values, (0.0, 1.0))):
        return 2.0 * array - 1.0
    raise ValueError(
        f"Input {name!r} must hold spins +-1 (or 0/1, converted to -1/+1); received values "
        f"{values[:6].tolist()}{' ...' if values.size > 6 else ''}."
    )


class InputCheck:
    """A value check of an endpoint's inputs, stated once and run in two places.

    ``numpy`` runs in ``predict`` and the other numpy entry points, before any
    tensor math, and raises ``ValueError`` naming what was received and what was
    expected; ``graph`` runs inside exported signatures and fails the request with
    INVALID_ARGUMENT carrying the same message. Both may convert the inputs (0/1
    spins to +-1) and return the named inputs they pass on. A test feeds both the
    same accepted and refused inputs.
    """

    def numpy(self, arrays: dict) -> dict:
        return arrays

    def graph(self, tensors: dict) -> dict:
        return tensors


class SeedCheck(InputCheck):
    """Per-row seeds of a seeded endpoint (``sample``, ``generate``): integers >= 0 (whole numbers are checked
    before, by the input's int64 dtype)."""

    def __init__(self, name: str = "seed"):
        self.name = name

    def numpy(self, arrays: dict) -> dict:
        negative = np.flatnonzero(arrays[self.name] < 0)
        if negative.size:
            raise ValueError(f"Input {self.name!r} must hold integers >= 0; rows {first_rows(negative)} are negative.")
        return arrays

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf

        seeds = tensors[self.name]
        tf.debugging.Assert(tf.reduce_all(seeds >= 0), [f"{self.name} must be >= 0; received",
                                                       tf.boolean_mask(seeds, seeds < 0)[:5]])
        return tensors


class SpinCheck(InputCheck):
    """Square lattices of spins +-1 with L >= ``min_size``; 0/1 occupations are converted with s = 2 n - 1."""

    def __init__(self, name: str = "spins", min_size: int = 1):
        self.name, self.min_size = name, int(min_size)

    def numpy(self, arrays: dict) -> dict:
        spins = check_spins(arrays[self.name], self.name)
        if spins.shape[1] < self.min_size:
            raise ValueError(
                f"Input {self.name!r} has L = {spins.shape[1]}; expected L >= {self.min_size} "
                "(smaller than the convolution kernel)."
            )
        return {**arrays, self.name: spins}

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf

        spins = tensors[self.name]
        shape = tf.shape(spins)
        tf.debugging.assert_equal(shape[1], shape[2], message=f"{self.name} must be square L x L lattices")
        tf.debugging.assert_greater_equal(shape[1], self.min_size, message=f"{self.name} need L >= {self.min_size}")
        zero_one = tf.reduce_all((spins == 0.0) | (spins == 1.0))
        plus_minus = tf.reduce_all(tf.abs(spins) == 1.0)
        tf.debugging.Assert(zero_one | plus_minus, [f"{self.name} must be +-1 (or 0/1, converted to -1/+1)"])
        return {**tensors, self.name: tf.where(zero_one & ~plus_minus, 2.0 * spins - 1.0, spins)}


class AwayFromOriginCheck(InputCheck):
    """Points whose first two coordinates (x, y) are not both zero, where a 1/r potential is singular."""

    def __init__(self, names):
        self.names = tuple(names)

    def numpy(self, arrays: dict) -> dict:
        for name in self.names:
            at_origin = np.flatnonzero((arrays[name][:, 0] == 0) & (arrays[name][:, 1] == 0))
            if at_origin.size:
                raise ValueError(
                    f"Input {name!r} has {at_origin.size} point(s) at r = 0 (rows {first_rows(at_origin)}), "
                    "where the 1/r potential is singular; "
                    "every point needs (x, y) != (0, 0)."
                )
        return arrays

    def graph(self, tensors: dict) -> dict:
        import tensorflow as tf

        for name in self.names:
            x = tensors[name]
            away = tf.reduce_all((x[:, 0] != 0.0) | (x[:, 1] != 0.0))
            tf.debugging.Assert(away, [f"{name} has point(s) at r = 0, where the 1/r potential is singular"])
        return tensors
