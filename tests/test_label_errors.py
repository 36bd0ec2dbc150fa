"""label_errors: confident learning over planted label flips, invariants, validation, and the MongoDB round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from active_learning.errors import DataError, InputError
from curation_checks.base import CheckInputs
from curation_checks.label_errors import FILTER_METHODS, RANK_METHODS, LabelErrors
from curation_checks.registry import REGISTRY, get_check

CLASSES = ("cat", "dog", "bird", "fish")


def planted(n: int = 400, k: int = 4, flip_fraction: float = 0.06, unlabeled: int = 0, seed: int = 0):
    """Out-of-sample-like probabilities peaked on the true class; a few given labels flipped to another class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(0.0, 1.0, (n, k))
    logits[np.arange(n), true] += rng.uniform(3.0, 6.0, n)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given_labels = true.copy()
    flipped = rng.choice(n, int(flip_fraction * n), replace=False)
    given_labels[flipped] = (true[flipped] + rng.integers(1, k, len(flipped))) % k
    unlabeled_rows = rng.choice(np.setdiff1d(np.arange(n), flipped), unlabeled, replace=False)
    given_labels[unlabeled_rows] = -1
    probs[unlabeled_rows[: unlabeled // 2]] = np.nan  # unlabeled samples have no out-of-sample probabilities
    ids = tuple(f"id{i:04d}" for i in range(n))
    inputs = CheckInputs(ids, CLASSES[:k], given_labels, probs, None)
    return inputs, true, np.sort(flipped), np.sort(unlabeled_rows)


def test_planted_flips_are_flagged_and_ranked_first():
    inputs, true, flipped, _ = planted()
    result = LabelErrors(filter_by="prune_by_noise_rate").run(inputs)
    flag = result.per_sample["flag"]
    found = np.flatnonzero(flag)
    recall = np.isin(flipped, found).mean()
    precision = np.isin(found, flipped).mean()
    # Confident learning counts a sample only when its probability for another class beats that class's mean
    # self-confidence, so flips the model is unsure about are missed by design: recall ~0.8, precision ~1.
    assert recall >= 0.75, (recall, precision)
    assert precision >= 0.9, (recall, precision)
    rank = result.per_sample["rank"]
    worst = {i for i, r in enumerate(rank) if r <= len(flipped)}
    assert len(worst & set(flipped.tolist())) >= 0.9 * len(flipped)
    # The suggestion for a flipped sample is its true class.
    suggested = result.per_sample["suggested"]
    assert np.mean([suggested[i] == CLASSES[true[i]] for i in flipped]) >= 0.9
    assert result.summary["num_issues"] == int(flag.sum())
    assert result.summary["num_scored"] == len(true)


def test_predicted_neq_given_flags_every_disagreement_and_the_summary_records_the_verdict():
    """``predicted_neq_given`` (the default rule for a trusted model): a sample is flagged exactly when its most
    likely class is not its label; the summary records the model's agreement with the labels and the verdict."""
    inputs, true, flipped, _ = planted()
    result = LabelErrors(filter_by="predicted_neq_given").run(inputs)
    disagree = inputs.pred_probs.argmax(1) != inputs.labels
    np.testing.assert_array_equal(result.per_sample["flag"], disagree)
    assert np.isin(flipped, np.flatnonzero(disagree)).mean() >= 0.95
    summary = result.summary
    assert summary["filter_by"] == summary["filter_rule"] == "predicted_neq_given"
    assert summary["model_accuracy"] == pytest.approx(float((~disagree).mean()))
    trust = summary["trust"]
    assert trust["threshold"] == 0.85 and trust["trusted"] == (summary["model_accuracy"] >= 0.85)
    rows = np.arange(len(inputs.labels))
    np.testing.assert_allclose(result.per_sample["confidence"], inputs.pred_probs[rows, inputs.pred_probs.argmax(1)])


def test_the_verdict_triggers_on_a_weak_model_and_not_on_a_strong_one():
    rng = np.random.default_rng(7)
    n, k = 400, 4
    labels = rng.integers(0, k, n)
    ids = tuple(map(str, range(n)))
    for agreement, trusted in ((0.95, True), (0.6, False)):
        agree = rng.random(n) < agreement
        predicted = np.where(agree, labels, (labels + rng.integers(1, k, n)) % k)
        probs = np.full((n, k), 0.1 / (k - 1))
        probs[np.arange(n), predicted] = 0.9
        inputs = CheckInputs(ids, CLASSES[:k], labels, probs, None)
        result = LabelErrors().run(inputs)
        summary = result.summary
        assert summary["trust"]["trusted"] is trusted, summary["trust"]
        assert ("too weak" in summary["trust"]["message"]) is not trusted
        # The default rule (auto) flags as predicted_neq_given for a trusted model, prune_by_noise_rate otherwise.
        rule = "predicted_neq_given" if trusted else "prune_by_noise_rate"
        assert summary["filter_rule"] == "auto" and summary["filter_by"] == rule
        np.testing.assert_array_equal(result.per_sample["flag"], LabelErrors(filter_by=rule).run(inputs)
                                      .per_sample["flag"])


def test_unlabeled_samples_are_skipped_and_counted():
    inputs, _, flipped, unlabeled = planted(unlabeled=40, seed=1)
    result = LabelErrors().run(inputs)
    per = result.per_sample
    assert np.isnan(per["score"][unlabeled]).all()
    assert not per["flag"][unlabeled].any()
    assert all(per["suggested"][i] is None and per["rank"][i] is None for i in unlabeled)
    assert result.summary["num_unlabeled_skipped"] == len(unlabeled)
    assert result.summary["num_scored"] == len(inputs.sample_ids) - len(unlabeled)
    labeled = np.setdiff1d(np.arange(len(inputs.sample_ids)), unlabeled)
    assert sorted(per["rank"][labeled]) == list(range(1, len(labeled) + 1))
    assert np.isin(flipped, np.flatnonzero(per["flag"])).mean() >= 0.75


def test_summary_pairs_and_noise_matrix():
    inputs, true, flipped, _ = planted(n=600, seed=2)
    result = LabelErrors().run(inputs)
    summary = result.summary
    assert sum(p["count"] for p in summary["pairs"]) == summary["num_issues"]
    counts = [p["count"] for p in summary["pairs"]]
    assert counts == sorted(counts, reverse=True)
    flag, suggested = result.per_sample["flag"], result.per_sample["suggested"]
    for pair in summary["pairs"]:
        members = [i for i in np.flatnonzero(flag)
                   if CLASSES[inputs.labels[i]] == pair["given"] and suggested[i] == pair["suggested"]]
        assert len(members) == pair["count"]
    matrix = np.asarray(summary["noise_matrix"])
    assert matrix.shape == (4, 4)
    assert np.allclose(matrix.sum(axis=0), 1.0)
    assert (np.diag(matrix) > 0.8).all()  # ~6% of labels flipped
    assert summary["classes"] == list(CLASSES)
    assert summary["filter_rule"] == "auto" and summary["rank_method"] == "self_confidence"
    assert summary["filter_by"] in ("predicted_neq_given", "prune_by_noise_rate")
    import json

    json.dumps(summary)  # plain Python types only


@pytest.mark.parametrize("filter_by, min_recall, min_precision", [
    ("prune_by_class", 0.6, 0.9),
    ("confident_learning", 0.6, 0.9),
    # argmax != given: every flip, plus the samples the model itself gets wrong
    ("predicted_neq_given", 0.95, 0.8),
])
def test_other_filters_find_the_flips(filter_by, min_recall, min_precision):
    inputs, _, flipped, _ = planted(seed=3)
    found = np.flatnonzero(LabelErrors(filter_by=filter_by).run(inputs).per_sample["flag"])
    assert np.isin(flipped, found).mean() >= min_recall
    assert np.isin(found, flipped).mean() >= min_precision


def _with_probs(inputs: CheckInputs, probs: np.ndarray, labels: np.ndarray | None = None) -> CheckInputs:
    return CheckInputs(inputs.sample_ids, inputs.classes, inputs.labels if labels is None else labels, probs, None)


def test_validation_errors_are_data_errors():
    inputs, _, _, _ = planted(n=60, seed=4)
    probs = inputs.pred_probs.copy()
    probs[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        LabelErrors().run(_with_probs(inputs, probs))
    probs = inputs.pred_probs.copy()
    probs[5, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        LabelErrors().run(_with_probs(inputs, probs))
    with pytest.raises(DataError, match="unnormalised"):
        LabelErrors().run(_with_probs(inputs, inputs.pred_probs * 1.01))
    with pytest.raises(DataError, match="shape"):
        LabelErrors().run(_with_probs(inputs, inputs.pred_probs[:, :3]))
    with pytest.raises(DataError, match="at least 2 classes"):
        LabelErrors().run(_with_probs(inputs, inputs.pred_probs, np.full(60, 2)))
    with pytest.raises(DataError, match="pred"):
        LabelErrors().run(_with_probs(inputs, None))  # type: ignore[arg-type]
    with pytest.raises(InputError):
        LabelErrors(filter_by="nope")
    with pytest.raises(InputError):
        get_check("label_errors", rank_method="nope")


def test_rows_within_tolerance_are_accepted():
    inputs, _, _, _ = planted(n=60, seed=5)
    result = LabelErrors().run(_with_probs(inputs, np.round(inputs.pred_probs, 4)))
    assert result.summary["num_scored"] == 60


def test_registered():
    assert REGISTRY["label_errors"] is LabelErrors
    assert LabelErrors.field_prefix == "label_issue"


@st.composite
def label_problems(draw):
    n = draw(st.integers(6, 40))
    k = draw(st.integers(2, 4))
    labels = np.asarray(draw(st.lists(st.integers(-1, k - 1), min_size=n, max_size=n)))
    assume(len(np.unique(labels[labels >= 0])) >= 2)
    raw = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=n * k, max_size=n * k))).reshape(n, k) + 1e-3
    probs = raw / raw.sum(axis=1, keepdims=True)
    ids = tuple(f"s{i}" for i in range(n))
    return CheckInputs(ids, CLASSES[:k], labels, probs, None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=label_problems(), filter_by=st.sampled_from(FILTER_METHODS), rank_method=st.sampled_from(RANK_METHODS))
def test_invariants(inputs, filter_by, rank_method):
    result = LabelErrors(filter_by=filter_by, rank_method=rank_method).run(inputs)
    labeled = inputs.labels >= 0
    per = result.per_sample
    assert all(len(v) == len(inputs.sample_ids) for v in per.values())
    scores = per["score"][labeled]
    assert ((scores >= 0) & (scores <= 1)).all()
    assert np.isnan(per["score"][~labeled]).all()
    assert not per["flag"][~labeled].any()
    ranks = per["rank"][labeled]
    assert sorted(ranks) == list(range(1, int(labeled.sum()) + 1))
    order = np.argsort(ranks.astype(np.int64))
    assert (np.diff(scores[order]) >= 0).all()  # rank 1 has the lowest score
    expected = [inputs.classes[i] for i in inputs.pred_probs[labeled].argmax(axis=1)]
    assert list(per["suggested"][labeled]) == expected
    summary = result.summary
    assert summary["num_scored"] + summary["num_unlabeled_skipped"] == len(inputs.sample_ids)
    assert sum(p["count"] for p in summary["pairs"]) == summary["num_issues"] == int(per["flag"].sum())
    matrix = np.asarray(summary["noise_matrix"])
    sums = matrix.sum(axis=0)
    assert (np.isclose(sums, 1.0) | np.isclose(sums, 0.0)).all()


def test_run_check_against_mongodb(dataset_name):
    import fiftyone as fo

    from active_learning.store.runs import load_run
    from curation_checks.io import run_check

    inputs, true, flipped, unlabeled = planted(n=120, flip_fraction=0.1, unlabeled=10, seed=6)
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png") for i in range(120)])
    dataset.default_classes = list(CLASSES)
    ids = dataset.values("id")
    labels = [fo.Classification(label=CLASSES[y]) if y >= 0 else None for y in inputs.labels]
    probs = [None if np.isnan(row).any() else row.tolist() for row in inputs.pred_probs]
    dataset.set_values("ground_truth", labels)
    dataset.set_values("model_probs", probs)

    result = run_check(dataset, "label_errors", filter_by="prune_by_noise_rate")
    scores, flags, suggested, ranks = dataset.values(
        ["label_issue_score", "label_issue_flag", "label_issue_suggested", "label_issue_rank"])
    assert [s is None for s in scores] == [i in set(unlabeled.tolist()) for i in range(120)]
    assert sum(flags) == result.summary["num_issues"] > 0
    flagged = {i for i, f in enumerate(flags) if f}
    assert len(flagged & set(flipped.tolist())) >= 0.75 * len(flipped)
    assert sorted(r for r in ranks if r is not None) == list(range(1, 111))
    assert np.mean([suggested[i] == CLASSES[true[i]] for i in flipped]) >= 0.9
    config, stored = load_run(dataset, "check_label_errors")
    assert config["check"] == "label_errors"
    assert config["params"] == {"filter_by": "prune_by_noise_rate"}
    assert stored["summary"]["num_unlabeled_skipped"] == 10
    assert stored["summary"]["pairs"] == result.summary["pairs"]
    assert ids == dataset.values("id")
