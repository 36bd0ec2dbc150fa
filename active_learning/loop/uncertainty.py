"""Uncertainty strategies: modAL's scores of the predicted probabilities, the top ``n`` with stable ties.

Pure functions on arrays that ``active_learning.loop.strategies.select`` has already validated; call them through
``select`` unless the arrays are known to be clean. modAL's own ``multi_argmax`` uses ``argpartition`` and breaks
ties arbitrarily, so only its scores are used here: among equal scores the lowest pool index comes first.
"""

from __future__ import annotations

import numpy as np

from active_learning.loop.modal_compat import ProbaModel, modal_uncertainty


def top_n(priority: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest priorities, largest first; ties: lowest index first (stable)."""
    return np.argsort(-priority, kind="stable")[:n].astype(np.intp, copy=False)


def modal_scores(measure: str, probs: np.ndarray) -> np.ndarray:
    """A modAL uncertainty measure (``classifier_uncertainty``/``_margin``/``_entropy``) of precomputed probs."""
    measure_fn = getattr(modal_uncertainty(), measure)
    return np.asarray(measure_fn(ProbaModel(probabilities=probs), np.arange(len(probs))), dtype=np.float64)


def least_confidence(probs: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` items with the largest ``1 - max_k p_k`` (modAL ``classifier_uncertainty``); ties: lowest index."""
    return top_n(modal_scores("classifier_uncertainty", probs), n)


def margin(probs: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` items with the smallest gap between the two most likely classes (modAL ``classifier_margin``).

    With a single class every margin is 0, so the first ``n`` indices are returned.
    """
    return top_n(-modal_scores("classifier_margin", probs), n)


def entropy(probs: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` items with the largest predictive entropy ``-sum_k p_k log p_k`` (modAL ``classifier_entropy``)."""
    return top_n(modal_scores("classifier_entropy", probs), n)
