"""Is the class prior of a target really different from the reference's? BBSE with a bootstrap and a verdict.

``drift.label_shift_estimate`` (BBSE, Lipton et al. 2018) inverts the reference confusion matrix to turn the
target's predicted-class frequencies into an estimate of its class prior. That estimate is noisy: both sides are
finite samples, and the inversion amplifies the noise of classes the model confuses (on Fashion-MNIST, Shirt with
T-shirt, Pullover and Coat). Picking the class with the largest estimated change then reports noise as a finding:
with a logistic regression on Fashion-MNIST (accuracy 0.81), a reference of 300 and unshifted batches of 100, the
largest estimated change has a median of 0.09 and reached 0.24 in 50 random splits, for Shirt more often than for
any other class.

``prior_change_test`` adds what is needed to read the estimate:

- a **bootstrap under "no shift"**: the reference's (prediction, label) counts are redrawn from their multinomial
  (the same as resampling its rows) and the target's predictions from the reference's own prediction frequencies
  (what an unshifted target predicts), the estimate is recomputed for each draw, and the standard error of
  ``estimate - reference prior`` is the spread of the draws: both sides' noise, the amplification by the inversion
  and the clipping of negative weights are in it. Resampling the *observed* target instead fails for classes the
  batch rarely predicts (a count of 0 or 1 has no spread): on Fashion-MNIST it called 26% of unshifted batches of
  100 shifted, against 6% with the null draws (150 splits);
- a **verdict per class**: a two-sided z-test of "no change", Bonferroni over the K classes at ``alpha``, and the
  matching simultaneous interval ``change +/- margin``: a change is *significant* exactly when its interval
  excludes 0;
- the **condition number** of ``P(pred | y)``: above ``CONDITION_WARN`` the inversion is unstable (a bootstrap of
  a near-singular system is not trustworthy either), and no change is called significant.

Pure functions over arrays; the result is frozen and JSON-friendly through ``to_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from curation_checks.drift.stats import bbse_prior, label_shift_estimate
from curation_checks.validation import check_fraction, check_int

N_BOOTSTRAP = 1000  # bootstrap draws; the standard error is stable to a few percent at this size
MIN_BOOTSTRAP = 50  # fewer draws give no usable standard error
CONDITION_WARN = 100.0  # condition number of P(pred | y) above which the estimate is flagged as unreliable
MAX_FAILED_DRAWS = 0.01  # share of bootstrap draws whose estimate collapses above which it is unreliable too


@dataclass(frozen=True)
class PriorChange:
    """BBSE's estimate of the target prior, its change from the reference and whether each change is significant.

    ``margin`` is the half-width of the simultaneous (Bonferroni over classes) ``1 - alpha`` interval of
    ``change``; ``significant[k]`` is ``reliable and |change[k]| > margin[k]`` (equivalently ``p_values[k] <
    alpha / K``).
    """

    reference_prior: np.ndarray  # (K,) class frequencies of the reference labels
    estimate: np.ndarray  # (K,) BBSE estimate of the target prior
    change: np.ndarray  # (K,) estimate - reference_prior
    standard_error: np.ndarray  # (K,) bootstrap standard error of change
    margin: np.ndarray  # (K,) half-width of the simultaneous interval of change
    p_values: np.ndarray  # (K,) two-sided z-test of change = 0, uncorrected
    significant: np.ndarray  # (K,) bool
    alpha: float
    condition_number: float  # of P(pred | y), the column-normalised confusion matrix
    reliable: bool  # condition_number <= CONDITION_WARN and the bootstrap rarely collapsed
    n_bootstrap: int

    @property
    def total_variation(self) -> float:
        """0.5 * sum |estimate - reference_prior|."""
        return float(0.5 * np.abs(self.change).sum())

    def headline(self) -> int:
        """The class to report: the largest significant change, else the largest change (not significant)."""
        candidates = np.flatnonzero(self.significant)
        pool = candidates if candidates.size else np.arange(len(self.change))
        return int(pool[np.argmax(np.abs(self.change[pool]))])


def _counts(reference_probs: np.ndarray, reference_labels: np.ndarray,
            target_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference counts ``N[i, j]`` of (pred = i, y = j) and target counts of pred = i."""
    num_classes = reference_probs.shape[1]
    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (np.asarray(reference_probs).argmax(axis=1), np.asarray(reference_labels, dtype=np.int64)), 1.0)
    target = np.bincount(np.asarray(target_probs).argmax(axis=1), minlength=num_classes).astype(np.float64)
    return joint, target


def condition_number(joint_counts: np.ndarray) -> float:
    """Condition number of ``P(pred | y)`` (each label's column of the confusion counts normalised to 1)."""
    columns = joint_counts.sum(axis=0)
    return float(np.linalg.cond(joint_counts / np.where(columns > 0, columns, 1.0)))


def null_changes(joint_counts: np.ndarray, num_target: int, n_bootstrap: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``(n_bootstrap, K)`` draws of ``estimate - reference prior`` when there is no label shift.

    The reference's (prediction, label) counts are redrawn from their multinomial and ``num_target`` target
    predictions from the reference's own prediction frequencies (no shift: the target predicts like the reference).
    Rows of NaN where the estimate collapsed.
    """
    m = joint_counts.sum()
    num_classes = len(joint_counts)
    joint_draws = rng.multinomial(int(m), (joint_counts / m).ravel(), size=n_bootstrap)
    target_draws = rng.multinomial(int(num_target), joint_counts.sum(axis=1) / m, size=n_bootstrap)
    n = num_target
    changes = np.full((n_bootstrap, num_classes), np.nan)
    for draw in range(n_bootstrap):
        confusion = joint_draws[draw].reshape(num_classes, num_classes) / m
        prior = bbse_prior(confusion, target_draws[draw] / n)
        if prior is not None:
            changes[draw] = prior - confusion.sum(axis=0)
    return changes


def prior_change_test(reference_probs: np.ndarray, reference_labels: np.ndarray, target_probs: np.ndarray,
                      alpha: float = 0.05, n_bootstrap: int = N_BOOTSTRAP, random_state: int = 0) -> PriorChange:
    """BBSE's estimate of the target's class prior, with a bootstrap standard error and a verdict per class.

    Args:
        reference_probs: (m, K) out-of-sample softmax outputs on the labelled reference.
        reference_labels: (m,) class index per reference row.
        target_probs: (n, K) softmax outputs of the same model on the target.
        alpha: family-wise level over the K classes (Bonferroni).
        n_bootstrap: bootstrap draws (at least ``MIN_BOOTSTRAP``, 50).
        random_state: seed of the bootstrap.

    Returns:
        The estimate, its change from the reference prior with standard errors, simultaneous margins, p-values,
        the significant classes and the reliability of the inversion.

    Raises:
        DataError: as ``drift.label_shift_estimate`` (too few samples, bad inputs, a singular confusion matrix).
        InputError: bad ``alpha``, ``n_bootstrap`` or ``random_state``.
    """
    alpha = check_fraction("alpha", alpha)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, MIN_BOOTSTRAP)
    random_state = check_int("random_state", random_state, 0)
    point = label_shift_estimate(reference_probs, reference_labels, target_probs)  # validates everything
    joint, target = _counts(reference_probs, reference_labels, target_probs)
    draws = null_changes(joint, int(target.sum()), int(n_bootstrap), np.random.default_rng(random_state))
    failed = float(np.isnan(draws[:, 0]).mean())
    standard_error = np.nanstd(draws, axis=0, ddof=1) if failed < 1 else np.full(len(target), np.inf)
    change = point.target_prior_estimate - point.reference_prior
    num_classes = len(change)
    critical = float(stats.norm.ppf(1 - alpha / (2 * num_classes)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(standard_error > 0, np.abs(change) / standard_error, np.where(change == 0, 0.0, np.inf))
    p_values = 2 * stats.norm.sf(z)
    cond = condition_number(joint)
    reliable = bool(cond <= CONDITION_WARN and failed <= MAX_FAILED_DRAWS)
    significant = (p_values < alpha / num_classes) & reliable
    return PriorChange(point.reference_prior, point.target_prior_estimate, change, standard_error,
                       critical * standard_error, p_values, significant, float(alpha), cond, reliable,
                       int(n_bootstrap))


def headline(result: PriorChange, classes: list[str]) -> dict:
    """The class ``PriorChange.headline`` picks, as plain JSON: what the report stores and prints."""
    k = result.headline()
    return {"class": classes[k], "reference": float(result.reference_prior[k]), "estimate": float(result.estimate[k]),
            "change": float(result.change[k]), "margin": float(result.margin[k]),
            "p_value": float(result.p_values[k]), "significant": bool(result.significant[k]),
            "reliable": result.reliable, "condition_number": result.condition_number,
            "max_margin": float(result.margin.max()), "confidence": 1 - result.alpha}


def describe_headline(change: dict | None, note: str | None = None, arrow: str = "->") -> str:
    """One line for a table: the significant change with its chance margin, or why there is none to call out.

    ``change`` is ``headline``'s dict (reports stored before the test have only class, reference and estimate);
    ``note`` says why there is no estimate at all.
    """
    if change is None:
        return "n/a" if note is None else f"n/a ({note.split(';')[0][:60]})"
    figures = f"{change['class']} {change['reference']:.2f} {arrow} {change['estimate']:.2f}"
    if "significant" not in change:
        return f"{figures} (not tested; rerun drift)"
    if not change["reliable"]:
        return f"unreliable (confusion matrix condition number {change['condition_number']:.0f})"
    if change["significant"]:
        return f"{figures} (significant; chance ±{change['margin']:.2f})"
    return f"none significant (chance up to ±{change['max_margin']:.2f})"


__all__ = ["CONDITION_WARN", "N_BOOTSTRAP", "PriorChange", "condition_number", "describe_headline", "headline",
           "null_changes", "prior_change_test"]
