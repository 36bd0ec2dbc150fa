"""The library: data import, the fixed model, runs, label history, the writer lease, and the active-learning loop
with its Label Studio bridge; usable without the App."""

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
