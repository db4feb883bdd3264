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
                dtype: str = "float32", finite: bool = True) -> np.ndarray:
    """Return ``value`` as a ``dtype`` (float32 unless an input declares integers) array of shape ``(batch, *feature_shape)``.

    Args:
        value: array-like from the user.
        name: the input's public name, used in error messages.
        feature_shape: expected shape without the batch axis; None matches any size.
        allow_unbatched: accept a single example of shape ``feature_shape``
            and add the batch axis.
        finite: refuse NaN and infinite entries (False: a compiled call screens them).

    Raises:
        TypeError: non-numeric data (strings, objects, complex numbers).
        ValueError: wrong rank or feature shape, NaN or infinite entries.
    """
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind not in _REAL_KINDS:
        if kind == "c":
            raise TypeError(f"Input {name!r} must be real; received complex {_describe(array)}.")
        raise TypeError(
            f"Input {name!r} must be real numbers; received {_describe(array)}. "
            f"Expected a float array of shape (batch, {', '.join(map(str, feature_shape))})."
        )
    if allow_unbatched and _matches(array.shape, feature_shape):
        array = array[None]
    if array.ndim != len(feature_shape) + 1 or not _matches(array.shape[1:], feature_shape):
        raise ValueError(_shape_message(name, array.shape, feature_shape))
    if dtype != "float32" and np.dtype(dtype).kind in "iu":
        return _as_integers(array, name, dtype)
    array = array.astype("float32", copy=False)
    if finite and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"Input {name!r} contains {bad} NaN or infinite value(s); every entry must be finite."
        )
    return array


_REAL_KINDS = frozenset("biuf")  # numpy dtype kinds of real numbers: bool, signed, unsigned, float


def _shape_message(name: str, shape: tuple, feature_shape: tuple) -> str:
    expected = "(batch" + "".join(f", {'any' if d is None else d}" for d in feature_shape) + ")"
    hint = ""
    if len(shape) == len(feature_shape) + 2 and 1 in (shape[1], shape[-1]):
        hint = " Drop the channel axis of size 1 (x[..., 0] or x[:, 0]): the model adds its own."
    return f"Input {name!r} has shape {shape}; expected {expected}.{hint}"


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


def check_inputs(value, specs: dict, dtypes: dict | None = None, finite: bool = True) -> dict:
    """Validate a dict (or a tuple/list in the order of ``specs``) of named inputs.

    ``specs`` maps each input name to its feature shape, ``dtypes`` (optional) to its
    dtype (float32 by default). A single array is accepted when the model has exactly one input.
    ``finite`` False leaves NaN and infinities to a compiled call's screen.
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
    arrays = {n: check_array(v, n, specs[n], dtype=dtypes.get(n, "float32"), finite=finite)
              for n, v in zip(names, items)}
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
    return _spin_lattices(check_array(value, name, (None, None)), name)


def _spin_lattices(array: np.ndarray, name: str) -> np.ndarray:
    """``check_spins`` of an array that ``check_array`` has already passed (float32, rank 3)."""
    if array.shape[1] != array.shape[2]:
        raise ValueError(f"Input {name!r} must hold square L x L lattices; received shape {array.shape}.")
    if np.all(np.abs(array) == 1.0):
        return array
    if np.all((array == 0.0) | (array == 1.0)):
        return 2.0 * array - 1.0
    values = np.unique(array)
    raise ValueError(
        f"Input {name!r} must hold spins +-1 (or 0/1, converted to -1/+1); received values "
        f"{values[:6].tolist()}{' ...' if values.size > 6 else ''}."
    )


class InputCheck:
    """A value check of an endpoint's inputs, stated once and run in two places.

    ``numpy`` runs in ``predict`` and the other numpy entry points, before any
    tensor math, on the arrays that :func:`check_inputs` has passed (shapes and dtypes
    right), and raises ``ValueError`` naming what was received and what was
    expected; ``graph`` runs inside exported signatures and fails the request with
    INVALID_ARGUMENT carrying the same message. Both may convert the inputs (0/1
    spins to +-1) and return the named inputs they pass on. A test feeds both the
    same accepted and refused inputs.

    A check may also ``screen``: the same conditions in ``keras.ops`` inside a jitted call, returning the
    converted inputs and one boolean, "all passed", without a message (see :func:`screened_inputs`).
    """

    def numpy(self, arrays: dict) -> dict:
        return arrays

    def graph(self, tensors: dict) -> dict:
        return tensors

    def screen(self, tensors: dict):
        """(converted tensors, a scalar bool: every condition of ``numpy`` holds), in ``keras.ops`` with the
        shapes static (a jitted call). A check that does not override this cannot screen."""
        raise NotImplementedError


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
        spins = _spin_lattices(arrays[self.name], self.name)  # checked_inputs has run check_array
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

    def screen(self, tensors: dict):
        from keras import ops

        spins = tensors[self.name]
        if spins.shape[1] != spins.shape[2] or spins.shape[1] < self.min_size:
            return tensors, False
        plus_minus = ops.all(ops.abs(spins) == 1.0)
        zero_one = ops.all(ops.logical_or(spins == 0.0, spins == 1.0))
        converted = ops.where(ops.logical_and(zero_one, ops.logical_not(plus_minus)), 2.0 * spins - 1.0, spins)
        return {**tensors, self.name: converted}, ops.logical_or(plus_minus, zero_one)


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

    def screen(self, tensors: dict):
        from keras import ops

        away = [ops.all(ops.logical_or(tensors[n][:, 0] != 0.0, tensors[n][:, 1] != 0.0)) for n in self.names]
        return tensors, all_of(away)


def can_screen(declared) -> bool:
    """Whether :func:`screened_inputs` can check endpoint ``declared`` inside its compiled call: float inputs
    (seeds travel as words), a deterministic endpoint (a flagged call is run again, which must not move a
    sampler's state twice) and a check that screens."""
    check = declared.check
    return (not declared.stochastic and all(t.dtype == "float32" for t in declared.inputs)
            and (check is None or type(check).screen is not InputCheck.screen))


def screened_inputs(declared, tensors: dict):
    """(the tensors the endpoint's function takes, a scalar bool: nothing for ``predict``'s numpy checks to
    refuse or warn about), in ``keras.ops`` for endpoint ``declared``: finiteness, the valid and trained ranges
    and the endpoint's own check. A compiled call returns the flag with its outputs; when it is false,
    ``predict`` runs the numpy checks, which raise or warn with their messages, and calls again. So the
    messages are the numpy checks' own, and an accepted input costs no numpy pass over the data."""
    from keras import ops

    passed = []
    for spec in declared.inputs:
        values = tensors[spec.name]
        passed.append(ops.all(ops.isfinite(values)))
        for which in ("valid", "trained"):
            for component, (low, high) in spec.ranges(which).items():
                selected = _selected(values, component)
                passed.append(ops.all(ops.logical_and(selected >= low, selected <= high)))
    if declared.check is not None:
        tensors, check_passed = declared.check.screen(tensors)
        passed.append(check_passed)
    return tensors, all_of(passed)


def all_of(flags):
    """The logical and of scalar booleans, Python or tensor (True for none)."""
    from keras import ops

    result = True
    for flag in flags:
        if flag is False:
            return False
        result = flag if result is True else ops.logical_and(result, flag)
    return result
