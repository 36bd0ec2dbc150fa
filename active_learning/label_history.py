"""Changing human labels safely: every change keeps the old value and who/what/when/why, and can be undone.

History lives in the sample field ``label_history``: a list of dicts, newest last, each
``{field, old, new, who, when, why, source}``. ``old``/``new`` are label strings (None = no label).
The review queue is the sample field ``review_status`` (``queued`` -> ``pushed`` -> ``done``) with
``review_reason`` and ``review_queued_at``; the active-learning loop pushes queued samples to Label Studio.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from active_learning.errors import DataError
from active_learning.runs import now_utc, who
from active_learning.views import check_label_field, get_classes

HISTORY_FIELD = "label_history"
REVIEW_STATUS_FIELD = "review_status"
REVIEW_REASON_FIELD = "review_reason"
REVIEW_QUEUED_AT_FIELD = "review_queued_at"


def set_labels(
    dataset,
    new_labels: Mapping[str, str],
    label_field: str = "ground_truth",
    why: str = "",
    source: str = "manual",
    user: str | None = None,
) -> int:
    """Set ``label_field`` of the given samples (id -> class name), appending each change to ``label_history``.

    Samples whose label already equals the new one are left alone (so a repeat is a no-op).
    Returns the number of samples changed.

    Raises:
        DataError: an unknown class, an unknown sample id, or a label field that is not a Classification.
    """
    import fiftyone as fo

    if not new_labels:
        return 0
    check_label_field(dataset, label_field)
    classes = set(get_classes(dataset, label_field))
    unknown = sorted({label for label in new_labels.values() if label not in classes})
    if unknown:
        raise DataError(f"Classes {unknown[:5]} are not in the class list of {label_field!r}; nothing was changed.")
    view = dataset.select(list(new_labels))
    has_history = HISTORY_FIELD in dataset.get_field_schema()
    columns = view.values(["id", f"{label_field}.label"] + ([HISTORY_FIELD] if has_history else []))
    ids, current = columns[0], columns[1]
    histories = columns[2] if has_history else [None] * len(ids)
    missing = set(new_labels) - set(ids)
    if missing:
        raise DataError(f"{len(missing)} sample ids are not in dataset {dataset.name!r}; nothing was changed.")
    when = now_utc()
    user = user or who()
    label_updates: dict[str, object] = {}
    history_updates: dict[str, list] = {}
    for sample_id, old, history in zip(ids, current, histories):
        new = new_labels[sample_id]
        if old == new:
            continue
        entry = {"field": label_field, "old": old, "new": new, "who": user, "when": when, "why": why,
                 "source": source}
        history_updates[sample_id] = list(history or []) + [entry]
        label_updates[sample_id] = fo.Classification(label=new)
    if label_updates:
        dataset.set_values(HISTORY_FIELD, history_updates, key_field="id")
        dataset.set_values(label_field, label_updates, key_field="id")
    return len(label_updates)


def undo_last_change(dataset, sample_ids: Sequence[str], label_field: str = "ground_truth",
                     user: str | None = None) -> int:
    """Revert the most recent change of ``label_field`` on each sample (recorded as a change of its own)."""
    view = dataset.select(list(sample_ids))
    if HISTORY_FIELD not in dataset.get_field_schema():
        return 0
    ids, histories = view.values(["id", HISTORY_FIELD])
    reverts = {}
    for sample_id, history in zip(ids, histories):
        last = next((h for h in reversed(history or []) if h.get("field") == label_field), None)
        if last is not None and last.get("old") is not None:
            reverts[sample_id] = last["old"]
    return set_labels(dataset, reverts, label_field, why="undo", source="undo", user=user)


def queue_for_review(dataset, sample_ids: Sequence[str], reason: str) -> int:
    """Put samples in the review queue (idempotent: already queued or pushed samples keep their state)."""
    if not sample_ids:
        return 0
    view = dataset.select(list(sample_ids))
    schema = dataset.get_field_schema()
    status = view.values(REVIEW_STATUS_FIELD) if REVIEW_STATUS_FIELD in schema else [None] * len(view)
    ids = view.values("id")
    new = [i for i, s in zip(ids, status) if s not in ("queued", "pushed")]
    if new:
        when = now_utc()
        dataset.set_values(REVIEW_STATUS_FIELD, {i: "queued" for i in new}, key_field="id")
        dataset.set_values(REVIEW_REASON_FIELD, {i: reason for i in new}, key_field="id")
        dataset.set_values(REVIEW_QUEUED_AT_FIELD, {i: when for i in new}, key_field="id")
    return len(new)


def review_queue(dataset):
    """The samples waiting for review (status ``queued``), oldest first."""
    from fiftyone import ViewField as F

    if REVIEW_STATUS_FIELD not in dataset.get_field_schema():
        return dataset.limit(0)
    return dataset.match(F(REVIEW_STATUS_FIELD) == "queued").sort_by(REVIEW_QUEUED_AT_FIELD)
