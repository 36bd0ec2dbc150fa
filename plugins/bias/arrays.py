"""What the bias statistics share: checked input arrays and the plain JSON values their results serialise to."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.store.fields import label_indices


# -- JSON values ---------------------------------------------------------------------------------------------------
def json_float(value: Any) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def float_or_nan(value: Any) -> float:
    """The inverse of ``json_float``: None becomes NaN."""
    return float("nan") if value is None else float(value)


def plain(value: Any) -> Any:
    """numpy scalars as Python scalars (slice values go into JSON and into FiftyOne filters)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- input arrays --------------------------------------------------------------------------------------------------
def class_list(classes: Sequence[str]) -> tuple[str, ...]:
    """The class names as a tuple of distinct strings (at least one)."""
    classes = tuple(str(c) for c in classes)
    if not classes:
        raise InputError("classes must name at least one class.")
    if len(set(classes)) != len(classes):
        raise InputError(f"classes must be distinct; got {list(classes)[:10]}.")
    return classes


def class_indices(name: str, values: object, classes: tuple[str, ...]) -> np.ndarray:
    """Class indices in [0, K) from integer indices or class names (``label_indices``); anything else is a
    DataError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array, one entry per sample; got shape {array.shape}.")
    k = len(classes)
    if array.size and array.dtype.kind in "iu":
        bad = (array < 0) | (array >= k)
        if bad.any():
            raise DataError(f"{name} holds class index {int(array[bad][0])}, outside [0, {k - 1}] for the "
                            f"{k} classes {list(classes)[:10]}.")
        return array.astype(np.int64)
    names = array.tolist()
    if any(value is None for value in names):
        raise DataError(f"{name} holds None: pass one class (index or name) per sample, leaving unlabeled ones out.")
    return label_indices(names, classes, name)


def correct_array(correct: object) -> np.ndarray:
    """Booleans, one per sample: whether the prediction equals the label."""
    array = np.asarray(correct)
    if array.ndim != 1:
        raise DataError(f"correct must be a 1-D array of booleans, one per sample; got shape {array.shape}.")
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf" and np.isin(array, (0, 1)).all():
        return array.astype(bool)
    raise DataError("correct must hold booleans (prediction == label) for every sample; got "
                    f"values such as {array.ravel()[:3].tolist()}.")
