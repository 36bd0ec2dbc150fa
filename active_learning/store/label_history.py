"""Changing human labels safely: every change keeps the old value and who/what/when/why, and can be undone.

History lives in the sample field ``label_history``: a list of dicts, newest last, each
``{field, old, new, who, when, why, source, change}``. ``old``/``new`` are label strings (None = no label);
``change`` names the ``set_labels`` call (one "Accept suggested label", one ingest, ...) and sorts by time. An undo
is a change of its own (``source`` ``undo``) whose entries name the change they revert in ``undoes``, so the
reverted label stays recorded and a second undo walks back to the change before (``undo_last_change``).
The review queue is the sample field ``review_status`` (``queued`` -> ``pushed`` -> ``done``) with
``review_reason`` and ``review_queued_at``; the active-learning loop pushes queued samples to Label Studio.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from bson import ObjectId

from active_learning.errors import DataError
from active_learning.store.runs import now_utc, who
from active_learning.store.fields import check_label_field, get_classes

HISTORY_FIELD = "label_history"
REVIEW_STATUS_FIELD = "review_status"
REVIEW_REASON_FIELD = "review_reason"
REVIEW_QUEUED_AT_FIELD = "review_queued_at"
UNDO_SOURCE = "undo"


def set_labels(
    dataset,
    new_labels: Mapping[str, str],
    label_field: str = "ground_truth",
    why: str = "",
    source: str = "manual",
    user: str | None = None,
    undoes: Mapping[str, str] | None = None,
) -> int:
    """Set ``label_field`` of the given samples (id -> class name), appending each change to ``label_history``.

    Samples whose label already equals the new one are left alone (so a repeat is a no-op). All entries of one call
    share one ``change`` id; ``undoes`` (sample id -> the change it reverts) is for ``undo_last_change``.
    Each sample's label and history entry are one document update, all sent as one bulk write
    (:func:`write_sample_updates`): a crash leaves every sample either changed with its entry or as it was. A sample
    whose label another writer changed between our read and our write is left alone (not counted).
    Returns the number of samples changed.

    Raises:
        DataError: an unknown class, an unknown sample id, or a label field that is not a Classification.
    """
    if not new_labels:
        return 0
    check_label_field(dataset, label_field)
    check_classes(dataset, label_field, new_labels.values())
    ids, current = dataset.select(list(new_labels)).values(["id", f"{label_field}.label"])
    missing = set(new_labels) - set(ids)
    if missing:
        raise DataError(f"{len(missing)} sample ids are not in dataset {dataset.name!r}; nothing was changed.")
    when = now_utc()
    user = user or who()
    change = new_change_id()
    updates: list[SampleUpdate] = []
    for sample_id, old in zip(ids, current):
        new = new_labels[sample_id]
        if old == new:
            continue
        entry = history_entry(label_field, old, new, user, when, why, source, change,
                              undoes=(undoes or {}).get(sample_id))
        updates.append(SampleUpdate(sample_id, expected_label=old, new_label=new, history_entry=entry))
    return write_sample_updates(dataset, label_field, updates)


def check_classes(dataset, label_field: str, labels: Iterable[str]) -> None:
    """Raise ``DataError`` when a label is not in the class list of ``label_field``."""
    classes = set(get_classes(dataset, label_field))
    unknown = sorted({label for label in labels if label not in classes})
    if unknown:
        raise DataError(f"Classes {unknown[:5]} are not in the class list of {label_field!r}; nothing was changed.")


def history_entry(label_field: str, old: str | None, new: str, user: str, when: str, why: str, source: str,
                  change: str, undoes: str | None = None) -> dict:
    """One ``label_history`` entry: ``{field, old, new, who, when, why, source, change}`` (and ``undoes``)."""
    entry = {"field": label_field, "old": old, "new": new, "who": user, "when": when, "why": why, "source": source,
             "change": change}
    if undoes:
        entry["undoes"] = undoes
    return entry


@dataclass(frozen=True)
class SampleUpdate:
    """Everything one sample gets in one write: a label change with its history entry, and other fields.

    Attributes:
        sample_id: the sample.
        expected_label: its label as read before the write (None: no label). The update applies only while the
            sample still has it, so the history's ``old`` is always the label that was replaced.
        new_label: the label to set (None: the label stays).
        history_entry: the entry appended to ``label_history`` with the new label (see :func:`history_entry`).
        fields: other top-level sample fields to set, as plain values (strings, numbers, lists, dicts), e.g. the
            Label Studio provenance and the review status.
    """

    sample_id: str
    expected_label: str | None
    new_label: str | None = None
    history_entry: Mapping[str, Any] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


def write_sample_updates(dataset, label_field: str, updates: Sequence[SampleUpdate]) -> int:
    """Apply ``updates`` as ONE bulk write of one document update per sample; returns how many applied.

    MongoDB applies each document update atomically, so whatever happens to this process (kill -9 included),
    each sample has either all of its update (label, history entry, fields, ``last_modified_at``) or none of it;
    the bulk is unordered (samples are independent). A sample whose label is no longer ``expected_label`` is not
    updated. New fields are declared in the dataset's schema first, with the types ``set_values`` would give
    them. The label is stored as FiftyOne stores a Classification (the field's own serialisation, a new ``_id``);
    the history entry is appended even where ``label_history`` is missing or null.
    """
    import fiftyone as fo
    from pymongo import UpdateOne
    from pymongo.errors import BulkWriteError

    from active_learning.store.faults import pause_point

    if not updates:
        return 0
    dataset = dataset._dataset  # the samples' own collection, whatever view they were picked from
    _declare_fields(dataset, updates)
    label_type = dataset.get_field(label_field)
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # as FiftyOne writes last_modified_at: naive UTC
    operations = []
    for update in updates:
        values: dict[str, Any] = {name: {"$literal": value} for name, value in update.fields.items()}
        if update.new_label is not None:
            values[label_field] = {"$literal": label_type.to_mongo(fo.Classification(label=update.new_label))}
        if update.history_entry is not None:
            values[HISTORY_FIELD] = {"$concatArrays": [{"$ifNull": [f"${HISTORY_FIELD}", []]},
                                                       [{"$literal": dict(update.history_entry)}]]}
        if not values:
            continue
        values["last_modified_at"] = {"$literal": now}
        # An update pipeline: $concatArrays appends to a null history too, where $push would fail.
        operations.append(UpdateOne({"_id": ObjectId(update.sample_id),
                                     f"{label_field}.label": update.expected_label}, [{"$set": values}]))
    if not operations:
        return 0
    pause_point("labels:before-bulk-write")
    try:
        result = dataset._sample_collection.bulk_write(operations, ordered=False)
    except BulkWriteError as error:  # e.g. a label_history that is not a list: those samples stay as they were
        dataset.reload()
        failed = error.details.get("writeErrors") or [{}]
        raise DataError(f"{len(failed)} of {len(operations)} samples could not be updated (the others were): "
                        f"{failed[0].get('errmsg', error)}") from error
    pause_point("labels:after-bulk-write")
    dataset.reload()
    return int(result.matched_count)


def _declare_fields(dataset, updates: Sequence[SampleUpdate]) -> None:
    """Add the fields ``updates`` write that the schema lacks (before any value is written)."""
    from fiftyone.core.odm.utils import get_implied_field_kwargs

    examples: dict[str, Any] = {}
    for update in updates:
        if update.history_entry is not None:
            examples.setdefault(HISTORY_FIELD, [dict(update.history_entry)])
        for name, value in update.fields.items():
            if value is not None:
                examples.setdefault(name, value)
    if set(examples) - set(dataset.get_field_schema()):
        dataset.reload()  # another process may have declared them since this dataset object was loaded
        schema = dataset.get_field_schema()
        for name, value in examples.items():
            if name not in schema:
                dataset.add_sample_field(name, **get_implied_field_kwargs(value))


def new_change_id() -> str:
    """A new change id: the time in nanoseconds first, so that ids sort by when the change was made."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class UndoResult:
    """What ``undo_last_change`` reverted: per sample the label it had and the one it has again."""

    reverted: dict[str, tuple[str, str]] = field(default_factory=dict)  # sample id -> (label undone, label back)
    skipped: int = 0  # samples of the change relabeled since (or never labeled before it): left as they are
    change: dict | None = None  # who, when, why and source of the reverted change (the whole-dataset undo)

    @property
    def num_reverted(self) -> int:
        """How many samples got their previous label back."""
        return len(self.reverted)

    @property
    def transitions(self) -> list[tuple[str, str, int]]:
        """``(label undone, label back, samples)``, the most frequent first."""
        counts = Counter(self.reverted.values())
        return [(undone, back, n) for (undone, back), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def describe(self) -> str:
        """E.g. ``3 samples: b → a (2), c → a (1)``."""
        pairs = ", ".join(f"{undone} → {back} ({n})" for undone, back, n in self.transitions)
        return f"{self.num_reverted} sample{'s' if self.num_reverted != 1 else ''}: {pairs}"


def _change_key(entry: Mapping) -> str:
    """The change an entry belongs to (entries from before change ids: its time, who, source and why)."""
    return entry.get("change") or "|".join(str(entry.get(k)) for k in ("when", "who", "source", "why"))


def _order(entry: Mapping) -> tuple[str, str]:
    return str(entry.get("when") or ""), str(entry.get("change") or "")


def _standing_entries(history: Sequence[Mapping] | None, label_field: str) -> list[Mapping]:
    """The entries of ``label_field`` that still stand: neither undos nor changes an undo reverted, oldest first."""
    entries = [h for h in history or [] if h.get("field") == label_field]
    undone = {h["undoes"] for h in entries if h.get("undoes")}
    return [h for h in entries if h.get("source") != UNDO_SOURCE and _change_key(h) not in undone]


def _revertible(entry: Mapping | None, current: str | None, standing: Sequence[Mapping]) -> bool:
    """Whether undoing ``entry`` loses nothing: it is the sample's latest standing change, the label is still the
    one it set, and there was a label before it."""
    return (entry is not None and bool(standing) and standing[-1] is entry and current == entry.get("new")
            and entry.get("old") is not None)


def undo_last_change(dataset, sample_ids: Sequence[str] | None = None, label_field: str = "ground_truth",
                     user: str | None = None, source: str | None = None) -> UndoResult:
    """Revert the most recent change of ``label_field``, itself recorded as a change (``source`` ``undo``).

    Without ``sample_ids``: the most recent change of the dataset (every sample one ``set_labels`` call changed,
    e.g. one "Accept suggested label"), of ``source`` only when given. With ``sample_ids``: each sample's own most
    recent change. A change already undone is passed over, so undoing again walks back to the change before; the
    undone label stays in ``label_history``. A sample whose label changed again since (or had none before) is left
    as it is and counted in ``skipped``: an undo never overwrites a later label.

    Raises:
        DataError: the label to go back to is no longer in the class list (nothing is changed).
    """
    if HISTORY_FIELD not in dataset.get_field_schema():
        return UndoResult()
    view = dataset.exists(HISTORY_FIELD) if sample_ids is None else dataset.select(list(sample_ids))
    ids, current, histories = view.values(["id", f"{label_field}.label", HISTORY_FIELD])
    standing = {i: _standing_entries(h, label_field) for i, h in zip(ids, histories)}
    labels = dict(zip(ids, current))
    targets: dict[str, Mapping] = {}
    skipped = 0
    change = None
    if sample_ids is None:
        candidates = [e for entries in standing.values() for e in entries
                      if source is None or e.get("source") == source]
        by_key: dict[str, list[tuple[str, Mapping]]] = {}
        for sample_id, entries in standing.items():
            for entry in entries:
                by_key.setdefault(_change_key(entry), []).append((sample_id, entry))
        # The newest change with a sample left to revert (changes wholly relabeled since are history).
        for entry in sorted(candidates, key=_order, reverse=True):
            members = by_key[_change_key(entry)]
            ok = {i: e for i, e in members if _revertible(e, labels[i], standing[i])}
            if ok:
                targets, skipped = ok, len(members) - len(ok)
                change = {k: entry.get(k) for k in ("when", "who", "why", "source", "change")}
                break
    else:
        for sample_id, entries in standing.items():
            last = entries[-1] if entries else None
            if last is None or (source is not None and last.get("source") != source):
                continue
            if _revertible(last, labels[sample_id], entries):
                targets[sample_id] = last
            else:
                skipped += 1
    if not targets:
        return UndoResult(skipped=skipped)
    set_labels(dataset, {i: e["old"] for i, e in targets.items()}, label_field, why="undo", source=UNDO_SOURCE,
               user=user, undoes={i: _change_key(e) for i, e in targets.items()})
    return UndoResult(reverted={i: (e["new"], e["old"]) for i, e in targets.items()}, skipped=skipped,
                      change=change)


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
