"""Slices and groups as results: ``SliceStat`` (one tested slice or group), ``SlicePerformance`` (the search's
result), and ``score_candidates``, which scores candidate slices with the Wilson interval and the Holm-corrected
one-sided Fisher test (``curation_checks.bias.significance``) and orders them worst first. Pure arrays.

Slices smaller than ``min_size`` and slices that hold every sample are not tested (and not listed): their accuracy
means little, and each would cost the others power under the correction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field  # `field` is also a parameter name here
from typing import Any, Mapping

import numpy as np

from curation_checks.bias.arrays import float_or_nan, json_float, plain
from curation_checks.bias.binning import KIND_BIN, KIND_VALUE
from curation_checks.bias.settings import DEFAULT_CROSS_PARENTS
from curation_checks.bias.significance import holm_adjust, wilson_interval, worse_p_values

KIND_ITEM, KIND_MISSING = "item", "missing"
KIND_AND = "and"  # a crossed slice: the intersection of two one-field slices (``SliceStat.parts``)
PART_KEYS = ("field", "kind", "label", "value", "low", "high")  # what a part of a crossed slice records
SLICE_KINDS = (KIND_BIN, KIND_VALUE, KIND_ITEM, KIND_MISSING, KIND_AND)


@dataclass(frozen=True)
class SliceStat:
    """One tested slice (or embedding group): which samples, how accurate, and whether worse than the rest.

    The slice is ``field``'s samples with ``kind``:
    - ``"bin"``: ``low <= value < high`` (``low`` None: no lower bound; ``high`` None: no upper bound);
    - ``"value"``: ``value == value``;
    - ``"item"``: a list field containing ``value`` (e.g. a tag);
    - ``"missing"``: no value (None, NaN, or an empty list);
    - ``"and"``: a crossed slice, the samples in both ``parts``: two dicts with the keys ``PART_KEYS`` (field,
      kind, label, value, low, high) describing one-field slices of two different fields, as above. Its ``field``
      is the two field names joined by " & ", its ``label`` the two labels joined by " & "; value/low/high are None.
      ``p_parents`` is the larger of the two one-sided Fisher p-values of the intersection against the rest of each
      parent: small when the intersection is worse than *both* of the slices it refines, not just a piece of one
      bad parent (unadjusted; it only orders the list, see ``slice_performance``).
    ``indices`` are the rows of the input that belong to the slice (not serialised).
    """

    field: str
    kind: str
    label: str
    size: int
    n_correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    rest_size: int
    rest_accuracy: float
    gap: float  # rest_accuracy - accuracy (positive: the slice is worse)
    p_value: float  # one-sided Fisher exact, slice worse than the rest
    p_adjusted: float  # Holm-adjusted over every tested slice
    significant: bool  # p_adjusted < alpha
    value: Any = None
    low: float | None = None
    high: float | None = None
    composition: tuple[tuple[str, float], ...] = ()  # for groups: the most common labels and their shares
    # for kind "and": the two one-field slices (dicts with the keys PART_KEYS); compared, not hashed (dicts)
    parts: tuple[dict, ...] = dataclass_field(default=(), hash=False)
    p_parents: float | None = None  # for kind "and": worse than the rest of each parent? (max of the two p-values)
    indices: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False,
                                          compare=False)

    def to_dict(self) -> dict:
        """Plain JSON types; ``indices`` are left out."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("indices", "composition", "parts")}
        for name in ("accuracy", "ci_low", "ci_high", "rest_accuracy", "gap", "p_value", "p_adjusted", "low", "high",
                     "p_parents"):
            out[name] = json_float(out[name])
        out["value"] = plain(self.value)
        out["composition"] = [[c, json_float(s)] for c, s in self.composition]
        out["parts"] = [slice_part(p) for p in self.parts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SliceStat":
        """Rebuild from ``to_dict`` output (without ``indices``); reports written before crossed slices load too."""
        known = {f.name for f in fields(cls)} - {"indices"}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("accuracy", "ci_low", "ci_high", "rest_accuracy", "gap", "p_value", "p_adjusted"):
            values[name] = float_or_nan(values[name])
        values["composition"] = tuple((str(c), float(s)) for c, s in values.get("composition", ()))
        values["parts"] = tuple(slice_part(p) for p in values.get("parts") or ())
        return cls(**values)


def slice_part(part: Mapping[str, Any]) -> dict:
    """One part of a crossed slice as plain JSON types, with exactly the keys ``PART_KEYS``."""
    return {"field": str(part["field"]), "kind": str(part["kind"]), "label": str(part["label"]),
            "value": plain(part.get("value")), "low": json_float(part.get("low")), "high": json_float(part.get("high"))}


@dataclass(frozen=True)
class SlicePerformance:
    """Result of ``slice_performance``: tested slices, worst first, and what was left out."""

    slices: tuple[SliceStat, ...]
    num_samples: int
    accuracy: float
    alpha: float
    confidence: float
    min_size: int
    bins: int
    num_tested: int
    num_small: int  # slices under min_size, not tested
    fields: tuple[str, ...]
    test: str = "one-sided Fisher exact vs the complement, Holm-corrected over all tested slices"
    crosses: bool = False  # whether two-field intersections were searched too
    num_crossed: int = 0  # crossed slices among the tested ones (num_tested counts both kinds)
    num_cross_parents: int = 0  # one-field slices that were crossed with each other
    max_cross_parents: int = DEFAULT_CROSS_PARENTS

    @property
    def significant(self) -> tuple[SliceStat, ...]:
        """The slices significantly worse than the rest."""
        return tuple(s for s in self.slices if s.significant)

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return {"slices": [s.to_dict() for s in self.slices], "num_samples": self.num_samples,
                "accuracy": json_float(self.accuracy), "alpha": self.alpha, "confidence": self.confidence,
                "min_size": self.min_size, "bins": self.bins, "num_tested": self.num_tested,
                "num_small": self.num_small, "num_significant": len(self.significant), "fields": list(self.fields),
                "test": self.test, "crosses": self.crosses, "num_crossed": self.num_crossed,
                "num_cross_parents": self.num_cross_parents, "max_cross_parents": self.max_cross_parents}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlicePerformance":
        """Rebuild from ``to_dict`` output (also of reports written before crossed slices existed)."""
        return cls(tuple(SliceStat.from_dict(s) for s in data["slices"]), data["num_samples"],
                   float_or_nan(data["accuracy"]), data["alpha"], data["confidence"], data["min_size"], data["bins"],
                   data["num_tested"], data["num_small"], tuple(data["fields"]), data["test"],
                   crosses=bool(data.get("crosses", False)), num_crossed=int(data.get("num_crossed", 0)),
                   num_cross_parents=int(data.get("num_cross_parents", 0)),
                   max_cross_parents=int(data.get("max_cross_parents", DEFAULT_CROSS_PARENTS)))


@dataclass(frozen=True)
class Candidate:
    """A slice before scoring: its description and member rows."""

    field: str
    kind: str
    label: str
    indices: np.ndarray
    value: Any = None
    low: float | None = None
    high: float | None = None
    composition: tuple[tuple[str, float], ...] = ()
    parts: tuple[dict, ...] = ()
    p_parents: float | None = None

    def describe(self) -> dict:
        """This (one-field) slice as a part of a crossed slice."""
        return slice_part({"field": self.field, "kind": self.kind, "label": self.label, "value": self.value,
                      "low": self.low, "high": self.high})


def _redundant(stat: SliceStat, alpha: float) -> bool:
    """A crossed slice that is not significantly worse than the rest of both of its parents."""
    return stat.kind == KIND_AND and not (stat.p_parents is not None and stat.p_parents < alpha)


def score_candidates(candidates: list[Candidate], correct: np.ndarray, min_size: int, alpha: float,
           confidence: float) -> tuple[list[SliceStat], int]:
    """Accuracy, Wilson interval and Holm-corrected one-sided Fisher test per candidate; worst first."""
    n = len(correct)
    total_correct = int(correct.sum())
    kept: list[tuple[Candidate, int, int]] = []
    small = 0
    for candidate in candidates:
        size = len(candidate.indices)
        if size == 0:
            continue
        if size < min_size:
            small += 1
            continue
        if size == n:
            continue  # no complement to compare against
        kept.append((candidate, size, int(correct[candidate.indices].sum())))
    p_values = worse_p_values(np.asarray([k[2] for k in kept], dtype=np.int64),
                               np.asarray([k[1] for k in kept], dtype=np.int64), total_correct, n)
    tested = [(c, size, n_correct, float(p)) for (c, size, n_correct), p in zip(kept, p_values)]
    adjusted = holm_adjust([t[3] for t in tested])
    out = []
    for (candidate, size, n_correct, p_value), p_adj in zip(tested, adjusted):
        rest_size = n - size
        accuracy = n_correct / size
        rest_accuracy = (total_correct - n_correct) / rest_size
        ci_low, ci_high = wilson_interval(n_correct, size, confidence)
        out.append(SliceStat(
            field=candidate.field, kind=candidate.kind, label=candidate.label, size=size, n_correct=n_correct,
            accuracy=accuracy, ci_low=ci_low, ci_high=ci_high, rest_size=rest_size, rest_accuracy=rest_accuracy,
            gap=rest_accuracy - accuracy, p_value=p_value, p_adjusted=float(p_adj), significant=bool(p_adj < alpha),
            value=candidate.value, low=candidate.low, high=candidate.high,
            composition=candidate.composition, parts=candidate.parts, p_parents=candidate.p_parents,
            indices=candidate.indices,
        ))
    # Worst first: significant slices before the others; within each, a crossed slice that is not worse than the
    # rest of both its parents (p_parents >= alpha: a piece of one bad slice, nothing more) after the rest; then
    # the lowest upper confidence bound (a slice that is surely bad beats one that may be bad), then the larger gap,
    # then the larger slice, then the label.
    out.sort(key=lambda s: (not s.significant, _redundant(s, alpha), s.ci_high, -s.gap, -s.size, s.field, s.label))
    return out, small
