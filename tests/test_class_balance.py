"""The class-balance check: pure logic on arrays, and ``run_check`` over a real dataset in MongoDB."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fiftyone as fo

from active_learning.errors import DataError
from active_learning.store.runs import load_run
from curation_checks.base import CheckInputs
from curation_checks.class_balance import ClassBalance, imbalance_ratio
from curation_checks.io import run_check


def _inputs(labels, classes=("a", "b", "c")) -> CheckInputs:
    labels = np.asarray(labels, dtype=np.int64)
    return CheckInputs(tuple(str(i) for i in range(len(labels))), tuple(classes), labels)


# -- pure logic ----------------------------------------------------------------------------------------------
def test_worked_example() -> None:
    result = ClassBalance(rare_fraction=0.3).run(_inputs([0, 0, 0, 0, 1, -1, 1, 2, -1]))
    assert result.check == "class_balance"
    summary = result.summary
    assert summary["counts"] == {"a": 4, "b": 2, "c": 1}
    assert summary["num_labeled"] == 7 and summary["num_unlabeled"] == 2
    assert summary["imbalance_ratio"] == 4.0
    assert summary["rare_classes"] == ["c"]  # 1 < 0.3 * 4; b's 2 is not
    assert summary["missing_classes"] == []
    assert "total_variation_to_reference" not in summary
    frequency = result.per_sample["class_frequency"]
    np.testing.assert_allclose(frequency, [1, 1, 1, 1, 0.5, np.nan, 0.5, 0.25, np.nan])


def test_a_missing_class_is_listed_not_divided_by() -> None:
    summary = ClassBalance().run(_inputs([0, 0, 1])).summary
    assert summary["counts"] == {"a": 2, "b": 1, "c": 0}
    assert summary["missing_classes"] == ["c"] and "c" in summary["rare_classes"]
    assert summary["imbalance_ratio"] == 2.0


def test_one_imbalance_definition_for_the_check_and_the_bias_report() -> None:
    """Counts [50, 10, 0]: largest / smallest non-zero = 5.0 in both, the empty class listed apart (issue 17)."""
    from curation_checks.bias.distribution import class_distribution

    assert imbalance_ratio([50, 10, 0]) == 5.0 and math.isnan(imbalance_ratio([0, 0]))
    labels = [0] * 50 + [1] * 10
    summary = ClassBalance().run(_inputs(labels)).summary
    distribution = class_distribution(labels, ("a", "b", "c"))
    assert summary["imbalance_ratio"] == distribution.imbalance_ratio == 5.0
    assert summary["missing_classes"] == list(distribution.missing_classes) == ["c"]
    assert distribution.to_dict()["imbalance_ratio"] == 5.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.integers(-1, k - 1), min_size=1, max_size=60).filter(lambda xs: max(xs) >= 0),
    st.floats(0.0, 1.0))))
def test_invariants(case) -> None:
    k, labels, rare_fraction = case
    classes = tuple(f"class{i}" for i in range(k))
    labels = np.asarray(labels)
    result = ClassBalance(rare_fraction=rare_fraction).run(_inputs(labels, classes))
    summary = result.summary
    counts = np.asarray([summary["counts"][c] for c in classes])
    labeled = labels >= 0
    assert list(summary["counts"]) == list(classes)
    assert counts.sum() == summary["num_labeled"] == labeled.sum()
    assert summary["num_unlabeled"] == (~labeled).sum()
    present = counts[counts > 0]
    assert summary["imbalance_ratio"] == pytest.approx(present.max() / present.min())
    assert summary["imbalance_ratio"] >= 1.0
    assert summary["missing_classes"] == [c for c, n in zip(classes, counts) if n == 0]
    assert set(summary["missing_classes"]) <= set(summary["rare_classes"]) or rare_fraction == 0
    assert all(summary["counts"][c] < rare_fraction * counts.max() for c in summary["rare_classes"])

    frequency = result.per_sample["class_frequency"]
    assert frequency.shape == labels.shape
    assert np.isnan(frequency[~labeled]).all()
    assert np.all((frequency[labeled] > 0) & (frequency[labeled] <= 1)) and frequency[labeled].max() == 1.0
    np.testing.assert_allclose(frequency[labeled], counts[labels[labeled]] / counts.max())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=40),
       st.lists(st.floats(0.0, 10.0), min_size=4, max_size=4).filter(lambda r: sum(r) > 1e-3))
def test_total_variation_to_reference(labels, reference) -> None:
    classes = ("w", "x", "y", "z")
    check = ClassBalance(reference=reference)
    distance = check.run(_inputs(labels, classes)).summary["total_variation_to_reference"]
    assert 0.0 <= distance <= 1.0 + 1e-12
    # Scale-free: the reference is normalised.
    scaled = ClassBalance(reference=[3.5 * r for r in reference]).run(_inputs(labels, classes)).summary
    assert scaled["total_variation_to_reference"] == pytest.approx(distance)
    # The observed distribution is at distance 0 from itself.
    counts = np.bincount(labels, minlength=4)
    own = ClassBalance(reference=counts.tolist()).run(_inputs(labels, classes)).summary
    assert own["total_variation_to_reference"] == pytest.approx(0.0, abs=1e-12)


def test_reference_example_and_validation() -> None:
    summary = ClassBalance(reference=[1, 1]).run(_inputs([0, 0, 0, 1], ("a", "b"))).summary
    assert summary["total_variation_to_reference"] == pytest.approx(0.25)  # 0.5 * (|0.75-0.5| + |0.25-0.5|)
    for bad in ([1, 1, 1], [1, -1], [0, 0], [float("nan"), 1], [float("inf"), 1]):
        with pytest.raises(DataError, match="reference distribution must hold 2 non-negative numbers"):
            ClassBalance(reference=bad).run(_inputs([0, 1], ("a", "b")))


def test_refuses_inputs_without_labels() -> None:
    with pytest.raises(DataError, match="found no labeled samples"):
        ClassBalance().run(_inputs([-1, -1]))
    with pytest.raises(DataError, match="needs labels"):
        ClassBalance().run(CheckInputs(("x",), ("a", "b")))


# -- over a dataset ------------------------------------------------------------------------------------------
@pytest.fixture
def animals(dataset_name: str):
    """15 cat, 10 dog, 3 fox and 2 unlabeled samples; classes cat, dog, fox, owl (no owl)."""
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = ["cat", "dog", "fox", "owl"]
    labels = ["cat"] * 15 + ["dog"] * 10 + ["fox"] * 3 + [None] * 2
    dataset.add_samples([
        fo.Sample(filepath=f"/nonexistent/img{i}.png", tags=["train" if i % 2 else "test"],
                  ground_truth=fo.Classification(label=label) if label else None)
        for i, label in enumerate(labels)
    ])
    return dataset


def test_run_check_writes_field_and_run(animals) -> None:
    result = run_check(animals, "class_balance", rare_fraction=0.25)
    summary = result.summary
    assert summary["counts"] == {"cat": 15, "dog": 10, "fox": 3, "owl": 0}
    assert summary["num_labeled"] == 28 and summary["num_unlabeled"] == 2
    assert summary["rare_classes"] == ["fox", "owl"] and summary["missing_classes"] == ["owl"]

    labels, frequency = animals.values(["ground_truth.label", "class_balance_class_frequency"])
    expected = {"cat": 1.0, "dog": 10 / 15, "fox": 3 / 15, None: None}
    for label, value in zip(labels, frequency):
        assert value == pytest.approx(expected[label]) if label else value is None

    config, results = load_run(animals, "check_class_balance")
    assert config["kind"] == "check" and config["check"] == "class_balance"
    assert config["label_field"] == "ground_truth" and config["num_samples"] == 30
    assert config["params"] == {"rare_fraction": 0.25}
    stored = results["summary"]
    assert stored["counts"] == summary["counts"] and stored["rare_classes"] == ["fox", "owl"]
    assert stored["imbalance_ratio"] == 5.0  # cat 15 / fox 3; the empty owl is listed, not divided by


def test_run_check_on_a_view_with_reference(animals) -> None:
    view = animals.match_tags("train")
    truth = [label for label in view.values("ground_truth.label") if label]
    result = run_check(view, "class_balance", reference=[0.25, 0.25, 0.25, 0.25])
    counts = {c: truth.count(c) for c in ["cat", "dog", "fox", "owl"]}
    assert result.summary["counts"] == counts
    share = np.asarray(list(counts.values())) / len(truth)
    assert result.summary["total_variation_to_reference"] == pytest.approx(0.5 * np.abs(share - 0.25).sum())
    # Only the view's samples get the field; the run restores the view.
    written = {i for i, v in zip(*animals.values(["id", "class_balance_class_frequency"])) if v is not None}
    assert written == {i for i, label in zip(*view.values(["id", "ground_truth.label"])) if label}
    assert sorted(animals.load_run_view("check_class_balance").values("id")) == sorted(view.values("id"))
    config, results = load_run(animals, "check_class_balance")
    assert config["params"] == {"reference": [0.25, 0.25, 0.25, 0.25]}
    assert results["summary"]["total_variation_to_reference"] == pytest.approx(
        result.summary["total_variation_to_reference"])


def test_run_check_refusals(animals) -> None:
    with pytest.raises(DataError, match="The view is empty"):
        run_check(animals.match_tags("nope"), "class_balance")
    with pytest.raises(DataError, match="has no field 'labels'.*'ground_truth'"):
        run_check(animals, "class_balance", label_field="labels")
    with pytest.raises(DataError, match="found no labeled samples"):
        run_check(animals.exists("ground_truth", False), "class_balance")
    animals.default_classes = ["cat", "dog"]
    with pytest.raises(DataError, match=r"Labels \['fox'\] in 'ground_truth' are not in the class list"):
        run_check(animals, "class_balance")
    assert "check_class_balance" not in animals.list_runs()
    assert "class_balance_class_frequency" not in animals.get_field_schema()


def test_digits_class_balance(dataset_name: str) -> None:
    from sklearn.datasets import load_digits

    from active_learning.data.importers import import_dataset

    dataset = import_dataset(dataset_name, None, progress=False)
    result = run_check(dataset, "class_balance")
    target = load_digits().target
    assert result.summary["counts"] == {str(c): int(n) for c, n in enumerate(np.bincount(target))}
    assert result.summary["num_labeled"] == 1797 and result.summary["missing_classes"] == []
    assert result.summary["imbalance_ratio"] == pytest.approx(np.bincount(target).max() / np.bincount(target).min())
    _, results = load_run(dataset, "check_class_balance")
    assert results["summary"]["num_labeled"] == 1797
    assert len(dataset.exists("class_balance_class_frequency")) == 1797
