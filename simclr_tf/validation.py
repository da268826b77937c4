"""Argument checks shared by the whole package.

Every public function and layer checks its arguments up front and raises
`ValueError("`name` must be ... Received: name=value")`, so a user sees the
argument, the value and what would be accepted. The checks live here so that
"an integer that is not a bool" means the same thing everywhere.

Example:

>>> check_int("batch_size", 32, minimum=1)
32
>>> check_int("batch_size", True, minimum=1)
Traceback (most recent call last):
...
ValueError: `batch_size` must be an integer >= 1. Received: batch_size=True
"""

import math
import numbers

import numpy as np


def is_int(value):
    """True for Python and NumPy integers; False for bools (an int subclass)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """True for Python and NumPy ints and floats; False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    """Returns `value` as an `int` after checking it is an integer in range.

    Args:
        name: the argument's name, as the error message shows it.
        value: what was received.
        minimum, maximum: inclusive bounds, or None for none.
        allow_none: whether None is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        wanted = "an integer" + (" " + " and ".join(bounds) if bounds else "")
        if allow_none:
            wanted = "None or " + wanted
        raise ValueError(f"`{name}` must be {wanted}. Received: {name}={value!r}")
    return int(value)


def check_number(name, value, minimum=None, strict=False, maximum=None, allow_none=False):
    """Returns `value` as a `float` after checking it is a finite number in range.

    Args:
        name: the argument's name, as the error message shows it.
        value: what was received.
        minimum: lower bound, or None for none.
        strict: whether the lower bound is exclusive (`> minimum`).
        maximum: inclusive upper bound, or None for none.
        allow_none: whether None is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    ok = is_real(value) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if strict else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        wanted = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        if allow_none:
            wanted = "None or " + wanted
        raise ValueError(f"`{name}` must be {wanted}. Received: {name}={value!r}")
    return float(value)


def check_fraction(name, value):
    """Returns `value` as a `float` after checking it lies in (0, 1]."""
    if not (is_real(value) and math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"`{name}` must be a number in (0, 1]. Received: {name}={value!r}")
    return float(value)


def check_features(name, features):
    """Returns `features` as a float32 (N, D) array: numeric, non-empty, finite."""
    features = np.asarray(features)
    if features.ndim != 2 or features.dtype.kind not in "iuf":
        raise ValueError(
            f"`{name}` must be a numeric array of shape (N, D). "
            f"Received: {name} with shape {features.shape} and dtype {features.dtype}"
        )
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return features.astype(np.float32)


def check_labels(name, labels, num_rows=None, per="row"):
    """Returns `labels` as a 1-D int64 array of class ids >= 0.

    Accepts (N, 1) columns, as `keras.datasets` gives them. With `num_rows`,
    also checks there is one label per row of the matching images or features.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"`{name}` must be a 1-D integer array. "
            f"Received: {name} with shape {labels.shape} and dtype {labels.dtype}"
        )
    if labels.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={labels.shape}")
    if num_rows is not None and len(labels) != num_rows:
        raise ValueError(
            f"`{name}` must have one label per {per} ({num_rows}). Received: len({name})={len(labels)}"
        )
    if labels.min() < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: min({name})={labels.min()}")
    return labels.astype(np.int64)
