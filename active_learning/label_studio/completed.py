"""Finished annotations read back from Label Studio: validated against the labeling config, resolved by majority.

``fetch_completed`` reads only annotated (or skipped) tasks, validates every annotation against the labeling config
(the server does not), and resolves several annotations of a task by majority vote, ties going to the tied label
voted first. What is left out is counted: invalid annotations with their reason, cancelled (skipped) ones, tasks
without a sample id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from active_learning.errors import DataError, LabelStudioError
from active_learning.label_studio.config import (ROUND_KEY, SAMPLE_ID_KEY, ChoicesConfig, parse_labeling_config,
                                                 validate_annotation)

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Vote:
    """One valid, submitted annotation of a task."""

    annotation_id: int
    label: str
    annotator_id: int | None
    annotator_email: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class InvalidAnnotation:
    """An annotation that does not fit the labeling config: reported, never ingested."""

    task_id: int
    annotation_id: int
    sample_id: str | None
    reason: str


@dataclass(frozen=True)
class CompletedTask:
    """A task with at least one valid submitted annotation, resolved to one label.

    Attributes:
        label: the majority label; a tie goes to the tied label whose first vote is the earliest.
        agreement: the share of the valid votes that chose ``label`` (1.0 for a single annotation).
        votes: the valid submitted annotations, oldest first.
        cancelled: how many annotations of the task were skipped (cancelled).
        invalid: the task's annotations that do not fit the config.
    """

    task_id: int
    sample_id: str
    round_index: int | None
    label: str
    agreement: float
    votes: tuple[Vote, ...]
    cancelled: int = 0
    invalid: tuple[InvalidAnnotation, ...] = ()

    @property
    def annotation_ids(self) -> list[int]:
        return [vote.annotation_id for vote in self.votes]

    @property
    def completed_at(self) -> str:
        """When the last vote was submitted or updated (ISO 8601)."""
        return max(vote.updated_at or vote.created_at for vote in self.votes)

    @property
    def fingerprint(self) -> str:
        """Which annotations, in which version, made this label: equal fingerprints mean nothing new to ingest."""
        return ",".join(f"{vote.annotation_id}@{vote.updated_at}" for vote in self.votes)


@dataclass(frozen=True)
class CompletedTasks(Sequence[CompletedTask]):
    """The completed tasks of a project (a sequence of them) and what was left out, counted.

    Attributes:
        tasks: the tasks resolved to a label.
        invalid: every annotation that does not fit the config, from all tasks.
        cancelled_annotations: skipped (cancelled) annotations, from all tasks.
        skipped_tasks: tasks whose annotations are all cancelled.
        unresolved_tasks: tasks with submitted annotations, none of them valid.
        foreign_tasks: annotated tasks without a sample id (not made by ``push_tasks``).
        skipped_task_ids: the ids of the skipped tasks.
    """

    tasks: tuple[CompletedTask, ...] = ()
    invalid: tuple[InvalidAnnotation, ...] = ()
    cancelled_annotations: int = 0
    skipped_tasks: int = 0
    unresolved_tasks: int = 0
    foreign_tasks: int = 0
    skipped_task_ids: tuple[int, ...] = ()

    def __getitem__(self, index):  # type: ignore[override]
        return self.tasks[index]

    def __len__(self) -> int:
        return len(self.tasks)


def iso_utc(value: Any) -> str:
    """A server timestamp (datetime or ISO string) as ISO 8601 in UTC, the same whichever way it was read."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.isoformat()
    return str(value or "")


def majority(votes: Sequence[Vote]) -> tuple[str, float]:
    """The majority label of ``votes`` and its share; ties go to the tied label voted first (earliest vote)."""
    if not votes:
        raise DataError("no votes to resolve")
    ordered = sorted(votes, key=lambda vote: (vote.created_at, vote.annotation_id))
    counts = Counter(vote.label for vote in ordered)
    best = max(counts.values())
    label = next(vote.label for vote in ordered if counts[vote.label] == best)
    return label, best / len(ordered)


def resolve_task(
    task: Mapping[str, Any], config: ChoicesConfig, emails: Mapping[int, str] | None = None
) -> tuple[CompletedTask | None, list[InvalidAnnotation], int]:
    """One task's annotations -> (the completed task or None, its invalid annotations, its cancelled count)."""
    emails = emails or {}
    task_id = int(task["id"])
    data = task.get("data") or {}
    sample_id = data.get(SAMPLE_ID_KEY)
    sample_id = None if sample_id is None else str(sample_id)
    votes: list[Vote] = []
    invalid: list[InvalidAnnotation] = []
    cancelled = 0
    for annotation in task.get("annotations") or []:
        if annotation.get("was_cancelled"):
            cancelled += 1
            continue
        annotation_id = int(annotation["id"])
        try:
            label = validate_annotation(annotation.get("result"), config.classes, config.from_name, config.to_name)
        except DataError as error:
            invalid.append(InvalidAnnotation(task_id, annotation_id, sample_id, str(error)))
            continue
        annotator = annotation.get("completed_by")
        if isinstance(annotator, dict):  # some serializers expand the user
            annotator_id, email = annotator.get("id"), annotator.get("email")
        else:
            annotator_id, email = annotator, None
        if email is None and annotator_id is not None:
            email = emails.get(int(annotator_id)) or email_from_username(annotation.get("created_username"))
        votes.append(Vote(annotation_id, label, None if annotator_id is None else int(annotator_id), email,
                          iso_utc(annotation.get("created_at")), iso_utc(annotation.get("updated_at"))))
    if not votes or sample_id is None:
        return None, invalid, cancelled
    votes.sort(key=lambda vote: (vote.created_at, vote.annotation_id))
    label, agreement = majority(votes)
    round_index = data.get(ROUND_KEY)
    completed = CompletedTask(
        task_id=task_id, sample_id=sample_id, round_index=None if round_index is None else int(round_index),
        label=label, agreement=agreement, votes=tuple(votes), cancelled=cancelled, invalid=tuple(invalid),
    )
    return completed, invalid, cancelled


def email_from_username(created_username: Any) -> str | None:
    """Label Studio's ``created_username`` is ``" <email>, <id>"``; the email part, if it looks like one."""
    text = str(created_username or "").strip()
    email = text.rsplit(",", 1)[0].strip() if "," in text else text
    return email if "@" in email else None


def annotator_emails(client: LabelStudioAPI) -> dict[int, str]:
    """User id -> email for the organization, or nothing when this key may not list users."""
    try:
        users = client.list_users()
    except LabelStudioError as error:
        logger.debug("Cannot list Label Studio users: %s", error)
        return {}
    return {user.id: user.email for user in users if user.email}


def fetch_completed(client: LabelStudioAPI, project_id: int) -> CompletedTasks:
    """The project's tasks that have annotations, validated and resolved by majority vote.

    Only annotated or skipped tasks are read (``client.annotated_tasks``; a half-annotated project is normal).
    Submitted annotations are validated against the project's labeling config; invalid ones are listed with their
    reason, cancelled ones counted. A task with several valid annotations gets the majority label, ties going to
    the tied label voted first, and the agreement (share of votes for it).

    Returns:
        A sequence of :class:`CompletedTask` that also carries the invalid annotations and the counts of
        cancelled annotations, skipped, unresolved and foreign tasks (:class:`CompletedTasks`).

    Raises:
        LabelStudioError: the project was deleted or the server fails.
    """
    config = parse_labeling_config(client.get_project(project_id).label_config)
    tasks = client.annotated_tasks(project_id)
    emails = annotator_emails(client) if tasks else {}
    completed: list[CompletedTask] = []
    invalid: list[InvalidAnnotation] = []
    cancelled_total = unresolved = foreign = 0
    skipped: list[int] = []
    for raw in sorted(tasks, key=lambda t: int(t["id"])):
        resolved, task_invalid, cancelled = resolve_task(raw, config, emails)
        invalid.extend(task_invalid)
        cancelled_total += cancelled
        if resolved is not None:
            completed.append(resolved)
        elif (raw.get("data") or {}).get(SAMPLE_ID_KEY) is None and len(raw.get("annotations") or []) > cancelled:
            foreign += 1
        elif task_invalid:
            unresolved += 1
        elif cancelled:
            skipped.append(int(raw["id"]))
    return CompletedTasks(tuple(completed), tuple(invalid), cancelled_total, len(skipped), unresolved, foreign,
                          tuple(skipped))
