"""The label-issues operators and panel data through FiftyOne's executor, on the real MongoDB.

The dataset carries planted out-of-sample probabilities (no training), so these tests are fast; the full path
with the fixed model is covered by tests/test_cli.py and tests/test_predictions.py.
"""

from __future__ import annotations

import numpy as np
import pytest

PLUGIN = "@curation/fiftyone-curation"


@pytest.fixture
def planted(dataset_name):
    """60 samples, 3 classes; samples 0..4 are labeled 'a' but the probabilities say 'b' confidently."""
    import fiftyone as fo

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = classes
    labels = [classes[i % 3] for i in range(60)]
    dataset.add_samples([fo.Sample(filepath=f"/tmp/planted/{i}.png", ground_truth=fo.Classification(label=y))
                         for i, y in enumerate(labels)])
    probs = np.full((60, 3), 0.05)
    for i, y in enumerate(labels):
        probs[i, classes.index(y)] = 0.9
    wrong = [i for i in range(60) if labels[i] == "a"][:5]
    for i in wrong:
        probs[i] = [0.03, 0.94, 0.03]
    probs /= probs.sum(1, keepdims=True)
    ids = dataset.values("id")
    dataset.set_values("model_probs", dict(zip(ids, probs.tolist())), key_field="id")
    dataset.set_values("model_embedding", dict(zip(ids, rng.normal(size=(60, 8)).tolist())), key_field="id")
    return dataset, [ids[i] for i in wrong]


def test_find_accept_review_round_trip(planted):
    import fiftyone.operators as foo

    from curation_app.label_issues import label_issues_data

    dataset, wrong = planted
    result = foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {}},
                                  request_delegation=False)
    assert result.error is None, result.error
    assert result.result["num_scored"] == 60
    dataset.reload()
    data = label_issues_data(dataset)
    flagged = set(dataset.match({"label_issue_flag": True}).values("id"))
    assert set(wrong) <= flagged, "the planted errors are flagged"
    assert {s["id"] for s in data["suspects"][:5]} == set(wrong), "and ranked first"
    assert data["pairs_trace"][0]["x"][0] == "a → b" and data["pairs_trace"][0]["y"][0] >= 5

    accepted = foo.execute_operator(f"{PLUGIN}/accept_suggested_labels",
                                    ctx={"dataset": dataset.name, "selected": wrong[:3], "params": {}})
    assert accepted.error is None and accepted.result["changed"] == 3
    dataset.reload()
    for sample_id in wrong[:3]:
        sample = dataset[sample_id]
        assert sample.ground_truth.label == "b"
        assert sample.label_history[-1]["old"] == "a" and sample.label_history[-1]["new"] == "b"
        assert sample.label_history[-1]["source"] == "label_issues_panel"
    assert dataset[wrong[3]].ground_truth.label == "a"

    again = foo.execute_operator(f"{PLUGIN}/accept_suggested_labels",
                                 ctx={"dataset": dataset.name, "selected": wrong[:3], "params": {}})
    assert again.result["changed"] == 0, "accepting twice changes nothing"

    queued = foo.execute_operator(f"{PLUGIN}/send_to_review",
                                  ctx={"dataset": dataset.name, "selected": wrong[3:], "params": {}})
    assert queued.result["queued"] == 2
    dataset.reload()
    assert label_issues_data(dataset)["num_in_review"] == 2


def test_actions_without_a_selection_are_refused(planted):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    dataset, _ = planted
    with pytest.raises(ExecutionError, match="No samples selected"):
        foo.execute_operator(f"{PLUGIN}/accept_suggested_labels", ctx={"dataset": dataset.name, "params": {}})


def test_send_to_review_reports_a_known_error_and_lets_an_unexpected_one_through(planted):
    """A busy dataset (another writer holds its lease) is one notification; a malformed sample id propagates."""
    import threading

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    from active_learning.store.label_history import review_queue
    from active_learning.store.lease import writer_lease

    dataset, wrong = planted
    held, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with writer_lease(dataset.name, "another writer"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert held.wait(30), "the other writer took the lease"
        busy = foo.execute_operator(f"{PLUGIN}/send_to_review",
                                    ctx={"dataset": dataset.name, "selected": wrong, "params": {}})
    finally:
        release.set()
        thread.join()
    assert "another writer" in busy.result["error"], busy.result
    assert len(review_queue(dataset)) == 0, "nothing was queued"

    with pytest.raises(ExecutionError, match="not a valid ObjectId"):
        foo.execute_operator(f"{PLUGIN}/send_to_review",
                             ctx={"dataset": dataset.name, "params": {"sample_ids": ["not-an-id"]}})
    queued = foo.execute_operator(f"{PLUGIN}/send_to_review",
                                  ctx={"dataset": dataset.name, "selected": wrong, "params": {}})
    assert queued.result == {"queued": len(wrong)}


def test_find_label_issues_reports_bad_seeds_in_the_form_and_on_execute(planted):
    """Seeds that are not integers show why in the form and disable Execute: nothing runs."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    from test_plugin import error_views, resolve_inputs

    dataset, _ = planted
    form = resolve_inputs(f"{PLUGIN}/find_label_issues", dataset.name, params={"seeds": "0,x"})
    errors = error_views(form)
    assert list(errors) == ["bad_seeds"] and errors["bad_seeds"].invalid
    assert "`seeds` must be comma-separated non-negative integers" in errors["bad_seeds"].view.description
    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {"seeds": "x"}},
                             request_delegation=False)
    assert "check_label_errors" not in dataset.list_runs()


def test_panel_data_is_none_before_a_run(planted):
    from curation_app.label_issues import label_issues_data

    dataset, _ = planted
    assert label_issues_data(dataset) is None


def test_bad_probabilities_are_a_clear_error_and_write_nothing(planted):
    from active_learning.errors import DataError
    from curation_checks.label_issues import find_label_issues

    dataset, _ = planted
    first = dataset.first()
    first.model_probs = [0.5, 0.5, 0.5]
    first.save()
    with pytest.raises(DataError, match="unnormalised"):
        find_label_issues(dataset)
    assert "label_issue_score" not in dataset.get_field_schema()
    assert "check_label_errors" not in dataset.list_runs()


# -- which settings the stored probabilities were made with -------------------------------------------------------
def _record_model_run(dataset, **config) -> None:
    from active_learning.model.fixed import Recipe
    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import record_run

    record_run(dataset, DEFAULT_RUN_KEY, {"kind": "model_outputs", "recipe": Recipe(seed=0).to_dict(), **config},
               {"num_scored": len(dataset)})


def test_changed_settings_names_what_differs_from_the_stored_run(planted):
    from active_learning.model.fixed import Recipe
    from curation_checks.label_issues import changed_settings

    dataset, _ = planted
    # Probabilities without a model run (written by the user): only a disjoint split is a change.
    assert changed_settings(dataset, False, folds=3, seeds=[4], tta_px=1) == []
    assert changed_settings(dataset, True) != []
    from active_learning.model.fixed import DEFAULT_TTA_PX
    from test_plugin import resolve_inputs

    def form_tta() -> int:
        return resolve_inputs(f"{PLUGIN}/find_label_issues", dataset.name).type.properties["tta_px"].default

    assert form_tta() == DEFAULT_TTA_PX, "without a model run the form offers the default"
    _record_model_run(dataset, split="kfold", folds=5, seeds=[0, 1], tta_px=2)
    assert changed_settings(dataset, False) == [], "unset settings match anything"
    assert changed_settings(dataset, False, 5, [0, 1], 2, Recipe(seed=7)) == [], "the recipe's seed is in seeds"
    assert changed_settings(dataset, False, folds=3) == ["folds 5 -> 3"]
    assert changed_settings(dataset, False, seeds=(0,)) == ["seeds [0, 1] -> [0]"]
    assert changed_settings(dataset, False, tta_px=0) == ["tta_px 2 -> 0"]
    assert changed_settings(dataset, False, recipe=Recipe(epochs=3)) == ["recipe epochs 12 -> 3"]
    assert changed_settings(dataset, True) == ["a disjoint split instead of K-fold"]
    # A run from before test-time augmentation existed counts as tta_px 0.
    _record_model_run(dataset, split="kfold", folds=5, seeds=[0])
    assert changed_settings(dataset, False, 5, [0], 0) == []
    assert form_tta() == 0, "the form offers the old run's plain probabilities, so submitting it reuses them"
    assert changed_settings(dataset, False, tta_px=1) == ["tta_px 0 -> 1"]


def test_matching_settings_reuse_the_probabilities_and_rank_method_is_recorded(planted):
    import fiftyone.operators as foo

    from active_learning.errors import InputError
    from active_learning.store.runs import load_run
    from curation_checks.label_issues import find_label_issues

    dataset, wrong = planted
    _record_model_run(dataset, split="kfold", folds=5, seeds=[0, 1], tta_px=2,
                      probabilities="out-of-sample, stratified 5-fold over the view, averaged over 25 shifts")
    report = find_label_issues(dataset, folds=5, seeds=[0, 1], tta_px=2, rank_method="normalized_margin")
    assert report.model is None and report.recomputed_because == [], "nothing to train: the settings match"
    assert report.results["label_errors"].summary["rank_method"] == "normalized_margin"
    assert {s.sample_id for s in report.suspects[:5]} == set(wrong)
    config, _ = load_run(dataset, "check_label_errors")
    assert config["params"]["rank_method"] == "normalized_margin"
    with pytest.raises(InputError, match="`rank_method` must be one of"):
        find_label_issues(dataset, rank_method="margin")

    # Through the operator: params a script leaves out reuse what is stored; the form is prefilled with it.
    result = foo.execute_operator(f"{PLUGIN}/find_label_issues",
                                  ctx={"dataset": dataset.name, "params": {"rank_method": "self_confidence"}},
                                  request_delegation=False)
    assert result.error is None, result.error
    assert load_run(dataset, "check_label_errors")[0]["params"]["rank_method"] == "self_confidence"
    from test_plugin import resolve_inputs

    props = resolve_inputs(f"{PLUGIN}/find_label_issues", dataset.name).type.properties
    assert props["seeds"].default == "0,1" and props["tta_px"].default == 2 and props["folds"].default == 5
    assert props["rank_method"].default == "self_confidence"
    from curation_app.label_issues import label_issues_data

    assert label_issues_data(dataset)["probabilities"] == ("out-of-sample, stratified 5-fold over the view, "
                                                           "averaged over 25 shifts; seeds 0, 1")


def test_accept_refuses_unsure_suggestions_and_says_why(planted):
    import fiftyone.operators as foo

    from active_learning.model.trust import MIN_SUGGESTION_CONFIDENCE

    dataset, wrong = planted
    unsure = dataset[wrong[0]]
    unsure["model_probs"] = [0.3, 0.45, 0.25]  # the model prefers 'b', but only at 45%
    unsure.save()
    assert foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {}},
                                request_delegation=False).error is None
    dataset.reload()
    assert dataset[wrong[0]].label_issue_confidence == pytest.approx(0.45)
    assert dataset[wrong[0]].label_issue_suggested == "b" and MIN_SUGGESTION_CONFIDENCE > 0.45
    alone = foo.execute_operator(f"{PLUGIN}/accept_suggested_labels",
                                 ctx={"dataset": dataset.name, "selected": [wrong[0]], "params": {}})
    assert "less than 80% probability" in alone.result["error"] and "Send the samples to review" in alone.result["error"]
    mixed = foo.execute_operator(f"{PLUGIN}/accept_suggested_labels",
                                 ctx={"dataset": dataset.name, "selected": wrong[:2], "params": {}})
    assert mixed.result == {"changed": 1, "refused": 1}
    dataset.reload()
    assert dataset[wrong[0]].ground_truth.label == "a" and not dataset[wrong[0]].label_history
    assert dataset[wrong[1]].ground_truth.label == "b" and dataset[wrong[1]].label_history[-1]["old"] == "a"


# -- undoing the last accepted change ------------------------------------------------------------------------------
def _accept(dataset, sample_ids) -> dict:
    import fiftyone.operators as foo

    result = foo.execute_operator(f"{PLUGIN}/accept_suggested_labels",
                                  ctx={"dataset": dataset.name, "selected": list(sample_ids), "params": {}})
    assert result.error is None, result.error
    return result.result


def _require_undo_operator() -> None:
    """FiftyOne registers only the operators ``fiftyone.yml`` names."""
    from test_plugin import manifest

    assert "undo_label_change" in manifest()["operators"], "fiftyone.yml must list the operator undo_label_change"


def _undo_in_panel(dataset):
    """Press the panel's "Undo last change" (its ``undo_last`` method, as the App's button calls it)."""
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN}/label_issues", ctx={"dataset": dataset.name, "params": {
        "__method__": "undo_last", "panel_id": "test-panel", "state": {"label_field": "ground_truth"}}})


def test_undo_reverts_the_last_accepted_change_and_keeps_both_labels(planted):
    import fiftyone.operators as foo

    from curation_app.label_issues import label_issues_data

    _require_undo_operator()
    dataset, wrong = planted
    assert foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {}},
                                request_delegation=False).error is None
    dataset.reload()
    nothing = foo.execute_operator(f"{PLUGIN}/undo_label_change", ctx={"dataset": dataset.name, "params": {}})
    assert nothing.error is None and nothing.result["reverted"] == 0
    assert nothing.result["message"] == "Nothing to undo: no accepted suggestion is left to revert."

    assert _accept(dataset, wrong[:2])["changed"] == 2
    assert _accept(dataset, wrong[2:4])["changed"] == 2
    undone = foo.execute_operator(f"{PLUGIN}/undo_label_change", ctx={"dataset": dataset.name, "params": {}})
    assert undone.error is None, undone.error
    assert undone.result["reverted"] == 2 and undone.result["transitions"] == [["b", "a", 2]]
    assert "Undid the last accepted change (" in undone.result["message"]
    assert "2 samples: b → a (2). Both labels stay in label_history." in undone.result["message"]
    dataset.reload()
    for sample_id in wrong[2:4]:  # the last accept is reverted; the undone label stays in the history
        sample = dataset[sample_id]
        assert sample.ground_truth.label == "a"
        assert [(h["old"], h["new"], h["source"]) for h in sample.label_history] == [
            ("a", "b", "label_issues_panel"), ("b", "a", "undo")]
        assert sample.label_history[-1]["undoes"] == sample.label_history[0]["change"]
    assert [dataset[i].ground_truth.label for i in wrong[:2]] == ["b", "b"], "the accept before stays"
    given = {s["id"]: s["given"] for s in label_issues_data(dataset)["suspects"]}
    assert [given[i] for i in wrong[:4]] == ["b", "b", "a", "a"], "the panel's table shows the labels back"

    # The panel's button calls the same library function: it walks back to the accept before, then has nothing.
    panel = _undo_in_panel(dataset)
    assert panel.error is None, panel.error
    dataset.reload()
    assert [dataset[i].ground_truth.label for i in wrong] == ["a"] * 5
    assert [h["source"] for h in dataset[wrong[0]].label_history] == ["label_issues_panel", "undo"]
    assert _undo_in_panel(dataset).error is None
    dataset.reload()
    assert [len(dataset[i].label_history) for i in wrong[:4]] == [2] * 4, "nothing left to undo: nothing changes"


def test_undo_leaves_a_sample_relabeled_since_alone(planted):
    import fiftyone.operators as foo

    from active_learning.store.label_history import set_labels

    _require_undo_operator()
    dataset, wrong = planted
    assert foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {}},
                                request_delegation=False).error is None
    assert _accept(dataset, wrong[:3])["changed"] == 3
    set_labels(dataset, {wrong[0]: "c"}, why="Label Studio round 2", source="label_studio", user="annotator")
    undone = foo.execute_operator(f"{PLUGIN}/undo_label_change", ctx={"dataset": dataset.name, "params": {}})
    assert undone.result["reverted"] == 2 and undone.result["skipped"] == 1
    assert "1 of its samples were relabeled since and keep their label." in undone.result["message"]
    dataset.reload()
    assert [dataset[i].ground_truth.label for i in wrong[:3]] == ["c", "a", "a"]


# -- which samples are scored by default (issue 15) ----------------------------------------------------------------
def test_the_default_scope_is_what_the_model_run_scored(planted):
    import re

    import fiftyone.operators as foo

    from active_learning.model.fixed import Recipe
    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import record_run
    from curation_checks.label_issues import label_issues_scope, plan_probabilities
    from test_plugin import resolve_inputs

    dataset, wrong = planted
    scope = label_issues_scope(dataset)
    assert scope.default and scope.view is dataset and scope.description == "all 60 samples (no model run yet)"

    # A model run over the 30 samples tagged train (as `curation model` makes): the others have no probabilities.
    ids = dataset.values("id")
    train_ids, others = ids[::2], ids[1::2]
    dataset.select(train_ids).tag_samples("train")
    dataset.set_values("model_probs", {i: None for i in others}, key_field="id")
    record_run(dataset.match_tags("train"), DEFAULT_RUN_KEY,
               {"kind": "model_outputs", "split": "kfold", "folds": 5, "seeds": [0, 1], "tta_px": 2,
                "recipe": Recipe(seed=0).to_dict()}, {"num_scored": 30, "seconds": 20.0, "device": "cpu"})
    scope = label_issues_scope(dataset)
    assert scope.default and set(scope.view.values("id")) == set(train_ids)
    assert re.fullmatch(r"the 30 samples tagged train that have out-of-sample probabilities from the model run "
                        r"of \d{4}-\d\d-\d\d \d\d:\d\d UTC", scope.description), scope.description
    assert label_issues_scope(dataset.match_tags("train")).description == "the 30 samples tagged train"
    assert label_issues_scope(dataset.limit(10)).description == "the 10 samples of the view"
    everything = label_issues_scope(dataset, all_samples=True)
    assert not everything.default and everything.description == "all 60 samples" and everything.view is dataset
    assert label_issues_scope(dataset, fit_view=dataset.match_tags("train")).description == "all 60 samples"

    # All samples would train first; the plan says so, with a time scaled from the run (twice the images).
    plan = plan_probabilities(dataset, device="cpu")
    assert plan.train and plan.folds == 5 and plan.seeds == (0, 1) and plan.tta_px == 2
    assert plan.estimated_seconds == pytest.approx(40.0)
    assert plan.message.startswith("no out-of-sample probabilities for 30 of these 60 labeled samples: training 5 "
                                   "folds x 2 seeds and a final model over these 60 labeled samples (recipe fast, "
                                   "12 epochs; about 40 s, judging by the model run of "), plan.message
    assert not plan_probabilities(scope.view).train, "the default scope reuses the run's probabilities"

    # The App's operator: the form says what it will score and offers all samples; executing scores the default.
    form = resolve_inputs(f"{PLUGIN}/find_label_issues", dataset.name).type.properties
    assert form["scope"].view.label == f"Scores {scope.description} (filter the view or tick 'Score all samples' " \
                                       "to choose)."
    assert form["all_samples"].default is False
    ticked = resolve_inputs(f"{PLUGIN}/find_label_issues", dataset.name, params={"all_samples": True})
    assert ticked.type.properties["scope"].view.label == "Scores all 60 samples."
    result = foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {}},
                                  request_delegation=False)
    assert result.error is None, result.error
    assert result.result["num_scored"] == 30 and result.result["trained"] == ""
    assert result.result["scope"] == scope.description
    dataset.reload()
    assert set(dataset.exists("label_issue_rank").values("id")) == set(train_ids)


def test_a_second_pass_is_refused_without_a_fixed_model_run_and_bad_passes_are_clear(planted):
    """Probabilities the user wrote (no K-fold run of the fixed model) cannot be retrained: a clear error, from
    the library and from the operator, and nothing is trained or written."""
    import fiftyone.operators as foo

    from active_learning.errors import InputError
    from curation_checks.label_issues import find_label_issues

    dataset, _ = planted
    before = dataset.values("model_probs")
    with pytest.raises(InputError, match="A second pass retrains the fixed model's K-fold"):
        find_label_issues(dataset, passes=2)
    with pytest.raises(InputError, match="`passes` must be 1 or 2"):
        find_label_issues(dataset, passes=3)
    result = foo.execute_operator(f"{PLUGIN}/find_label_issues",
                                  ctx={"dataset": dataset.name, "params": {"passes": "2"}}, request_delegation=False)
    assert "A second pass retrains" in str(result.error or result.result), (result.error, result.result)
    with pytest.raises(Exception, match="passes.*Invalid enum value"):  # FiftyOne checks the form's choices
        foo.execute_operator(f"{PLUGIN}/find_label_issues", ctx={"dataset": dataset.name, "params": {"passes": "3"}},
                             request_delegation=False)
    assert dataset.values("model_probs") == before and "curation_model" not in dataset.list_runs()
