"""Bias: where does the model (or the data) underperform? Pure functions over arrays; no FiftyOne here.

- ``per_class_metrics``: precision, recall, F1 and support per class, macro/weighted F1, accuracy, confusion matrix.
- ``class_distribution``: counts, fractions, imbalance ratio, and a chi-square goodness-of-fit test against a
  reference distribution.
- ``slice_performance``: accuracy of every slice ``field = value`` (numeric fields binned by quantiles with
  ``bin_numeric``, list fields one slice per item, missing values their own slice), a Wilson confidence interval,
  and a one-sided Fisher exact test of "worse than the rest of the samples", Holm-corrected across all slices.
  With ``crosses=True`` also the intersections of two slices of different fields (``label = 'Shirt' &
  brightness < 0.12``), tested in the same family.
- ``image_statistics``: brightness, contrast, width and height of images, vectorised.
- ``underperforming_groups``: the same scoring for clusters of the embedding space (cleanlab's underperforming-group
  idea without needing a field to slice by).

Every result is a frozen dataclass with ``to_dict()`` (plain JSON types: NaN and infinities become ``None``) and
``from_dict()``. Bad data raises ``DataError``; bad parameters raise ``InputError``.

The statistics, and why:
- **Wilson score interval** for a slice's accuracy: unlike the normal (Wald) interval it stays inside [0, 1] and
  keeps close to its nominal coverage for small slices and accuracies near 1, which is where slices live.
- **One-sided Fisher exact test** of the slice against its complement (all other scored samples): exact at any
  size, so one test serves slices of 20 and of 20,000 samples; one-sided because only "worse" is a finding.
- **Holm's step-down correction** over every tested slice (all fields together): it controls the family-wise error
  rate like Bonferroni but rejects more; a search over dozens of slices otherwise "finds" one by chance.
- Slices smaller than ``min_size`` and slices that hold every sample are not tested (and not listed): their
  accuracy means little, and each would cost the others power under the correction.
- **Crossed (two-field) slices** are tested in the same Holm family as the one-field slices, so the family-wise
  error rate still holds; the price is power (more tests). Their number is bounded: only the
  ``max_cross_parents`` (default 40) one-field slices with the smallest one-sided p-values are crossed, which
  makes at most 40 * 39 / 2 = 780 intersections, and only those of at least ``min_size`` samples that differ from
  both parents and from every other tested slice are tested.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field  # `field` is also a parameter name here
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from active_learning.errors import DataError, InputError

DEFAULT_MIN_SIZE = 20  # slices and groups smaller than this are not tested
DEFAULT_BINS = 4  # quantile bins per numeric field
MAX_GROUPS = 50  # upper end of the automatic number of embedding groups
PCA_DIMS = 50  # embeddings are reduced to at most this many dimensions before clustering
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: intensity of an RGB pixel
KIND_BIN, KIND_VALUE, KIND_ITEM, KIND_MISSING = "bin", "value", "item", "missing"
KIND_AND = "and"  # a crossed slice: the intersection of two one-field slices (``SliceStat.parts``)
DEFAULT_CROSS_PARENTS = 40  # one-field slices crossed with each other at most (<= 780 intersections)
CROSS_CHUNK = 1 << 16  # samples per block of the membership products (float32 counts stay exact)
PART_KEYS = ("field", "kind", "label", "value", "low", "high")  # what a part of a crossed slice records


# -- JSON helpers --------------------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nan(value: Any) -> float:
    """The inverse of ``_num``: None becomes NaN."""
    return float("nan") if value is None else float(value)


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars (slice values go into JSON and into FiftyOne filters)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- validation ----------------------------------------------------------------------------------------------------
def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _open_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < 1:
        raise InputError(f"{name} must be a number strictly between 0 and 1; got {value!r}.")
    return float(value)


def _class_list(classes: Sequence[str]) -> tuple[str, ...]:
    classes = tuple(str(c) for c in classes)
    if not classes:
        raise InputError("classes must name at least one class.")
    if len(set(classes)) != len(classes):
        raise InputError(f"classes must be distinct; got {list(classes)[:10]}.")
    return classes


def _as_indices(name: str, values: object, classes: tuple[str, ...]) -> np.ndarray:
    """Class indices in [0, K) from integer indices or class names; anything else is a DataError."""
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
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(array), dtype=np.int64)
    for position, value in enumerate(array.tolist()):
        if isinstance(value, str) and value in index:
            out[position] = index[value]
        else:
            raise DataError(f"{name} holds {value!r}, which is not one of the classes {list(classes)[:10]}.")
    return out


def _correct_array(correct: object) -> np.ndarray:
    array = np.asarray(correct)
    if array.ndim != 1:
        raise DataError(f"correct must be a 1-D array of booleans, one per sample; got shape {array.shape}.")
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf" and np.isin(array, (0, 1)).all():
        return array.astype(bool)
    raise DataError("correct must hold booleans (prediction == label) for every sample; got "
                    f"values such as {array.ravel()[:3].tolist()}.")


# -- intervals and tests -------------------------------------------------------------------------------------------
def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(nan, nan)`` for zero trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, where rounding would stray
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def _worse_p_values(n_correct: np.ndarray, sizes: np.ndarray, total_correct: int, n: int) -> np.ndarray:
    """One-sided Fisher exact test per slice (is the accuracy inside lower than outside?), vectorised: the p-value
    of ``scipy.stats.fisher_exact(table, alternative="less")`` is the hypergeometric CDF of the slice's correct
    count (population ``n``, ``total_correct`` successes, ``sizes`` draws), which is how scipy computes it."""
    if len(sizes) == 0:
        return np.zeros(0)
    return np.clip(stats.hypergeom.cdf(n_correct, n, total_correct, sizes), 0.0, 1.0)


# -- per-class metrics ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassMetrics:
    """Per-class precision/recall/F1/support, macro and weighted F1, accuracy, and the confusion matrix.

    ``confusion[i, j]`` counts samples whose given label is ``classes[i]`` and predicted class is ``classes[j]``.
    Precision is NaN for a class never predicted; F1 is NaN for a class neither given nor predicted (it is 0 for a
    class given but never predicted correctly). Macro F1 averages the defined F1s; weighted F1 weighs by support.
    """

    classes: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    predicted: np.ndarray  # how often each class was predicted
    accuracy: float
    macro_f1: float
    weighted_f1: float
    confusion: np.ndarray

    @property
    def num_samples(self) -> int:
        """Samples counted."""
        return int(self.support.sum())

    def worst_classes(self, n: int = 3) -> list[str]:
        """The ``n`` classes with the lowest F1 among those given (ties: lower recall, then name order)."""
        given = [i for i in range(len(self.classes)) if self.support[i] > 0]
        given.sort(key=lambda i: (self.f1[i], self.recall[i], i))
        return [self.classes[i] for i in given[:n]]

    def to_dict(self) -> dict:
        """Plain JSON types; NaN becomes None."""
        return {
            "classes": list(self.classes),
            "per_class": [
                {"class": c, "precision": _num(p), "recall": _num(r), "f1": _num(f), "support": int(s),
                 "predicted": int(q)}
                for c, p, r, f, s, q in zip(self.classes, self.precision, self.recall, self.f1, self.support,
                                            self.predicted)
            ],
            "accuracy": _num(self.accuracy),
            "macro_f1": _num(self.macro_f1),
            "weighted_f1": _num(self.weighted_f1),
            "num_samples": self.num_samples,
            "confusion_matrix": self.confusion.astype(int).tolist(),
            "confusion_axes": "rows = given label, columns = predicted class, in the order of classes",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassMetrics":
        """Rebuild from ``to_dict`` output."""
        rows = data["per_class"]
        return cls(
            classes=tuple(data["classes"]),
            precision=np.array([_nan(r["precision"]) for r in rows]),
            recall=np.array([_nan(r["recall"]) for r in rows]),
            f1=np.array([_nan(r["f1"]) for r in rows]),
            support=np.array([r["support"] for r in rows], dtype=np.int64),
            predicted=np.array([r["predicted"] for r in rows], dtype=np.int64),
            accuracy=_nan(data["accuracy"]),
            macro_f1=_nan(data["macro_f1"]),
            weighted_f1=_nan(data["weighted_f1"]),
            confusion=np.asarray(data["confusion_matrix"], dtype=np.int64).reshape(len(rows), len(rows)),
        )


def per_class_metrics(labels: Sequence | np.ndarray, predictions: Sequence | np.ndarray,
                      classes: Sequence[str]) -> ClassMetrics:
    """Precision, recall, F1 and support per class; labels and predictions are class indices or class names.

    Raises:
        DataError: empty or mismatched arrays, or a value that is not a class.
    """
    classes = _class_list(classes)
    given = _as_indices("labels", labels, classes)
    predicted = _as_indices("predictions", predictions, classes)
    if len(given) != len(predicted):
        raise DataError(f"{len(given)} labels but {len(predicted)} predictions; pass one of each per sample.")
    if len(given) == 0:
        raise DataError("No samples to score: pass at least one label and prediction.")
    k = len(classes)
    confusion = np.bincount(given * k + predicted, minlength=k * k).reshape(k, k)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, np.nan)
        recall = np.where(support > 0, true_positive / support, np.nan)
        denominator = support + predicted_count  # 2TP + FP + FN
        f1 = np.where(denominator > 0, 2 * true_positive / denominator, np.nan)
    defined = ~np.isnan(f1)
    macro = float(f1[defined].mean()) if defined.any() else float("nan")
    weighted = float((np.nan_to_num(f1) * support).sum() / support.sum())
    return ClassMetrics(classes, precision, recall, f1, support.astype(np.int64), predicted_count.astype(np.int64),
                        float(true_positive.sum() / len(given)), macro, weighted, confusion.astype(np.int64))


# -- class distribution --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassDistribution:
    """Class counts and fractions; with a reference, the chi-square goodness-of-fit test and per-class differences.

    ``imbalance_ratio`` is the largest count over the smallest non-zero count (classes with no sample are listed in
    ``missing_classes`` instead). ``difference`` = observed fraction - reference fraction; ``residual`` is the
    Pearson residual (observed - expected) / sqrt(expected) in counts. ``chi2_reliable`` is False when an expected
    count is under 5, where the chi-square approximation of the p-value is rough.
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
            "fractions": {c: _num(f) for c, f in zip(self.classes, self.fractions)},
            "num_samples": self.num_samples,
            "imbalance_ratio": _num(self.imbalance_ratio),
            "missing_classes": list(self.missing_classes),
        }
        if self.reference is not None:
            out["reference"] = {
                "fractions": {c: _num(f) for c, f in zip(self.classes, self.reference)},
                "expected_counts": {c: _num(e) for c, e in zip(self.classes, self.expected)},
                "difference": {c: _num(d) for c, d in zip(self.classes, self.difference)},
                "residual": {c: _num(r) for c, r in zip(self.classes, self.residual)},
                "chi2": _num(self.chi2),
                "p_value": _num(self.p_value),
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
            return np.array([_nan(mapping[c]) for c in classes])

        return cls(
            classes=classes,
            counts=np.array([data["counts"][c] for c in classes], dtype=np.int64),
            fractions=column(data["fractions"]),
            imbalance_ratio=_nan(data["imbalance_ratio"]),
            missing_classes=tuple(data["missing_classes"]),
            reference=None if reference is None else column(reference["fractions"]),
            expected=None if reference is None else column(reference["expected_counts"]),
            difference=None if reference is None else column(reference["difference"]),
            residual=None if reference is None else column(reference["residual"]),
            chi2=None if reference is None else _nan(reference["chi2"]),
            p_value=None if reference is None else _nan(reference["p_value"]),
            dof=None if reference is None else reference["dof"],
            chi2_reliable=None if reference is None else reference["chi2_reliable"],
        )


def _reference_fractions(reference: Mapping[str, float] | Sequence[float], classes: tuple[str, ...]) -> np.ndarray:
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
    classes = _class_list(classes)
    given = _as_indices("labels", labels, classes)
    if len(given) == 0:
        raise DataError("No labeled samples: the class distribution needs at least one label.")
    k = len(classes)
    counts = np.bincount(given, minlength=k).astype(np.int64)
    total = int(counts.sum())
    nonzero = counts[counts > 0]
    result = dict(
        classes=classes, counts=counts, fractions=counts / total,
        imbalance_ratio=float(nonzero.max() / nonzero.min()),
        missing_classes=tuple(c for c, n in zip(classes, counts) if n == 0),
    )
    if reference is None:
        return ClassDistribution(**result)
    fractions = _reference_fractions(reference, classes)
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


# -- slices --------------------------------------------------------------------------------------------------------
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
    indices: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False, compare=False)

    def to_dict(self) -> dict:
        """Plain JSON types; ``indices`` are left out."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("indices", "composition", "parts")}
        for name in ("accuracy", "ci_low", "ci_high", "rest_accuracy", "gap", "p_value", "p_adjusted", "low", "high",
                     "p_parents"):
            out[name] = _num(out[name])
        out["value"] = _plain(self.value)
        out["composition"] = [[c, _num(s)] for c, s in self.composition]
        out["parts"] = [_part(p) for p in self.parts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SliceStat":
        """Rebuild from ``to_dict`` output (without ``indices``); reports written before crossed slices load too."""
        known = {f.name for f in fields(cls)} - {"indices"}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("accuracy", "ci_low", "ci_high", "rest_accuracy", "gap", "p_value", "p_adjusted"):
            values[name] = _nan(values[name])
        values["composition"] = tuple((str(c), float(s)) for c, s in values.get("composition", ()))
        values["parts"] = tuple(_part(p) for p in values.get("parts") or ())
        return cls(**values)


def _part(part: Mapping[str, Any]) -> dict:
    """One part of a crossed slice as plain JSON types, with exactly the keys ``PART_KEYS``."""
    return {"field": str(part["field"]), "kind": str(part["kind"]), "label": str(part["label"]),
            "value": _plain(part.get("value")), "low": _num(part.get("low")), "high": _num(part.get("high"))}


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


def _numeric_values(values: object, field_name: str) -> np.ndarray:
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
    bins = _positive_int("bins", bins)
    numeric = _numeric_values(values, field)
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
            Bin(KIND_VALUE, f"{field} = {text}", value=_plain(v)) for v, text in zip(distinct, shown)))
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
                "accuracy": _num(self.accuracy), "alpha": self.alpha, "confidence": self.confidence,
                "min_size": self.min_size, "bins": self.bins, "num_tested": self.num_tested,
                "num_small": self.num_small, "num_significant": len(self.significant), "fields": list(self.fields),
                "test": self.test, "crosses": self.crosses, "num_crossed": self.num_crossed,
                "num_cross_parents": self.num_cross_parents, "max_cross_parents": self.max_cross_parents}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlicePerformance":
        """Rebuild from ``to_dict`` output (also of reports written before crossed slices existed)."""
        return cls(tuple(SliceStat.from_dict(s) for s in data["slices"]), data["num_samples"],
                   _nan(data["accuracy"]), data["alpha"], data["confidence"], data["min_size"], data["bins"],
                   data["num_tested"], data["num_small"], tuple(data["fields"]), data["test"],
                   crosses=bool(data.get("crosses", False)), num_crossed=int(data.get("num_crossed", 0)),
                   num_cross_parents=int(data.get("num_cross_parents", 0)),
                   max_cross_parents=int(data.get("max_cross_parents", DEFAULT_CROSS_PARENTS)))


@dataclass(frozen=True)
class _Candidate:
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
        return _part({"field": self.field, "kind": self.kind, "label": self.label, "value": self.value,
                      "low": self.low, "high": self.high})


def object_array(values: Iterable[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (lists stay list elements, never a second axis)."""
    listed = list(values)
    array = np.empty(len(listed), dtype=object)
    for position, value in enumerate(listed):
        array[position] = value
    return array


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _field_candidates(name: str, values: object, n: int, numeric: bool, bins: int) -> list[_Candidate]:
    """The slices of one field: bins of a numeric field, items of a list field, values of a categorical one."""
    array = values if isinstance(values, np.ndarray) and values.ndim == 1 else None
    if array is None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise DataError(f"Field {name!r} must be an array with one value per sample; got {type(values).__name__}.")
        array = object_array(values)
    if len(array) != n:
        raise DataError(f"Field {name!r} has {len(array)} values for {n} samples; pass one value per sample.")
    missing_label = f"{name} is missing"
    candidates: list[_Candidate] = []
    if array.dtype.kind in "iuf" or numeric:
        binned = bin_numeric(array, bins, name)
        for code, b in enumerate(binned.bins):
            candidates.append(_Candidate(name, b.kind, b.label, np.flatnonzero(binned.codes == code), b.value, b.low,
                                         b.high))
        candidates.append(_Candidate(name, KIND_MISSING, missing_label, np.flatnonzero(binned.codes < 0)))
        return candidates
    items = array.tolist()
    present = [v for v in items if not _is_missing(v)]
    if present and all(_is_list(v) for v in present):
        members: dict[Any, list[int]] = {}
        empty = []
        for row, value in enumerate(items):
            if _is_missing(value) or len(value) == 0:
                empty.append(row)
                continue
            for item in set(_plain(v) for v in value):
                if _is_list(item) or not _hashable(item):
                    raise DataError(f"Field {name!r} holds lists of {type(item).__name__}; only lists of strings or "
                                    "numbers can be sliced.")
                members.setdefault(item, []).append(row)
        for item in sorted(members, key=_sort_key):
            candidates.append(_Candidate(name, KIND_ITEM, f"{name} contains {item!r}",
                                         np.asarray(members[item], dtype=np.int64), item))
        candidates.append(_Candidate(name, KIND_MISSING, f"{name} is empty", np.asarray(empty, dtype=np.int64)))
        return candidates
    if any(_is_list(v) for v in present):
        example = next(v for v in present if not _is_list(v))
        raise DataError(f"Field {name!r} mixes lists and single values (e.g. {example!r}); slice a field with one "
                        "kind of value.")
    numbers_seen = [v for v in present if _is_number(v)]
    if numbers_seen and len(numbers_seen) == len(present):
        return _field_candidates(name, _numeric_values(array, name), n, True, bins)
    if numbers_seen:
        example = next(v for v in present if not _is_number(v))
        raise DataError(f"Field {name!r} mixes numbers and non-numbers (e.g. {example!r}, {type(example).__name__});"
                        " fix the values or convert them all to strings.")
    members = {}
    empty = []
    for row, value in enumerate(items):
        if _is_missing(value):
            empty.append(row)
            continue
        value = _plain(value)
        if not _hashable(value) or not isinstance(value, (str, bool, numbers.Number)):
            raise DataError(f"Field {name!r} holds {type(value).__name__} values (e.g. {str(value)[:60]!r}); slice "
                            "by one of its attributes instead (e.g. 'ground_truth.label').")
        members.setdefault(value, []).append(row)
    for value in sorted(members, key=_sort_key):
        candidates.append(_Candidate(name, KIND_VALUE, f"{name} = {value!r}" if isinstance(value, str)
                                     else f"{name} = {value}", np.asarray(members[value], dtype=np.int64), value))
    candidates.append(_Candidate(name, KIND_MISSING, missing_label, np.asarray(empty, dtype=np.int64)))
    return candidates


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def _redundant(stat: SliceStat, alpha: float) -> bool:
    """A crossed slice that is not significantly worse than the rest of both of its parents."""
    return stat.kind == KIND_AND and not (stat.p_parents is not None and stat.p_parents < alpha)


def _score(candidates: list[_Candidate], correct: np.ndarray, min_size: int, alpha: float,
           confidence: float) -> tuple[list[SliceStat], int]:
    """Accuracy, Wilson interval and Holm-corrected one-sided Fisher test per candidate; worst first."""
    n = len(correct)
    total_correct = int(correct.sum())
    kept: list[tuple[_Candidate, int, int]] = []
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
    p_values = _worse_p_values(np.asarray([k[2] for k in kept], dtype=np.int64),
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


def _cross_candidates(candidates: list[_Candidate], correct: np.ndarray, min_size: int,
                      max_parents: int) -> tuple[list[_Candidate], int]:
    """Intersections of two one-field slices of different fields, and how many one-field slices were crossed.

    Parents are the one-field slices that would be tested (``min_size <= size < n``); when there are more than
    ``max_parents``, those with the smallest one-sided p-values (then the larger gap) are kept, so at most
    ``max_parents * (max_parents - 1) / 2`` pairs are looked at. Intersection sizes come from one product of the
    parents' membership matrix with itself (in blocks of ``CROSS_CHUNK`` samples, float32 counts exact there);
    only pairs of different fields whose intersection has at least ``min_size`` samples and is smaller than both
    parents (a pair nested in one parent is that parent again) become candidates, and an intersection with the
    same members as a one-field slice or an earlier intersection is dropped (one test per set of samples).
    """
    n = len(correct)
    eligible = [c for c in candidates if min_size <= len(c.indices) < n]
    if len(eligible) > max_parents:
        sizes = np.asarray([len(c.indices) for c in eligible], dtype=np.int64)
        hits = np.asarray([int(correct[c.indices].sum()) for c in eligible], dtype=np.int64)
        total = int(correct.sum())
        p_values = _worse_p_values(hits, sizes, total, n)
        gap = (total - hits) / (n - sizes) - hits / sizes
        chosen = np.sort(np.lexsort((-gap, p_values))[:max_parents])  # back in input order: stable part order
        eligible = [eligible[i] for i in chosen]
    count = len(eligible)
    if count < 2 or len({c.field for c in eligible}) < 2:
        return [], count
    membership = np.zeros((count, n), dtype=bool)
    for row, candidate in enumerate(eligible):
        membership[row, candidate.indices] = True
    both = np.zeros((count, count), dtype=np.int64)
    for start in range(0, n, CROSS_CHUNK):
        block = membership[:, start:start + CROSS_CHUNK].astype(np.float32)
        both += np.rint(block @ block.T).astype(np.int64)
    sizes = np.diag(both).copy()
    field_id = {name: i for i, name in enumerate(dict.fromkeys(c.field for c in eligible))}
    fields_of = np.asarray([field_id[c.field] for c in eligible])
    first, second = np.triu_indices(count, k=1)
    overlap = both[first, second]
    keep = ((fields_of[first] != fields_of[second]) & (overlap >= min_size) & (overlap < sizes[first])
            & (overlap < sizes[second]))
    seen = {c.indices.tobytes() for c in candidates if min_size <= len(c.indices) < n}
    hits = np.asarray([int(correct[c.indices].sum()) for c in eligible], dtype=np.int64)
    pairs, members_of = [], []
    for i, j in zip(first[keep].tolist(), second[keep].tolist()):
        small, other = (i, j) if sizes[i] <= sizes[j] else (j, i)
        members = eligible[small].indices[membership[other, eligible[small].indices]]
        key = members.tobytes()
        if key in seen:
            continue
        seen.add(key)
        pairs.append((i, j))
        members_of.append(members)
    if not pairs:
        return [], count
    left, right = (np.asarray(side, dtype=np.int64) for side in zip(*pairs))
    size_in = np.asarray([len(m) for m in members_of], dtype=np.int64)
    correct_in = np.asarray([int(correct[m].sum()) for m in members_of], dtype=np.int64)
    # Within each parent: is the intersection worse than the parent's other members? (hypergeometric = Fisher)
    p_parents = np.maximum(stats.hypergeom.cdf(correct_in, sizes[left], hits[left], size_in),
                           stats.hypergeom.cdf(correct_in, sizes[right], hits[right], size_in))
    out = []
    for (i, j), members, p in zip(pairs, members_of, np.clip(p_parents, 0.0, 1.0).tolist()):
        a, b = eligible[i], eligible[j]
        out.append(_Candidate(f"{a.field} & {b.field}", KIND_AND, f"{a.label} & {b.label}", members,
                              parts=(a.describe(), b.describe()), p_parents=float(p)))
    return out, count


def slice_performance(correct: Sequence[bool] | np.ndarray, slice_values: Mapping[str, Sequence | np.ndarray],
                      min_size: int = DEFAULT_MIN_SIZE, alpha: float = 0.05, bins: int = DEFAULT_BINS,
                      numeric: Iterable[str] = (), confidence: float = 0.95, crosses: bool = False,
                      max_cross_parents: int = DEFAULT_CROSS_PARENTS) -> SlicePerformance:
    """Accuracy of every slice ``field = value`` and whether it is significantly worse than the other samples.

    Args:
        correct: per sample, whether the (out-of-sample) prediction equals the label.
        slice_values: field name -> one value per sample. Numeric fields are binned by quantiles
            (``bin_numeric``), list fields (e.g. tags) make one slice per item, other values one slice per value;
            None/NaN (or an empty list) makes a "missing" slice.
        min_size: slices with fewer samples are not tested (counted in ``num_small``).
        alpha: family-wise error rate of the Holm-corrected tests.
        bins: quantile bins per numeric field.
        numeric: fields that must be numeric (a non-number there is a DataError naming the field and the value).
        confidence: level of the Wilson intervals.
        crosses: also test the intersections of two slices of different fields (kind ``"and"``, e.g.
            ``label = 'Shirt' & brightness < 0.12``), in the same Holm family as the one-field slices. Only
            intersections with at least ``min_size`` samples that differ from both parents (and from every other
            tested slice) are tested; intersections under ``min_size`` are not counted in ``num_small``. Every
            piece of a bad slice tends to be bad too, so among the significant slices a crossed one that is not
            worse than the rest of both of its parents (``p_parents >= alpha``) is listed after the others.
        max_cross_parents: with ``crosses``, at most this many one-field slices are crossed (those with the
            smallest one-sided p-values; all of them when there are fewer), so at most
            ``max_cross_parents * (max_cross_parents - 1) / 2`` intersections (780 for the default 40).

    Returns:
        Tested slices sorted worst first: significant ones first, then by the upper confidence bound.

    Raises:
        InputError: bad parameters or a ``numeric`` field not in ``slice_values``.
        DataError: lengths that do not match, non-numeric values in a numeric field, values that cannot be sliced.
    """
    correct = _correct_array(correct)
    min_size = _positive_int("min_size", min_size)
    alpha = _open_fraction("alpha", alpha)
    confidence = _open_fraction("confidence", confidence)
    bins = _positive_int("bins", bins)
    max_cross_parents = _positive_int("max_cross_parents", max_cross_parents, 2)
    if not isinstance(crosses, (bool, np.bool_)):
        raise InputError(f"crosses must be True or False; got {crosses!r}.")
    numeric = set(numeric)
    if not isinstance(slice_values, Mapping):
        raise InputError("slice_values must be a dict field name -> one value per sample.")
    unknown = sorted(numeric - set(slice_values))
    if unknown:
        raise InputError(f"numeric names fields {unknown} that are not in slice_values {sorted(slice_values)}.")
    if len(correct) == 0:
        raise DataError("No samples to slice: pass at least one scored sample.")
    candidates: list[_Candidate] = []
    for name, values in slice_values.items():
        candidates.extend(_field_candidates(str(name), values, len(correct), name in numeric, bins))
    crossed: list[_Candidate] = []
    parents = 0
    if crosses:
        crossed, parents = _cross_candidates(candidates, correct, min_size, max_cross_parents)
    slices, small = _score(candidates + crossed, correct, min_size, alpha, confidence)
    test = SlicePerformance.test if not crosses else (
        "one-sided Fisher exact vs the complement, Holm-corrected over all tested slices (one-field and crossed)")
    return SlicePerformance(tuple(slices), len(correct), float(correct.mean()), alpha, confidence, min_size, bins,
                            len(slices), small, tuple(str(n) for n in slice_values), test, crosses=bool(crosses),
                            num_crossed=sum(s.kind == KIND_AND for s in slices), num_cross_parents=parents,
                            max_cross_parents=max_cross_parents)


# -- image statistics ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageStatistics:
    """Per image: mean intensity (brightness) and its standard deviation (RMS contrast), both in [0, 1]; size."""

    brightness: np.ndarray
    contrast: np.ndarray
    width: np.ndarray
    height: np.ndarray

    def to_dict(self) -> dict:
        """Plain JSON lists."""
        return {"brightness": self.brightness.tolist(), "contrast": self.contrast.tolist(),
                "width": self.width.tolist(), "height": self.height.tolist()}


def _intensity_stats(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness and contrast of a stack (N, H, W) or (N, H, W, C) of uint8 images, vectorised."""
    if stack.ndim == 3:
        intensity = stack.astype(np.float32)
    elif stack.shape[-1] in (1, 2):  # grayscale (+ alpha)
        intensity = stack[..., 0].astype(np.float32)
    elif stack.shape[-1] in (3, 4):  # RGB (+ alpha, ignored)
        intensity = stack[..., :3].astype(np.float32) @ LUMA.astype(np.float32)
    else:
        raise DataError(f"Images must have 1 to 4 channels; got {stack.shape[-1]} (shape {stack.shape[1:]}).")
    flat = intensity.reshape(len(stack), -1) / 255.0
    return flat.mean(axis=1, dtype=np.float64), flat.std(axis=1, dtype=np.float64)


def image_statistics(images: np.ndarray | Sequence[np.ndarray]) -> ImageStatistics:
    """Brightness (mean intensity, 0..1), contrast (std of intensity, 0..1), width and height per image.

    ``images`` is a uint8 array (N, H, W) or (N, H, W, C), or a list of uint8 (H, W) / (H, W, C) arrays of any
    sizes (images of the same shape are processed together). RGB intensity is the BT.601 luma
    0.299 R + 0.587 G + 0.114 B; an alpha channel is ignored.

    Raises:
        DataError: not uint8, or not an image shape.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise DataError(f"Images must be uint8 (0..255); got {images.dtype}. Convert with .astype(np.uint8) "
                            "after scaling.")
        if images.ndim not in (3, 4) or images.shape[0] == 0:
            raise DataError(f"Images must be an array (N, H, W) or (N, H, W, C) with N >= 1; got {images.shape}.")
        brightness, contrast = _intensity_stats(images)
        n = len(images)
        return ImageStatistics(brightness, contrast, np.full(n, images.shape[2], dtype=np.int64),
                               np.full(n, images.shape[1], dtype=np.int64))
    images = list(images)
    if not images:
        raise DataError("No images given: pass at least one image.")
    n = len(images)
    brightness, contrast = np.empty(n), np.empty(n)
    width, height = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise DataError(f"Image {position} must be a uint8 array (H, W) or (H, W, C); got {image.dtype} "
                            f"{image.shape}.")
        by_shape.setdefault(image.shape, []).append(position)
    for shape, rows in by_shape.items():
        stack = np.stack([np.asarray(images[i]) for i in rows])
        brightness[rows], contrast[rows] = _intensity_stats(stack)
        height[rows], width[rows] = shape[0], shape[1]
    return ImageStatistics(brightness, contrast, width, height)


# -- underperforming groups ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupSearch:
    """Result of ``underperforming_groups``: per-sample group ids and the tested groups, worst first.

    Group ids are renumbered by rank: group 0 is the worst tested group, untested (small) groups come last.
    Every group is a ``SliceStat`` of kind ``"value"`` over ``field`` (the field the ids are stored in).
    """

    assignments: np.ndarray
    groups: tuple[SliceStat, ...]
    n_groups: int
    num_samples: int
    accuracy: float
    alpha: float
    confidence: float
    min_size: int
    num_small: int
    random_state: int
    field: str
    method: str

    @property
    def significant(self) -> tuple[SliceStat, ...]:
        """The groups significantly worse than the rest."""
        return tuple(g for g in self.groups if g.significant)

    def to_dict(self) -> dict:
        """Plain JSON types; the per-sample assignments are left out (they are stored as a field)."""
        return {"groups": [g.to_dict() for g in self.groups], "n_groups": self.n_groups,
                "num_samples": self.num_samples, "accuracy": _num(self.accuracy), "alpha": self.alpha,
                "confidence": self.confidence, "min_size": self.min_size, "num_small": self.num_small,
                "num_significant": len(self.significant), "random_state": self.random_state, "field": self.field,
                "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GroupSearch":
        """Rebuild from ``to_dict`` output (``assignments`` empty)."""
        return cls(np.zeros(0, dtype=np.int64), tuple(SliceStat.from_dict(g) for g in data["groups"]),
                   data["n_groups"], data["num_samples"], _nan(data["accuracy"]), data["alpha"], data["confidence"],
                   data["min_size"], data["num_small"], data["random_state"], data["field"], data["method"])


def default_n_groups(num_samples: int, min_size: int = DEFAULT_MIN_SIZE) -> int:
    """About five times ``min_size`` samples per group, between 2 and ``MAX_GROUPS``."""
    return int(min(MAX_GROUPS, max(2, round(num_samples / (5 * min_size)))))


def cluster_embeddings(embeddings: np.ndarray, n_groups: int, random_state: int = 0) -> np.ndarray:
    """KMeans cluster id per row of L2-normalised, PCA-reduced embeddings (deterministic for ``random_state``)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    dims = min(PCA_DIMS, unit.shape[1], unit.shape[0] - 1)
    if dims >= 2 and dims < unit.shape[1]:
        unit = PCA(n_components=dims, svd_solver="full").fit_transform(unit)
    kmeans = KMeans(n_clusters=n_groups, n_init=3, random_state=random_state)
    return kmeans.fit_predict(unit).astype(np.int64)


def underperforming_groups(embeddings: np.ndarray, correct: Sequence[bool] | np.ndarray, n_groups: int | None = None,
                           min_size: int = DEFAULT_MIN_SIZE, alpha: float = 0.05, confidence: float = 0.95,
                           labels: Sequence | np.ndarray | None = None, classes: Sequence[str] | None = None,
                           random_state: int = 0, field: str = "bias_group") -> GroupSearch:
    """Clusters of the embedding space where the model is significantly less accurate than elsewhere.

    cleanlab's ``underperforming_group`` issue manager clusters a kNN graph with DBSCAN and scores each cluster by
    its mean self-confidence relative to the whole dataset. We keep the idea (cluster, then score each cluster
    against the rest) and change two things:

    - **KMeans** (scikit-learn, ``n_init=3``) on L2-normalised embeddings reduced by PCA to at most 50 dimensions,
      instead of DBSCAN: DBSCAN's ``eps`` is a distance scale that has to be re-tuned for every model and dataset,
      on CNN features it tends to return one giant cluster plus "noise" samples that belong to no group, and the
      kNN graph costs O(N^2) distances. KMeans is linear in N, deterministic for a fixed ``random_state``, gives
      every sample a group (so ``bias_group`` is defined everywhere), and ``n_groups`` sets the granularity
      directly. Its cost: convex partitions may cut a planted group in pieces; each piece is still tested.
      (HDBSCAN has DBSCAN's noise label and is slower.)
    - **Accuracy with statistics** instead of a confidence ratio: a Wilson interval per group, a one-sided Fisher
      exact test against all other samples, Holm-corrected over the groups, exactly as ``slice_performance``
      (cleanlab flags only the single worst cluster, by a fixed ratio threshold, without a test).

    Args:
        embeddings: (N, D) features, e.g. the fixed model's penultimate layer.
        correct: per sample, whether the out-of-sample prediction equals the label.
        n_groups: number of clusters; default ``default_n_groups(N, min_size)`` (about 5 x min_size per group).
        min_size: groups with fewer samples are not tested.
        alpha, confidence: as in ``slice_performance``.
        labels, classes: optional labels (indices or names) to describe each group's most common classes.
        random_state: seeds KMeans.
        field: the field name the group ids will be stored in (for ``slice_view``).

    Raises:
        InputError: bad parameters.
        DataError: shapes that do not match, NaN embeddings, fewer samples than groups.
    """
    correct = _correct_array(correct)
    min_size = _positive_int("min_size", min_size)
    alpha = _open_fraction("alpha", alpha)
    confidence = _open_fraction("confidence", confidence)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InputError(f"random_state must be an integer; got {random_state!r}.")
    try:
        matrix = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("embeddings must be a numeric 2-D array (samples x features).") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise DataError(f"embeddings must be a 2-D array (samples x features); got shape {matrix.shape}.")
    if len(matrix) != len(correct):
        raise DataError(f"{len(matrix)} embeddings but {len(correct)} correctness values; pass one per sample.")
    if not np.isfinite(matrix).all():
        raise DataError(f"{int((~np.isfinite(matrix)).any(axis=1).sum())} embeddings hold NaN or infinite values; "
                        "recompute them.")
    n = len(matrix)
    n_groups = default_n_groups(n, min_size) if n_groups is None else _positive_int("n_groups", n_groups, 2)
    if n < n_groups:
        raise DataError(f"{n} samples cannot form {n_groups} groups; pass a smaller n_groups or more samples.")
    label_index = None
    if labels is not None:
        if classes is None:
            raise InputError("Pass classes together with labels.")
        classes = _class_list(classes)
        label_index = _as_indices("labels", labels, classes)
        if len(label_index) != n:
            raise DataError(f"{len(label_index)} labels for {n} samples; pass one per sample.")

    clusters = cluster_embeddings(matrix, n_groups, int(random_state))
    candidates = []
    for cluster in range(n_groups):
        members = np.flatnonzero(clusters == cluster)
        composition: tuple[tuple[str, float], ...] = ()
        if label_index is not None and len(members):
            counts = np.bincount(label_index[members], minlength=len(classes))
            top = np.argsort(-counts, kind="stable")[:3]
            composition = tuple((classes[i], float(counts[i] / len(members))) for i in top if counts[i] > 0)
        candidates.append(_Candidate(field, KIND_VALUE, f"group {cluster}", members, cluster,
                                     composition=composition))
    groups, small = _score(candidates, correct, min_size, alpha, confidence)
    # Renumber: rank order for tested groups, then the rest by their original id.
    tested_ids = [g.value for g in groups]
    untested = sorted(set(range(n_groups)) - set(tested_ids))
    order = tested_ids + untested
    new_id = {old: new for new, old in enumerate(order)}
    assignments = np.asarray([new_id[c] for c in range(n_groups)], dtype=np.int64)[clusters]
    groups = [SliceStat(**{**{f.name: getattr(g, f.name) for f in fields(g)},
                           "value": new_id[g.value], "label": f"group {new_id[g.value]}"}) for g in groups]
    dims = min(PCA_DIMS, matrix.shape[1], n - 1)
    reduced = f"reduced by PCA to {dims} dimensions" if 2 <= dims < matrix.shape[1] else "not reduced"
    method = (f"KMeans (n_init=3) into {n_groups} groups on L2-normalised embeddings ({reduced}); "
              "one-sided Fisher exact vs the rest, Holm-corrected")
    return GroupSearch(assignments, tuple(groups), n_groups, n, float(correct.mean()), alpha, confidence, min_size,
                       small, int(random_state), field, method)
