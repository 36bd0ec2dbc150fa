"""One writer per dataset: the lease in the real MongoDB, held by real processes (one killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from active_learning.store.lease import DatasetBusyError, current_holder, writer_lease
from conftest import run_cli

HOLD = """
import sys, time
from active_learning.store.lease import writer_lease
with writer_lease(sys.argv[1], "a test holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture(autouse=True)
def _no_lease_left(dataset_name):
    """The killed holders leave their leases behind (that is the point): remove them after each test."""
    yield
    import fiftyone.core.odm as foo

    from active_learning.store.lease import COLLECTION

    foo.get_db_conn()[COLLECTION].delete_many({"_id": dataset_name})


def hold_in_subprocess(name: str, seconds: float, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, name, str(seconds)], env=env, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held", "the holder took the lease"
    return proc


def test_a_second_writer_is_refused_with_the_holder_named_then_waits_it_out(dataset_name, cli_env) -> None:
    holder = hold_in_subprocess(dataset_name, 3.0, cli_env)
    try:
        with pytest.raises(DatasetBusyError) as refused:
            with writer_lease(dataset_name, "the test"):
                pass
        message = str(refused.value)
        assert "a test holder" in message and f"pid {holder.pid}" in message and "CURATION_LEASE_SECONDS" in message
        started = time.monotonic()
        with writer_lease(dataset_name, "the test", wait_seconds=30):
            assert current_holder(dataset_name)["what"] == "the test"
        assert time.monotonic() - started < 15, "taken as soon as the holder let go"
    finally:
        holder.kill()
        holder.wait()
    assert current_holder(dataset_name) is None, "released at the end of the block"


def test_a_holder_killed_on_this_machine_is_taken_over_at_once(dataset_name, cli_env) -> None:
    holder = hold_in_subprocess(dataset_name, 600.0, cli_env)
    assert current_holder(dataset_name)["pid"] == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with writer_lease(dataset_name, "the rerun"):  # no waiting: the holder's process is gone
        assert current_holder(dataset_name)["what"] == "the rerun"


def test_a_lease_left_by_another_machine_expires(dataset_name, monkeypatch) -> None:
    """A holder elsewhere cannot be checked for life: its lease must run out (it renews every third of it)."""
    from datetime import datetime, timedelta, timezone

    from active_learning.store.lease import COLLECTION

    import fiftyone.core.odm as foo

    now = datetime.now(timezone.utc)
    foo.get_db_conn()[COLLECTION].insert_one(
        {"_id": dataset_name, "token": "t", "what": "curation model", "pid": 1, "host": "another-machine",
         "acquired_at": now, "expires_at": now + timedelta(seconds=2)})
    with pytest.raises(DatasetBusyError, match="curation model .pid 1 on another-machine"):
        with writer_lease(dataset_name, "too early"):
            pass
    with writer_lease(dataset_name, "after the expiry", wait_seconds=10):
        assert current_holder(dataset_name)["what"] == "after the expiry"


def test_the_lease_is_reentrant_in_a_thread_and_exclusive_between_threads(dataset_name) -> None:
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            with writer_lease(dataset_name, "another thread"):
                pass
        except DatasetBusyError as error:
            errors.append(error)

    with writer_lease(dataset_name, "outer"):
        with writer_lease(dataset_name, "inner: a check computing its model outputs"):
            assert current_holder(dataset_name)["what"] == "outer"
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert current_holder(dataset_name) is not None, "the inner block did not release the outer's lease"
    assert len(errors) == 1 and "outer" in str(errors[0])


def test_the_cli_refuses_a_second_writer_and_names_the_first(dataset_name, cli_env) -> None:
    holder = hold_in_subprocess(dataset_name, 60.0, cli_env)
    try:
        result = run_cli(["import", "--name", dataset_name], cli_env)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"Dataset {dataset_name!r} is being changed by a test holder (pid {holder.pid}" in result.stderr
    assert "Traceback" not in result.stderr
    import fiftyone as fo

    assert not fo.dataset_exists(dataset_name), "nothing was written"
