"""Read arrays from FiftyOne views and write per-sample results back in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
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
            f"Classification fields: {candidates or 'none'}. Set `label_field` to one of them."
        )
    if getattr(schema[label_field], "document_type", None) is not fo.Classification:
        raise DataError(f"Field {label_field!r} is not a Classification field.")


def label_indices(labels: Sequence[str | None], classes: Sequence[str], field: str) -> np.ndarray:
    """Class indices of ``labels`` in ``classes`` (-1 where a sample has no label): the one label reader.

    Raises:
        DataError: a label is not in the class list (naming up to five of them and how to fix it).
    """
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels if label is not None and label not in index})
    if unknown:
        raise DataError(
            f"Labels {unknown[:5]} in {field!r} are not in the class list {list(classes)[:10]}: "
            f"fix the labels or add the classes to dataset.classes[{field!r}]."
        )
    return np.asarray([index[label] if label is not None else -1 for label in labels], dtype=np.int64)


def view_labels(collection, label_field: str, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray,
                                                                                              list[str]]:
    """Every sample's id and class index in ``label_field`` (-1: no label), and the class list used."""
    check_label_field(collection, label_field)
    classes = list(classes) if classes is not None else get_classes(collection, label_field)
    ids, labels = collection.values(["id", f"{label_field}.label"])
    return list(ids), label_indices(labels, classes, label_field), classes


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
    indices = label_indices(labels, classes, label_field)
    keep = [i for i, label in enumerate(labels) if label is not None]
    if not keep:
        raise DataError(f"No sample in the view has a label in {label_field!r}.")
    return LabeledArrays(
        sample_ids=[ids[i] for i in keep],
        filepaths=[paths[i] for i in keep],
        labels=indices[keep],
        classes=classes,
        num_unlabeled=len(labels) - len(keep),
    )


def write_fields(dataset, sample_ids: Sequence[str], values: Mapping[str, Sequence | np.ndarray],
                 batch_size: int = 10_000) -> None:
    """Write one value per sample for each field, all fields of a sample in one update, keyed by sample id.

    FiftyOne's ``set_values`` makes one bulk write per field; a check writes 3-5 fields, so we declare each
    field's type through ``set_values`` on one sample, then send one unordered bulk write whose updates set
    all fields of a sample at once (``benchmarks/writeback.py`` measures the difference). NaN becomes None.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    columns: dict[str, list] = {}
    for field_name, column in values.items():
        column = column.tolist() if isinstance(column, np.ndarray) else list(column)
        if len(column) != len(sample_ids):
            raise DataError(f"{len(column)} values for {len(sample_ids)} samples in field {field_name!r}.")
        columns[field_name] = [None if isinstance(v, float) and v != v else v for v in column]
    if not sample_ids or not columns:
        return
    serializers = {}
    for field_name, column in columns.items():
        first = next((i for i, v in enumerate(column) if v is not None), None)
        if first is None:
            dataset.set_values(field_name, dict(zip(sample_ids, column)), key_field="id")  # all None: let FiftyOne
            continue
        dataset.set_values(field_name, {sample_ids[first]: column[first]}, key_field="id")  # declares the type
        serializers[field_name] = dataset.get_field(field_name).to_mongo
    if not serializers:
        return
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    names = list(serializers)
    for start in range(0, len(sample_ids), batch_size):
        ops = []
        for row in range(start, min(start + batch_size, len(sample_ids))):
            update = {name: (serializers[name](columns[name][row]) if columns[name][row] is not None else None)
                      for name in names}
            update["last_modified_at"] = now
            ops.append(UpdateOne({"_id": ObjectId(sample_ids[row])}, {"$set": update}))
        dataset._sample_collection.bulk_write(ops, ordered=False)
    _reload_samples(dataset, sample_ids)


def _reload_samples(dataset, sample_ids: Sequence[str]) -> None:
    """Refresh in-memory Sample objects of ``dataset`` that FiftyOne may hold for these ids."""
    import fiftyone.core.sample as fos

    fos.Sample._reload_docs(dataset._sample_collection_name, sample_ids=list(sample_ids))
