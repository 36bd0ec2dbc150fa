"""Validators of parameters and arrays shared by the checks, bias and drift: one message per kind of mistake.

Each ``check_*`` returns the value in its plain Python (or numpy) type, or raises: ``InputError`` for a bad
parameter (the message names the setting), ``DataError`` for arrays that cannot be used.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from active_learning.errors import DataError, InputError

PROBABILITY_TOLERANCE = 1e-3  # how far a row of probabilities may sum from 1


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """An integer of at least ``minimum`` (booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """A number strictly between 0 and 1 (a level, a quantile, a confidence)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < 1:
        raise InputError(f"{name} must be a number strictly between 0 and 1; got {value!r}.")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """True or False (numpy booleans too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return str(value)


def finite_matrix(name: str, array: object, min_rows: int = 1) -> np.ndarray:
    """A finite 2-D float64 array with at least ``min_rows`` rows and one column."""
    try:
        matrix = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be a numeric 2-D array (samples x features); {error}.") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise DataError(f"{name} must be a 2-D array (samples x features); got shape {matrix.shape}.")
    if matrix.shape[0] < min_rows:
        raise DataError(f"{name} has {matrix.shape[0]} samples; at least {min_rows} are needed. Select more samples.")
    if not np.isfinite(matrix).all():
        bad = int((~np.isfinite(matrix)).any(axis=1).sum())
        raise DataError(f"{name} has {bad} rows with NaN or infinite values; recompute them or drop those rows.")
    return matrix


def check_probabilities(name: str, probs: np.ndarray, tolerance: float = PROBABILITY_TOLERANCE) -> np.ndarray:
    """Rows of softmax probabilities, one column per class (at least 2), each row summing to 1."""
    if probs.shape[1] < 2:
        raise DataError(f"{name} must have one column per class (at least 2); got {probs.shape[1]}.")
    if probs.min() < -tolerance or probs.max() > 1 + tolerance:
        raise DataError(f"{name} holds values outside [0, 1]; these look like logits: apply a softmax first.")
    row_sums = probs.sum(axis=1)
    off = int((np.abs(row_sums - 1) > tolerance).sum())
    if off:
        raise DataError(f"{off} rows of {name} do not sum to 1 (e.g. {row_sums[np.abs(row_sums - 1).argmax()]:.4g}); "
                        "pass softmax probabilities, normalised per row.")
    return probs
