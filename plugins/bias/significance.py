"""The interval and the tests every slice and group is scored with: Wilson, one-sided Fisher exact, Holm.

- **Wilson score interval** for a slice's accuracy: unlike the normal (Wald) interval it stays inside [0, 1] and
  keeps close to its nominal coverage for small slices and accuracies near 1, which is where slices live.
- **One-sided Fisher exact test** of the slice against its complement (all other scored samples): exact at any
  size, so one test serves slices of 20 and of 20,000 samples; one-sided because only "worse" is a finding.
- **Holm's step-down correction** over every tested slice (all fields together): it controls the family-wise error
  rate like Bonferroni but rejects more; a search over dozens of slices otherwise "finds" one by chance.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(nan, nan)`` for zero trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, where rounding would stray
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def worse_p_values(n_correct: np.ndarray, sizes: np.ndarray, total_correct: int | np.ndarray,
                   n: int | np.ndarray) -> np.ndarray:
    """One-sided Fisher exact test per slice (is the accuracy inside lower than outside?), vectorised.

    The p-value of ``scipy.stats.fisher_exact(table, alternative="less")`` is the hypergeometric CDF of the slice's
    correct count (population ``n``, ``total_correct`` successes, ``sizes`` draws), which is how scipy computes it.
    """
    if len(sizes) == 0:
        return np.zeros(0)
    return np.clip(stats.hypergeom.cdf(n_correct, n, total_correct, sizes), 0.0, 1.0)
