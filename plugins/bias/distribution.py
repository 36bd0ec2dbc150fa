"""The class distribution: counts, fractions, imbalance and a chi-square test against a reference; pure arrays.

The imbalance ratio is the one definition of ``curation_checks.class_balance.imbalance_ratio`` (largest / smallest
non-zero count; empty classes are listed in ``missing_classes``), so this report and the class-balance check agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from active_learning.errors import DataError, InputError
from curation_checks.bias.arrays import class_indices, class_list, float_or_nan, json_float
from curation_checks.class_balance import imbalance_ratio, missing_classes


@dataclass(frozen=True)
class ClassDistribution:
    """Class counts and fractions; with a reference, the chi-square goodness-of-fit test and per-class differences.

    ``imbalance_ratio`` is the largest count over the smallest non-zero count (``class_balance.imbalance_ratio``;
    classes with no sample are listed in ``missing_classes`` instead). ``difference`` = observed fraction -
    reference fraction; ``residual`` is the Pearson residual (observed - expected) / sqrt(expected) in counts.
    ``chi2_reliable`` is False when an expected count is under 5, where the chi-square approximation of the p-value
    is rough.
    """

    classes: tuple[str, ...]
    counts: np.ndarray
    fractions: np.ndarray
    imbalance_ratio: float
    missing_classes: tuple[str, ...]
    reference: np.ndarray | None = None  # fractions, summing to 1
    expected: np.ndarray | None = None  # counts expected under the reference
    difference: np.ndarray | None = None
    residual: np.ndarray | None = None
    chi2: float | None = None
    p_value: float | None = None
    dof: int | None = None
    chi2_reliable: bool | None = None

    @property
    def num_samples(self) -> int:
        """Samples counted."""
        return int(self.counts.sum())

    def to_dict(self) -> dict:
        """Plain JSON types; NaN and infinities become None."""
        out: dict[str, Any] = {
            "classes": list(self.classes),
            "counts": {c: int(n) for c, n in zip(self.classes, self.counts)},
            "fractions": {c: json_float(f) for c, f in zip(self.classes, self.fractions)},
            "num_samples": self.num_samples,
            "imbalance_ratio": json_float(self.imbalance_ratio),
            "missing_classes": list(self.missing_classes),
        }
        if self.reference is not None:
            out["reference"] = {
                "fractions": {c: json_float(f) for c, f in zip(self.classes, self.reference)},
                "expected_counts": {c: json_float(e) for c, e in zip(self.classes, self.expected)},
                "difference": {c: json_float(d) for c, d in zip(self.classes, self.difference)},
                "residual": {c: json_float(r) for c, r in zip(self.classes, self.residual)},
                "chi2": json_float(self.chi2),
                "p_value": json_float(self.p_value),
                "dof": self.dof,
                "chi2_reliable": self.chi2_reliable,
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassDistribution":
        """Rebuild from ``to_dict`` output."""
        classes = tuple(data["classes"])
        reference = data.get("reference")

        def column(mapping: Mapping[str, Any]) -> np.ndarray:
            return np.array([float_or_nan(mapping[c]) for c in classes])

        return cls(
            classes=classes,
            counts=np.array([data["counts"][c] for c in classes], dtype=np.int64),
            fractions=column(data["fractions"]),
            imbalance_ratio=float_or_nan(data["imbalance_ratio"]),
            missing_classes=tuple(data["missing_classes"]),
            reference=None if reference is None else column(reference["fractions"]),
            expected=None if reference is None else column(reference["expected_counts"]),
            difference=None if reference is None else column(reference["difference"]),
            residual=None if reference is None else column(reference["residual"]),
            chi2=None if reference is None else float_or_nan(reference["chi2"]),
            p_value=None if reference is None else float_or_nan(reference["p_value"]),
            dof=None if reference is None else reference["dof"],
            chi2_reliable=None if reference is None else reference["chi2_reliable"],
        )


def reference_fractions(reference: Mapping[str, float] | Sequence[float], classes: tuple[str, ...]) -> np.ndarray:
    """A reference distribution (class -> fraction or count, or one value per class) as fractions summing to 1.

    Raises:
        InputError: unknown classes, a wrong number of values, or values that are not a distribution.
    """
    if isinstance(reference, Mapping):
        unknown = sorted(str(c) for c in reference if str(c) not in classes)
        if unknown:
            raise InputError(f"The reference distribution names classes {unknown[:5]} that are not in the class list "
                             f"{list(classes)[:10]}; use the class names of the label field.")
        raw = [reference.get(c, 0.0) for c in classes]  # a class the reference leaves out is expected 0 times
    else:
        raw = list(reference)
        if len(raw) != len(classes):
            raise InputError(f"The reference distribution has {len(raw)} values for {len(classes)} classes; pass a "
                             "dict class -> fraction (or count) instead.")
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"The reference distribution must hold numbers (fractions or counts); got {raw[:5]}.") from None
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise InputError("The reference distribution must hold finite, non-negative fractions or counts, not all 0.")
    return values / values.sum()


def class_distribution(labels: Sequence | np.ndarray, classes: Sequence[str],
                       reference: Mapping[str, float] | Sequence[float] | None = None) -> ClassDistribution:
    """Counts, fractions and imbalance of ``labels``; with ``reference``, a chi-square goodness-of-fit test.

    Args:
        labels: class indices or class names, one per labeled sample.
        classes: the class list.
        reference: expected distribution as a dict class -> fraction or count (normalised here; classes it leaves
            out are expected 0 times), or a sequence aligned with ``classes``.

    Raises:
        InputError: the reference names unknown classes or is not a distribution.
        DataError: no labels, or a label outside the class list.
    """
    classes = class_list(classes)
    given = class_indices("labels", labels, classes)
    if len(given) == 0:
        raise DataError("No labeled samples: the class distribution needs at least one label.")
    k = len(classes)
    counts = np.bincount(given, minlength=k).astype(np.int64)
    total = int(counts.sum())
    result = dict(
        classes=classes, counts=counts, fractions=counts / total,
        imbalance_ratio=imbalance_ratio(counts), missing_classes=tuple(missing_classes(counts, classes)),
    )
    if reference is None:
        return ClassDistribution(**result)
    fractions = reference_fractions(reference, classes)
    expected = fractions * total
    possible = expected > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(possible, (counts - expected) / np.sqrt(expected), np.where(counts > 0, np.inf, 0.0))
    dof = int(possible.sum()) - 1
    if (counts[~possible] > 0).any():
        chi2, p_value = float("inf"), 0.0  # a class the reference says never occurs does occur
    elif dof < 1:
        chi2, p_value = 0.0, 1.0  # one possible class: every label is in it
    else:
        test = stats.chisquare(counts[possible], expected[possible])
        chi2, p_value = float(test.statistic), float(test.pvalue)
    return ClassDistribution(
        **result, reference=fractions, expected=expected, difference=counts / total - fractions, residual=residual,
        chi2=chi2, p_value=p_value, dof=max(dof, 0), chi2_reliable=bool((expected[possible] >= 5).all()),
    )
