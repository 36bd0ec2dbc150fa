"""Per-class precision, recall, F1 and support, macro/weighted F1, accuracy and the confusion matrix; pure arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from active_learning.errors import DataError
from curation_checks.bias.arrays import class_indices, class_list, float_or_nan, json_float


@dataclass(frozen=True)
class ClassMetrics:
    """Per-class precision/recall/F1/support, macro and weighted F1, accuracy, and the confusion matrix.

    ``confusion[i, j]`` counts samples whose given label is ``classes[i]`` and predicted class is ``classes[j]``.
    Precision is NaN for a class never predicted; F1 is NaN for a class neither given nor predicted (it is 0 for a
    class given but never predicted correctly). Macro F1 averages the defined F1s; weighted F1 weighs by support.
    """

    classes: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    predicted: np.ndarray  # how often each class was predicted
    accuracy: float
    macro_f1: float
    weighted_f1: float
    confusion: np.ndarray

    @property
    def num_samples(self) -> int:
        """Samples counted."""
        return int(self.support.sum())

    def worst_classes(self, n: int = 3) -> list[str]:
        """The ``n`` classes with the lowest F1 among those given (ties: lower recall, then name order)."""
        given = [i for i in range(len(self.classes)) if self.support[i] > 0]
        given.sort(key=lambda i: (self.f1[i], self.recall[i], i))
        return [self.classes[i] for i in given[:n]]

    def to_dict(self) -> dict:
        """Plain JSON types; NaN becomes None."""
        return {
            "classes": list(self.classes),
            "per_class": [
                {"class": c, "precision": json_float(p), "recall": json_float(r), "f1": json_float(f),
                 "support": int(s), "predicted": int(q)}
                for c, p, r, f, s, q in zip(self.classes, self.precision, self.recall, self.f1, self.support,
                                            self.predicted)
            ],
            "accuracy": json_float(self.accuracy),
            "macro_f1": json_float(self.macro_f1),
            "weighted_f1": json_float(self.weighted_f1),
            "num_samples": self.num_samples,
            "confusion_matrix": self.confusion.astype(int).tolist(),
            "confusion_axes": "rows = given label, columns = predicted class, in the order of classes",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassMetrics":
        """Rebuild from ``to_dict`` output."""
        rows = data["per_class"]
        return cls(
            classes=tuple(data["classes"]),
            precision=np.array([float_or_nan(r["precision"]) for r in rows]),
            recall=np.array([float_or_nan(r["recall"]) for r in rows]),
            f1=np.array([float_or_nan(r["f1"]) for r in rows]),
            support=np.array([r["support"] for r in rows], dtype=np.int64),
            predicted=np.array([r["predicted"] for r in rows], dtype=np.int64),
            accuracy=float_or_nan(data["accuracy"]),
            macro_f1=float_or_nan(data["macro_f1"]),
            weighted_f1=float_or_nan(data["weighted_f1"]),
            confusion=np.asarray(data["confusion_matrix"], dtype=np.int64).reshape(len(rows), len(rows)),
        )


def per_class_metrics(labels: Sequence | np.ndarray, predictions: Sequence | np.ndarray,
                      classes: Sequence[str]) -> ClassMetrics:
    """Precision, recall, F1 and support per class; labels and predictions are class indices or class names.

    Raises:
        DataError: empty or mismatched arrays, or a value that is not a class.
    """
    classes = class_list(classes)
    given = class_indices("labels", labels, classes)
    predicted = class_indices("predictions", predictions, classes)
    if len(given) != len(predicted):
        raise DataError(f"{len(given)} labels but {len(predicted)} predictions; pass one of each per sample.")
    if len(given) == 0:
        raise DataError("No samples to score: pass at least one label and prediction.")
    k = len(classes)
    confusion = np.bincount(given * k + predicted, minlength=k * k).reshape(k, k)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, np.nan)
        recall = np.where(support > 0, true_positive / support, np.nan)
        denominator = support + predicted_count  # 2TP + FP + FN
        f1 = np.where(denominator > 0, 2 * true_positive / denominator, np.nan)
    defined = ~np.isnan(f1)
    macro = float(f1[defined].mean()) if defined.any() else float("nan")
    weighted = float((np.nan_to_num(f1) * support).sum() / support.sum())
    return ClassMetrics(classes, precision, recall, f1, support.astype(np.int64), predicted_count.astype(np.int64),
                        float(true_positive.sum() / len(given)), macro, weighted, confusion.astype(np.int64))
