"""Bring your own model, end to end through FiftyOne on the real MongoDB: an embeddings field with a K-fold head,
and the user's own predictions; the trust verdict in the CLI for a weak and a strong model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture
def digits_with_features(dataset_name):
    """The digits imported as a user would (PNG files), with their 64 pixel intensities as an embeddings field (a
    stand-in for features from ``compute_embeddings``) and predictions of a weak and a strong model."""
    import fiftyone as fo
    from sklearn.datasets import load_digits

    from active_learning.data.importers import import_dataset

    import_dataset(dataset_name, progress=False)  # no data path: scikit-learn's bundled digits
    dataset = fo.load_dataset(dataset_name)
    bunch = load_digits()
    ids, index = dataset.values(["id", "source_index"])
    pixels = bunch.data[np.asarray(index)]
    dataset.set_values("pixels", dict(zip(ids, pixels.tolist())), key_field="id")
    classes = dataset.default_classes
    labels = bunch.target[np.asarray(index)]
    rng = np.random.default_rng(0)

    def predictions(agreement: float, with_logits: bool) -> list:
        out = []
        for label in labels:
            predicted = label if rng.random() < agreement else (label + rng.integers(1, 10)) % 10
            logits = rng.normal(size=10)
            logits[predicted] += 4.0
            out.append(fo.Classification(label=classes[predicted], confidence=0.9,
                                         logits=logits.tolist() if with_logits else None))
        return out

    dataset.set_values("strong", dict(zip(ids, predictions(0.97, True))), key_field="id")
    dataset.set_values("weak", dict(zip(ids, predictions(0.5, False))), key_field="id")
    return dataset


def test_embeddings_head_gives_out_of_sample_probabilities(digits_with_features):
    from active_learning.model.own_model import Head, compute_head_outputs
    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import load_run
    from curation_checks.label_issues import find_label_issues

    dataset = digits_with_features
    train, test = dataset.match_tags("train"), dataset.match_tags("test")
    summary = compute_head_outputs(train, "pixels", folds=3, head=Head("logistic"), test_view=test)
    assert summary.num_scored == len(train) == 1438 and summary.folds == 3
    assert 0.9 < summary.out_of_sample_accuracy < 0.995  # out-of-sample: a logistic head does not memorise
    assert summary.test_accuracy is not None and summary.test_accuracy > 0.9 and summary.num_test == 359
    probs = np.asarray(train.values("model_probs"))
    assert probs.shape == (1438, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    np.testing.assert_allclose(np.asarray(train.values("model_embedding")), np.asarray(train.values("pixels")))
    config, results = load_run(dataset, DEFAULT_RUN_KEY)
    assert config["source"] == "embeddings_head" and config["embeddings_field"] == "pixels"
    assert config["recipe"] is None and "logistic head" in config["probabilities"]
    assert results["out_of_sample_accuracy"] == pytest.approx(summary.out_of_sample_accuracy)
    report = find_label_issues(train)
    assert report.model is None, "the head's probabilities are reused, not replaced by a network's"
    assert report.results["label_errors"].summary["trust"]["trusted"] is True


def test_bad_embeddings_fields_are_clear_errors(digits_with_features):
    from active_learning.errors import DataError
    from active_learning.model.own_model import compute_head_outputs

    dataset = digits_with_features
    with pytest.raises(DataError, match="no field 'nope'.*compute_embeddings"):
        compute_head_outputs(dataset, "nope")
    first = dataset.first()
    first["pixels"] = None
    first.save()
    with pytest.raises(DataError, match="1 samples have no 'pixels'"):
        compute_head_outputs(dataset, "pixels")
    assert "model_probs" not in dataset.get_field_schema(), "nothing is written on bad input"


def test_predictions_field_logits_and_confidence(digits_with_features):
    from active_learning.model.own_model import import_predictions, predictions_to_proba
    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import load_run

    dataset = digits_with_features
    train = dataset.match_tags("train")
    summary = import_predictions(train, "strong")
    rows = np.asarray(train.values("model_probs"))
    logits = np.asarray([p.logits for p in train.values("strong")])
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(rows, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert 0.95 < summary.out_of_sample_accuracy < 0.99
    config, _ = load_run(dataset, DEFAULT_RUN_KEY)
    assert config["out_of_sample"] is False and "NOT out-of-sample" in config["probabilities"]
    confidence_only = predictions_to_proba(train.values("weak")[:3], dataset.default_classes, "weak")
    assert np.allclose(confidence_only.sum(1), 1) and np.allclose(confidence_only.max(1), 0.9)


def test_cli_says_when_the_model_is_too_weak_and_not_when_it_is_strong(digits_with_features, cli_env):
    dataset = digits_with_features
    weak = run_cli(["label-errors", dataset.name, "--tag", "train", "--predictions-field", "weak", "--top", "3"],
                   cli_env)
    assert weak.returncode == 0, weak.stderr[-2000:]
    assert re.search(r"Model too weak to trust: out-of-sample accuracy 0\.[45]\d\d", weak.stdout), weak.stdout
    assert "the user's predictions in 'weak', NOT out-of-sample" in weak.stdout
    assert "Skipped near_duplicates, outliers: the samples have no embeddings" in weak.stdout
    assert "train the photo recipe on a GPU" in weak.stdout
    assert "Flagged (the model disagrees with the given label; NOT likely label errors" in weak.stdout
    assert "Likely label errors:" not in weak.stdout
    strong = run_cli(["label-errors", dataset.name, "--tag", "train", "--embeddings-field", "pixels", "--folds",
                      "3", "--top", "3"], cli_env)
    assert strong.returncode == 0, strong.stderr[-2000:]
    assert "Likely label errors:" in strong.stdout and "can be trusted as likely label errors" in strong.stdout
    assert "too weak" not in strong.stdout
    assert "logistic head on the embeddings in 'pixels'" in strong.stdout


def test_operators_offer_and_use_your_own_embeddings_and_predictions(digits_with_features):
    import fiftyone.operators as foo

    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import load_run
    from test_plugin import resolve_inputs

    plugin = "@curation/fiftyone-curation"
    dataset = digits_with_features
    form = resolve_inputs(f"{plugin}/compute_model_outputs", dataset.name).type.properties
    assert "pixels" in form["embeddings_field"].type.values
    assert {"strong", "weak"} <= set(form["predictions_field"].type.values)
    assert form["recipe"].default == "auto" and form["tta_px"].default == 2  # grayscale digits: the fast recipe
    result = foo.execute_operator(f"{plugin}/compute_model_outputs", request_delegation=False, ctx={
        "dataset": dataset.name, "params": {"embeddings_field": "pixels", "folds": 3}})
    assert result.error is None, result.error
    assert result.result["out_of_sample_accuracy"] > 0.9
    config, _ = load_run(dataset, DEFAULT_RUN_KEY)
    assert config["source"] == "embeddings_head" and config["folds"] == 3
    found = foo.execute_operator(f"{plugin}/find_label_issues", request_delegation=False, ctx={
        "dataset": dataset.name, "params": {"predictions_field": "weak"}})
    assert found.error is None, found.error
    dataset.reload()
    summary = load_run(dataset, "check_label_errors")[1]["summary"]
    assert summary["trust"]["trusted"] is False and summary["filter_by"] == "prune_by_noise_rate"
    assert load_run(dataset, DEFAULT_RUN_KEY)[0]["source"] == "predictions_field"
