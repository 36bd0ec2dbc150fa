"""Read arrays from FiftyOne views and write per-sample results back in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from active_learning.errors import DataError


@dataclass(frozen=True)
class LabeledArrays:
    """Labeled samples of a view: ids, file paths and class indices, plus how many had no label."""

    sample_ids: list[str]
    filepaths: list[str]
    labels: np.ndarray
    classes: list[str]
    num_unlabeled: int


def get_classes(collection, label_field: str) -> list[str]:
    """The class list of ``label_field``: the dataset's classes for it, its default classes, or the labels seen."""
    dataset = collection._dataset
    classes = dataset.classes.get(label_field) or dataset.default_classes
    if not classes:
        classes = sorted(str(c) for c in collection.distinct(f"{label_field}.label"))
    return list(classes)


def check_label_field(collection, label_field: str) -> None:
    """Raise ``DataError`` unless ``label_field`` is a Classification field of ``collection``."""
    import fiftyone as fo

    schema = collection.get_field_schema()
    if label_field not in schema:
        candidates = [n for n, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
        raise DataError(
            f"Dataset {collection._dataset.name!r} has no field {label_field!r}; "
            f"Classification fields: {candidates or 'none'}. Pass --label-field with one of them."
        )
    if getattr(schema[label_field], "document_type", None) is not fo.Classification:
        raise DataError(f"Field {label_field!r} is not a Classification field.")


def labeled_arrays(collection, label_field: str, classes: Sequence[str] | None = None) -> LabeledArrays:
    """The view's samples that have a label in ``label_field``; unlabeled ones are skipped and counted.

    Raises:
        DataError: the view is empty, the field is missing, or a label is not in the class list.
    """
    if len(collection) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(collection, label_field)
    classes = list(classes) if classes is not None else get_classes(collection, label_field)
    ids, paths, labels = collection.values(["id", "filepath", f"{label_field}.label"])
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels if label is not None and label not in index})
    if unknown:
        raise DataError(
            f"Labels {unknown[:5]} in {label_field!r} are not in the class list {classes[:10]}: "
            "fix the labels or add the classes to dataset.classes[{label_field!r}]."
        )
    keep = [i for i, label in enumerate(labels) if label is not None]
    if not keep:
        raise DataError(f"No sample in the view has a label in {label_field!r}.")
    return LabeledArrays(
        sample_ids=[ids[i] for i in keep],
        filepaths=[paths[i] for i in keep],
        labels=np.asarray([index[labels[i]] for i in keep], dtype=np.int64),
        classes=classes,
        num_unlabeled=len(labels) - len(keep),
    )


def write_fields(dataset, sample_ids: Sequence[str], values: Mapping[str, Sequence | np.ndarray]) -> None:
    """Write one value per sample for each field, in bulk, keyed by sample id."""
    for field_name, column in values.items():
        column = column.tolist() if isinstance(column, np.ndarray) else list(column)
        if len(column) != len(sample_ids):
            raise DataError(f"{len(column)} values for {len(sample_ids)} samples in field {field_name!r}.")
        column = [None if isinstance(v, float) and np.isnan(v) else v for v in column]
        dataset.set_values(field_name, dict(zip(sample_ids, column)), key_field="id")
