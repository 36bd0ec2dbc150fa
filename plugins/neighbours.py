"""Neighbour search in embedding space, shared by the near-duplicate and outlier checks and the drift OOD scores.

- ``normalised_embeddings``: a check's embeddings, validated and scaled to unit length.
- ``cosine_neighbors``: the exact ``k`` nearest *other* rows by cosine distance: scikit-learn's brute-force
  ``NearestNeighbors`` on unit rows with the Euclidean metric (its chunked, BLAS-backed kernels), converted with
  ``d_cos = d_euc**2 / 2``; queries run in blocks of ``QUERY_BLOCK`` rows, so memory stays bounded.
- ``mean_knn_distance``: the mean distance of query rows to their ``k`` nearest reference rows (cosine or
  Euclidean), one block of similarities at a time; used for the drift OOD scores and their leave-one-out threshold.
"""

from __future__ import annotations

import numpy as np

from active_learning.errors import DataError
from curation_checks.base import CheckInputs

QUERY_BLOCK = 4096  # query rows per neighbour search call
BLOCK_ELEMENTS = 4_000_000  # query-by-reference similarities held at once in mean_knn_distance (32 MB of float64)
KNN_METRICS = ("cosine", "euclidean")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (cosine distance 1 to everything)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1).astype(matrix.dtype)


def normalised_embeddings(inputs: CheckInputs, check: str) -> np.ndarray:
    """The embeddings, validated and scaled to unit L2 norm (all-zero rows stay zero)."""
    if inputs.embeddings is None:
        raise DataError(f"{check} needs embeddings: run `curation model` first.")
    embeddings = np.asarray(inputs.embeddings)
    if embeddings.dtype not in (np.float32, np.float64):
        embeddings = embeddings.astype(np.float64)
    n = len(inputs.sample_ids)
    if embeddings.ndim != 2 or embeddings.shape[0] != n or embeddings.shape[1] == 0:
        raise DataError(f"Expected one embedding vector per sample ({n} rows); got shape {embeddings.shape}.")
    if n < 2:
        raise DataError(f"{check} compares samples with each other: select at least 2 samples.")
    if not np.isfinite(embeddings).all():
        raise DataError("Some embeddings hold NaN or infinite values; recompute the model outputs.")
    return unit_rows(embeddings)


def euclidean_to_cosine(distances: np.ndarray) -> np.ndarray:
    """Cosine distances of unit rows from their Euclidean distances (``d_euc**2 / 2``, clipped to [0, 2])."""
    return np.clip(np.asarray(distances, dtype=np.float64) ** 2 / 2.0, 0.0, 2.0)


def cosine_neighbors(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances and indices of the ``k`` nearest *other* rows of each row of ``unit`` (unit-norm rows).

    A row is never its own neighbour, even when exact copies tie with it at distance 0.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(unit)
    if not 1 <= k <= n - 1:
        raise DataError(f"Cannot take {k} neighbours among {n} samples.")
    index = NearestNeighbors(n_neighbors=k + 1, metric="euclidean", algorithm="brute").fit(unit)
    distances = np.empty((n, k), dtype=np.float64)
    indices = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, n)
        dist, idx = index.kneighbors(unit[start:stop], return_distance=True)
        rows = np.arange(start, stop)
        is_self = idx == rows[:, None]
        # Drop the row itself; when copies pushed it out of the k+1 list, drop the farthest instead.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones_like(is_self)
        keep[np.arange(len(rows)), drop] = False
        distances[start:stop] = dist[keep].reshape(-1, k)
        indices[start:stop] = idx[keep].reshape(-1, k)
    return euclidean_to_cosine(distances), indices


def metric_rows(matrix: np.ndarray, metric: str) -> np.ndarray:
    """The rows ``mean_knn_distance`` expects for ``metric``: unit rows for cosine, float64 rows for Euclidean."""
    return unit_rows(matrix) if metric == "cosine" else matrix.astype(np.float64, copy=False)


def mean_knn_distance(queries: np.ndarray, reference: np.ndarray, k: int, metric: str = "cosine",
                      leave_one_out: bool = False) -> np.ndarray:
    """Mean distance of each query row to its ``k`` nearest reference rows, in blocks of query rows.

    ``cosine`` expects unit rows (distance 1 - similarity, in [0, 2]); ``euclidean`` takes the rows as they are
    (``metric_rows`` prepares both). With ``leave_one_out`` the queries ARE the reference and row i never counts as
    its own neighbour. No validation: the callers check shapes, ``k`` and the metric.
    """
    block = max(1, BLOCK_ELEMENTS // len(reference))
    scores = np.empty(len(queries))
    reference_norms = np.einsum("ij,ij->i", reference, reference) if metric == "euclidean" else None
    for start in range(0, len(queries), block):
        stop = min(start + block, len(queries))
        similarity = queries[start:stop] @ reference.T
        if metric == "euclidean":  # -|q - r|^2 up to the constant |q|^2: larger = nearer, as for cosine
            similarity = 2.0 * similarity - reference_norms[None, :]
        if leave_one_out:
            similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        nearest = np.partition(similarity, -k, axis=1)[:, -k:]
        if metric == "euclidean":
            query_norms = np.einsum("ij,ij->i", queries[start:stop], queries[start:stop])[:, None]
            scores[start:stop] = np.sqrt(np.maximum(query_norms - nearest, 0.0)).mean(axis=1)
        else:
            scores[start:stop] = np.clip(1.0 - nearest, 0.0, 2.0).mean(axis=1)
    return scores
