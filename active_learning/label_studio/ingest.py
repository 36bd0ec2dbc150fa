"""Ingestion: finished Label Studio annotations written into the dataset, with the old label and provenance kept.

``ingest`` writes each sample's label, its ``label_history`` entry (the old label is kept), its provenance in
``ls_provenance`` and its review status in one document update, all in one bulk write
(:func:`active_learning.store.label_history.write_sample_updates`), so a crash leaves no half-ingested sample;
ingesting the same annotations again changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from active_learning.label_studio.completed import CompletedTask, InvalidAnnotation
from active_learning.store.fields import check_label_field, get_classes
from active_learning.store.label_history import (REVIEW_STATUS_FIELD, SampleUpdate, check_classes, history_entry,
                                                 new_change_id, write_sample_updates)
from active_learning.store.runs import now_utc

logger = logging.getLogger(__name__)

PROVENANCE_FIELD = "ls_provenance"


@dataclass(frozen=True)
class IngestReport:
    """What ``ingest`` did.

    Attributes:
        new: samples whose Label Studio annotations were ingested now (provenance written).
        changed: of those, samples whose label changed (the old label is in ``label_history``).
        confirmed: of those, samples whose label already was the annotated one.
        unchanged: samples already ingested from the same annotations: left alone.
        invalid: annotations that do not fit the labeling config or the dataset's classes: not ingested.
        invalid_reasons: reason -> count.
        invalid_annotations: each invalid annotation with its task, sample and reason.
        cancelled: skipped (cancelled) annotations.
        skipped_tasks: tasks with only cancelled annotations.
        missing_samples: completed tasks whose sample is not in the dataset.
        marked_done: review-queue samples set to ``done``.
    """

    new: int = 0
    changed: int = 0
    confirmed: int = 0
    unchanged: int = 0
    invalid: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    invalid_annotations: tuple[InvalidAnnotation, ...] = ()
    cancelled: int = 0
    skipped_tasks: int = 0
    missing_samples: int = 0
    marked_done: int = 0


def provenance(task: CompletedTask, project_id: int, round_index: int, previous_label: str | None) -> dict:
    """The ``ls_provenance`` value for a sample labeled by ``task``."""
    return {
        "project_id": int(project_id),
        "task_id": task.task_id,
        "round": int(round_index),
        "pushed_round": task.round_index,
        "label": task.label,
        "previous_label": previous_label,
        "agreement": float(task.agreement),
        "num_votes": len(task.votes),
        "annotation_ids": task.annotation_ids,
        "annotator_ids": [vote.annotator_id for vote in task.votes],
        "annotator_emails": [vote.annotator_email for vote in task.votes],
        "votes": [vote.label for vote in task.votes],
        "completed_at": task.completed_at,
        "cancelled": task.cancelled,
        "invalid": len(task.invalid),
        "fingerprint": task.fingerprint,
        "ingested_at": now_utc(),
    }


def already_ingested(current: Any, task: CompletedTask, project_id: int) -> bool:
    """Whether a sample's provenance ``current`` records these very annotations of ``task``."""
    return (
        isinstance(current, dict)
        and current.get("project_id") == int(project_id)
        and current.get("task_id") == task.task_id
        and current.get("fingerprint") == task.fingerprint
    )


def annotators(task: CompletedTask) -> str:
    """Who labeled ``task``, for the history entry: the annotators' emails (or user ids), once each."""
    names = [vote.annotator_email or f"user {vote.annotator_id}" for vote in task.votes]
    return ", ".join(dict.fromkeys(names)) or "label-studio"


def newest_task_per_sample(completed: Sequence[CompletedTask]) -> dict[str, CompletedTask]:
    """Sample id -> its newest completed task (a sample pushed again, for review or after a skip: the newest counts)."""
    by_sample: dict[str, CompletedTask] = {}
    for task in sorted(completed, key=lambda t: t.task_id, reverse=True):
        by_sample.setdefault(task.sample_id, task)
    return by_sample


@dataclass(frozen=True)
class CurrentValues:
    """What the samples about to be ingested hold now (samples no longer in the dataset are absent)."""

    ids: list[str]
    labels: dict[str, str | None]
    provenance: dict[str, Any]
    review_status: dict[str, str | None]


def current_values(dataset, label_field: str, sample_ids: Sequence[str]) -> CurrentValues:
    """The label, provenance and review status of those ``sample_ids`` that are in the dataset."""
    schema = dataset.get_field_schema()
    ids = [sample_id for sample_id in sample_ids if ObjectId.is_valid(sample_id)]
    columns = ["id", f"{label_field}.label"] + [name for name in (PROVENANCE_FIELD, REVIEW_STATUS_FIELD)
                                                 if name in schema]
    values = dict(zip(columns, dataset.select(ids).values(columns))) if ids else {name: [] for name in columns}
    present = values["id"]
    missing = [None] * len(present)
    return CurrentValues(present, dict(zip(present, values[f"{label_field}.label"])),
                         dict(zip(present, values.get(PROVENANCE_FIELD, missing))),
                         dict(zip(present, values.get(REVIEW_STATUS_FIELD, missing))))


def sample_update(task: CompletedTask, old: str | None, review_status: str | None, label_field: str,
                  project_id: int, round_index: int, change: str, when: str) -> SampleUpdate:
    """One sample's ingest as one document update: label and history entry (if it changes), provenance, review."""
    fields: dict[str, Any] = {PROVENANCE_FIELD: provenance(task, project_id, round_index, old)}
    if review_status in ("queued", "pushed"):
        fields[REVIEW_STATUS_FIELD] = "done"
    why = f"Label Studio project {project_id}, round {round_index}"
    entry = None if old == task.label else history_entry(label_field, old, task.label, annotators(task), when, why,
                                                          "label_studio", change)
    return SampleUpdate(task.sample_id, expected_label=old, new_label=task.label if entry else None,
                        history_entry=entry, fields=fields)


def ingest(
    dataset,
    completed: Sequence[CompletedTask],
    label_field: str,
    round_index: int,
    project_id: int,
) -> IngestReport:
    """Write the annotated labels into ``label_field``, keeping the old ones, with provenance per sample.

    Every change keeps the old label in ``label_history`` (``source="label_studio"``, ``who`` the annotators; one
    ``change`` id for the whole ingest). ``ls_provenance`` records the project, task, annotation ids, annotators,
    completion time, agreement, previous label and round. A sample already ingested from the same annotations
    (same task, same annotation ids and versions) is left alone, so a second ingest changes nothing, and neither
    does it undo a later manual edit. Ingested samples in the review queue become ``done``. Each sample's label,
    history entry, provenance and review status are one document update, and all of them one bulk write: after
    a crash (kill -9 included) every sample is ingested whole or not at all, and the rerun ingests the rest once.

    Args:
        dataset: the FiftyOne dataset.
        completed: from :func:`~active_learning.label_studio.completed.fetch_completed` (its counts of invalid
            and cancelled annotations are reported).
        label_field: the Classification field to write.
        round_index: the active-learning round doing the ingest.
        project_id: the Label Studio project the tasks come from.

    Raises:
        DataError: ``label_field`` is not a Classification field of the dataset.
    """
    check_label_field(dataset, label_field)
    invalid = list(getattr(completed, "invalid", None) or [a for task in completed for a in task.invalid])
    reasons = Counter(annotation.reason for annotation in invalid)
    cancelled = getattr(completed, "cancelled_annotations", None)
    if cancelled is None:
        cancelled = sum(task.cancelled for task in completed)
    by_sample = newest_task_per_sample(completed)
    current = current_values(dataset, label_field, list(by_sample))
    known_classes = set(get_classes(dataset, label_field))

    unchanged = 0
    todo: list[CompletedTask] = []
    for sample_id in current.ids:
        task = by_sample[sample_id]
        if already_ingested(current.provenance[sample_id], task, project_id):
            unchanged += 1
        elif known_classes and task.label not in known_classes:
            reason = f"class {task.label!r} is not in the class list of {label_field!r}"
            reasons[reason] += len(task.votes)
            invalid.extend(InvalidAnnotation(task.task_id, vote.annotation_id, sample_id, reason)
                           for vote in task.votes)
        else:
            todo.append(task)

    # One document update per sample (label, history entry, provenance, review status), all in one bulk write: a
    # crash leaves each sample fully ingested or untouched, and a rerun skips the ingested ones by fingerprint.
    check_classes(dataset, label_field, {task.label for task in todo if task.label != current.labels[task.sample_id]})
    change, when = new_change_id(), now_utc()
    updates = [sample_update(task, current.labels[task.sample_id], current.review_status.get(task.sample_id),
                             label_field, project_id, round_index, change, when) for task in todo]
    applied = write_sample_updates(dataset, label_field, updates)
    if applied < len(updates):  # labels changed by another writer meanwhile: those samples wait for the next ingest
        written = dict(zip(*dataset.select([u.sample_id for u in updates]).values(["id", PROVENANCE_FIELD])))
        updates = [u for u in updates if already_ingested(written.get(u.sample_id), by_sample[u.sample_id],
                                                           project_id)]
        logger.warning("%d samples changed while being ingested; the next ingest takes them.", len(todo) - applied)
    changed = sum(1 for update in updates if update.new_label is not None)
    done = [update.sample_id for update in updates if REVIEW_STATUS_FIELD in update.fields]
    report = IngestReport(
        new=len(updates), changed=changed, confirmed=len(updates) - changed, unchanged=unchanged,
        invalid=len(invalid), invalid_reasons=dict(reasons), invalid_annotations=tuple(invalid),
        cancelled=int(cancelled), skipped_tasks=int(getattr(completed, "skipped_tasks", 0)),
        missing_samples=len(by_sample) - len(current.ids), marked_done=len(done),
    )
    logger.info("Ingested Label Studio project %s into %s.%s: %s", project_id, dataset.name, label_field, report)
    return report
