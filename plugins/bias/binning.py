"""Quantile bins of a numeric field with exact, readable labels (``brightness in [0.12, 0.31)``); pure arrays."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from active_learning.errors import DataError
from curation_checks.bias.arrays import plain
from curation_checks.bias.settings import DEFAULT_BINS
from curation_checks.validation import check_int

KIND_BIN, KIND_VALUE = "bin", "value"


@dataclass(frozen=True)
class Bin:
    """One bin of ``bin_numeric``: ``low <= x < high`` (None: unbounded on that side) or ``x == value``."""

    kind: str  # "bin" or "value"
    label: str
    low: float | None = None
    high: float | None = None
    value: float | None = None


@dataclass(frozen=True)
class NumericBins:
    """Result of ``bin_numeric``: a bin per value (``codes``; -1 where the value is missing) and the bins."""

    field: str
    codes: np.ndarray
    bins: tuple[Bin, ...]


def _format_edges(edges: Sequence[float]) -> list[str]:
    """The shortest significant-digit rendering (2 to 8 digits) that keeps distinct values distinct."""
    distinct = len(set(float(e) for e in edges))
    for digits in range(2, 9):
        text = [f"{float(e):.{digits}g}" for e in edges]
        if len(set(text)) == distinct:
            return text
    return [repr(float(e)) for e in edges]


def _round_edges(inner: np.ndarray, lowest: float, highest: float) -> tuple[np.ndarray, list[str]]:
    """Inner bin edges rounded to the fewest significant digits (2 to 8) that keep them strictly increasing and
    inside (lowest, highest]: a label then states the bound exactly (no hidden digits)."""
    for digits in range(2, 9):
        text = [f"{float(e):.{digits}g}" for e in inner]
        rounded = np.asarray([float(t) for t in text])
        if (np.diff(rounded) > 0).all() and rounded[0] > lowest and rounded[-1] <= highest:
            return rounded, text
    return inner, [repr(float(e)) for e in inner]


def numeric_values(values: object, field_name: str) -> np.ndarray:
    """Float array with NaN for missing values; a non-numeric value is a DataError naming the field."""
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise DataError(f"Field {field_name!r} must hold one value per sample; got shape {array.shape}.")
    if array.dtype.kind in "iuf":
        return array.astype(np.float64)
    out = np.empty(len(array), dtype=np.float64)
    for position, value in enumerate(array.tolist()):
        if value is None:
            out[position] = np.nan
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[position] = float(value)
        else:
            raise DataError(f"Field {field_name!r} should hold numbers but holds {value!r} "
                            f"({type(value).__name__}); slice it as a category or fix the values.")
    return out


def bin_numeric(values: Sequence | np.ndarray, bins: int = DEFAULT_BINS, field: str = "value") -> NumericBins:
    """Quantile bins of a numeric field, with readable labels like ``"brightness in [0.12, 0.31)"``.

    Inner edges are the 1/bins, ..., (bins-1)/bins quantiles of the present values (ties merged), rounded to the
    fewest significant digits that keep them distinct, so that a label states its bounds exactly. Every bin is
    ``[low, high)``; the first has no lower bound (``"brightness < 0.12"``) and the last no upper bound
    (``"brightness >= 0.31"``), so every value, also of samples added later, falls in one bin. A field with at most
    ``bins`` distinct values gets one bin per value (``"width = 28"``). None and NaN are missing (code -1).

    Raises:
        InputError: ``bins`` is not an integer >= 1.
        DataError: a value that is not a number (the message names the field and the value).
    """
    bins = check_int("bins", bins)
    numeric = numeric_values(values, field)
    present = ~np.isnan(numeric)
    codes = np.full(len(numeric), -1, dtype=np.int64)
    if not present.any():
        return NumericBins(field, codes, ())
    if np.isinf(numeric[present]).any():
        example = numeric[present][np.isinf(numeric[present])][0]
        raise DataError(f"Field {field!r} holds {example}; infinite values cannot be binned. Fix or drop them.")
    distinct = np.unique(numeric[present])
    if len(distinct) <= bins:
        codes[present] = np.searchsorted(distinct, numeric[present])
        shown = _format_edges(distinct)
        return NumericBins(field, codes, tuple(
            Bin(KIND_VALUE, f"{field} = {text}", value=plain(v)) for v, text in zip(distinct, shown)))
    lowest, highest = float(distinct[0]), float(distinct[-1])
    inner = np.unique(np.quantile(numeric[present], np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    inner = inner[(inner > lowest) & (inner <= highest)]
    if len(inner) == 0:
        codes[present] = 0
        return NumericBins(field, codes, (Bin(KIND_BIN, f"{field} (all values)"),))
    inner, text = _round_edges(inner, lowest, highest)
    codes[present] = np.searchsorted(inner, numeric[present], side="right")
    out = [Bin(KIND_BIN, f"{field} < {text[0]}", high=float(inner[0]))]
    out += [Bin(KIND_BIN, f"{field} in [{text[i]}, {text[i + 1]})", low=float(inner[i]), high=float(inner[i + 1]))
            for i in range(len(inner) - 1)]
    out.append(Bin(KIND_BIN, f"{field} >= {text[-1]}", low=float(inner[-1])))
    return NumericBins(field, codes, tuple(out))
