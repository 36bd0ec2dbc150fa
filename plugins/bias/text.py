"""The bias report as text (the CLI's output): accuracy, worst classes, class balance, worst slices and groups."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from active_learning.model.trust import model_trust
from curation_checks.bias.result import BiasReport
from curation_checks.bias.settings import DEFAULT_TOP
from curation_checks.bias.slices import SliceStat


def _fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or ``n/a``."""
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    """A p-value: three decimals, scientific below 0.001."""
    return "n/a" if value != value else (f"{value:.1e}" if value < 0.001 else f"{value:.3f}")


def points_vs_rest(accuracy: float | None, rest_accuracy: float | None) -> str:
    """The slice's accuracy minus the rest's, in percentage points: negative when the slice is worse ("-66.9 pts")."""
    if accuracy is None or rest_accuracy is None or accuracy != accuracy or rest_accuracy != rest_accuracy:
        return "n/a"
    return f"{100 * (accuracy - rest_accuracy):+.1f} pts"


def _slice_line(stat: SliceStat, width: int) -> str:
    """One slice or group: size, accuracy with its interval, the difference from the rest, Holm's p."""
    line = (f"  {stat.label:<{width}}  n={stat.size:<6} acc {_fmt(stat.accuracy)} [{_fmt(stat.ci_low)}, "
            f"{_fmt(stat.ci_high)}], {points_vs_rest(stat.accuracy, stat.rest_accuracy)} vs rest "
            f"({_fmt(stat.rest_accuracy)})  p_holm={_fmt_p(stat.p_adjusted)}")
    if stat.composition:
        line += "  mostly " + ", ".join(f"{c} {share:.0%}" for c, share in stat.composition)
    return line


def _ranked(title: str, stats: Sequence[SliceStat], num_tested: int, alpha: float, top: int) -> list[str]:
    """The significant slices (at most ``top``), else the weakest three, under a title line."""
    significant = [s for s in stats if s.significant]
    if significant:
        lines = [f"{title}: {len(significant)} of {num_tested} tested are significantly worse than the rest "
                 f"(one-sided Fisher exact, Holm, alpha {alpha}):"]
        shown = significant[:top]
    else:
        lines = [f"{title}: none of {num_tested} tested is significantly worse than the rest (alpha {alpha})"
                 + ("; the weakest:" if stats else ".")]
        shown = list(stats[:min(top, 3)])
    width = max((len(s.label) for s in shown), default=0)
    return lines + [_slice_line(s, width) for s in shown]


def format_bias_report(report: BiasReport, top: int = DEFAULT_TOP) -> str:
    """A short text report: accuracy, worst classes by F1, worst slices and groups with their intervals."""
    metrics = report.metrics
    lines = [
        f"Bias report over {report.num_scored} scored samples of {report.num_samples} "
        f"(label field {report.label_field!r}; {report.num_unlabeled} unlabeled"
        + (f", {report.num_unscored} labeled without model outputs: rerun `curation model`" if report.num_unscored
           else "") + ")",
        f"Out-of-sample accuracy {_fmt(metrics.accuracy)}; macro F1 {_fmt(metrics.macro_f1)}, "
        f"weighted F1 {_fmt(metrics.weighted_f1)}",
    ]
    verdict = model_trust(metrics.accuracy)
    if not verdict.trusted:  # per-class and per-slice gaps then say more about the model than about the data
        lines.append(verdict.message)
    worst = metrics.worst_classes(min(top, 3))
    parts = []
    for name in worst:
        i = metrics.classes.index(name)
        parts.append(f"{name} F1 {_fmt(metrics.f1[i], 2)} (precision {_fmt(metrics.precision[i], 2)}, recall "
                     f"{_fmt(metrics.recall[i], 2)}, n={int(metrics.support[i])})")
    lines.append("Worst classes by F1: " + "; ".join(parts))
    distribution = report.distribution
    balance = (f"Class balance: imbalance ratio {_fmt(distribution.imbalance_ratio, 2)} (largest / smallest "
               "non-empty class)")
    if distribution.missing_classes:
        balance += f"; no samples of {', '.join(distribution.missing_classes[:5])}"
    lines.append(balance)
    if distribution.reference is not None:
        order = np.argsort(-np.abs(distribution.difference))[:3]
        diffs = ", ".join(f"{distribution.classes[i]} {distribution.difference[i]:+.3f}" for i in order)
        lines.append(f"  vs the reference: chi-square {_fmt(distribution.chi2, 2)}, p={_fmt_p(distribution.p_value)}"
                     f"{'' if distribution.chi2_reliable else ' (some expected counts < 5: rough)'}; "
                     f"largest differences in fraction: {diffs}")
    slices = report.slices
    title = f"Slices of {', '.join(slices.fields)}"
    if slices.crosses:
        title += f" ({slices.num_tested - slices.num_crossed} one-field, {slices.num_crossed} crossed)"
    lines += _ranked(title, slices.slices, slices.num_tested, slices.alpha, top)
    if report.groups is not None:
        groups = report.groups
        lines += _ranked(f"Embedding groups ({groups.n_groups}, field {groups.field!r})", groups.groups,
                         len(groups.groups), groups.alpha, top)
    return "\n".join(lines)
