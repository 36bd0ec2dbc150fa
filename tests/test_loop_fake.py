"""The loop's Label Studio logic on the in-memory fake: real MongoDB, real (tiny) torch training, no server.

The same rounds as ``test_loop.py`` without the server's minute of start-up: pushing is idempotent (a rerun never
duplicates tasks), tasks carry the model's pre-annotations, finished, skipped, invalid and majority annotations
are ingested with provenance, a second ingest changes nothing, the review queue goes out with a round, and a
project deleted behind the loop's back stops it with what to do. ``test_label_studio_contract.py`` keeps the fake
honest against the real server.
"""

from __future__ import annotations

import uuid

import pytest
from labelstudio_server import counting_imports

from active_learning.errors import InputError, ProjectDeletedError
from active_learning.label_studio.fake import FakeLabelStudio
from active_learning.label_studio.ingest import PROVENANCE_FIELD
from active_learning.label_studio.simulate import SimulatedAnnotator
from active_learning.loop.rounds import (candidates, ingest_current_round, init_loop, round_progress, run_round,
                                        step_push)
from active_learning.loop.state import LoopConfig, current_round, list_rounds, load_config
from active_learning.store.label_history import HISTORY_FIELD, REVIEW_STATUS_FIELD, queue_for_review

CONFIG = dict(label_field="al_label", eval_field="ground_truth", strategy="margin", batch_size=20, initial_size=30,
              epochs=1, min_steps=0)  # tiny trainings: exactly one epoch, no step floor


@pytest.fixture
def fake(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FakeLabelStudio:
    """A fake Label Studio on this machine that serves local files below pytest's base temporary folder."""
    root = str(tmp_path_factory.getbasetemp())
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", root)
    return FakeLabelStudio(local_files_root=root)


@pytest.fixture
def pool_dataset(dataset_name, tmp_path):
    """Digits with 60% of train tagged pool, images under ``tmp_path``."""
    from active_learning.data.importers import import_dataset

    return import_dataset(dataset_name, None, pool_fraction=0.6, progress=False, media_dir=str(tmp_path / "media"))


def loop_config(**changes) -> LoopConfig:
    return LoopConfig(**{**CONFIG, **changes}, project_title=f"fake {uuid.uuid4().hex[:8]}")


def choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]


def test_two_rounds_with_provenance_resume_and_a_second_ingest_that_changes_nothing(pool_dataset, fake,
                                                                                     monkeypatch) -> None:
    config = loop_config()
    project_id = init_loop(pool_dataset, config, fake)
    assert init_loop(pool_dataset, config, fake) == project_id, "init is idempotent"
    imports = counting_imports(fake, monkeypatch)

    first = run_round(pool_dataset, fake, simulate_field="ground_truth")
    assert first.step == "done" and first.strategy == "random" and len(first.selected) == 30
    assert first.num_labeled == 30 and 0.0 <= first.accuracy <= 1.0 and first.media == "local-files"
    assert first.predictions_from == "" and first.with_prediction == 0, "no model yet: nothing pre-selected"
    pool_dataset.reload()
    labeled = pool_dataset.exists("al_label.label")
    assert set(labeled.values("id")) == set(first.selected)
    assert labeled.values("al_label.label") == labeled.values("ground_truth.label"), "simulated from the truth"
    provenance = labeled.first()[PROVENANCE_FIELD]
    assert provenance["project_id"] == project_id and provenance["round"] == 0 and provenance["agreement"] == 1.0
    assert provenance["annotator_emails"] == [fake.whoami().email]

    second = run_round(pool_dataset, fake)  # no annotator: selects, pushes, stops at annotate, saved
    assert second.step == "annotate" and second.strategy == "margin" and len(second.task_ids) == 20
    assert not set(second.selected) & set(first.selected)
    assert second.predictions_from == "al_round_000" and second.with_prediction == 20
    tasks = {t["id"]: t for t in fake.list_tasks(project_id, with_predictions=True)}
    for sample_id, task_id in second.task_ids.items():
        (prediction,) = tasks[task_id]["predictions"]
        assert prediction["model_version"] == "al_round_001" and 0 < prediction["score"] <= 1
        assert "the model's guess" in tasks[task_id]["data"]["note"]
    assert fake.get_project(project_id).model_version == "al_round_001", "the labeling view shows round 1's"

    resumed = run_round(pool_dataset, fake, simulate_field="ground_truth")
    assert resumed.index == 1 and resumed.step == "done" and resumed.num_labeled == 50
    assert imports == [30, 20] and len(fake.list_tasks(project_id)) == 50, "one import per round, no duplicates"
    assert [r.num_labeled for r in list_rounds(pool_dataset) if r.step == "done"] == [30, 50]

    pool_dataset.reload()
    before = pool_dataset.values(["al_label.label", HISTORY_FIELD, PROVENANCE_FIELD])
    again = ingest_current_round(pool_dataset, fake)
    assert (again.new, again.unchanged) == (0, 50)
    pool_dataset.reload()
    assert pool_dataset.values(["al_label.label", HISTORY_FIELD, PROVENANCE_FIELD]) == before


def test_pushing_again_after_a_crash_never_duplicates_tasks(pool_dataset, fake, monkeypatch) -> None:
    """The push imported the tasks, then the process died before the round was saved: the rerun finds them."""
    config = loop_config(initial_size=8)
    project_id = init_loop(pool_dataset, config, fake)
    run_round(pool_dataset, fake, wait=False)  # pushed and waiting
    state = current_round(pool_dataset)
    imports = counting_imports(fake, monkeypatch)
    saved = dict(state.task_ids)
    state.task_ids = {}
    step_push(pool_dataset, config, state, fake, project_id, list_rounds(pool_dataset))
    assert imports == [] and state.task_ids == saved and len(fake.list_tasks(project_id)) == 8


def test_skipped_wrong_invalid_and_majority_annotations_are_ingested_with_provenance(pool_dataset, fake) -> None:
    config = loop_config(initial_size=6)
    project_id = init_loop(pool_dataset, config, fake)
    state = run_round(pool_dataset, fake)  # waits for annotators
    assert state.step == "annotate" and len(fake.list_tasks(project_id)) == 6
    ids = list(state.task_ids)
    task = [state.task_ids[i] for i in ids]
    truth = dict(zip(*pool_dataset.select(ids).values(["id", "ground_truth.label"])))
    classes = pool_dataset.default_classes
    other = next(c for c in classes if c != truth[ids[1]])
    me, second, third = fake.whoami(), fake.create_user("b@example.com", "b"), fake.create_user("c@example.com", "c")

    fake.create_annotation(task[0], choice(truth[ids[0]]))
    votes = [fake.create_annotation(task[1], choice(other), completed_by=me.id),
             fake.create_annotation(task[1], choice(truth[ids[1]]), completed_by=second.id),
             fake.create_annotation(task[1], choice(other), completed_by=third.id)]
    fake.create_annotation(task[2], [], was_cancelled=True)
    bad = fake.create_annotation(task[3], choice("not a digit"))  # stored: the server does not validate
    report = ingest_current_round(pool_dataset, fake)
    assert (report.new, report.changed, report.invalid, report.cancelled, report.skipped_tasks) == (2, 2, 1, 1, 1)
    assert [(a.sample_id, a.annotation_id) for a in report.invalid_annotations] == [(ids[3], bad)]
    assert report.invalid_reasons == {"class 'not a digit' is not in the labeling config": 1}

    pool_dataset.reload()
    majority = pool_dataset[ids[1]]
    assert majority.al_label.label == other, "two of three votes"
    prov = majority[PROVENANCE_FIELD]
    assert prov["annotation_ids"] == votes and prov["annotator_ids"] == [me.id, second.id, third.id]
    assert prov["annotator_emails"] == [me.email, "b@example.com", "c@example.com"]
    assert prov["agreement"] == pytest.approx(2 / 3) and prov["num_votes"] == 3 and prov["round"] == 0
    (entry,) = majority[HISTORY_FIELD]
    assert (entry["old"], entry["new"], entry["source"]) == (None, other, "label_studio")
    assert entry["who"] == f"{me.email}, b@example.com, c@example.com"
    for sample_id in ids[2:]:
        assert pool_dataset[sample_id].al_label is None, "skipped, invalid and open tasks leave the label alone"

    waiting = list_rounds(pool_dataset)[-1]
    assert waiting.step == "annotate" and waiting.annotated == 2 and waiting.skipped == [ids[2]], "counted"
    assert round_progress(pool_dataset, waiting).open == 3 and round_progress(pool_dataset, waiting).ingested == 2
    assert ingest_current_round(pool_dataset, fake).new == 0, "a second ingest changes nothing"

    fake.update_annotation(bad, choice(truth[ids[3]]))  # the annotator fixes it: now it counts, once
    fixed = ingest_current_round(pool_dataset, fake)
    assert (fixed.new, fixed.unchanged, fixed.invalid) == (1, 2, 0)


def test_a_round_with_skips_and_errors_completes_and_skipped_samples_go_back(pool_dataset, fake) -> None:
    config = loop_config()
    init_loop(pool_dataset, config, fake)
    annotator = SimulatedAnnotator(skip_fraction=0.3, wrong_fraction=0.2, seed=3)
    first = run_round(pool_dataset, fake, simulate_field="ground_truth", annotator=annotator)
    assert first.step == "done", "a round with skipped tasks completes"
    assert 0 < len(first.skipped) < 30 and first.annotated == 30 - len(first.skipped)
    pool_dataset.reload()
    labeled = pool_dataset.exists("al_label.label")
    assert set(labeled.values("id")) == set(first.selected) - set(first.skipped)
    assert first.num_labeled == len(labeled) and first.ingest["skipped_tasks"] == len(first.skipped)
    wrong = sum(a != b for a, b in zip(*labeled.values(["al_label.label", "ground_truth.label"])))
    assert 0 < wrong < len(labeled), "the annotator errs on purpose, and its answers are what is ingested"
    assert set(first.skipped) <= set(candidates(pool_dataset, config, [first]).values("id")), "back in the pool"


def test_the_review_queue_goes_out_with_the_next_round(pool_dataset, fake) -> None:
    config = loop_config(initial_size=10)
    project_id = init_loop(pool_dataset, config, fake)
    suspects = pool_dataset.match_tags("train").take(3, seed=1).values("id")
    assert queue_for_review(pool_dataset, suspects, "suspected label error") == 3
    state = run_round(pool_dataset, fake, simulate_field="ground_truth")
    assert state.step == "done" and sorted(state.review) == sorted(suspects) and len(state.task_ids) == 13
    pool_dataset.reload()
    reviewed = pool_dataset.select(suspects)
    assert reviewed.values(REVIEW_STATUS_FIELD) == ["done"] * 3
    assert reviewed.values("al_label.label") == reviewed.values("ground_truth.label")
    tasks = {t["data"]["sample_id"]: t for t in fake.list_tasks(project_id)}
    assert all("Review: this sample is labeled" in tasks[i]["data"]["note"] for i in suspects)


def test_a_project_deleted_behind_the_loops_back_stops_it_until_a_new_project(pool_dataset, fake) -> None:
    config = loop_config(initial_size=5)
    project_id = init_loop(pool_dataset, config, fake)
    fake.delete_project(project_id)
    with pytest.raises(ProjectDeletedError, match="`new_project=True`") as raised:
        run_round(pool_dataset, fake)
    assert raised.value.project_id == project_id
    assert current_round(pool_dataset).step == "push", "the selection is saved; the push waits"
    with pytest.raises(ProjectDeletedError):
        ingest_current_round(pool_dataset, fake)
    with pytest.raises(ProjectDeletedError, match=f"project {project_id} for dataset"):
        init_loop(pool_dataset, config, fake)

    fresh = init_loop(pool_dataset, config, fake, new_project=True)
    assert fresh != project_id and load_config(pool_dataset)[1] == fresh
    state = run_round(pool_dataset, fake)
    assert state.step == "annotate" and len(fake.list_tasks(fresh)) == len(state.task_ids) == 5


def test_settings_that_cannot_work_name_the_setting(pool_dataset, fake) -> None:
    with pytest.raises(InputError, match="`batch_size` and `initial_size` must be positive"):
        init_loop(pool_dataset, loop_config(batch_size=0), fake)
    with pytest.raises(InputError, match="Unknown query strategy 'nope'"):
        init_loop(pool_dataset, loop_config(strategy="nope"), fake)
