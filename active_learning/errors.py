"""The one exception tree of the library: every known failure says what to do next."""

from __future__ import annotations


class CurationError(Exception):
    """Base class of every error the library raises on purpose.

    Messages are complete sentences that name the problem and the next step. They never contain secrets.
    """


class InputError(CurationError, ValueError):
    """Bad user input: a path that does not exist, a malformed file, a wrong option."""


class DatasetExistsError(CurationError):
    """A dataset with the requested name already exists."""


class DataError(CurationError, ValueError):
    """The dataset or view cannot be used as asked: a missing field, an unknown class, an empty view."""


class ModelError(CurationError):
    """The fixed model cannot be trained, loaded or applied (bad weights file, hash mismatch, ...)."""


class LabelStudioError(CurationError):
    """Label Studio is unreachable, refuses our token, or holds something we cannot use."""


class ProjectDeletedError(LabelStudioError):
    """The Label Studio project the loop stored no longer exists there (someone deleted it)."""

    def __init__(self, project_id: int, dataset_name: str | None = None) -> None:
        dataset = f" for dataset {dataset_name!r}" if dataset_name else ""
        super().__init__(
            f"Label Studio project {project_id}{dataset} was deleted in Label Studio. The labels already ingested "
            "are kept in the dataset; to go on in a fresh project, set the loop up again with a new project "
            "(`new_project=True`), then push the samples again."
        )
        self.project_id = project_id
        self.dataset_name = dataset_name


class LocalFilesNotServedError(LabelStudioError):
    """Label Studio does not serve this machine's image files (local-files serving off, or another root)."""
