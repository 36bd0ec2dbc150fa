"""One writer per dataset: a lease in MongoDB that every command changing a dataset holds while it works.

A lease is one document per dataset name in the ``curation_leases`` collection of FiftyOne's database (the same
database every process of a deployment shares, embedded or ``FIFTYONE_DATABASE_URI``). Taking it is one atomic
insert (the name is the document's ``_id``), or one atomic update of an expired lease; the holder renews it every
third of its lifetime from a background thread, and deletes it when done. A process killed with ``kill -9`` stops
renewing, so its lease expires after ``CURATION_LEASE_SECONDS`` (default 60) and the next writer takes it; on the
same machine the next writer sees that the holder's process is gone and takes it at once.

Taking it again in the same thread (a check that computes the model outputs it needs) just counts; another
process, or another thread of this one (two operators in one App server), waits up to ``wait_seconds`` and then
refuses with :class:`DatasetBusyError`, naming the holder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from active_learning.errors import CurationError
from active_learning.store.processes import gone, this_process

COLLECTION = "curation_leases"
SECONDS_VARIABLE = "CURATION_LEASE_SECONDS"
DEFAULT_SECONDS = 60.0
POLL_SECONDS = 0.5


class DatasetBusyError(CurationError):
    """Another process is writing to the dataset (it holds the dataset's lease)."""


@dataclass
class _Held:
    token: str
    count: int
    stop: threading.Event
    thread: threading.Thread


_HELD: dict[tuple[str, int], _Held] = {}
_LOCK = threading.Lock()


def lease_seconds() -> float:
    """How long a lease lives without renewal (``CURATION_LEASE_SECONDS``, default 60)."""
    try:
        value = float(os.environ.get(SECONDS_VARIABLE) or DEFAULT_SECONDS)
    except ValueError:
        raise CurationError(f"{SECONDS_VARIABLE} must be a number of seconds, not "
                            f"{os.environ.get(SECONDS_VARIABLE)!r}.") from None
    return max(value, 1.0)


def _collection():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()[COLLECTION]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def describe_holder(document: dict) -> str:
    """``curation model (pid 1234 on host), since 01:02:03 UTC, lease renewed until 01:03:10 UTC``."""
    since = _utc(document["acquired_at"]).strftime("%H:%M:%S UTC")
    until = _utc(document["expires_at"]).strftime("%H:%M:%S UTC")
    return (f"{document.get('what', 'a writer')} (pid {document.get('pid')} on {document.get('host')}), since "
            f"{since}, lease valid until {until}")


def _try_take(name: str, what: str, token: str, seconds: float) -> dict | None:
    """Take the lease atomically; None when taken, else the holder's document."""
    from pymongo.errors import DuplicateKeyError

    now = _now()
    document = {"_id": name, "token": token, "what": what, **this_process(),
                "acquired_at": now, "expires_at": now + timedelta(seconds=seconds)}
    collection = _collection()
    try:
        collection.insert_one(document)
        return None
    except DuplicateKeyError:
        pass
    update = {"$set": {k: v for k, v in document.items() if k != "_id"}}
    if collection.find_one_and_update({"_id": name, "expires_at": {"$lt": now}}, update) is not None:
        return None
    holder = collection.find_one({"_id": name})
    if holder is not None and _holder_is_dead(holder):  # killed on this machine: no need to wait for the expiry
        if collection.find_one_and_update({"_id": name, "token": holder["token"]}, update) is not None:
            return None
    return holder or {"what": "a writer that just finished", "acquired_at": now, "expires_at": now}


def _holder_is_dead(holder: dict) -> bool:
    """Whether the holder ran on this machine and its process is gone (a kill -9 leaves its lease behind)."""
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        return False  # another thread of this process: alive
    return gone(holder.get("host"), holder.get("pid"), holder.get("pid_started"))


def _renew(name: str, token: str, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds / 3):
        try:
            _collection().update_one({"_id": name, "token": token},
                                     {"$set": {"expires_at": _now() + timedelta(seconds=seconds)}})
        except Exception:  # noqa: BLE001 - a failed renewal is retried; the lease expires only if all fail
            continue


@contextlib.contextmanager
def writer_lease(name: str, what: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the lease of dataset ``name`` for the block (re-entrant within the thread).

    Args:
        name: the dataset's name.
        what: who writes, for the message another writer gets (e.g. ``"curation model"``).
        wait_seconds: how long to wait for another holder to finish before refusing.

    Raises:
        DatasetBusyError: another process holds the lease after ``wait_seconds``.
    """
    key = (name, threading.get_ident())
    with _LOCK:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
    if held is not None:
        try:
            yield
        finally:
            with _LOCK:
                held.count -= 1
        return
    seconds = lease_seconds()
    token = uuid.uuid4().hex
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    while True:
        holder = _try_take(name, what, token, seconds)
        if holder is None:
            break
        if time.monotonic() >= deadline:
            raise DatasetBusyError(
                f"Dataset {name!r} is being changed by {describe_holder(holder)}. Wait for it to finish and run "
                f"this again; a holder that was killed lets go when its lease runs out ({seconds:.0f} s, "
                f"{SECONDS_VARIABLE})."
            )
        time.sleep(POLL_SECONDS)
    stop = threading.Event()
    thread = threading.Thread(target=_renew, args=(name, token, seconds, stop), daemon=True,
                              name=f"lease-{name}")
    thread.start()
    with _LOCK:
        _HELD[key] = _Held(token, 1, stop, thread)
    try:
        yield
    finally:
        with _LOCK:
            _HELD.pop(key, None)
        stop.set()
        _collection().delete_one({"_id": name, "token": token})


def current_holder(name: str) -> dict | None:
    """The lease document of dataset ``name`` if one is valid now, else None."""
    document = _collection().find_one({"_id": name})
    if document is None or _utc(document["expires_at"]) < _now():
        return None
    return document
