"""What a bias report computes, with the one set of defaults: ``run_bias``, the statistics, the CLI and the App all
read them here (a light module: the CLI builds its parser from it without importing the statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from active_learning.errors import InputError
from curation_checks.validation import check_bool, check_fraction, check_int

DEFAULT_LABEL_FIELD = "ground_truth"
DEFAULT_MIN_SIZE = 20  # slices and groups smaller than this are not tested
DEFAULT_ALPHA = 0.05  # family-wise error rate of the Holm-corrected tests
DEFAULT_CONFIDENCE = 0.95  # level of the Wilson intervals
DEFAULT_BINS = 4  # quantile bins per numeric field
DEFAULT_CROSS_PARENTS = 40  # one-field slices crossed with each other at most (<= 780 intersections)
DEFAULT_TOP = 5  # slices, groups and classes the text report prints


@dataclass(frozen=True)
class BiasSettings:
    """The settings of one bias report; construction validates them (``InputError`` naming the setting).

    Attributes:
        label_field: the Classification field holding the labels.
        slice_fields: sample fields to slice by (numeric ones binned by quantiles, list fields such as ``tags`` one
            slice per item, embedded paths such as ``ground_truth.label`` allowed). None: the image statistics
            fields (with ``image_stats``), ``tags`` and the label (``<label_field>.label``).
        image_stats: compute brightness, contrast, width and height from the files of samples that lack them.
        reference_distribution: expected class distribution, class -> fraction or count (None: no test).
        n_groups: clusters of the embedding search; None picks about 5 x ``min_size`` samples per group, 0 skips it.
        random_state: seeds the clustering.
        min_size: the smallest slice or group tested.
        alpha: family-wise error rate of the Holm-corrected tests.
        bins: quantile bins per numeric field.
        crosses: also test crossed slices (two slices of different fields), in the same Holm family.
        max_cross_parents: the cap on the one-field slices crossed (those with the smallest one-sided p-values).
    """

    label_field: str = DEFAULT_LABEL_FIELD
    slice_fields: Sequence[str] | None = None  # normalised to a tuple of distinct names
    image_stats: bool = True
    reference_distribution: Mapping[str, float] | None = None
    n_groups: int | None = None
    random_state: int = 0
    min_size: int = DEFAULT_MIN_SIZE
    alpha: float = DEFAULT_ALPHA
    bins: int = DEFAULT_BINS
    crosses: bool = True
    max_cross_parents: int = DEFAULT_CROSS_PARENTS

    def __post_init__(self) -> None:
        if self.n_groups is not None and (isinstance(self.n_groups, bool)
                                          or not isinstance(self.n_groups, (int, np.integer))
                                          or self.n_groups < 0 or self.n_groups == 1):
            raise InputError(f"n_groups must be None (automatic), 0 (no group search) or an integer >= 2; "
                             f"got {self.n_groups!r}.")
        normalised = {
            "slice_fields": slice_field_names(self.slice_fields),
            "image_stats": check_bool("image_stats", self.image_stats),
            "random_state": check_int("random_state", self.random_state, 0),
            "min_size": check_int("min_size", self.min_size),
            "alpha": check_fraction("alpha", self.alpha),
            "bins": check_int("bins", self.bins),
            "crosses": check_bool("crosses", self.crosses),
            "max_cross_parents": check_int("max_cross_parents", self.max_cross_parents, 2),
            "n_groups": None if self.n_groups is None else int(self.n_groups),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: the normalised values replace the given ones once

    @property
    def group_search_requested(self) -> bool:
        """Whether the embedding-group search is wanted at all (``n_groups=0`` turns it off)."""
        return self.n_groups != 0


def slice_field_names(slice_fields: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Slice fields as a tuple of distinct names in the given order (one name may be given as a string)."""
    if slice_fields is None:
        return None
    if isinstance(slice_fields, str):
        slice_fields = [slice_fields]
    return tuple(dict.fromkeys(str(f) for f in slice_fields))


BIAS_DEFAULTS = BiasSettings()
