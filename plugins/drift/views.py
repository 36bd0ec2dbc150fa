"""Which views a drift run compares: small view specs and the reference and target views they name.

``parse_view_spec`` reads ``tag:TAG``, ``field:FIELD=VALUE``, ``batch:FIELD`` (targets only: the samples outside the
reference, one target per distinct value, in value order) and ``all-but-reference``; ``resolve_views`` turns a
reference spec and a target spec into FiftyOne views, refusing (with what to do) unknown fields, tags or values that
match nothing, too small sides and targets that overlap the reference. ``curation_checks.drift.report`` uses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from active_learning.errors import DataError, InputError
from curation_checks.drift import stats as drift

SPEC_GRAMMAR = "tag:TAG, field:FIELD=VALUE, batch:FIELD (targets only) or all-but-reference (targets only)"
ALL_BUT_REFERENCE = "all-but-reference"
DEFAULT_REFERENCE = "tag:test"  # what the App's form suggests: held-out labelled data (the CLI asks for it)
DEFAULT_TARGET = ALL_BUT_REFERENCE
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


# -- view specs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewSpec:
    """A parsed view spec: ``kind`` is ``tag``, ``field``, ``batch`` or ``all-but-reference``.

    ``name`` is the tag or the field path (None for ``all-but-reference``); ``value`` the text after ``=`` of a
    ``field`` spec (None otherwise).
    """

    kind: str
    name: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        if self.kind == ALL_BUT_REFERENCE:
            return ALL_BUT_REFERENCE
        if self.kind == "field":
            return f"field:{self.name}={self.value}"
        return f"{self.kind}:{self.name}"


def parse_view_spec(text: str | ViewSpec) -> ViewSpec:
    """Parse ``tag:TAG``, ``field:FIELD=VALUE``, ``batch:FIELD`` or ``all-but-reference`` into a ``ViewSpec``.

    Raises:
        InputError: anything else (the message gives the grammar).
    """
    if isinstance(text, ViewSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"A view spec must be a non-empty string: {SPEC_GRAMMAR}; got {text!r}.")
    spec = text.strip()
    if spec.lower() in (ALL_BUT_REFERENCE, "all_but_reference"):
        return ViewSpec(ALL_BUT_REFERENCE)
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("tag", "field", "batch"):
        raise InputError(f"Unknown view spec {spec!r}; use {SPEC_GRAMMAR} (e.g. tag:reference, field:split=ref, "
                         "batch:batch_id).")
    rest = rest.strip()
    if kind == "tag":
        if not rest:
            raise InputError(f"View spec {spec!r} names no tag; write tag:TAG (e.g. tag:reference).")
        return ViewSpec("tag", rest)
    if kind == "field":
        path, eq, value = rest.partition("=")
        path, value = path.strip(), value.strip()
        if not eq or not value:
            raise InputError(f"View spec {spec!r} needs a value: write field:FIELD=VALUE (e.g. field:split=ref).")
        _check_path(path, spec)
        return ViewSpec("field", path, value)
    if "=" in rest:
        raise InputError(f"View spec {spec!r}: batch:FIELD takes a field name only (one target per value of it); "
                         "to select one value write field:FIELD=VALUE.")
    _check_path(rest, spec)
    return ViewSpec("batch", rest)


def _check_path(path: str, spec: str) -> None:
    if not _PATH.match(path):
        raise InputError(f"View spec {spec!r}: {path!r} is not a field name (letters, digits, underscores; dots for "
                         "embedded fields).")


def resolve_views(dataset, reference_spec: str | ViewSpec, target_spec: str | ViewSpec,
                  min_samples: int = drift.MIN_SAMPLES) -> tuple[Any, list[tuple[str, Any]]]:
    """The reference view and the named target views of ``dataset``, in batch order.

    ``batch:FIELD`` splits the samples outside the reference by the value of FIELD (samples without a value belong
    to no batch); values sort naturally (numbers and dates by value, strings with embedded numbers numerically).

    Raises:
        InputError: a malformed spec, or a ``batch``/``all-but-reference`` spec as the reference.
        DataError: an unknown field (the message lists the fields), a tag or value matching no sample, an empty or
            too small (fewer than ``min_samples``) reference or target, a target overlapping the reference.
    """
    reference = parse_view_spec(reference_spec)
    target = parse_view_spec(target_spec)
    if reference.kind in ("batch", ALL_BUT_REFERENCE):
        raise InputError(f"The reference must be one view (tag:TAG or field:FIELD=VALUE); {reference} can only be "
                         "a target.")
    ids, values = _ids_and_values(dataset, [s.name for s in (reference, target) if s.kind in ("field", "batch")])
    reference_ids = _matching_ids(dataset, reference, ids, values)
    _check_size("The reference", str(reference), len(reference_ids), min_samples)
    reference_set = set(reference_ids)
    reference_view = dataset.match_tags(reference.name) if reference.kind == "tag" else dataset.select(reference_ids)

    targets: list[tuple[str, list[str]]] = []
    if target.kind == ALL_BUT_REFERENCE:
        rest = [i for i in ids if i not in reference_set]
        if not rest:
            raise DataError(f"Every sample of dataset {dataset.name!r} is in the reference {reference}; there is "
                            "nothing left to compare. Choose a smaller reference.")
        targets.append((ALL_BUT_REFERENCE, rest))
    elif target.kind == "batch":
        targets = _batches(dataset, target.name, ids, values[target.name], reference_set, str(reference))
    else:
        target_ids = _matching_ids(dataset, target, ids, values)
        shared = len(reference_set.intersection(target_ids))
        if shared:
            raise DataError(f"The target {target} shares {shared} of its {len(target_ids)} samples with the "
                            f"reference {reference}; drift needs disjoint sets. Untag or relabel the shared samples, "
                            f"or use the target {ALL_BUT_REFERENCE} / batch:FIELD (which leave out the reference).")
        targets.append((str(target), target_ids))
    for name, target_ids in targets:
        _check_size(f"The target batch {name!r}" if target.kind == "batch" else "The target", str(target),
                    len(target_ids), min_samples)
    views = [(name, dataset.match_tags(target.name) if target.kind == "tag" else dataset.select(target_ids))
             for name, target_ids in targets]
    return reference_view, views


def _check_size(what: str, spec: str, count: int, min_samples: int) -> None:
    if count == 0:
        raise DataError(f"{what} ({spec}) is empty: it matches no sample.")
    if count < min_samples:
        raise DataError(f"{what} ({spec}) has {count} samples; the drift tests need at least {min_samples} on each "
                        "side. Add samples, or merge small batches into one (e.g. a coarser batch field).")


def _ids_and_values(dataset, paths: list[str | None]) -> tuple[list[str], dict[str, list]]:
    """All sample ids and the values of the named field paths; an unknown field raises ``DataError``."""
    paths = list(dict.fromkeys(p for p in paths if p))
    for path in paths:
        if dataset.get_field(path) is None:
            schema = sorted(dataset.get_field_schema())
            raise DataError(f"Dataset {dataset.name!r} has no field {path!r}; its fields are: {', '.join(schema)}.")
    columns = dataset.values(["id", *paths]) if paths else [dataset.values("id")]
    return list(columns[0]), dict(zip(paths, columns[1:]))


def _matching_ids(dataset, spec: ViewSpec, ids: list[str], values: dict[str, list]) -> list[str]:
    if spec.kind == "tag":
        matched = dataset.match_tags(spec.name).values("id")
        if not matched:
            tags = sorted(dataset.distinct("tags"))
            raise DataError(f"No sample of dataset {dataset.name!r} has the tag {spec.name!r} ({spec}); its tags "
                            f"are: {', '.join(tags) if tags else 'none'}.")
        return list(matched)
    wanted = _coerce(dataset, spec)
    column = values[spec.name]
    matched = [i for i, v in zip(ids, column) if v is not None and _same(v, wanted)]
    if not matched:
        seen = sorted({_value_name(v) for v in column if v is not None}, key=_natural_key)
        raise DataError(f"No sample of dataset {dataset.name!r} has {spec.name} = {spec.value!r} ({spec}); values "
                        f"present: {', '.join(seen[:10]) if seen else 'none'}{' ...' if len(seen) > 10 else ''}.")
    return matched


def _coerce(dataset, spec: ViewSpec) -> Any:
    """The text value of a ``field`` spec as the field's type."""
    import fiftyone.core.fields as fof

    field_type = dataset.get_field(spec.name)
    text = spec.value
    try:
        if isinstance(field_type, fof.BooleanField):
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if isinstance(field_type, fof.IntField):
            return int(text)
        if isinstance(field_type, fof.FloatField):
            return float(text)
        if isinstance(field_type, fof.DateTimeField):
            return _naive_utc(datetime.fromisoformat(text))
        if isinstance(field_type, fof.DateField):
            return date.fromisoformat(text)
    except ValueError:
        kind = type(field_type).__name__.replace("Field", "").lower()
        raise InputError(f"View spec {spec}: {text!r} is not a valid {kind} for field {spec.name!r}.") from None
    return text


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _same(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, str):
        return _value_name(stored) == wanted
    if isinstance(wanted, datetime) and isinstance(stored, datetime):
        return _naive_utc(stored) == wanted
    if isinstance(wanted, date) and isinstance(stored, datetime):
        return stored.date() == wanted
    return stored == wanted


def _value_name(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _natural_key(text: str) -> tuple:
    """'batch2' < 'batch10': digit runs compare as numbers (parts alternate str, int, str, ...)."""
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text)))


def _sort_key(value: Any) -> tuple:
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return (0, float(value))
    if isinstance(value, datetime):
        return (1, _naive_utc(value).isoformat())
    if isinstance(value, date):
        return (1, value.isoformat())
    return (2, _natural_key(str(value)))


def _batches(dataset, path: str, ids: list[str], column: list, reference: set[str],
             reference_name: str) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    order: dict[str, tuple] = {}
    for sample_id, value in zip(ids, column):
        if value is None or sample_id in reference:
            continue
        if isinstance(value, (list, dict)):
            raise DataError(f"Field {path!r} holds lists or documents; batch:FIELD needs one plain value per sample "
                            "(a number, a string or a date).")
        name = _value_name(value)
        groups.setdefault(name, []).append(sample_id)
        order.setdefault(name, _sort_key(value))
    if not groups:
        raise DataError(f"No sample outside the reference {reference_name} has a value in {path!r}; give the new "
                        f"samples a {path!r} value or use another target.")
    return [(name, groups[name]) for name in sorted(groups, key=lambda n: order[n])]


__all__ = ["ALL_BUT_REFERENCE", "SPEC_GRAMMAR", "ViewSpec", "parse_view_spec", "resolve_views"]
