"""The drift report as a value: ``BatchDrift`` per target batch, ``DriftReport`` (what the run ``drift`` stores),
reading it back, and the view of the most drifted samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.store.runs import load_run

RUN_KEY = "drift"
SCORE_FIELD = "drift_ood_score"
FLAG_FIELD = "drift_is_ood"
BATCH_FIELD = "drift_batch"
FIELDS = (SCORE_FIELD, FLAG_FIELD, BATCH_FIELD)
DEFAULT_MOST_DRIFTED = 50  # samples most_drifted_view gives by default
HOW_TO_RUN = "run drift first (run_drift, `curation drift` or the Detect drift operator)"


@dataclass(frozen=True)
class BatchDrift:
    """The tests' outcome for one target batch (everything JSON-serialisable)."""

    name: str
    num_samples: int
    mmd_statistic: float
    mmd_p_value: float
    mmd_bandwidth: float
    mmd_drift: bool  # mmd_p_value < alpha / 2
    ks_statistics: list[float]
    ks_p_values: list[float]
    ks_min_p_value: float
    ks_threshold: float  # alpha / 2 / number of classes
    ks_drift: bool  # ks_min_p_value < ks_threshold
    drifted: bool  # mmd_drift or ks_drift: level alpha for the batch
    estimated_prior: list[float] | None  # BBSE estimate of the batch's class prior; None without it
    prior_total_variation: float | None
    largest_prior_change: dict | None  # label_shift.headline: the largest significant change, else the largest
    label_shift_note: str | None  # why there is no estimate, if there is none
    num_ood: int
    fraction_ood: float
    num_labeled: int  # target samples with a label (not used by the tests)
    # per class: half-width of the simultaneous chance interval, and whether the change exceeds it (None: reports
    # stored before the test, or no estimate)
    prior_change_margin: list[float] | None = None
    prior_change_significant: list[bool] | None = None


@dataclass(frozen=True)
class DriftReport:
    """Configuration, the reference's summary and one ``BatchDrift`` per target batch, in batch order."""

    reference_spec: str
    target_spec: str
    label_field: str | None
    classes: list[str]
    n_permutations: int
    alpha: float
    random_state: int
    ood_k: int
    ood_quantile: float
    num_reference: int
    num_reference_labeled: int
    reference_prior: list[float] | None
    ood_threshold: float
    num_reference_neighbours: int  # reference rows the OOD scores search for neighbours (a seeded subsample)
    num_reference_trained_on: int | None  # reference samples the final model was trained on (None: unknown)
    batches: list[BatchDrift] = field(default_factory=list)
    created_at: str = ""
    ood_metric: str = "cosine"  # reports saved before the option existed used cosine
    num_filled: int | None = None  # samples given the final model's outputs first (None: not filled, or older)

    @property
    def drifted_batches(self) -> list[str]:
        """Names of the batches with drift, in batch order."""
        return [b.name for b in self.batches if b.drifted]

    def to_dict(self) -> dict:
        """The report as plain JSON types."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DriftReport":
        """Inverse of ``to_dict``."""
        data = dict(data)
        if "num_reference_ood" in data:  # the key's name in reports stored before it was renamed
            data.setdefault("num_reference_neighbours", data.pop("num_reference_ood"))
        batches = [BatchDrift(**b) for b in data.pop("batches", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known}, batches=batches)



def load_drift_report(dataset, run_key: str = RUN_KEY) -> DriftReport:
    """The report of the last ``run_drift`` on ``dataset`` (from its run)."""
    if run_key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no drift run {run_key!r}: {HOW_TO_RUN}.")
    config, results = load_run(dataset, run_key)
    return DriftReport.from_dict({**results, **config})


def most_drifted_view(dataset, report: DriftReport, n: int = DEFAULT_MOST_DRIFTED, batch: str | None = None):
    """The report's target samples (or one batch's) with the highest ``drift_ood_score`` first, at most ``n``."""
    from fiftyone import ViewField as F

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer; got {n!r}.")
    names = [b.name for b in report.batches]
    if batch is not None and batch not in names:
        raise InputError(f"The report has no batch {batch!r}; its batches are: {', '.join(names)}.")
    if SCORE_FIELD not in dataset.get_field_schema():
        raise DataError(f"Dataset {dataset.name!r} has no {SCORE_FIELD!r}: {HOW_TO_RUN}.")
    wanted = [batch] if batch is not None else names
    return (dataset.match(F(BATCH_FIELD).is_in(wanted)).exists(SCORE_FIELD)
            .sort_by(SCORE_FIELD, reverse=True).limit(int(n)))

