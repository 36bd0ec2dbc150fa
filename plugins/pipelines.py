"""Compositions of checks that the CLI, the operators and notebooks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from active_learning.errors import DataError
from active_learning.model import ProgressCallback, Recipe
from active_learning.predictions import DEFAULT_RUN_KEY, PROBS_FIELD, ModelRunSummary, compute_model_outputs
from active_learning.runs import load_run
from active_learning.views import check_label_field
from curation_checks.base import CheckResult
from curation_checks.io import run_check

LABEL_ISSUE_CHECKS = ("label_errors", "near_duplicates", "outliers")


@dataclass(frozen=True)
class Suspect:
    """One likely label error, for reports and the panel."""

    sample_id: str
    filepath: str
    given: str
    suggested: str
    score: float
    rank: int
    flagged: bool


@dataclass(frozen=True)
class LabelIssueReport:
    """The outcome of ``find_label_issues``."""

    results: dict[str, CheckResult]
    model: ModelRunSummary | None  # None when existing out-of-sample probabilities were reused
    suspects: list[Suspect] = field(default_factory=list)


def has_out_of_sample_probs(view, label_field: str) -> bool:
    """Whether every labeled sample of ``view`` already has out-of-sample probabilities."""
    if PROBS_FIELD not in view.get_field_schema():
        return False
    labeled = view.exists(f"{label_field}.label")
    return len(labeled) > 0 and len(labeled.exists(PROBS_FIELD)) == len(labeled)


def recorded_split(view) -> str | None:
    """How the stored probabilities were made (``kfold`` or ``disjoint``), from the model run; None without one."""
    dataset = view._dataset
    if DEFAULT_RUN_KEY not in dataset.list_runs():
        return None
    config, _ = load_run(dataset, DEFAULT_RUN_KEY)
    return config.get("split", "kfold")  # runs before the disjoint split existed were K-fold


def find_label_issues(
    view,
    label_field: str = "ground_truth",
    folds: int = 5,
    seeds: Sequence[int] = (0,),
    recipe: Recipe | None = None,
    device: str | None = None,
    recompute: bool = False,
    top: int = 50,
    filter_by: str = "prune_by_noise_rate",
    progress: ProgressCallback | None = None,
    fit_view=None,
) -> LabelIssueReport:
    """Out-of-sample probabilities (computed unless present), then label errors, near-duplicates and outliers.

    The probabilities come from a K-fold over ``view``, or, with ``fit_view`` (disjoint from ``view``), from
    models trained on ``fit_view`` alone (see ``compute_model_outputs``); stored ones made the other way are
    recomputed.

    Results are fields (prefixes ``label_issue_``, ``near_duplicate_``, ``outlier_``) and runs ``check_<name>``.
    """
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    model = None
    # Stored probabilities made the other way are recomputed; ones without a model run (written by the user) are
    # kept unless a disjoint split is asked for.
    made = recorded_split(view)
    other_way = made != "disjoint" if fit_view is not None else made == "disjoint"
    if recompute or other_way or not has_out_of_sample_probs(view, label_field):
        model = compute_model_outputs(view, label_field=label_field, folds=folds, seeds=seeds, recipe=recipe,
                                      device=device, progress=progress, fit_view=fit_view)
    results = {"label_errors": run_check(view, "label_errors", label_field=label_field, filter_by=filter_by)}
    for name in LABEL_ISSUE_CHECKS[1:]:
        results[name] = run_check(view, name, label_field=label_field)
    return LabelIssueReport(results=results, model=model, suspects=worst_suspects(view, label_field, top))


def worst_suspects(view, label_field: str = "ground_truth", top: int = 50) -> list[Suspect]:
    """The ``top`` samples with the lowest label quality (flagged or not), worst first."""
    if "label_issue_rank" not in view.get_field_schema():
        return []
    ranked = view.exists("label_issue_rank").sort_by("label_issue_rank").limit(top)
    columns = ranked.values(["id", "filepath", f"{label_field}.label", "label_issue_suggested", "label_issue_score",
                             "label_issue_rank", "label_issue_flag"])
    return [Suspect(i, p, g, s, float(sc), int(r), bool(f)) for i, p, g, s, sc, r, f in zip(*columns)]


def noise_pairs_table(summary: dict, limit: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (given, suggested) pairs among flagged samples."""
    return [(p["given"], p["suggested"], int(p["count"])) for p in summary.get("pairs", [])[:limit]]

