"""Label changes keep the old value with provenance; the review queue is idempotent. Real MongoDB."""

from __future__ import annotations

import pytest

from active_learning.errors import DataError
from active_learning.store.label_history import (
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

    undone = undo_last_change(small_dataset, [ids[0]], user="bob")
    assert undone.num_reverted == 1 and undone.reverted == {ids[0]: ("fox", "cat")}
    sample = small_dataset[ids[0]]
    assert sample.ground_truth.label == "cat"
    assert [h["new"] for h in sample[HISTORY_FIELD]] == ["fox", "cat"]
    assert sample[HISTORY_FIELD][-1]["who"] == "bob"
    assert sample[HISTORY_FIELD][-1]["undoes"] == sample[HISTORY_FIELD][0]["change"]
    assert undo_last_change(small_dataset, [ids[0]]).num_reverted == 0, "the undone change is not undone twice"


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


def _history(dataset, sample_id):
    return [(h["old"], h["new"], h["source"]) for h in dataset[sample_id][HISTORY_FIELD] or []]


def test_undo_without_ids_reverts_the_last_change_of_the_dataset_and_walks_back(small_dataset):
    ids = small_dataset.values("id")  # labels cat, dog, cat, dog, cat, dog
    set_labels(small_dataset, {ids[0]: "fox", ids[2]: "fox"}, why="accepted", source="panel", user="alice")
    set_labels(small_dataset, {ids[1]: "fox", ids[3]: "cat", ids[5]: "cat"}, why="accepted", source="panel")
    set_labels(small_dataset, {ids[4]: "dog"}, why="round 1", source="label_studio")

    last = undo_last_change(small_dataset, source="panel", user="bob")
    assert last.reverted == {ids[1]: ("fox", "dog"), ids[3]: ("cat", "dog"), ids[5]: ("cat", "dog")}
    assert last.transitions == [("cat", "dog", 2), ("fox", "dog", 1)]
    assert last.describe() == "3 samples: cat → dog (2), fox → dog (1)"
    assert last.change["source"] == "panel" and last.skipped == 0
    assert small_dataset.values("ground_truth.label") == ["fox", "dog", "fox", "dog", "dog", "dog"]
    # The undone label stays recorded: the undo is a change of its own.
    assert _history(small_dataset, ids[3]) == [("dog", "cat", "panel"), ("cat", "dog", "undo")]
    assert small_dataset[ids[3]][HISTORY_FIELD][-1]["who"] == "bob"

    before = undo_last_change(small_dataset, source="panel")
    assert before.reverted == {ids[0]: ("fox", "cat"), ids[2]: ("fox", "cat")}, "the next undo walks back"
    assert before.change["who"] == "alice"
    assert undo_last_change(small_dataset, source="panel").num_reverted == 0, "nothing of the panel is left"
    assert small_dataset[ids[4]].ground_truth.label == "dog", "another source's change is not touched"
    everything = undo_last_change(small_dataset)
    assert everything.reverted == {ids[4]: ("dog", "cat")}
    assert small_dataset.values("ground_truth.label") == ["cat", "dog"] * 3


def test_undo_never_overwrites_a_later_label(small_dataset):
    ids = small_dataset.values("id")
    set_labels(small_dataset, {ids[0]: "fox", ids[2]: "fox"}, source="panel")
    set_labels(small_dataset, {ids[0]: "dog"}, why="a human in Label Studio", source="label_studio")
    undone = undo_last_change(small_dataset, source="panel")
    assert undone.reverted == {ids[2]: ("fox", "cat")} and undone.skipped == 1
    assert small_dataset[ids[0]].ground_truth.label == "dog", "the later human label stays"
    # A change whose every sample was relabeled since is passed over, not reported forever.
    set_labels(small_dataset, {ids[1]: "fox"}, source="panel")
    set_labels(small_dataset, {ids[1]: "cat"}, source="label_studio")
    assert undo_last_change(small_dataset, source="panel").num_reverted == 0
    # Per sample: the latest standing change is the other source's, so nothing of the panel's is reverted.
    assert undo_last_change(small_dataset, [ids[0]], source="panel").skipped == 0
    assert small_dataset[ids[0]].ground_truth.label == "dog"


def test_undo_of_entries_from_before_change_ids(small_dataset):
    """Histories written before ``change`` ids existed group by time, who, source and why."""
    ids = small_dataset.values("id")
    entry = {"field": "ground_truth", "who": "alice", "when": "2024-01-01T00:00:00+00:00", "why": "accepted",
             "source": "panel"}
    import fiftyone as fo

    small_dataset.set_values(HISTORY_FIELD, {ids[0]: [{**entry, "old": "cat", "new": "fox"}],
                                             ids[1]: [{**entry, "old": "dog", "new": "fox"}]}, key_field="id")
    small_dataset.set_values("ground_truth", {ids[0]: fo.Classification(label="fox"),
                                              ids[1]: fo.Classification(label="fox")}, key_field="id")
    undone = undo_last_change(small_dataset, source="panel")
    assert undone.reverted == {ids[0]: ("fox", "cat"), ids[1]: ("fox", "dog")}
    assert small_dataset.values("ground_truth.label")[:2] == ["cat", "dog"]
    assert undo_last_change(small_dataset, source="panel").num_reverted == 0


def test_undo_on_a_dataset_without_history_does_nothing(small_dataset):
    undone = undo_last_change(small_dataset)
    assert undone.num_reverted == 0 and undone.skipped == 0 and undone.change is None


# -- crash safety: one document update per sample ------------------------------------------------------------------


def _spy_bulk_writes(monkeypatch, dataset) -> list[list]:
    """The operations of every bulk write on ``dataset``'s sample collection, one list per call."""
    from pymongo.collection import Collection

    calls: list[list] = []
    original = Collection.bulk_write

    def spy(self, requests, *args, **kwargs):
        if self.name == dataset._sample_collection_name:
            calls.append(list(requests))
        return original(self, requests, *args, **kwargs)

    monkeypatch.setattr(Collection, "bulk_write", spy)
    return calls


def test_set_labels_is_one_update_per_sample_in_one_bulk_write(small_dataset, monkeypatch):
    """The App's accept and undo: label and history entry of a sample change together, or not at all."""
    ids = small_dataset.values("id")
    before = dict(zip(ids, small_dataset.values("last_modified_at")))
    calls = _spy_bulk_writes(monkeypatch, small_dataset)
    assert set_labels(small_dataset, {ids[0]: "fox", ids[1]: "fox", ids[2]: "cat"}, source="panel") == 2
    (ops,) = calls
    assert sorted(str(op._filter["_id"]) for op in ops) == sorted([ids[0], ids[1]])
    for op in ops:
        assert {"ground_truth", HISTORY_FIELD, "last_modified_at"} == set(op._doc[0]["$set"])
    calls.clear()
    assert undo_last_change(small_dataset, [ids[0]]).num_reverted == 1
    assert [len(ops) for ops in calls] == [1], "the undo too"

    sample = small_dataset[ids[0]]
    assert sample.ground_truth.label == "cat" and sample.ground_truth.id  # a real Classification, with an id
    assert small_dataset[ids[1]].ground_truth.label == "fox"
    after = dict(zip(ids, small_dataset.values("last_modified_at")))
    assert after[ids[0]] > before[ids[0]] and after[ids[1]] > before[ids[1]]
    assert after[ids[2]] == before[ids[2]], "an unchanged sample is not touched"
    assert small_dataset.count_values("ground_truth.label") == {"cat": 3, "dog": 2, "fox": 1}


def test_a_null_history_gets_its_first_entry(small_dataset):
    import fiftyone as fo

    ids = small_dataset.values("id")
    small_dataset.add_sample_field(HISTORY_FIELD, fo.ListField)
    small_dataset._sample_collection.update_many({}, {"$set": {HISTORY_FIELD: None}})  # as older writers left it
    assert set_labels(small_dataset, {ids[0]: "fox"}, user="alice") == 1
    assert [(h["old"], h["new"]) for h in small_dataset[ids[0]][HISTORY_FIELD]] == [("cat", "fox")]


def test_an_update_whose_label_changed_meanwhile_is_not_applied(small_dataset):
    """The history's ``old`` is always the label the change replaced: a stale read writes nothing."""
    from active_learning.store.label_history import SampleUpdate, history_entry, write_sample_updates

    ids = small_dataset.values("id")
    stale = history_entry("ground_truth", "dog", "fox", "bob", "2026-01-01T00:00:00+00:00", "", "manual", "c1")
    fresh = history_entry("ground_truth", "dog", "fox", "bob", "2026-01-01T00:00:00+00:00", "", "manual", "c1")
    updates = [SampleUpdate(ids[0], expected_label="dog", new_label="fox", history_entry=stale),  # it is "cat"
               SampleUpdate(ids[1], expected_label="dog", new_label="fox", history_entry=fresh,
                            fields={"review_status": "done"})]
    assert write_sample_updates(small_dataset, "ground_truth", updates) == 1
    assert small_dataset.values("ground_truth.label")[:2] == ["cat", "fox"]
    assert small_dataset[ids[0]][HISTORY_FIELD] is None and small_dataset[ids[0]]["review_status"] is None
    assert small_dataset[ids[1]]["review_status"] == "done" and len(small_dataset[ids[1]][HISTORY_FIELD]) == 1
    assert small_dataset.get_field_schema()["review_status"].__class__.__name__ == "StringField"
