"""FiftyOne custom runs: per-run configuration and results live in MongoDB, visible to every process."""

from __future__ import annotations

import getpass
import re
from datetime import datetime, timezone
from typing import Any

from active_learning.errors import DataError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def now_utc() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def who() -> str:
    """The local user name, for provenance."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises OSError/KeyError in odd containers
        return "unknown"


def record_run(collection, key: str, config: dict[str, Any], results: dict[str, Any], overwrite: bool = True) -> None:
    """Register custom run ``key`` with JSON-serialisable ``config`` and ``results``.

    ``collection`` may be a view: FiftyOne then records its stages, and ``load_run_view`` restores it.
    """
    dataset = collection._dataset
    if not _KEY.match(key):
        raise DataError(f"Run key {key!r} must be a Python identifier (letters, digits, underscores).")
    config = {**config, "created_by": who(), "created_at": now_utc()}
    run_config = collection.init_run(**config)
    if key in dataset.list_runs():
        if not overwrite:
            raise DataError(f"Run {key!r} already exists on dataset {dataset.name!r}; pick another key.")
        dataset.delete_run(key)
    collection.register_run(key, run_config)
    run_results = dataset.init_run_results(key, **results)
    dataset.save_run_results(key, run_results)


def load_run(dataset, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(config, results)`` dicts of custom run ``key``."""
    if key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no run {key!r}; runs: {sorted(dataset.list_runs())}.")
    info = dataset.get_run_info(key)
    config = {k: v for k, v in info.config.serialize().items() if not k.startswith("_") and k not in ("cls", "type")}
    results = dataset.load_run_results(key, cache=False)
    data = {k: v for k, v in results.serialize().items() if not k.startswith("_") and k != "cls"}
    return config, data
