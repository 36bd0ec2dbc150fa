"""Query strategies: invariants (hypothesis), agreement with independent numpy formulas and with modAL, diversity."""

from __future__ import annotations

import inspect
import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

from active_learning.errors import DataError, InputError
from active_learning.loop.diversity import badge, k_center_greedy, margin_diverse, ranked_batch
from active_learning.loop.modal_compat import modal_batch
from active_learning.loop.strategies import (
    ARRAYS,
    INPUTS,
    POOL_ARRAYS,
    REGISTRY,
    REQUIRES,
    STRATEGIES,
    QueryStrategy,
    get_strategy,
    random_sampling,
    select,
)
from active_learning.loop.uncertainty import entropy, least_confidence, margin

# ------------------------------------------------------------------------------------ independent score formulas


def least_confidence_score(probs: np.ndarray) -> np.ndarray:
    return 1.0 - probs.max(axis=1)


def margin_priority(probs: np.ndarray) -> np.ndarray:
    """Negated margin: larger is more uncertain."""
    if probs.shape[1] == 1:
        return np.zeros(len(probs))
    top_two = np.sort(probs, axis=1)[:, -2:]
    return -(top_two[:, 1] - top_two[:, 0])


def entropy_score(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=1)


UNCERTAINTY = {
    "least_confidence": (least_confidence, least_confidence_score),
    "margin": (margin, margin_priority),
    "entropy": (entropy, entropy_score),
}


def random_probs(seed: int, n_pool: int, n_classes: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(n_classes, 0.5), size=n_pool)


def planted_clusters(
    seed: int, sizes: tuple[int, ...], dim: int = 6, spread: float = 1.0, separation: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: (embeddings, cluster id per row), rows shuffled."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), dim))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)
    centers += np.arange(len(sizes))[:, None] * separation  # keep centers apart even if directions are close
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    points = centers[cluster] + rng.uniform(-spread, spread, size=(len(cluster), dim))
    order = rng.permutation(len(cluster))
    return points[order], cluster[order]


@st.composite
def probability_pools(draw: st.DrawFn) -> np.ndarray:
    n_pool = draw(st.integers(1, 40))
    n_classes = draw(st.integers(1, 6))
    raw = draw(arrays(np.float64, (n_pool, n_classes), elements=st.floats(0.0, 1.0)))
    if draw(st.booleans()):
        raw = np.round(raw, 1)  # coarse values: many exact ties
    raw = raw + 1e-3
    return raw / raw.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------- uncertainty strategies


@pytest.mark.parametrize("name", sorted(UNCERTAINTY))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uncertainty_strategy_matches_numpy_formula(name: str, seed: int) -> None:
    strategy, score = UNCERTAINTY[name]
    probs = random_probs(seed, n_pool=400, n_classes=10)
    expected = np.argsort(-score(probs), kind="stable")[:25]
    np.testing.assert_array_equal(strategy(probs, 25), expected)
    np.testing.assert_array_equal(select(name, probs, None, 25), expected)


@settings(max_examples=60, deadline=None)
@given(probs=probability_pools(), n=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_uncertainty_strategies_properties(probs: np.ndarray, n: int, seed: int) -> None:
    for name, (strategy, score) in UNCERTAINTY.items():
        picked = select(name, probs, None, n, seed)
        assert picked.dtype == np.intp
        assert len(picked) == min(n, len(probs))
        assert len(set(picked.tolist())) == len(picked)
        assert ((picked >= 0) & (picked < len(probs))).all()
        np.testing.assert_array_equal(strategy(probs, n), picked)
        # the picked are the top-n by the score, in order (tolerance: modAL's float order may differ by an ulp)
        scores = score(probs)
        rest = np.setdiff1d(np.arange(len(probs)), picked)
        if len(rest):
            assert scores[picked].min() >= scores[rest].max() - 1e-9, name
        assert (np.diff(scores[picked]) <= 1e-9).all(), name


@pytest.mark.parametrize("name", sorted(UNCERTAINTY))
def test_ties_lowest_index_first(name: str) -> None:
    confident = [0.9, 0.05, 0.05]
    unsure = [0.4, 0.3, 0.3]
    probs = np.array([confident, unsure, confident, unsure, unsure, confident])
    strategy, _ = UNCERTAINTY[name]
    np.testing.assert_array_equal(strategy(probs, 2), [1, 3])
    np.testing.assert_array_equal(strategy(probs, 6), [1, 3, 4, 0, 2, 5])


def test_margin_with_one_class_returns_first_indices() -> None:
    np.testing.assert_array_equal(margin(np.ones((5, 1)), 3), [0, 1, 2])


# ------------------------------------------------------------------------------------------------------ random


def test_random_is_seed_deterministic_and_distinct() -> None:
    probs = random_probs(0, n_pool=50, n_classes=3)
    first = select("random", probs, None, 20, random_state=7)
    np.testing.assert_array_equal(first, random_sampling(50, 20, random_state=7))
    assert not np.array_equal(first, random_sampling(50, 20, random_state=8))
    assert len(set(first.tolist())) == 20
    np.testing.assert_array_equal(select("random", None, np.zeros((50, 2)), 20, 7), first)  # only the pool size
    assert sorted(random_sampling(50, 500, random_state=1).tolist()) == list(range(50))


def test_random_is_uniform() -> None:
    pool, n, draws = 10, 3, 2000
    counts = np.zeros(pool)
    for seed in range(draws):
        counts[random_sampling(pool, n, random_state=seed)] += 1
    expected = draws * n / pool  # 600; sd ~ 20
    assert np.abs(counts - expected).max() < 100, counts


# -------------------------------------------------------------------------------------------- k-center greedy


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_k_center_covers_every_cluster_before_repeating(seed: int) -> None:
    sizes = (40, 5, 100, 1, 17, 60)
    points, cluster = planted_clusters(seed, sizes)
    picked = k_center_greedy(points, 2 * len(sizes), random_state=seed)
    assert sorted(cluster[picked[: len(sizes)]].tolist()) == list(range(len(sizes)))
    assert len(set(picked.tolist())) == len(picked)


def test_k_center_starts_from_the_labeled_set() -> None:
    points, cluster = planted_clusters(0, (30, 30, 30, 30))
    labeled = points[cluster <= 1][:5]  # clusters 0 and 1 are already labeled
    picked = k_center_greedy(points, 2, labeled_embeddings=labeled)
    assert sorted(cluster[picked].tolist()) == [2, 3]


def test_k_center_each_pick_is_the_farthest_point() -> None:
    rng = np.random.default_rng(5)
    points, labeled = rng.normal(size=(120, 4)), rng.normal(size=(7, 4))
    picked = k_center_greedy(points, 15, labeled_embeddings=labeled)
    centers = list(labeled)
    for index in picked:
        nearest = cdist(points, np.array(centers)).min(axis=1)
        assert index == int(np.argmax(nearest))
        centers.append(points[index])


def test_k_center_duplicates_never_repeat_a_pick() -> None:
    points = np.zeros((6, 3))
    picked = k_center_greedy(points, 10, random_state=0)
    assert sorted(picked.tolist()) == list(range(6))


def test_k_center_memory_is_linear_in_the_pool() -> None:
    points = np.random.default_rng(0).normal(size=(4000, 16))
    tracemalloc.start()
    k_center_greedy(points, 20, random_state=0, labeled_embeddings=points[:50])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 4000 * 150, peak  # ~ (pool, n_labeled + a few) floats; a (pool, pool) matrix: 128 MB


@settings(max_examples=40, deadline=None)
@given(
    points=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=st.floats(-10, 10)),
    n=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_diversity_strategies_properties(points: np.ndarray, n: int, seed: int) -> None:
    probs = np.full((len(points), 2), 0.5)
    for name in ("k_center_greedy", "ranked_batch"):
        picked = select(name, probs, points, n, seed)
        assert len(picked) == min(n, len(points))
        assert len(set(picked.tolist())) == len(picked)
        assert ((picked >= 0) & (picked < len(points))).all()
        np.testing.assert_array_equal(select(name, probs, points, n, seed), picked)


# ------------------------------------------------------------------------------------------------ ranked batch


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranked_batch_matches_modal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool, labeled = rng.normal(size=(150, 5)), rng.normal(size=(12, 5))
    probs = random_probs(seed, n_pool=150, n_classes=4)
    learner = SimpleNamespace(on_transformed=False, X_training=labeled)  # what modAL's ranked_batch reads
    expected, _ = modal_batch().ranked_batch(
        learner, pool, least_confidence_score(probs), n_instances=20, metric="euclidean", n_jobs=None
    )
    np.testing.assert_array_equal(ranked_batch(probs, pool, 20, labeled_embeddings=labeled), expected)


def test_ranked_batch_is_diverse_on_planted_clusters() -> None:
    sizes = (50, 3, 80, 20, 9)
    points, cluster = planted_clusters(1, sizes)
    probs = np.full((len(points), 3), 1 / 3)  # equal uncertainty: only distance matters
    picked = ranked_batch(probs, points, len(sizes))
    assert sorted(cluster[picked].tolist()) == list(range(len(sizes)))
    # cold start: the first pick is the item nearest the centroid
    assert picked[0] == np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1))


def test_ranked_batch_prefers_uncertain_items_when_distances_tie() -> None:
    points = np.array([[0.0], [10.0], [10.0], [20.0]])
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    picked = ranked_batch(probs, points, 1, labeled_embeddings=np.array([[0.0], [20.0]]))
    assert picked.tolist() == [2]


# ---------------------------------------------------------------------------------------------- margin diverse


def two_confusions(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pool whose 10 smallest margins are near-copies (group A); the next 10 (B) sit elsewhere; 80 are confident."""
    rng = np.random.default_rng(seed)
    gaps = np.concatenate([np.linspace(0.0, 0.009, 10), np.linspace(0.01, 0.019, 10), rng.uniform(0.5, 0.9, 80)])
    top = (1.0 + gaps) / 2
    probs = np.stack([top, 1.0 - top], axis=1)
    points = np.concatenate([rng.normal(0, 0.01, (10, 3)), rng.normal(10, 0.01, (10, 3)), rng.normal(-10, 3, (80, 3))])
    group = np.repeat([0, 1, 2], [10, 10, 80])
    order = rng.permutation(100)  # the groups must not be found by their position
    return probs[order], points[order], group[order]


def test_margin_diverse_spreads_the_batch_over_both_confusions() -> None:
    probs, points, group = two_confusions()
    assert group[margin(probs, 2)].tolist() == [0, 0]  # plain margin: two near-copies
    picked = margin_diverse(probs, points, 2, random_state=0)
    assert sorted(group[picked].tolist()) == [0, 1]
    assert picked[0] != picked[1]
    gaps = probs[:, 0] - probs[:, 1]
    assert gaps[picked[0]] <= gaps[picked[1]]  # most uncertain first


def test_margin_diverse_picks_only_among_the_prefiltered_margins() -> None:
    probs, points, group = two_confusions()
    picked = margin_diverse(probs, points, 2, random_state=0, prefilter=5)  # 10 candidates: group A only
    assert group[picked].tolist() == [0, 0]
    assert set(margin_diverse(probs, points, 4, random_state=3).tolist()) <= set(margin(probs, 40).tolist())


@settings(max_examples=25, deadline=None)
@given(n_pool=st.integers(1, 60), n=st.integers(1, 30), seed=st.integers(0, 1000))
def test_margin_diverse_properties(n_pool: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = random_probs(seed, n_pool=n_pool, n_classes=3)
    points = np.round(rng.normal(size=(n_pool, 2)), 1)  # rounding makes duplicate points
    picked = margin_diverse(probs, points, n, random_state=seed)
    assert len(picked) == min(n, n_pool)
    assert len(set(picked.tolist())) == len(picked)
    np.testing.assert_array_equal(margin_diverse(probs, points, n, random_state=seed), picked)
    if n_pool <= n:
        np.testing.assert_array_equal(picked, margin(probs, n))


@pytest.mark.parametrize("prefilter", [0, -1, 1.5, True])
def test_margin_diverse_bad_prefilter(prefilter: object) -> None:
    probs, points, _ = two_confusions()
    with pytest.raises(InputError, match="prefilter"):
        margin_diverse(probs, points, 2, prefilter=prefilter)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------- BADGE


def badge_reference(probs: np.ndarray, points: np.ndarray, n: int, seed: int) -> list[int]:
    """BADGE with explicit (N, K*D) gradient embeddings and full distance recomputation: the slow, obvious way."""
    a = probs.copy()
    a[np.arange(len(a)), probs.argmax(axis=1)] -= 1.0
    gradients = np.einsum("ik,id->ikd", a, points).reshape(len(a), -1)
    rng = np.random.default_rng(seed)
    picked = [int(np.argmax((gradients**2).sum(axis=1)))]
    while len(picked) < n:
        d2 = cdist(gradients, gradients[picked], "sqeuclidean").min(axis=1)
        d2[picked] = 0.0
        picked.append(int(rng.choice(len(a), p=d2 / d2.sum())))
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_badge_matches_explicit_gradient_embeddings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = random_probs(seed, n_pool=80, n_classes=4)
    points = np.abs(rng.normal(size=(80, 6)))  # post-ReLU features are non-negative
    assert badge(probs, points, 12, random_state=seed).tolist() == badge_reference(probs, points, 12, seed)


def test_badge_takes_duplicates_of_a_pick_only_when_nothing_else_is_left() -> None:
    probs = np.array([[0.6, 0.4]] * 6)
    points = np.array([[1.0], [2.0], [3.0], [1.0], [2.0], [3.0]])  # 3..5 duplicate 0..2
    picked = badge(probs, points, 6, random_state=0).tolist()
    assert picked[0] == 2  # the largest gradient (ties: lowest index)
    assert sorted(points[picked[:3], 0].tolist()) == [1.0, 2.0, 3.0]  # a duplicate of a pick has probability 0
    assert sorted(picked) == list(range(6))


@settings(max_examples=25, deadline=None)
@given(n_pool=st.integers(1, 50), n=st.integers(1, 60), seed=st.integers(0, 1000))
def test_badge_properties(n_pool: int, n: int, seed: int) -> None:
    probs = random_probs(seed, n_pool=n_pool, n_classes=3)
    points = np.round(np.abs(np.random.default_rng(seed).normal(size=(n_pool, 2))), 1)
    picked = badge(probs, points, n, random_state=seed)
    assert len(picked) == min(n, n_pool) and len(set(picked.tolist())) == len(picked)
    np.testing.assert_array_equal(badge(probs, points, n, random_state=seed), picked)


# ------------------------------------------------------------------------------- registry: declarations hold


def declaration_fixture(seed: int, labeled: bool) -> dict[str, object]:
    """Every input a strategy can read, for a 24-item pool; a labeled set of 40 weighs uncertainty heavily."""
    rng = np.random.default_rng(seed)
    return {"probs": random_probs(seed, n_pool=24, n_classes=4), "embeddings": rng.normal(size=(24, 3)),
            "labeled_embeddings": rng.normal(size=(40, 3)) if labeled else None, "random_state": seed}


def select_with(name: str, inputs: dict[str, object], n: int = 5) -> np.ndarray:
    return select(name, inputs["probs"], inputs["embeddings"], n, inputs["random_state"],  # type: ignore[arg-type]
                  labeled_embeddings=inputs["labeled_embeddings"])  # type: ignore[arg-type]


def only(strategy: QueryStrategy, inputs: dict[str, object]) -> dict[str, object]:
    """``inputs`` with everything the strategy does not declare missing (None); the pool size comes from ``probs``
    for a strategy that reads no pool array."""
    kept = {key: (value if key in strategy.reads else None) for key, value in inputs.items()}
    if not strategy.reads & POOL_ARRAYS:
        kept["probs"] = inputs["probs"]
    return kept


def test_registry_lists_every_strategy_and_derives_what_the_loop_computes() -> None:
    names = {"random", "least_confidence", "margin", "entropy", "ranked_batch", "k_center_greedy", "margin_diverse",
             "badge"}
    assert [strategy.name for strategy in REGISTRY] == list(STRATEGIES) and set(STRATEGIES) == names
    assert dict(REQUIRES) == {strategy.name: strategy.reads & ARRAYS for strategy in REGISTRY}
    with pytest.raises(TypeError):
        REQUIRES["margin"] = frozenset()  # type: ignore[index]  # read-only: the registrations are the one source
    for strategy in REGISTRY:
        assert strategy.reads <= INPUTS, strategy.name
        assert get_strategy(strategy.name) is strategy


@pytest.mark.parametrize("strategy", REGISTRY, ids=lambda strategy: strategy.name)
def test_a_declaration_names_exactly_the_inputs_its_function_takes(strategy: QueryStrategy) -> None:
    assert strategy.reads == INPUTS & set(inspect.signature(strategy.function).parameters)
    for key in INPUTS:  # one input too many or too few is refused at registration
        with pytest.raises(TypeError, match=f"{strategy.name}' declares"):
            QueryStrategy(strategy.name, strategy.function, strategy.reads ^ {key})


@pytest.mark.parametrize("strategy", REGISTRY, ids=lambda strategy: strategy.name)
@pytest.mark.parametrize("labeled", [False, True])
def test_the_declared_inputs_suffice_and_the_others_are_never_read(strategy: QueryStrategy, labeled: bool) -> None:
    for seed in range(3):
        inputs = declaration_fixture(seed, labeled)
        declared = select_with(strategy.name, only(strategy, inputs), n=30)
        assert sorted(declared.tolist()) == list(range(24)), strategy.name  # n > pool: the whole pool, ranked
        other = declaration_fixture(seed + 100, labeled=True)  # other values for every undeclared input
        mixed = {key: (value if key in strategy.reads else other[key]) for key, value in inputs.items()}
        np.testing.assert_array_equal(select_with(strategy.name, mixed), select_with(strategy.name, inputs))


@pytest.mark.parametrize("strategy", REGISTRY, ids=lambda strategy: strategy.name)
def test_each_declared_pool_array_is_required(strategy: QueryStrategy) -> None:
    inputs = declaration_fixture(0, labeled=True)
    for array in strategy.reads & POOL_ARRAYS:
        what = {"probs": "predicted probabilities", "embeddings": "embeddings"}[array]
        with pytest.raises(DataError, match=f"{strategy.name}' needs {what}"):
            select_with(strategy.name, {**inputs, array: None})


def changed_inputs(key: str) -> Iterator[tuple[dict[str, object], dict[str, object]]]:
    """Pairs of inputs that differ only in ``key`` (the labeled set: given vs missing)."""
    for seed in range(4):
        for labeled in (True, False):
            inputs = declaration_fixture(seed, labeled)
            if key != "labeled_embeddings":
                yield inputs, {**inputs, key: declaration_fixture(seed + 100, labeled)[key]}
            elif labeled:
                yield inputs, {**inputs, key: None}


@pytest.mark.parametrize("strategy", REGISTRY, ids=lambda strategy: strategy.name)
def test_each_declared_input_changes_the_picks(strategy: QueryStrategy) -> None:
    """A declared input the function ignores would make the loop compute it for nothing."""
    for key in strategy.reads - {"pool_size"}:
        assert any(
            not np.array_equal(select_with(strategy.name, first), select_with(strategy.name, second))
            for first, second in changed_inputs(key)
        ), f"{strategy.name} declares {key} but its picks never depend on it"


@pytest.mark.parametrize("strategy", REGISTRY, ids=lambda strategy: strategy.name)
def test_select_passes_everything_the_function_can_use(strategy: QueryStrategy) -> None:
    """Called directly with every input it accepts, the function picks what ``select`` picks."""
    parameters = set(inspect.signature(strategy.function).parameters)
    for labeled in (False, True):
        inputs = {**declaration_fixture(1, labeled), "pool_size": 24}
        direct = strategy.function(n=5, **{key: value for key, value in inputs.items() if key in parameters})
        np.testing.assert_array_equal(select_with(strategy.name, inputs), direct)


# ------------------------------------------------------------------------------------------- registry, errors


@pytest.mark.parametrize("name", ["bald", "", "Margin", None, 3])
def test_unknown_name(name: object) -> None:
    with pytest.raises(InputError, match=f"Unknown query strategy {name!r}.*badge, entropy, k_center_greedy"):
        select(name, np.full((3, 2), 0.5), None, 1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="choose one of"):
        get_strategy(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, -3, 1.5, True, "2"])
def test_bad_n(n: object) -> None:
    with pytest.raises(InputError, match="select"):
        select("entropy", np.full((3, 2), 0.5), None, n)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_empty_pool(name: str) -> None:
    with pytest.raises(DataError, match="empty"):
        select(name, np.zeros((0, 3)), np.zeros((0, 4)), 2)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("broken", ["probs", "embeddings", "labeled_embeddings"])
def test_nan_inputs_are_refused_even_where_not_read(name: str, broken: str) -> None:
    arrays = {"probs": np.full((4, 2), 0.5), "embeddings": np.zeros((4, 3)), "labeled_embeddings": np.zeros((2, 3))}
    arrays[broken][1, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        select(name, arrays["probs"], arrays["embeddings"], 2, labeled_embeddings=arrays["labeled_embeddings"])


@pytest.mark.parametrize(
    ("name", "probs", "points", "labeled", "message"),
    [
        ("ranked_batch", np.full((4, 2), 0.5), np.zeros((5, 3)), None, "different sizes"),
        ("random", np.full((4, 2), 0.5), np.zeros((5, 3)), None, "different sizes"),
        ("k_center_greedy", np.full((4, 2), 0.5), np.zeros((5, 3)), None, "different sizes"),
        ("entropy", np.full(4, 0.5), None, None, "2-D"),
        ("entropy", np.full((4, 2), 0.7), None, None, "sum to 1"),
        ("entropy", np.array([[2.0, -1.0]]), None, None, r"\[0, 1\]"),
        ("k_center_greedy", None, np.zeros((4, 3)), np.zeros((2, 2)), "dimensions"),
        ("k_center_greedy", None, np.zeros(4), None, "2-D"),
    ],
)
def test_shape_and_value_errors(
    name: str, probs: np.ndarray | None, points: np.ndarray | None, labeled: np.ndarray | None, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        select(name, probs, points, 2, labeled_embeddings=labeled)


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("entropy", "probabilities"),
        ("k_center_greedy", "embeddings"),
        ("ranked_batch", "embeddings"),
        ("margin_diverse", "embeddings"),
        ("random", "pool"),
    ],
)
def test_missing_inputs(name: str, missing: str) -> None:
    probs = np.full((4, 2), 0.5) if name in ("ranked_batch", "margin_diverse") else None
    with pytest.raises(DataError, match=missing):
        select(name, probs, None, 2)
