"""A real 3-member replica set of FiftyOne's bundled mongod on 127.0.0.1: the primary killed (SIGKILL) in the middle
of an import and in the middle of a bulk label write, and nothing lost or duplicated.

Each writer runs in its own process against ``mongodb://...?replicaSet=rs0`` (what users set in
``FIFTYONE_DATABASE_URI``), stops at a named pause point (``active_learning.store.faults``), the test kills the primary
there, and the writer goes on: its next writes wait for the election and the driver retries them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from services import bundled_mongod, free_port, stop_process, wait_for_port

from conftest import SHARED_DATA

PAUSE_SECONDS = "8"  # the writer waits this long at its pause point: the kill and the election happen meanwhile


class ReplicaSet:
    """Three mongods with ``--replSet rs0``, fast elections, started and initiated in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}
        for port in self.ports:
            self.start(port)
        from pymongo import MongoClient

        first = MongoClient(f"mongodb://127.0.0.1:{self.ports[0]}/?directConnection=true")
        first.admin.command("replSetInitiate", {
            "_id": "rs0", "members": [{"_id": i, "host": f"127.0.0.1:{p}"} for i, p in enumerate(self.ports)],
            "settings": {"electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500}})
        first.close()
        self.uri = f"mongodb://{','.join(f'127.0.0.1:{p}' for p in self.ports)}/?replicaSet=rs0"
        self.primary(timeout=60)

    def start(self, port: int) -> None:
        dbpath = self.root / str(port)
        dbpath.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [str(bundled_mongod()), "--replSet", "rs0", "--dbpath", str(dbpath), "--port", str(port),
             "--bind_ip", "127.0.0.1", "--logpath", str(dbpath / "mongod.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(port, 60, self.procs[port], "mongod")

    def primary(self, timeout: float = 30) -> int:
        """The primary's port, once there is one."""
        from pymongo import MongoClient

        deadline = time.monotonic() + timeout
        while True:
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    continue
                client = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                                     serverSelectionTimeoutMS=2000)
                try:
                    if client.admin.command("hello").get("isWritablePrimary"):
                        return port
                except Exception:  # noqa: BLE001 - a member starting or stepping down
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError("the replica set has no primary")
            time.sleep(0.5)

    def kill_primary(self) -> int:
        port = self.primary()
        os.kill(self.procs[port].pid, signal.SIGKILL)
        self.procs[port].wait()
        return port

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)


@pytest.fixture
def replica_set(tmp_path):
    members = ReplicaSet(tmp_path / "rs")
    try:
        yield members
    finally:
        members.stop()


def writer(args: list[str], env: dict[str, str], pause_at: str, marker: Path, log: Path) -> subprocess.Popen:
    env = dict(env, CURATION_TEST_PAUSE_AT=pause_at, CURATION_TEST_PAUSE_MARKER=str(marker),
               CURATION_TEST_PAUSE_SECONDS=PAUSE_SECONDS)
    with open(log, "w") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def wait_for(marker: Path, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"the writer ended before its pause point:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the writer never reached its pause point:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def rs_env(cli_env: dict[str, str], uri: str, tmp_path: Path) -> dict[str, str]:
    return dict(cli_env, FIFTYONE_DATABASE_URI=uri, FIFTYONE_DEFAULT_DATASET_DIR=str(tmp_path / "datasets"))


QUERY = """
import json, sys
import fiftyone as fo
dataset = fo.load_dataset(sys.argv[1])
labels = dataset.values("ground_truth.label")
has = "label_history" in dataset.get_field_schema()
histories = dataset.values("label_history") if has else [None] * len(labels)
files = sum(__import__("os").path.isfile(p) for p in dataset.values("filepath"))
print(json.dumps({"n": len(dataset), "files": files, "labels": labels,
                  "history": [len(h or []) for h in histories]}))
"""

RELABEL = """
import sys
import fiftyone as fo
from active_learning.store.label_history import set_labels
dataset = fo.load_dataset(sys.argv[1])
ids, labels = dataset.values(["id", "ground_truth.label"])
classes = dataset.default_classes
new = {i: classes[(classes.index(label) + 1) % len(classes)] for i, label in zip(ids, labels)}
print("changed", set_labels(dataset, new, "ground_truth", why="failover test"), flush=True)
"""


def query(uri_env: dict[str, str], name: str) -> dict:
    import json

    result = subprocess.run([sys.executable, "-c", QUERY, name], env=uri_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_primary_killed_during_an_import_and_during_a_label_write_loses_nothing(
    replica_set, cli_env, tmp_path
) -> None:
    env = rs_env(cli_env, replica_set.uri, tmp_path)
    exe = str(Path(sys.executable).with_name("curation"))
    name = "rs-failover"

    # 1. an import: the primary dies when the new dataset is complete under its staging name, before the swap
    marker, log = tmp_path / "import.paused", tmp_path / "import.log"
    proc = writer([exe, "import", "--name", name, "--data", str(SHARED_DATA / "fashion-mnist"),
                   "--max-per-split", "60"], env, "import:before-swap", marker, log)
    wait_for(marker, proc, log)
    killed = replica_set.kill_primary()
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    assert replica_set.primary() != killed, "a new primary was elected"
    imported = query(env, name)
    assert imported["n"] == 120 and imported["files"] == 120, imported

    # the killed member rejoins as a secondary; 2. a bulk label write: the primary dies just before it
    replica_set.start(killed)
    marker, log = tmp_path / "labels.paused", tmp_path / "labels.log"
    proc = writer([sys.executable, "-c", RELABEL, name], env, "labels:before-bulk-write", marker, log)
    wait_for(marker, proc, log)
    second = replica_set.kill_primary()
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    assert "changed 120" in log.read_text()
    assert replica_set.primary() != second
    relabeled = query(env, name)
    assert relabeled["n"] == 120 and relabeled["history"] == [1] * 120, "every change written once, none lost"
    assert relabeled["labels"] != imported["labels"]
