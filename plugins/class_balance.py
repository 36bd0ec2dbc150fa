"""Class balance: counts per class, imbalance ratio, and the divergence from a reference distribution.

``imbalance_ratio`` is the one definition of the ratio: this check and the bias report's class distribution
(``curation_checks.bias.distribution``) both call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from active_learning.errors import DataError
from curation_checks.base import CheckInputs, CheckResult


def imbalance_ratio(counts: Sequence[int] | np.ndarray) -> float:
    """The largest class count over the smallest non-zero one; NaN when no class has a sample.

    Empty classes are left out of the ratio and reported apart (``missing_classes``): a class without any sample is
    a different finding from a rare one (there is nothing to learn it from, not too little), and dividing by its 0
    would make the ratio infinite for every dataset with one empty class, however balanced the others are (and
    infinity is no JSON number). Counts [50, 10, 0] give 5.0, with the third class missing.
    """
    present = np.asarray(counts)[np.asarray(counts) > 0]
    return float(present.max() / present.min()) if present.size else float("nan")


def missing_classes(counts: Sequence[int] | np.ndarray, classes: Sequence[str]) -> list[str]:
    """The classes without any sample, in class order."""
    return [str(c) for c, n in zip(classes, counts) if n == 0]


@dataclass(frozen=True)
class ClassBalance:
    """Counts of each class among labeled samples; flags classes under ``rare_fraction`` of the largest.

    ``imbalance_ratio`` in the summary is largest / smallest non-zero count (``imbalance_ratio``); empty classes are
    listed in ``missing_classes`` (and are rare).
    """

    reference: Sequence[float] | None = None
    rare_fraction: float = 0.2

    name: ClassVar[str] = "class_balance"
    description: ClassVar[str] = "Class counts, imbalance ratio and rare classes"
    requires: ClassVar[tuple[str, ...]] = ("labels",)
    field_prefix: ClassVar[str] = "class_balance"

    def run(self, inputs: CheckInputs) -> CheckResult:
        labels = inputs.labels
        if labels is None:
            raise DataError("class_balance needs labels; import a dataset with a ground-truth field first.")
        labeled = labels[labels >= 0]
        if len(labeled) == 0:
            raise DataError("class_balance found no labeled samples in the view.")
        k = len(inputs.classes)
        counts = np.bincount(labeled, minlength=k)
        largest = int(counts.max())
        share = counts / counts.sum()
        summary = {
            "counts": {c: int(n) for c, n in zip(inputs.classes, counts)},
            "num_labeled": int(len(labeled)),
            "num_unlabeled": int((labels < 0).sum()),
            "imbalance_ratio": imbalance_ratio(counts),
            "rare_classes": [c for c, n in zip(inputs.classes, counts) if n < self.rare_fraction * largest],
            "missing_classes": missing_classes(counts, inputs.classes),
        }
        if self.reference is not None:
            ref = np.asarray(self.reference, dtype=np.float64)
            if ref.shape != (k,) or not np.isfinite(ref).all() or (ref < 0).any() or ref.sum() <= 0:
                raise DataError(f"The reference distribution must hold {k} non-negative numbers, one per class.")
            ref = ref / ref.sum()
            summary["total_variation_to_reference"] = float(0.5 * np.abs(share - ref).sum())
        # Per sample: how common the sample's class is relative to the largest class (1 = most common).
        frequency = np.where(labels >= 0, counts[np.clip(labels, 0, k - 1)] / largest, np.nan)
        return CheckResult(self.name, per_sample={"class_frequency": frequency.astype(np.float64)}, summary=summary)
