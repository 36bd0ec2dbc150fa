"""Drift over FiftyOne views, composed once: fill -> read -> compute -> write. The CLI and the App call ``run_drift``.

A reference view (e.g. the held-out labelled data) is compared with one or more target views (e.g. new batches)
through the fixed model's outputs on the samples (``curation_checks.drift.read``):

- ``model_embedding`` -> MMD permutation test (``drift.mmd_test``) and per-sample OOD scores (``drift.ood_scores``,
  threshold ``drift.ood_threshold`` from the reference's own leave-one-out scores);
- ``model_probs`` -> KS-BBSD (``drift.ks_bbsd``, Bonferroni over classes) and, with reference labels, the BBSE
  label-shift estimate of each target's class prior (``drift.label_shift_estimate``), tested against chance
  (``label_shift.prior_change_test``: a bootstrap under "no shift", Bonferroni over classes).

A batch is **drifted** when MMD or KS-BBSD rejects; each runs at ``alpha / 2`` (Bonferroni over the two tests, and
over the classes inside KS-BBSD), so the combined decision has level ``alpha`` per batch. Batches are separate
decisions: over many batches expect about ``alpha`` of undrifted ones to be flagged.

Views are named by small specs (``parse_view_spec``, in ``curation_checks.drift.views`` and re-exported here):
``tag:TAG``, ``field:FIELD=VALUE``, ``batch:FIELD`` (targets only: the samples outside the reference, one target per
distinct value, in value order) and ``all-but-reference``. Settings and their defaults: ``DriftSettings``.

Written: per-sample fields ``drift_ood_score``, ``drift_is_ood``, ``drift_batch`` on the target samples (cleared on
samples that are no longer targets), and the custom run ``drift`` (config and per-batch results, a list in batch
order). Everything is computed before anything is written, so a failing call leaves the previous results intact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from active_learning.errors import DataError
from active_learning.progress import ProgressCallback
from active_learning.store.fields import write_fields
from active_learning.store.runs import now_utc, record_run
from curation_checks.drift import label_shift, stats as drift
from curation_checks.drift.read import DriftInputs, DriftSide, drift_views, read_drift_inputs
from curation_checks.drift.result import (BATCH_FIELD, FIELDS, FLAG_FIELD, RUN_KEY, SCORE_FIELD, BatchDrift,
                                          DriftReport, load_drift_report, most_drifted_view)
from curation_checks.drift.settings import DRIFT_DEFAULTS, MAX_OOD_REFERENCE, DriftSettings
from curation_checks.drift.text import format_drift_report
from curation_checks.drift.views import ALL_BUT_REFERENCE, SPEC_GRAMMAR, ViewSpec, parse_view_spec, resolve_views
from curation_checks.model_outputs import DEFAULT_FILL, fill_model_outputs

DECISION = "drifted = MMD p < alpha/2 or KS-BBSD min p < alpha/2/K (Bonferroni over both tests)"


@dataclass(frozen=True)
class OODScores:
    """The per-sample result the write stage stores: each target sample's score, flag threshold and batch."""

    ids: list[str]
    scores: np.ndarray
    batch_names: list[str]
    threshold: float


def run_drift(dataset, reference: str | ViewSpec, target: str | ViewSpec, settings: DriftSettings | None = None, *,
              fill: bool = DEFAULT_FILL, device: str | None = None, progress: ProgressCallback | None = None,
              **overrides: Any) -> DriftReport:
    """Compare each target batch with the reference; write OOD fields on the targets and record run ``drift``.

    Args:
        dataset: the FiftyOne dataset holding both sides.
        reference: a view spec (``tag:TAG`` or ``field:FIELD=VALUE``); ideally data the final model did NOT train on.
        target: a view spec (``tag:``, ``field:``, ``batch:FIELD`` or ``all-but-reference``).
        settings: what to compute (``DriftSettings``; None: ``DRIFT_DEFAULTS``).
        fill: first give the dataset's samples without model outputs the final model's (needs a model run).
        device: where the fill step runs the model (None: CUDA when present).
        progress: called with (fraction done, what is happening).
        **overrides: settings to change, by name (e.g. ``n_permutations=100``, ``label_field=None``).

    Returns:
        The report (also stored as run ``drift``; ``load_drift_report`` reads it back).

    Raises:
        InputError: bad settings or specs.
        DataError: see ``resolve_views``; no model run to fill from; missing or inconsistent model outputs (the
            message names what computes them); a label field or class list that does not fit the probabilities; too
            few labelled reference samples for the label-shift estimate.
    """
    settings = dataclasses.replace(settings or DRIFT_DEFAULTS, **overrides)
    report_progress = progress or (lambda fraction, message: None)
    views = drift_views(dataset, reference, target)  # a bad spec fails before the fill step
    num_filled = None
    if fill:
        report_progress(0.1, "model outputs for samples without them")
        num_filled = fill_model_outputs(dataset, device=device)
    report_progress(0.4, "two-sample tests per batch")
    inputs = read_drift_inputs(dataset, views, settings)
    report, ood = compute_drift_report(inputs, settings, num_filled)
    report_progress(0.95, "writing fields and the run")
    write_drift(dataset, report, ood, settings)
    report_progress(1.0, "done")
    return report


def compute_drift(dataset, reference: str | ViewSpec, target: str | ViewSpec, settings: DriftSettings | None = None,
                  **overrides: Any) -> DriftReport:
    """``run_drift`` without the fill step: every compared sample must already have model outputs."""
    return run_drift(dataset, reference, target, settings, fill=False, **overrides)


def batch_drift(reference: DriftSide, batch: DriftSide, ood_reference: np.ndarray, threshold: float,
                classes: list[str], settings: DriftSettings) -> tuple[BatchDrift, np.ndarray]:
    """The tests of one target batch against the reference, and the batch's per-sample OOD scores."""
    alpha, seed = settings.alpha, settings.random_state
    mmd = drift.mmd_test(reference.embeddings, batch.embeddings, n_permutations=settings.n_permutations,
                         random_state=seed)
    ks = drift.ks_bbsd(reference.probs, batch.probs, alpha=alpha / 2)
    estimate = change = tv = note = margins = significant = None
    if not reference.labeled.any():
        note = "no label field given"
    else:
        rows = reference.labeled
        try:
            shift = label_shift.prior_change_test(reference.probs[rows], reference.labels[rows], batch.probs,
                                                  alpha=alpha, random_state=seed)
        except DataError as error:  # BBSE impossible for this batch: the tests still stand, the reason is kept
            note = str(error)
        else:
            estimate, tv = shift.estimate.tolist(), shift.total_variation
            change = label_shift.headline(shift, classes)
            margins, significant = shift.margin.tolist(), shift.significant.tolist()
    scores = drift.ood_scores(ood_reference, batch.embeddings, k=settings.ood_k, metric=settings.ood_metric)
    num_ood = int((scores > threshold).sum())
    mmd_drift = bool(mmd.p_value < alpha / 2)
    result = BatchDrift(
        name=batch.name, num_samples=len(batch.ids), mmd_statistic=mmd.statistic, mmd_p_value=mmd.p_value,
        mmd_bandwidth=mmd.bandwidth, mmd_drift=mmd_drift, ks_statistics=ks.statistics.tolist(),
        ks_p_values=ks.p_values.tolist(), ks_min_p_value=ks.min_p_value, ks_threshold=ks.bonferroni_threshold,
        ks_drift=ks.drift, drifted=mmd_drift or ks.drift, estimated_prior=estimate, prior_total_variation=tv,
        largest_prior_change=change, label_shift_note=note, num_ood=num_ood, fraction_ood=num_ood / len(batch.ids),
        num_labeled=int(batch.labeled.sum()), prior_change_margin=margins, prior_change_significant=significant)
    return result, scores


def compute_drift_report(inputs: DriftInputs, settings: DriftSettings,
                         num_filled: int | None = None) -> tuple[DriftReport, OODScores]:
    """The compute stage, pure arrays: every batch's tests against the same reference, and the OOD scores."""
    reference = inputs.reference
    rng = np.random.default_rng(settings.random_state)
    num_rows = len(reference.embeddings)
    ood_rows = (np.sort(rng.choice(num_rows, MAX_OOD_REFERENCE, replace=False)) if num_rows > MAX_OOD_REFERENCE
                else np.arange(num_rows))
    ood_reference = reference.embeddings[ood_rows]
    threshold = drift.ood_threshold(ood_reference, k=settings.ood_k, quantile=settings.ood_quantile,
                                    metric=settings.ood_metric)
    reference_prior = None
    if inputs.has_labels:
        labeled = reference.labels[reference.labeled]
        reference_prior = (np.bincount(labeled, minlength=reference.probs.shape[1]) / len(labeled)).tolist()
    batches, scores = zip(*(batch_drift(reference, batch, ood_reference, threshold, inputs.classes, settings)
                            for batch in inputs.targets))
    report = DriftReport(
        reference_spec=str(inputs.reference_spec), target_spec=str(inputs.target_spec),
        label_field=settings.label_field, classes=list(inputs.classes), n_permutations=settings.n_permutations,
        alpha=settings.alpha, random_state=settings.random_state, ood_k=settings.ood_k,
        ood_quantile=settings.ood_quantile, num_reference=len(reference.ids),
        num_reference_labeled=int(reference.labeled.sum()), reference_prior=reference_prior,
        ood_threshold=threshold, num_reference_neighbours=len(ood_rows),
        num_reference_trained_on=inputs.num_reference_trained_on, batches=list(batches), created_at=now_utc(),
        ood_metric=settings.ood_metric, num_filled=num_filled)
    ood = OODScores([i for batch in inputs.targets for i in batch.ids], np.concatenate(scores),
                    [batch.name for batch in inputs.targets for _ in batch.ids], threshold)
    return report, ood


def clear_stale(dataset, target_ids: list[str]) -> None:
    """Samples that carry drift fields from an earlier run but are no target now get None."""
    if SCORE_FIELD not in dataset.get_field_schema():
        return
    stale = dataset.exists(SCORE_FIELD).exclude(target_ids).values("id")
    if stale:
        present = [f for f in FIELDS if f in dataset.get_field_schema()]
        write_fields(dataset, stale, {f: [None] * len(stale) for f in present})


def write_drift(dataset, report: DriftReport, ood: OODScores, settings: DriftSettings) -> None:
    """The write stage: the OOD fields on the targets (stale ones cleared) and the run ``drift``."""
    clear_stale(dataset, ood.ids)
    write_fields(dataset, ood.ids, {SCORE_FIELD: ood.scores, FLAG_FIELD: (ood.scores > ood.threshold).tolist(),
                                    BATCH_FIELD: ood.batch_names})
    config = {"kind": "drift", "reference_spec": report.reference_spec, "target_spec": report.target_spec,
              "label_field": settings.label_field, "n_permutations": report.n_permutations, "alpha": report.alpha,
              "random_state": report.random_state, "ood_k": report.ood_k, "ood_quantile": report.ood_quantile,
              "ood_metric": report.ood_metric, "embedding_field": settings.embedding_field,
              "probs_field": settings.probs_field, "fields": list(FIELDS), "decision": DECISION,
              "num_filled": report.num_filled}
    results = {k: v for k, v in report.to_dict().items() if k not in config}
    record_run(dataset, RUN_KEY, config, results)


__all__ = [
    "ALL_BUT_REFERENCE", "DRIFT_DEFAULTS", "SPEC_GRAMMAR", "BatchDrift", "DriftReport", "DriftSettings", "ViewSpec",
    "compute_drift", "compute_drift_report", "drift_views", "format_drift_report", "load_drift_report",
    "most_drifted_view", "parse_view_spec", "read_drift_inputs", "resolve_views", "run_drift", "write_drift",
]
