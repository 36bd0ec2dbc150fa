"""Compositions of checks that the CLI, the operators and notebooks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

from active_learning.errors import DataError
from active_learning.model import ProgressCallback, Recipe, epochs_for, select_device
from active_learning.predictions import (DEFAULT_RUN_KEY, EMBEDDING_FIELD, PROBS_FIELD, ModelRunSummary,
                                         compute_model_outputs, resolve_recipe, stored_model_config)
from active_learning.runs import load_run
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
    plan: ProbabilityPlan | None = None  # where the probabilities came from, as decided before anything ran


@dataclass(frozen=True)
class ScoringScope:
    """The samples to score for label issues and why, in words; the CLI and the App say it before anything runs."""

    view: Any
    description: str  # e.g. "the 1,500 samples tagged train that have out-of-sample probabilities from the ..."
    default: bool  # chosen by default: the caller named no samples (no tag, no narrowed view, not all)


def label_issues_scope(collection, all_samples: bool = False, fit_view=None) -> ScoringScope:
    """The samples ``find_label_issues`` should score: the one default of the CLI and the App.

    A view the caller narrowed (a tag, a filter, a selection) is scored as it is; all samples with ``all_samples``,
    or with ``fit_view`` (a split to train on, which must be disjoint from what is scored). Otherwise, by default,
    the samples that have probabilities from the recorded model run (those ``curation model`` scored, e.g. the
    train tag, but not the pool and test samples, which have none and would start a new K-fold training over all
    of them), and all samples when no model run has scored any.
    """
    dataset = collection._dataset
    if getattr(collection, "_stages", None):
        return ScoringScope(collection, f"the {len(collection):,} samples {_where(collection)}", default=False)
    if all_samples or fit_view is not None:
        return ScoringScope(dataset, f"all {len(dataset):,} samples", default=False)
    config = stored_model_config(dataset)
    if config is None or PROBS_FIELD not in dataset.get_field_schema():
        return ScoringScope(dataset, f"all {len(dataset):,} samples (no model run yet)", default=True)
    run_view = dataset.load_run_view(DEFAULT_RUN_KEY)
    scored = run_view.exists(PROBS_FIELD)
    count = len(scored)
    if not count:
        return ScoringScope(dataset, f"all {len(dataset):,} samples (the model run's samples have no probabilities)",
                            default=True)
    where = _where(run_view) if getattr(run_view, "_stages", None) else ""
    kind = ("probabilities (NOT out-of-sample)" if config.get("split") == "predictions"
            and not config.get("out_of_sample") else "out-of-sample probabilities")
    description = (f"the {count:,} samples{' ' + where if where else ''} that have {kind} from the model run of "
                   f"{run_date(config)}")
    return ScoringScope(dataset if count == len(dataset) else scored, description, default=True)


def _where(view) -> str:
    """Which samples a view holds, in words: ``tagged train`` for a tag match, else ``of the view``."""
    import fiftyone.core.stages as fos

    stages = list(getattr(view, "_stages", None) or [])
    if len(stages) == 1 and isinstance(stages[0], fos.MatchTags) and stages[0].bool:
        return "tagged " + (" and " if stages[0].all else " or ").join(stages[0].tags)
    return "of the view"


def run_date(config: dict) -> str:
    """When a run was recorded, e.g. ``2025-01-05 10:00 UTC`` (``?`` for a run without the time)."""
    try:
        return datetime.fromisoformat(str(config["created_at"])).strftime("%Y-%m-%d %H:%M UTC")
    except (KeyError, ValueError):
        return "?"


@dataclass(frozen=True)
class ProbabilityPlan:
    """Where ``find_label_issues`` gets its probabilities: reused, or trained for (what and why), before any run."""

    train: bool
    reasons: tuple[str, ...] = ()  # why it trains, in words
    changed: tuple[str, ...] = ()  # the asked-for settings that differ from the stored run (``changed_settings``)
    folds: int | None = None
    seeds: tuple[int, ...] | None = None
    tta_px: int | None = None
    recipe: Recipe | None = None  # None: ``compute_model_outputs`` resolves it (the dataset's, else by colour)
    estimated_seconds: float | None = None  # judged by the recorded model run; None without a comparable one
    message: str = ""  # what it trains and why, e.g. "no out-of-sample probabilities for these 3,000 labeled ..."


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


def plan_probabilities(view, label_field: str = "ground_truth", folds: int | None = None,
                       seeds: Sequence[int] | None = None, recipe: Recipe | None = None, recompute: bool = False,
                       fit_view=None, tta_px: int | None = None, device: str | None = None) -> ProbabilityPlan:
    """Whether ``find_label_issues`` reuses the stored probabilities of ``view`` or trains (see there), and why.

    Settings left at None keep the stored model run's values (else the defaults: 5 folds, seed 0, the dataset's
    recipe, the recipe's test-time augmentation). The message names what is trained over how many samples and
    about how long it takes, judged by the recorded model run when it used the same network and image size.
    """
    changed = changed_settings(view, fit_view is not None, folds, seeds, tta_px, recipe)
    labeled = view.exists(f"{label_field}.label")
    num_labeled = len(labeled)
    has_probs = PROBS_FIELD in view.get_field_schema()
    missing = num_labeled - (len(labeled.exists(PROBS_FIELD)) if has_probs else 0)
    if not (recompute or changed or missing or not num_labeled):
        return ProbabilityPlan(train=False)
    stored = _model_config(view) or {}
    folds = folds if folds is not None else stored.get("folds") or 5
    seeds = tuple(seeds) if seeds is not None else tuple(stored.get("seeds") or (recipe.seed if recipe else 0,))
    tta_px = tta_px if tta_px is not None else int(stored.get("tta_px", 0)) if stored else None
    recipe = recipe if recipe is not None else _recorded_recipe(stored)
    reasons = []
    if missing:
        which = "these" if missing == num_labeled else f"{missing:,} of these"
        reasons.append(f"no out-of-sample probabilities for {which} {num_labeled:,} labeled samples")
    if changed:
        reasons.append("asked for " + "; ".join(changed))
    if not reasons:
        reasons.append("asked to recompute them" if recompute else "no labeled samples")
    trained = recipe or resolve_recipe(view)
    num_fit = len(fit_view.exists(f"{label_field}.label")) if fit_view is not None else 0
    seeds_text = f" x {len(seeds)} seeds" if len(seeds) > 1 else ""
    if fit_view is None:
        what = f"{folds} folds{seeds_text} and a final model over these {num_labeled:,} labeled samples"
        epochs = epochs_for(trained, max(1, num_labeled * (folds - 1) // folds))
    else:
        what = (f"{len(seeds)} model{'s' if len(seeds) > 1 else ''} on the {num_fit:,} labeled samples to train "
                f"on, to score these {num_labeled:,}")
        epochs = epochs_for(trained, max(1, num_fit))
    seconds, judged_by = _estimate_seconds(view._dataset, trained, num_labeled, folds, len(seeds), num_fit, device)
    when = (f"about {_duration(seconds)}, judging by the model run of {judged_by}" if seconds is not None
            else "no earlier run of this network to tell how long it takes")
    epochs_text = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    message = f"{'; '.join(reasons)}: training {what} (recipe {trained.name}, {epochs_text}; {when})"
    return ProbabilityPlan(train=True, reasons=tuple(reasons), changed=tuple(changed), folds=folds, seeds=seeds,
                           tta_px=tta_px, recipe=recipe, estimated_seconds=seconds, message=message)


def _training_units(recipe: Recipe, num_labeled: int, folds: int | None, num_seeds: int, num_fit: int) -> float:
    """Image-epochs a model run trains (what its time scales with): K-fold and a final model, or disjoint models."""
    if num_fit:
        return num_seeds * epochs_for(recipe, num_fit) * num_fit
    per_fold = max(1, num_labeled * ((folds or 5) - 1) // (folds or 5))
    return (num_seeds * (folds or 5) * epochs_for(recipe, per_fold) * per_fold
            + epochs_for(recipe, max(1, num_labeled)) * num_labeled)


def _estimate_seconds(dataset, recipe: Recipe, num_labeled: int, folds: int | None, num_seeds: int, num_fit: int,
                      device: str | None) -> tuple[float | None, str]:
    """The seconds a training should take, scaled from the recorded model run (same network, image size and
    device), and that run's date; (None, "") without such a run."""
    if DEFAULT_RUN_KEY not in dataset.list_runs():
        return None, ""
    config, results = load_run(dataset, DEFAULT_RUN_KEY)
    before = _recorded_recipe(config)
    seconds, scored = results.get("seconds"), results.get("num_scored")
    if before is None or not seconds or not scored or (before.architecture, before.image_size, before.widths) != (
            recipe.architecture, recipe.image_size, recipe.widths):
        return None, ""
    if str(results.get("device") or "").split(":")[0] != select_device(device).split(":")[0]:
        return None, ""
    done = _training_units(before, int(scored), config.get("folds"), len(config.get("seeds") or [0]),
                           int(config.get("num_fit") or 0) if config.get("split") == "disjoint" else 0)
    todo = _training_units(recipe, num_labeled, folds, num_seeds, num_fit)
    return float(seconds) * todo / max(done, 1), run_date(config)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


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
    announce: Callable[[str], None] | None = None,
) -> LabelIssueReport:
    """Out-of-sample probabilities (computed unless present), then label errors, near-duplicates and outliers.

    The probabilities come from a K-fold over ``view``, or, with ``fit_view`` (disjoint from ``view``), from
    models trained on ``fit_view`` alone (see ``compute_model_outputs``). Stored ones are reused unless
    ``recompute``, or a setting asked for here differs from the one they were made with (``changed_settings``):
    K-fold or ``fit_view``, ``folds``, ``seeds``, ``tta_px``, ``recipe``. Settings left at None match what is
    stored and, when recomputing, keep the stored model run's values (else the defaults: 5 folds, seed 0, the
    dataset's recipe, the recipe's default test-time augmentation), so changing one setting changes only that one.
    ``rank_method``: cleanlab's label quality score that orders the suspects (``self_confidence``,
    ``normalized_margin`` or ``confidence_weighted_entropy``). ``announce`` is told what will be trained and why
    (``plan_probabilities``) before any training starts. Which samples to pass: ``label_issues_scope``.

    Results are fields (prefixes ``label_issue_``, ``near_duplicate_``, ``outlier_``) and runs ``check_<name>``.
    """
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    get_check("label_errors", filter_by=filter_by, rank_method=rank_method)  # bad options fail before any training
    model = None
    plan = plan_probabilities(view, label_field, folds, seeds, recipe, recompute, fit_view, tta_px, device)
    if plan.train:
        if announce is not None:
            announce(plan.message)
        seeds = plan.seeds or (0,)
        model = compute_model_outputs(view, label_field=label_field, folds=plan.folds or 5, seeds=seeds,
                                      recipe=plan.recipe.with_seed(seeds[0]) if plan.recipe else None,
                                      device=device, progress=progress, fit_view=fit_view, tta_px=plan.tta_px)
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
                            recomputed_because=list(plan.changed), skipped=skipped, plan=plan)


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

