"""Drift statistics (``curation_checks.drift.stats``): pure functions on synthetic arrays with planted shifts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_learning.errors import DataError, InputError
from curation_checks.drift.stats import (MIN_SAMPLES, KSResult, LabelShiftResult, MMDResult, ks_bbsd,
                                   label_shift_estimate, mmd_test, ood_scores, ood_threshold)

CENTRES = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # class means of the synthetic 3-class problem


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _classifier_outputs(prior, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from ``prior`` and the Bayes posterior (under a uniform prior) of x ~ N(centre_y, I) in 2-D.

    The classifier is fixed and calibrated for the uniform reference, and p(x | y) is the same on both sides: the
    label-shift assumption of BBSE holds exactly.
    """
    labels = rng.choice(len(prior), size=n, p=prior)
    points = CENTRES[labels] + rng.normal(size=(n, 2))
    logits = -0.5 * ((points[:, None, :] - CENTRES[None, :, :]) ** 2).sum(axis=2)
    return _softmax(logits), labels


# -- MMD -----------------------------------------------------------------------------------------------------------
def test_mmd_false_positive_rate_near_alpha() -> None:
    # The permutation test is exact under exchangeability: on same-distribution samples the p-value is (super)
    # uniform, so each trial rejects with probability <= 0.05. Over 20 independent trials the number of rejections
    # is at most Binomial(20, 0.05); P(more than 4) ~= 0.016, so "<= 4 of 20" (rate <= 0.2) would only fail for a
    # broken test (the seeds are fixed, so the outcome itself is deterministic).
    rejections = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        reference, target = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
        result = mmd_test(reference, target, n_permutations=100, random_state=seed)
        rejections += result.p_value < 0.05
    assert rejections / 20 <= 0.2


def test_mmd_detects_half_sd_mean_shift() -> None:
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        reference, target = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
        target[:, 0] += 0.5  # 0.5 SD along one of 8 coordinates
        result = mmd_test(reference, target, random_state=seed)
        assert result.p_value < 0.05
        assert result.statistic > 0


def test_mmd_result_fields_and_subsampling() -> None:
    rng = np.random.default_rng(1)
    reference, target = rng.normal(size=(300, 4)), rng.normal(size=(50, 4))
    result = mmd_test(reference, target, n_permutations=19, max_samples_per_side=100)
    assert isinstance(result, MMDResult)
    assert (result.n_reference, result.n_target) == (100, 50)
    assert (result.n_reference_total, result.n_target_total) == (300, 50)
    assert result.bandwidth > 0
    assert result.p_value in {(count + 1) / 20 for count in range(20)}
    # deterministic for a seed
    assert mmd_test(reference, target, n_permutations=19, max_samples_per_side=100) == result


def test_mmd_unbiased_statistic_matches_direct_formula() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(25, 3)), rng.normal(loc=0.3, size=(30, 3))
    bandwidth = 1.5

    def k(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * bandwidth**2))

    kxx, kyy = k(x, x), k(y, y)
    expected = ((kxx.sum() - np.trace(kxx)) / (25 * 24) + (kyy.sum() - np.trace(kyy)) / (30 * 29)
                - 2 * k(x, y).mean())
    result = mmd_test(x, y, n_permutations=10, kernel_bandwidth=bandwidth)
    assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert result.bandwidth == bandwidth


def test_mmd_identical_points_give_p_one() -> None:
    same = np.ones((30, 5))
    result = mmd_test(same, same.copy(), n_permutations=20)
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == 1.0


# -- KS-BBSD -------------------------------------------------------------------------------------------------------
def test_ks_bbsd_detects_prior_shift_and_not_null() -> None:
    rng = np.random.default_rng(3)
    reference, _ = _classifier_outputs([1 / 3, 1 / 3, 1 / 3], 1000, rng)
    null, _ = _classifier_outputs([1 / 3, 1 / 3, 1 / 3], 1000, rng)
    shifted, _ = _classifier_outputs([0.6, 0.3, 0.1], 1000, rng)
    no_drift = ks_bbsd(reference, null)
    assert isinstance(no_drift, KSResult)
    assert not no_drift.drift
    assert no_drift.bonferroni_threshold == pytest.approx(0.05 / 3)
    assert no_drift.statistics.shape == no_drift.p_values.shape == (3,)
    drift = ks_bbsd(reference, shifted)
    assert drift.drift
    assert drift.min_p_value < 1e-6
    assert drift.min_p_value == drift.p_values.min()


# -- BBSE ----------------------------------------------------------------------------------------------------------
def test_bbse_recovers_planted_prior_shift() -> None:
    rng = np.random.default_rng(4)
    reference_probs, reference_labels = _classifier_outputs([1 / 3, 1 / 3, 1 / 3], 6000, rng)
    true_target_prior = np.array([0.6, 0.3, 0.1])
    target_probs, _ = _classifier_outputs(true_target_prior, 6000, rng)
    result = label_shift_estimate(reference_probs, reference_labels, target_probs)
    assert isinstance(result, LabelShiftResult)
    np.testing.assert_allclose(result.reference_prior, np.bincount(reference_labels) / 6000)
    error = 0.5 * np.abs(result.target_prior_estimate - true_target_prior).sum()
    assert error < 0.05
    assert result.target_prior_estimate.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(result.weights * result.reference_prior, result.target_prior_estimate)
    assert result.total_variation == pytest.approx(
        0.5 * np.abs(result.target_prior_estimate - result.reference_prior).sum())
    assert result.total_variation > 0.2  # the planted shift is ~0.27 from uniform


def test_bbse_no_shift_estimates_reference_prior() -> None:
    rng = np.random.default_rng(5)
    reference_probs, reference_labels = _classifier_outputs([0.5, 0.3, 0.2], 4000, rng)
    target_probs, _ = _classifier_outputs([0.5, 0.3, 0.2], 4000, rng)
    result = label_shift_estimate(reference_probs, reference_labels, target_probs)
    assert result.total_variation < 0.05


def test_bbse_never_predicted_class_is_a_data_error() -> None:
    rng = np.random.default_rng(6)
    probs = _softmax(rng.normal(size=(100, 3)))
    probs = np.column_stack([probs[:, 0] + probs[:, 2], probs[:, 1], np.zeros(100)])  # class 2 never predicted
    labels = rng.integers(0, 3, size=100)
    with pytest.raises(DataError, match=r"never predicts classes \[2\]"):
        label_shift_estimate(probs, labels, probs)
    with pytest.raises(DataError, match=r"never occur in reference_labels"):
        label_shift_estimate(_softmax(rng.normal(size=(100, 3))), np.zeros(100, dtype=int), probs)


def test_bbse_bad_labels() -> None:
    probs = _softmax(np.random.default_rng(7).normal(size=(50, 3)))
    with pytest.raises(DataError, match="one class index per reference row"):
        label_shift_estimate(probs, np.zeros(49, dtype=int), probs)
    with pytest.raises(DataError, match="integer class indices"):
        label_shift_estimate(probs, np.full(50, -1), probs)


# -- OOD -----------------------------------------------------------------------------------------------------------
def test_ood_scores_rank_planted_far_points_highest() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(500, 16)) + 3.0  # a cone around the all-3 direction
    inliers = rng.normal(size=(200, 16)) + 3.0
    far = rng.normal(size=(5, 16)) - 3.0  # the opposite direction
    target = np.vstack([inliers, far])
    scores = ood_scores(reference, target, k=10)
    assert scores.shape == (205,)
    assert set(np.argsort(scores)[-5:]) == set(range(200, 205))
    threshold = ood_threshold(reference, k=10, quantile=0.95)
    assert (scores[200:] > threshold).all()
    assert (scores[:200] > threshold).mean() < 0.15


def test_ood_scores_blocked_matches_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    import curation_checks.neighbours as neighbours

    rng = np.random.default_rng(9)
    reference, target = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    unit_reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    unit_target = target / np.linalg.norm(target, axis=1, keepdims=True)
    distances = 1 - unit_target @ unit_reference.T
    expected = np.sort(distances, axis=1)[:, :3].mean(axis=1)
    monkeypatch.setattr(neighbours, "BLOCK_ELEMENTS", 7 * 40)  # 7 query rows per block
    np.testing.assert_allclose(ood_scores(reference, target, k=3), expected, atol=1e-12)
    # leave-one-out: a row is never its own neighbour
    self_distances = 1 - unit_reference @ unit_reference.T
    np.fill_diagonal(self_distances, np.inf)
    loo = np.sort(self_distances, axis=1)[:, :3].mean(axis=1)
    assert ood_threshold(reference, k=3, quantile=0.5) == pytest.approx(np.quantile(loo, 0.5))


# -- validation ----------------------------------------------------------------------------------------------------
def test_validation_errors() -> None:
    rng = np.random.default_rng(10)
    emb = rng.normal(size=(30, 4))
    probs = _softmax(rng.normal(size=(30, 3)))
    with pytest.raises(DataError, match=f"at least {MIN_SAMPLES} are needed"):
        mmd_test(emb[: MIN_SAMPLES - 1], emb)
    with pytest.raises(DataError, match=f"at least {MIN_SAMPLES} are needed"):
        ks_bbsd(probs, probs[:5])
    with pytest.raises(DataError, match="4 dimensions but target_emb has 5"):
        mmd_test(emb, rng.normal(size=(30, 5)))
    with pytest.raises(DataError, match="3 classes but target_probs has 2"):
        ks_bbsd(probs, _softmax(rng.normal(size=(30, 2))))
    with_nan = emb.copy()
    with_nan[3, 1] = np.nan
    with pytest.raises(DataError, match="1 rows with NaN"):
        mmd_test(emb, with_nan)
    with pytest.raises(DataError, match="NaN"):
        ood_scores(with_nan, emb)
    with pytest.raises(DataError, match="apply a softmax"):
        ks_bbsd(probs, rng.normal(size=(30, 3)) * 5)
    with pytest.raises(DataError, match="do not sum to 1"):
        ks_bbsd(probs, probs * 0.5)
    with pytest.raises(DataError, match="2-D array"):
        mmd_test(emb[:, 0], emb)
    with pytest.raises(DataError, match="k=10 neighbours need at least 10"):
        ood_scores(emb[:5], emb)
    with pytest.raises(DataError, match="needs at least 11"):
        ood_threshold(emb[:10], k=10)
    with pytest.raises(InputError, match="n_permutations"):
        mmd_test(emb, emb, n_permutations=0)
    with pytest.raises(InputError, match="kernel_bandwidth"):
        mmd_test(emb, emb, kernel_bandwidth=-1.0)
    with pytest.raises(InputError, match="max_samples_per_side"):
        mmd_test(emb, emb, max_samples_per_side=5)
    with pytest.raises(InputError, match="alpha"):
        ks_bbsd(probs, probs, alpha=1.5)
    with pytest.raises(InputError, match="k must be"):
        ood_scores(emb, emb, k=0)
    with pytest.raises(InputError, match="quantile"):
        ood_threshold(emb, quantile=1.0)


# -- properties ----------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(MIN_SAMPLES, 40), n=st.integers(MIN_SAMPLES, 40),
       dim=st.integers(1, 5), shift=st.floats(0, 2), permutations=st.integers(1, 30))
def test_mmd_p_value_in_unit_interval(seed: int, m: int, n: int, dim: int, shift: float, permutations: int) -> None:
    rng = np.random.default_rng(seed)
    result = mmd_test(rng.normal(size=(m, dim)), rng.normal(loc=shift, size=(n, dim)),
                      n_permutations=permutations, random_state=seed)
    assert 0 < result.p_value <= 1
    assert result.p_value >= 1 / (permutations + 1)
    assert np.isfinite(result.statistic) and result.bandwidth > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), classes=st.integers(2, 5), temperature=st.floats(0.2, 3.0))
def test_ks_and_bbse_invariants(seed: int, classes: int, temperature: float) -> None:
    rng = np.random.default_rng(seed)
    reference = _softmax(rng.normal(size=(60, classes)) / temperature)
    target = _softmax(rng.normal(loc=0.3, size=(40, classes)) / temperature)
    ks = ks_bbsd(reference, target)
    assert np.all((ks.p_values > 0) & (ks.p_values <= 1))
    assert ks.drift == (ks.min_p_value < ks.bonferroni_threshold)
    labels = reference.argmax(axis=1)  # a perfectly accurate classifier on the reference...
    if len(np.unique(labels)) < classes:
        labels[:classes] = np.arange(classes)  # ...except where a class would be missing
        reference[:classes] = np.eye(classes)
    try:
        result = label_shift_estimate(reference, labels, target)
    except DataError:
        return  # e.g. a class never predicted: a documented, actionable refusal
    assert np.all(result.weights >= 0)
    assert np.all(result.target_prior_estimate >= 0)
    assert result.target_prior_estimate.sum() == pytest.approx(1.0)
    assert result.reference_prior.sum() == pytest.approx(1.0)
    assert 0 <= result.total_variation <= 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 40), n=st.integers(1, 30), k=st.integers(1, 5))
def test_ood_scores_in_cosine_range(seed: int, m: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(max(m, k + 1), 3))
    target = rng.normal(size=(n, 3))
    target[0] = 0.0  # an all-zero row is as far as an orthogonal one
    scores = ood_scores(reference, target, k=k)
    assert scores.shape == (n,)
    assert np.all((scores >= 0) & (scores <= 2))
    assert scores[0] == pytest.approx(1.0)
    assert 0 <= ood_threshold(reference, k=k) <= 2


def test_euclidean_ood_sees_a_change_of_length_that_cosine_cannot() -> None:
    # Target rows point like reference rows but are three times longer (as inverted digits' features were):
    # cosine distance ignores the length, Euclidean distance does not.
    rng = np.random.default_rng(0)
    reference = np.abs(rng.normal(size=(400, 16))) + 1.0
    target = 3.0 * (np.abs(rng.normal(size=(200, 16))) + 1.0)
    flagged = {}
    for metric in ("cosine", "euclidean"):
        threshold = ood_threshold(reference, k=10, metric=metric)
        flagged[metric] = float((ood_scores(reference, target, k=10, metric=metric) > threshold).mean())
    assert flagged["cosine"] < 0.2, flagged
    assert flagged["euclidean"] > 0.95, flagged
    # Same-distribution targets stay near the threshold's 5% for both metrics.
    fresh = np.abs(rng.normal(size=(400, 16))) + 1.0
    for metric in ("cosine", "euclidean"):
        rate = (ood_scores(reference, fresh, k=10, metric=metric) > ood_threshold(reference, k=10, metric=metric))
        assert rate.mean() < 0.12, (metric, rate.mean())


def test_euclidean_ood_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    reference, target = rng.normal(size=(50, 4)), rng.normal(size=(7, 4))
    distances = np.linalg.norm(target[:, None, :] - reference[None, :, :], axis=2)
    expected = np.sort(distances, axis=1)[:, :5].mean(axis=1)
    assert np.allclose(ood_scores(reference, target, k=5, metric="euclidean"), expected)
    with pytest.raises(InputError, match="metric must be one of"):
        ood_scores(reference, target, k=5, metric="manhattan")
