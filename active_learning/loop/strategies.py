"""Active-learning query strategies: the registry, the validation of the pool, and ``select``.

A strategy is a small pure function from pool arrays to the pool indices to label next. It is registered once, in
``REGISTRY`` below, with what it reads; that registration is the only place its needs are declared. ``select``
looks the name up, validates the arrays once and calls the function with exactly the inputs it declared, so a
strategy cannot see an input it did not declare. ``REQUIRES`` (what the loop must compute for a strategy) is derived
from the registrations, and registering a function whose parameters disagree with its declaration fails at import.

==================== ================================================================================
name                 picks
==================== ================================================================================
``random``           a uniform sample without replacement (the baseline)
``least_confidence`` largest ``1 - max_k p_k`` (modAL ``classifier_uncertainty``)
``margin``           smallest gap ``p_(1) - p_(2)`` between the top two classes (modAL ``classifier_margin``)
``entropy``          largest ``-sum_k p_k log p_k`` (modAL ``classifier_entropy``)
``ranked_batch``     Cardoso et al.'s ranked batch: uncertainty traded against distance to the labeled items
                     and the picks so far
``k_center_greedy``  core-set (Sener & Savarese): the item farthest from every center
``margin_diverse``   diverse mini-batch (Zhdanov 2019): the ``10 n`` smallest margins, clustered by
                     margin-weighted k-means into ``n`` clusters, the item nearest each center
``badge``            BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings
                     ``(p - onehot(argmax p)) x embedding``
==================== ================================================================================

Every strategy returns an ``np.intp`` array of distinct pool indices of length ``min(n, pool size)``, in the order
picked (most wanted first); ties go to the lowest pool index. The same inputs and seed give the same indices.
The functions live in ``active_learning.loop.uncertainty`` and ``active_learning.loop.diversity``.

Every array passed to ``select`` is validated, even one the strategy does not read: NaN probabilities or pools of
different sizes mean broken model outputs, and selecting anyway would hide that.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.loop.diversity import RandomState, badge, k_center_greedy, margin_diverse, ranked_batch
from active_learning.loop.uncertainty import entropy, least_confidence, margin

# What a strategy may read. "probs" (n_pool, n_classes) and "embeddings" (n_pool, dim) are required when declared;
# "labeled_embeddings" (n_labeled, dim) is optional (None: nothing labeled yet); "pool_size" is the number of pool
# items, from whichever array is given; "random_state" is the seed or generator.
POOL_ARRAYS: frozenset[str] = frozenset({"probs", "embeddings"})
ARRAYS: frozenset[str] = POOL_ARRAYS | {"labeled_embeddings"}
INPUTS: frozenset[str] = ARRAYS | {"pool_size", "random_state"}

_ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class QueryStrategy:
    """One registered strategy: the name users choose, its pure function, and the inputs the function reads.

    ``function`` is called as ``function(n=n, **{name: value for name in reads})``; its parameters that are
    inputs must be exactly ``reads`` (checked here, at registration), any others need defaults.

    Attributes:
        name: The value of the `strategy` setting.
        function: The strategy, e.g. ``margin(probs, n)``.
        reads: A subset of ``INPUTS`` (any set; kept as a frozenset).
    """

    name: str
    function: Callable[..., np.ndarray]
    reads: AbstractSet[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", frozenset(self.reads))
        parameters = inspect.signature(self.function).parameters
        takes = INPUTS & set(parameters)
        unknown = self.reads - INPUTS
        others = [p for p in parameters.values() if p.name not in INPUTS | {"n"} and p.default is p.empty]
        if unknown or takes != self.reads or "n" not in parameters or others:
            raise TypeError(
                f"Strategy {self.name!r} declares it reads {sorted(self.reads)} but {self.function.__name__} takes "
                f"{list(parameters)}: its inputs must be exactly the declared ones (of {sorted(INPUTS)}), plus `n`."
            )

    @property
    def arrays(self) -> frozenset[str]:
        """The arrays the strategy reads, i.e. what the loop must compute for it."""
        return frozenset(self.reads & ARRAYS)


def random_sampling(pool_size: int, n: int, random_state: RandomState = None) -> np.ndarray:
    """The baseline: ``min(n, pool_size)`` pool indices drawn uniformly without replacement with ``random_state``."""
    rng = np.random.default_rng(random_state)
    return rng.choice(pool_size, size=min(n, pool_size), replace=False).astype(np.intp)


# ----------------------------------------------------------------------------------------------------- registry

REGISTRY: tuple[QueryStrategy, ...] = (
    QueryStrategy("random", random_sampling, {"pool_size", "random_state"}),
    QueryStrategy("least_confidence", least_confidence, {"probs"}),
    QueryStrategy("margin", margin, {"probs"}),
    QueryStrategy("entropy", entropy, {"probs"}),
    QueryStrategy("ranked_batch", ranked_batch, {"probs", "embeddings", "labeled_embeddings"}),
    QueryStrategy("k_center_greedy", k_center_greedy, {"embeddings", "labeled_embeddings", "random_state"}),
    QueryStrategy("margin_diverse", margin_diverse, {"probs", "embeddings", "random_state"}),
    QueryStrategy("badge", badge, {"probs", "embeddings", "random_state"}),
)

STRATEGIES: Mapping[str, QueryStrategy] = MappingProxyType({strategy.name: strategy for strategy in REGISTRY})

# What each strategy reads of "probs", "embeddings" and "labeled_embeddings" (read-only, from the registrations).
REQUIRES: Mapping[str, frozenset[str]] = MappingProxyType({strategy.name: strategy.arrays for strategy in REGISTRY})


def get_strategy(name: str) -> QueryStrategy:
    """The registered strategy called ``name``.

    Raises:
        InputError: no strategy has that name; the message lists the known ones.
    """
    strategy = STRATEGIES.get(name) if isinstance(name, str) else None
    if strategy is None:
        raise InputError(f"Unknown query strategy {name!r}; choose one of: {', '.join(sorted(STRATEGIES))}.")
    return strategy


# --------------------------------------------------------------------------------------------------- validation


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputError(f"The number of samples to select must be an integer; got {n!r}.")
    if n <= 0:
        raise InputError(f"The number of samples to select must be positive; got {n}.")
    return int(n)


def _check_real(array: np.ndarray, what: str) -> None:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{what} must be real numbers; got dtype {array.dtype}.")


def _check_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise DataError(f"Probabilities must be a 2-D (n_pool, n_classes) array; got shape {probs.shape}.")
    if probs.shape[0] == 0:
        raise DataError("The pool is empty: there is nothing to select from.")
    if probs.shape[1] == 0:
        raise DataError("Probabilities have no classes (shape (n_pool, 0)).")
    _check_real(probs, "Probabilities")
    probs = probs.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if len(bad):
        raise DataError(
            f"{len(bad)} pool items have NaN or infinite probabilities (first: index {int(bad[0])}); "
            "recompute the model outputs."
        )
    if (probs < 0).any() or (probs > 1).any():
        raise DataError("Probabilities must lie in [0, 1]; pass softmax outputs, not logits.")
    row_sums = probs.sum(axis=1)
    off = np.abs(row_sums - 1.0) > _ROW_SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise DataError(
            f"{int(off.sum())} probability rows do not sum to 1 (index {first} sums to {row_sums[first]:.6g}); "
            "pass normalised class probabilities."
        )
    return probs


def _check_embeddings(embeddings: np.ndarray, what: str) -> np.ndarray:
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise DataError(f"{what} must be a 2-D (n, dim) array; got shape {embeddings.shape}.")
    if embeddings.shape[1] == 0:
        raise DataError(f"{what} have no dimensions (shape (n, 0)).")
    _check_real(embeddings, what)
    if not np.issubdtype(embeddings.dtype, np.floating):
        embeddings = embeddings.astype(np.float64)
    if not np.isfinite(embeddings).all():
        raise DataError(f"{what} contain NaN or infinite values; recompute the model outputs.")
    return embeddings


def _check_pool(
    strategy: QueryStrategy,
    probs: np.ndarray | None,
    embeddings: np.ndarray | None,
    labeled_embeddings: np.ndarray | None,
) -> dict[str, object]:
    """Every array given, checked and converted, and ``pool_size``; raises when a declared pool array is missing."""
    if "probs" in strategy.reads and probs is None:
        raise DataError(f"Strategy {strategy.name!r} needs predicted probabilities; compute the model outputs first.")
    if "embeddings" in strategy.reads and embeddings is None:
        raise DataError(f"Strategy {strategy.name!r} needs embeddings; compute the model outputs first.")
    if probs is None and embeddings is None:
        raise DataError(f"Strategy {strategy.name!r} needs the pool: pass probabilities or embeddings.")
    if probs is not None:
        probs = _check_probs(probs)
    if embeddings is not None:
        embeddings = _check_embeddings(embeddings, "Embeddings")
        if embeddings.shape[0] == 0:
            raise DataError("The pool is empty: there is nothing to select from.")
    if probs is not None and embeddings is not None and len(probs) != len(embeddings):
        raise DataError(
            f"Probabilities ({len(probs)} rows) and embeddings ({len(embeddings)} rows) describe pools of "
            "different sizes; pass arrays for the same samples."
        )
    if labeled_embeddings is not None:
        labeled_embeddings = _check_embeddings(labeled_embeddings, "Labeled embeddings")
        if embeddings is not None and labeled_embeddings.shape[1] != embeddings.shape[1]:
            raise DataError(
                f"Labeled embeddings have {labeled_embeddings.shape[1]} dimensions but the pool's have "
                f"{embeddings.shape[1]}; pass embeddings from the same model."
            )
        if len(labeled_embeddings) == 0:
            labeled_embeddings = None
    pool_size = len(probs) if probs is not None else len(embeddings)
    return {"probs": probs, "embeddings": embeddings, "labeled_embeddings": labeled_embeddings,
            "pool_size": pool_size}


# ------------------------------------------------------------------------------------------------------- select


def select(
    name: str,
    probs: np.ndarray | None,
    embeddings: np.ndarray | None,
    n: int,
    random_state: RandomState = None,
    *,
    labeled_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Run the strategy called ``name`` on the pool, with the inputs its registration declares.

    Args:
        name: A key of ``STRATEGIES``.
        probs: ``(n_pool, n_classes)`` predicted probabilities (rows sum to 1), or None if the strategy needs none.
        embeddings: ``(n_pool, dim)`` embeddings, or None if the strategy needs none.
        n: How many items to pick; more than the pool returns the whole pool, ranked.
        random_state: Seed or ``np.random.Generator``, passed only to the strategies that draw random numbers
            (their registration reads ``random_state``); the others are deterministic and never see it.
        labeled_embeddings: ``(n_labeled, dim)`` embeddings of the labeled items, passed only to the strategies
            that read them; None (or no rows) means nothing is labeled yet.

    Returns:
        Distinct pool indices (``np.intp``), most wanted first, of length ``min(n, n_pool)``.

    Raises:
        InputError: unknown strategy name, or ``n`` not a positive integer.
        DataError: a needed array is missing, or a given one is empty, not finite, or disagrees in shape.
    """
    strategy = get_strategy(name)
    n = _check_n(n)
    inputs = {**_check_pool(strategy, probs, embeddings, labeled_embeddings), "random_state": random_state}
    return strategy.function(n=n, **{key: inputs[key] for key in strategy.reads})
