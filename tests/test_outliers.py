"""outliers: planted far points get the lowest scores and are flagged; invariants; the MongoDB round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_learning.errors import DataError, InputError
from curation_checks.base import CheckInputs
from curation_checks.outliers import Outliers
from curation_checks.registry import REGISTRY


def clustered_with_outliers(per_cluster: int = 100, clusters: int = 3, dim: int = 16, outliers: int = 5, seed: int = 0):
    """Tight clusters around random directions, plus a few points in directions of their own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    inliers = np.vstack([c + rng.normal(scale=0.15, size=(per_cluster, dim)) for c in centres])
    far = rng.normal(size=(outliers, dim))
    embeddings = np.vstack([inliers, far]).astype(np.float32)
    planted = np.arange(len(inliers), len(embeddings))
    return embeddings, planted


def make_inputs(embeddings: np.ndarray) -> CheckInputs:
    ids = tuple(f"id{i:05d}" for i in range(len(embeddings)))
    return CheckInputs(ids, ("a",), None, None, embeddings)


def test_planted_far_points_score_lowest_and_are_flagged():
    embeddings, planted = clustered_with_outliers()
    result = Outliers().run(make_inputs(embeddings))
    score = result.per_sample["score"]
    lowest = np.argsort(score)[: len(planted)]
    assert set(lowest.tolist()) == set(planted.tolist())
    flagged = np.flatnonzero(result.per_sample["flag"])
    assert set(planted.tolist()) <= set(flagged.tolist())
    assert len(flagged) <= len(planted) + 3  # the IQR fence leaves the clusters alone
    summary = result.summary
    assert summary["k"] == 10 and summary["num_flagged"] == len(flagged)
    assert np.median(score) == pytest.approx(np.exp(-1.0), abs=1e-9)  # scale = median mean distance
    assert (score[flagged] < summary["threshold"]).all()
    assert (score[~result.per_sample["flag"]] >= summary["threshold"]).all()
    json.dumps(summary)


def test_absolute_threshold_and_k_cap():
    embeddings, planted = clustered_with_outliers(per_cluster=4, clusters=2, outliers=1, seed=1)
    result = Outliers(k=50, threshold=0.2).run(make_inputs(embeddings))
    assert result.summary["k"] == len(embeddings) - 1
    assert result.summary["threshold"] == 0.2
    assert result.per_sample["flag"].tolist() == (result.per_sample["score"] < 0.2).tolist()
    nothing = Outliers(threshold=0.0).run(make_inputs(embeddings))
    assert nothing.summary["num_flagged"] == 0 and nothing.summary["distance_threshold"] is None


def test_a_copy_does_not_hide_an_outlier_with_k_above_one():
    embeddings, planted = clustered_with_outliers(outliers=1, seed=2)
    embeddings = np.vstack([embeddings, embeddings[planted]])  # the outlier and its duplicate
    score = Outliers(k=10).run(make_inputs(embeddings)).per_sample["score"]
    assert set(np.argsort(score)[:2].tolist()) == {int(planted[0]), len(embeddings) - 1}


def test_validation():
    with pytest.raises(DataError, match="at least 2"):
        Outliers().run(make_inputs(np.ones((1, 3))))
    with pytest.raises(DataError, match="embeddings"):
        Outliers().run(CheckInputs(("a", "b"), ("x",), None, None, None))
    with pytest.raises(InputError):
        Outliers(k=0)
    with pytest.raises(InputError):
        Outliers(threshold=1.5)
    assert REGISTRY["outliers"] is Outliers


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 40), dim=st.integers(1, 6), k=st.integers(1, 15), seed=st.integers(0, 10_000))
def test_invariants(n, dim, k, seed):
    embeddings = np.random.default_rng(seed).normal(size=(n, dim))
    result = Outliers(k=k).run(make_inputs(embeddings))
    score, flag = result.per_sample["score"], result.per_sample["flag"]
    assert len(score) == len(flag) == n
    assert ((score >= 0) & (score <= 1)).all()
    assert result.summary["k"] == min(k, n - 1)
    assert (flag == (score < result.summary["threshold"])).all()
    assert result.summary["num_flagged"] == int(flag.sum())
    assert flag.sum() <= n / 2  # the fence sits above the upper quartile


def test_run_check_against_mongodb(dataset_name):
    import fiftyone as fo

    from active_learning.store.runs import load_run
    from curation_checks.io import run_check

    embeddings, planted = clustered_with_outliers(per_cluster=30, clusters=2, outliers=2, seed=3)
    n = len(embeddings)
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png") for i in range(n)])
    dataset.default_classes = ["a", "b"]
    dataset.set_values("ground_truth", [fo.Classification(label="ab"[i % 2]) for i in range(n)])
    dataset.set_values("model_embedding", embeddings.astype(np.float64).tolist())

    result = run_check(dataset, "outliers", k=5)
    scores, flags = dataset.values(["outlier_score", "outlier_flag"])
    assert set(np.argsort(scores)[:2].tolist()) == set(planted.tolist())
    assert all(flags[i] for i in planted)
    config, stored = load_run(dataset, "check_outliers")
    assert config["params"] == {"k": 5}
    assert stored["summary"]["k"] == 5
    assert stored["summary"]["num_flagged"] == result.summary["num_flagged"] == sum(flags)
