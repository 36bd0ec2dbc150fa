"""BBSE with a verdict (``curation_checks.drift.label_shift``): a real classifier on Fashion-MNIST, and planted edge cases.

The user's report (issue 15): an UNSHIFTED Fashion-MNIST batch was reported as "Shirt 0.10 -> 0.30". The point
estimate of BBSE is noisy, most of all for the class the model confuses most (Shirt), and the report printed the
largest estimated change as a fact. Here random splits of one test set must show no significant change, and a
batch with Shirt planted at 30% must show that change, and only where it is.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_learning.errors import InputError
from curation_checks.drift.stats import label_shift_estimate
from curation_checks.drift.label_shift import (CONDITION_WARN, PriorChange, describe_headline, headline,
                                         prior_change_test)
from fashion_outputs import CLASSES, SHIRT, fashion_outputs, planted

REFERENCE, BATCH, SPLITS = 2000, 300, 40


@pytest.fixture(scope="module")
def fashion():
    return fashion_outputs()


def test_the_model_confuses_shirts(fashion) -> None:
    """The premise: a real, imperfect classifier whose Shirt recall is the lowest of the ten classes."""
    predicted = fashion.probs.argmax(axis=1)
    recall = np.array([(predicted[fashion.labels == k] == k).mean() for k in range(10)])
    assert 0.75 < (predicted == fashion.labels).mean() < 0.9
    assert recall.argmin() == SHIRT and recall[SHIRT] < 0.6


def test_unshifted_batches_show_no_significant_prior_change(fashion) -> None:
    bare_largest, flagged = [], 0
    for seed in range(SPLITS):
        order = np.random.default_rng(seed).permutation(len(fashion.labels))
        reference, target = order[:REFERENCE], order[REFERENCE:REFERENCE + BATCH]
        result = prior_change_test(fashion.probs[reference], fashion.labels[reference], fashion.probs[target],
                                   random_state=seed)
        bare = label_shift_estimate(fashion.probs[reference], fashion.labels[reference], fashion.probs[target])
        np.testing.assert_allclose(result.estimate, bare.target_prior_estimate)  # the same point estimate
        bare_largest.append(np.abs(result.change).max())
        flagged += bool(result.significant.any())
        assert result.reliable and result.condition_number < 5
        assert np.all(result.margin > 0.03), "chance alone moves a 300-image estimate by several points"
    # What the old report printed as "the biggest prior change" of an unshifted batch: up to ~0.1 at this size.
    assert max(bare_largest) > 0.08
    # The verdict is a level-0.05 test per batch: Binomial(40, 0.05) exceeds 6 with probability ~0.014.
    assert flagged <= 6, f"{flagged} of {SPLITS} unshifted batches were called shifted"


def test_a_planted_shirt_share_is_found(fashion) -> None:
    found = 0
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        order = rng.permutation(len(fashion.labels))
        reference = order[:REFERENCE]
        target = planted(order[REFERENCE:], fashion.labels, 500, SHIRT, 0.30, rng)
        result = prior_change_test(fashion.probs[reference], fashion.labels[reference], fashion.probs[target],
                                   random_state=seed)
        top = headline(result, CLASSES)
        assert top["class"] == "Shirt" and top["estimate"] == pytest.approx(0.30, abs=0.15)  # sd ~0.05
        found += top["significant"]
        assert describe_headline(top).startswith("Shirt 0.") == top["significant"]
    assert found >= 4, f"the planted 0.10 -> 0.30 Shirt shift was significant in {found} of 5 batches"


def _nearly_confused(n: int, rng: np.random.Generator, prior=(0.4, 0.4, 0.2)) -> tuple[np.ndarray, np.ndarray]:
    """A model that cannot tell classes 0 and 1 apart (it picks 0 for 50% of class 0 and 49% of class 1)."""
    labels = rng.choice(3, size=n, p=prior)
    picks_zero = rng.random(n) < np.where(labels == 0, 0.50, 0.49)
    predicted = np.where(labels == 2, 2, np.where(picks_zero, 0, 1))
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), predicted] = 0.9
    return probs, labels


def test_an_ill_conditioned_confusion_matrix_is_flagged_not_reported() -> None:
    rng = np.random.default_rng(0)
    reference_probs, reference_labels = _nearly_confused(4000, rng)
    target_probs, _ = _nearly_confused(1000, rng)
    result = prior_change_test(reference_probs, reference_labels, target_probs)
    assert result.condition_number > CONDITION_WARN and not result.reliable
    assert not result.significant.any()
    text = describe_headline(headline(result, ["a", "b", "c"]))
    assert text.startswith("unreliable") and "->" not in text


def test_describe_headline_forms() -> None:
    old = {"class": "Shirt", "reference": 0.1, "estimate": 0.3}  # stored by reports before the test existed
    assert describe_headline(old) == "Shirt 0.10 -> 0.30 (not tested; rerun drift)"
    assert describe_headline(None) == "n/a"
    assert describe_headline(None, "Classes [2] never occur; label more") == "n/a (Classes [2] never occur)"
    tested = {**old, "change": 0.2, "margin": 0.06, "p_value": 1e-9, "significant": True, "reliable": True,
              "condition_number": 2.5, "max_margin": 0.08, "confidence": 0.95}
    assert describe_headline(tested, arrow="→") == "Shirt 0.10 → 0.30 (significant; chance ±0.06)"
    quiet = {**tested, "estimate": 0.13, "change": 0.03, "significant": False}
    assert describe_headline(quiet) == "none significant (chance up to ±0.08)"


def test_parameters_are_checked() -> None:
    probs = np.tile([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], (20, 1))
    labels = np.tile([0, 1, 2], 20)
    for bad in ({"alpha": 0}, {"alpha": 1.5}, {"n_bootstrap": 10}, {"n_bootstrap": True}, {"random_state": -1}):
        with pytest.raises(InputError):
            prior_change_test(probs, labels, probs, **bad)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), classes=st.integers(2, 5), shift=st.floats(0.0, 0.6))
def test_verdict_invariants(seed: int, classes: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    centres = np.eye(classes) * 3

    def draw(prior, n):
        labels = rng.choice(classes, size=n, p=prior)
        logits = centres[labels] + rng.normal(size=(n, classes))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True), labels

    uniform = np.full(classes, 1 / classes)
    moved = (1 - shift) * uniform + shift * np.eye(classes)[0]
    reference_probs, reference_labels = draw(uniform, 300)
    target_probs, _ = draw(moved, 200)
    result = prior_change_test(reference_probs, reference_labels, target_probs, n_bootstrap=200, random_state=1)
    assert isinstance(result, PriorChange)
    assert result.estimate.sum() == pytest.approx(1.0) and np.all(result.estimate >= 0)
    np.testing.assert_allclose(result.change, result.estimate - result.reference_prior)
    assert np.all(result.margin >= 0) and np.all((result.p_values >= 0) & (result.p_values <= 1))
    expected = result.reliable & (np.abs(result.change) > result.margin)
    assert np.array_equal(result.significant, expected)
    assert 0 <= result.total_variation <= 1
