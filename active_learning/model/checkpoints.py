"""Checkpoint files: content-addressed names, crash-atomic writes, the SHA-256 that runs record.

Model weights are the one state kept outside MongoDB: a file whose path and hash go into the run. A checkpoint is
written under a temporary name (``.<stem>.<pid>.<random>.tmp``), flushed to disk, hashed and renamed to
``<stem>-<sha256[:16]>.pt``, so a name a run recorded is never replaced and a killed writer leaves only a temporary
file that ``active_learning.model.outputs.collect_checkpoints`` removes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # checkpoints being written; a killed writer leaves one (see temp_file_writer)


def checkpoint_name(stem: str, sha256: str) -> str:
    """The file name of a content-addressed checkpoint: ``<stem>-<sha256[:16]>.pt``."""
    return f"{stem}-{sha256[:16]}.pt"


def temp_file_writer(path: str | Path) -> int | None:
    """The process id that wrote the temporary checkpoint ``path`` (``.<stem>.<pid>.<random>.tmp``), if named."""
    parts = Path(path).name.rsplit(".", 3)
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


def durable_rename(temp: Path, path: Path) -> None:
    """Rename ``temp`` to ``path`` (atomic, replacing it) and flush the folder, so the new name survives a crash."""
    os.replace(temp, path)
    try:
        descriptor = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some platforms): the rename stands, unflushed
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
