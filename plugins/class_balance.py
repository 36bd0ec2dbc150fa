"""Class balance: counts per class, imbalance ratio, and the divergence from a reference distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from active_learning.errors import DataError
from curation_checks.base import CheckInputs, CheckResult


@dataclass(frozen=True)
class ClassBalance:
    """Counts of each class among labeled samples; flags classes under ``rare_fraction`` of the largest."""

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
        smallest = int(counts.min())
        share = counts / counts.sum()
        summary = {
            "counts": {c: int(n) for c, n in zip(inputs.classes, counts)},
            "num_labeled": int(len(labeled)),
            "num_unlabeled": int((labels < 0).sum()),
            "imbalance_ratio": float(largest / smallest) if smallest else float("inf"),
            "rare_classes": [c for c, n in zip(inputs.classes, counts) if n < self.rare_fraction * largest],
            "missing_classes": [c for c, n in zip(inputs.classes, counts) if n == 0],
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
