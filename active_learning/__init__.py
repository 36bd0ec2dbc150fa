"""The library, usable without the App: ``data`` (import, decoding), ``model`` (the fixed model, out-of-sample
outputs, trust, your own model), ``store`` (runs, fields, label history, the writer lease), ``label_studio`` (one
adapter, a fake, tasks and ingestion) and ``loop`` (query strategies and the round state machine); ``errors`` is
the one exception tree."""

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
