"""Drift over FiftyOne views (``curation_checks.drift.report``) against the real MongoDB.

Samples are real PNG files; their ``model_embedding`` / ``model_probs`` are set directly from a synthetic 3-class
problem with shifts planted in some batches only (one test uses the fixed model's real outputs on digits).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

import fiftyone as fo

from active_learning.errors import DataError, InputError
from active_learning.store.runs import load_run
from curation_checks.drift.stats import MIN_SAMPLES
from curation_checks.drift.report import (
    BATCH_FIELD, FLAG_FIELD, RUN_KEY, SCORE_FIELD, DriftReport, ViewSpec, compute_drift, format_drift_report,
    load_drift_report, most_drifted_view, parse_view_spec, resolve_views)
from curation_checks.model_outputs import fill_model_outputs

CLASSES = ["a", "b", "c"]
CENTRES = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
DIM = 16
UNIFORM = (1 / 3, 1 / 3, 1 / 3)


def _png(folder: Path, index: int, rng: np.random.Generator) -> str:
    from PIL import Image

    path = folder / f"img-{index:05d}.png"
    Image.fromarray(rng.integers(0, 256, size=(8, 8), dtype=np.uint8)).save(path)
    return str(path)


def _outputs(n: int, prior, rng: np.random.Generator, covariate_shift: float = 0.0, far: int = 0):
    """Labels from ``prior``, the Bayes posterior of a 2-D Gaussian class problem (calibrated for a uniform prior)
    and a 16-D embedding: the 2-D point plus 14 noise dimensions, offset by 3 so the OOD cosine score is meaningful.

    ``covariate_shift`` moves noise dimension 0 (the probabilities do not see it); ``far`` rows point the opposite
    way (planted out-of-distribution samples).
    """
    labels = rng.choice(3, size=n, p=prior)
    points = CENTRES[labels] + rng.normal(size=(n, 2))
    logits = -0.5 * ((points[:, None, :] - CENTRES[None]) ** 2).sum(axis=2)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    noise = rng.normal(size=(n, DIM - 2))
    noise[:, 0] += covariate_shift
    embeddings = np.hstack([points, noise]) + 3.0
    if far:
        embeddings[-far:] = -3.0 + rng.normal(scale=0.3, size=(far, DIM))
    return labels, probs, embeddings


def build(name: str, folder: Path, groups: list[dict], seed: int = 0, default_classes: bool = True) -> fo.Dataset:
    """One group of samples per dict: n, tags, batch (batch_id), prior, covariate_shift, far, labeled."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    index = 0
    for group in groups:
        labels, probs, embeddings = _outputs(group["n"], group.get("prior", UNIFORM), rng,
                                             group.get("covariate_shift", 0.0), group.get("far", 0))
        for y, p, e in zip(labels, probs, embeddings):
            sample = fo.Sample(filepath=_png(folder, index, rng), tags=list(group.get("tags", [])),
                               model_probs=np.round(p, 8).tolist(), model_embedding=e.tolist())
            if group.get("labeled", False):
                sample["ground_truth"] = fo.Classification(label=CLASSES[y])
            if "batch" in group:
                sample["batch_id"] = group["batch"]
            samples.append(sample)
            index += 1
    dataset = fo.Dataset(name)
    dataset.add_samples(samples)
    if "ground_truth" not in dataset.get_field_schema():
        dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    if default_classes:
        dataset.default_classes = list(CLASSES)
    return dataset


STANDARD = [
    {"n": 300, "tags": ["reference"], "labeled": True},
    {"n": 150, "batch": 10, "covariate_shift": 1.2, "far": 8},  # embeddings move, probabilities do not
    {"n": 150, "batch": 2, "prior": (0.8, 0.15, 0.05)},  # label shift: probabilities and embeddings move
    {"n": 150, "batch": 1},
    {"n": 150, "batch": 3},
]


@pytest.fixture
def standard(dataset_name, tmp_path):
    return build(dataset_name, tmp_path / "media", STANDARD)


# -- specs ---------------------------------------------------------------------------------------------------------
def test_parse_view_spec_forms_and_errors() -> None:
    assert parse_view_spec("tag:reference") == ViewSpec("tag", "reference")
    assert parse_view_spec(" field:split = ref ") == ViewSpec("field", "split", "ref")
    assert parse_view_spec("field:meta.week=2024-01-02") == ViewSpec("field", "meta.week", "2024-01-02")
    assert parse_view_spec("batch:batch_id") == ViewSpec("batch", "batch_id")
    assert parse_view_spec("all-but-reference") == ViewSpec("all-but-reference")
    for text in ("tag:reference", "field:split=ref", "batch:batch_id", "all-but-reference"):
        assert str(parse_view_spec(text)) == text
        assert parse_view_spec(parse_view_spec(text)) == parse_view_spec(text)
    for bad, message in [("reference", "Unknown view spec"), ("view:x", "Unknown view spec"), ("tag:", "names no tag"),
                         ("field:split", "needs a value"), ("field:split=", "needs a value"),
                         ("batch:a=b", "field name only"), ("batch:bad name", "not a field name"), ("", "non-empty"),
                         ("field:1x=2", "not a field name")]:
        with pytest.raises(InputError, match=message):
            parse_view_spec(bad)


def test_resolve_views_orders_batches_by_value_and_leaves_out_the_reference(dataset_name, tmp_path) -> None:
    groups = [{"n": 25, "tags": ["reference"], "batch": 0, "labeled": True}]
    groups += [{"n": 20 + i, "batch": value} for i, value in enumerate([10, 2, 1, 33])]
    groups += [{"n": 5}]  # no batch value: in no batch
    dataset = build(dataset_name, tmp_path / "media", groups)
    reference, batches = resolve_views(dataset, "tag:reference", "batch:batch_id")
    assert len(reference) == 25
    assert [name for name, _ in batches] == ["1", "2", "10", "33"]  # numbers by value, not as text
    assert [len(view) for _, view in batches] == [22, 21, 20, 23]  # batch 0 is the reference: left out
    assert all(set(view.values("batch_id")) == {int(name)} for name, view in batches)

    # strings with numbers sort naturally; dates by date; field:FIELD=VALUE takes the field's type
    week_of = {1: "week2", 2: "week10", 10: "week1", 33: "week3"}
    day_of = {1: date(2024, 3, 1), 2: date(2023, 12, 31), 10: date(2024, 1, 15), 33: date(2024, 1, 2)}
    ids, values = dataset.values(["id", "batch_id"])
    dataset.set_values("week", {i: week_of.get(v) for i, v in zip(ids, values)}, key_field="id")
    dataset.add_sample_field("day", fo.DateField)
    dataset.set_values("day", {i: day_of.get(v) for i, v in zip(ids, values)}, key_field="id")
    _, batches = resolve_views(dataset, "tag:reference", "batch:week")
    assert [name for name, _ in batches] == ["week1", "week2", "week3", "week10"]
    _, batches = resolve_views(dataset, "field:batch_id=0", "batch:day")
    assert [name for name, _ in batches] == ["2023-12-31", "2024-01-02", "2024-01-15", "2024-03-01"]
    reference, batches = resolve_views(dataset, "field:day=2024-01-15", "field:batch_id=33")
    assert set(reference.values("batch_id")) == {10} and batches[0][0] == "field:batch_id=33"
    _, batches = resolve_views(dataset, "field:batch_id=0", "all-but-reference")
    assert batches[0][0] == "all-but-reference" and len(batches[0][1]) == len(dataset) - 25


# -- the main path -------------------------------------------------------------------------------------------------
def test_compute_drift_finds_the_planted_shifts_and_stores_everything(standard) -> None:
    dataset = standard
    report = compute_drift(dataset, "tag:reference", "batch:batch_id", n_permutations=200, random_state=0)

    assert [b.name for b in report.batches] == ["1", "2", "3", "10"]
    by_name = {b.name: b for b in report.batches}
    assert report.drifted_batches == ["2", "10"]
    assert by_name["10"].mmd_drift and not by_name["10"].ks_drift  # only the embeddings moved
    assert by_name["2"].ks_drift and by_name["2"].ks_min_p_value < 1e-3
    for name in ("1", "3"):
        assert not by_name[name].drifted and by_name[name].mmd_p_value > 0.025
    assert all(b.num_samples == 150 and b.ks_threshold == pytest.approx(0.05 / 2 / 3) for b in report.batches)
    # BBSE: class a's prior rises from ~1/3 towards 0.8 in batch 2 only
    change = by_name["2"].largest_prior_change
    assert change["class"] == "a" and change["reference"] == pytest.approx(1 / 3, abs=0.08)
    assert change["estimate"] > 0.6 and by_name["2"].estimated_prior[0] == change["estimate"]
    assert by_name["1"].prior_total_variation < by_name["2"].prior_total_variation
    assert report.reference_prior == pytest.approx(
        np.bincount([CLASSES.index(v) for v in dataset.match_tags("reference").values("ground_truth.label")],
                    minlength=3) / 300)
    assert report.num_reference == report.num_reference_labeled == 300
    assert report.num_reference_trained_on is None  # no curation_model run on this dataset

    # per-sample fields on the targets only, consistent with the threshold
    reference_ids = set(dataset.match_tags("reference").values("id"))
    ids, scores, flags, batches, batch_ids = dataset.values(["id", SCORE_FIELD, FLAG_FIELD, BATCH_FIELD, "batch_id"])
    for i, score, flag, batch, batch_id in zip(ids, scores, flags, batches, batch_ids):
        if i in reference_ids:
            assert score is None and flag is None and batch is None
        else:
            assert batch == str(batch_id) and flag == (score > report.ood_threshold)
    assert {b.name: b.num_ood for b in report.batches} == {
        name: sum(f for f, b in zip(flags, batches) if b == name) for name in ("1", "2", "3", "10")}
    # the 8 planted far samples are the most drifted, and all flagged
    far_ids = set(dataset.match(fo.ViewField("batch_id") == 10).values("id")[-8:])
    top = most_drifted_view(dataset, report, 8)
    assert set(top.values("id")) == far_ids and all(top.values(FLAG_FIELD))
    assert top.values(SCORE_FIELD) == sorted(top.values(SCORE_FIELD), reverse=True)
    one = most_drifted_view(dataset, report, 500, batch="1")
    assert len(one) == 150 and set(one.values(BATCH_FIELD)) == {"1"}
    assert by_name["10"].fraction_ood >= 8 / 150
    assert by_name["1"].fraction_ood < 0.15  # ~5% by construction of the threshold

    # the run: config and per-batch results in batch order; the report reloads identically
    config, results = load_run(dataset, RUN_KEY)
    assert config["reference_spec"] == "tag:reference" and config["target_spec"] == "batch:batch_id"
    assert (config["n_permutations"], config["random_state"], config["alpha"]) == (200, 0, 0.05)
    assert [b["name"] for b in results["batches"]] == ["1", "2", "3", "10"]
    assert [b["mmd_p_value"] for b in results["batches"]] == [b.mmd_p_value for b in report.batches]
    assert load_drift_report(dataset) == report
    reloaded = fo.load_dataset(dataset.name)
    assert isinstance(load_drift_report(reloaded), DriftReport)

    text = format_drift_report(report)
    lines = text.splitlines()
    print(text)
    table = lines[lines.index(next(line for line in lines if line.startswith("batch "))) + 1:-1]
    assert [line.split()[0] for line in table] == ["1", "2", "3", "10"]  # one line per batch, in batch order
    assert "2 of 4 batches drifted: 2, 10" in text
    batch_two = next(line for line in lines if line.startswith("2 "))
    assert "DRIFT" in batch_two and f"a {change['reference']:.2f} -> {change['estimate']:.2f}" in batch_two


def test_deterministic_for_a_seed_and_rerun_clears_stale_fields(standard) -> None:
    dataset = standard
    first = compute_drift(dataset, "tag:reference", "batch:batch_id", n_permutations=50, random_state=3)
    again = compute_drift(dataset, "tag:reference", "batch:batch_id", n_permutations=50, random_state=3)
    assert [b.mmd_p_value for b in first.batches] == [b.mmd_p_value for b in again.batches]
    dataset.match(fo.ViewField("batch_id") == 2).tag_samples("new")
    report = compute_drift(dataset, "tag:reference", "tag:new", n_permutations=50)
    assert [b.name for b in report.batches] == ["tag:new"] and report.batches[0].drifted
    scored = dataset.exists(SCORE_FIELD)
    assert set(scored.values("batch_id")) == {2} and len(scored) == 150  # the other batches were cleared
    assert set(dataset.exists(BATCH_FIELD).values(BATCH_FIELD)) == {"tag:new"}
    assert len(dataset.exists(FLAG_FIELD)) == 150
    assert load_drift_report(dataset).target_spec == "tag:new"


def test_without_labels_the_estimate_is_skipped(dataset_name, tmp_path) -> None:
    dataset = build(dataset_name, tmp_path / "media", [{"n": 100, "tags": ["reference"]},
                                                       {"n": 60, "tags": ["new"], "prior": (0.7, 0.2, 0.1)}])
    report = compute_drift(dataset, "tag:reference", "tag:new", n_permutations=50, label_field=None)
    batch = report.batches[0]
    assert batch.drifted and batch.estimated_prior is None and batch.label_shift_note == "no label field given"
    assert report.reference_prior is None and report.num_reference_labeled == 0
    assert "n/a" in format_drift_report(report)


# -- errors: every one is raised before anything is written --------------------------------------------------------
def _snapshot(dataset):
    return dataset.values(SCORE_FIELD), dataset.values(BATCH_FIELD), load_run(dataset, RUN_KEY)[1]


def test_bad_inputs_raise_clear_errors_and_write_nothing(dataset_name, tmp_path) -> None:
    groups = STANDARD[:3] + [
        {"n": 5, "batch": 99},  # too small a batch
        {"n": 30, "tags": ["overlap"]},
        {"n": 8, "tags": ["tiny"], "labeled": True},
    ]
    dataset = build(dataset_name, tmp_path / "media", groups)
    dataset.match_tags("reference").limit(10).tag_samples("overlap")
    dataset.match(fo.ViewField("batch_id") == 99).tag_samples("small")
    compute_drift(dataset, "tag:reference", "field:batch_id=10", n_permutations=20)
    before = _snapshot(dataset)

    cases = [
        (("tag:reference", "batch:nope"), {}, DataError, r"no field 'nope'; its fields are: .*batch_id"),
        (("tag:missing", "batch:batch_id"), {}, DataError, r"tag 'missing'.*tags are: .*reference"),
        (("tag:reference", "field:batch_id=7"), {}, DataError, r"batch_id = '7'.*values present: 2, 10, 99"),
        (("tag:reference", "field:batch_id=x"), {}, InputError, "not a valid int"),
        (("tag:reference", "batch:batch_id"), {}, DataError,
         rf"batch '99' \(batch:batch_id\) has 5 samples; the drift tests need at least {MIN_SAMPLES}"),
        (("tag:tiny", "field:batch_id=10"), {}, DataError, rf"reference \(tag:tiny\) has 8 samples.*{MIN_SAMPLES}"),
        (("tag:reference", "tag:small"), {}, DataError, "has 5 samples"),
        (("tag:reference", "tag:overlap"), {}, DataError, "shares 10 of its 40 samples with the reference"),
        (("field:batch_id=10", "batch:batch_id"), {}, DataError, "batch '99'"),
        (("batch:batch_id", "tag:overlap"), {}, InputError, "reference must be one view"),
        (("all-but-reference", "tag:overlap"), {}, InputError, "reference must be one view"),
        (("tag:reference", "tag:"), {}, InputError, "names no tag"),
        (("tag:reference", "field:batch_id=2"), {"n_permutations": 0}, InputError, "n_permutations"),
        (("tag:reference", "field:batch_id=2"), {"alpha": 1.5}, InputError, "alpha"),
        (("tag:reference", "field:batch_id=2"), {"random_state": -1}, InputError, "random_state"),
        (("tag:reference", "field:batch_id=2"), {"label_field": "labels"}, DataError, "label_field=None"),
        (("tag:reference", "field:batch_id=2"), {"embedding_field": "clip"}, DataError, "run `curation model"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            compute_drift(dataset, *args, **kwargs)

    # the whole dataset as reference leaves no target
    dataset.tag_samples("everything")
    with pytest.raises(DataError, match="nothing left to compare"):
        compute_drift(dataset, "tag:everything", "all-but-reference")
    # missing probabilities for some target samples: the message names what computes them
    ids = dataset.match(fo.ViewField("batch_id") == 2).values("id")[:7]
    dataset.set_values("model_probs", {i: None for i in ids}, key_field="id")
    with pytest.raises(DataError, match=r"7 of the 150 samples of the target \(field:batch_id=2\) have no "
                                        r"'model_probs'.*fill_model_outputs"):
        compute_drift(dataset, "tag:reference", "field:batch_id=2")
    # rows of another length: another model
    dataset.set_values("model_probs", {i: [0.5, 0.5] for i in ids}, key_field="id")
    with pytest.raises(DataError, match="different models"):
        compute_drift(dataset, "tag:reference", "field:batch_id=2")
    # too few labelled reference samples for BBSE
    labeled = dataset.match_tags("reference").values("id")[MIN_SAMPLES - 1:]
    saved = dataset.select(labeled).values("ground_truth")
    dataset.set_values("ground_truth", {i: None for i in labeled}, key_field="id")
    with pytest.raises(DataError, match=rf"{MIN_SAMPLES - 1} samples labelled.*label_field=None"):
        compute_drift(dataset, "tag:reference", "field:batch_id=10")
    dataset.set_values("ground_truth", dict(zip(labeled, saved)), key_field="id")
    assert _snapshot(dataset) == before  # nothing was written by any failing call
    assert set(dataset.exists(BATCH_FIELD).values(BATCH_FIELD)) == {"field:batch_id=10"}


def test_class_lists_that_differ_are_refused(dataset_name, tmp_path) -> None:
    # No declared class list: the reference's labels define it.
    dataset = build(dataset_name, tmp_path / "media", [
        {"n": 60, "tags": ["reference"], "labeled": True, "prior": (0.5, 0.5, 0.0)},  # class c never labelled
        {"n": 40, "tags": ["new"], "labeled": True},
    ], default_classes=False)
    with pytest.raises(DataError, match=r"2 classes: \['a', 'b'\]\) does not match the 3 columns"):
        compute_drift(dataset, "tag:reference", "tag:new")
    dataset.default_classes = ["a", "b", "c"]
    dataset.match_tags("new").limit(3).set_values("ground_truth", [fo.Classification(label="zebra")] * 3)
    with pytest.raises(DataError, match=r"target \(tag:new\) has labels \['zebra'\].*class lists differ"):
        compute_drift(dataset, "tag:reference", "tag:new")
    assert RUN_KEY not in dataset.list_runs() and SCORE_FIELD not in dataset.get_field_schema()
    # BBSE impossible (class c never in the reference labels): the tests still run, the reason is kept
    dataset.match_tags("new").limit(3).set_values("ground_truth", [None] * 3)
    report = compute_drift(dataset, "tag:reference", "tag:new", n_permutations=20)
    assert report.batches[0].estimated_prior is None
    assert "never occur in reference_labels" in report.batches[0].label_shift_note
    assert report.batches[0].num_labeled == 37


def test_load_and_view_errors(standard) -> None:
    with pytest.raises(DataError, match="no drift run"):
        load_drift_report(standard)
    report = compute_drift(standard, "tag:reference", "field:batch_id=1", n_permutations=20)
    with pytest.raises(InputError, match="no batch 'x'"):
        most_drifted_view(standard, report, 5, batch="x")
    with pytest.raises(InputError, match="positive integer"):
        most_drifted_view(standard, report, 0)


# -- the fixed model's real outputs --------------------------------------------------------------------------------
def test_real_model_outputs_on_digits(dataset_name, tmp_path) -> None:
    """Digits PNGs: train the fixed model briefly, fill outputs for held-out samples, then an inverted batch drifts."""
    import torch
    from PIL import Image

    from active_learning.data.importers import import_dataset
    from active_learning.model.fixed import Recipe
    from active_learning.model.outputs import compute_model_outputs
    from fiftyone import ViewField as F

    dataset = import_dataset(dataset_name, None, progress=False)
    train = dataset.match_tags("train")
    ids = train.values("id")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    trained, reference, same = ([ids[i] for i in order[a:b]] for a, b in ((0, 300), (300, 500), (500, 620)))
    dataset.select(reference).tag_samples("reference")
    dataset.select(same).set_values("batch_id", ["1-same"] * len(same))
    # batch 2: the same kind of held-out digits, inverted (new files, new samples)
    folder = tmp_path / "inverted"
    folder.mkdir()
    inverted = []
    for i, (path, label) in enumerate(zip(*dataset.select([ids[i] for i in order[620:740]]).values(
            ["filepath", "ground_truth"]))):
        with Image.open(path) as image:
            pixels = 255 - np.asarray(image.convert("L"))
        Image.fromarray(pixels).save(folder / f"{i}.png")
        inverted.append(fo.Sample(filepath=str(folder / f"{i}.png"), batch_id="2-inverted",
                                  ground_truth=fo.Classification(label=label.label)))
    dataset.add_samples(inverted)

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compute_model_outputs(dataset.select(trained), folds=2, recipe=Recipe(epochs=2, batch_size=32), device="cpu")
        with pytest.raises(DataError, match="fill_model_outputs"):
            compute_drift(dataset, "tag:reference", "batch:batch_id")
        filled = fill_model_outputs(dataset.match(F("batch_id").exists() | F("tags").contains("reference")))
    finally:
        torch.set_num_threads(previous)
    assert filled == 200 + 120 + 120
    assert load_run(dataset, "drift_model_outputs")[1]["num_filled"] == filled
    before = dict(zip(*dataset.select(trained).values(["id", "model_probs"])))
    report = compute_drift(dataset, "tag:reference", "batch:batch_id", n_permutations=100)
    assert dict(zip(*dataset.select(trained).values(["id", "model_probs"]))) == before  # K-fold probs untouched
    assert [b.name for b in report.batches] == ["1-same", "2-inverted"]
    same_batch, inverted_batch = report.batches
    assert not same_batch.drifted and inverted_batch.drifted
    assert inverted_batch.mmd_p_value < 0.025 and inverted_batch.ks_drift
    assert same_batch.fraction_ood < 0.2  # ~5% expected; 120 samples
    # Not asserted: inverted digits are NOT flagged per sample. Their embeddings point the same way as the
    # reference's with ~3x the norm, and the OOD score is a cosine distance (docs/bias_drift.md, "Drift").
    assert report.num_reference_trained_on == 0  # a held-out reference
    assert report.classes == dataset.default_classes

    # the training samples as reference: the report counts them and warns
    dataset.select(trained[:100]).tag_samples("seen")
    seen = compute_drift(dataset, "tag:seen", "batch:batch_id", n_permutations=20)
    assert seen.num_reference_trained_on == 100
    assert "100 reference samples trained the final model" in format_drift_report(seen)


def test_euclidean_ood_metric_is_used_recorded_and_reloaded(standard) -> None:
    with pytest.raises(InputError, match="ood_metric must be one of"):
        compute_drift(standard, "tag:reference", "batch:batch_id", n_permutations=50, ood_metric="manhattan")
    assert RUN_KEY not in standard.list_runs() and SCORE_FIELD not in standard.get_field_schema()
    cosine = compute_drift(standard, "tag:reference", "batch:batch_id", n_permutations=50)
    euclidean = compute_drift(standard, "tag:reference", "batch:batch_id", n_permutations=50, ood_metric="euclidean")
    assert (cosine.ood_metric, euclidean.ood_metric) == ("cosine", "euclidean")
    assert euclidean.ood_threshold != cosine.ood_threshold
    config, _ = load_run(standard, RUN_KEY)
    assert config["ood_metric"] == "euclidean" and load_drift_report(standard).ood_metric == "euclidean"
    assert "euclidean k-NN distance" in format_drift_report(euclidean)
    # The stored scores are the Euclidean ones: the planted far rows of batch 10 lie above the threshold.
    far = standard.match({"batch_id": 10}).sort_by(SCORE_FIELD, reverse=True).limit(8)
    assert all(score > euclidean.ood_threshold for score in far.values(SCORE_FIELD))


# -- the label-shift verdict on a real classifier (issue 15: "Shirt 0.10 -> 0.30" for an unshifted batch) ----------
def fashion_dataset(name: str, folder: Path) -> fo.Dataset:
    """Fashion-MNIST test images as PNGs with a real classifier's outputs: a 2,000-image reference, two unshifted
    batches of 300 drawn at random from the same test set, and a batch of 500 with Shirt planted at 30%."""
    from PIL import Image

    from fashion_outputs import CLASSES as FASHION_CLASSES, SHIRT, fashion_outputs, planted

    outputs = fashion_outputs()
    rng = np.random.default_rng(7)
    order = rng.permutation(len(outputs.labels))
    groups = {"reference": order[:2000], "1": order[2000:2300], "2": order[2300:2600]}
    groups["3-shirt"] = planted(order[2600:], outputs.labels, 500, SHIRT, 0.30, rng)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for group, rows in groups.items():
        for row in rows:
            path = folder / f"{row}.png"
            Image.fromarray(outputs.images[row]).save(path)
            sample = fo.Sample(filepath=str(path), model_probs=outputs.probs[row].tolist(),
                               model_embedding=outputs.embeddings[row].tolist(),
                               ground_truth=fo.Classification(label=FASHION_CLASSES[outputs.labels[row]]))
            if group == "reference":
                sample.tags = ["reference"]
            else:
                sample["batch_id"] = group
            samples.append(sample)
    dataset = fo.Dataset(name)
    dataset.add_samples(samples)
    dataset.default_classes = list(FASHION_CLASSES)
    return dataset


def test_prior_change_is_called_out_only_when_significant_on_fashion_mnist(dataset_name, tmp_path) -> None:
    dataset = fashion_dataset(dataset_name, tmp_path / "fashion")
    report = compute_drift(dataset, "tag:reference", "batch:batch_id", n_permutations=50)
    by_name = {b.name: b for b in report.batches}
    assert list(by_name) == ["1", "2", "3-shirt"]
    assert report.reference_prior[6] == pytest.approx(0.10, abs=0.02)  # Shirt, as in the report

    for name in ("1", "2"):  # unshifted: the estimate moves by chance, and nothing is called out
        batch = by_name[name]
        assert batch.largest_prior_change["significant"] is False and not any(batch.prior_change_significant)
        assert batch.largest_prior_change["max_margin"] > 0.05, "a 300-image estimate has a wide chance margin"
    planted_batch = by_name["3-shirt"]
    change = planted_batch.largest_prior_change
    assert change["class"] == "Shirt" and change["significant"] and change["reliable"]
    assert change["estimate"] == pytest.approx(0.30, abs=0.15) and change["change"] > change["margin"]
    assert planted_batch.prior_change_significant[6]

    text = format_drift_report(report)
    print(text)
    rows = text.splitlines()
    table = rows[rows.index(next(line for line in rows if line.startswith("batch "))) + 1:-1]
    lines = {line.split()[0]: line for line in table}
    for name in ("1", "2"):
        assert "none significant (chance up to ±" in lines[name] and "->" not in lines[name]
    assert f"Shirt {change['reference']:.2f} -> {change['estimate']:.2f} (significant; chance ±" in lines["3-shirt"]
    assert "called out only beyond the chance margin" in text

    # The Drift panel: the heatmap colours only significant cells; every cell still shows its estimate.
    from curation_app.drift_panel import drift_panel_data

    heatmap = drift_panel_data(dataset)["prior"][0]
    assert heatmap["y"] == ["1", "2", "3-shirt"] and heatmap["x"][6] == "Shirt"
    assert all(value == 0 for row in heatmap["z"][:2] for value in row)
    assert heatmap["z"][2][6] == pytest.approx(change["change"]) and heatmap["text"][2][6].endswith("*")
    assert all(len(cell.rstrip("*")) == 5 for row in heatmap["text"] for cell in row)  # "+0.03": 2 decimals
    assert "not significant" in heatmap["customdata"][0][6]


def test_reports_stored_before_the_renames_still_load(standard) -> None:
    compute_drift(standard, "tag:reference", "batch:batch_id", n_permutations=20)
    config, results = load_run(standard, RUN_KEY)
    old = dict(results)
    old["num_reference_ood"] = old.pop("num_reference_neighbours")
    old["batches"] = [{k: v for k, v in b.items() if not k.startswith("prior_change_")} for b in old["batches"]]
    for batch in old["batches"]:
        batch["largest_prior_change"] = {k: batch["largest_prior_change"][k] for k in ("class", "reference",
                                                                                       "estimate")}
    report = DriftReport.from_dict({**old, **config})
    assert report.num_reference_neighbours == 300
    assert report.batches[0].prior_change_significant is None
    assert "(not tested; rerun drift)" in format_drift_report(report)
