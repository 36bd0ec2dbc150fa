"""Crash safety of writes (issue 16): kill -9 at named pause points (active_learning.store.faults), then rerun.

Real components: the ``curation`` CLI and worker processes against the test session's MongoDB, real tiny torch
training on a few generated PNGs. A process is stopped with ``CURATION_TEST_PAUSE_AT`` at a pause point, killed
with SIGKILL there, and the rerun must find every recorded checkpoint loadable with its hash, every sample either
fully ingested or untouched, and no history entry twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from active_learning.store.faults import MARKER_VARIABLE, PAUSE_VARIABLE
from active_learning.store.label_history import HISTORY_FIELD, REVIEW_STATUS_FIELD, queue_for_review
from active_learning.label_studio.completed import CompletedTask, Vote
from active_learning.label_studio.ingest import PROVENANCE_FIELD, ingest
from active_learning.model.fixed import FixedModel, file_sha256
from active_learning.model.outputs import DEFAULT_RUN_KEY, checkpoint_dir, load_model
from active_learning.store.runs import load_run
from conftest import REPO_ROOT, run_cli

CLASSES = ["cat", "dog", "fox"]
PROJECT_ID = 7


# ------------------------------------------------------------------------------------------- helpers


def start_paused(argv: list[str], point: str, env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    """Start ``argv`` with the pause point ``point`` armed and return once it is paused there."""
    marker = tmp_path / f"paused-{point.replace(':', '_')}-{time.monotonic_ns()}"
    log = open(tmp_path / f"{marker.name}.log", "w")
    proc = subprocess.Popen(argv, env={**env, PAUSE_VARIABLE: point, MARKER_VARIABLE: str(marker)}, cwd=REPO_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"{argv[:3]} ended (rc {proc.returncode}) before {point}:\n"
                        f"{(tmp_path / f'{marker.name}.log').read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{argv[:3]} did not reach {point} in 300 s")
        time.sleep(0.05)
    log.close()
    return proc


def kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


LEASE_SECONDS = 2.0  # a killed command's writer lease (active_learning.store.lease) runs out this soon in these tests


@pytest.fixture
def short_lease_env(cli_env) -> dict[str, str]:
    return {**cli_env, "CURATION_LEASE_SECONDS": str(LEASE_SECONDS)}


def write_images(folder: Path, per_class: int = 12) -> Path:
    """Two classes of small grayscale PNGs (bright and dark noise) in class subfolders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, low in (("bright", 150), ("dark", 0)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(low, low + 100, size=(12, 12), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / name / f"{i:02d}.png")
    return folder


def own_checkpoints(dataset, run_key: str) -> set[str]:
    folder = checkpoint_dir(dataset)
    pattern = re.compile(rf"^{run_key}(-[0-9a-f]{{16}})?\.pt$")
    return {p.name for p in folder.iterdir() if pattern.match(p.name)} if folder.is_dir() else set()


def leave_temp_files(folder: Path, stem: str, dead_pid: int) -> tuple[Path, Path]:
    """A temp file of a killed writer and one of a live writer (this test process), both older than any rerun."""
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / f".{stem}.{dead_pid}.0badf00d.tmp"
    live = folder / f".{stem}.{os.getpid()}.0c0ffee0.tmp"
    for path in (stale, live):
        path.write_bytes(b"half a checkpoint")
        old = time.time() - 120
        os.utime(path, (old, old))
    return stale, live


# ------------------------------------------------------------------------- (1) checkpoint, then run record


def test_kill_9_between_checkpoint_save_and_run_record_keeps_the_recorded_model(dataset_name, short_lease_env,
                                                                                tmp_path):
    import fiftyone as fo

    cli_env = short_lease_env

    folder = write_images(tmp_path / "images")
    assert run_cli(["import", "--name", dataset_name, "--data", str(folder)], cli_env).returncode == 0
    model = ["model", dataset_name, "--epochs", "1", "--folds", "2", "--tta-px", "0"]
    first = run_cli(model + ["--seeds", "0"], cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    dataset = fo.load_dataset(dataset_name)
    _, recorded = load_run(dataset, DEFAULT_RUN_KEY)
    first_checkpoint = Path(recorded["checkpoint"])
    assert re.fullmatch(rf"{DEFAULT_RUN_KEY}-{recorded['checkpoint_sha256'][:16]}\.pt", first_checkpoint.name)

    # Another model run (another seed: other weights) is killed after its checkpoint is on disk, before its record.
    exe = str(Path(sys.executable).with_name("curation"))
    killed = start_paused([exe, *model, "--seeds", "1"], "model:after-checkpoint-save", cli_env, tmp_path)
    kill_9(killed)
    dataset.reload()
    _, after_kill = load_run(dataset, DEFAULT_RUN_KEY)
    assert after_kill["checkpoint"] == str(first_checkpoint)
    assert after_kill["checkpoint_sha256"] == recorded["checkpoint_sha256"] == file_sha256(first_checkpoint)
    load_model(dataset, device="cpu")  # was: "Checkpoint ... changed since it was recorded (SHA-256 mismatch)"
    orphans = own_checkpoints(dataset, DEFAULT_RUN_KEY) - {first_checkpoint.name}
    assert len(orphans) == 1, "the killed run's checkpoint is on disk under its own name"
    stale, live = leave_temp_files(checkpoint_dir(dataset), DEFAULT_RUN_KEY, killed.pid)

    time.sleep(LEASE_SECONDS + 0.5)  # the killed command's lease on the dataset runs out
    rerun = run_cli(model + ["--seeds", "2"], cli_env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    dataset.reload()
    _, final = load_run(dataset, DEFAULT_RUN_KEY)
    loaded = load_model(dataset, device="cpu")
    assert loaded.num_classes == 2 and file_sha256(final["checkpoint"]) == final["checkpoint_sha256"]
    # Only the recorded checkpoint is left: the replaced one and the killed run's orphan are collected.
    assert own_checkpoints(dataset, DEFAULT_RUN_KEY) == {Path(final["checkpoint"]).name}
    assert not stale.exists(), "a temp file of a killed writer is cleaned by the next run"
    assert live.exists(), "a temp file of a live writer is left alone"
    live.unlink()


# ---------------------------------------------------------------------------------- loop retrain checkpoints


RETRAIN_WORKER = """
import sys
import fiftyone as fo
from active_learning.loop.rounds import LoopConfig, RoundState, step_retrain
dataset = fo.load_dataset(sys.argv[1])
config = LoopConfig(label_field="ground_truth", eval_field="ground_truth", epochs=1, min_steps=0)
step_retrain(dataset, config, RoundState(index=0), sorted(dataset.distinct("ground_truth.label")))
"""


def test_retrain_killed_after_its_checkpoint_is_saved_resumes_with_one_recorded_checkpoint(
        dataset_name, cli_env, tmp_path):
    import fiftyone as fo

    from active_learning.loop.rounds import LoopConfig, list_rounds, round_key, step_retrain

    folder = write_images(tmp_path / "images")
    assert run_cli(["import", "--name", dataset_name, "--data", str(folder)], cli_env).returncode == 0
    worker = [sys.executable, "-c", RETRAIN_WORKER, dataset_name]
    killed = start_paused(worker, "loop:after-checkpoint-save", cli_env, tmp_path)
    kill_9(killed)
    dataset = fo.load_dataset(dataset_name)
    key = round_key(0)
    assert key not in dataset.list_runs(), "killed before the round was recorded"
    (orphan,) = own_checkpoints(dataset, key)
    stale, live = leave_temp_files(checkpoint_dir(dataset), key, killed.pid)

    rerun = subprocess.run(worker, env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    dataset.reload()
    (state,) = list_rounds(dataset)
    assert state.step == "select"  # step_retrain records the checkpoint itself; run_round moves the step on
    model = FixedModel.load(state.checkpoint, state.checkpoint_sha256)  # verified against the recorded hash
    assert model.num_classes == 2
    # One checkpoint is left, the recorded one: CPU training is deterministic, so the rerun wrote the killed run's
    # bytes again, under the same content-addressed name (had they differed, the orphan would be collected).
    assert own_checkpoints(dataset, key) == {Path(state.checkpoint).name}
    assert orphan == Path(state.checkpoint).name or not (checkpoint_dir(dataset) / orphan).exists()
    assert not stale.exists() and live.exists()
    live.unlink()

    # A recorded round is not retrained, and its file is left as it is.
    mtime = Path(state.checkpoint).stat().st_mtime_ns
    config = LoopConfig(label_field="ground_truth", eval_field="ground_truth", epochs=1, min_steps=0)
    step_retrain(dataset, config, state, ["bright", "dark"])
    assert Path(state.checkpoint).stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------------------- (2) ingest


INGEST_WORKER = """
import json, sys
import fiftyone as fo
from active_learning.label_studio.completed import CompletedTask, Vote
from active_learning.label_studio.ingest import ingest
dataset = fo.load_dataset(sys.argv[1])
tasks = [CompletedTask(**{**t, "votes": tuple(Vote(**v) for v in t["votes"])}) for t in json.loads(sys.argv[2])]
ingest(dataset, tasks, "ground_truth", 0, int(sys.argv[3]))
"""


@pytest.fixture
def labeled(dataset_name):
    """40 samples: labels cat/dog/none in turn, the first 10 queued for review."""
    import fiftyone as fo

    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = CLASSES
    dataset.add_samples([fo.Sample(filepath=f"/tmp/crash-{i}.png") for i in range(40)])
    dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    ids = dataset.values("id")
    dataset.set_values("ground_truth", {i: fo.Classification(label=["cat", "dog"][n % 3])
                                        for n, i in enumerate(ids) if n % 3 < 2}, key_field="id")
    queue_for_review(dataset, ids[:10], "suspected label error")
    return dataset


def annotations(dataset) -> list[CompletedTask]:
    """One finished task per sample: every third sample confirms its label, the others get another one."""
    tasks = []
    for n, (sample_id, label) in enumerate(zip(*dataset.values(["id", "ground_truth.label"]))):
        new = label if (n % 4 == 0 and label) else CLASSES[(n + 1) % 3]
        vote = Vote(annotation_id=1000 + n, label=new, annotator_id=3, annotator_email="ann@example.com",
                    created_at="2026-01-01T00:00:00+00:00", updated_at="2026-01-01T00:00:00+00:00")
        tasks.append(CompletedTask(task_id=500 + n, sample_id=sample_id, round_index=0, label=new, agreement=1.0,
                                   votes=(vote,)))
    return tasks


def snapshot(dataset) -> dict[str, list]:
    """Field -> values of every sample, for the fields the ingest reads or writes that the schema has."""
    dataset.reload()
    schema = dataset.get_field_schema()
    fields = [f for f in ("id", "ground_truth.label", HISTORY_FIELD, PROVENANCE_FIELD, REVIEW_STATUS_FIELD)
              if f.split(".")[0] in schema]
    return dict(zip(fields, dataset.values(fields)))


def assert_ingested_once(dataset, tasks: list[CompletedTask], before: dict[str, str | None]) -> None:
    """Each sample: the annotated label, at most one history entry (old = the label before), provenance with the
    right previous label, review done for queued samples."""
    dataset.reload()
    ids, labels, histories, provenance, status = dataset.values(
        ["id", "ground_truth.label", HISTORY_FIELD, PROVENANCE_FIELD, REVIEW_STATUS_FIELD])
    by_id = {t.sample_id: t for t in tasks}
    for n, sample_id in enumerate(ids):
        task, old = by_id[sample_id], before[sample_id]
        assert labels[n] == task.label
        entries = histories[n] or []
        if old == task.label:
            assert entries == [], f"sample {n}: a confirmation is no change"
        else:
            assert [(e["old"], e["new"], e["source"]) for e in entries] == [(old, task.label, "label_studio")], \
                f"sample {n}: exactly one history entry"
        assert provenance[n]["previous_label"] == old and provenance[n]["fingerprint"] == task.fingerprint
        assert status[n] == ("done" if n < 10 else None)


def run_ingest_worker(dataset_name: str, tasks: list[CompletedTask], env: dict[str, str], tmp_path: Path,
                      pause_at: str) -> None:
    worker = [sys.executable, "-c", INGEST_WORKER, dataset_name, json.dumps([asdict(t) for t in tasks]),
              str(PROJECT_ID)]
    kill_9(start_paused(worker, pause_at, env, tmp_path))


def test_kill_9_before_the_ingest_bulk_write_leaves_every_sample_untouched(labeled, cli_env, tmp_path):
    tasks = annotations(labeled)
    before = dict(zip(*labeled.values(["id", "ground_truth.label"])))
    untouched = snapshot(labeled)
    run_ingest_worker(labeled.name, tasks, cli_env, tmp_path, "labels:before-bulk-write")
    after_kill = snapshot(labeled)
    for name in ("id", "ground_truth.label", REVIEW_STATUS_FIELD):
        assert after_kill[name] == untouched[name]
    for name in (HISTORY_FIELD, PROVENANCE_FIELD):  # at most declared (before the write), never written
        assert after_kill.get(name, [None] * 40) == [None] * 40

    report = ingest(labeled, tasks, "ground_truth", 0, PROJECT_ID)
    assert report.new == 40 and report.unchanged == 0 and report.marked_done == 10
    assert report.changed == sum(1 for t in tasks if t.label != before[t.sample_id])
    assert_ingested_once(labeled, tasks, before)


def test_kill_9_after_the_ingest_bulk_write_then_rerun_changes_nothing(labeled, cli_env, tmp_path):
    tasks = annotations(labeled)
    before = dict(zip(*labeled.values(["id", "ground_truth.label"])))
    run_ingest_worker(labeled.name, tasks, cli_env, tmp_path, "labels:after-bulk-write")
    assert_ingested_once(labeled, tasks, before)  # the write was complete before the kill
    state = snapshot(labeled)

    report = ingest(labeled, tasks, "ground_truth", 0, PROJECT_ID)
    assert (report.new, report.changed, report.unchanged, report.marked_done) == (0, 0, 40, 0)
    assert snapshot(labeled) == state


def test_an_ingest_applied_to_part_of_the_samples_is_completed_once_by_the_rerun(labeled):
    """A kill inside the bulk write: MongoDB has applied some of the per-sample updates (each whole), not others."""
    tasks = annotations(labeled)
    before = dict(zip(*labeled.values(["id", "ground_truth.label"])))
    first = ingest(labeled, tasks[::3], "ground_truth", 0, PROJECT_ID)
    assert first.new == len(tasks[::3])
    report = ingest(labeled, tasks, "ground_truth", 0, PROJECT_ID)
    assert report.unchanged == len(tasks[::3]) and report.new == 40 - len(tasks[::3])
    assert_ingested_once(labeled, tasks, before)


def test_ingest_sends_one_update_per_sample_in_one_bulk_write(labeled, monkeypatch):
    from pymongo.collection import Collection

    import fiftyone.core.collections as foc

    calls: list[tuple[str, list]] = []
    original = Collection.bulk_write

    def spy(self, requests, *args, **kwargs):
        calls.append((self.name, list(requests)))
        return original(self, requests, *args, **kwargs)

    def no_set_values(*args, **kwargs):
        raise AssertionError("ingest writes no field with set_values (one write per field is not atomic)")

    tasks = annotations(labeled)
    monkeypatch.setattr(Collection, "bulk_write", spy)
    monkeypatch.setattr(foc.SampleCollection, "set_values", no_set_values)
    report = ingest(labeled, tasks, "ground_truth", 0, PROJECT_ID)
    samples = [ops for name, ops in calls if name == labeled._sample_collection_name]
    assert len(samples) == 1, "one bulk write"
    (ops,) = samples
    assert len(ops) == report.new == 40
    assert len({op._filter["_id"] for op in ops}) == 40, "one update per sample"
    changed = [op for op in ops if HISTORY_FIELD in op._doc[0]["$set"]]
    assert len(changed) == report.changed
    assert all({"ground_truth", PROVENANCE_FIELD, "last_modified_at"} <= set(op._doc[0]["$set"]) for op in changed)
