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
