"""Crash-safe replacement of a dataset by an import: staging names, a journal in MongoDB, one swap, recovery.

An import builds everything under staging names first: the dataset as ``<name>.staging-<token>`` (persistent,
so no other process's exit cleanup can delete it) and, for array sources, the PNGs in
``.staging-<folder>-<pid>-<token>/`` beside the final media folder. Before any of them exists, the journal (one
document per dataset name in the ``curation_import_journal`` collection of FiftyOne's database) names them all.
When the staging dataset is complete the journal's phase becomes ``commit`` and the swap runs:

1. (``overwrite=True`` only) the old dataset is renamed to ``<name>.replaced-<token>``;
2. the staging dataset takes the name: an atomic rename (dataset names are unique in MongoDB), so an import
   whose name was taken meanwhile fails here, before any file moved;
3. the old media folder moves to ``.replaced-<folder>-<pid>-<token>/`` and the staging folder takes its place;
4. the replaced dataset and folder are deleted, then the journal.

Until step 1 the old dataset and all its files are untouched. A process killed before the commit leaves only
staging; one killed during the swap leaves a journal in phase ``commit``. Every import first recovers the
journals whose writer is gone (their dataset's writer lease is free and the process no longer runs): a ``build``
journal is rolled back (the staging is deleted), a ``commit`` journal rolled forward (the renames are finished,
each step idempotent). So after a kill at any point there is either the old dataset with all its files or the new
one with all of its, and no staging is left once the next import has run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from active_learning.errors import DataError, DatasetExistsError, InputError
from active_learning.store.faults import pause_point
from active_learning.store.lease import DatasetBusyError
from active_learning.store.processes import gone, process_started

logger = logging.getLogger(__name__)

COLLECTION = "curation_import_journal"
STAGING = ".staging-"
REPLACED = ".replaced-"


_NAME_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
MAX_NAME_BYTES = 200  # the media folder is named after the dataset; staging adds ~30 bytes to a 255-byte limit


def validate_dataset_name(name: object) -> str:
    """``name`` when FiftyOne accepts it and it is safe as a folder name, else ``InputError`` saying why."""
    import fiftyone.core.utils as fou

    rule = ("use letters, digits, spaces and - _ . (e.g. `name='my-photos'`); no '/', '\\', '..' or leading '.'")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"The dataset name is empty: {rule}. Nothing was written.")
    problem = None
    if name.startswith(".") or ".." in name:
        problem = "it starts with '.' or holds '..', which would name a folder outside the dataset directory"
    elif _NAME_FORBIDDEN.search(name):
        problem = "it holds a path separator or a control character"
    elif name != name.strip():
        problem = "it starts or ends with whitespace"
    elif STAGING in name or REPLACED in name:
        problem = f"'{STAGING}' and '{REPLACED}' are reserved for imports in progress"
    elif len(name.encode()) > MAX_NAME_BYTES:
        problem = f"it is longer than {MAX_NAME_BYTES} bytes"
    else:
        try:
            fou.to_slug(name)
        except ValueError as exc:
            problem = f"FiftyOne refuses it ({exc})"
    if problem:
        raise InputError(f"Dataset name {name!r} is not allowed: {problem}; {rule}. Nothing was written.")
    return name


@dataclass
class Journal:
    """What one import writes besides the final dataset, and how far its swap got."""

    name: str
    token: str
    staging_dataset: str
    replaced_dataset: str
    media_root: str | None = None
    staging_media: str | None = None
    replaced_media: str | None = None
    replace: bool = False  # the swap replaces the existing dataset (``overwrite=True``)
    phase: str = "build"
    pid: int = field(default_factory=os.getpid)
    pid_started: float = field(default_factory=lambda: process_started(os.getpid()))
    host: str = field(default_factory=socket.gethostname)
    started_at: float = field(default_factory=time.time)


def _collection():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()[COLLECTION]


def _writer_alive(document: dict) -> bool:
    """Whether the process that wrote the journal still runs (same host, same pid and start time)."""
    if document.get("host") != socket.gethostname():
        return False  # another machine: its lease (checked by the caller) is the only sign of life
    return not gone(document.get("host"), int(document.get("pid", -1)), document.get("pid_started") or 0.0)


def begin(name: str, media_root: Path | None, replace: bool) -> Journal:
    """Record a new import of ``name`` that will write ``media_root`` (None: no media) and replace the existing
    dataset when ``replace``; the caller holds the dataset's writer lease and ran ``recover``."""
    token = uuid.uuid4().hex[:8]
    journal = Journal(name=name, token=token, staging_dataset=f"{name}{STAGING}{token}",
                      replaced_dataset=f"{name}{REPLACED}{token}", replace=replace)
    if media_root is not None:
        tag = f"{media_root.name}-{os.getpid()}-{token}"
        journal.media_root = str(media_root)
        journal.staging_media = str(media_root.parent / f"{STAGING}{tag}")
        journal.replaced_media = str(media_root.parent / f"{REPLACED}{tag}")
    from pymongo.errors import DuplicateKeyError

    try:
        _collection().insert_one({"_id": name, **asdict(journal)})
    except DuplicateKeyError:
        other = _collection().find_one({"_id": name}) or {}
        raise DatasetBusyError(
            f"An import of {name!r} by pid {other.get('pid')} on {other.get('host')} has not finished and its "
            "process still runs: wait for it, or stop it and run this again (its staging is then removed)."
        ) from None
    return journal


def _set_phase(journal: Journal, phase: str) -> None:
    _collection().update_one({"_id": journal.name, "token": journal.token}, {"$set": {"phase": phase}})
    journal.phase = phase


def _end(journal: Journal) -> None:
    _collection().delete_one({"_id": journal.name, "token": journal.token})


def abort(journal: Journal) -> None:
    """Roll back an import that has not committed: delete its staging dataset and folder, then the journal."""
    import fiftyone as fo

    if fo.dataset_exists(journal.staging_dataset):
        fo.delete_dataset(journal.staging_dataset)
    if journal.staging_media:
        shutil.rmtree(journal.staging_media, ignore_errors=True)
    _end(journal)


def commit(journal: Journal):
    """Swap the complete staging dataset (and media) in under the final name; returns the dataset.

    Raises:
        DatasetExistsError: the name was taken by another writer meanwhile (without ``overwrite=True``); the
            staging is deleted and nothing else changed.
    """
    import fiftyone as fo

    if not journal.replace and fo.dataset_exists(journal.name):
        abort(journal)
        raise DatasetExistsError(f"Dataset {journal.name!r} was created by another writer while this import ran; "
                                 "nothing was written. Pick another `name`, or pass `overwrite=True` to replace it.")
    _set_phase(journal, "commit")
    staging = fo.load_dataset(journal.staging_dataset)
    replaced = None
    if journal.replace and fo.dataset_exists(journal.name):
        replaced = fo.load_dataset(journal.name)
        replaced.name = journal.replaced_dataset
    pause_point("import:mid-swap")
    try:
        staging.name = journal.name
    except Exception as exc:  # the name's unique index (or FiftyOne's check) refused: someone else took it
        if replaced is not None and not fo.dataset_exists(journal.name):
            replaced.name = journal.name
        abort(journal)
        raise DatasetExistsError(
            f"Dataset name {journal.name!r} was taken by another writer while this import ran ({exc}); the new data "
            "was not written" + (f" and the old dataset is kept as {journal.replaced_dataset!r}"
                                 if fo.dataset_exists(journal.replaced_dataset) else "") + "."
        ) from exc
    _finish(journal)
    return staging


def _finish(journal: Journal) -> None:
    """Steps 2-4 of the swap, each skipped when done: safe to repeat after a kill at any point."""
    import fiftyone as fo

    if fo.dataset_exists(journal.staging_dataset):
        if journal.replace and fo.dataset_exists(journal.name) and not fo.dataset_exists(journal.replaced_dataset):
            fo.load_dataset(journal.name).name = journal.replaced_dataset
        fo.load_dataset(journal.staging_dataset).name = journal.name
    if journal.staging_media and os.path.isdir(journal.staging_media):
        if os.path.exists(journal.media_root) and not os.path.exists(journal.replaced_media):
            os.rename(journal.media_root, journal.replaced_media)
        os.rename(journal.staging_media, journal.media_root)
    if fo.dataset_exists(journal.replaced_dataset):
        fo.delete_dataset(journal.replaced_dataset)
    if journal.replaced_media:
        shutil.rmtree(journal.replaced_media, ignore_errors=True)
    _end(journal)


def settle(journal: Journal) -> str:
    """Finish a committed swap or roll back an uncommitted import (no-op once its journal is gone); returns what
    was done."""
    import fiftyone as fo

    if _collection().find_one({"_id": journal.name, "token": journal.token}) is None:
        return f"nothing left of the import of {journal.name!r}"
    name_taken = not journal.replace and fo.dataset_exists(journal.name)
    if journal.phase == "commit" and not (fo.dataset_exists(journal.staging_dataset) and name_taken):
        _finish(journal)
        return f"finished the interrupted replacement of dataset {journal.name!r}"
    abort(journal)
    return f"removed what an interrupted import of {journal.name!r} had staged"


def recover(current: str) -> list[str]:
    """Roll back or finish every import whose writer is gone; returns what was done, one line each.

    A journal is recovered under its dataset's writer lease (re-entrant for ``current``, the caller's dataset), so
    never while another process imports into that name, and never while the process that wrote it still runs.

    Raises:
        DataError: the interrupted import of ``current`` could not be settled (the import must not go on over it).
    """
    from active_learning.store.lease import writer_lease

    done = []
    for document in list(_collection().find({})):
        journal = Journal(**{k: v for k, v in document.items() if k in Journal.__dataclass_fields__})
        if journal.pid != os.getpid() and _writer_alive(document):
            continue
        try:
            with writer_lease(journal.name, "curation import (recovering an interrupted import)"):
                done.append(settle(journal))
        except DatasetBusyError:
            continue  # a live writer holds that dataset; a later import recovers it
        except Exception as exc:  # noqa: BLE001 - another name's leftovers must not stop this import
            if journal.name == current:
                raise DataError(f"An interrupted import of {current!r} could not be finished or removed ({exc}); "
                                f"fix the cause and run the import again (its journal is in the MongoDB "
                                f"collection {COLLECTION!r}).") from exc
            logger.warning("Could not recover the interrupted import of %r: %s", journal.name, exc)
    return [line for line in done if not line.startswith("nothing left")]
