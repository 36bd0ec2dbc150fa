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


def test_panel_data_is_none_before_a_run(planted):
    from curation_app.label_issues import label_issues_data

    dataset, _ = planted
    assert label_issues_data(dataset) is None


def test_bad_probabilities_are_a_clear_error_and_write_nothing(planted):
    from active_learning.errors import DataError
    from curation_checks.pipelines import find_label_issues

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
    from active_learning.model import Recipe
    from active_learning.predictions import DEFAULT_RUN_KEY
    from active_learning.runs import record_run

    record_run(dataset, DEFAULT_RUN_KEY, {"kind": "model_outputs", "recipe": Recipe(seed=0).to_dict(), **config},
               {"num_scored": len(dataset)})


def test_changed_settings_names_what_differs_from_the_stored_run(planted):
    from active_learning.model import Recipe
    from curation_checks.pipelines import changed_settings

    dataset, _ = planted
    # Probabilities without a model run (written by the user): only a disjoint split is a change.
    assert changed_settings(dataset, False, folds=3, seeds=[4], tta_px=1) == []
    assert changed_settings(dataset, True) != []
    from active_learning.model import DEFAULT_TTA_PX
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
    from active_learning.runs import load_run
    from curation_checks.pipelines import find_label_issues

    dataset, wrong = planted
    _record_model_run(dataset, split="kfold", folds=5, seeds=[0, 1], tta_px=2,
                      probabilities="out-of-sample, stratified 5-fold over the view, averaged over 25 shifts")
    report = find_label_issues(dataset, folds=5, seeds=[0, 1], tta_px=2, rank_method="normalized_margin")
    assert report.model is None and report.recomputed_because == [], "nothing to train: the settings match"
    assert report.results["label_errors"].summary["rank_method"] == "normalized_margin"
    assert {s.sample_id for s in report.suspects[:5]} == set(wrong)
    config, _ = load_run(dataset, "check_label_errors")
    assert config["params"]["rank_method"] == "normalized_margin"
    with pytest.raises(InputError, match="rank_method must be one of"):
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

    from active_learning.trust import MIN_SUGGESTION_CONFIDENCE

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
