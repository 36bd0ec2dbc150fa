"""The FiftyOne view of one slice or group of a bias report (a panel sets the App's view with it)."""

from __future__ import annotations

from typing import Any, Mapping

from active_learning.errors import InputError
from curation_checks.bias.slices import KIND_AND, KIND_BIN, KIND_ITEM, KIND_MISSING, KIND_VALUE, SLICE_KINDS, SliceStat


def slice_condition(field: str, kind: str, value: Any = None, low: float | None = None, high: float | None = None):
    """The ``ViewField`` expression that matches one one-field slice (``SliceStat`` of that ``kind``)."""
    from fiftyone import ViewField as F

    path = F(field)
    if kind == KIND_BIN:
        # MongoDB orders null and NaN below every number: exclude them explicitly (they are the "missing" slice).
        condition = path.exists() & (path != float("nan"))
        if low is not None:
            condition &= path >= low
        if high is not None:
            condition &= path < high
        return condition
    if kind == KIND_VALUE:
        return path == value
    if kind == KIND_ITEM:
        return path.contains([value])
    if kind == KIND_MISSING:
        return path.exists(False) | (path == []) | (path == float("nan"))
    raise InputError(f"Unknown slice kind {kind!r}; expected one of {', '.join(SLICE_KINDS)}.")


def slice_view(view, slice_: SliceStat | Mapping[str, Any]):
    """The samples of ``view`` in one slice or group of a report (unscored samples included when they match).

    A crossed slice (kind ``"and"``) matches the samples that satisfy the conditions of both its parts.
    """
    stat = slice_ if isinstance(slice_, SliceStat) else SliceStat.from_dict(slice_)
    if stat.kind == KIND_AND:
        if len(stat.parts) < 2:
            raise InputError(f"Crossed slice {stat.label!r} names {len(stat.parts)} part(s); it needs two.")
        condition = None
        for part in stat.parts:
            if part["kind"] == KIND_AND:
                raise InputError(f"Crossed slice {stat.label!r} has a crossed part; parts are one-field slices.")
            term = slice_condition(part["field"], part["kind"], part.get("value"), part.get("low"), part.get("high"))
            condition = term if condition is None else condition & term
        return view.match(condition)
    if stat.kind == KIND_ITEM and stat.field == "tags":
        return view.match_tags(stat.value)
    return view.match(slice_condition(stat.field, stat.kind, stat.value, stat.low, stat.high))

