"""The read stage of a bias report: labels, out-of-sample predictions, slice values and embeddings of a view.

``read_bias_inputs(view, settings)`` validates what the view holds and reads it in one query; image statistics are
read back where stored and computed from the files where any is missing (written later, by the write stage).

Which predictions count: labeled samples with ``model_probs`` (K-fold, out-of-sample) are scored by its argmax;
labeled samples without it but with ``model_prediction`` (test samples, predicted by the final model that never
trained on them) by that label. Labeled samples with neither are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from active_learning.errors import DataError
from active_learning.model.outputs import EMBEDDING_FIELD, PREDICTION_FIELD, PROBS_FIELD
from active_learning.store.fields import check_label_field, get_classes, label_indices
from curation_checks.bias.distribution import reference_fractions
from curation_checks.bias.images import IMAGE_FIELDS, read_image_statistics
from curation_checks.bias.settings import BiasSettings
from curation_checks.bias.slice_search import object_array

PER_SAMPLE_FIELDS = frozenset({"id", "_id", "filepath", "created_at", "last_modified_at"})
UNIQUE_VALUES_MIN_SAMPLES = 20  # a text field with a distinct value on at least this many samples is an identifier


@dataclass(frozen=True)
class BiasInputs:
    """What the read stage hands to the compute stage; rows are the samples of the view.

    ``scored_rows`` are the labeled samples with an out-of-sample prediction; ``embeddings`` holds their rows (None
    without the group search). ``computed_image_rows`` are the samples whose image statistics came from the files
    (the write stage stores them).
    """

    ids: list[str]
    classes: list[str]
    labels: np.ndarray  # class index per sample, -1 where unlabeled
    predicted: np.ndarray  # predicted class index per sample, -1 without model outputs
    slice_fields: list[str]
    slice_columns: dict[str, np.ndarray]  # field -> one value per sample (image statistics as floats)
    image_columns: dict[str, np.ndarray]  # image statistics field -> one float per sample
    computed_image_rows: np.ndarray
    scored_rows: np.ndarray
    embeddings: np.ndarray | None
    group_search: str  # "done", "off (n_groups=0)" or why the automatic search was skipped

    @property
    def labeled(self) -> np.ndarray:
        """Whether each sample has a label."""
        return self.labels >= 0

    @property
    def searches_groups(self) -> bool:
        """Whether the embedding-group search runs."""
        return self.embeddings is not None


def available_fields(schema: Mapping[str, Any]) -> list[str]:
    """The fields a message may suggest to slice by (not the model's vectors)."""
    hidden = {PROBS_FIELD, EMBEDDING_FIELD}
    return sorted(n for n in schema if not n.startswith("_") and n.split(".")[0] not in hidden)


def is_document(field: Any) -> bool:
    """Whether a schema field holds embedded documents (``metadata``, a label), which slices cannot compare."""
    import fiftyone.core.fields as fof

    return isinstance(field, fof.EmbeddedDocumentField)


def is_label(field: Any) -> bool:
    """A label document (``ground_truth``): the slicer itself says to use its ``.label``."""
    import fiftyone.core.labels as fol

    document_type = getattr(field, "document_type", None)
    return isinstance(document_type, type) and issubclass(document_type, fol.Label)


def resolve_slice_fields(settings: BiasSettings, schema: Mapping[str, Any]) -> list[str]:
    """The fields to slice by: the settings' own, or the image statistics, ``tags`` and the label; each checked."""
    image_fields = list(IMAGE_FIELDS.values()) if settings.image_stats else []
    if settings.slice_fields is None:
        return image_fields + ["tags", f"{settings.label_field}.label"]
    fields = list(settings.slice_fields)
    unknown = [f for f in fields if f not in schema and f not in image_fields]
    if unknown:
        hint = " (image statistics fields exist only with `image_stats=True`)" if any(
            f in IMAGE_FIELDS.values() for f in unknown) else ""
        raise DataError(f"Slice fields {unknown} are not fields of the view{hint}; available: "
                        f"{', '.join(available_fields(schema))}.")
    documents = [f for f in fields if is_document(schema.get(f)) and not is_label(schema.get(f))]
    if documents:
        inner = sorted(n for n in schema if n.startswith(f"{documents[0]}.") and not is_document(schema[n]))
        raise DataError(f"Slice field {documents[0]!r} holds documents, not values to group samples by: slice by "
                        f"one of its values instead ({', '.join(inner[:6]) or 'none found'}).")
    per_sample = [f for f in fields if f in PER_SAMPLE_FIELDS]
    if per_sample:
        raise DataError(f"Slice field {per_sample[0]!r} gives every sample a slice of its own: there is no group to "
                        "compare with the rest. Slice by a field that groups samples (a tag, a label, a camera, "
                        "an image statistic).")
    return fields


def check_slice_values(name: str, values: Sequence[Any], min_samples: int = UNIQUE_VALUES_MIN_SAMPLES) -> None:
    """Refuse a text field whose every sample has its own value (a path, an id): no slice would hold a group."""
    present = [v for v in values if isinstance(v, str)]
    if len(present) >= min_samples and len(set(present)) == len(present):
        raise DataError(f"Slice field {name!r} has a different value for every one of its {len(present)} samples "
                        "(like a path or an id): there is no group to compare with the rest. Slice by a field "
                        "that groups samples.")


def predicted_indices(probs_rows: list | None, predicted_labels: list, classes: Sequence[str]) -> np.ndarray:
    """Predicted class index per sample (-1 without model outputs): argmax of model_probs, else model_prediction."""
    k = len(classes)
    fallback = [label if probs_rows is None or probs_rows[row] is None else None
                for row, label in enumerate(predicted_labels)]
    known = set(classes)
    unknown = sorted({str(v) for v in fallback if v is not None and v not in known})
    if unknown:
        raise DataError(f"{PREDICTION_FIELD!r} holds {unknown[0]!r}, which is not in the class list "
                        f"{list(classes)[:10]}: recompute the model outputs (`curation model`).")
    out = label_indices(fallback, classes, PREDICTION_FIELD)
    for row, probs in enumerate(probs_rows or []):
        if probs is None:
            continue
        if len(probs) != k:
            raise DataError(f"{PROBS_FIELD!r} rows have {len(probs)} values but the class list has {k} classes: "
                            "recompute the model outputs (`curation model`) with the current classes.")
        array = np.asarray(probs, dtype=np.float64)
        if not np.isfinite(array).all():
            raise DataError(f"{PROBS_FIELD!r} holds NaN or infinite values; recompute the model outputs.")
        out[row] = int(array.argmax())
    return out


def read_image_columns(columns: Mapping[str, list], paths: Sequence[str]) -> tuple[dict[str, np.ndarray],
                                                                                   np.ndarray]:
    """Image statistics per sample, read back where stored, computed from the files where any is missing.

    Returns the columns by field name and the rows that were computed (to be written).
    """
    n = len(paths)
    stored = {name: columns.get(field_name, [None] * n) for name, field_name in IMAGE_FIELDS.items()}
    missing = np.asarray([any(stored[name][i] is None for name in IMAGE_FIELDS) for i in range(n)], dtype=bool)
    computed_rows = np.flatnonzero(missing)
    fresh = read_image_statistics([paths[i] for i in computed_rows])
    image_columns = {}
    for name, field_name in IMAGE_FIELDS.items():
        values = np.asarray([np.nan if v is None else v for v in stored[name]], dtype=np.float64)
        values[computed_rows] = getattr(fresh, name)
        image_columns[field_name] = values
    return image_columns, computed_rows


def read_bias_inputs(view, settings: BiasSettings) -> BiasInputs:
    """Read and validate everything a bias report needs from ``view``; nothing is written.

    Raises:
        DataError: empty view, missing label field, labels outside the class list, no model outputs, unknown slice
            fields, unreadable images, values that cannot be sliced.
        InputError: a reference distribution naming unknown classes or not a distribution.
    """
    label_field = settings.label_field
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    classes = get_classes(view, label_field)
    schema = view.get_field_schema(flat=True)
    if PROBS_FIELD not in schema and PREDICTION_FIELD not in schema:
        raise DataError(f"The view has no model outputs ({PROBS_FIELD!r} / {PREDICTION_FIELD!r}): run "
                        "`curation model` (or the Compute model outputs operator) first.")
    fields = resolve_slice_fields(settings, schema)
    if settings.group_search_requested and EMBEDDING_FIELD not in schema:
        raise DataError(f"The group search needs {EMBEDDING_FIELD!r}: run `curation model` first, or pass "
                        "`n_groups=0` to skip it.")

    image_fields = list(IMAGE_FIELDS.values())
    read_paths = ["id", "filepath", f"{label_field}.label",
                  f"{PREDICTION_FIELD}.label" if PREDICTION_FIELD in schema else None,
                  PROBS_FIELD if PROBS_FIELD in schema else None,
                  EMBEDDING_FIELD if settings.group_search_requested else None,
                  *[f for f in image_fields if settings.image_stats and f in schema],
                  *[f for f in fields if f not in image_fields]]
    read_paths = list(dict.fromkeys(p for p in read_paths if p))
    columns = dict(zip(read_paths, view.values(read_paths)))
    for name in fields:
        if name in columns and name != "tags":
            check_slice_values(name, columns[name])
    ids, paths = columns["id"], columns["filepath"]
    n = len(ids)

    labels = label_indices(columns[f"{label_field}.label"], classes, label_field)
    labeled = labels >= 0
    if not labeled.any():
        raise DataError(f"No sample in the view has a label in {label_field!r}.")
    if settings.reference_distribution is not None:
        reference_fractions(settings.reference_distribution, tuple(classes))  # refuse a bad one before any file
    predicted = predicted_indices(columns.get(PROBS_FIELD), columns.get(f"{PREDICTION_FIELD}.label", [None] * n),
                                  classes)
    scored_rows = np.flatnonzero(labeled & (predicted >= 0))
    if not len(scored_rows):
        raise DataError(f"None of the {int(labeled.sum())} labeled samples of the view has model outputs: run "
                        "`curation model` (or the Compute model outputs operator) over this view first.")
    group_search = group_search_state(settings, len(scored_rows))

    image_columns, computed_rows = (read_image_columns(columns, paths) if settings.image_stats
                                    else ({}, np.zeros(0, dtype=np.int64)))
    embeddings = None
    if group_search == "done":
        vectors = [columns[EMBEDDING_FIELD][i] for i in scored_rows]
        if any(v is None for v in vectors):
            raise DataError(f"{sum(v is None for v in vectors)} scored samples have no {EMBEDDING_FIELD!r}: "
                            "recompute the model outputs over this view, or pass `n_groups=0`.")
        embeddings = np.asarray(vectors, dtype=np.float64)
    slice_columns = {name: image_columns[name] if name in image_columns else object_array(columns[name])
                     for name in fields}
    return BiasInputs(list(ids), list(classes), labels, predicted, fields, slice_columns, image_columns,
                      computed_rows, scored_rows, embeddings, group_search)


def group_search_state(settings: BiasSettings, num_scored: int) -> str:
    """Whether the group search runs: an explicit ``n_groups`` always, the automatic one with room for two groups."""
    if settings.n_groups == 0:
        return "off (n_groups=0)"
    if settings.n_groups is None and num_scored < 2 * settings.min_size:
        return f"skipped: {num_scored} scored samples < 2 x min_size"
    return "done"
