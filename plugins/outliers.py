"""Outliers: samples far from their nearest neighbours in embedding space.

Follows cleanlab's ``OutlierIssueManager`` on features: the mean cosine distance ``d`` to the ``k`` nearest other
samples becomes a score ``exp(-d / scale)`` in (0, 1], ``scale`` being the median of ``d`` over the view, so LOWER
means more outlying and a typical sample scores about exp(-1) = 0.37. By default a sample is flagged when ``d``
exceeds the upper fence ``Q3 + iqr_multiplier * IQR`` of the distances (cleanlab's default threshold 0.37037 is
``iqr_multiplier = 1 / 0.37037 - 1 = 1.7``), i.e. when its score is below ``exp(-fence / scale)``; an absolute
score ``threshold`` overrides that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from active_learning.errors import InputError
from curation_checks.base import CheckInputs, CheckResult
from curation_checks.neighbours import cosine_neighbors, normalised_embeddings
from curation_checks.validation import check_int

SCALE_FLOOR = 100 * np.finfo(np.float64).eps  # as cleanlab: the scale never reaches 0


@dataclass(frozen=True)
class Outliers:
    """Score each sample by its mean distance to its k nearest neighbours; flag the far tail."""

    k: int = 10
    threshold: float | None = None  # absolute score threshold in [0, 1]; None: the IQR fence on distances
    iqr_multiplier: float = 1.7  # cleanlab's default (threshold 0.37037 -> 1 / 0.37037 - 1)

    name: ClassVar[str] = "outliers"
    description: ClassVar[str] = "Outliers (mean distance to the nearest neighbours in embedding space)"
    requires: ClassVar[tuple[str, ...]] = ("embeddings",)
    field_prefix: ClassVar[str] = "outlier"

    def __post_init__(self) -> None:
        check_int("k", self.k)
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise InputError(f"threshold is a score in [0, 1]; got {self.threshold}.")
        if not self.iqr_multiplier >= 0:
            raise InputError(f"iqr_multiplier must be non-negative; got {self.iqr_multiplier}.")

    def run(self, inputs: CheckInputs) -> CheckResult:
        unit = normalised_embeddings(inputs, self.name)
        k = int(min(self.k, len(unit) - 1))
        distances, _ = cosine_neighbors(unit, k)
        mean_distance = distances.mean(axis=1)
        scale = float(max(np.median(mean_distance), SCALE_FLOOR))
        score = np.exp(-mean_distance / scale)
        if self.threshold is None:
            q1, q3 = np.percentile(mean_distance, [25, 75])
            distance_threshold = float(q3 + self.iqr_multiplier * (q3 - q1))
            threshold = float(np.exp(-distance_threshold / scale))
            rule = f"distance above Q3 + {self.iqr_multiplier} x IQR of the mean k-NN distances"
        else:
            threshold = float(self.threshold)
            distance_threshold = float(-np.log(threshold) * scale) if threshold > 0 else None
            rule = "absolute score threshold"
        flag = score < threshold
        summary = {
            "num_flagged": int(flag.sum()),
            "threshold": threshold,
            "distance_threshold": distance_threshold,  # None: nothing can be flagged
            "threshold_rule": rule,
            "k": k,
            "iqr_multiplier": float(self.iqr_multiplier),
            "scale": scale,
            "mean_score": float(score.mean()),
            "metric": "cosine",
        }
        return CheckResult(self.name, per_sample={"score": score, "flag": flag}, summary=summary)
