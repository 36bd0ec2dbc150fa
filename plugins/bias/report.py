"""Bias over a FiftyOne view, composed once: fill -> read -> compute -> write. The CLI and the App call ``run_bias``.

``run_bias(view)`` first gives samples without model outputs the final model's (``fill=True``, when the dataset has a
model run; ``curation_checks.model_outputs``), then reads the labels, out-of-sample predictions, slice values and
embeddings (``curation_checks.bias.read``), computes per-class metrics, the class distribution, the slice search
(one-field slices and, by default, crossed two-field slices such as ``ground_truth.label = 'Shirt' &
image_brightness < 0.12``) and the embedding-group search, and writes the image statistics it computed
(``image_*`` fields), each scored sample's group (``bias_group``) and the run ``bias`` (config and the whole
report). ``compute_bias`` is the same without the fill step. The settings and their defaults are
``curation_checks.bias.settings.BiasSettings``.

Everything is read and computed before anything is written: a bad input leaves no field and no run behind.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from active_learning.model.outputs import PREDICTION_FIELD, PROBS_FIELD
from active_learning.progress import ProgressCallback
from active_learning.store.fields import write_fields
from active_learning.store.runs import record_run
from curation_checks.bias.class_metrics import per_class_metrics
from curation_checks.bias.distribution import class_distribution
from curation_checks.bias.groups import GROUP_FIELD, underperforming_groups
from curation_checks.bias.images import IMAGE_FIELDS
from curation_checks.bias.read import BiasInputs, read_bias_inputs
from curation_checks.bias.result import RUN_KEY, BiasReport, load_bias_report
from curation_checks.bias.settings import BIAS_DEFAULTS, BiasSettings
from curation_checks.bias.slice_search import slice_performance
from curation_checks.bias.text import format_bias_report, points_vs_rest
from curation_checks.bias.views import slice_view
from curation_checks.model_outputs import DEFAULT_FILL, fill_model_outputs, has_model_run


def run_bias(view, settings: BiasSettings | None = None, *, fill: bool = DEFAULT_FILL, device: str | None = None,
             progress: ProgressCallback | None = None, **overrides: Any) -> BiasReport:
    """Where the model underperforms on ``view``: per class, per slice of sample fields, per embedding group.

    Args:
        view: a FiftyOne dataset or view with labels and ``curation model`` outputs.
        settings: what to compute (``BiasSettings``; None: ``BIAS_DEFAULTS``).
        fill: first give the view's samples without model outputs the final model's (only when the dataset has a
            model run); they are then scored too.
        device: where the fill step runs the model (None: CUDA when present).
        progress: called with (fraction done, what is happening).
        **overrides: settings to change, by name (e.g. ``n_groups=0``, ``min_size=10``).

    Returns:
        The report, also stored as run ``bias`` (``load_bias_report`` reads it back).

    Raises:
        DataError: empty view, missing label field, labels outside the class list, no model outputs, unknown slice
            fields, unreadable images, values that cannot be sliced.
        InputError: bad settings (e.g. a reference distribution naming unknown classes).
    """
    started = time.perf_counter()
    settings = dataclasses.replace(settings or BIAS_DEFAULTS, **overrides)
    report_progress = progress or (lambda fraction, message: None)
    num_filled = None
    if fill and has_model_run(view._dataset):
        report_progress(0.05, "model outputs for samples without them")
        num_filled = fill_model_outputs(view, device=device)
    report_progress(0.3, "reading labels, predictions and image statistics")
    inputs = read_bias_inputs(view, settings)
    report_progress(0.6, "per-class metrics, slices and embedding groups")
    report = compute_bias_report(inputs, settings, num_filled, started)
    report_progress(0.95, "writing fields and the run")
    write_bias(view, inputs, report)
    report_progress(1.0, "done")
    return report


def compute_bias(view, settings: BiasSettings | None = None, **overrides: Any) -> BiasReport:
    """``run_bias`` without the fill step: only samples that already have model outputs are scored."""
    return run_bias(view, settings, fill=False, **overrides)


def bias_config(settings: BiasSettings, inputs: BiasInputs, num_filled: int | None) -> dict:
    """The run's configuration: the settings as plain JSON, what was searched, and the fields written."""
    reference = settings.reference_distribution
    return {
        "kind": "bias", "label_field": settings.label_field, "slice_fields": inputs.slice_fields,
        "image_stats": settings.image_stats,
        "reference_distribution": None if reference is None else {str(k): float(v) for k, v in reference.items()},
        "n_groups": settings.n_groups, "random_state": settings.random_state, "group_search": inputs.group_search,
        "min_size": settings.min_size, "alpha": settings.alpha, "bins": settings.bins, "crosses": settings.crosses,
        "max_cross_parents": settings.max_cross_parents,
        "predictions": f"argmax of {PROBS_FIELD!r} (K-fold, out-of-sample) where present, else "
                       f"{PREDICTION_FIELD!r} (final model, samples it never trained on)",
        "num_filled": num_filled,
        "fields": ([*IMAGE_FIELDS.values()] if settings.image_stats else [])
        + ([GROUP_FIELD] if inputs.searches_groups else []),
    }


def compute_bias_report(inputs: BiasInputs, settings: BiasSettings, num_filled: int | None = None,
                        started: float | None = None) -> BiasReport:
    """The compute stage: metrics, class distribution, slices and groups from the arrays the read stage gave."""
    rows = inputs.scored_rows
    labels, predicted, classes = inputs.labels, inputs.predicted, inputs.classes
    correct = labels[rows] == predicted[rows]
    distribution = class_distribution(labels[inputs.labeled], classes, settings.reference_distribution)
    metrics = per_class_metrics(labels[rows], predicted[rows], classes)
    slices = slice_performance(correct, {name: column[rows] for name, column in inputs.slice_columns.items()},
                               min_size=settings.min_size, alpha=settings.alpha, bins=settings.bins,
                               numeric=[f for f in inputs.slice_fields if f in inputs.image_columns],
                               crosses=settings.crosses, max_cross_parents=settings.max_cross_parents)
    groups = None
    if inputs.searches_groups:
        groups = underperforming_groups(inputs.embeddings, correct, n_groups=settings.n_groups,
                                        min_size=settings.min_size, alpha=settings.alpha, labels=labels[rows],
                                        classes=classes, random_state=settings.random_state, field=GROUP_FIELD)
    config = bias_config(settings, inputs, num_filled)
    if started is not None:
        config["seconds"] = round(time.perf_counter() - started, 3)
    return BiasReport(settings.label_field, tuple(classes), len(inputs.ids), len(rows),
                      int((~inputs.labeled).sum()), int(inputs.labeled.sum()) - len(rows), metrics, distribution,
                      slices, groups, config)


def write_bias(view, inputs: BiasInputs, report: BiasReport) -> None:
    """The write stage: image statistics of the samples that lacked them, the groups, and the run ``bias``."""
    dataset = view._dataset
    computed = inputs.computed_image_rows
    if len(computed):
        columns = {field: inputs.image_columns[field][computed] for field in IMAGE_FIELDS.values()}
        for name in ("width", "height"):
            columns[IMAGE_FIELDS[name]] = columns[IMAGE_FIELDS[name]].astype(np.int64)
        write_fields(dataset, [inputs.ids[i] for i in computed], columns)
    if report.groups is not None:
        group_column = np.full(len(inputs.ids), None, dtype=object)  # unscored samples of the view lose stale ids
        group_column[inputs.scored_rows] = [int(g) for g in report.groups.assignments]
        write_fields(dataset, inputs.ids, {GROUP_FIELD: group_column})
    config = {k: v for k, v in report.config.items() if k != "seconds"}
    record_run(view, RUN_KEY, config, {"report": report.to_dict()})


__all__ = ["BIAS_DEFAULTS", "GROUP_FIELD", "IMAGE_FIELDS", "RUN_KEY", "BiasReport", "BiasSettings", "compute_bias",
           "compute_bias_report", "format_bias_report", "load_bias_report", "points_vs_rest", "read_bias_inputs",
           "run_bias", "slice_view", "write_bias"]
