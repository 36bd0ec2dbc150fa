"""Is the process that left something behind (a lease, an import journal, a temporary file) still running?

One answer for the lease, the import journal and the checkpoint folder: a process on this machine, identified by
its pid and, when recorded, its start time (so a reused pid is not mistaken for the writer).
"""

from __future__ import annotations

import os
import socket


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it does not run (or is hidden)."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - no such process, or no permission: treated as not running
        return None


def this_process() -> dict:
    """What identifies this process to a later reader: host, pid, start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": process_started(os.getpid())}


def gone(host: str | None, pid: int | None, started: float | None = None) -> bool:
    """Whether a writer known by host, pid (and start time) is certainly gone: on this machine and not running.

    A writer on another machine is never known to be gone (only its lease's expiry says so).
    """
    if host != socket.gethostname() or not isinstance(pid, int):
        return False
    running_since = process_started(pid)
    if running_since is None:
        return True
    return started is not None and abs(running_since - started) >= 1.0  # the pid was reused
