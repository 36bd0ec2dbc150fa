"""Drift statistics: does a target set (e.g. new production data) differ from a reference set (e.g. training data)?

Pure functions over arrays (no FiftyOne); each returns a frozen result.

- ``mmd_test``: kernel two-sample test on embeddings (unbiased MMD^2, Gaussian RBF kernel, permutation p-value).
- ``ks_bbsd``: black-box shift detection (Rabanser et al. 2019): per-class two-sample Kolmogorov-Smirnov tests on
  the softmax outputs of a fixed model, Bonferroni-corrected.
- ``label_shift_estimate``: black-box shift estimation, BBSE (Lipton et al. 2018): the target's class prior from
  the reference confusion matrix and the target's predicted-class frequencies.
- ``ood_scores`` / ``ood_threshold``: per-sample out-of-distribution score, the mean cosine distance to the ``k``
  nearest reference samples, and a threshold from the reference's own leave-one-out distances.

Bad data (too few samples, NaN, mismatched shapes, rows that are not probabilities) raises ``DataError``; bad
parameters raise ``InputError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from active_learning.errors import DataError, InputError
from curation_checks.neighbours import KNN_METRICS as OOD_METRICS  # distances of the per-sample OOD score
from curation_checks.neighbours import mean_knn_distance, metric_rows
from curation_checks.validation import check_choice, check_fraction, check_int, check_probabilities, finite_matrix

MIN_SAMPLES = 20  # per side, for the two-sample tests and BBSE: below this their p-values/estimates mean little
MAX_SAMPLES_PER_SIDE = 2000  # mmd_test's default subsample: the pooled kernel matrix is (2 * 2000)^2 floats
MEDIAN_HEURISTIC_SAMPLES = 1000  # pooled rows used for the median-heuristic bandwidth
PERMUTATION_BLOCK = 50  # permutations evaluated per matrix product in mmd_test
CONDITION_LIMIT = 1e10  # BBSE's confusion matrix is treated as singular above this condition number


@dataclass(frozen=True)
class MMDResult:
    """Result of ``mmd_test``; ``n_reference``/``n_target`` are the sample sizes actually used (after subsampling)."""

    statistic: float  # unbiased MMD^2 estimate; may be slightly negative when there is no drift
    p_value: float  # permutation p-value, (count + 1) / (n_permutations + 1), in (0, 1]
    bandwidth: float  # sigma of the kernel exp(-||x - y||^2 / (2 sigma^2))
    n_reference: int
    n_target: int
    n_reference_total: int  # rows given, before subsampling
    n_target_total: int


@dataclass(frozen=True)
class KSResult:
    """Result of ``ks_bbsd``: one KS test per class, Bonferroni-corrected."""

    statistics: np.ndarray  # (K,) KS statistic per class
    p_values: np.ndarray  # (K,) uncorrected p-value per class
    min_p_value: float
    bonferroni_threshold: float  # alpha / K
    drift: bool  # min_p_value < bonferroni_threshold


@dataclass(frozen=True)
class LabelShiftResult:
    """Result of ``label_shift_estimate``: class priors and importance weights w = target prior / reference prior."""

    reference_prior: np.ndarray  # (K,) class frequencies of the reference labels
    target_prior_estimate: np.ndarray  # (K,) non-negative, sums to 1
    weights: np.ndarray  # (K,) non-negative
    total_variation: float  # 0.5 * sum |target_prior_estimate - reference_prior|, in [0, 1]


# -- validation --------------------------------------------------------------------------------------------------
def _pair(reference: object, target: object, kind: str, min_reference: int, min_target: int,
          ) -> tuple[np.ndarray, np.ndarray]:
    reference = finite_matrix(f"reference_{kind}", reference, min_reference)
    target = finite_matrix(f"target_{kind}", target, min_target)
    if reference.shape[1] != target.shape[1]:
        what = "classes" if kind == "probs" else "dimensions"
        raise DataError(
            f"reference_{kind} has {reference.shape[1]} {what} but target_{kind} has {target.shape[1]}; both must "
            "come from the same model.")
    return reference, target


def _probability_pair(reference: object, target: object, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    reference_probs, target_probs = _pair(reference, target, "probs", min_samples, min_samples)
    check_probabilities("reference_probs", reference_probs)
    check_probabilities("target_probs", target_probs)
    return reference_probs, target_probs


# -- MMD ---------------------------------------------------------------------------------------------------------
def _squared_distances(points: np.ndarray) -> np.ndarray:
    squared_norms = np.einsum("ij,ij->i", points, points)
    distances = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (points @ points.T)
    np.maximum(distances, 0.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def _median_bandwidth(squared_distances: np.ndarray, rng: np.random.Generator) -> float:
    """Median heuristic: the median pairwise Euclidean distance over (a subsample of) the pooled rows."""
    n = len(squared_distances)
    rows = np.sort(rng.choice(n, MEDIAN_HEURISTIC_SAMPLES, replace=False)) if n > MEDIAN_HEURISTIC_SAMPLES else None
    sub = squared_distances if rows is None else squared_distances[np.ix_(rows, rows)]
    pairs = sub[np.triu_indices(len(sub), k=1)]
    median = float(np.median(pairs))
    if median <= 0:  # more than half the pairs are copies: fall back to the mean of the distinct pairs
        positive = pairs[pairs > 0]
        median = float(positive.mean()) if positive.size else 1.0  # all identical: any bandwidth gives MMD^2 = 0
    return float(np.sqrt(median))


def _mmd_statistics(kernel: np.ndarray, masks: np.ndarray, row_sums: np.ndarray, m: int, n: int) -> np.ndarray:
    """Unbiased MMD^2 for each column of ``masks`` (1 = reference), from a kernel matrix with a zeroed diagonal."""
    product = kernel @ masks  # (N, P)
    within_reference = np.einsum("ip,ip->p", masks, product)  # a' K a
    cross = np.einsum("ip,ip->p", masks, row_sums[:, None] - product)  # a' K b
    within_target = row_sums.sum() - 2.0 * cross - within_reference  # b' K b = 1'K1 - 2 a'Kb - a'Ka
    return within_reference / (m * (m - 1)) + within_target / (n * (n - 1)) - 2.0 * cross / (m * n)


def mmd_test(reference_emb: np.ndarray, target_emb: np.ndarray, n_permutations: int = 200, random_state: int = 0,
             kernel_bandwidth: float | None = None, max_samples_per_side: int = MAX_SAMPLES_PER_SIDE) -> MMDResult:
    """Kernel two-sample test: unbiased MMD^2 with a Gaussian RBF kernel and a permutation p-value.

    The embeddings are used RAW (not L2-normalised), so a change of scale counts as drift too; L2-normalise both
    sides first to compare directions only. Each side is subsampled without replacement to at most
    ``max_samples_per_side`` rows (seeded by ``random_state``; the sizes used are reported in the result), so 10k
    vs 10k rows cost the same as 2k vs 2k. One pooled kernel matrix is computed; every permutation reuses it.

    Args:
        reference_emb: (m, d) reference embeddings, at least ``MIN_SAMPLES`` rows.
        target_emb: (n, d) target embeddings, at least ``MIN_SAMPLES`` rows.
        n_permutations: number of random relabellings of the pooled sample for the p-value.
        random_state: seed of the subsampling, the bandwidth subsample and the permutations.
        kernel_bandwidth: sigma of ``exp(-||x - y||^2 / (2 sigma^2))``; None: the median pairwise distance of the
            pooled (subsampled) rows, computed on at most ``MEDIAN_HEURISTIC_SAMPLES`` of them.
        max_samples_per_side: cap on the rows used from each side.

    Returns:
        The statistic, the p-value ``(count + 1) / (n_permutations + 1)`` where ``count`` is the number of
        permutations with a statistic >= the observed one, the bandwidth and the sample sizes.

    Raises:
        DataError: fewer than ``MIN_SAMPLES`` rows on a side, NaN values, or different dimensions.
        InputError: a non-positive ``n_permutations``, ``kernel_bandwidth`` or ``max_samples_per_side``.
    """
    n_permutations = check_int("n_permutations", n_permutations)
    max_samples_per_side = check_int("max_samples_per_side", max_samples_per_side, MIN_SAMPLES)
    if kernel_bandwidth is not None and not (np.isfinite(kernel_bandwidth) and kernel_bandwidth > 0):
        raise InputError(f"kernel_bandwidth must be a positive number, or None for the median heuristic; "
                         f"got {kernel_bandwidth!r}.")
    reference, target = _pair(reference_emb, target_emb, "emb", MIN_SAMPLES, MIN_SAMPLES)
    rng = np.random.default_rng(random_state)
    m_total, n_total = len(reference), len(target)
    if m_total > max_samples_per_side:
        reference = reference[np.sort(rng.choice(m_total, max_samples_per_side, replace=False))]
    if n_total > max_samples_per_side:
        target = target[np.sort(rng.choice(n_total, max_samples_per_side, replace=False))]
    m, n = len(reference), len(target)
    pooled = np.vstack([reference, target])
    pooled -= pooled.mean(axis=0)  # distances are unchanged; the Gram-matrix expansion loses less precision
    kernel = _squared_distances(pooled)
    bandwidth = float(kernel_bandwidth) if kernel_bandwidth is not None else _median_bandwidth(kernel, rng)
    kernel *= -0.5 / bandwidth**2
    np.exp(kernel, out=kernel)
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimator leaves out the i == j terms
    row_sums = kernel.sum(axis=1)

    observed_mask = np.zeros((m + n, 1))
    observed_mask[:m] = 1.0
    statistic = float(_mmd_statistics(kernel, observed_mask, row_sums, m, n)[0])
    count = 0
    for start in range(0, n_permutations, PERMUTATION_BLOCK):
        size = min(PERMUTATION_BLOCK, n_permutations - start)
        order = rng.permuted(np.tile(np.arange(m + n), (size, 1)), axis=1)  # one permutation per row
        masks = np.zeros((m + n, size))
        masks[order[:, :m].T, np.arange(size)] = 1.0
        permuted = _mmd_statistics(kernel, masks, row_sums, m, n)
        # a small tolerance so that ties (e.g. identical samples) count as "at least as extreme"
        count += int((permuted >= statistic - 1e-12 * max(1.0, abs(statistic))).sum())
    p_value = (count + 1) / (n_permutations + 1)
    return MMDResult(statistic, float(p_value), bandwidth, m, n, m_total, n_total)


# -- KS on softmax outputs (BBSD) --------------------------------------------------------------------------------
def ks_bbsd(reference_probs: np.ndarray, target_probs: np.ndarray, alpha: float = 0.05) -> KSResult:
    """Black-box shift detection: a two-sample KS test per class on the softmax outputs, Bonferroni-corrected.

    Args:
        reference_probs: (m, K) softmax outputs of a fixed model on the reference, rows summing to 1.
        target_probs: (n, K) softmax outputs of the same model on the target.
        alpha: family-wise significance level; drift is declared when some class has p < alpha / K.

    Returns:
        Per-class statistics and p-values, the smallest p-value, the Bonferroni threshold and the decision.

    Raises:
        DataError: fewer than ``MIN_SAMPLES`` rows on a side, NaN, different class counts, or rows that are not
            probabilities.
        InputError: ``alpha`` outside (0, 1).
    """
    alpha = check_fraction("alpha", alpha)
    reference, target = _probability_pair(reference_probs, target_probs, MIN_SAMPLES)
    num_classes = reference.shape[1]
    statistics = np.empty(num_classes)
    p_values = np.empty(num_classes)
    for k in range(num_classes):
        result = stats.ks_2samp(reference[:, k], target[:, k])
        statistics[k], p_values[k] = result.statistic, result.pvalue
    threshold = alpha / num_classes
    min_p_value = float(p_values.min())
    return KSResult(statistics, p_values, min_p_value, threshold, bool(min_p_value < threshold))


# -- BBSE --------------------------------------------------------------------------------------------------------
def bbse_prior(confusion: np.ndarray, target_predicted: np.ndarray) -> np.ndarray | None:
    """The BBSE target prior from ``C[i, j] = P(pred = i, y = j)`` and ``mu[i] = P(pred = i)`` on the target.

    Solves ``C w = mu`` by least squares, clips ``w`` at 0 and returns ``w * P(y)`` normalised to sum to 1; None
    when every clipped weight is 0. No validation: ``label_shift_estimate`` is the checked entry point.
    """
    weights = np.clip(np.linalg.lstsq(confusion, target_predicted, rcond=None)[0], 0.0, None)
    unnormalised = weights * confusion.sum(axis=0)
    total = unnormalised.sum()
    return unnormalised / total if total > 0 else None


def label_shift_estimate(reference_probs: np.ndarray, reference_labels: np.ndarray,
                         target_probs: np.ndarray) -> LabelShiftResult:
    """Black-box shift estimation (Lipton et al. 2018) of the target's class prior under label shift.

    With hard predictions ``argmax`` of the probabilities: ``C[i, j] = P(pred = i, y = j)`` on the reference,
    ``mu[i] = P(pred = i)`` on the target; ``C w = mu`` is solved by least squares, ``w`` clipped at 0, and the
    target prior is ``w * reference_prior`` normalised to sum to 1. Assumes p(x | y) is the same on both sides.

    Args:
        reference_probs: (m, K) out-of-sample softmax outputs on the labelled reference.
        reference_labels: (m,) class index per reference row, in [0, K).
        target_probs: (n, K) softmax outputs of the same model on the target.

    Returns:
        The reference prior, the estimated target prior, the weights and their total-variation distance.

    Raises:
        DataError: too few samples, bad probabilities or labels, a class missing from the reference labels or
            never predicted (the confusion matrix is singular).
    """
    reference, target = _probability_pair(reference_probs, target_probs, MIN_SAMPLES)
    num_classes = reference.shape[1]
    labels = np.asarray(reference_labels)
    if labels.ndim != 1 or len(labels) != len(reference):
        raise DataError(f"reference_labels must hold one class index per reference row ({len(reference)}); "
                        f"got shape {labels.shape}.")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"reference_labels must be integer class indices in [0, {num_classes}); drop unlabelled "
                        "(-1) rows first.")
    predicted = reference.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes))
    np.add.at(confusion, (predicted, labels), 1.0)
    confusion /= len(labels)
    reference_prior = confusion.sum(axis=0)
    missing = np.flatnonzero(reference_prior == 0)
    if missing.size:
        raise DataError(f"Classes {missing.tolist()} never occur in reference_labels, so their shift cannot be "
                        "estimated; label reference samples of every class or drop those classes.")
    never_predicted = np.flatnonzero(confusion.sum(axis=1) == 0)
    if never_predicted.size:
        raise DataError(f"The model never predicts classes {never_predicted.tolist()} on the reference, so the "
                        "confusion matrix is singular; use a better model, more reference samples, or merge those "
                        "classes.")
    if np.linalg.cond(confusion) > CONDITION_LIMIT:
        raise DataError("The reference confusion matrix is singular (the model confuses some classes completely); "
                        "use a better model or merge the classes it cannot tell apart.")
    target_predicted = np.bincount(target.argmax(axis=1), minlength=num_classes) / len(target)
    target_prior = bbse_prior(confusion, target_predicted)
    if target_prior is None:
        raise DataError("The label-shift estimate collapsed to zero for every class; the target does not look "
                        "like a label shift of the reference.")
    weights = target_prior / reference_prior  # consistent with the normalised prior
    total_variation = float(0.5 * np.abs(target_prior - reference_prior).sum())
    return LabelShiftResult(reference_prior, target_prior, weights, total_variation)


# -- OOD scores --------------------------------------------------------------------------------------------------
def ood_scores(reference_emb: np.ndarray, target_emb: np.ndarray, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """Out-of-distribution score per target row: mean distance to its ``k`` nearest reference rows.

    Higher means more unusual. ``cosine`` (the default; scores in [0, 2]) compares directions only, as deep k-NN
    OOD detectors do on normalised features; ``euclidean`` also sees a change of length (e.g. images whose
    features point the same way but are several times stronger). Compare with ``ood_threshold`` for a cut-off.

    Args:
        reference_emb: (m, d) reference embeddings, m >= k.
        target_emb: (n, d) target embeddings.
        k: number of reference neighbours averaged.
        metric: ``cosine`` or ``euclidean``.

    Returns:
        (n,) float64 scores aligned with ``target_emb``.

    Raises:
        DataError: NaN, different dimensions, or fewer than ``k`` reference rows.
        InputError: ``k`` < 1, or an unknown metric.
    """
    k = check_int("k", k)
    metric = check_choice("metric", metric, OOD_METRICS)
    reference, target = _pair(reference_emb, target_emb, "emb", 1, 1)
    if len(reference) < k:
        raise DataError(f"reference_emb has {len(reference)} samples; k={k} neighbours need at least {k}. "
                        "Lower k or add reference samples.")
    return mean_knn_distance(metric_rows(target, metric), metric_rows(reference, metric), k, metric)


def ood_threshold(reference_emb: np.ndarray, k: int = 10, quantile: float = 0.95, metric: str = "cosine") -> float:
    """The ``quantile`` of the reference's own leave-one-out ``ood_scores``: a cut-off for flagging target rows.

    About ``1 - quantile`` of in-distribution target rows score above it.

    Raises:
        DataError: NaN, or fewer than ``k + 1`` reference rows.
        InputError: ``k`` < 1, ``quantile`` outside (0, 1), or an unknown metric.
    """
    k = check_int("k", k)
    quantile = check_fraction("quantile", quantile)
    metric = check_choice("metric", metric, OOD_METRICS)
    reference = finite_matrix("reference_emb", reference_emb, 1)
    if len(reference) < k + 1:
        raise DataError(f"reference_emb has {len(reference)} samples; leave-one-out with k={k} needs at least "
                        f"{k + 1}. Lower k or add reference samples.")
    rows = metric_rows(reference, metric)
    return float(np.quantile(mean_knn_distance(rows, rows, k, metric, leave_one_out=True), quantile))
