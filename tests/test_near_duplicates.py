"""near_duplicates: planted copies in random embeddings are found and grouped; distinct points are not flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_learning.errors import DataError, InputError
from curation_checks.base import CheckInputs
from curation_checks.near_duplicates import NearDuplicates
from curation_checks.neighbours import cosine_neighbors
from curation_checks.registry import REGISTRY


def embeddings_with_copies(n: int = 300, dim: int = 32, seed: int = 0):
    """Random embeddings plus planted groups: an exact pair, a near triple, and a rescaled copy (same direction)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    groups = [[0, n], [1, n + 1, n + 2], [2, n + 3]]
    extra = np.stack([
        base[0],
        base[1] + rng.normal(scale=0.01, size=dim),
        base[1] + rng.normal(scale=0.01, size=dim),
        base[2] * 3.0,  # cosine distance 0: a brighter copy is still a duplicate
    ])
    embeddings = np.vstack([base, extra]).astype(np.float32)
    return embeddings, groups


def make_inputs(embeddings: np.ndarray) -> CheckInputs:
    ids = tuple(f"id{i:05d}" for i in range(len(embeddings)))
    return CheckInputs(ids, ("a", "b"), np.zeros(len(embeddings), dtype=np.int64), None, embeddings)


def test_planted_copies_are_found_and_grouped():
    embeddings, groups = embeddings_with_copies()
    inputs = make_inputs(embeddings)
    result = NearDuplicates().run(inputs)
    per = result.per_sample
    planted = sorted(i for g in groups for i in g)
    assert sorted(np.flatnonzero(per["flag"]).tolist()) == planted
    group_ids = [{int(per["group"][i]) for i in g} for g in groups]
    assert all(len(ids) == 1 and -1 not in ids for ids in group_ids)
    assert len({next(iter(ids)) for ids in group_ids}) == 3  # three different groups
    assert (per["group"][~per["flag"]] == -1).all()
    assert per["nearest_id"][0] == inputs.sample_ids[300] and per["nearest_id"][300] == inputs.sample_ids[0]
    assert per["score"][0] < 1e-5 and per["score"][2] < 1e-5
    summary = result.summary
    assert summary["num_flagged"] == len(planted) and summary["num_groups"] == 3 and summary["largest_group"] == 3
    assert summary["threshold"] == pytest.approx(0.13 * summary["median_nearest_distance"])
    json.dumps(summary)


def test_a_chain_does_not_grow_one_group():
    """Each link of a chain is within the threshold of the next, its ends are not: no group spans the chain, and
    every member of a group is within the threshold of the group's centre or of its nearest neighbour in it."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 16))
    direction = rng.normal(size=16)
    direction *= np.linalg.norm(base[0]) / np.linalg.norm(direction)
    chain = np.stack([base[0] + t * 0.1 * direction for t in range(1, 12)])  # each step close to the previous one
    embeddings = np.vstack([base, chain])
    result = NearDuplicates(threshold=0.01).run(make_inputs(embeddings))
    group = result.per_sample["group"]
    members = [0, *range(200, 211)]
    assert (group[members] >= 0).all()
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert 1 - unit[0] @ unit[210] > 0.01  # the chain's ends are not near-duplicates of each other
    assert group[0] != group[210]
    assert result.summary["num_groups"] >= 2 and result.summary["largest_group"] < len(members)
    for g in set(group[members].tolist()):
        rows = np.flatnonzero(group == g)
        close = 1 - unit[rows] @ unit[rows].T < 0.01
        np.fill_diagonal(close, False)
        assert len(rows) >= 2 and close.any(axis=1).all()  # nobody is alone in their group


def test_copies_of_one_image_stay_one_group():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(100, 16))
    copies = base[7] + rng.normal(scale=1e-4, size=(12, 16))
    result = NearDuplicates(threshold=0.01).run(make_inputs(np.vstack([base, copies])))
    group = result.per_sample["group"]
    assert len(set(group[[7, *range(100, 112)]].tolist())) == 1 and group[7] >= 0
    assert result.summary["num_large_groups"] == 1 and result.summary["largest_group"] == 13


def test_distinct_points_are_not_flagged():
    rng = np.random.default_rng(2)
    result = NearDuplicates().run(make_inputs(rng.normal(size=(400, 24)).astype(np.float32)))
    assert result.summary["num_flagged"] == 0
    assert (result.per_sample["group"] == -1).all()
    assert result.summary["num_groups"] == 0


def test_absolute_threshold_overrides_relative():
    embeddings, _ = embeddings_with_copies(seed=3)
    everything = NearDuplicates(threshold=2.0).run(make_inputs(embeddings))
    assert everything.summary["num_flagged"] == len(embeddings)
    assert everything.summary["threshold"] == 2.0
    nothing = NearDuplicates(threshold=0.0).run(make_inputs(embeddings))
    assert nothing.summary["num_flagged"] == 0


def test_exact_copies_never_match_themselves():
    row = np.ones((1, 8))
    embeddings = np.vstack([np.repeat(row, 5, axis=0), np.eye(8)])
    distances, indices = cosine_neighbors(embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True), 4)
    assert all(i not in set(row_idx.tolist()) for i, row_idx in enumerate(indices))
    assert np.allclose(distances[:5], 0.0, atol=1e-6)
    result = NearDuplicates().run(make_inputs(embeddings))
    assert result.per_sample["flag"][:5].all() and len(set(result.per_sample["group"][:5].tolist())) == 1


def test_validation():
    with pytest.raises(DataError, match="at least 2"):
        NearDuplicates().run(make_inputs(np.ones((1, 4))))
    bad = np.ones((5, 4))
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        NearDuplicates().run(make_inputs(bad))
    with pytest.raises(DataError, match="embeddings"):
        NearDuplicates().run(CheckInputs(("a", "b"), ("x",), None, None, None))
    with pytest.raises(InputError):
        NearDuplicates(threshold=-0.1)
    assert REGISTRY["near_duplicates"] is NearDuplicates


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), dim=st.integers(1, 6), copies=st.integers(0, 5), seed=st.integers(0, 10_000))
def test_invariants(n, dim, copies, seed):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, dim))
    embeddings = np.vstack([embeddings, embeddings[rng.integers(0, n, copies)]])
    inputs = make_inputs(embeddings)
    result = NearDuplicates().run(inputs)
    per = result.per_sample
    total = len(embeddings)
    assert all(len(v) == total for v in per.values())
    assert ((per["score"] >= 0) & (per["score"] <= 2)).all()
    assert all(nearest != own for nearest, own in zip(per["nearest_id"], inputs.sample_ids))
    assert ((per["group"] >= 0) == per["flag"]).all()
    groups = per["group"][per["flag"]]
    assert sorted(set(groups.tolist())) == list(range(result.summary["num_groups"]))
    assert all((groups == g).sum() >= 2 for g in set(groups.tolist()))  # a group holds at least a pair
    assert (per["score"][per["flag"]] < result.summary["threshold"]).all()
    assert result.summary["num_flagged"] == int(per["flag"].sum())
    if copies:
        assert per["flag"][n:].all()  # every planted copy has its original (or another copy) at distance ~0


def test_run_check_against_mongodb(dataset_name):
    import fiftyone as fo

    from active_learning.store.runs import load_run
    from curation_checks.io import run_check

    embeddings, groups = embeddings_with_copies(n=60, dim=16, seed=4)
    n = len(embeddings)
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png") for i in range(n)])
    dataset.default_classes = ["a", "b"]
    ids = dataset.values("id")
    dataset.set_values("ground_truth", [fo.Classification(label="ab"[i % 2]) for i in range(n)])
    dataset.set_values("model_embedding", embeddings.astype(np.float64).tolist())

    result = run_check(dataset, "near_duplicates")
    scores, flags, group, nearest = dataset.values(
        ["near_duplicate_score", "near_duplicate_flag", "near_duplicate_group", "near_duplicate_nearest_id"])
    planted = sorted(i for g in groups for i in g)
    assert [i for i, f in enumerate(flags) if f] == planted
    assert all(len({group[i] for i in g}) == 1 and group[g[0]] >= 0 for g in groups)
    assert nearest[0] == ids[60] and nearest[60] == ids[0]
    assert np.allclose(scores, result.per_sample["score"])
    _, stored = load_run(dataset, "check_near_duplicates")
    assert stored["summary"]["num_groups"] == 3
    assert stored["summary"]["threshold"] == pytest.approx(result.summary["threshold"])
