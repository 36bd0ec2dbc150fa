"""The drift report as text (the CLI's output): the setup, then one line per batch."""

from __future__ import annotations

from curation_checks.drift import label_shift
from curation_checks.drift.result import DriftReport


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

