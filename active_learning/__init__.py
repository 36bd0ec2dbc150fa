"""The fixed model, data import, runs and (later) the active-learning loop; usable without the App."""

from __future__ import annotations

from active_learning.errors import (
    CurationError,
    DataError,
    DatasetExistsError,
    InputError,
    LabelStudioError,
    ModelError,
)

__all__ = [
    "CurationError",
    "DataError",
    "DatasetExistsError",
    "InputError",
    "LabelStudioError",
    "ModelError",
]
