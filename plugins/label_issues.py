"""Find label issues, composed once: the probabilities (reused, or trained for), then the label-issue checks.

``label_issues_scope`` picks the samples to score and ``find_label_issues`` scores them; the CLI
(``curation label-errors``, the demo), the App's "Find label issues" operator and notebooks call these two with
the library's defaults, so every front end scores the same samples with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from active_learning.errors import CurationError, DataError, InputError
from active_learning.model.fixed import ProgressCallback, Recipe, epochs_for, select_device
from active_learning.model.model_run import ModelRun, load_model_run
from active_learning.model.outputs import (EMBEDDING_FIELD, PROBS_FIELD, ModelRunSummary, compute_model_outputs,
                                           resolve_recipe)
from active_learning.model.own_model import OwnModel
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS, recipe_note
from active_learning.model.trust import MIN_SUGGESTION_CONFIDENCE
from active_learning.store.fields import check_label_field
from active_learning.store.label_history import set_labels
from curation_checks.base import CheckResult
from curation_checks.io import read_inputs, run_check
from curation_checks.label_errors import DEFAULT_FILTER, DEFAULT_RANK_METHOD
from curation_checks.registry import get_check

LABEL_ISSUE_CHECKS = ("label_errors", "near_duplicates", "outliers")
ACCEPT_SOURCE = "label_issues_panel"  # the ``source`` of accepted suggestions in ``label_history``
TOP_SUSPECTS = 50  # how many of the worst suspects a report and the panel list


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
    model: ModelRunSummary | None  # the fixed model's run when it trained; None when probabilities were reused
    suspects: list[Suspect] = field(default_factory=list)
    recomputed_because: list[str] = field(default_factory=list)  # the settings that differed from the stored run
    skipped: list[str] = field(default_factory=list)  # checks that need embeddings the view does not have
    plan: ProbabilityPlan | None = None  # where the probabilities came from, as decided before anything ran
    own_model: ModelRunSummary | None = None  # the user's own model's outputs, when ``own_model`` was given
    first_pass: FirstPass | None = None  # when this call ran a second pass: what the first one found


@dataclass(frozen=True)
class FirstPass:
    """The first pass a second one left out (``find_label_issues(passes=2)``): its flags and its accuracy."""

    num_flagged: int  # samples the first pass flagged, left out of the second pass's training
    num_scored: int
    out_of_sample_accuracy: float  # the first pass's agreement with the given labels (the second's is the run's)


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
    run = load_model_run(dataset)
    if run is None or PROBS_FIELD not in dataset.get_field_schema():
        return ScoringScope(dataset, f"all {len(dataset):,} samples (no model run yet)", default=True)
    run_view = dataset.load_run_view(run.run_key)
    scored = run_view.exists(PROBS_FIELD)
    count = len(scored)
    if not count:
        return ScoringScope(dataset, f"all {len(dataset):,} samples (the model run's samples have no probabilities)",
                            default=True)
    where = _where(run_view) if getattr(run_view, "_stages", None) else ""
    kind = "out-of-sample probabilities" if run.out_of_sample else "probabilities (NOT out-of-sample)"
    description = (f"the {count:,} samples{' ' + where if where else ''} that have {kind} from the model run of "
                   f"{run.run_date}")
    return ScoringScope(dataset if count == len(dataset) else scored, description, default=True)


def _where(view) -> str:
    """Which samples a view holds, in words: ``tagged train`` for a tag match, else ``of the view``."""
    import fiftyone.core.stages as fos

    stages = list(getattr(view, "_stages", None) or [])
    if len(stages) == 1 and isinstance(stages[0], fos.MatchTags) and stages[0].bool:
        return "tagged " + (" and " if stages[0].all else " or ").join(stages[0].tags)
    return "of the view"


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
    second_pass: bool = False  # then retrain without the first pass's suspects (``passes=2``)
    estimated_seconds: float | None = None  # judged by the recorded model run; None without a comparable one
    message: str = ""  # what it trains and why, e.g. "no out-of-sample probabilities for these 3,000 labeled ..."


def has_out_of_sample_probs(view, label_field: str) -> bool:
    """Whether every labeled sample of ``view`` already has out-of-sample probabilities."""
    if PROBS_FIELD not in view.get_field_schema():
        return False
    labeled = view.exists(f"{label_field}.label")
    return len(labeled) > 0 and len(labeled.exists(PROBS_FIELD)) == len(labeled)


def changed_settings(view, disjoint: bool, folds: int | None = None, seeds: Sequence[int] | None = None,
                     tta_px: int | None = None, recipe: Recipe | None = None) -> list[str]:
    """The asked-for settings that differ from those the stored probabilities were made with, in words.

    A setting left at None matches anything. Without a model run (probabilities the user wrote) only asking for
    a disjoint split counts as a change. Runs older than a setting count as its default (K-fold, no TTA).
    """
    run = load_model_run(view._dataset)
    if run is None:
        return ["a disjoint split (the stored probabilities have no model run)"] if disjoint else []
    changed = []
    if run.disjoint != disjoint:
        changed.append("a disjoint split instead of K-fold" if disjoint else "K-fold instead of a disjoint split")
    if folds is not None and not disjoint and run.folds != folds:
        changed.append(f"folds {run.folds} -> {folds}")
    if seeds is not None and list(run.seeds) != [int(s) for s in seeds]:
        changed.append(f"seeds {list(run.seeds)} -> {[int(s) for s in seeds]}")
    if tta_px is not None and run.tta_px != tta_px:
        changed.append(f"tta_px {run.tta_px} -> {tta_px}")
    if recipe is not None:
        changed += recipe_changes(run, recipe)
    return changed


def recipe_changes(run: ModelRun, recipe: Recipe) -> list[str]:
    """How ``recipe`` differs from the recipe of ``run`` (its seed aside: that is in the seeds), in words."""
    if run.recipe is None:
        return [f"the fixed model (recipe {recipe.name}) instead of {run.model_name}"]
    if run.recipe.name != recipe.name:
        return [f"recipe {run.recipe.name} -> {recipe.name}"]
    recorded = {k: v for k, v in run.recipe.to_dict().items() if k != "seed"}
    asked = {k: v for k, v in recipe.to_dict().items() if k != "seed"}
    return [f"recipe {k} {recorded.get(k)} -> {v}" for k, v in asked.items() if recorded.get(k) != v]


def plan_probabilities(view, label_field: str = "ground_truth", folds: int | None = None,
                       seeds: Sequence[int] | None = None, recipe: Recipe | None = None, recompute: bool = False,
                       fit_view=None, tta_px: int | None = None, device: str | None = None,
                       passes: int | None = None) -> ProbabilityPlan:
    """Whether ``find_label_issues`` reuses the stored probabilities of ``view`` or trains (see there), and why.

    Settings left at None keep the stored model run's values (else the defaults: ``DEFAULT_FOLDS`` folds,
    ``DEFAULT_SEEDS``, the dataset's recipe, the recipe's test-time augmentation, one pass). The message names
    what is trained over how many samples and about how long it takes, judged by the recorded model run when it
    used the same network and image size. ``passes=2`` asks for a second pass (``second_pass``): when the stored
    probabilities are a first pass made with the asked-for settings, only the second pass trains.
    """
    if passes not in (None, 1, 2):
        raise InputError(f"`passes` must be 1 or 2; got {passes!r}.")
    if passes == 2 and fit_view is not None:
        raise InputError("A second pass needs K-fold: with a split to train on (--fit-tag), the scored samples are "
                         "never trained on, so leaving their suspects out would change nothing.")
    changed = changed_settings(view, fit_view is not None, folds, seeds, tta_px, recipe)
    labeled = view.exists(f"{label_field}.label")
    num_labeled = len(labeled)
    has_probs = PROBS_FIELD in view.get_field_schema()
    missing = num_labeled - (len(labeled.exists(PROBS_FIELD)) if has_probs else 0)
    run = load_model_run(view._dataset)
    stored_passes = run.passes if run is not None else 1
    passes = passes or stored_passes
    if stored_passes == 2 and passes == 1:
        changed.append("one pass instead of two")  # the stored probabilities are a second pass's
    if not (recompute or changed or missing or not num_labeled):
        if passes == 2 and stored_passes == 1:
            if run is None or run.recipe is None or run.disjoint:
                raise InputError(SECOND_PASS_NEEDS)
            return _second_pass_only(run, num_labeled, device)
        return ProbabilityPlan(train=False)
    folds = folds if folds is not None else (run.folds if run is not None and run.folds else DEFAULT_FOLDS)
    if seeds is None:
        seeds = run.seeds if run is not None and run.seeds else (recipe.seed if recipe else DEFAULT_SEEDS[0],)
    seeds = tuple(seeds)
    tta_px = tta_px if tta_px is not None else run.tta_px if run is not None else None
    recipe = recipe if recipe is not None else run.recipe if run is not None else None
    reasons = []
    if missing:
        which = "these" if missing == num_labeled else f"{missing:,} of these"
        reasons.append(f"no out-of-sample probabilities for {which} {num_labeled:,} labeled samples")
    if changed:
        reasons.append("asked for " + "; ".join(changed))
    if not reasons:
        reasons.append("asked to recompute them" if recompute else "no labeled samples")
    trained = recipe or resolve_recipe(view, device=device)
    num_fit = len(fit_view.exists(f"{label_field}.label")) if fit_view is not None else 0
    seeds_text = f" x {len(seeds)} seeds" if len(seeds) > 1 else ""
    if fit_view is None:
        what = f"{folds} folds{seeds_text} and a final model over these {num_labeled:,} labeled samples"
        epochs = epochs_for(trained, max(1, num_labeled * (folds - 1) // folds))
    else:
        what = (f"{len(seeds)} model{'s' if len(seeds) > 1 else ''} on the {num_fit:,} labeled samples to train "
                f"on, to score these {num_labeled:,}")
        epochs = epochs_for(trained, max(1, num_fit))
    seconds, judged_by = _estimate_seconds(run, trained, num_labeled, folds, len(seeds), num_fit, device)
    when = (f"about {_duration(seconds)}, judging by the model run of {judged_by}" if seconds is not None
            else "no earlier run of this network to tell how long it takes")
    epochs_text = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    if passes == 2:
        what += ", then again without the suspects the first pass flags (a second pass)"
        seconds = 2 * seconds if seconds is not None else None
        when = (f"about {_duration(seconds)}, judging by the model run of {judged_by}" if seconds is not None
                else when)
    message = f"{'; '.join(reasons)}: training {what} (recipe {trained.name}, {epochs_text}; {when})"
    note = recipe_note(trained.name) if recipe is None else None  # why ``auto`` chose it
    message += f". {note}" if note else ""
    return ProbabilityPlan(train=True, reasons=tuple(reasons), changed=tuple(changed), folds=folds, seeds=seeds,
                           tta_px=tta_px, recipe=recipe, estimated_seconds=seconds, message=message,
                           second_pass=passes == 2)


def _second_pass_only(run: ModelRun, num_labeled: int, device: str | None) -> ProbabilityPlan:
    """The plan when the stored probabilities are a first pass with the asked-for settings: the second alone."""
    seconds, judged_by = (None, "") if run.recipe is None else _estimate_seconds(
        run, run.recipe, num_labeled, run.folds, len(run.seeds) or 1, 0, device)
    when = (f"about {_duration(seconds)}, judging by the model run of {judged_by}" if seconds is not None
            else "about as long as the first pass")
    reason = "asked for a second pass"
    message = (f"{reason}: training {run.folds} folds and a final model over these {num_labeled:,} labeled samples "
               f"again, without the suspects the stored first pass flags (recipe {run.model_name}; {when})")
    return ProbabilityPlan(train=False, reasons=(reason,), folds=run.folds, seeds=run.seeds, tta_px=run.tta_px,
                           recipe=run.recipe, estimated_seconds=seconds, message=message, second_pass=True)


def _training_units(recipe: Recipe, num_labeled: int, folds: int | None, num_seeds: int, num_fit: int) -> float:
    """Image-epochs a model run trains (what its time scales with): K-fold and a final model, or disjoint models."""
    if num_fit:
        return num_seeds * epochs_for(recipe, num_fit) * num_fit
    folds = folds or DEFAULT_FOLDS
    per_fold = max(1, num_labeled * (folds - 1) // folds)
    return (num_seeds * folds * epochs_for(recipe, per_fold) * per_fold
            + epochs_for(recipe, max(1, num_labeled)) * num_labeled)


def _estimate_seconds(run: ModelRun | None, recipe: Recipe, num_labeled: int, folds: int | None, num_seeds: int,
                      num_fit: int, device: str | None) -> tuple[float | None, str]:
    """The seconds a training should take, scaled from the recorded model run (same network, image size and
    device), and that run's date; (None, "") without such a run."""
    if run is None:
        return None, ""
    before = run.recipe
    if before is None or not run.seconds or not run.num_scored:
        return None, ""
    if (before.architecture, before.image_size, before.widths) != (recipe.architecture, recipe.image_size,
                                                                   recipe.widths):
        return None, ""
    if run.device.split(":")[0] != select_device(device).split(":")[0]:
        return None, ""
    done = _training_units(before, run.num_scored, run.folds, len(run.seeds) or 1, run.num_fit if run.disjoint else 0)
    todo = _training_units(recipe, num_labeled, folds, num_seeds, num_fit)
    return run.seconds * todo / max(done, 1), run.run_date


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
    top: int = TOP_SUSPECTS,
    filter_by: str = DEFAULT_FILTER,
    progress: ProgressCallback | None = None,
    fit_view=None,
    tta_px: int | None = None,
    rank_method: str = DEFAULT_RANK_METHOD,
    announce: Callable[[str], None] | None = None,
    own_model: OwnModel | None = None,
    passes: int | None = None,
) -> LabelIssueReport:
    """Out-of-sample probabilities (computed unless present), then label errors, near-duplicates and outliers.

    The probabilities come from a K-fold over ``view``, or, with ``fit_view`` (disjoint from ``view``), from
    models trained on ``fit_view`` alone (see ``compute_model_outputs``). Stored ones are reused unless
    ``recompute``, or a setting asked for here differs from the one they were made with (``changed_settings``):
    K-fold or ``fit_view``, ``folds``, ``seeds``, ``tta_px``, ``recipe``. Settings left at None match what is
    stored and, when recomputing, keep the stored model run's values (else the defaults: ``DEFAULT_FOLDS`` folds,
    ``DEFAULT_SEEDS``, the dataset's recipe, the recipe's default test-time augmentation), so changing one setting
    changes only that one. With ``own_model`` (the user's embeddings with a K-fold head, or their predictions) its
    probabilities replace the stored ones first (``folds`` and ``seeds`` go to the head) and are used as they are.
    ``rank_method``: cleanlab's label quality score that orders the suspects (``self_confidence``,
    ``normalized_margin`` or ``confidence_weighted_entropy``). ``announce`` is told what will be trained and why
    (``plan_probabilities``) before any training starts. Which samples to pass: ``label_issues_scope``.

    ``passes=2`` (K-fold, the fixed model): after the first pass, the same folds are trained again without the
    samples its ``label_errors`` check flags, and every sample is scored by the second models (cleanlab's
    CleanLearning idea: a model trained on cleaner labels gives better probabilities; docs/model.md has what it
    changes on CIFAR-10 photos). A rerun after a crash between the passes trains only the second; None keeps
    what the stored run did.

    Results are fields (prefixes ``label_issue_``, ``near_duplicate_``, ``outlier_``) and runs ``check_<name>``.
    """
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    get_check("label_errors", filter_by=filter_by, rank_method=rank_method)  # bad options fail before any training
    model = own = first_pass = None
    if own_model is not None:
        if passes == 2:
            raise InputError("A second pass retrains the fixed model; with your own model or predictions, leave "
                             "out the flagged samples and retrain it yourself.")
        own = own_model.compute(view, label_field, folds=folds or DEFAULT_FOLDS, seeds=seeds or DEFAULT_SEEDS)
        plan = ProbabilityPlan(train=False)
    else:
        plan = plan_probabilities(view, label_field, folds, seeds, recipe, recompute, fit_view, tta_px, device,
                                  passes)
    if (plan.train or plan.second_pass) and announce is not None:
        announce(plan.message)
    if plan.train:
        seeds = plan.seeds or DEFAULT_SEEDS
        share = 0.5 if plan.second_pass else 1.0
        model = compute_model_outputs(view, label_field=label_field, folds=plan.folds or DEFAULT_FOLDS, seeds=seeds,
                                      recipe=plan.recipe.with_seed(seeds[0]) if plan.recipe else None,
                                      device=device, progress=_part(progress, 0.0, share), fit_view=fit_view,
                                      tta_px=plan.tta_px)
    if plan.second_pass:
        first_pass, model = second_pass(view, label_field, filter_by, rank_method, device,
                                        _part(progress, 0.5 if plan.train else 0.0, 1.0))
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
                            recomputed_because=list(plan.changed), skipped=skipped, plan=plan, own_model=own,
                            first_pass=first_pass)


SECOND_PASS_REASON = "flagged by the first pass"
SECOND_PASS_NEEDS = ("A second pass retrains the fixed model's K-fold, and these probabilities come from elsewhere "
                     "(your own model, predictions, or a split to train on): recompute them with the fixed model "
                     "(--recompute, without --fit-tag or your own model), or leave out the flagged samples and "
                     "retrain your model yourself.")


def second_pass(view, label_field: str, filter_by: str = DEFAULT_FILTER, rank_method: str = DEFAULT_RANK_METHOD,
                device: str | None = None, progress: ProgressCallback | None = None
                ) -> tuple[FirstPass, ModelRunSummary]:
    """Retrain the stored model run's folds without the samples its probabilities flag, and score every sample
    again (``find_label_issues(passes=2)``). The flags are recomputed from the stored first-pass probabilities
    with the ``label_errors`` check's rule, so this depends on nothing but them; the run is recorded as pass 2."""
    run = load_model_run(view._dataset)
    if run is None or run.recipe is None or run.disjoint:
        raise InputError(SECOND_PASS_NEEDS)
    if run.passes == 2:
        raise InputError("The stored probabilities are already a second pass; recompute the first pass "
                         "(passes=1) before running another.")
    check = get_check("label_errors", filter_by=filter_by, rank_method=rank_method)
    inputs = read_inputs(view, label_field, check.requires)
    labeled = inputs.labels >= 0
    flags = np.asarray(check.run(inputs).per_sample["flag"], dtype=bool)
    flagged = [i for i, f in zip(inputs.sample_ids, flags) if f]
    probs = inputs.pred_probs[labeled]
    accuracy = float((probs.argmax(1) == inputs.labels[labeled]).mean())
    first = FirstPass(num_flagged=len(flagged), num_scored=int(labeled.sum()), out_of_sample_accuracy=accuracy)
    model = compute_model_outputs(view, label_field=label_field, folds=run.folds or DEFAULT_FOLDS, seeds=run.seeds,
                                  recipe=run.recipe.with_seed(run.seeds[0]) if run.seeds else run.recipe,
                                  device=device, progress=progress, tta_px=run.tta_px, leave_out=flagged,
                                  passes=2, leave_out_reason=SECOND_PASS_REASON)
    return first, model


def _part(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """``progress`` for one part of the work, from ``start`` to ``end`` of the whole."""
    if progress is None or (start, end) == (0.0, 1.0):
        return progress
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def worst_suspects(view, label_field: str = "ground_truth", top: int = TOP_SUSPECTS) -> list[Suspect]:
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



def accept_suggestions(dataset, sample_ids: Sequence[str], label_field: str, user: str | None,
                       min_confidence: float = MIN_SUGGESTION_CONFIDENCE) -> tuple[int, int]:
    """Set the label of each sample to its ``label_issue_suggested`` value, keeping the old one in the history.

    A suggestion the model gives less than ``min_confidence`` probability is refused (on CIFAR-10 photos such
    suggestions were wrong too often; docs/label_errors.md). Returns (labels changed, suggestions refused); when
    every selected suggestion is refused, a ``CurationError`` says why and what to do.
    """
    schema = dataset.get_field_schema()
    if "label_issue_suggested" not in schema or "label_issue_confidence" not in schema:
        raise CurationError("There are no suggested labels with their confidence yet: run 'Find label issues' "
                            "first.")
    ids, suggested, confidence = dataset.select(list(sample_ids)).values(
        ["id", "label_issue_suggested", "label_issue_confidence"])
    sure = {i: s for i, s, c in zip(ids, suggested, confidence)
            if s is not None and c is not None and c >= min_confidence}
    refused = sum(1 for s, c in zip(suggested, confidence) if s is not None and (c is None or c < min_confidence))
    if refused and not sure:
        raise CurationError(f"Refused: the model gives {'this suggestion' if refused == 1 else 'these suggestions'} "
                            f"less than {min_confidence:.0%} probability, too unsure to relabel with one click. "
                            "Send the samples to review instead, or relabel them by hand.")
    changed = set_labels(dataset, sure, label_field, why="accepted the suggested label (cleanlab)",
                         source=ACCEPT_SOURCE, user=user)
    return changed, refused
