"""The read stage of a drift report: the fixed model's outputs (and labels) of the reference and of each target.

``drift_views(dataset, reference, target)`` resolves the view specs (``curation_checks.drift.views``);
``read_drift_inputs(dataset, views, settings)`` reads ``model_embedding`` and ``model_probs`` for every sample of
both sides, refusing missing or inconsistent outputs with a message that names what computes them; with a label
field, the reference labels (for BBSE) and the target labels (counted) through the one label reader,
``active_learning.store.fields.label_indices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from active_learning.errors import DataError
from active_learning.model.outputs import PROBS_FIELD
from active_learning.store.fields import get_classes, label_indices
from active_learning.model.model_run import load_model_run
from curation_checks.drift import stats as drift
from curation_checks.drift.settings import DriftSettings
from curation_checks.drift.views import ViewSpec, parse_view_spec, resolve_views

FILL_HINT = ("give the others the final model's outputs: `fill=True` (the default of run_drift) does it first, or "
             "call curation_checks.model_outputs.fill_model_outputs(dataset)")


@dataclass(frozen=True)
class DriftSide:
    """One side of the comparison: the reference or one target batch, its samples' model outputs and labels."""

    name: str
    ids: list[str]
    embeddings: np.ndarray
    probs: np.ndarray
    labels: np.ndarray  # class index per sample, -1 where unlabeled (all -1 without a label field)

    @property
    def labeled(self) -> np.ndarray:
        """Whether each sample has a label."""
        return self.labels >= 0


@dataclass(frozen=True)
class DriftViews:
    """The two sides as FiftyOne views: the reference and one ``(batch name, view)`` per target batch."""

    reference_spec: ViewSpec
    target_spec: ViewSpec
    reference: Any
    targets: list[tuple[str, Any]]

    def describe(self, name: str) -> str:
        """How messages name a target batch."""
        return f"the target batch {name!r}" if self.target_spec.kind == "batch" else f"the target ({name})"


def drift_views(dataset, reference: str | ViewSpec, target: str | ViewSpec) -> DriftViews:
    """Parse and resolve the specs (``curation_checks.drift.views``): cheap, so a bad spec fails before any work.

    Raises:
        InputError: specs that do not parse.
        DataError: see ``resolve_views`` (unknown fields, empty or too small sides, overlaps).
    """
    reference_spec, target_spec = parse_view_spec(reference), parse_view_spec(target)
    reference_view, targets = resolve_views(dataset, reference_spec, target_spec)
    return DriftViews(reference_spec, target_spec, reference_view, list(targets))


@dataclass(frozen=True)
class DriftInputs:
    """What the read stage hands to the compute stage."""

    reference_spec: ViewSpec
    target_spec: ViewSpec
    reference: DriftSide
    targets: list[DriftSide]
    classes: list[str]
    has_labels: bool  # a label field was given: BBSE runs
    num_reference_trained_on: int | None


def missing_outputs_message(count: int, total: int, what: str, field_name: str, dataset_name: str) -> str:
    """Why samples lack a model output, and what gives them one."""
    if field_name == PROBS_FIELD:
        how = "`curation model` gives out-of-sample probabilities only to labelled samples it trains on"
    else:
        how = f"`curation model {dataset_name}` embeds the samples of the view it runs on"
    return f"{count} of the {total} samples of {what} have no {field_name!r}: {how}; {FILL_HINT}."


def read_outputs(view, what: str, settings: DriftSettings, width: dict[str, int]) -> tuple[list[str], np.ndarray,
                                                                                          np.ndarray]:
    """Ids, embeddings and probabilities of ``view``; every row present and as wide as the other side's."""
    ids, embeddings, probs = view.values(["id", settings.embedding_field, settings.probs_field])
    name = view._dataset.name
    for field_name, rows in ((settings.embedding_field, embeddings), (settings.probs_field, probs)):
        missing = sum(r is None for r in rows)
        if missing:
            raise DataError(missing_outputs_message(missing, len(rows), what, field_name, name))
        lengths = {len(r) for r in rows}
        expected = width.setdefault(field_name, next(iter(lengths)))
        if lengths != {expected}:
            raise DataError(f"The {field_name!r} rows of {what} have lengths {sorted(lengths | {expected})}: they come "
                            f"from different models. Recompute the model outputs (`curation model {name}`).")
    return list(ids), np.asarray(embeddings, dtype=np.float64), np.asarray(probs, dtype=np.float64)


def model_classes(dataset, width: int) -> list[str]:
    """The model run's class names when they fit the probabilities, else ``0, 1, ...``."""
    run = load_model_run(dataset)
    if run is not None and len(run.classes) == width:
        return list(run.classes)
    return [str(i) for i in range(width)]


def trained_on(dataset, reference_ids: Sequence[str]) -> int | None:
    """How many reference samples were labelled members of the view the final model (run curation_model) trained on."""
    run = load_model_run(dataset)
    if run is None or not run.label_field or dataset.get_field(run.label_field) is None:
        return None
    trained = dataset.load_run_view(run.run_key).exists(f"{run.label_field}.label").values("id")
    return len(set(trained).intersection(reference_ids))


def reference_class_list(dataset, reference_view, label_field: str, num_classes: int) -> list[str]:
    """The label field's class list on the reference; it must have one class per probability column."""
    import fiftyone as fo

    schema = dataset.get_field_schema()
    if label_field not in schema:
        candidates = [n for n, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
        raise DataError(f"Dataset {dataset.name!r} has no field {label_field!r} for the reference labels; "
                        f"Classification fields: {candidates or 'none'}. Pass `label_field=` one of them, or "
                        "`label_field=None` to skip the label-shift estimate.")
    if getattr(schema[label_field], "document_type", None) is not fo.Classification:
        raise DataError(f"Field {label_field!r} is not a Classification field; pass the field of the reference "
                        "labels, or `label_field=None` to skip the label-shift estimate.")
    classes = get_classes(reference_view, label_field)
    if len(classes) != num_classes:
        raise DataError(f"The class list of {label_field!r} on the reference ({len(classes)} classes: "
                        f"{classes[:10]}) does not match the {num_classes} columns of the model probabilities: the "
                        f"class lists differ. Set dataset.classes[{label_field!r}] to the model's classes, or "
                        "recompute the model outputs (`curation model`) with this class list.")
    return list(classes)


def target_labels(view, what: str, label_field: str, classes: Sequence[str]) -> np.ndarray:
    """A target's class indices; a label outside the reference's class list means the class lists differ."""
    labels = view.values(f"{label_field}.label")
    known = set(classes)
    unknown = sorted({str(v) for v in labels if v is not None and v not in known})
    if unknown:
        raise DataError(f"{what[:1].upper()}{what[1:]} has labels {unknown[:5]} in {label_field!r} that are "
                        f"not in the reference's class list {list(classes)[:10]}: the class lists differ, and the "
                        "model cannot predict those classes. Add them to the reference and retrain "
                        "(`curation model`), or leave those samples out of the target.")
    return label_indices(labels, classes, label_field)


def read_drift_inputs(dataset, views: DriftViews, settings: DriftSettings) -> DriftInputs:
    """Read everything a drift report needs from the two sides; nothing is written.

    Raises:
        DataError: missing or inconsistent model outputs (the message names what computes them); a label field or
            class list that does not fit the probabilities; too few labelled reference samples for the label-shift
            estimate.
    """
    reference_spec, reference_view, targets, describe = (views.reference_spec, views.reference, views.targets,
                                                          views.describe)
    schema = dataset.get_field_schema()
    for field_name in (settings.embedding_field, settings.probs_field):
        if field_name not in schema:
            raise DataError(f"Dataset {dataset.name!r} has no {field_name!r}: run `curation model {dataset.name}` "
                            "first (it trains the fixed model and stores its embeddings and probabilities), then "
                            "curation_checks.model_outputs.fill_model_outputs(dataset) for samples it did not cover.")

    width: dict[str, int] = {}
    reference_data = read_outputs(reference_view, f"the reference ({reference_spec})", settings, width)
    target_data = [(name, *read_outputs(view, describe(name), settings, width)) for name, view in targets]
    num_classes = width[settings.probs_field]

    label_field = settings.label_field
    reference_labels = np.full(len(reference_data[0]), -1, dtype=np.int64)
    labels_of_targets = [np.full(len(ids), -1, dtype=np.int64) for _, ids, _, _ in target_data]
    if label_field is not None:
        classes = reference_class_list(dataset, reference_view, label_field, num_classes)
        reference_labels = label_indices(reference_view.values(f"{label_field}.label"), classes, label_field)
        labeled = int((reference_labels >= 0).sum())
        if labeled < drift.MIN_SAMPLES:
            raise DataError(f"The reference ({reference_spec}) has {labeled} samples labelled in {label_field!r}; the "
                            f"label-shift estimate needs at least {drift.MIN_SAMPLES}. Label more reference samples, "
                            "or pass `label_field=None` to skip the estimate.")
        labels_of_targets = [target_labels(view, describe(name), label_field, classes) for name, view in targets]
    else:
        classes = model_classes(dataset, num_classes)
    return DriftInputs(
        reference_spec, views.target_spec, DriftSide(str(reference_spec), *reference_data, reference_labels),
        [DriftSide(*data, labels) for data, labels in zip(target_data, labels_of_targets)], list(classes),
        label_field is not None, trained_on(dataset, reference_data[0]))
