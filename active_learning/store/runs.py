"""FiftyOne custom runs: per-run configuration and results live in MongoDB, visible to every process."""

from __future__ import annotations

import getpass
import re
import time
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


def update_run_results(dataset, key: str, results: dict[str, Any]) -> None:
    """Replace the results of existing run ``key`` in place (the run never disappears for other readers)."""
    dataset.save_run_results(key, dataset.init_run_results(key, **results), overwrite=True, cache=False)


def load_run(dataset, key: str, attempts: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(config, results)`` dicts of custom run ``key``.

    Another process may be replacing the results (a new results file, then the reference to it) while we read;
    such a read fails transiently and is retried after reloading the dataset.
    """
    for attempt in range(attempts):
        if key not in dataset.list_runs():
            raise DataError(f"Dataset {dataset.name!r} has no run {key!r}; runs: {sorted(dataset.list_runs())}.")
        try:
            info = dataset.get_run_info(key)
            results = dataset.load_run_results(key, cache=False)
            break
        except Exception:  # noqa: BLE001 - mongoengine/GridFS raise AttributeError etc. mid-replacement
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
            dataset.reload()
    config = {k: v for k, v in info.config.serialize().items() if not k.startswith("_") and k not in ("cls", "type")}
    data = {k: v for k, v in results.serialize().items() if not k.startswith("_") and k != "cls"}
    return config, data
