"""Compositions of checks that the CLI, the operators and notebooks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from active_learning.errors import DataError
from active_learning.model import ProgressCallback, Recipe
from active_learning.predictions import (EMBEDDING_FIELD, PROBS_FIELD, ModelRunSummary, compute_model_outputs,
                                         stored_model_config)
from active_learning.views import check_label_field
from curation_checks.base import CheckResult
from curation_checks.io import run_check
from curation_checks.label_errors import DEFAULT_FILTER
from curation_checks.registry import get_check

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
    recomputed_because: list[str] = field(default_factory=list)  # the settings that differed from the stored run
    skipped: list[str] = field(default_factory=list)  # checks that need embeddings the view does not have


def has_out_of_sample_probs(view, label_field: str) -> bool:
    """Whether every labeled sample of ``view`` already has out-of-sample probabilities."""
    if PROBS_FIELD not in view.get_field_schema():
        return False
    labeled = view.exists(f"{label_field}.label")
    return len(labeled) > 0 and len(labeled.exists(PROBS_FIELD)) == len(labeled)


def _model_config(view) -> dict | None:
    return stored_model_config(view._dataset)


def _recorded_recipe(config: dict) -> Recipe | None:
    """The recipe a model run recorded (fields this version does not know are dropped), or None."""
    recorded = config.get("recipe")
    return Recipe.from_dict(recorded) if recorded else None


def changed_settings(view, disjoint: bool, folds: int | None = None, seeds: Sequence[int] | None = None,
                     tta_px: int | None = None, recipe: Recipe | None = None) -> list[str]:
    """The asked-for settings that differ from those the stored probabilities were made with, in words.

    A setting left at None matches anything. Without a model run (probabilities the user wrote) only asking for
    a disjoint split counts as a change. Runs older than a setting count as its default (K-fold, no TTA).
    """
    config = _model_config(view)
    if config is None:
        return ["a disjoint split (the stored probabilities have no model run)"] if disjoint else []
    made_disjoint = config.get("split", "kfold") == "disjoint"
    changed = []
    if made_disjoint != disjoint:
        changed.append("a disjoint split instead of K-fold" if disjoint else "K-fold instead of a disjoint split")
    if folds is not None and not disjoint and config.get("folds") != folds:
        changed.append(f"folds {config.get('folds')} -> {folds}")
    if seeds is not None and list(config.get("seeds", [])) != [int(s) for s in seeds]:
        changed.append(f"seeds {config.get('seeds')} -> {[int(s) for s in seeds]}")
    if tta_px is not None and int(config.get("tta_px", 0)) != tta_px:
        changed.append(f"tta_px {config.get('tta_px', 0)} -> {tta_px}")
    if recipe is not None:
        made = Recipe.from_dict(config.get("recipe", {}))
        recorded = {k: v for k, v in made.to_dict().items() if k != "seed"}  # the seed is in seeds
        asked = {k: v for k, v in recipe.to_dict().items() if k != "seed"}
        if made.name != recipe.name:
            changed.append(f"recipe {made.name} -> {recipe.name}")
        else:
            changed += [f"recipe {k} {recorded.get(k)} -> {v}" for k, v in asked.items() if recorded.get(k) != v]
    return changed


def find_label_issues(
    view,
    label_field: str = "ground_truth",
    folds: int | None = None,
    seeds: Sequence[int] | None = None,
    recipe: Recipe | None = None,
    device: str | None = None,
    recompute: bool = False,
    top: int = 50,
    filter_by: str = DEFAULT_FILTER,
    progress: ProgressCallback | None = None,
    fit_view=None,
    tta_px: int | None = None,
    rank_method: str = "self_confidence",
) -> LabelIssueReport:
    """Out-of-sample probabilities (computed unless present), then label errors, near-duplicates and outliers.

    The probabilities come from a K-fold over ``view``, or, with ``fit_view`` (disjoint from ``view``), from
    models trained on ``fit_view`` alone (see ``compute_model_outputs``). Stored ones are reused unless
    ``recompute``, or a setting asked for here differs from the one they were made with (``changed_settings``):
    K-fold or ``fit_view``, ``folds``, ``seeds``, ``tta_px``, ``recipe``. Settings left at None match what is
    stored and, when recomputing, keep the stored model run's values (else the defaults: 5 folds, seed 0, the
    dataset's recipe, the recipe's default test-time augmentation), so changing one setting changes only that one.
    ``rank_method``: cleanlab's label quality score that orders the suspects (``self_confidence``,
    ``normalized_margin`` or ``confidence_weighted_entropy``).

    Results are fields (prefixes ``label_issue_``, ``near_duplicate_``, ``outlier_``) and runs ``check_<name>``.
    """
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    get_check("label_errors", filter_by=filter_by, rank_method=rank_method)  # bad options fail before any training
    model = None
    changed = changed_settings(view, fit_view is not None, folds, seeds, tta_px, recipe)
    if recompute or changed or not has_out_of_sample_probs(view, label_field):
        stored = _model_config(view) or {}
        folds = folds if folds is not None else stored.get("folds") or 5
        seeds = tuple(seeds) if seeds is not None else tuple(stored.get("seeds") or (recipe.seed if recipe else 0,))
        tta_px = tta_px if tta_px is not None else int(stored.get("tta_px", 0)) if stored else None
        recipe = recipe if recipe is not None else _recorded_recipe(stored)
        model = compute_model_outputs(view, label_field=label_field, folds=folds, seeds=seeds,
                                      recipe=recipe.with_seed(seeds[0]) if recipe else None, device=device,
                                      progress=progress, fit_view=fit_view, tta_px=tta_px)
    results = {"label_errors": run_check(view, "label_errors", label_field=label_field, filter_by=filter_by,
                                         rank_method=rank_method)}
    skipped = []
    has_embeddings = EMBEDDING_FIELD in view.get_field_schema() and \
        len(view.exists(EMBEDDING_FIELD)) == len(view)
    for name in LABEL_ISSUE_CHECKS[1:]:
        if has_embeddings:
            results[name] = run_check(view, name, label_field=label_field)
        else:  # the user's own predictions come without embeddings
            skipped.append(name)
    return LabelIssueReport(results=results, model=model, suspects=worst_suspects(view, label_field, top),
                            recomputed_because=changed if model is not None else [], skipped=skipped)


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

