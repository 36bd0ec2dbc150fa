"""Label changes keep the old value with provenance; the review queue is idempotent. Real MongoDB."""

from __future__ import annotations

import pytest

from active_learning.errors import DataError
from active_learning.label_history import (
    HISTORY_FIELD,
    queue_for_review,
    review_queue,
    set_labels,
    undo_last_change,
)


@pytest.fixture
def small_dataset(dataset_name):
    import fiftyone as fo

    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = ["cat", "dog", "fox"]
    dataset.add_samples([
        fo.Sample(filepath=f"/tmp/img{i}.png", ground_truth=fo.Classification(label=["cat", "dog"][i % 2]))
        for i in range(6)
    ])
    return dataset


def test_set_labels_keeps_old_value_and_provenance(small_dataset):
    ids = small_dataset.values("id")
    changed = set_labels(small_dataset, {ids[0]: "fox", ids[1]: "dog"}, why="label error suggestion",
                         source="label_errors", user="alice")
    assert changed == 1  # ids[1] already was "dog"
    sample = small_dataset[ids[0]]
    assert sample.ground_truth.label == "fox"
    (entry,) = sample[HISTORY_FIELD]
    assert entry["old"] == "cat" and entry["new"] == "fox" and entry["who"] == "alice"
    assert entry["why"] == "label error suggestion" and entry["source"] == "label_errors" and entry["when"]
    assert small_dataset[ids[1]][HISTORY_FIELD] in (None, [])

    again = set_labels(small_dataset, {ids[0]: "fox"}, user="alice")
    assert again == 0 and len(small_dataset[ids[0]][HISTORY_FIELD]) == 1

    assert undo_last_change(small_dataset, [ids[0]], user="bob") == 1
    sample = small_dataset[ids[0]]
    assert sample.ground_truth.label == "cat"
    assert [h["new"] for h in sample[HISTORY_FIELD]] == ["fox", "cat"]
    assert sample[HISTORY_FIELD][-1]["who"] == "bob"


def test_unknown_class_or_sample_changes_nothing(small_dataset):
    ids = small_dataset.values("id")
    with pytest.raises(DataError, match="not in the class list"):
        set_labels(small_dataset, {ids[0]: "zebra", ids[1]: "fox"})
    with pytest.raises(DataError, match="not in dataset"):
        set_labels(small_dataset, {ids[0]: "fox", "0" * 24: "cat"})
    assert small_dataset.values("ground_truth.label") == ["cat", "dog"] * 3


def test_review_queue_is_idempotent_and_ordered(small_dataset):
    ids = small_dataset.values("id")
    assert len(review_queue(small_dataset)) == 0
    assert queue_for_review(small_dataset, ids[:3], "suspected label error") == 3
    assert queue_for_review(small_dataset, ids[:4], "suspected label error") == 1
    queued = review_queue(small_dataset)
    assert set(queued.values("id")) == set(ids[:4])
    assert set(queued.values("review_reason")) == {"suspected label error"}
