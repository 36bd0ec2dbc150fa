"""Drift over FiftyOne views: which views to compare, the tests of ``curation_checks.drift``, fields and a run.

A reference view (e.g. the held-out labelled data) is compared with one or more target views (e.g. new batches)
through the fixed model's outputs already stored on the samples:

- ``model_embedding`` -> MMD permutation test (``drift.mmd_test``) and per-sample OOD scores (``drift.ood_scores``,
  threshold ``drift.ood_threshold`` from the reference's own leave-one-out scores);
- ``model_probs`` -> KS-BBSD (``drift.ks_bbsd``, Bonferroni over classes) and, with reference labels, the BBSE
  label-shift estimate of each target's class prior (``drift.label_shift_estimate``), tested against chance
  (``label_shift.prior_change_test``: a bootstrap under "no shift", Bonferroni over classes).

A batch is **drifted** when MMD or KS-BBSD rejects; each runs at ``alpha / 2`` (Bonferroni over the two tests, and
over the classes inside KS-BBSD), so the combined decision has level ``alpha`` per batch. Batches are separate
decisions: over many batches expect about ``alpha`` of undrifted ones to be flagged.

Views are named by small specs (``parse_view_spec``, in ``curation_checks.drift_views`` and re-exported here):
``tag:TAG``, ``field:FIELD=VALUE``, ``batch:FIELD`` (targets only: the samples outside the reference, one target per
distinct value, in value order) and ``all-but-reference``.

Written: per-sample fields ``drift_ood_score``, ``drift_is_ood``, ``drift_batch`` on the target samples (cleared on
samples that are no longer targets), and the custom run ``drift`` (config and per-batch results, a list in batch
order). Everything is computed before anything is written, so a failing call leaves the previous results intact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.predictions import DEFAULT_RUN_KEY, EMBEDDING_FIELD, PROBS_FIELD
from active_learning.runs import load_run, now_utc, record_run
from active_learning.views import get_classes, write_fields
from curation_checks import drift, label_shift
from curation_checks.drift_views import ALL_BUT_REFERENCE, SPEC_GRAMMAR, ViewSpec, parse_view_spec, resolve_views

RUN_KEY = "drift"
FILL_RUN_KEY = "drift_model_outputs"
SCORE_FIELD = "drift_ood_score"
FLAG_FIELD = "drift_is_ood"
BATCH_FIELD = "drift_batch"
FIELDS = (SCORE_FIELD, FLAG_FIELD, BATCH_FIELD)
OOD_K = 10  # reference neighbours averaged in the OOD score
OOD_QUANTILE = 0.95  # the threshold is this quantile of the reference's own leave-one-out scores
MAX_OOD_REFERENCE = 10_000  # reference rows used as OOD neighbours (seeded subsample): LOO cost grows as m^2


# -- the report ----------------------------------------------------------------------------------------------------
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


# -- reading the model outputs -------------------------------------------------------------------------------------
def _missing_outputs_message(count: int, total: int, what: str, field_name: str, dataset_name: str) -> str:
    if field_name == PROBS_FIELD:
        how = ("`curation model` gives out-of-sample probabilities only to labelled samples it trains on; give the "
               f"others the final model's outputs: `curation drift {dataset_name}` does it first (unless --no-fill), "
               "or call curation_checks.drift_report.fill_model_outputs(dataset)")
    else:
        how = (f"`curation model {dataset_name}` embeds the samples of the view it runs on; give the others the "
               f"final model's outputs: `curation drift {dataset_name}` does it first (unless --no-fill), or call "
               "curation_checks.drift_report.fill_model_outputs(dataset)")
    return f"{count} of the {total} samples of {what} have no {field_name!r}: {how}."


def _read_outputs(view, what: str, embedding_field: str, probs_field: str, width: dict) -> tuple[list, np.ndarray,
                                                                                                 np.ndarray]:
    ids, embeddings, probs = view.values(["id", embedding_field, probs_field])
    name = view._dataset.name
    for field_name, rows in ((embedding_field, embeddings), (probs_field, probs)):
        missing = sum(r is None for r in rows)
        if missing:
            raise DataError(_missing_outputs_message(missing, len(rows), what, field_name, name))
        lengths = {len(r) for r in rows}
        expected = width.setdefault(field_name, next(iter(lengths)))
        if lengths != {expected}:
            raise DataError(f"The {field_name!r} rows of {what} have lengths {sorted(lengths | {expected})}: they come "
                            f"from different models. Recompute the model outputs (`curation model {name}`).")
    return list(ids), np.asarray(embeddings, dtype=np.float64), np.asarray(probs, dtype=np.float64)


def _labels(view, label_field: str, index: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """Class index per sample (-1 where unlabeled) and the labels that are not in ``index``."""
    labels = view.values(f"{label_field}.label")
    unknown = sorted({str(v) for v in labels if v is not None and v not in index})
    return np.asarray([index.get(v, -1) if v is not None else -1 for v in labels], dtype=np.int64), unknown


def _model_classes(dataset, width: int) -> list[str]:
    if DEFAULT_RUN_KEY in dataset.list_runs():
        config, _ = load_run(dataset, DEFAULT_RUN_KEY)
        classes = config.get("classes")
        if isinstance(classes, list) and len(classes) == width:
            return [str(c) for c in classes]
    return [str(i) for i in range(width)]


def _trained_on(dataset, reference_ids: Sequence[str]) -> int | None:
    """How many reference samples were labelled members of the view the final model (run curation_model) trained on."""
    if DEFAULT_RUN_KEY not in dataset.list_runs():
        return None
    config, _ = load_run(dataset, DEFAULT_RUN_KEY)
    label_field = config.get("label_field")
    if not label_field or dataset.get_field(label_field) is None:
        return None
    trained = dataset.load_run_view(DEFAULT_RUN_KEY).exists(f"{label_field}.label").values("id")
    return len(set(trained).intersection(reference_ids))


def _check_parameters(n_permutations: Any, alpha: Any, random_state: Any, ood_k: Any, ood_quantile: Any) -> None:
    def integer(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not integer(n_permutations) or n_permutations < 1:
        raise InputError(f"n_permutations must be an integer >= 1 (e.g. 200); got {n_permutations!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InputError(f"alpha must be a number strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")
    if not integer(random_state) or random_state < 0:
        raise InputError(f"random_state must be a non-negative integer; got {random_state!r}.")
    if not integer(ood_k) or ood_k < 1:
        raise InputError(f"ood_k must be an integer >= 1 (e.g. {OOD_K}); got {ood_k!r}.")
    if isinstance(ood_quantile, bool) or not isinstance(ood_quantile, (int, float)) or not 0 < ood_quantile < 1:
        raise InputError(f"ood_quantile must be strictly between 0 and 1 (e.g. 0.95); got {ood_quantile!r}.")


# -- compute -------------------------------------------------------------------------------------------------------
def compute_drift(
    dataset,
    reference: str | ViewSpec,
    target: str | ViewSpec,
    n_permutations: int = 200,
    alpha: float = 0.05,
    random_state: int = 0,
    label_field: str | None = "ground_truth",
    *,
    ood_k: int = OOD_K,
    ood_quantile: float = OOD_QUANTILE,
    ood_metric: str = "cosine",
    embedding_field: str = EMBEDDING_FIELD,
    probs_field: str = PROBS_FIELD,
) -> DriftReport:
    """Compare each target batch with the reference; write OOD fields on the targets and record run ``drift``.

    Args:
        dataset: the FiftyOne dataset holding both sides.
        reference: a view spec (``tag:TAG`` or ``field:FIELD=VALUE``); ideally data the final model did NOT train on.
        target: a view spec (``tag:``, ``field:``, ``batch:FIELD`` or ``all-but-reference``).
        n_permutations: permutations of the MMD test.
        alpha: level of the combined decision per batch (MMD and KS-BBSD at ``alpha / 2`` each).
        random_state: seed of the MMD subsampling and permutations and of the OOD reference subsample.
        label_field: Classification field with the reference labels for the BBSE label-shift estimate; None skips
            the estimate.
        ood_k: reference neighbours averaged in the OOD score.
        ood_metric: ``cosine`` (directions only, the default) or ``euclidean`` (also a change of feature length).
        ood_quantile: quantile of the reference's own leave-one-out scores used as the OOD threshold.
        embedding_field: field of the embeddings (default ``model_embedding``).
        probs_field: field of the predicted probabilities (default ``model_probs``).

    Returns:
        The report (also stored as run ``drift``; ``load_drift_report`` reads it back).

    Raises:
        InputError: bad parameters or specs.
        DataError: see ``resolve_views``; missing or inconsistent model outputs (the message names the command that
            computes them); a label field or class list that does not fit the probabilities; too few labelled
            reference samples for the label-shift estimate.
    """
    _check_parameters(n_permutations, alpha, random_state, ood_k, ood_quantile)
    if ood_metric not in drift.OOD_METRICS:
        raise InputError(f"ood_metric must be one of {', '.join(drift.OOD_METRICS)}; got {ood_metric!r}.")
    reference_spec, target_spec = parse_view_spec(reference), parse_view_spec(target)
    reference_view, targets = resolve_views(dataset, reference_spec, target_spec)
    schema = dataset.get_field_schema()
    for field_name in (embedding_field, probs_field):
        if field_name not in schema:
            raise DataError(f"Dataset {dataset.name!r} has no {field_name!r}: run `curation model {dataset.name}` "
                            "first (it trains the fixed model and stores its embeddings and probabilities), then "
                            "curation_checks.drift_report.fill_model_outputs(dataset) for samples it did not cover.")

    width: dict[str, int] = {}
    reference_ids, reference_emb, reference_probs = _read_outputs(
        reference_view, f"the reference ({reference_spec})", embedding_field, probs_field, width)
    def describe(name: str) -> str:
        return f"the target batch {name!r}" if target_spec.kind == "batch" else f"the target ({name})"

    target_data = [(name, *_read_outputs(view, describe(name), embedding_field, probs_field, width))
                   for name, view in targets]
    num_classes = width[probs_field]

    reference_labels = None
    target_labels: list[np.ndarray] = [np.full(len(t[1]), -1) for t in target_data]
    reference_prior = None
    if label_field is not None:
        classes = _class_list(dataset, reference_view, label_field, num_classes)
        index = {c: i for i, c in enumerate(classes)}
        reference_labels, unknown = _labels(reference_view, label_field, index)
        if unknown:
            raise DataError(f"Reference labels {unknown[:5]} in {label_field!r} are not in the class list "
                            f"{classes[:10]}; fix them or set dataset.classes[{label_field!r}].")
        labeled = int((reference_labels >= 0).sum())
        if labeled < drift.MIN_SAMPLES:
            raise DataError(f"The reference ({reference_spec}) has {labeled} samples labelled in {label_field!r}; the "
                            f"label-shift estimate needs at least {drift.MIN_SAMPLES}. Label more reference samples, "
                            "or pass label_field=None to skip the estimate.")
        for position, (name, view) in enumerate(targets):
            target_labels[position], unknown = _labels(view, label_field, index)
            if unknown:
                raise DataError(f"{describe(name).capitalize()} has labels {unknown[:5]} in {label_field!r} that are "
                                f"not in the reference's class list {classes[:10]}: the class lists differ, and the "
                                "model cannot predict those classes. Add them to the reference and retrain "
                                "(`curation model`), or leave those samples out of the target.")
    else:
        classes = _model_classes(dataset, num_classes)

    # Everything below is pure computation on arrays; nothing is written until all batches have been tested.
    rng = np.random.default_rng(random_state)
    ood_rows = (np.sort(rng.choice(len(reference_emb), MAX_OOD_REFERENCE, replace=False))
                if len(reference_emb) > MAX_OOD_REFERENCE else np.arange(len(reference_emb)))
    ood_reference = reference_emb[ood_rows]
    threshold = drift.ood_threshold(ood_reference, k=ood_k, quantile=ood_quantile, metric=ood_metric)
    labeled_rows = None if reference_labels is None else reference_labels >= 0
    if labeled_rows is not None:
        reference_prior = (np.bincount(reference_labels[labeled_rows], minlength=num_classes)
                           / labeled_rows.sum()).tolist()

    batches: list[BatchDrift] = []
    per_sample_ids: list[str] = []
    scores: list[np.ndarray] = []
    batch_names: list[str] = []
    for (name, ids, emb, probs), labels in zip(target_data, target_labels):
        mmd = drift.mmd_test(reference_emb, emb, n_permutations=n_permutations, random_state=random_state)
        ks = drift.ks_bbsd(reference_probs, probs, alpha=alpha / 2)
        estimate = change = tv = note = margins = significant = None
        if labeled_rows is None:
            note = "no label field given"
        else:
            try:
                shift = label_shift.prior_change_test(reference_probs[labeled_rows], reference_labels[labeled_rows],
                                                      probs, alpha=alpha, random_state=random_state)
            except DataError as error:
                note = str(error)
            else:
                estimate, tv, change = shift.estimate.tolist(), shift.total_variation, label_shift.headline(
                    shift, classes)
                margins, significant = shift.margin.tolist(), shift.significant.tolist()
        batch_scores = drift.ood_scores(ood_reference, emb, k=ood_k, metric=ood_metric)
        num_ood = int((batch_scores > threshold).sum())
        mmd_drift = bool(mmd.p_value < alpha / 2)
        batches.append(BatchDrift(
            name=name, num_samples=len(ids), mmd_statistic=mmd.statistic, mmd_p_value=mmd.p_value,
            mmd_bandwidth=mmd.bandwidth, mmd_drift=mmd_drift, ks_statistics=ks.statistics.tolist(),
            ks_p_values=ks.p_values.tolist(), ks_min_p_value=ks.min_p_value, ks_threshold=ks.bonferroni_threshold,
            ks_drift=ks.drift, drifted=mmd_drift or ks.drift, estimated_prior=estimate, prior_total_variation=tv,
            largest_prior_change=change, label_shift_note=note, num_ood=num_ood,
            fraction_ood=num_ood / len(ids), num_labeled=int((labels >= 0).sum()), prior_change_margin=margins,
            prior_change_significant=significant))
        per_sample_ids.extend(ids)
        scores.append(batch_scores)
        batch_names.extend([name] * len(ids))

    report = DriftReport(
        reference_spec=str(reference_spec), target_spec=str(target_spec), label_field=label_field,
        classes=list(classes), n_permutations=int(n_permutations), alpha=float(alpha),
        random_state=int(random_state), ood_k=int(ood_k), ood_quantile=float(ood_quantile),
        num_reference=len(reference_ids),
        num_reference_labeled=0 if labeled_rows is None else int(labeled_rows.sum()),
        reference_prior=reference_prior, ood_threshold=threshold, num_reference_neighbours=len(ood_rows),
        num_reference_trained_on=_trained_on(dataset, reference_ids), batches=batches, created_at=now_utc(),
        ood_metric=ood_metric)

    all_scores = np.concatenate(scores)
    _clear_stale(dataset, per_sample_ids)
    write_fields(dataset, per_sample_ids, {SCORE_FIELD: all_scores, FLAG_FIELD: (all_scores > threshold).tolist(),
                                           BATCH_FIELD: batch_names})
    config = {"kind": "drift", "reference_spec": report.reference_spec, "target_spec": report.target_spec,
              "label_field": label_field, "n_permutations": report.n_permutations, "alpha": report.alpha,
              "random_state": report.random_state, "ood_k": report.ood_k, "ood_quantile": report.ood_quantile,
              "ood_metric": report.ood_metric, "embedding_field": embedding_field, "probs_field": probs_field,
              "fields": list(FIELDS),
              "decision": "drifted = MMD p < alpha/2 or KS-BBSD min p < alpha/2/K (Bonferroni over both tests)"}
    results = {k: v for k, v in report.to_dict().items() if k not in config}
    record_run(dataset, RUN_KEY, config, results)
    return report


def _class_list(dataset, reference_view, label_field: str, num_classes: int) -> list[str]:
    import fiftyone as fo

    schema = dataset.get_field_schema()
    if label_field not in schema:
        candidates = [n for n, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
        raise DataError(f"Dataset {dataset.name!r} has no field {label_field!r} for the reference labels; "
                        f"Classification fields: {candidates or 'none'}. Pass label_field=one of them, or "
                        "label_field=None to skip the label-shift estimate.")
    if getattr(schema[label_field], "document_type", None) is not fo.Classification:
        raise DataError(f"Field {label_field!r} is not a Classification field; pass the field of the reference "
                        "labels, or label_field=None to skip the label-shift estimate.")
    classes = get_classes(reference_view, label_field)
    if len(classes) != num_classes:
        raise DataError(f"The class list of {label_field!r} on the reference ({len(classes)} classes: "
                        f"{classes[:10]}) does not match the {num_classes} columns of the model probabilities: the "
                        "class lists differ. Set dataset.classes[" f"{label_field!r}] to the model's classes, or "
                        "recompute the model outputs (`curation model`) with this class list.")
    return list(classes)


def _clear_stale(dataset, target_ids: list[str]) -> None:
    """Samples that carry drift fields from an earlier run but are no target now get None."""
    if SCORE_FIELD not in dataset.get_field_schema():
        return
    stale = dataset.exists(SCORE_FIELD).exclude(target_ids).values("id")
    if stale:
        present = [f for f in FIELDS if f in dataset.get_field_schema()]
        write_fields(dataset, stale, {f: [None] * len(stale) for f in present})


# -- reading back --------------------------------------------------------------------------------------------------
def load_drift_report(dataset, run_key: str = RUN_KEY) -> DriftReport:
    """The report of the last ``compute_drift`` on ``dataset`` (from its run)."""
    if run_key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no drift run {run_key!r}: run compute_drift first.")
    config, results = load_run(dataset, run_key)
    return DriftReport.from_dict({**results, **config})


def most_drifted_view(dataset, report: DriftReport, n: int = 50, batch: str | None = None):
    """The report's target samples (or one batch's) with the highest ``drift_ood_score`` first, at most ``n``."""
    from fiftyone import ViewField as F

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer; got {n!r}.")
    names = [b.name for b in report.batches]
    if batch is not None and batch not in names:
        raise InputError(f"The report has no batch {batch!r}; its batches are: {', '.join(names)}.")
    if SCORE_FIELD not in dataset.get_field_schema():
        raise DataError(f"Dataset {dataset.name!r} has no {SCORE_FIELD!r}: run compute_drift on it first.")
    wanted = [batch] if batch is not None else names
    return (dataset.match(F(BATCH_FIELD).is_in(wanted)).exists(SCORE_FIELD)
            .sort_by(SCORE_FIELD, reverse=True).limit(int(n)))


def format_drift_report(report: DriftReport) -> str:
    """A short readable report: the setup, then one line per batch."""
    half = report.alpha / 2
    lines = [
        f"Drift: reference {report.reference_spec} ({report.num_reference} samples"
        + (f", {report.num_reference_labeled} labelled" if report.label_field else "")
        + f") vs {report.target_spec} ({len(report.batches)} batch{'es' if len(report.batches) != 1 else ''})",
        f"Tests: MMD on embeddings ({report.n_permutations} permutations) and KS-BBSD on probabilities (Bonferroni "
        f"over {len(report.classes)} classes), each at alpha/2 = {half:g}; OOD threshold {report.ood_threshold:.4f} "
        f"({report.ood_metric} k-NN distance; the reference's {report.ood_quantile:g} quantile, so "
        f"~{1 - report.ood_quantile:.0%} OOD without drift)",
    ]
    if report.num_reference_trained_on:
        lines.append(f"Caution: {report.num_reference_trained_on} reference samples trained the final model; their "
                     "embeddings are in-sample, so MMD can flag overfitting as drift, and their probabilities come "
                     "from the K-fold models, not the final model that scored the batches, which biases the prior "
                     "estimate. Prefer a held-out reference.")
    if report.label_field:
        lines.append(f"Prior change: BBSE estimate, called out only beyond the chance margin (bootstrap without "
                     f"shift; simultaneous {1 - report.alpha:.0%} over the classes)")
    width = max([len("batch")] + [len(b.name) for b in report.batches])
    lines.append(f"{'batch':<{width}}  {'n':>6}  {'MMD p':>7}  {'KS min p':>9}  {'verdict':<7}  {'OOD':>6}  "
                 "biggest prior change")
    for b in report.batches:
        prior = label_shift.describe_headline(b.largest_prior_change, b.label_shift_note)
        lines.append(f"{b.name:<{width}}  {b.num_samples:>6}  {b.mmd_p_value:>7.4f}  {b.ks_min_p_value:>9.2e}  "
                     f"{'DRIFT' if b.drifted else 'ok':<7}  {b.fraction_ood:>6.1%}  {prior}")
    drifted = report.drifted_batches
    lines.append(f"{len(drifted)} of {len(report.batches)} batches drifted" + (f": {', '.join(drifted)}" if drifted
                                                                                 else "."))
    return "\n".join(lines)


# -- model outputs for samples `curation model` did not cover ----------------------------------------------------
def fill_model_outputs(collection, run_key: str = DEFAULT_RUN_KEY, device: str | None = None) -> int:
    """Give samples of ``collection`` without ``model_probs`` / ``model_embedding`` the final model's outputs.

    ``curation model`` stores out-of-sample K-fold probabilities for the labelled samples it trains on and embeddings
    for the samples of its view; test samples, new batches and unlabelled samples have no probabilities. The final
    model of run ``run_key`` (checkpoint verified by its hash) never saw those samples, so its outputs on them are
    out-of-sample too. Existing values are never overwritten. Returns the number of samples filled; records run
    ``drift_model_outputs``.
    """
    from active_learning.images import load_images
    from active_learning.predictions import load_model

    dataset = collection._dataset
    if run_key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no model run {run_key!r}: run `curation model {dataset.name}` "
                        "first (it trains the fixed model whose outputs fill the other samples).")
    schema = dataset.get_field_schema()
    fields = ["id", "filepath"] + [f for f in (PROBS_FIELD, EMBEDDING_FIELD) if f in schema]
    columns = dict(zip(fields, collection.values(fields)))
    count = len(columns["id"])
    has_probs = [r is not None for r in columns.get(PROBS_FIELD, [None] * count)]
    has_embedding = [r is not None for r in columns.get(EMBEDDING_FIELD, [None] * count)]
    todo = [i for i in range(count) if not (has_probs[i] and has_embedding[i])]
    if todo:
        model = load_model(dataset, run_key, device)
        existing = next((len(r) for r in columns.get(PROBS_FIELD, []) if r is not None), model.num_classes)
        if existing != model.num_classes:
            raise DataError(f"The stored {PROBS_FIELD!r} rows have {existing} columns but the model of run "
                            f"{run_key!r} has {model.num_classes} classes; recompute `curation model` first.")
        images = load_images([columns["filepath"][i] for i in todo], model.recipe.image_size)
        probs = np.round(model.predict_proba(images).astype(np.float64), 6)
        embeddings = model.embed(images).astype(np.float64)
        need_probs = [j for j, i in enumerate(todo) if not has_probs[i]]
        need_embedding = [j for j, i in enumerate(todo) if not has_embedding[i]]
        if need_probs:
            write_fields(dataset, [columns["id"][todo[j]] for j in need_probs], {PROBS_FIELD: probs[need_probs]})
        if need_embedding:
            write_fields(dataset, [columns["id"][todo[j]] for j in need_embedding],
                         {EMBEDDING_FIELD: embeddings[need_embedding]})
    _, model_results = load_run(dataset, run_key)
    record_run(collection, FILL_RUN_KEY,
               {"kind": "fill_model_outputs", "model_run_key": run_key,
                "checkpoint": model_results.get("checkpoint"),
                "checkpoint_sha256": model_results.get("checkpoint_sha256"),
                "fields": [PROBS_FIELD, EMBEDDING_FIELD]},
               {"num_filled": len(todo), "num_samples": count})
    return len(todo)


__all__ = [
    "ALL_BUT_REFERENCE", "SPEC_GRAMMAR", "BatchDrift", "DriftReport", "ViewSpec", "compute_drift",
    "fill_model_outputs", "format_drift_report", "load_drift_report", "most_drifted_view", "parse_view_spec",
    "resolve_views",
]
