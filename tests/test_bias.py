"""Bias: the pure statistics on synthetic data with planted effects, and ``compute_bias`` over a real MongoDB."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_learning.errors import DataError, InputError
from curation_checks.bias.binning import bin_numeric
from curation_checks.bias.class_metrics import ClassMetrics, per_class_metrics
from curation_checks.bias.distribution import ClassDistribution, class_distribution
from curation_checks.bias.groups import GroupSearch, underperforming_groups
from curation_checks.bias.images import image_statistics
from curation_checks.bias.significance import holm_adjust, wilson_interval
from curation_checks.bias.slice_search import slice_performance
from curation_checks.bias.slices import SlicePerformance, SliceStat


def _strict_json(data) -> str:
    return json.dumps(data, allow_nan=False)


# -- per-class metrics ---------------------------------------------------------------------------------------------
def test_per_class_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 4, 500))
    metrics = per_class_metrics(labels, predictions, ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=range(4))
    np.testing.assert_allclose(metrics.precision, precision)
    np.testing.assert_allclose(metrics.recall, recall)
    np.testing.assert_allclose(metrics.f1, f1)
    np.testing.assert_array_equal(metrics.support, support)
    np.testing.assert_array_equal(metrics.confusion, confusion_matrix(labels, predictions, labels=range(4)))
    assert metrics.accuracy == pytest.approx(accuracy_score(labels, predictions))
    assert metrics.macro_f1 == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert metrics.weighted_f1 == pytest.approx(f1_score(labels, predictions, average="weighted"))
    assert metrics.num_samples == 500
    assert ClassMetrics.from_dict(json.loads(_strict_json(metrics.to_dict()))).to_dict() == metrics.to_dict()


def test_per_class_metrics_worked_example_with_class_names() -> None:
    # rows = given label, columns = predicted
    metrics = per_class_metrics(["cat", "cat", "dog", "dog", "dog"], ["cat", "dog", "dog", "dog", "cat"],
                                ["cat", "dog", "owl"])
    assert metrics.confusion.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert metrics.precision[0] == pytest.approx(0.5) and metrics.recall[1] == pytest.approx(2 / 3)
    assert math.isnan(metrics.precision[2]) and math.isnan(metrics.f1[2])  # owl: neither given nor predicted
    assert metrics.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)  # owl's undefined F1 is not averaged
    assert metrics.worst_classes(1) == ["cat"]
    data = metrics.to_dict()
    _strict_json(data)
    assert data["per_class"][2] == {"class": "owl", "precision": None, "recall": None, "f1": None, "support": 0,
                                    "predicted": 0}
    assert data["confusion_axes"].startswith("rows = given label")


def test_per_class_metrics_refusals() -> None:
    with pytest.raises(DataError, match="3 labels but 2 predictions"):
        per_class_metrics([0, 1, 1], [0, 1], ["a", "b"])
    with pytest.raises(DataError, match=r"Labels \['zebra'\] in 'labels' are not in the class list"):
        per_class_metrics(["a", "zebra"], ["a", "b"], ["a", "b"])
    with pytest.raises(DataError, match=r"class index 2, outside \[0, 1\]"):
        per_class_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="No samples"):
        per_class_metrics(np.array([], dtype=int), np.array([], dtype=int), ["a", "b"])
    with pytest.raises(InputError, match="distinct"):
        per_class_metrics([0], [0], ["a", "a"])


# -- class distribution --------------------------------------------------------------------------------------------
def test_class_distribution_counts_and_chi_square() -> None:
    from scipy import stats

    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    result = class_distribution(labels, ["a", "b", "c", "d"])
    assert result.counts.tolist() == [50, 30, 20, 0]
    assert result.imbalance_ratio == pytest.approx(2.5)  # 50 / 20: the empty class is listed, not divided by
    assert result.missing_classes == ("d",) and result.reference is None
    assert "reference" not in result.to_dict()

    reference = {"a": 1, "b": 1, "c": 1, "d": 1}
    uniform = class_distribution(labels, ["a", "b", "c", "d"], reference)
    expected = stats.chisquare([50, 30, 20, 0], [25, 25, 25, 25])
    assert uniform.chi2 == pytest.approx(expected.statistic) and uniform.p_value == pytest.approx(expected.pvalue)
    assert uniform.p_value < 1e-6 and uniform.dof == 3
    np.testing.assert_allclose(uniform.difference, [0.25, 0.05, -0.05, -0.25])
    # The same distribution, given as fractions: nothing to see.
    same = class_distribution(labels, ["a", "b", "c", "d"], {"a": 0.5, "b": 0.3, "c": 0.2})
    assert same.p_value == pytest.approx(1.0) and same.chi2 == pytest.approx(0.0)
    assert same.reference.tolist() == [0.5, 0.3, 0.2, 0.0] and same.chi2_reliable
    data = uniform.to_dict()
    _strict_json(data)
    assert ClassDistribution.from_dict(data).to_dict() == data


def test_class_distribution_reference_edge_cases() -> None:
    # A class the reference says never occurs does occur: impossible under the reference.
    result = class_distribution(["a", "b"], ["a", "b"], {"a": 1.0})
    assert result.p_value == 0.0 and math.isinf(result.chi2)
    assert result.to_dict()["reference"]["chi2"] is None  # infinite -> None in JSON
    with pytest.raises(InputError, match=r"names classes \['zebra'\] that are not in the class list"):
        class_distribution(["a"], ["a", "b"], {"a": 0.5, "zebra": 0.5})
    with pytest.raises(InputError, match="non-negative"):
        class_distribution(["a"], ["a", "b"], {"a": -1, "b": 2})
    with pytest.raises(InputError, match="not all 0"):
        class_distribution(["a"], ["a", "b"], {"a": 0, "b": 0})
    with pytest.raises(InputError, match="3 values for 2 classes"):
        class_distribution(["a"], ["a", "b"], [1, 1, 1])
    with pytest.raises(DataError, match="No labeled samples"):
        class_distribution([], ["a", "b"])


# -- intervals and corrections -------------------------------------------------------------------------------------
def test_wilson_interval_covers_the_true_rate() -> None:
    rng = np.random.default_rng(1)
    for rate, trials in [(0.9, 40), (0.6, 200), (0.97, 100)]:
        draws = rng.binomial(trials, rate, size=2000)
        covered = np.mean([lo <= rate <= hi for lo, hi in (wilson_interval(int(k), trials) for k in draws)])
        assert 0.92 <= covered <= 0.99, (rate, trials, covered)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    lo, hi = wilson_interval(81, 100)
    assert lo == pytest.approx(0.7222, abs=1e-3) and hi == pytest.approx(0.8749, abs=1e-3)  # textbook values
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_invariants(case) -> None:
    successes, trials = case
    lo, hi = wilson_interval(successes, trials)
    assert 0.0 <= lo <= successes / trials <= hi <= 1.0


def test_holm_worked_example() -> None:
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([]).size == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_holm_invariants(p_values) -> None:
    p = np.asarray(p_values)
    adjusted = holm_adjust(p)
    assert (adjusted >= p - 1e-15).all() and (adjusted <= 1.0).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-15).all()  # the adjustment keeps the order of the p-values


# -- binning -------------------------------------------------------------------------------------------------------
def test_bin_numeric_quartiles_and_labels() -> None:
    values = np.arange(100) / 100.0
    binned = bin_numeric(values, bins=4, field="brightness")
    # Quartiles 0.2475, 0.495, 0.7425, rounded to the fewest digits that keep them apart: the labels are exact.
    assert [b.label for b in binned.bins] == ["brightness < 0.25", "brightness in [0.25, 0.49)",
                                              "brightness in [0.49, 0.74)", "brightness >= 0.74"]
    assert [(b.low, b.high) for b in binned.bins] == [(None, 0.25), (0.25, 0.49), (0.49, 0.74), (0.74, None)]
    assert np.bincount(binned.codes).tolist() == [25, 24, 25, 26]
    assert bin_numeric([0.31234567, 0.31234568, 0.5, 0.7, 0.9], bins=2).bins[1].label == "value >= 0.5"
    with_missing = bin_numeric([0.1, None, 0.3, float("nan"), 0.5, 0.7, 0.9], bins=2, field="x")
    assert with_missing.codes.tolist() == [0, -1, 0, -1, 1, 1, 1]
    few = bin_numeric([28, 28, 32, 28], bins=4, field="width")
    assert [b.label for b in few.bins] == ["width = 28", "width = 32"] and few.codes.tolist() == [0, 0, 1, 0]


def test_bin_numeric_refuses_non_numbers() -> None:
    with pytest.raises(DataError, match=r"Field 'brightness' should hold numbers but holds 'dark' \(str\)"):
        bin_numeric([0.1, "dark", 0.3], field="brightness")
    with pytest.raises(DataError, match="infinite"):
        bin_numeric([0.1, float("inf"), 0.3, 0.4, 0.5, 0.6], field="x")
    with pytest.raises(InputError, match="bins"):
        bin_numeric([0.1, 0.2], bins=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=80), st.integers(1, 8))
def test_bin_numeric_invariants(values, bins) -> None:
    binned = bin_numeric(values, bins=bins, field="f")
    assert len(binned.bins) <= bins
    for value, code in zip(values, binned.codes):
        if value is None:
            assert code == -1
            continue
        b = binned.bins[code]
        if b.kind == "value":
            assert b.value == value
        else:
            assert (b.low is None or b.low <= value) and (b.high is None or value < b.high)


# -- slices --------------------------------------------------------------------------------------------------------
def _planted_slices(n: int = 2000, seed: int = 0, effect: bool = True):
    """Brightness uniform in [0, 1]; dark samples (< 0.2) are right 60% of the time, the others 90%."""
    rng = np.random.default_rng(seed)
    brightness = rng.uniform(0.0, 1.0, n)
    dark = brightness < 0.2
    rate = np.where(dark & effect, 0.6, 0.9)
    correct = rng.random(n) < rate
    tags = [["flagged"] if rng.random() < 0.3 else [] for _ in range(n)]
    source = rng.choice(["camera_a", "camera_b", "camera_c"], n).tolist()
    return correct, {"brightness": brightness, "tags": tags, "source": source}, dark


def test_planted_dark_slice_is_found_first() -> None:
    correct, values, dark = _planted_slices()
    result = slice_performance(correct, values, bins=5)
    top = result.slices[0]
    assert top.field == "brightness" and top.kind == "bin" and top.low is None and 0.18 < top.high < 0.22
    assert top.label == f"brightness < {top.high:g}"
    assert top.significant and top.p_adjusted < 1e-6
    assert set(top.indices.tolist()) == set(np.flatnonzero(values["brightness"] < top.high).tolist())
    assert top.ci_low <= 0.6 <= top.ci_high  # the planted rate of the slice
    assert top.rest_accuracy == pytest.approx(correct[values["brightness"] >= top.high].mean())
    assert top.gap == pytest.approx(top.rest_accuracy - top.accuracy) and top.gap > 0.2
    assert len(result.significant) == 1
    # the tag and source slices mix dark and other samples: true rate 0.2 * 0.6 + 0.8 * 0.9 = 0.84
    mixed = [other for other in result.slices if other.field != "brightness"]
    assert len(mixed) == 5 and not any(other.significant for other in mixed)
    assert sum(not other.ci_low <= 0.84 <= other.ci_high for other in mixed) <= 1  # 95% intervals: ~0.25 misses
    assert result.num_tested == len(result.slices) == 5 + 2 + 3  # 5 bins, tag + empty, 3 sources
    assert result.accuracy == pytest.approx(correct.mean())


def test_null_effect_is_not_flagged() -> None:
    flagged = crossed_flagged = 0
    for seed in range(10):
        correct, values, _ = _planted_slices(n=1000, seed=seed, effect=False)
        result = slice_performance(correct, values)
        flagged += bool(result.significant)
        assert all(s.p_adjusted >= s.p_value for s in result.slices)
        crossed = slice_performance(correct, values, crosses=True)
        assert crossed.num_crossed > 20  # many more tests, one family
        crossed_flagged += bool(crossed.significant)
    assert flagged <= 1  # Holm keeps the family-wise error rate at 5% per search
    assert crossed_flagged <= 1  # also with the crossed slices in the family


# -- crossed (two-field) slices ------------------------------------------------------------------------------------
def _planted_intersection(n: int = 3000, seed: int = 0):
    """Class 'x' AND dark (brightness < 0.25) is right 40% of the time; 'cam5' images 72%; the rest 90%.

    One-field slices see the intersection only through its marginals (class x: 0.25 * 0.4 + 0.75 * 0.9 = 0.78,
    dark: about 0.8), which the cam5 slice (0.72) outranks.
    """
    rng = np.random.default_rng(seed)
    label = rng.choice(["a", "b", "c", "d", "x"], n)
    brightness = rng.uniform(0.0, 1.0, n)
    source = rng.choice(["cam1", "cam2", "cam3", "cam4", "cam5"], n)
    planted = (label == "x") & (brightness < 0.25)
    correct = rng.random(n) < np.where(planted, 0.4, np.where(source == "cam5", 0.72, 0.9))
    return correct, {"label": label.tolist(), "brightness": brightness, "source": source.tolist()}, planted


def _jaccard(stat, mask: np.ndarray) -> float:
    members, planted = set(stat.indices.tolist()), set(np.flatnonzero(mask).tolist())
    return len(members & planted) / len(members | planted)


def test_planted_intersection_is_found_first_only_by_the_crossed_search() -> None:
    correct, values, planted = _planted_intersection()
    one = slice_performance(correct, values)
    assert one.slices[0].label == "source = 'cam5'" and not one.crosses and one.num_crossed == 0
    assert max(_jaccard(s, planted) for s in one.slices) < 0.3  # the marginals hold 4 to 5 times the planted set

    both = slice_performance(correct, values, crosses=True)
    top = both.slices[0]
    assert top.kind == "and" and top.field == "label & brightness" and top.significant
    assert top.label == f"label = 'x' & brightness < {top.parts[1]['high']:g}"
    assert top.parts[0] == {"field": "label", "kind": "value", "label": "label = 'x'", "value": "x", "low": None,
                            "high": None}
    assert top.parts[1]["kind"] == "bin" and top.parts[1]["low"] is None and 0.22 < top.parts[1]["high"] < 0.28
    expected = np.flatnonzero((np.asarray(values["label"]) == "x") & (values["brightness"] < top.parts[1]["high"]))
    assert top.indices.tolist() == expected.tolist() and top.size == len(expected)
    assert _jaccard(top, planted) > 0.85
    assert top.ci_low <= 0.4 <= top.ci_high and top.p_parents < 1e-6  # worse than the rest of both parents
    assert top.value is None and top.low is None and top.high is None
    # One family: the one-field slices are all still there, with larger Holm-adjusted p-values.
    one_field = [s for s in both.slices if s.kind != "and"]
    assert [s.label for s in sorted(one_field, key=lambda s: s.label)] == sorted(s.label for s in one.slices)
    by_label = {s.label: s for s in one.slices}
    assert all(s.p_adjusted >= by_label[s.label].p_adjusted and s.p_value == pytest.approx(by_label[s.label].p_value)
               for s in one_field)
    assert both.num_tested == len(both.slices) == len(one.slices) + both.num_crossed
    assert both.num_cross_parents == len(one.slices)  # few slices: all of them are crossed
    # Only pairs of different fields, each at least min_size and smaller than both parents.
    for stat in both.slices:
        if stat.kind == "and":
            assert stat.parts[0]["field"] != stat.parts[1]["field"] and stat.size >= both.min_size
            assert stat.field == f"{stat.parts[0]['field']} & {stat.parts[1]['field']}"
            assert stat.label == f"{stat.parts[0]['label']} & {stat.parts[1]['label']}"


def test_crossed_slices_skip_parents_and_duplicates_and_respect_the_cap() -> None:
    correct, values, _ = _planted_intersection(n=1500, seed=1)
    # 'group' is the label under another name: label = 'x' & group = 'gx' is label = 'x' again (not tested), and
    # every cross of group with a third field repeats one of label (tested once).
    values["group"] = ["g" + v for v in values["label"]]
    result = slice_performance(correct, values, crosses=True)
    one_field = {tuple(s.indices.tolist()) for s in result.slices if s.kind != "and"}
    crossed = [tuple(s.indices.tolist()) for s in result.slices if s.kind == "and"]
    assert len(crossed) == len(set(crossed)) and not set(crossed) & one_field, "one test per crossed set of samples"
    without = slice_performance(correct, {k: v for k, v in values.items() if k != "group"}, crosses=True)
    assert result.num_crossed == len(crossed) == without.num_crossed == 5 * 4 + 5 * 5 + 4 * 5  # group adds none
    assert not any(s.kind == "and" and {p["field"] for p in s.parts} == {"label", "group"} for s in result.slices)
    assert result.slices[0].kind == "and" and result.slices[0].parts[0]["field"] == "label"
    capped = slice_performance(correct, values, crosses=True, max_cross_parents=3)
    assert capped.num_cross_parents == 3 and 0 < capped.num_crossed <= 3
    assert capped.max_cross_parents == 3 and capped.to_dict()["max_cross_parents"] == 3
    with pytest.raises(InputError, match="max_cross_parents"):
        slice_performance(correct, values, crosses=True, max_cross_parents=1)
    with pytest.raises(InputError, match="crosses must be True or False"):
        slice_performance(correct, values, crosses="yes")
    # One field only: nothing to cross.
    alone = slice_performance(correct, {"label": values["label"]}, crosses=True)
    assert alone.crosses and alone.num_crossed == 0 and alone.num_cross_parents == 5


def test_crossed_slices_round_trip_through_json() -> None:
    correct, values, _ = _planted_intersection(n=1500, seed=2)
    result = slice_performance(correct, values, crosses=True)
    data = result.to_dict()
    _strict_json(data)
    restored = SlicePerformance.from_dict(json.loads(json.dumps(data)))
    assert restored.to_dict() == data and restored.crosses and restored.num_crossed == result.num_crossed
    crossed = next(s for s in result.slices if s.kind == "and")
    again = SliceStat.from_dict(json.loads(json.dumps(crossed.to_dict())))
    assert again == crossed and again.parts == crossed.parts and isinstance(again.parts, tuple)
    assert again.to_dict()["parts"][0].keys() == {"field", "kind", "label", "value", "low", "high"}
    # Reports stored before crossed slices existed still load: no parts, no p_parents, no crosses fields.
    old = {k: v for k, v in data.items() if k not in ("crosses", "num_crossed", "num_cross_parents",
                                                       "max_cross_parents")}
    old["slices"] = [{k: v for k, v in s.items() if k not in ("parts", "p_parents")} for s in data["slices"]
                     if s["kind"] != "and"]
    legacy = SlicePerformance.from_dict(old)
    assert not legacy.crosses and legacy.num_crossed == 0
    assert all(s.parts == () and s.p_parents is None for s in legacy.slices)


def test_slices_are_sorted_worst_first() -> None:
    correct, values, _ = _planted_slices(seed=3)
    slices = slice_performance(correct, values).slices
    keys = [(not s.significant, s.ci_high) for s in slices]
    assert keys == sorted(keys)


def test_list_fields_missing_values_and_categories() -> None:
    rng = np.random.default_rng(5)
    n = 1200
    tags = [sorted({t for t in ("night", "rain") if rng.random() < 0.3}) for _ in range(n)]
    weather = [None if rng.random() < 0.1 else str(rng.choice(["sun", "fog"])) for _ in range(n)]
    night = np.array(["night" in t for t in tags])
    missing = np.array([w is None for w in weather])
    correct = rng.random(n) < np.where(night | missing, 0.55, 0.9)
    result = slice_performance(correct, {"tags": tags, "weather": weather})
    by_label = {s.label: s for s in result.slices}
    assert set(by_label) == {"tags contains 'night'", "tags contains 'rain'", "tags is empty", "weather = 'sun'",
                             "weather = 'fog'", "weather is missing"}
    assert by_label["tags contains 'night'"].size == night.sum()
    assert by_label["tags contains 'night'"].kind == "item" and by_label["tags contains 'night'"].value == "night"
    assert by_label["weather is missing"].kind == "missing" and by_label["weather is missing"].value is None
    significant = {s.label for s in result.significant}
    assert {"tags contains 'night'", "weather is missing"} <= significant
    assert "tags contains 'rain'" not in significant
    data = result.to_dict()
    _strict_json(data)
    restored = SlicePerformance.from_dict(json.loads(json.dumps(data)))
    assert restored.to_dict() == data


def test_small_slices_are_counted_not_tested() -> None:
    correct = np.array([True] * 95 + [False] * 5)
    values = {"kind": ["rare"] * 5 + ["common"] * 95}
    result = slice_performance(correct, values, min_size=10)
    assert [s.label for s in result.slices] == ["kind = 'common'"] and result.num_small == 1
    # a field with one value makes no comparison
    assert slice_performance(correct, {"same": ["x"] * 100}).slices == ()


def test_slice_refusals() -> None:
    correct = np.ones(6, dtype=bool)
    with pytest.raises(DataError, match=r"Field 'brightness' should hold numbers but holds 'bright'"):
        slice_performance(correct, {"brightness": [0.1, 0.2, "bright", 0.3, 0.4, 0.5]}, numeric=["brightness"])
    with pytest.raises(DataError, match=r"Field 'size' mixes numbers and non-numbers \(e.g. 'big'"):
        slice_performance(correct, {"size": [1, 2, "big", 3, 4, 5]})
    with pytest.raises(DataError, match="Field 'x' has 3 values for 6 samples"):
        slice_performance(correct, {"x": [1, 2, 3]})
    with pytest.raises(DataError, match="holds dict values"):
        slice_performance(correct, {"gt": [{"label": "a"}] * 6})
    with pytest.raises(DataError, match="correct must hold booleans"):
        slice_performance([0.5] * 6, {"x": [1] * 6})
    with pytest.raises(InputError, match="alpha"):
        slice_performance(correct, {"x": [1] * 6}, alpha=1.5)
    with pytest.raises(InputError, match="min_size"):
        slice_performance(correct, {"x": [1] * 6}, min_size=0)
    with pytest.raises(InputError, match=r"numeric names fields \['y'\]"):
        slice_performance(correct, {"x": [1] * 6}, numeric=["y"])


# -- image statistics ----------------------------------------------------------------------------------------------
def test_image_statistics_known_values() -> None:
    black = np.zeros((8, 6), dtype=np.uint8)
    half = np.zeros((8, 6), dtype=np.uint8)
    half[:4] = 255
    stack = image_statistics(np.stack([black, half]))
    np.testing.assert_allclose(stack.brightness, [0.0, 0.5])
    np.testing.assert_allclose(stack.contrast, [0.0, 0.5])
    assert stack.width.tolist() == [6, 6] and stack.height.tolist() == [8, 8]
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    rgba = np.dstack([red, np.zeros((4, 4), dtype=np.uint8)])  # alpha is ignored
    mixed = image_statistics([half, red, np.zeros((3, 5), dtype=np.uint8), rgba])
    np.testing.assert_allclose(mixed.brightness, [0.5, 0.299, 0.0, 0.299], rtol=1e-6)
    assert mixed.width.tolist() == [6, 4, 5, 4] and mixed.height.tolist() == [8, 4, 3, 4]
    _strict_json(mixed.to_dict())


def test_image_statistics_refusals() -> None:
    with pytest.raises(DataError, match="uint8"):
        image_statistics(np.zeros((2, 4, 4), dtype=np.float32))
    with pytest.raises(DataError, match="Image 1 must be a uint8"):
        image_statistics([np.zeros((4, 4), dtype=np.uint8), np.zeros(4, dtype=np.uint8)])
    with pytest.raises(DataError, match="No images"):
        image_statistics([])
    with pytest.raises(DataError, match="1 to 4 channels"):
        image_statistics(np.zeros((1, 4, 4, 5), dtype=np.uint8))


# -- embedding groups ----------------------------------------------------------------------------------------------
def _planted_groups(n: int = 1500, planted: int = 150, seed: int = 0, effect: bool = True):
    """Gaussian blobs in 16-D; one blob of ``planted`` samples is right 45% of the time, everything else 90%."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, (8, 16))
    blob = rng.integers(0, 8, n)
    blob[:planted] = 8
    centres = np.vstack([centres, rng.normal(0.0, 6.0, 16)])
    embeddings = centres[blob] + rng.normal(0.0, 1.0, (n, 16))
    rate = np.where((blob == 8) & effect, 0.45, 0.9)
    correct = rng.random(n) < rate
    labels = rng.integers(0, 3, n)
    return embeddings, correct, labels, np.arange(planted)


def test_planted_group_is_found_first() -> None:
    embeddings, correct, labels, planted = _planted_groups()
    result = underperforming_groups(embeddings, correct, n_groups=12, labels=labels, classes=["a", "b", "c"])
    top = result.groups[0]
    members = set(top.indices.tolist())
    jaccard = len(members & set(planted.tolist())) / len(members | set(planted.tolist()))
    assert jaccard > 0.9 and top.significant and top.value == 0 and top.label == "group 0"
    assert set(np.flatnonzero(result.assignments == 0).tolist()) == members
    assert top.ci_low <= 0.45 <= top.ci_high
    assert len(result.significant) == 1
    assert sum(share for _, share in top.composition) <= 1.0 and top.composition[0][0] in "abc"
    assert result.assignments.min() == 0 and result.assignments.max() == 11
    data = result.to_dict()
    _strict_json(data)
    assert GroupSearch.from_dict(data).to_dict() == data


def test_groups_are_deterministic_and_null_is_quiet() -> None:
    embeddings, correct, _, _ = _planted_groups(seed=1, effect=False)
    first = underperforming_groups(embeddings, correct, random_state=7)
    second = underperforming_groups(embeddings, correct, random_state=7)
    np.testing.assert_array_equal(first.assignments, second.assignments)
    assert first.to_dict() == second.to_dict()
    assert first.n_groups == 15 and not first.significant  # default: about 100 samples per group


def test_group_refusals() -> None:
    embeddings, correct, _, _ = _planted_groups(n=200, planted=20)
    with pytest.raises(DataError, match="200 embeddings but 10 correctness"):
        underperforming_groups(embeddings, correct[:10])
    bad = embeddings.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        underperforming_groups(bad, correct)
    with pytest.raises(InputError, match="n_groups"):
        underperforming_groups(embeddings, correct, n_groups=1)
    with pytest.raises(DataError, match="cannot form 300 groups"):
        underperforming_groups(embeddings, correct, n_groups=300)
    with pytest.raises(InputError, match="classes"):
        underperforming_groups(embeddings, correct, labels=np.zeros(200, dtype=int))


# -- over a dataset in MongoDB -------------------------------------------------------------------------------------
CLASSES = ["circle", "square", "cross"]


@pytest.fixture
def shapes(dataset_name: str, tmp_path):
    """240 real 16x16 PNGs at a spread of brightness; dark ones (mean < 0.2) are misclassified half the time.

    200 labeled train samples carry K-fold-style ``model_probs``/``model_prediction``/``model_embedding``; 20 test
    samples only ``model_prediction``; 10 labeled samples have no model outputs; 10 are unlabeled.
    """
    import fiftyone as fo
    from PIL import Image

    rng = np.random.default_rng(0)
    samples = []
    for i in range(240):
        level = int(round(255 * (0.05 + 0.9 * (i % 40) / 39)))  # brightness 0.05..0.95, 6 images per level
        pixels = np.full((16, 16), level, dtype=np.uint8)
        pixels[6:10, 6:10] = min(255, level + 40)  # some contrast
        path = tmp_path / f"img{i:03d}.png"
        Image.fromarray(pixels).save(path)
        truth = CLASSES[i % 3]
        brightness = pixels.mean() / 255
        fields: dict = {"filepath": str(path), "tags": ["train"]}
        if i >= 230:
            samples.append(fo.Sample(**fields))  # unlabeled
            continue
        fields["ground_truth"] = fo.Classification(label=truth)
        if i >= 220:
            samples.append(fo.Sample(**fields))  # labeled, no model outputs yet
            continue
        wrong = (brightness < 0.2 and i % 2 == 0) or (brightness >= 0.2 and i % 20 == 1)
        predicted = CLASSES[(i + 1) % 3] if wrong else truth
        probs = [0.1, 0.1, 0.1]
        probs[CLASSES.index(predicted)] = 0.8
        fields["model_prediction"] = fo.Classification(label=predicted, confidence=0.8)
        if i >= 200:
            fields["tags"] = ["test"]
        else:
            fields["model_probs"] = probs
        fields["model_embedding"] = rng.normal(size=8).tolist()
        samples.append(fo.Sample(**fields))
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = CLASSES
    dataset.add_samples(samples)
    return dataset


def test_compute_bias_finds_the_dark_slice_and_writes_fields_and_run(shapes) -> None:
    from PIL import Image

    from active_learning.store.runs import load_run
    from curation_checks.bias.report import (GROUP_FIELD, IMAGE_FIELDS, RUN_KEY, compute_bias,
                                             format_bias_report, load_bias_report, slice_view)

    report = compute_bias(shapes, n_groups=3)
    assert report.num_samples == 240 and report.num_scored == 220
    assert report.num_unlabeled == 10 and report.num_unscored == 10
    top = report.slices.slices[0]
    assert top.field == "image_brightness" and top.kind == "bin" and top.significant
    assert 0.2 <= top.high <= 0.3 and top.accuracy < 0.7 and top.rest_accuracy > 0.9  # the lowest quartile
    assert report.metrics.num_samples == 220 and report.distribution.num_samples == 230

    # Image statistics: one value per sample of the view, from the files.
    paths, brightness, contrast, width, height = shapes.values(["filepath", *IMAGE_FIELDS.values()])
    for path, b, c, w, h in zip(paths, brightness, contrast, width, height):
        pixels = np.asarray(Image.open(path), dtype=np.float64) / 255
        assert b == pytest.approx(pixels.mean()) and c == pytest.approx(pixels.std())
        assert (w, h) == (16, 16)
    # Groups for the scored samples only.
    scored = shapes.exists("model_prediction")
    assert len(scored.exists(GROUP_FIELD)) == 220 and len(shapes.exists(GROUP_FIELD)) == 220
    assert set(shapes.distinct(GROUP_FIELD)) == {0, 1, 2}

    config, results = load_run(shapes, RUN_KEY)
    assert config["kind"] == "bias" and config["label_field"] == "ground_truth" and config["n_groups"] == 3
    assert config["slice_fields"] == [*IMAGE_FIELDS.values(), "tags", "ground_truth.label"]
    assert config["crosses"] is True and report.slices.crosses and report.slices.num_crossed > 0
    assert results["report"]["num_scored"] == 220
    loaded = load_bias_report(shapes)
    assert loaded.to_dict() == json.loads(_strict_json(report.to_dict()))

    # The panel's way to the samples: the slice's view holds exactly the scored members, plus unscored matches.
    in_slice = slice_view(shapes, loaded.slices.slices[0])
    assert len(in_slice.exists("model_prediction")) == top.size
    assert max(in_slice.values("image_brightness")) < top.high
    group = slice_view(shapes, report.groups.groups[0].to_dict())
    assert len(group) == report.groups.groups[0].size
    test_slice = next(s for s in report.slices.slices if s.label == "tags contains 'test'")
    assert sorted(slice_view(shapes, test_slice).values("id")) == sorted(shapes.match_tags("test").values("id"))

    text = format_bias_report(loaded)
    assert "image_brightness < " in text and "significantly worse" in text
    assert "10 labeled without model outputs" in text and "Out-of-sample accuracy" in text
    # The worse slice's difference from the rest is negative, with its sign and unit (issue 15).
    top_line = next(line for line in text.splitlines() if line.strip().startswith(top.label))
    points = f"{100 * (top.accuracy - top.rest_accuracy):+.1f} pts"
    assert points.startswith("-") and f"{points} vs rest ({top.rest_accuracy:.3f})" in top_line


def test_points_vs_rest_signs_a_worse_slice_negative() -> None:
    from curation_checks.bias.report import points_vs_rest

    assert points_vs_rest(0.20, 0.869) == "-66.9 pts"  # the slice of issue 15: 67 points worse than the rest
    assert points_vs_rest(0.95, 0.90) == "+5.0 pts"
    assert points_vs_rest(None, 0.9) == points_vs_rest(float("nan"), 0.9) == "n/a"


def test_image_statistics_are_cached_and_views_work(shapes) -> None:
    from curation_checks.bias.report import compute_bias

    compute_bias(shapes, n_groups=0)
    # The files are gone: a second run reads the cached fields and never opens them.
    for path in shapes.values("filepath"):
        with open(path, "wb") as handle:
            handle.write(b"not a png")
    view = shapes.match_tags("train")
    report = compute_bias(view, slice_fields=["image_brightness", "ground_truth.label"], n_groups=0)
    assert report.groups is None and report.num_samples == len(view)
    assert {s.field for s in report.slices.slices} <= {"image_brightness", "ground_truth.label"}
    assert sorted(shapes.load_run_view("bias").values("id")) == sorted(view.values("id"))


def test_crossed_slice_view_holds_exactly_its_members(shapes) -> None:
    from curation_checks.bias.report import compute_bias, slice_view

    # A second, categorical field: the crossed slices pair it with the brightness bins, tags and the label.
    shapes.set_values("camera", [None if i % 7 == 0 else ("a" if i % 2 else "b") for i in range(len(shapes))])
    report = compute_bias(shapes, slice_fields=["image_brightness", "camera", "tags", "ground_truth.label"],
                          n_groups=0, min_size=10)
    assert report.slices.crosses and report.slices.num_crossed > 0
    ids = shapes.values("id")
    scored = set(shapes.exists("model_prediction").values("id"))
    rows = {i: r for r, i in enumerate(shapes.exists("model_prediction").exists("ground_truth").values("id"))}
    brightness, camera, tags, labels = shapes.values(["image_brightness", "camera", "tags", "ground_truth.label"])
    crossed = [s for s in report.slices.slices if s.kind == "and"]
    kinds = {p["kind"] for s in crossed for p in s.parts}
    assert {"bin", "value", "item", "missing"} <= kinds
    for stat in crossed:
        # The view from the stored report's dict: the scored members are exactly the slice's rows.
        view = slice_view(shapes, stat.to_dict())
        members = set(view.values("id"))
        assert {rows[i] for i in members & scored} == set(stat.indices.tolist()), stat.label
        assert len(members & scored) == stat.size, stat.label

        def holds(part, row):
            value = {"image_brightness": brightness, "camera": camera, "tags": tags,
                     "ground_truth.label": labels}[part["field"]][row]
            if part["kind"] == "bin":
                return (value is not None and (part["low"] is None or value >= part["low"])
                        and (part["high"] is None or value < part["high"]))
            if part["kind"] == "value":
                return value == part["value"]
            if part["kind"] == "item":
                return part["value"] in (value or [])
            return value is None or value == []

        assert members == {ids[r] for r in range(len(ids)) if all(holds(p, r) for p in stat.parts)}, stat.label
    with pytest.raises(InputError, match="needs two"):
        slice_view(shapes, {**crossed[0].to_dict(), "parts": crossed[0].to_dict()["parts"][:1]})


def test_missing_slice_view(shapes) -> None:
    from curation_checks.bias.report import compute_bias, slice_view

    shapes.set_values("camera", [None if i % 4 == 0 else "a" for i in range(len(shapes))])
    report = compute_bias(shapes, slice_fields=["camera"], image_stats=False, n_groups=0)
    assert report.slices.num_crossed == 0  # one field: nothing to cross
    missing = next(s for s in report.slices.slices if s.kind == "missing")
    assert isinstance(missing, SliceStat) and missing.label == "camera is missing"
    assert slice_view(shapes, missing).values("camera") == [None] * 60

    # A numeric field with None and NaN: MongoDB orders both below every number, the bins must not catch them.
    scores = [None if i % 10 == 0 else float("nan") if i % 10 == 1 else (i % 37) / 37 for i in range(len(shapes))]
    shapes.set_values("score", scores)
    report = compute_bias(shapes, slice_fields=["score"], image_stats=False, n_groups=0, min_size=5)
    ids = shapes.values("id")
    scored = set(shapes.exists("model_prediction").values("id"))
    kinds = set()
    for stat in report.slices.slices:
        kinds.add(stat.kind)
        members = set(slice_view(shapes, stat).values("id"))
        assert len(members & scored) == stat.size, stat.label
        if stat.kind == "missing":
            assert members == {i for i, v in zip(ids, scores) if v is None or v != v}
        elif stat.low is None:
            assert members == {i for i, v in zip(ids, scores) if v is not None and v == v and v < stat.high}
    assert kinds == {"bin", "missing"}


def test_compute_bias_refusals_write_nothing(shapes, tmp_path) -> None:
    import fiftyone as fo

    from curation_checks.bias.report import compute_bias, load_bias_report

    with pytest.raises(DataError, match="The view is empty"):
        compute_bias(shapes.match_tags("nope"))
    with pytest.raises(DataError, match="has no field 'labels'"):
        compute_bias(shapes, label_field="labels")
    with pytest.raises(DataError, match=r"Slice fields \['weather'\] are not fields of the view.*ground_truth"):
        compute_bias(shapes, slice_fields=["weather"])
    with pytest.raises(DataError, match="image_stats=True"):
        compute_bias(shapes, slice_fields=["image_brightness"], image_stats=False)
    with pytest.raises(InputError, match=r"names classes \['zebra'\]"):
        compute_bias(shapes, reference_distribution={"zebra": 1.0})
    with pytest.raises(InputError, match="n_groups"):
        compute_bias(shapes, n_groups=1)
    with pytest.raises(DataError, match="None of the 10 labeled samples of the view has model outputs"):
        compute_bias(shapes.exists("ground_truth").exists("model_prediction", False))
    # A late failure (a field that cannot be sliced, found after the images were read): still nothing written.
    with pytest.raises(DataError, match=r"Field 'ground_truth' holds Classification values.*'ground_truth.label'"):
        compute_bias(shapes, slice_fields=["image_brightness", "ground_truth"])
    # An unreadable image file.
    first = shapes.first()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    first.filepath = str(broken)
    first.save()
    with pytest.raises(DataError, match="could not be read.*broken.png.*image_stats=False"):
        compute_bias(shapes)
    schema = shapes.get_field_schema()
    assert not {"image_brightness", "image_contrast", "image_width", "image_height", "bias_group"} & set(schema)
    assert "bias" not in shapes.list_runs()
    with pytest.raises(DataError, match="no bias report yet"):
        load_bias_report(shapes)

    # Labels outside the class list, and a dataset without any model outputs.
    shapes.default_classes = ["circle", "square"]
    with pytest.raises(DataError, match=r"Labels \['cross'\] in 'ground_truth' are not in the class list"):
        compute_bias(shapes)
    bare = fo.Dataset(f"{shapes.name}-bare")
    try:
        bare.add_sample(fo.Sample(filepath="/nonexistent/a.png", ground_truth=fo.Classification(label="a")))
        with pytest.raises(DataError, match="run `curation model`"):
            compute_bias(bare)
    finally:
        bare.delete()


def test_groups_need_embeddings(shapes) -> None:
    from curation_checks.bias.report import compute_bias

    shapes.exists("model_probs").limit(5).set_field("model_embedding", None).save()
    with pytest.raises(DataError, match="5 scored samples have no 'model_embedding'.*n_groups=0"):
        compute_bias(shapes, image_stats=False)
    assert compute_bias(shapes, image_stats=False, n_groups=0).groups is None


def test_small_views_skip_the_automatic_group_search(shapes) -> None:
    from active_learning.store.runs import load_run
    from curation_checks.bias.report import compute_bias, format_bias_report

    view = shapes.exists("model_probs").limit(30)
    report = compute_bias(view, image_stats=False)  # 30 scored < 2 x min_size: no room for two tested groups
    assert report.groups is None and "bias_group" not in shapes.get_field_schema()
    config, _ = load_run(shapes, "bias")
    assert config["group_search"] == "skipped: 30 scored samples < 2 x min_size"
    assert "Embedding groups" not in format_bias_report(report)
    explicit = compute_bias(view, image_stats=False, n_groups=2, min_size=5)
    assert explicit.groups is not None and explicit.groups.n_groups == 2
    with pytest.raises(InputError, match="min_size"):
        compute_bias(view, min_size=0)


@pytest.mark.parametrize("field, phrase", [
    ("metadata", "holds documents, not values"),
    ("filepath", "gives every sample a slice of its own"),
    ("name", "has a different value for every one of its"),
])
def test_slicing_by_a_field_that_cannot_group_samples_says_so(shapes, field, phrase) -> None:
    """Issue 16: slicing by ``metadata`` or ``filepath`` tested nothing and said nothing."""
    from curation_checks.bias.report import compute_bias

    shapes.compute_metadata()
    shapes.set_values("name", [f"sample-{i}" for i in range(len(shapes))])
    with pytest.raises(DataError, match=phrase):
        compute_bias(shapes, slice_fields=[field], n_groups=0)
    if field == "metadata":
        with pytest.raises(DataError, match="metadata.width"):
            compute_bias(shapes, slice_fields=[field], n_groups=0)
