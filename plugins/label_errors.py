"""Label errors: cleanlab's confident learning over out-of-sample predicted probabilities.

Per labeled sample: a label quality score (``cleanlab.rank.get_label_quality_scores``; lower = more likely
mislabeled), an issue flag (``cleanlab.filter.find_label_issues``; by default ``auto``: ``predicted_neq_given`` for a trusted
model, ``prune_by_noise_rate`` otherwise), the
suggested label (the argmax of the probabilities), its probability (``confidence``) and a rank (1 = worst). The
summary carries the model's accuracy against the given labels and the trust verdict (``active_learning.model.trust``):
below the bar the flags are the model's mistakes as much as label errors, and every front end says so. Unlabeled samples (label -1) are skipped and counted. The summary holds the
estimated noise matrix ``P(given label | true label)`` (``cleanlab.count.estimate_latent`` over the confident joint)
and the number of flagged samples per (given, suggested) pair.

The probabilities must be out-of-sample (cross-validated), as ``compute_model_outputs`` writes them: in-sample
probabilities of a model that memorised its labels agree with every label, errors included.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.model.trust import model_trust
from curation_checks.base import CheckInputs, CheckResult

FILTER_METHODS = (
    "auto",
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)
RANK_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_RANK_METHOD = "self_confidence"  # cleanlab's label quality score that orders the suspects
#: The flagging rule (docs/model.md): ``auto`` flags with ``predicted_neq_given`` (the most likely class is not the
#: given label: the best F1 for strong models in cleanlab's CIFAR-10N benchmark, and the rule that finds the digits'
#: errors with TTA probabilities) when the model is trusted, and with ``prune_by_noise_rate`` when it is not (on
#: CIFAR-10 photos at accuracy 0.74 with 10% planted noise: F1 0.57 against 0.45). The run records the rule used.
DEFAULT_FILTER = "auto"
STRONG_MODEL_FILTER = "predicted_neq_given"
WEAK_MODEL_FILTER = "prune_by_noise_rate"
ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LabelErrors:
    """Confident learning: flag and rank samples whose given label disagrees with out-of-sample probabilities."""

    filter_by: str = DEFAULT_FILTER
    rank_method: str = DEFAULT_RANK_METHOD

    name: ClassVar[str] = "label_errors"
    description: ClassVar[str] = "Likely label errors (cleanlab confident learning on out-of-sample probabilities)"
    requires: ClassVar[tuple[str, ...]] = ("labels", "pred_probs")
    field_prefix: ClassVar[str] = "label_issue"

    def __post_init__(self) -> None:
        if self.filter_by not in FILTER_METHODS:
            raise InputError(f"`filter_by` must be one of {', '.join(FILTER_METHODS)}; got {self.filter_by!r}.")
        if self.rank_method not in RANK_METHODS:
            raise InputError(f"`rank_method` must be one of {', '.join(RANK_METHODS)}; got {self.rank_method!r}.")

    def run(self, inputs: CheckInputs) -> CheckResult:
        from cleanlab.count import compute_confident_joint, estimate_latent
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        labels, pred_probs = _validated(inputs)
        classes = list(inputs.classes)
        n, k = pred_probs.shape
        labeled = np.flatnonzero(labels >= 0)
        given = labels[labeled]
        probs = pred_probs[labeled]

        counts = np.bincount(given, minlength=k)
        small_classes = [c for c, count in zip(classes, counts) if 0 < count < 2]
        suggested_index = probs.argmax(axis=1)
        accuracy = float((suggested_index == given).mean())
        trust = model_trust(accuracy, source="agreement of the probabilities with the given labels")
        rule = self.filter_by
        if rule == "auto":
            rule = STRONG_MODEL_FILTER if trust.trusted else WEAK_MODEL_FILTER
        with warnings.catch_warnings():
            # cleanlab warns per class with too few examples to prune; the summary lists those classes instead.
            warnings.filterwarnings("ignore", message="May not flag all label issues")
            confident_joint = compute_confident_joint(given, probs)
            issue_mask = find_label_issues(
                given, probs, filter_by=rule, n_jobs=1,  # no process pool inside a FiftyOne process
                confident_joint=None if rule == "confident_learning" else confident_joint,
            )
            quality = get_label_quality_scores(given, probs, method=self.rank_method)
            _, noise_matrix, _ = estimate_latent(confident_joint, given)
        order = np.argsort(quality, kind="stable")  # worst first; ties keep sample order
        ranks = np.empty(len(labeled), dtype=np.int64)
        ranks[order] = np.arange(1, len(labeled) + 1)

        score = np.full(n, np.nan, dtype=np.float64)
        score[labeled] = quality
        flag = np.zeros(n, dtype=bool)
        flag[labeled] = issue_mask
        suggested = np.full(n, None, dtype=object)
        suggested[labeled] = [classes[i] for i in suggested_index]
        confidence = np.full(n, np.nan, dtype=np.float64)
        confidence[labeled] = probs[np.arange(len(labeled)), suggested_index]
        rank = np.full(n, None, dtype=object)
        rank[labeled] = [int(r) for r in ranks]

        pair_counts = Counter(
            (classes[g], classes[s]) for g, s in zip(given[issue_mask], suggested_index[issue_mask])
        )
        pairs = [
            {"given": g, "suggested": s, "count": int(c)}
            for (g, s), c in sorted(pair_counts.items(), key=lambda item: (-item[1], item[0]))
        ]
        summary = {
            "num_scored": int(len(labeled)),
            "num_issues": int(issue_mask.sum()),
            "num_unlabeled_skipped": int(n - len(labeled)),
            "filter_by": rule,
            "filter_rule": self.filter_by,
            "rank_method": self.rank_method,
            "classes": classes,
            "noise_matrix": [[float(v) for v in row] for row in noise_matrix],
            "noise_matrix_axes": "noise_matrix[i][j] = P(given label = classes[i] | true label = classes[j]); "
                                 "a column is all zeros when no sample was confidently counted in class j",
            "pairs": pairs,
            "small_classes": small_classes,
            "model_accuracy": accuracy,
            "trust": trust.to_dict(),
        }
        return CheckResult(
            self.name,
            per_sample={"score": score, "flag": flag, "suggested": suggested, "rank": rank, "confidence": confidence},
            summary=summary,
        )


def _validated(inputs: CheckInputs) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities checked for what cleanlab needs; rows of unlabeled samples are not inspected."""
    if inputs.labels is None:
        raise DataError("label_errors needs labels; import a dataset with a ground-truth field first.")
    if inputs.pred_probs is None:
        raise DataError("label_errors needs out-of-sample predicted probabilities: run `curation model` first.")
    labels = np.asarray(inputs.labels)
    pred_probs = np.asarray(inputs.pred_probs, dtype=np.float64)
    n, k = len(inputs.sample_ids), len(inputs.classes)
    if labels.shape != (n,):
        raise DataError(f"Expected {n} labels, one per sample; got an array of shape {labels.shape}.")
    if pred_probs.ndim != 2 or pred_probs.shape != (n, k):
        raise DataError(
            f"The predicted probabilities have shape {pred_probs.shape} but the view has {n} samples and {k} classes "
            f"{list(inputs.classes)[:10]}: recompute the model outputs with the current class list."
        )
    if k < 2:
        raise DataError(f"label_errors needs at least 2 classes; the class list is {list(inputs.classes)}.")
    if (labels >= k).any() or (labels < -1).any():
        raise DataError(f"Labels must be class indices in [0, {k - 1}] or -1 for unlabeled.")
    labeled = labels >= 0
    probs = pred_probs[labeled]
    bad_rows = ~np.isfinite(probs).all(axis=1)
    if bad_rows.any():
        raise DataError(f"{int(bad_rows.sum())} labeled samples have NaN or infinite predicted probabilities; "
                        "recompute the model outputs.")
    if (probs < 0).any():
        raise DataError("Predicted probabilities must not be negative; recompute the model outputs.")
    off = np.abs(probs.sum(axis=1) - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        raise DataError(f"{int(off.sum())} labeled samples have unnormalised predicted probabilities (rows must sum "
                        f"to 1 within {ROW_SUM_TOLERANCE}); store softmax outputs, not logits or scores.")
    present = np.unique(labels[labeled])
    if len(present) < 2:
        raise DataError(f"label_errors needs labeled samples of at least 2 classes; the view has "
                        f"{int(labeled.sum())} labeled samples of {len(present)} class(es). Widen the view.")
    return labels.astype(np.int64), pred_probs
