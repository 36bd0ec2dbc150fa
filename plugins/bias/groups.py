"""Underperforming groups: clusters of the embedding space scored like slices (no field needed); pure arrays.

cleanlab's underperforming-group idea, with KMeans and the slices' statistics (``underperforming_groups`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from curation_checks.bias.arrays import class_indices, class_list, correct_array, float_or_nan, json_float
from curation_checks.bias.settings import DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_MIN_SIZE
from curation_checks.bias.slices import KIND_VALUE, Candidate, SliceStat, score_candidates
from curation_checks.neighbours import unit_rows
from curation_checks.validation import check_fraction, check_int, finite_matrix

MAX_GROUPS = 50  # upper end of the automatic number of embedding groups
PCA_DIMS = 50  # embeddings are reduced to at most this many dimensions before clustering
GROUP_FIELD = "bias_group"  # where the group ids of the scored samples are stored


@dataclass(frozen=True)
class GroupSearch:
    """Result of ``underperforming_groups``: per-sample group ids and the tested groups, worst first.

    Group ids are renumbered by rank: group 0 is the worst tested group, untested (small) groups come last.
    Every group is a ``SliceStat`` of kind ``"value"`` over ``field`` (the field the ids are stored in).
    """

    assignments: np.ndarray
    groups: tuple[SliceStat, ...]
    n_groups: int
    num_samples: int
    accuracy: float
    alpha: float
    confidence: float
    min_size: int
    num_small: int
    random_state: int
    field: str
    method: str

    @property
    def significant(self) -> tuple[SliceStat, ...]:
        """The groups significantly worse than the rest."""
        return tuple(g for g in self.groups if g.significant)

    def to_dict(self) -> dict:
        """Plain JSON types; the per-sample assignments are left out (they are stored as a field)."""
        return {"groups": [g.to_dict() for g in self.groups], "n_groups": self.n_groups,
                "num_samples": self.num_samples, "accuracy": json_float(self.accuracy), "alpha": self.alpha,
                "confidence": self.confidence, "min_size": self.min_size, "num_small": self.num_small,
                "num_significant": len(self.significant), "random_state": self.random_state, "field": self.field,
                "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GroupSearch":
        """Rebuild from ``to_dict`` output (``assignments`` empty)."""
        return cls(np.zeros(0, dtype=np.int64), tuple(SliceStat.from_dict(g) for g in data["groups"]),
                   data["n_groups"], data["num_samples"], float_or_nan(data["accuracy"]), data["alpha"],
                   data["confidence"], data["min_size"], data["num_small"], data["random_state"], data["field"],
                   data["method"])


def default_n_groups(num_samples: int, min_size: int = DEFAULT_MIN_SIZE) -> int:
    """About five times ``min_size`` samples per group, between 2 and ``MAX_GROUPS``."""
    return int(min(MAX_GROUPS, max(2, round(num_samples / (5 * min_size)))))


def cluster_embeddings(embeddings: np.ndarray, n_groups: int, random_state: int = 0) -> np.ndarray:
    """KMeans cluster id per row of L2-normalised, PCA-reduced embeddings (deterministic for ``random_state``)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    unit = unit_rows(np.asarray(embeddings, dtype=np.float64))
    dims = min(PCA_DIMS, unit.shape[1], unit.shape[0] - 1)
    if dims >= 2 and dims < unit.shape[1]:
        unit = PCA(n_components=dims, svd_solver="full").fit_transform(unit)
    kmeans = KMeans(n_clusters=n_groups, n_init=3, random_state=random_state)
    return kmeans.fit_predict(unit).astype(np.int64)


def underperforming_groups(embeddings: np.ndarray, correct: Sequence[bool] | np.ndarray, n_groups: int | None = None,
                           min_size: int = DEFAULT_MIN_SIZE, alpha: float = DEFAULT_ALPHA,
                           confidence: float = DEFAULT_CONFIDENCE,
                           labels: Sequence | np.ndarray | None = None, classes: Sequence[str] | None = None,
                           random_state: int = 0, field: str = GROUP_FIELD) -> GroupSearch:
    """Clusters of the embedding space where the model is significantly less accurate than elsewhere.

    cleanlab's ``underperforming_group`` issue manager clusters a kNN graph with DBSCAN and scores each cluster by
    its mean self-confidence relative to the whole dataset. We keep the idea (cluster, then score each cluster
    against the rest) and change two things:

    - **KMeans** (scikit-learn, ``n_init=3``) on L2-normalised embeddings reduced by PCA to at most 50 dimensions,
      instead of DBSCAN: DBSCAN's ``eps`` is a distance scale that has to be re-tuned for every model and dataset,
      on CNN features it tends to return one giant cluster plus "noise" samples that belong to no group, and the
      kNN graph costs O(N^2) distances. KMeans is linear in N, deterministic for a fixed ``random_state``, gives
      every sample a group (so ``bias_group`` is defined everywhere), and ``n_groups`` sets the granularity
      directly. Its cost: convex partitions may cut a planted group in pieces; each piece is still tested.
      (HDBSCAN has DBSCAN's noise label and is slower.)
    - **Accuracy with statistics** instead of a confidence ratio: a Wilson interval per group, a one-sided Fisher
      exact test against all other samples, Holm-corrected over the groups, exactly as ``slice_performance``
      (cleanlab flags only the single worst cluster, by a fixed ratio threshold, without a test).

    Args:
        embeddings: (N, D) features, e.g. the fixed model's penultimate layer.
        correct: per sample, whether the out-of-sample prediction equals the label.
        n_groups: number of clusters; default ``default_n_groups(N, min_size)`` (about 5 x min_size per group).
        min_size: groups with fewer samples are not tested.
        alpha, confidence: as in ``slice_performance``.
        labels, classes: optional labels (indices or names) to describe each group's most common classes.
        random_state: seeds KMeans.
        field: the field name the group ids will be stored in (for ``slice_view``).

    Raises:
        InputError: bad parameters.
        DataError: shapes that do not match, NaN embeddings, fewer samples than groups.
    """
    correct = correct_array(correct)
    min_size = check_int("min_size", min_size)
    alpha = check_fraction("alpha", alpha)
    confidence = check_fraction("confidence", confidence)
    random_state = check_int("random_state", random_state, 0)
    matrix = finite_matrix("embeddings", embeddings)
    if len(matrix) != len(correct):
        raise DataError(f"{len(matrix)} embeddings but {len(correct)} correctness values; pass one per sample.")
    n = len(matrix)
    n_groups = default_n_groups(n, min_size) if n_groups is None else check_int("n_groups", n_groups, 2)
    if n < n_groups:
        raise DataError(f"{n} samples cannot form {n_groups} groups; pass a smaller `n_groups` or more samples.")
    label_index = None
    if labels is not None:
        if classes is None:
            raise InputError("Pass classes together with labels.")
        classes = class_list(classes)
        label_index = class_indices("labels", labels, classes)
        if len(label_index) != n:
            raise DataError(f"{len(label_index)} labels for {n} samples; pass one per sample.")

    clusters = cluster_embeddings(matrix, n_groups, int(random_state))
    candidates = []
    for cluster in range(n_groups):
        members = np.flatnonzero(clusters == cluster)
        composition: tuple[tuple[str, float], ...] = ()
        if label_index is not None and len(members):
            counts = np.bincount(label_index[members], minlength=len(classes))
            top = np.argsort(-counts, kind="stable")[:3]
            composition = tuple((classes[i], float(counts[i] / len(members))) for i in top if counts[i] > 0)
        candidates.append(Candidate(field, KIND_VALUE, f"group {cluster}", members, cluster,
                                     composition=composition))
    groups, small = score_candidates(candidates, correct, min_size, alpha, confidence)
    # Renumber: rank order for tested groups, then the rest by their original id.
    tested_ids = [g.value for g in groups]
    untested = sorted(set(range(n_groups)) - set(tested_ids))
    order = tested_ids + untested
    new_id = {old: new for new, old in enumerate(order)}
    assignments = np.asarray([new_id[c] for c in range(n_groups)], dtype=np.int64)[clusters]
    groups = [SliceStat(**{**{f.name: getattr(g, f.name) for f in fields(g)},
                           "value": new_id[g.value], "label": f"group {new_id[g.value]}"}) for g in groups]
    dims = min(PCA_DIMS, matrix.shape[1], n - 1)
    reduced = f"reduced by PCA to {dims} dimensions" if 2 <= dims < matrix.shape[1] else "not reduced"
    method = (f"KMeans (n_init=3) into {n_groups} groups on L2-normalised embeddings ({reduced}); "
              "one-sided Fisher exact vs the rest, Holm-corrected")
    return GroupSearch(assignments, tuple(groups), n_groups, n, float(correct.mean()), alpha, confidence, min_size,
                       small, int(random_state), field, method)
