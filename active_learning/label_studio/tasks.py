"""Tasks: what a sample to label becomes in Label Studio, and pushing a round's tasks once.

``push_round_tasks`` sends every new sample in ONE bulk import with the model's prediction as pre-annotation;
samples already in the project for the same round (found by ``data.sample_id`` and ``data.round``) are not pushed
again, so a rerun after a crash never duplicates a task. How the images get there: :mod:`.media`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from active_learning.errors import DataError, LabelStudioError
from active_learning.label_studio.config import (FILENAME_KEY, IMAGE_KEY, NOTE_KEY, ROUND_KEY, SAMPLE_ID_KEY,
                                                 ChoicesConfig, choice_result, parse_labeling_config)
from active_learning.label_studio.media import image_urls, resolve_media

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI, Project

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """One sample to label: its id, image file, round, and the model's prediction shown as pre-annotation."""

    sample_id: str
    filepath: str
    round_index: int
    predicted_label: str | None = None
    score: float | None = None
    model_version: str | None = None
    note: str = ""


def task_specs(
    view, round_index: int, prediction_field: str | None = "model_prediction", model_version: str | None = None
) -> list[TaskSpec]:
    """The samples of a FiftyOne view as tasks, with the label and confidence of ``prediction_field`` if present."""
    ids, paths = view.values(["id", "filepath"])
    labels: list[Any] = [None] * len(ids)
    scores: list[Any] = [None] * len(ids)
    if prediction_field and prediction_field in view.get_field_schema():
        labels, scores = view.values([f"{prediction_field}.label", f"{prediction_field}.confidence"])
    return [
        TaskSpec(sample_id=i, filepath=p, round_index=round_index, predicted_label=label,
                 score=None if score is None else float(score), model_version=model_version if label else None)
        for i, p, label, score in zip(ids, paths, labels, scores)
    ]


def task_payload(spec: TaskSpec, image_url: str, config: ChoicesConfig) -> dict[str, Any]:
    """The import payload of one task: data (image, sample id, round, file name) and the prediction, if any."""
    payload: dict[str, Any] = {
        "data": {
            IMAGE_KEY: image_url,
            SAMPLE_ID_KEY: spec.sample_id,
            ROUND_KEY: int(spec.round_index),
            FILENAME_KEY: os.path.basename(spec.filepath),
            NOTE_KEY: spec.note,
        }
    }
    if spec.predicted_label is not None:
        prediction: dict[str, Any] = {
            "model_version": spec.model_version or "unknown",
            "result": choice_result(spec.predicted_label, config),
        }
        if spec.score is not None:
            prediction["score"] = float(spec.score)
        payload["predictions"] = [prediction]
    return payload


def existing_tasks(client: LabelStudioAPI, project_id: int) -> dict[tuple[str, int | None], int]:
    """(sample id, round) -> task id of the project's tasks that carry a sample id (the oldest task wins).

    A sample has at most one task per round; a later round may push it again (a skipped task returned to the pool,
    a labeled sample queued for review).
    """
    found: dict[tuple[str, int | None], int] = {}
    for task in client.list_tasks(project_id):
        data = task.get("data") or {}
        sample_id, round_index = data.get(SAMPLE_ID_KEY), data.get(ROUND_KEY)
        if sample_id is not None:
            key = (str(sample_id), None if round_index is None else int(round_index))
            found.setdefault(key, int(task["id"]))
    return found


def set_model_version(client: LabelStudioAPI, project: Project, specs: Sequence[TaskSpec]) -> None:
    """Make the newest model version the project's, so the labeling view shows its predictions.

    Label Studio shows only the predictions of the project's model version; the first import sets it, a later
    round's version must be set (after its predictions exist: the server refuses unknown versions).
    """
    versions = [spec.model_version or "unknown" for spec in specs if spec.predicted_label is not None]
    if not versions or not project.model_version or project.model_version == versions[-1]:
        return
    client.update_project(project.id, model_version=versions[-1])


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_round_tasks` did.

    Attributes:
        task_ids: sample id -> task id, for every sample given.
        pushed: tasks created now (the others were already in the project).
        with_prediction: of the samples given, those whose task carries a pre-annotation.
        media: how the new tasks' images reach Label Studio (``local-files`` or ``upload``).
        note: why the media differs from the one asked for, or ``""``.
    """

    task_ids: dict[str, int]
    pushed: int = 0
    with_prediction: int = 0
    media: str = ""
    note: str = ""


def push_tasks(
    client: LabelStudioAPI,
    project_id: int,
    samples: Sequence[TaskSpec],
    *,
    media: str = "auto",
    document_root: str | None = None,
) -> dict[str, int]:
    """:func:`push_round_tasks`, returning only sample id -> task id."""
    return push_round_tasks(client, project_id, samples, media=media, document_root=document_root).task_ids


def unique_specs(samples: Sequence[TaskSpec]) -> list[TaskSpec]:
    """The first spec of each (sample, round)."""
    unique: dict[tuple[str, int], TaskSpec] = {}
    for spec in samples:
        unique.setdefault((spec.sample_id, int(spec.round_index)), spec)
    return list(unique.values())


def check_predicted_classes(specs: Sequence[TaskSpec], config: ChoicesConfig, project_id: int) -> None:
    """Raise unless every predicted class is a choice of the project."""
    unknown = sorted({s.predicted_label for s in specs if s.predicted_label is not None} - set(config.classes))
    if unknown:
        raise DataError(
            f"Predicted classes {unknown[:5]} are not choices of Label Studio project {project_id}; nothing was "
            "pushed. The model and the project must use the dataset's class list."
        )


def push_round_tasks(
    client: LabelStudioAPI,
    project_id: int,
    samples: Sequence[TaskSpec],
    *,
    media: str = "auto",
    document_root: str | None = None,
) -> PushResult:
    """Create a task for every sample not yet in the project for its round, in ONE bulk import, with its prediction.

    Idempotent: a sample that already has a task of the same round keeps it and is not pushed again.

    Args:
        client: a connected client.
        project_id: from :func:`~active_learning.label_studio.projects.ensure_project`.
        samples: the samples to label; the prediction (label, score, model version) becomes the pre-annotation and
            the note is shown above the image.
        media: ``"local-files"``, ``"upload"`` or ``"auto"`` (:mod:`~active_learning.label_studio.media`). With
            ``auto``, a local server that does not serve local files gets the images uploaded instead, and the
            result says so.
        document_root: Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT`` for local files; defaults to the
            ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` variable here, else ``/`` (the server's default).

    Raises:
        DataError: a predicted class that the project does not offer, a missing image, an image outside the
            local-files document root.
        LabelStudioError: the project was deleted, the images cannot be served, or the server fails.
    """
    resolved = resolve_media(client, media)
    project = client.get_project(project_id)
    config = parse_labeling_config(project.label_config)
    specs = unique_specs(samples)
    check_predicted_classes(specs, config, project_id)
    task_ids = existing_tasks(client, project_id)
    new = [spec for spec in specs if (spec.sample_id, int(spec.round_index)) not in task_ids]
    note = ""
    if new:
        urls, resolved, note = image_urls(client, project_id, new, media, document_root)
        created = client.import_tasks(project_id, [task_payload(spec, url, config) for spec, url in zip(new, urls)])
        if len(created) != len(new):
            raise LabelStudioError(
                f"Label Studio imported {len(created)} of {len(new)} tasks into project {project_id}: push again "
                "(samples already there are skipped) and look at the server's log."
            )
        task_ids.update({(spec.sample_id, int(spec.round_index)): task_id for spec, task_id in zip(new, created)})
        set_model_version(client, project, new)
        logger.info("Pushed %d tasks to Label Studio project %s (%d already there)", len(new), project_id,
                    len(specs) - len(new))
    return PushResult(
        task_ids={spec.sample_id: task_ids[(spec.sample_id, int(spec.round_index))] for spec in specs},
        pushed=len(new), with_prediction=sum(spec.predicted_label is not None for spec in specs), media=resolved,
        note=note,
    )
