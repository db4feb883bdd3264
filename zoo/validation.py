"""Input checks shared by every family: clear errors before any tensor math."""
from __future__ import annotations

import numpy as np


def _describe(array) -> str:
    return f"shape {tuple(np.shape(array))} and dtype {getattr(array, 'dtype', type(array).__name__)}"


def _matches(shape, feature_shape) -> bool:
    """Whether ``shape`` equals ``feature_shape``, where None in ``feature_shape`` matches any size."""
    return len(shape) == len(feature_shape) and all(d is None or d == s for s, d in zip(shape, feature_shape))


def check_array(value, name: str, feature_shape: tuple, allow_unbatched: bool = False) -> np.ndarray:
    """Return ``value`` as a float32 array of shape ``(batch, *feature_shape)``.

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
        raise ValueError(f"Input {name!r} has shape {array.shape}; expected {expected}.")
    array = array.astype("float32", copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"Input {name!r} contains {bad} NaN or infinite value(s); every entry must be finite."
        )
    return array


def check_inputs(value, specs: dict) -> dict:
    """Validate a dict (or a tuple/list in the order of ``specs``) of named inputs.

    ``specs`` maps each input name to its feature shape. A single array is
    accepted when the model has exactly one input.
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
    arrays = {n: check_array(v, n, specs[n]) for n, v in zip(names, items)}
    batch_sizes = {n: a.shape[0] for n, a in arrays.items()}
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"Inputs disagree on the batch size: {batch_sizes}.")
    return arrays


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
