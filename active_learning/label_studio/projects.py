"""The Label Studio project of a dataset: found by its stable title and marker, or made once.

``ensure_project`` finds the project by its title and a marker line in its description naming the dataset, or by
the id the loop stored; it never makes a second project for the same dataset and title, and a stored project that
was deleted in Label Studio is an error unless ``new_project=True``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from active_learning.errors import DataError, LabelStudioError, ProjectDeletedError
from active_learning.label_studio.config import NOTE_KEY, labeling_config, parse_labeling_config

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI, Project

logger = logging.getLogger(__name__)

MARKER = "[fiftyone-curation]"
TITLE_LENGTH = (3, 50)  # Label Studio's limits on project titles


def project_marker(dataset_name: str) -> str:
    """The line in a project's description that says which dataset it labels."""
    return f"{MARKER} dataset={json.dumps(dataset_name)}"


def project_url(client: LabelStudioAPI, project_id: int) -> str:
    """The address of the project's task list in the browser."""
    return f"{client.url}/projects/{int(project_id)}/data"


def class_difference(project_classes: Iterable[str], classes: Iterable[str]) -> str:
    """What the project's choices lack and have beyond the dataset's classes, in words."""
    project_set, wanted = set(project_classes), set(classes)
    parts = []
    if wanted - project_set:
        parts.append(f"missing there: {sorted(wanted - project_set)[:10]}")
    if project_set - wanted:
        parts.append(f"not in the dataset: {sorted(project_set - wanted)[:10]}")
    return "; ".join(parts)


def check_project(project: Project, classes: Sequence[str], dataset_name: str, from_name: str) -> None:
    """Raise unless ``project`` was made for ``dataset_name`` and offers exactly ``classes``."""
    if project_marker(dataset_name) not in project.description:
        raise LabelStudioError(
            f"Label Studio project {project.id} ({project.title!r}) was not made for dataset {dataset_name!r} "
            "(its description lacks the marker line): pass the right project id, or another title."
        )
    config = parse_labeling_config(project.label_config, from_name)
    if set(config.classes) != set(classes):
        raise LabelStudioError(
            f"Label Studio project {project.id} ({project.title!r}) labels other classes than dataset "
            f"{dataset_name!r} ({class_difference(config.classes, classes)}). Edit its labeling interface to "
            f"the dataset's classes (labeling_config gives the XML), or use a new project title."
        )


def add_note(client: LabelStudioAPI, project: Project, from_name: str, to_name: str) -> None:
    """Give a project made before task notes existed the note line above the image (same classes, same order)."""
    if f"${NOTE_KEY}" in project.label_config:
        return
    classes = parse_labeling_config(project.label_config, from_name).classes
    client.update_project(project.id, label_config=labeling_config(classes, from_name, to_name))


def reuse_project(client: LabelStudioAPI, project: Project, classes: Sequence[str], dataset_name: str,
                  from_name: str, to_name: str) -> int:
    """Check a found project and bring its labeling config up to date; its id."""
    check_project(project, classes, dataset_name, from_name)
    add_note(client, project, from_name, to_name)
    return project.id


def ensure_project(
    client: LabelStudioAPI,
    title: str,
    classes: Sequence[str],
    dataset_name: str,
    *,
    project_id: int | None = None,
    new_project: bool = False,
    from_name: str = "label",
    to_name: str = "image",
) -> int:
    """The id of the project that labels ``dataset_name``: the stored one, the one found by title, or a new one.

    Args:
        client: a connected client (:func:`active_learning.label_studio.connection.connect`).
        title: the project's stable title (3-50 characters), e.g. ``"curation: mnist"``.
        classes: the dataset's class list; the project's choices must be the same set.
        dataset_name: written into the description as a marker, and checked on reuse.
        project_id: the id the loop stored before, if any; it must still exist unless ``new_project``.
        new_project: when the stored project was deleted, create a fresh one instead of raising.
        from_name: the name of the Choices tag.
        to_name: the name of the Image tag.

    Raises:
        ProjectDeletedError: the stored project was deleted and ``new_project`` is False.
        LabelStudioError: a project with this title is not ours or labels other classes, several projects
            match, or the server fails.
        DataError: the title or the classes cannot be used.
    """
    title = (title or "").strip()
    if not TITLE_LENGTH[0] <= len(title) <= TITLE_LENGTH[1]:
        raise DataError(f"A Label Studio project title must have {TITLE_LENGTH[0]}-{TITLE_LENGTH[1]} characters, "
                        f"not {len(title)}: {title!r}.")
    config = labeling_config(classes, from_name, to_name)
    if project_id is not None:
        try:
            project = client.get_project(project_id)
        except ProjectDeletedError:
            if not new_project:
                raise ProjectDeletedError(project_id, dataset_name) from None
            logger.warning("Label Studio project %s was deleted; creating a new one", project_id)
        else:
            return reuse_project(client, project, classes, dataset_name, from_name, to_name)
    marker = project_marker(dataset_name)
    same_title = [p for p in client.find_projects(title) if p.title.strip() == title]
    ours = [p for p in same_title if marker in p.description]
    if len(ours) > 1:
        raise LabelStudioError(
            f"Label Studio has {len(ours)} projects titled {title!r} for dataset {dataset_name!r} "
            f"(ids {sorted(p.id for p in ours)}): delete the extra ones or pass the project id to use."
        )
    if ours:
        project = client.get_project(ours[0].id)  # a listing may omit the labeling config
        return reuse_project(client, project, classes, dataset_name, from_name, to_name)
    if same_title:
        raise LabelStudioError(
            f"Label Studio already has a project titled {title!r} (id {same_title[0].id}) that was not made for "
            f"dataset {dataset_name!r}: choose another title."
        )
    description = f"Labels for the FiftyOne dataset {dataset_name!r}, managed by fiftyone-curation.\n{marker}"
    created = client.create_project(title, description, config)
    logger.info("Created Label Studio project %s (%r) for dataset %r", created.id, title, dataset_name)
    return created.id
