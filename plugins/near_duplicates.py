"""Near duplicates: samples whose embedding lies unusually close to another's (cosine distance).

Like cleanlab's ``NearDuplicateIssueManager``: by default a sample is flagged when its nearest other sample is
closer than ``relative_threshold`` (0.13) times the median nearest-neighbour distance of the view, so the cut
adapts to how spread the embeddings are; an absolute cosine-distance ``threshold`` overrides it. Flagged samples
within the threshold of each other form groups (connected components), e.g. three copies of one image.

The neighbour search is exact (``curation_checks.neighbours.cosine_neighbors``, shared with the outlier check):
scikit-learn's brute-force ``NearestNeighbors`` on L2-normalised embeddings, in blocks of queries, so memory stays
bounded; it is fine up to ~100k samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from active_learning.errors import InputError
from curation_checks.base import CheckInputs, CheckResult
from curation_checks.neighbours import QUERY_BLOCK, cosine_neighbors, euclidean_to_cosine, normalised_embeddings

MEDIAN_FLOOR = 1e-6  # cleanlab's EPSILON: keeps the relative threshold above 0 when most samples are copies
#: A group larger than this is unlikely to be copies of one image: the summary counts such groups and the report
#: says the embeddings may be too coarse to tell images apart (a weak model's embeddings put unrelated photos close).
LARGE_GROUP = 10


@dataclass(frozen=True)
class NearDuplicates:
    """Flag samples closer to another sample than a threshold, and group connected near-duplicates."""

    threshold: float | None = None  # absolute cosine distance; None: relative_threshold * median NN distance
    relative_threshold: float = 0.13  # cleanlab's default for the near_duplicate issue type

    name: ClassVar[str] = "near_duplicates"
    description: ClassVar[str] = "Near-duplicate samples (nearest neighbour in embedding space)"
    requires: ClassVar[tuple[str, ...]] = ("embeddings",)
    field_prefix: ClassVar[str] = "near_duplicate"

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0 <= self.threshold <= 2:
            raise InputError(f"threshold is a cosine distance in [0, 2]; got {self.threshold}.")
        if not self.relative_threshold >= 0:
            raise InputError(f"relative_threshold must be non-negative; got {self.relative_threshold}.")

    def run(self, inputs: CheckInputs) -> CheckResult:
        unit = normalised_embeddings(inputs, self.name)
        distances, indices = cosine_neighbors(unit, 1)
        nearest_distance, nearest = distances[:, 0], indices[:, 0]
        median = float(np.median(nearest_distance))
        if self.threshold is None:
            threshold = float(self.relative_threshold * max(median, MEDIAN_FLOOR))
            rule = f"relative: {self.relative_threshold} x median nearest-neighbour distance"
        else:
            threshold = float(self.threshold)
            rule = "absolute cosine distance"
        flag = nearest_distance < threshold
        group = _groups(unit, flag, nearest, threshold)
        sizes = np.bincount(group[group >= 0]) if flag.any() else np.zeros(0, dtype=np.int64)
        summary = {
            "num_flagged": int(flag.sum()),
            "num_groups": int(len(sizes)),
            "largest_group": int(sizes.max()) if len(sizes) else 0,
            "num_large_groups": int((sizes > LARGE_GROUP).sum()),
            "large_group_size": LARGE_GROUP,
            "threshold": threshold,
            "threshold_rule": rule,
            "relative_threshold": float(self.relative_threshold),
            "median_nearest_distance": median,
            "metric": "cosine",
        }
        nearest_id = np.asarray([inputs.sample_ids[j] for j in nearest], dtype=object)
        return CheckResult(
            self.name,
            per_sample={"score": nearest_distance, "flag": flag, "group": group, "nearest_id": nearest_id},
            summary=summary,
        )


def _groups(unit: np.ndarray, flag: np.ndarray, nearest: np.ndarray, threshold: float) -> np.ndarray:
    """Group id per sample: star groups of flagged samples within ``threshold`` of a centre; -1 if unflagged.

    Linking every pair within the threshold and taking connected components chains: on embeddings of a weak model
    (CIFAR-10 photos, docs/label_errors.md) one component swallowed hundreds of unrelated images. Instead, within
    each component the sample with the most neighbours becomes a centre and takes its unassigned neighbours, and
    so on; a sample left alone joins its nearest neighbour's group. Every member is then within the threshold of
    its group's centre or of its nearest neighbour in the group, and exact copies stay together. Only flagged
    samples can lie within the threshold of each other, so only they are queried. Ids count from 0 in order of
    each group's first sample.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(unit)
    group = np.full(n, -1, dtype=np.int64)
    flagged = np.flatnonzero(flag)
    if len(flagged) == 0:
        return group
    neighbours: dict[int, np.ndarray] = {}
    index = NearestNeighbors(metric="euclidean", algorithm="brute").fit(unit)
    radius = float(np.sqrt(2.0 * threshold))
    for start in range(0, len(flagged), QUERY_BLOCK):
        rows = flagged[start:start + QUERY_BLOCK]
        dist, idx = index.radius_neighbors(unit[rows], radius=radius, return_distance=True)
        for row, row_dist, row_idx in zip(rows, dist, idx):
            close = row_idx[(euclidean_to_cosine(row_dist) < threshold) & (row_idx != row)]
            neighbours[int(row)] = np.union1d(close, [nearest[row]]).astype(np.int64)
    star = np.full(n, -1, dtype=np.int64)
    order = sorted(neighbours, key=lambda i: (-len(neighbours[i]), i))  # most-connected first, ties by index
    for centre in order:
        if star[centre] >= 0:
            continue
        free = [int(j) for j in neighbours[centre] if star[j] < 0]
        if not free:
            continue  # alone: joins its nearest neighbour's group below
        star[centre] = centre
        star[free] = centre
    for i in flagged:
        if star[i] < 0:
            star[i] = star[nearest[i]] if star[nearest[i]] >= 0 else nearest[i]
    first_seen: dict[int, int] = {}
    for i in flagged:
        group[i] = first_seen.setdefault(int(star[i]), len(first_seen))
    return group
