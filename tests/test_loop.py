"""The active-learning loop against the real Label Studio server and MongoDB, with real (tiny) torch training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from active_learning.errors import DataError
from active_learning.label_studio.connection import LabelStudioSettings, connect
from active_learning.loop.rounds import init_loop, run_round
from active_learning.loop.state import LoopConfig, list_rounds
from conftest import run_cli

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def client(label_studio):
    return connect(LabelStudioSettings(url=label_studio.url, api_key=label_studio.personal_access_token, timeout=60))


@pytest.fixture
def pool_dataset(dataset_name, tmp_path):
    """Digits with 60% of train tagged pool; images under tmp_path (served by the fixture's local-files root)."""
    from active_learning.data.importers import import_dataset

    return import_dataset(dataset_name, None, pool_fraction=0.6, progress=False, media_dir=str(tmp_path / "media"))


def project_tasks(client, project_id: int) -> list[dict]:
    return client.list_tasks(project_id, with_predictions=True)


CONFIG = dict(label_field="al_label", eval_field="ground_truth", strategy="margin", batch_size=20, initial_size=30,
              epochs=1, min_steps=0)  # tiny trainings: exactly one epoch, no step floor


def test_two_rounds_simulated_with_provenance_and_resume(pool_dataset, client):
    config = LoopConfig(**CONFIG, project_title=f"t-{pool_dataset.name[-40:]}")
    project_id = init_loop(pool_dataset, config, client)
    assert init_loop(pool_dataset, config, client) == project_id, "init is idempotent"

    first = run_round(pool_dataset, client, simulate_field="ground_truth")
    assert first.step == "done" and first.strategy == "random" and len(first.selected) == 30
    assert first.num_labeled == 30 and 0.0 <= first.accuracy <= 1.0
    assert set(first.per_class_f1) == set(pool_dataset.default_classes)
    pool_dataset.reload()
    labeled = pool_dataset.exists("al_label.label")
    assert set(labeled.values("id")) == set(first.selected)
    assert labeled.values("al_label.label") == labeled.values("ground_truth.label"), "simulated from the truth"
    provenance = labeled.first().ls_provenance
    assert provenance["project_id"] == project_id and provenance["round"] == 0 and provenance["agreement"] == 1.0

    # A crash in the middle of the next round: select and push happened, then the process died.
    second = run_round(pool_dataset, client)  # no annotator: stops at annotate, saved
    assert second.step == "annotate" and second.strategy == "margin" and len(second.task_ids) == 20
    assert not set(second.selected) & set(first.selected)
    resumed = run_round(pool_dataset, client, simulate_field="ground_truth")
    assert resumed.index == 1 and resumed.step == "done" and resumed.num_labeled == 50
    assert len(project_tasks(client, project_id)) == 50, "no duplicate tasks after resuming"
    assert [r.num_labeled for r in list_rounds(pool_dataset) if r.step == "done"] == [30, 50]

    # Ingesting again changes nothing.
    result = run_cli(["al", "ingest", pool_dataset.name, "--ls-url", client_url(client)],
                     env_with_token(client))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Ingested: 0 new" in result.stdout and "50 already ingested" in result.stdout

    # The App: the panel's data and the ingest operator through FiftyOne's executor.
    import fiftyone.operators as foo

    from curation_app.active_learning_panel import active_learning_data

    data = active_learning_data(pool_dataset)
    assert data["project_id"] == project_id and data["current_step"] == "done"
    (trace,) = data["traces"]
    assert trace["x"] == [30, 50] and trace["y"] == [round(first.accuracy, 4), round(resumed.accuracy, 4)]
    assert [row["step"] for row in data["rounds"]] == ["done", "done"]
    os.environ["LABEL_STUDIO_URL"] = client_url(client)
    os.environ["LABEL_STUDIO_API_KEY"] = os.environ["CURATION_TEST_LS_TOKEN"]
    try:
        executed = foo.execute_operator("@curation/fiftyone-curation/al_ingest",
                                        ctx={"dataset": pool_dataset.name, "params": {}})
    finally:
        del os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"]
    assert executed.error is None, executed.error
    assert executed.result == {"new": 0, "unchanged": 50, "invalid": 0}


def client_url(client) -> str:
    return os.environ["CURATION_TEST_LS_URL"]


def env_with_token(client) -> dict[str, str]:
    return dict(os.environ, LABEL_STUDIO_API_KEY=os.environ["CURATION_TEST_LS_TOKEN"], PYTHONUNBUFFERED="1")


@pytest.fixture(autouse=True)
def _ls_env(label_studio, monkeypatch):
    monkeypatch.setenv("CURATION_TEST_LS_URL", label_studio.url)
    monkeypatch.setenv("CURATION_TEST_LS_TOKEN", label_studio.personal_access_token)
    # The server serves local files under this root; the client must build its image URLs against the same one.
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.local_files_root))


def test_kill_9_mid_round_then_resume(pool_dataset, client, label_studio):
    config = LoopConfig(**{**CONFIG, "epochs": 3}, project_title=f"k-{pool_dataset.name[-40:]}")
    project_id = init_loop(pool_dataset, config, client)
    env = env_with_token(client)
    exe = os.path.join(os.path.dirname(sys.executable), "curation")
    proc = subprocess.Popen([exe, "al", "round", pool_dataset.name, "--simulate-annotator", "ground_truth",
                             "--ls-url", label_studio.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 300
    step = None
    while time.monotonic() < deadline and proc.poll() is None:
        pool_dataset.reload()  # the round runs in another process
        rounds = list_rounds(pool_dataset)
        step = rounds[-1].step if rounds else None
        if step in ("retrain", "evaluate"):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the round ended before it could be killed:\n{proc.stdout.read()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    pool_dataset.reload()
    assert list_rounds(pool_dataset)[-1].step in ("retrain", "evaluate")

    result = run_cli(["al", "round", pool_dataset.name, "--simulate-annotator", "ground_truth", "--ls-url",
                      label_studio.url], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Round 0 (random): step done" in result.stdout
    pool_dataset.reload()
    rounds = list_rounds(pool_dataset)
    assert len(rounds) == 1 and rounds[0].step == "done" and rounds[0].num_labeled == 30
    assert len(project_tasks(client, project_id)) == 30, "no duplicate tasks"
    pool_dataset.reload()
    assert len(pool_dataset.exists("al_label.label")) == 30, "no lost or duplicated labels"
    status = run_cli(["al", "status", pool_dataset.name, "--ls-url", label_studio.url], env)
    assert "round   0  random" in status.stdout and "trained on     30" in status.stdout
    assert "pushed   30  annotated   30  skipped   0  ingested   30" in status.stdout
    assert f"{label_studio.url}/projects/{project_id}/data" in status.stdout


def test_a_loop_recorded_before_the_step_floor_keeps_training_without_it(pool_dataset):
    """The model and recipe are fixed per loop: a loop recorded without ``min_steps`` resumes with none, while a new
    loop gets the default floor."""
    from dataclasses import asdict

    from active_learning.loop.state import LOOP_RUN_KEY, load_config
    from active_learning.model.fixed import LOOP_MIN_STEPS
    from active_learning.store.runs import record_run

    old = {k: v for k, v in asdict(LoopConfig(**{**CONFIG, "min_steps": 5})).items() if k != "min_steps"}
    record_run(pool_dataset, LOOP_RUN_KEY, {"kind": "al_loop", **old}, {"project_id": 7, "classes": ["0", "1"]})
    loaded, project_id = load_config(pool_dataset)
    assert project_id == 7 and loaded.min_steps == 0 and loaded.recipe().min_steps == 0
    assert loaded == LoopConfig(**CONFIG)
    fresh = LoopConfig()
    assert fresh.min_steps == LOOP_MIN_STEPS == 1000 and fresh.recipe().min_steps == 1000
    assert fresh.recipe().epochs == 12 and LoopConfig(epochs=3).recipe().epochs == 3


def test_init_refuses_without_pool(dataset_name, client, tmp_path):
    from active_learning.data.importers import import_dataset

    dataset = import_dataset(dataset_name, None, progress=False, media_dir=str(tmp_path / "media"))
    with pytest.raises(DataError, match="No sample is tagged 'pool'"):
        init_loop(dataset, LoopConfig(**CONFIG), client)
    assert "al_loop" not in dataset.list_runs()


def test_round_before_init_is_a_clear_cli_error(pool_dataset, cli_env):
    result = run_cli(["al", "round", pool_dataset.name], cli_env)
    assert result.returncode == 2 and "curation al init" in result.stderr


def test_review_queue_goes_out_with_the_next_round(pool_dataset, client):
    from active_learning.store.label_history import queue_for_review

    config = LoopConfig(**CONFIG, project_title=f"r-{pool_dataset.name[-40:]}")
    init_loop(pool_dataset, config, client)
    suspects = pool_dataset.match_tags("train").take(3, seed=1).values("id")
    assert queue_for_review(pool_dataset, suspects, "suspected label error") == 3
    state = run_round(pool_dataset, client, simulate_field="ground_truth")
    assert state.step == "done" and sorted(state.review) == sorted(suspects)
    assert set(suspects) <= set(state.task_ids), "the review samples were pushed in the same round"
    assert len(state.task_ids) == 33
    pool_dataset.reload()
    reviewed = pool_dataset.select(suspects)
    assert reviewed.values("review_status") == ["done"] * 3
    assert reviewed.values("al_label.label") == reviewed.values("ground_truth.label")
    assert all(p["round"] == 0 for p in reviewed.values("ls_provenance"))


@pytest.mark.parametrize("strategy", ["margin_diverse", "k_center_greedy"])
def test_embedding_strategies_select_through_the_loop(pool_dataset, client, strategy):
    """Strategies that read embeddings (and the labeled set's) pick, in the loop, exactly what the pure function
    picks from the previous round's checkpoint over the unlabeled pool."""
    import numpy as np

    from active_learning.data.images import load_images
    from active_learning.loop.rounds import candidates, training_view
    from active_learning.model.fixed import FixedModel
    from active_learning.loop.strategies import select

    config = LoopConfig(**{**CONFIG, "strategy": strategy, "min_steps": 4},
                        project_title=f"e-{pool_dataset.name[-40:]}")
    init_loop(pool_dataset, config, client)
    first = run_round(pool_dataset, client, simulate_field="ground_truth")
    pool_dataset.reload()
    model = FixedModel.load(first.checkpoint, first.checkpoint_sha256)
    assert model.recipe.min_steps == 4 and model.recipe.epochs == 1, "the loop's recipe overrides reach the model"
    pool = candidates(pool_dataset, config, [first])
    ids, paths = pool.values(["id", "filepath"])
    probs, embeddings = model.predict_proba_and_embed(load_images(paths, model.recipe.image_size))
    labeled = load_images(training_view(pool_dataset, config).values("filepath"), model.recipe.image_size)
    expected = select(strategy, probs, embeddings, config.batch_size, random_state=config.seed + 1,
                      labeled_embeddings=model.embed(labeled))

    second = run_round(pool_dataset, client)  # no annotator: selects, pushes, stops at annotate
    assert second.strategy == strategy and second.step == "annotate"
    assert second.selected == [ids[i] for i in expected]
    assert len(set(second.selected)) == config.batch_size and not set(second.selected) & set(first.selected)
    assert np.isfinite(embeddings).all()


def test_round_0_is_pre_annotated_by_the_dataset_model_and_review_tasks_show_the_suggestion(pool_dataset, client):
    """Round 0 has no loop model yet: the dataset's fixed-model run (``curation model``) pre-annotates it; a review
    sample's task pre-selects its suggested label and says what its label is now and why it is back."""
    from active_learning.store.label_history import queue_for_review
    from active_learning.model.fixed import named_recipe
    from active_learning.model.outputs import compute_model_outputs

    compute_model_outputs(pool_dataset.match_tags("train"), folds=2, recipe=named_recipe("fast", epochs=1))
    suspect = pool_dataset.match_tags("train").first()
    given = suspect.ground_truth.label
    suggested = next(c for c in pool_dataset.default_classes if c != given)
    suspect["label_issue_suggested"], suspect["label_issue_confidence"] = suggested, 0.93
    suspect.save()
    queue_for_review(pool_dataset, [suspect.id], "suspected label error")

    config = LoopConfig(**{**CONFIG, "initial_size": 6}, project_title=f"p-{pool_dataset.name[-40:]}")
    project_id = init_loop(pool_dataset, config, client)
    state = run_round(pool_dataset, client)  # no annotator: pushes, then waits
    assert state.step == "annotate" and state.predictions_from == "curation_model"
    assert state.with_prediction == len(state.task_ids) == 7
    tasks = {t["data"]["sample_id"]: t for t in project_tasks(client, project_id)}
    for sample_id in state.selected:
        (prediction,) = tasks[sample_id]["predictions"]
        assert prediction["model_version"] == "al_round_000" and 0 < prediction["score"] <= 1
        assert prediction["result"][0]["value"]["choices"][0] in pool_dataset.default_classes
        assert "the model's guess" in tasks[sample_id]["data"]["note"]
    (review,) = tasks[suspect.id]["predictions"]
    assert review["result"][0]["value"]["choices"] == [suggested] and review["score"] == pytest.approx(0.93)
    note = tasks[suspect.id]["data"]["note"]
    assert f"labeled {given!r} now" in note and "suspected label error" in note and suggested in note
    assert client.get_project(project_id).model_version == "al_round_000", "the labeling view shows them"


def test_skipped_tasks_complete_the_round_and_go_back_to_the_pool(pool_dataset, client):
    from active_learning.label_studio.simulate import SimulatedAnnotator
    from active_learning.loop.rounds import candidates, ingest_current_round, round_progress

    config = LoopConfig(**CONFIG, project_title=f"s-{pool_dataset.name[-40:]}")
    project_id = init_loop(pool_dataset, config, client)
    annotator = SimulatedAnnotator(skip_fraction=0.3, wrong_fraction=0.2, seed=3)
    first = run_round(pool_dataset, client, simulate_field="ground_truth", annotator=annotator)
    assert first.step == "done", "a round with skipped tasks completes"
    assert 0 < len(first.skipped) < 30 and first.annotated == 30 - len(first.skipped)
    assert first.predictions_from == "" and first.with_prediction == 0, "no model yet: nothing pre-selected"
    pool_dataset.reload()
    labeled = pool_dataset.exists("al_label.label")
    assert set(labeled.values("id")) == set(first.selected) - set(first.skipped)
    assert first.num_labeled == 30 - len(first.skipped)
    wrong = sum(a != b for a, b in zip(*labeled.values(["al_label.label", "ground_truth.label"])))
    assert 0 < wrong < len(labeled), "the annotator errs on purpose, and its answers are what is ingested"
    assert set(first.skipped) <= set(candidates(pool_dataset, config, [first]).values("id")), "back in the pool"
    figures = round_progress(pool_dataset, first)
    assert (figures.pushed, figures.annotated, figures.skipped, figures.ingested) == (
        30, 30 - len(first.skipped), len(first.skipped), 30 - len(first.skipped))

    second = run_round(pool_dataset, client)  # waits: nothing annotated yet
    assert second.predictions_from == "al_round_000" and second.with_prediction == len(second.task_ids) == 20
    tasks = [t for t in project_tasks(client, project_id) if t["id"] in set(second.task_ids.values())]
    assert all(t["predictions"] and t["predictions"][0]["model_version"] == "al_round_001" for t in tasks)
    some = dict(list(second.task_ids.items())[:5])
    for task_id in some.values():
        client.create_annotation(task_id, [], was_cancelled=True)
    report = ingest_current_round(pool_dataset, client)
    assert report.skipped_tasks == len(first.skipped) + 5
    pool_dataset.reload()
    waiting = list_rounds(pool_dataset)[-1]
    assert waiting.step == "annotate" and sorted(waiting.skipped) == sorted(some), "the ingest counted the skips"
    assert round_progress(pool_dataset, waiting).open == 15


def test_two_ingests_at_the_same_instant_report_the_truth(pool_dataset, client):
    """Two ingests at once (two App users, a CLI and the App): the lease makes the second wait for the first, so the
    labels are ingested once and only one of them reports them as new."""
    import threading

    from active_learning.label_studio.simulate import simulate_annotations
    from active_learning.loop.rounds import ingest_current_round

    config = LoopConfig(**CONFIG, project_title=f"c-{pool_dataset.name[-40:]}")
    project_id = init_loop(pool_dataset, config, client)
    state = run_round(pool_dataset, client)
    truth = dict(zip(*pool_dataset.select(list(state.task_ids)).values(["id", "ground_truth.label"])))
    assert simulate_annotations(client, project_id, state.task_ids, truth) == 30
    go = threading.Barrier(2)
    reports = []

    def ingest_now() -> None:
        go.wait()
        reports.append(ingest_current_round(pool_dataset, client))

    threads = [threading.Thread(target=ingest_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted((r.new, r.unchanged) for r in reports) == [(0, 30), (30, 0)]
    pool_dataset.reload()
    histories = pool_dataset.select(list(state.task_ids)).values("label_history")
    assert all(len(h) == 1 for h in histories), "one history entry per label"
