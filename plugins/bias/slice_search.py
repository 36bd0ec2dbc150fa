"""The slice search: every slice ``field = value`` of the given fields, optionally their two-field crossings, scored.

Numeric fields are binned by quantiles (``curation_checks.bias.binning``), list fields (e.g. tags) give one slice
per item, other values one slice per value, and missing values their own slice; ``slice_performance`` scores them
all in one Holm family (``curation_checks.bias.slices.score_candidates``). Pure arrays.

**Crossed (two-field) slices** are tested in the same Holm family as the one-field slices, so the family-wise error
rate still holds; the price is power (more tests). Their number is bounded: only the ``max_cross_parents`` (default
40) one-field slices with the smallest one-sided p-values are crossed, which makes at most 40 * 39 / 2 = 780
intersections, and only those of at least ``min_size`` samples that differ from both parents and from every other
tested slice are tested.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from curation_checks.bias.arrays import correct_array, plain
from curation_checks.bias.binning import bin_numeric, numeric_values
from curation_checks.bias.settings import (DEFAULT_ALPHA, DEFAULT_BINS, DEFAULT_CONFIDENCE, DEFAULT_CROSS_PARENTS,
                                           DEFAULT_MIN_SIZE)
from curation_checks.bias.significance import worse_p_values
from curation_checks.bias.slices import (KIND_AND, KIND_ITEM, KIND_MISSING, KIND_VALUE, Candidate, SlicePerformance,
                                         score_candidates)
from curation_checks.validation import check_bool, check_fraction, check_int

CROSS_CHUNK = 1 << 16  # samples per block of the membership products (float32 counts stay exact)


def object_array(values: Iterable[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (lists stay list elements, never a second axis)."""
    listed = list(values)
    array = np.empty(len(listed), dtype=object)
    for position, value in enumerate(listed):
        array[position] = value
    return array


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def field_candidates(name: str, values: object, n: int, numeric: bool, bins: int) -> list[Candidate]:
    """The slices of one field: bins of a numeric field, items of a list field, values of a categorical one."""
    array = values if isinstance(values, np.ndarray) and values.ndim == 1 else None
    if array is None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise DataError(f"Field {name!r} must be an array with one value per sample; got {type(values).__name__}.")
        array = object_array(values)
    if len(array) != n:
        raise DataError(f"Field {name!r} has {len(array)} values for {n} samples; pass one value per sample.")
    missing_label = f"{name} is missing"
    candidates: list[Candidate] = []
    if array.dtype.kind in "iuf" or numeric:
        binned = bin_numeric(array, bins, name)
        for code, b in enumerate(binned.bins):
            candidates.append(Candidate(name, b.kind, b.label, np.flatnonzero(binned.codes == code), b.value, b.low,
                                         b.high))
        candidates.append(Candidate(name, KIND_MISSING, missing_label, np.flatnonzero(binned.codes < 0)))
        return candidates
    items = array.tolist()
    present = [v for v in items if not _is_missing(v)]
    if present and all(_is_list(v) for v in present):
        members: dict[Any, list[int]] = {}
        empty = []
        for row, value in enumerate(items):
            if _is_missing(value) or len(value) == 0:
                empty.append(row)
                continue
            for item in set(plain(v) for v in value):
                if _is_list(item) or not _hashable(item):
                    raise DataError(f"Field {name!r} holds lists of {type(item).__name__}; only lists of strings or "
                                    "numbers can be sliced.")
                members.setdefault(item, []).append(row)
        for item in sorted(members, key=_sort_key):
            candidates.append(Candidate(name, KIND_ITEM, f"{name} contains {item!r}",
                                         np.asarray(members[item], dtype=np.int64), item))
        candidates.append(Candidate(name, KIND_MISSING, f"{name} is empty", np.asarray(empty, dtype=np.int64)))
        return candidates
    if any(_is_list(v) for v in present):
        example = next(v for v in present if not _is_list(v))
        raise DataError(f"Field {name!r} mixes lists and single values (e.g. {example!r}); slice a field with one "
                        "kind of value.")
    numbers_seen = [v for v in present if _is_number(v)]
    if numbers_seen and len(numbers_seen) == len(present):
        return field_candidates(name, numeric_values(array, name), n, True, bins)
    if numbers_seen:
        example = next(v for v in present if not _is_number(v))
        raise DataError(f"Field {name!r} mixes numbers and non-numbers (e.g. {example!r}, {type(example).__name__});"
                        " fix the values or convert them all to strings.")
    members = {}
    empty = []
    for row, value in enumerate(items):
        if _is_missing(value):
            empty.append(row)
            continue
        value = plain(value)
        if not _hashable(value) or not isinstance(value, (str, bool, numbers.Number)):
            raise DataError(f"Field {name!r} holds {type(value).__name__} values (e.g. {str(value)[:60]!r}); slice "
                            "by one of its attributes instead (e.g. 'ground_truth.label').")
        members.setdefault(value, []).append(row)
    for value in sorted(members, key=_sort_key):
        candidates.append(Candidate(name, KIND_VALUE, f"{name} = {value!r}" if isinstance(value, str)
                                     else f"{name} = {value}", np.asarray(members[value], dtype=np.int64), value))
    candidates.append(Candidate(name, KIND_MISSING, missing_label, np.asarray(empty, dtype=np.int64)))
    return candidates


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def cross_candidates(candidates: list[Candidate], correct: np.ndarray, min_size: int,
                      max_parents: int) -> tuple[list[Candidate], int]:
    """Intersections of two one-field slices of different fields, and how many one-field slices were crossed.

    Parents are the one-field slices that would be tested (``min_size <= size < n``); when there are more than
    ``max_parents``, those with the smallest one-sided p-values (then the larger gap) are kept, so at most
    ``max_parents * (max_parents - 1) / 2`` pairs are looked at. Intersection sizes come from one product of the
    parents' membership matrix with itself (in blocks of ``CROSS_CHUNK`` samples, float32 counts exact there);
    only pairs of different fields whose intersection has at least ``min_size`` samples and is smaller than both
    parents (a pair nested in one parent is that parent again) become candidates, and an intersection with the
    same members as a one-field slice or an earlier intersection is dropped (one test per set of samples).
    """
    n = len(correct)
    eligible = [c for c in candidates if min_size <= len(c.indices) < n]
    if len(eligible) > max_parents:
        sizes = np.asarray([len(c.indices) for c in eligible], dtype=np.int64)
        hits = np.asarray([int(correct[c.indices].sum()) for c in eligible], dtype=np.int64)
        total = int(correct.sum())
        p_values = worse_p_values(hits, sizes, total, n)
        gap = (total - hits) / (n - sizes) - hits / sizes
        chosen = np.sort(np.lexsort((-gap, p_values))[:max_parents])  # back in input order: stable part order
        eligible = [eligible[i] for i in chosen]
    count = len(eligible)
    if count < 2 or len({c.field for c in eligible}) < 2:
        return [], count
    membership = np.zeros((count, n), dtype=bool)
    for row, candidate in enumerate(eligible):
        membership[row, candidate.indices] = True
    both = np.zeros((count, count), dtype=np.int64)
    for start in range(0, n, CROSS_CHUNK):
        block = membership[:, start:start + CROSS_CHUNK].astype(np.float32)
        both += np.rint(block @ block.T).astype(np.int64)
    sizes = np.diag(both).copy()
    field_id = {name: i for i, name in enumerate(dict.fromkeys(c.field for c in eligible))}
    fields_of = np.asarray([field_id[c.field] for c in eligible])
    first, second = np.triu_indices(count, k=1)
    overlap = both[first, second]
    keep = ((fields_of[first] != fields_of[second]) & (overlap >= min_size) & (overlap < sizes[first])
            & (overlap < sizes[second]))
    seen = {c.indices.tobytes() for c in candidates if min_size <= len(c.indices) < n}
    hits = np.asarray([int(correct[c.indices].sum()) for c in eligible], dtype=np.int64)
    pairs, members_of = [], []
    for i, j in zip(first[keep].tolist(), second[keep].tolist()):
        small, other = (i, j) if sizes[i] <= sizes[j] else (j, i)
        members = eligible[small].indices[membership[other, eligible[small].indices]]
        key = members.tobytes()
        if key in seen:
            continue
        seen.add(key)
        pairs.append((i, j))
        members_of.append(members)
    if not pairs:
        return [], count
    left, right = (np.asarray(side, dtype=np.int64) for side in zip(*pairs))
    size_in = np.asarray([len(m) for m in members_of], dtype=np.int64)
    correct_in = np.asarray([int(correct[m].sum()) for m in members_of], dtype=np.int64)
    # Within each parent: is the intersection worse than the parent's other members? (hypergeometric = Fisher)
    p_parents = np.maximum(worse_p_values(correct_in, size_in, hits[left], sizes[left]),
                           worse_p_values(correct_in, size_in, hits[right], sizes[right]))
    out = []
    for (i, j), members, p in zip(pairs, members_of, p_parents.tolist()):
        a, b = eligible[i], eligible[j]
        out.append(Candidate(f"{a.field} & {b.field}", KIND_AND, f"{a.label} & {b.label}", members,
                              parts=(a.describe(), b.describe()), p_parents=float(p)))
    return out, count


def slice_performance(correct: Sequence[bool] | np.ndarray, slice_values: Mapping[str, Sequence | np.ndarray],
                      min_size: int = DEFAULT_MIN_SIZE, alpha: float = DEFAULT_ALPHA, bins: int = DEFAULT_BINS,
                      numeric: Iterable[str] = (), confidence: float = DEFAULT_CONFIDENCE, crosses: bool = False,
                      max_cross_parents: int = DEFAULT_CROSS_PARENTS) -> SlicePerformance:
    """Accuracy of every slice ``field = value`` and whether it is significantly worse than the other samples.

    Args:
        correct: per sample, whether the (out-of-sample) prediction equals the label.
        slice_values: field name -> one value per sample. Numeric fields are binned by quantiles
            (``bin_numeric``), list fields (e.g. tags) make one slice per item, other values one slice per value;
            None/NaN (or an empty list) makes a "missing" slice.
        min_size: slices with fewer samples are not tested (counted in ``num_small``).
        alpha: family-wise error rate of the Holm-corrected tests.
        bins: quantile bins per numeric field.
        numeric: fields that must be numeric (a non-number there is a DataError naming the field and the value).
        confidence: level of the Wilson intervals.
        crosses: also test the intersections of two slices of different fields (kind ``"and"``, e.g.
            ``label = 'Shirt' & brightness < 0.12``), in the same Holm family as the one-field slices. Only
            intersections with at least ``min_size`` samples that differ from both parents (and from every other
            tested slice) are tested; intersections under ``min_size`` are not counted in ``num_small``. Every
            piece of a bad slice tends to be bad too, so among the significant slices a crossed one that is not
            worse than the rest of both of its parents (``p_parents >= alpha``) is listed after the others.
        max_cross_parents: with ``crosses``, at most this many one-field slices are crossed (those with the
            smallest one-sided p-values; all of them when there are fewer), so at most
            ``max_cross_parents * (max_cross_parents - 1) / 2`` intersections (780 for the default 40).

    Returns:
        Tested slices sorted worst first: significant ones first, then by the upper confidence bound.

    Raises:
        InputError: bad parameters or a ``numeric`` field not in ``slice_values``.
        DataError: lengths that do not match, non-numeric values in a numeric field, values that cannot be sliced.
    """
    correct = correct_array(correct)
    min_size = check_int("min_size", min_size)
    alpha = check_fraction("alpha", alpha)
    confidence = check_fraction("confidence", confidence)
    bins = check_int("bins", bins)
    max_cross_parents = check_int("max_cross_parents", max_cross_parents, 2)
    crosses = check_bool("crosses", crosses)
    numeric = set(numeric)
    if not isinstance(slice_values, Mapping):
        raise InputError("slice_values must be a dict field name -> one value per sample.")
    unknown = sorted(numeric - set(slice_values))
    if unknown:
        raise InputError(f"numeric names fields {unknown} that are not in slice_values {sorted(slice_values)}.")
    if len(correct) == 0:
        raise DataError("No samples to slice: pass at least one scored sample.")
    candidates: list[Candidate] = []
    for name, values in slice_values.items():
        candidates.extend(field_candidates(str(name), values, len(correct), name in numeric, bins))
    crossed: list[Candidate] = []
    parents = 0
    if crosses:
        crossed, parents = cross_candidates(candidates, correct, min_size, max_cross_parents)
    slices, small = score_candidates(candidates + crossed, correct, min_size, alpha, confidence)
    test = SlicePerformance.test if not crosses else (
        "one-sided Fisher exact vs the complement, Holm-corrected over all tested slices (one-field and crossed)")
    return SlicePerformance(tuple(slices), len(correct), float(correct.mean()), alpha, confidence, min_size, bins,
                            len(slices), small, tuple(str(n) for n in slice_values), test, crosses=bool(crosses),
                            num_crossed=sum(s.kind == KIND_AND for s in slices), num_cross_parents=parents,
                            max_cross_parents=max_cross_parents)
