"""Bias over a FiftyOne view: read labels and out-of-sample predictions, run ``curation_checks.bias``, write back.

``compute_bias(view)`` reads the labels and the fixed model's out-of-sample predictions (``curation model``),
computes image statistics from the sample files once (cached as fields ``image_brightness``, ``image_contrast``,
``image_width``, ``image_height``), runs per-class metrics, the class distribution, the slice search (one-field
slices and, by default, crossed two-field slices such as ``ground_truth.label = 'Shirt' & image_brightness < 0.12``)
and the embedding-group search, writes each scored sample's group to ``bias_group`` and records the run ``bias``
(config and the whole report). ``load_bias_report(dataset)`` rebuilds the report from the run;
``slice_view(view, slice)`` is the FiftyOne view of one slice or group (for a panel to set the App's view);
``format_bias_report`` renders it as text.

Which predictions count: labeled samples with ``model_probs`` (K-fold, out-of-sample) are scored by its argmax;
labeled samples without it but with ``model_prediction`` (test samples, predicted by the final model that never
trained on them) by that label. Labeled samples with neither are left out and counted (``num_unscored``).

Everything is read and computed before anything is written: a bad input leaves no field and no run behind.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.predictions import EMBEDDING_FIELD, PREDICTION_FIELD, PROBS_FIELD
from active_learning.runs import load_run, record_run
from active_learning.trust import model_trust
from active_learning.views import check_label_field, get_classes, write_fields
from curation_checks.bias import (DEFAULT_BINS, DEFAULT_CROSS_PARENTS, DEFAULT_MIN_SIZE, KIND_AND, KIND_BIN,
                                  KIND_ITEM, KIND_MISSING, KIND_VALUE, ClassDistribution, ClassMetrics, GroupSearch,
                                  ImageStatistics, SlicePerformance, SliceStat, class_distribution,
                                  image_statistics, object_array, per_class_metrics, _open_fraction,
                                  _positive_int, slice_performance, underperforming_groups)

RUN_KEY = "bias"
GROUP_FIELD = "bias_group"
IMAGE_FIELDS = {
    "brightness": "image_brightness",
    "contrast": "image_contrast",
    "width": "image_width",
    "height": "image_height",
}
IMAGE_CHUNK = 1024  # files decoded per image_statistics call
GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class BiasReport:
    """Everything ``compute_bias`` found; ``to_dict`` is what the run ``bias`` stores."""

    label_field: str
    classes: tuple[str, ...]
    num_samples: int  # samples in the view
    num_scored: int  # labeled samples with an out-of-sample prediction
    num_unlabeled: int
    num_unscored: int  # labeled samples without model outputs, left out
    metrics: ClassMetrics
    distribution: ClassDistribution
    slices: SlicePerformance
    groups: GroupSearch | None
    config: dict

    @property
    def accuracy(self) -> float:
        """Out-of-sample accuracy over the scored samples."""
        return self.metrics.accuracy

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return {
            "label_field": self.label_field,
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "num_scored": self.num_scored,
            "num_unlabeled": self.num_unlabeled,
            "num_unscored": self.num_unscored,
            "accuracy": self.metrics.to_dict()["accuracy"],
            "metrics": self.metrics.to_dict(),
            "distribution": self.distribution.to_dict(),
            "slices": self.slices.to_dict(),
            "groups": None if self.groups is None else self.groups.to_dict(),
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BiasReport":
        """Rebuild from ``to_dict`` output."""
        return cls(
            label_field=data["label_field"], classes=tuple(data["classes"]), num_samples=data["num_samples"],
            num_scored=data["num_scored"], num_unlabeled=data["num_unlabeled"], num_unscored=data["num_unscored"],
            metrics=ClassMetrics.from_dict(data["metrics"]),
            distribution=ClassDistribution.from_dict(data["distribution"]),
            slices=SlicePerformance.from_dict(data["slices"]),
            groups=None if data.get("groups") is None else GroupSearch.from_dict(data["groups"]),
            config=dict(data.get("config") or {}),
        )


# -- reading -------------------------------------------------------------------------------------------------------
def _available_fields(schema: Mapping[str, Any]) -> list[str]:
    hidden = {PROBS_FIELD, EMBEDDING_FIELD}
    return sorted(n for n in schema if not n.startswith("_") and n.split(".")[0] not in hidden)


def _resolve_slice_fields(slice_fields: Sequence[str] | None, schema: Mapping[str, Any],
                          image_stats: bool, label_field: str) -> list[str]:
    image_fields = list(IMAGE_FIELDS.values()) if image_stats else []
    if slice_fields is None:
        return image_fields + ["tags", f"{label_field}.label"]
    if isinstance(slice_fields, str):
        slice_fields = [slice_fields]
    fields = list(dict.fromkeys(str(f) for f in slice_fields))
    unknown = [f for f in fields if f not in schema and f not in image_fields]
    if unknown:
        hint = " (image statistics fields exist only with image_stats=True)" if any(
            f in IMAGE_FIELDS.values() for f in unknown) else ""
        raise DataError(f"Slice fields {unknown} are not fields of the view{hint}; available: "
                        f"{', '.join(_available_fields(schema))}.")
    documents = [f for f in fields if _is_document(schema.get(f)) and not _is_label(schema.get(f))]
    if documents:
        inner = sorted(n for n in schema if n.startswith(f"{documents[0]}.") and not _is_document(schema[n]))
        raise DataError(f"Slice field {documents[0]!r} holds documents, not values to group samples by: slice by "
                        f"one of its values instead ({', '.join(inner[:6]) or 'none found'}).")
    per_sample = [f for f in fields if f in PER_SAMPLE_FIELDS]
    if per_sample:
        raise DataError(f"Slice field {per_sample[0]!r} gives every sample a slice of its own: there is no group to "
                        "compare with the rest. Slice by a field that groups samples (a tag, a label, a camera, "
                        "an image statistic).")
    return fields


PER_SAMPLE_FIELDS = frozenset({"id", "_id", "filepath", "created_at", "last_modified_at"})


def _is_document(field: Any) -> bool:
    """Whether a schema field holds embedded documents (``metadata``, a label), which slices cannot compare."""
    import fiftyone.core.fields as fof

    return isinstance(field, fof.EmbeddedDocumentField)


def _is_label(field: Any) -> bool:
    """A label document (``ground_truth``): the slicer itself says to use its ``.label``."""
    import fiftyone.core.labels as fol

    document_type = getattr(field, "document_type", None)
    return isinstance(document_type, type) and issubclass(document_type, fol.Label)


def check_slice_values(name: str, values: Sequence[Any], min_samples: int = 20) -> None:
    """Refuse a text field whose every sample has its own value (a path, an id): no slice would hold a group."""
    present = [v for v in values if isinstance(v, str)]
    if len(present) >= min_samples and len(set(present)) == len(present):
        raise DataError(f"Slice field {name!r} has a different value for every one of its {len(present)} samples "
                        "(like a path or an id): there is no group to compare with the rest. Slice by a field "
                        "that groups samples.")


def _read_image(path: str) -> np.ndarray:
    from PIL import Image

    from active_learning.images import to_8bit

    with Image.open(path) as image:
        if image.mode in ("L", "RGB"):
            return np.asarray(image)
        image = to_8bit(image)  # 16-bit grayscale scaled to 8 bits, never clipped
        return np.asarray(image.convert("L" if image.mode in GRAYSCALE_MODES else "RGB"))


def read_image_statistics(filepaths: Sequence[str], workers: int = 4) -> ImageStatistics:
    """``image_statistics`` of image files, decoded in parallel and in chunks; unreadable files are a DataError."""
    parts: list[ImageStatistics] = []

    def work(path: str) -> np.ndarray | str:
        try:
            return _read_image(path)
        except Exception as exc:  # PIL raises many types for a bad file
            return f"{path} ({type(exc).__name__}: {exc})"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(filepaths), IMAGE_CHUNK):
            decoded = list(pool.map(work, filepaths[start:start + IMAGE_CHUNK]))
            failures = [d for d in decoded if isinstance(d, str)]
            if failures:
                raise DataError(f"{len(failures)} image(s) could not be read for the image statistics, e.g. "
                                f"{'; '.join(failures[:3])}. Fix the files or pass image_stats=False.")
            parts.append(image_statistics(decoded))  # type: ignore[arg-type]
    if not parts:
        return ImageStatistics(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return ImageStatistics(*(np.concatenate([getattr(p, name) for p in parts])
                             for name in ("brightness", "contrast", "width", "height")))


def _predicted_indices(probs_rows: list | None, predicted_labels: list, index: dict[str, int],
                       k: int) -> np.ndarray:
    """Predicted class index per sample (-1 without model outputs): argmax of model_probs, else model_prediction."""
    out = np.full(len(predicted_labels), -1, dtype=np.int64)
    for row, label in enumerate(predicted_labels):
        probs = probs_rows[row] if probs_rows is not None else None
        if probs is not None:
            if len(probs) != k:
                raise DataError(f"{PROBS_FIELD!r} rows have {len(probs)} values but the class list has {k} classes: "
                                "recompute the model outputs (`curation model`) with the current classes.")
            array = np.asarray(probs, dtype=np.float64)
            if not np.isfinite(array).all():
                raise DataError(f"{PROBS_FIELD!r} holds NaN or infinite values; recompute the model outputs.")
            out[row] = int(array.argmax())
        elif label is not None:
            if label not in index:
                raise DataError(f"{PREDICTION_FIELD!r} holds {label!r}, which is not in the class list "
                                f"{list(index)[:10]}: recompute the model outputs (`curation model`).")
            out[row] = index[label]
    return out


# -- the computation -----------------------------------------------------------------------------------------------
def compute_bias(
    view,
    label_field: str = "ground_truth",
    slice_fields: Sequence[str] | None = None,
    image_stats: bool = True,
    reference_distribution: Mapping[str, float] | None = None,
    n_groups: int | None = None,
    random_state: int = 0,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    alpha: float = 0.05,
    bins: int = DEFAULT_BINS,
    crosses: bool = True,
    max_cross_parents: int = DEFAULT_CROSS_PARENTS,
) -> BiasReport:
    """Where the model underperforms on ``view``: per class, per slice of sample fields, per embedding group.

    Args:
        view: a FiftyOne dataset or view with labels and ``curation model`` outputs.
        label_field: the Classification field holding the labels.
        slice_fields: sample fields to slice by (numeric ones binned by quantiles, list fields such as ``tags``
            one slice per item, embedded paths such as ``ground_truth.label`` allowed: that is how to slice by the
            label itself). Default: the image statistics fields (when ``image_stats``), ``tags`` and the label
            (``<label_field>.label``), so that the crossed search can find "this class AND dark".
        image_stats: compute brightness, contrast, width and height from the files of samples that lack them and
            store them as ``image_*`` fields (computed once, then read back).
        reference_distribution: expected class distribution, dict class -> fraction or count.
        n_groups: clusters of the embedding search; None picks about 5 x ``min_size`` samples per group, 0 skips
            the search.
        random_state: seeds the clustering.
        min_size, alpha, bins: smallest tested slice, family-wise error rate, quantile bins per numeric field.
        crosses: also test crossed slices, the intersections of two slices of different fields (``slice_performance``
            with ``crosses=True``), in the same Holm family. On by default: at most ``max_cross_parents`` one-field
            slices are crossed (at most 780 intersections for 40), which costs one (parents x samples) membership
            product, milliseconds to a second, next to the image statistics and the group search.
        max_cross_parents: the cap on the one-field slices crossed (those with the smallest one-sided p-values).

    Raises:
        DataError: empty view, missing label field, labels outside the class list, no model outputs, unknown slice
            fields, unreadable images, values that cannot be sliced.
        InputError: bad parameters (e.g. a reference distribution naming unknown classes).
    """
    started = time.perf_counter()
    if n_groups is not None and (isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer))
                                 or n_groups < 0 or n_groups == 1):
        raise InputError(f"n_groups must be None (automatic), 0 (no group search) or an integer >= 2; "
                         f"got {n_groups!r}.")
    min_size, alpha, bins = (_positive_int("min_size", min_size), _open_fraction("alpha", alpha),
                             _positive_int("bins", bins))
    max_cross_parents = _positive_int("max_cross_parents", max_cross_parents, 2)
    if not isinstance(crosses, (bool, np.bool_)):
        raise InputError(f"crosses must be True or False; got {crosses!r}.")
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    classes = get_classes(view, label_field)
    index = {c: i for i, c in enumerate(classes)}
    schema = view.get_field_schema(flat=True)
    if PROBS_FIELD not in schema and PREDICTION_FIELD not in schema:
        raise DataError(f"The view has no model outputs ({PROBS_FIELD!r} / {PREDICTION_FIELD!r}): run "
                        "`curation model` (or the Compute model outputs operator) first.")
    fields = _resolve_slice_fields(slice_fields, schema, image_stats, label_field)
    if n_groups != 0 and EMBEDDING_FIELD not in schema:
        raise DataError(f"The group search needs {EMBEDDING_FIELD!r}: run `curation model` first, or pass "
                        "n_groups=0 to skip it.")

    stored_image_fields = [f for f in IMAGE_FIELDS.values() if image_stats and f in schema]
    read_paths = ["id", "filepath", f"{label_field}.label",
                  f"{PREDICTION_FIELD}.label" if PREDICTION_FIELD in schema else None,
                  PROBS_FIELD if PROBS_FIELD in schema else None,
                  EMBEDDING_FIELD if n_groups != 0 else None,
                  *stored_image_fields,
                  *[f for f in fields if f not in IMAGE_FIELDS.values()]]
    read_paths = list(dict.fromkeys(p for p in read_paths if p))
    columns = dict(zip(read_paths, view.values(read_paths)))
    for name in fields:
        if name in columns and name != "tags":
            check_slice_values(name, columns[name])
    ids, paths, given = columns["id"], columns["filepath"], columns[f"{label_field}.label"]
    n = len(ids)

    unknown = sorted({str(label) for label in given if label is not None and label not in index})
    if unknown:
        raise DataError(f"Labels {unknown[:5]} in {label_field!r} are not in the class list {classes[:10]}: "
                        f"fix the labels or add the classes to dataset.classes[{label_field!r}].")
    labels = np.asarray([index[v] if v is not None else -1 for v in given], dtype=np.int64)
    labeled = labels >= 0
    if not labeled.any():
        raise DataError(f"No sample in the view has a label in {label_field!r}.")
    distribution = class_distribution(labels[labeled], classes, reference_distribution)  # checks the reference
    predicted = _predicted_indices(columns.get(PROBS_FIELD), columns.get(f"{PREDICTION_FIELD}.label", [None] * n),
                                   index, len(classes))
    scored = labeled & (predicted >= 0)
    if not scored.any():
        raise DataError(f"None of the {int(labeled.sum())} labeled samples of the view has model outputs: run "
                        "`curation model` (or the Compute model outputs operator) over this view first.")
    rows = np.flatnonzero(scored)
    # The automatic group search needs room for two testable groups; an explicit n_groups is always honoured.
    search_groups = n_groups != 0 and not (n_groups is None and len(rows) < 2 * min_size)

    # Image statistics: read back where stored, computed from the files where any is missing.
    image_columns: dict[str, np.ndarray] = {}
    computed_rows = np.zeros(0, dtype=np.int64)
    if image_stats:
        stored = {name: columns.get(field_name, [None] * n) for name, field_name in IMAGE_FIELDS.items()}
        missing = np.asarray([any(stored[name][i] is None for name in IMAGE_FIELDS) for i in range(n)])
        computed_rows = np.flatnonzero(missing)
        fresh = read_image_statistics([paths[i] for i in computed_rows])
        for name, field_name in IMAGE_FIELDS.items():
            values = np.asarray([np.nan if v is None else v for v in stored[name]], dtype=np.float64)
            values[computed_rows] = getattr(fresh, name)
            image_columns[field_name] = values

    embeddings = None
    if search_groups:
        vectors = [columns[EMBEDDING_FIELD][i] for i in rows]
        if any(v is None for v in vectors):
            raise DataError(f"{sum(v is None for v in vectors)} scored samples have no {EMBEDDING_FIELD!r}: "
                            "recompute the model outputs over this view, or pass n_groups=0.")
        embeddings = np.asarray(vectors, dtype=np.float64)

    correct = labels[rows] == predicted[rows]
    metrics = per_class_metrics(labels[rows], predicted[rows], classes)
    slice_values = {}
    for field_name in fields:
        column = image_columns.get(field_name)
        if column is None:
            column = object_array(columns[field_name])
        slice_values[field_name] = column[rows]
    slices = slice_performance(correct, slice_values, min_size=min_size, alpha=alpha, bins=bins,
                               numeric=[f for f in fields if f in image_columns], crosses=bool(crosses),
                               max_cross_parents=max_cross_parents)
    groups = None
    if search_groups:
        groups = underperforming_groups(embeddings, correct, n_groups=n_groups, min_size=min_size, alpha=alpha,
                                        labels=labels[rows], classes=classes, random_state=random_state,
                                        field=GROUP_FIELD)

    config = {
        "kind": "bias", "label_field": label_field, "slice_fields": fields, "image_stats": image_stats,
        "reference_distribution": None if reference_distribution is None else
        {str(k): float(v) for k, v in reference_distribution.items()},
        "n_groups": None if n_groups is None else int(n_groups), "random_state": int(random_state),
        "group_search": "done" if search_groups else ("off (n_groups=0)" if n_groups == 0 else
                                                      f"skipped: {len(rows)} scored samples < 2 x min_size"),
        "min_size": int(min_size), "alpha": float(alpha), "bins": int(bins), "crosses": bool(crosses),
        "max_cross_parents": int(max_cross_parents),
        "predictions": f"argmax of {PROBS_FIELD!r} (K-fold, out-of-sample) where present, else "
                       f"{PREDICTION_FIELD!r} (final model, samples it never trained on)",
        "fields": ([*IMAGE_FIELDS.values()] if image_stats else []) + ([GROUP_FIELD] if search_groups else []),
    }
    report = BiasReport(label_field, tuple(classes), n, len(rows), int((~labeled).sum()),
                        int((labeled & ~scored).sum()), metrics, distribution, slices, groups,
                        {**config, "seconds": round(time.perf_counter() - started, 3)})

    # Everything is computed: now write (image statistics of the samples that lacked them, the groups, the run).
    dataset = view._dataset
    if len(computed_rows):
        write_fields(dataset, [ids[i] for i in computed_rows],
                     {IMAGE_FIELDS["brightness"]: image_columns[IMAGE_FIELDS["brightness"]][computed_rows],
                      IMAGE_FIELDS["contrast"]: image_columns[IMAGE_FIELDS["contrast"]][computed_rows],
                      IMAGE_FIELDS["width"]: image_columns[IMAGE_FIELDS["width"]][computed_rows].astype(np.int64),
                      IMAGE_FIELDS["height"]: image_columns[IMAGE_FIELDS["height"]][computed_rows].astype(np.int64)})
    if groups is not None:
        group_column = np.full(n, None, dtype=object)  # samples of the view that were not scored lose stale ids
        group_column[rows] = [int(g) for g in groups.assignments]
        write_fields(dataset, ids, {GROUP_FIELD: group_column})
    record_run(view, RUN_KEY, config, {"report": report.to_dict()})
    return report


def load_bias_report(dataset, run_key: str = RUN_KEY) -> BiasReport:
    """The report of the last ``compute_bias`` on ``dataset`` (from its run)."""
    if run_key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no bias report yet (run {run_key!r}): compute it first "
                        "(compute_bias or the Bias operator).")
    _, results = load_run(dataset, run_key)
    return BiasReport.from_dict(results["report"])


def _slice_condition(field: str, kind: str, value: Any = None, low: float | None = None, high: float | None = None):
    """The ``ViewField`` expression that matches one one-field slice."""
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
    raise InputError(f"Unknown slice kind {kind!r}; expected one of bin, value, item, missing, and.")


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
            term = _slice_condition(part["field"], part["kind"], part.get("value"), part.get("low"), part.get("high"))
            condition = term if condition is None else condition & term
        return view.match(condition)
    if stat.kind == KIND_ITEM and stat.field == "tags":
        return view.match_tags(stat.value)
    return view.match(_slice_condition(stat.field, stat.kind, stat.value, stat.low, stat.high))


# -- text ----------------------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    return "n/a" if value != value else (f"{value:.1e}" if value < 0.001 else f"{value:.3f}")


def points_vs_rest(accuracy: float | None, rest_accuracy: float | None) -> str:
    """The slice's accuracy minus the rest's, in percentage points: negative when the slice is worse ("-66.9 pts")."""
    if accuracy is None or rest_accuracy is None or accuracy != accuracy or rest_accuracy != rest_accuracy:
        return "n/a"
    return f"{100 * (accuracy - rest_accuracy):+.1f} pts"


def _slice_line(stat: SliceStat, width: int) -> str:
    line = (f"  {stat.label:<{width}}  n={stat.size:<6} acc {_fmt(stat.accuracy)} [{_fmt(stat.ci_low)}, "
            f"{_fmt(stat.ci_high)}], {points_vs_rest(stat.accuracy, stat.rest_accuracy)} vs rest "
            f"({_fmt(stat.rest_accuracy)})  p_holm={_fmt_p(stat.p_adjusted)}")
    if stat.composition:
        line += "  mostly " + ", ".join(f"{c} {share:.0%}" for c, share in stat.composition)
    return line


def _ranked(title: str, stats: Sequence[SliceStat], num_tested: int, alpha: float, top: int) -> list[str]:
    significant = [s for s in stats if s.significant]
    if significant:
        lines = [f"{title}: {len(significant)} of {num_tested} tested are significantly worse than the rest "
                 f"(one-sided Fisher exact, Holm, alpha {alpha}):"]
        shown = significant[:top]
    else:
        lines = [f"{title}: none of {num_tested} tested is significantly worse than the rest (alpha {alpha})"
                 + ("; the weakest:" if stats else ".")]
        shown = list(stats[:min(top, 3)])
    width = max((len(s.label) for s in shown), default=0)
    return lines + [_slice_line(s, width) for s in shown]


def format_bias_report(report: BiasReport, top: int = 5) -> str:
    """A short text report: accuracy, worst classes by F1, worst slices and groups with their intervals."""
    metrics = report.metrics
    lines = [
        f"Bias report over {report.num_scored} scored samples of {report.num_samples} "
        f"(label field {report.label_field!r}; {report.num_unlabeled} unlabeled"
        + (f", {report.num_unscored} labeled without model outputs: rerun `curation model`" if report.num_unscored
           else "") + ")",
        f"Out-of-sample accuracy {_fmt(metrics.accuracy)}; macro F1 {_fmt(metrics.macro_f1)}, "
        f"weighted F1 {_fmt(metrics.weighted_f1)}",
    ]
    verdict = model_trust(metrics.accuracy)
    if not verdict.trusted:  # per-class and per-slice gaps then say more about the model than about the data
        lines.append(verdict.message)
    worst = metrics.worst_classes(min(top, 3))
    parts = []
    for name in worst:
        i = metrics.classes.index(name)
        parts.append(f"{name} F1 {_fmt(metrics.f1[i], 2)} (precision {_fmt(metrics.precision[i], 2)}, recall "
                     f"{_fmt(metrics.recall[i], 2)}, n={int(metrics.support[i])})")
    lines.append("Worst classes by F1: " + "; ".join(parts))
    distribution = report.distribution
    balance = f"Class balance: imbalance ratio {_fmt(distribution.imbalance_ratio, 2)} (largest / smallest class)"
    if distribution.missing_classes:
        balance += f"; no samples of {', '.join(distribution.missing_classes[:5])}"
    lines.append(balance)
    if distribution.reference is not None:
        order = np.argsort(-np.abs(distribution.difference))[:3]
        diffs = ", ".join(f"{distribution.classes[i]} {distribution.difference[i]:+.3f}" for i in order)
        lines.append(f"  vs the reference: chi-square {_fmt(distribution.chi2, 2)}, p={_fmt_p(distribution.p_value)}"
                     f"{'' if distribution.chi2_reliable else ' (some expected counts < 5: rough)'}; "
                     f"largest differences in fraction: {diffs}")
    slices = report.slices
    title = f"Slices of {', '.join(slices.fields)}"
    if slices.crosses:
        title += f" ({slices.num_tested - slices.num_crossed} one-field, {slices.num_crossed} crossed)"
    lines += _ranked(title, slices.slices, slices.num_tested, slices.alpha, top)
    if report.groups is not None:
        groups = report.groups
        lines += _ranked(f"Embedding groups ({groups.n_groups}, field {groups.field!r})", groups.groups,
                         len(groups.groups), groups.alpha, top)
    return "\n".join(lines)
