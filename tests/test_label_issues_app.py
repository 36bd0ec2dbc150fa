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
