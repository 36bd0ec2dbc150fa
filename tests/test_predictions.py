"""Model outputs over FiftyOne views (active_learning.model.outputs) on a small real digits dataset in MongoDB."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

import fiftyone as fo

from active_learning.errors import DataError, ModelError
from active_learning.data.images import load_images
from active_learning.data.importers import import_dataset
from active_learning.model.fixed import DEFAULT_TTA_PX, Recipe, file_sha256
from active_learning.model.outputs import (
    DEFAULT_RUN_KEY,
    EMBEDDING_FIELD,
    PREDICTION_FIELD,
    PROBS_FIELD,
    checkpoint_dir,
    collect_checkpoints,
    compute_model_outputs,
    load_model,
    read_probs,
)
from active_learning.store.runs import load_run

RECIPE = Recipe(epochs=2, batch_size=32)
NUM_TRAIN, NUM_UNLABELED, NUM_TEST = 300, 20, 100


@pytest.fixture(scope="module")
def computed(one_torch_thread):
    """Digits imported; 300 train samples (20 of them without a label) scored with 2 folds; 100 test samples."""
    name = f"test-predictions-{uuid.uuid4().hex[:8]}"
    dataset = import_dataset(name, None, progress=False)
    view = dataset.match_tags("train").take(NUM_TRAIN, seed=0)
    unlabeled_ids = view.values("id")[:NUM_UNLABELED]
    dataset.set_values("ground_truth", {i: None for i in unlabeled_ids}, key_field="id")
    test_view = dataset.match_tags("test").take(NUM_TEST, seed=0)
    progress: list[tuple[float, str]] = []
    summary = compute_model_outputs(view, folds=2, recipe=RECIPE, device="cpu", test_view=test_view,
                                    progress=lambda f, m: progress.append((f, m)))
    yield dataset, view, test_view, set(unlabeled_ids), summary, progress
    fo.delete_dataset(name)


def test_fields_are_written_for_exactly_the_labeled_samples(computed) -> None:
    dataset, view, test_view, unlabeled, summary, _ = computed
    assert summary.num_scored == NUM_TRAIN - NUM_UNLABELED
    assert summary.num_unlabeled_skipped == NUM_UNLABELED
    labeled = set(view.values("id")) - unlabeled
    classes = dataset.default_classes

    ids, probs, predictions, embeddings = dataset.values(["id", PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD])
    scored = {i for i, p in zip(ids, probs) if p is not None}
    assert scored == labeled  # out-of-sample probabilities need a label to hold out
    predicted = {i for i, p in zip(ids, predictions) if p is not None}
    assert predicted == labeled | set(test_view.values("id"))  # test samples are evaluated, never scored
    # Every sample of the view is embedded (near-duplicate and outlier checks cover unlabeled ones too).
    assert {i for i, e in zip(ids, embeddings) if e is not None} == labeled | unlabeled

    for i, row, prediction, embedding in zip(ids, probs, predictions, embeddings):
        if i in labeled:
            assert len(row) == 10 and abs(sum(row) - 1.0) < 1e-4 and min(row) >= 0
            assert prediction.label == classes[int(np.argmax(row))]
            assert prediction.confidence == pytest.approx(max(row), abs=1e-6)
        if i in labeled | unlabeled:
            assert len(embedding) == 512 and all(np.isfinite(embedding))


def test_out_of_sample_accuracy_matches_the_stored_probabilities(computed) -> None:
    dataset, view, _, _, summary, _ = computed
    ids, probs = read_probs(view)
    labels = dict(zip(*view.values(["id", "ground_truth.label"])))
    truth = np.asarray([dataset.default_classes.index(labels[i]) for i in ids])
    accuracy = float((probs.argmax(1) == truth).mean())
    assert accuracy == pytest.approx(summary.out_of_sample_accuracy, abs=1e-9)
    assert accuracy > 0.3  # 2 epochs on 140 digits per fold: clearly above chance (0.1)


def test_run_is_recorded_with_the_checkpoint(computed) -> None:
    dataset, view, _, _, summary, _ = computed
    config, results = load_run(dataset, DEFAULT_RUN_KEY)
    assert config["recipe"] == RECIPE.to_dict()
    assert config["folds"] == 2 and config["seeds"] == [0] and config["label_field"] == "ground_truth"
    assert config["tta_px"] == DEFAULT_TTA_PX and "averaged over 25 shifts of up to 2 px" in config["probabilities"]
    assert config["classes"] == dataset.default_classes
    assert set(config["fields"]) == {PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD}
    checkpoint = Path(results["checkpoint"])
    assert checkpoint.is_file() and checkpoint.parent == checkpoint_dir(dataset)
    assert results["checkpoint_sha256"] == file_sha256(checkpoint) == summary.checkpoint_sha256
    assert checkpoint.name == f"{DEFAULT_RUN_KEY}-{summary.checkpoint_sha256[:16]}.pt", "content-addressed"
    assert results["num_scored"] == NUM_TRAIN - NUM_UNLABELED
    assert results["num_unlabeled_skipped"] == NUM_UNLABELED
    assert results["num_test"] == NUM_TEST and results["device"] == "cpu"
    assert results["out_of_sample_accuracy"] == pytest.approx(summary.out_of_sample_accuracy)
    # The run is registered on the view: FiftyOne restores the very samples it scored.
    assert sorted(dataset.load_run_view(DEFAULT_RUN_KEY).values("id")) == sorted(view.values("id"))


def test_load_model_restores_the_final_model(computed) -> None:
    dataset, view, test_view, unlabeled, summary, _ = computed
    model = load_model(dataset)
    assert model.recipe == RECIPE and model.num_classes == 10
    ids, paths, labels, stored = test_view.values(["id", "filepath", "ground_truth.label",
                                                   f"{PREDICTION_FIELD}.label"])
    # The test view was scored with test-time augmentation (the default), like the out-of-sample rows.
    assert summary.tta_px == DEFAULT_TTA_PX == 2
    predicted = model.predict_proba(load_images(paths, RECIPE.image_size), tta_px=summary.tta_px).argmax(1)
    names = [dataset.default_classes[p] for p in predicted]
    assert names == stored  # the checkpoint is the model that evaluated the test view
    assert summary.test_accuracy == pytest.approx(np.mean([n == t for n, t in zip(names, labels)]))
    assert summary.num_test == NUM_TEST
    # The unlabeled samples of the view carry the final model's embeddings.
    unlabeled_view = view.select(sorted(unlabeled))
    stored_embeddings = np.asarray(unlabeled_view.values(EMBEDDING_FIELD))
    images = load_images(unlabeled_view.values("filepath"), RECIPE.image_size)
    np.testing.assert_allclose(stored_embeddings, model.embed(images), rtol=1e-5, atol=1e-5)

    checkpoint = Path(summary.checkpoint)
    original = checkpoint.read_bytes()
    try:
        checkpoint.write_bytes(original + b"tampered")
        with pytest.raises(ModelError, match="SHA-256 mismatch"):
            load_model(dataset)
    finally:
        checkpoint.write_bytes(original)
    with pytest.raises(DataError, match="has no run 'no_such_run'"):
        load_model(dataset, run_key="no_such_run")


def test_progress_reaches_the_end(computed) -> None:
    *_, progress = computed
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0.0 <= fractions[0]
    assert any("fold 2/2" in m for _, m in progress) and any(m.startswith("final model") for _, m in progress)


def test_collect_checkpoints_deletes_only_what_no_run_references(dataset_name: str) -> None:
    """After a run's record: its replaced and orphaned checkpoints go; referenced, newer, other runs' files stay."""
    import os
    import time

    from active_learning.store.runs import record_run

    dataset = fo.Dataset(dataset_name)
    folder = checkpoint_dir(dataset)
    folder.mkdir(parents=True)
    now = time.time()

    def file(name: str, age: float) -> Path:
        path = folder / name
        path.write_bytes(name.encode())
        os.utime(path, (now - age, now - age))
        return path

    legacy = file(f"{DEFAULT_RUN_KEY}.pt", 500)  # the fixed name of older versions
    replaced = file(f"{DEFAULT_RUN_KEY}-{'a' * 16}.pt", 400)
    orphan = file(f"{DEFAULT_RUN_KEY}-{'b' * 16}.pt", 300)  # a killed run saved it, never recorded it
    current = file(f"{DEFAULT_RUN_KEY}-{'c' * 16}.pt", 200)
    in_flight = file(f"{DEFAULT_RUN_KEY}-{'d' * 16}.pt", 0)  # newer than the record: maybe another writer's
    kept_by_other_run = file(f"{DEFAULT_RUN_KEY}-{'e' * 16}.pt", 450)
    other_key = file(f"{DEFAULT_RUN_KEY}_b-{'f' * 16}.pt", 600)
    stale_temp = file(f".{DEFAULT_RUN_KEY}.999999999.0badf00d.tmp", 3600)  # no such process
    live_temp = file(f".{DEFAULT_RUN_KEY}.{os.getppid()}.0c0ffee0.tmp", 3600)  # the writer is alive
    fresh_temp = file(f".{DEFAULT_RUN_KEY}.999999999.12345678.tmp", -60)  # younger than this process

    record_run(dataset, DEFAULT_RUN_KEY, {"kind": "model_outputs"}, {"checkpoint": str(current)})
    record_run(dataset, "pinned", {"kind": "notes"}, {"models": {"kept": [str(kept_by_other_run)]}})
    removed = collect_checkpoints(dataset, DEFAULT_RUN_KEY)
    assert sorted(p.name for p in removed) == sorted(p.name for p in (legacy, replaced, orphan, stale_temp))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (current, in_flight, kept_by_other_run, other_key, live_temp, fresh_temp))
    assert collect_checkpoints(dataset, DEFAULT_RUN_KEY) == []


# -- refused before any training -----------------------------------------------------------------------------
def test_overlapping_test_view_is_refused(computed) -> None:
    dataset, view, *_ = computed
    overlapping = dataset.select(view.values("id")[25:35])
    with pytest.raises(DataError, match="overlaps the training view"):
        compute_model_outputs(view, folds=2, recipe=RECIPE, test_view=overlapping, run_key="refused")
    assert "refused" not in dataset.list_runs()


def test_empty_view_is_refused(computed) -> None:
    dataset, *_ = computed
    with pytest.raises(DataError, match="The view is empty"):
        compute_model_outputs(dataset.match_tags("no-such-tag"), folds=2, recipe=RECIPE, run_key="refused")
    assert "refused" not in dataset.list_runs()


def test_missing_label_field_names_the_available_ones(computed) -> None:
    dataset, view, *_ = computed
    with pytest.raises(DataError, match="has no field 'labels'.*'ground_truth'.*Set `label_field`") as info:
        compute_model_outputs(view, label_field="labels", folds=2, recipe=RECIPE, run_key="refused")
    assert PREDICTION_FIELD in str(info.value)  # every Classification field is offered
    with pytest.raises(DataError, match="is not a Classification field"):
        compute_model_outputs(view, label_field="source_index", folds=2, recipe=RECIPE, run_key="refused")
    assert "refused" not in dataset.list_runs()


def test_view_without_any_label_is_refused(computed) -> None:
    dataset, view, _, unlabeled, *_ = computed
    with pytest.raises(DataError, match="No sample in the view has a label"):
        compute_model_outputs(dataset.select(list(unlabeled)), folds=2, recipe=RECIPE, run_key="refused")
    # A test view without labels is refused before any training: no checkpoint, no run.
    with pytest.raises(DataError, match="No sample in the view has a label"):
        compute_model_outputs(view, folds=2, recipe=RECIPE, test_view=dataset.select(list(unlabeled)),
                              run_key="refused")
    assert not (checkpoint_dir(dataset) / "refused.pt").exists()
    assert "refused" not in dataset.list_runs()


def test_too_few_samples_per_class_is_refused(computed) -> None:
    dataset, view, *_ = computed
    few = view.exists("ground_truth").take(12, seed=1)
    with pytest.raises(DataError, match="fewer labeled samples than folds"):
        compute_model_outputs(few, folds=5, recipe=RECIPE, run_key="refused")


def test_labels_outside_the_class_list_are_refused(dataset_name: str) -> None:
    dataset = fo.Dataset(dataset_name)
    dataset.classes = {"ground_truth": ["cat", "dog"]}
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png", ground_truth=fo.Classification(label=label))
                         for i, label in enumerate(["cat", "dog", "cow", "cat"])])
    with pytest.raises(DataError, match=r"Labels \['cow'\] in 'ground_truth' are not in the class list") as info:
        compute_model_outputs(dataset, folds=2, recipe=RECIPE)
    assert "dataset.classes['ground_truth']" in str(info.value)


# -- a model trained on a disjoint split scores the view -----------------------------------------------------
def test_disjoint_split_scores_the_view_with_models_trained_elsewhere(computed) -> None:
    """``fit_view``: the test split scored by models trained on the train split alone (2 seeds, averaged)."""
    dataset, view, test_view, unlabeled, *_ = computed
    fit_view = view.exists("ground_truth")
    fields = [PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD]
    before = dict(zip(fields, test_view.values(fields)))  # restored at the end: the other tests read them
    summary = compute_model_outputs(test_view, recipe=RECIPE, device="cpu", seeds=(0, 1), fit_view=fit_view,
                                    run_key="disjoint", tta_px=0)  # plain probabilities: TTA has its own test
    assert summary.split == "disjoint" and summary.num_fit == NUM_TRAIN - NUM_UNLABELED
    assert summary.num_scored == NUM_TEST and "disjoint view of 280 labeled samples" in summary.source
    config, results = load_run(dataset, "disjoint")
    assert config["split"] == "disjoint" and config["folds"] is None and config["num_fit"] == 280
    assert "trained on a disjoint view" in config["probabilities"] and config["seeds"] == [0, 1]

    # The stored probabilities are the mean of the two seeds' models, each trained on the fit view only.
    from active_learning.model.fixed import FixedModel

    fit_images = load_images(fit_view.values("filepath"), RECIPE.image_size)
    classes = dataset.default_classes
    fit_labels = np.asarray([classes.index(c) for c in fit_view.values("ground_truth.label")])
    ids, paths = test_view.values(["id", "filepath"])
    images = load_images(paths, RECIPE.image_size)
    expected = np.mean([FixedModel(10, RECIPE.with_seed(s), device="cpu").fit(fit_images, fit_labels)
                        .predict_proba(images) for s in (0, 1)], axis=0)
    stored_ids, stored = read_probs(test_view)
    assert stored_ids == ids
    np.testing.assert_allclose(stored, expected / expected.sum(1, keepdims=True), atol=1e-5)
    # The checkpoint is the first seed's model, trained on the fit view.
    np.testing.assert_allclose(load_model(dataset, run_key="disjoint").predict_proba(images),
                               FixedModel(10, RECIPE.with_seed(0), device="cpu").fit(fit_images, fit_labels)
                               .predict_proba(images), atol=1e-5)
    dataset.delete_run("disjoint")
    for field, values in before.items():
        test_view.set_values(field, values)


def test_disjoint_split_refuses_an_overlap_or_an_empty_fit_view(computed) -> None:
    dataset, view, test_view, *_ = computed
    with pytest.raises(DataError, match="10 samples are both scored and trained on"):
        compute_model_outputs(test_view, recipe=RECIPE, fit_view=dataset.select(test_view.values("id")[:10]),
                              run_key="refused")
    with pytest.raises(DataError, match="view to train on .* is empty"):
        compute_model_outputs(test_view, recipe=RECIPE, fit_view=dataset.match_tags("no-such-tag"),
                              run_key="refused")
    assert "refused" not in dataset.list_runs()


# -- test-time augmentation -------------------------------------------------------------------------------------
def test_tta_averages_the_stored_probabilities_over_shifts_and_is_recorded(computed) -> None:
    """``tta_px=1``: a model trained on the fit view scores the test view; the stored rows and the test accuracy
    are the model's 9-shift averages, not its plain probabilities; the run and the summary say so."""
    from active_learning.model.fixed import FixedModel

    dataset, view, test_view, *_ = computed
    fit_view = view.exists("ground_truth")
    scored = test_view.limit(40)
    fields = [PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD]
    before = dict(zip(fields, scored.values(fields)))  # restored at the end: the other tests read them
    summary = compute_model_outputs(scored, recipe=RECIPE, device="cpu", fit_view=fit_view, run_key="tta",
                                    tta_px=1)
    assert summary.tta_px == 1 and summary.source.endswith("averaged over 9 shifts of up to 1 px")
    config, _ = load_run(dataset, "tta")
    assert config["tta_px"] == 1 and "averaged over 9 shifts of up to 1 px" in config["probabilities"]

    classes = dataset.default_classes
    model = FixedModel(10, RECIPE.with_seed(0), device="cpu").fit(
        load_images(fit_view.values("filepath"), RECIPE.image_size),
        np.asarray([classes.index(c) for c in fit_view.values("ground_truth.label")]))
    images = load_images(scored.values("filepath"), RECIPE.image_size)
    averaged, plain = model.predict_proba(images, tta_px=1), model.predict_proba(images)
    _, stored = read_probs(scored)
    np.testing.assert_allclose(stored, averaged / averaged.sum(1, keepdims=True), atol=1e-5)
    assert np.abs(stored - plain).max() > 1e-3, "the shifts changed the probabilities"
    dataset.delete_run("tta")
    for field, values in before.items():
        scored.set_values(field, values)


@pytest.mark.parametrize("tta_px", [-1, 5, 1.5, True])
def test_bad_tta_px_is_refused_before_anything_is_written(computed, tta_px) -> None:
    from active_learning.errors import InputError

    dataset, view, *_ = computed
    with pytest.raises(InputError, match="`tta_px` must be an integer from 0"):
        compute_model_outputs(view, folds=2, recipe=RECIPE, run_key="refused", tta_px=tta_px)
    assert "refused" not in dataset.list_runs()
