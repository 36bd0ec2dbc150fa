"""Label issues in the App: an operator to find them (delegable), actions on selected samples, and a panel."""

from __future__ import annotations

from pathlib import PurePath

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.data.importers import LABEL_FIELD
from active_learning.errors import CurationError, InputError
from active_learning.model.model_run import load_model_run
from active_learning.model.trust import MIN_SUGGESTION_CONFIDENCE, TrustVerdict
from active_learning.progress import with_eta
from active_learning.store.label_history import UndoResult, queue_for_review, review_queue, undo_last_change
from active_learning.store.runs import load_run
from curation_app.common import (
    ModelParams,
    delegable_config,
    ReportPanel,
    fit_tag_input,
    fit_view_of,
    label_field_input,
    model_settings_inputs,
    notified_error,
    own_model_inputs,
    reported,
    show_error,
    target_view,
    validate_label_field,
    validate_seeds,
)
from curation_checks.label_errors import DEFAULT_RANK_METHOD, RANK_METHODS
from curation_checks.label_issues import (ACCEPT_SOURCE, TOP_SUSPECTS, accept_suggestions, find_label_issues,
                                          label_issues_scope, worst_suspects)

ISSUE_TAG = "label_issue"
REVIEW_REASON = "suspected label error"


def label_issues_data(dataset, label_field: str = LABEL_FIELD, top: int = TOP_SUSPECTS) -> dict | None:
    """What the panel shows, rebuilt from the ``check_label_errors`` run and the fields; None before any run."""
    if "check_label_errors" not in dataset.list_runs():
        return None
    config, results = load_run(dataset, "check_label_errors")
    summary = results["summary"]
    pairs = summary.get("pairs", [])[:20]
    suspects = worst_suspects(dataset, config.get("label_field", label_field), top)
    classes = summary.get("classes", [])
    return {
        "summary": {k: summary[k] for k in ("num_scored", "num_issues", "num_unlabeled_skipped", "filter_by",
                                            "rank_method", "trust") if k in summary},
        "pairs_trace": [{"type": "bar", "x": [f"{p['given']} → {p['suggested']}" for p in pairs],
                         "y": [p["count"] for p in pairs], "marker": {"color": "#e4572e"}}],
        "noise_trace": [{"type": "heatmap", "z": summary.get("noise_matrix", []), "x": classes, "y": classes,
                         "colorscale": "Blues", "zmin": 0, "zmax": 1, "texttemplate": "%{z:.2f}",
                         "hovertemplate": "given %{y}, true %{x}: %{z:.3f}<extra></extra>"}],
        "suspects": [{"rank": s.rank, "file": PurePath(s.filepath).name, "score": round(s.score, 4), "given": s.given,
                      "suggested": s.suggested, "flagged": "yes" if s.flagged else "", "id": s.sample_id}
                     for s in suspects],
        "num_in_review": len(review_queue(dataset)),
        "label_field": config.get("label_field", label_field),
        "probabilities": probabilities_source(dataset),
    }


def probabilities_source(dataset) -> str:
    """How the stored probabilities were made, from the model run, in words ("" without one)."""
    run = load_model_run(dataset)
    return run.description if run is not None else ""


def _accepted_message(changed: int, refused: int) -> str:
    message = f"Changed {changed} labels; the old ones are kept in label_history."
    if refused:
        message += (f" Refused {refused} suggestion(s) below {MIN_SUGGESTION_CONFIDENCE:.0%} confidence: send them "
                    "to review.")
    return message


def undo_message(result: UndoResult) -> str:
    """What an undo of the last accepted change did, in words, or that there was nothing to undo."""
    left = (f" {result.skipped} of its samples were relabeled since and keep their label." if result.skipped
            else "")
    if not result.num_reverted:
        return "Nothing to undo: no accepted suggestion is left to revert." + left
    change = result.change or {}
    when = str(change.get("when") or "")[:16].replace("T", " ")
    by = f" by {change['who']}" if change.get("who") else ""
    return (f"Undid the last accepted change ({when} UTC{by}): {result.describe()}. Both labels stay in "
            f"label_history.{left}")


def _undo_last_accepted(ctx, label_field: str) -> UndoResult | None:
    """Revert the last accepted change and say what it reverted; None (with the error shown) when it cannot."""
    try:
        result = undo_last_change(ctx.dataset, label_field=label_field, user=_user(ctx), source=ACCEPT_SOURCE)
    except CurationError as exc:
        notified_error(ctx, exc)
        return None
    ctx.ops.notify(undo_message(result), variant="success" if result.num_reverted else "info")
    if result.num_reverted:
        ctx.ops.reload_dataset()
    return result


def _has_selection(ctx) -> bool:
    """Whether samples are selected in the grid; if not, say so."""
    if not ctx.selected:
        ctx.ops.notify("Select samples in the grid first.", variant="warning")
    return bool(ctx.selected)


def _user(ctx) -> str | None:
    user = getattr(ctx, "user", None)
    return getattr(user, "email", None) or getattr(user, "name", None) if user else None


class FindLabelIssues(foo.Operator):
    """Out-of-sample probabilities (when missing), label errors, near-duplicates and outliers for the view."""

    @property
    def config(self):
        return delegable_config("find_label_issues", "Curation: find label issues", delegate_by_default=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = label_field_input(ctx, inputs)
        if label_field is None:
            return types.Property(inputs)
        fit_tag_input(ctx, inputs)
        _scope_inputs(ctx, inputs)
        model_settings_inputs(ctx, inputs, several_seeds=True)
        own_model_inputs(ctx, inputs)
        inputs.enum("rank_method", list(RANK_METHODS), default=DEFAULT_RANK_METHOD, label="Rank suspects by",
                    description="cleanlab's label quality score")
        inputs.bool("recompute", default=False, label="Recompute probabilities even if present",
                    description="they are recomputed anyway when a setting above differs from theirs")
        inputs.enum("passes", list(PASSES), default=PASSES[0], label="Passes",
                    description="2: train the folds again without the samples the first pass flags and score "
                                "everything with those models (better probabilities under noisy labels, twice "
                                "the training); auto: what the stored run did")
        validate_seeds(ctx, inputs)
        validate_label_field(ctx, inputs, label_field)
        return types.Property(inputs)

    def execute(self, ctx):
        def work() -> dict:
            # A setting missing from the params (a script that names only some) reuses the stored probabilities'.
            asked = ModelParams.of(ctx.params)
            fit_view = fit_view_of(ctx)
            scope = label_issues_scope(target_view(ctx), all_samples=bool(ctx.params.get("all_samples")),
                                       fit_view=fit_view)
            progress = with_eta(lambda fraction, message: ctx.set_progress(progress=fraction, label=message))
            progress(0.0, f"scoring {scope.description}")
            report = find_label_issues(
                scope.view, label_field=asked.label_field, folds=asked.folds, seeds=asked.seeds,
                recipe=None if asked.own_model else asked.recipe(scope.view),
                recompute=bool(ctx.params.get("recompute", False)), tta_px=asked.tta_px,
                rank_method=str(ctx.params.get("rank_method") or DEFAULT_RANK_METHOD), progress=progress,
                fit_view=fit_view, announce=lambda message: ctx.set_progress(progress=0.0, label=message),
                own_model=asked.own_model, passes=passes_param(ctx.params),
            )
            summary = report.results["label_errors"].summary
            return {"num_scored": summary["num_scored"], "num_issues": summary["num_issues"],
                    "scope": scope.description, "trained": report.plan.message if report.plan else ""}

        return reported(ctx, work)


PASSES = ("auto", "1", "2")


def passes_param(params: dict) -> int | None:
    """The operator's ``passes`` choice as ``find_label_issues`` takes it: None (auto), 1 or 2."""
    value = params.get("passes")
    if value in (None, "", "auto"):
        return None
    if str(value) not in PASSES:
        raise InputError(f"`passes` must be one of {', '.join(PASSES)}; got {value!r}.")
    return int(value)


def _scope_inputs(ctx, inputs: types.Object) -> None:
    """Which samples the operator will score (``label_issues_scope``), and, on the whole dataset, a box for all."""
    try:
        chosen = label_issues_scope(target_view(ctx), all_samples=bool(ctx.params.get("all_samples")),
                                    fit_view=fit_view_of(ctx))
        offered = label_issues_scope(target_view(ctx)).default  # the App shows the whole dataset
    except CurationError:
        return
    if offered and fit_view_of(ctx) is None:
        inputs.bool("all_samples", default=False, label="Score all samples",
                    description="by default only the samples that have out-of-sample probabilities from the model "
                                "run; the others would start a K-fold training over all samples")
    inputs.view("scope", types.Notice(label=f"Scores {chosen.description}" + (
        " (filter the view or tick 'Score all samples' to choose)." if chosen.default else ".")))


class _SelectedSamplesOperator(foo.Operator):
    """Base for actions on the samples selected in the App (or, from Python, on the target view)."""

    def _sample_ids(self, ctx) -> list[str]:
        if ctx.selected:
            return list(ctx.selected)
        return list(ctx.params.get("sample_ids") or [])

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not self._sample_ids(ctx):
            show_error(inputs, "none", "No samples selected", "Select samples in the grid first.")
        return types.Property(inputs)


class AcceptSuggestedLabels(_SelectedSamplesOperator):
    """Replace the selected samples' labels by the suggested ones; the old labels go to ``label_history``."""

    @property
    def config(self):
        return foo.OperatorConfig(name="accept_suggested_labels", label="Curation: accept suggested labels",
                                  dynamic=True)

    def execute(self, ctx):
        def work() -> dict:
            label_field = ctx.params.get("label_field") or LABEL_FIELD
            changed, refused = accept_suggestions(ctx.dataset, self._sample_ids(ctx), label_field, _user(ctx))
            ctx.ops.notify(_accepted_message(changed, refused), variant="warning" if refused else "success")
            return {"changed": changed, "refused": refused}

        return reported(ctx, work)


class UndoLabelChange(foo.Operator):
    """Revert the last accepted suggestion (every sample it relabeled); the undo is kept in ``label_history``."""

    @property
    def config(self):
        return foo.OperatorConfig(name="undo_label_change", label="Curation: undo the last accepted label change")

    def execute(self, ctx):
        result = _undo_last_accepted(ctx, ctx.params.get("label_field") or LABEL_FIELD)
        if result is None:
            return {"error": "the last change cannot be undone"}
        return {"reverted": result.num_reverted, "skipped": result.skipped,
                "transitions": [list(t) for t in result.transitions], "message": undo_message(result)}


class SendToReview(_SelectedSamplesOperator):
    """Put the selected samples in the review queue that the active-learning loop pushes to Label Studio."""

    @property
    def config(self):
        return foo.OperatorConfig(name="send_to_review", label="Curation: send to review", dynamic=True)

    def execute(self, ctx):
        def work() -> dict:
            queued = queue_for_review(ctx.dataset, self._sample_ids(ctx), ctx.params.get("reason", REVIEW_REASON))
            ctx.ops.notify(f"Queued {queued} samples for review.", variant="success")
            return {"queued": queued}

        return reported(ctx, work)


class LabelIssuesPanel(ReportPanel):
    """Summary, issues per given/suggested pair, the noise matrix, ranked suspects and actions on a selection."""

    STATE = {"summary": "summary", "num_in_review": "num_in_review", "label_field": "label_field",
             "probabilities": "probabilities"}
    DATA = {"pairs": "pairs_trace", "noise_matrix": "noise_trace", "suspects": "suspects"}

    @property
    def config(self):
        return foo.PanelConfig(name="label_issues", label="Label issues", surfaces="grid", icon="report_problem")

    def panel_data(self, dataset) -> dict | None:
        return label_issues_data(dataset)

    def show_suspects(self, ctx):
        """Set the App's view to the scored samples, worst label quality first."""
        ctx.ops.set_view(ctx.dataset.exists("label_issue_rank").sort_by("label_issue_rank"))

    def show_flagged(self, ctx):
        """Set the App's view to the flagged samples only, worst first."""
        from fiftyone import ViewField as F

        ctx.ops.set_view(ctx.dataset.match(F("label_issue_flag") == True).sort_by("label_issue_rank"))  # noqa: E712

    def tag_selected(self, ctx):
        if not _has_selection(ctx):
            return
        ctx.dataset.select(ctx.selected).tag_samples(ISSUE_TAG)
        ctx.ops.notify(f"Tagged {len(ctx.selected)} samples '{ISSUE_TAG}'.", variant="success")
        ctx.ops.reload_dataset()

    def accept_selected(self, ctx):
        if not _has_selection(ctx):
            return
        try:
            changed, refused = accept_suggestions(ctx.dataset, list(ctx.selected),
                                                  ctx.panel.get_state("label_field", LABEL_FIELD), _user(ctx))
        except CurationError as exc:
            notified_error(ctx, exc)
            return
        ctx.ops.notify(_accepted_message(changed, refused), variant="warning" if refused else "success")
        ctx.ops.reload_dataset()
        self._refresh(ctx)

    def undo_last(self, ctx):
        """Revert the last accepted change, whatever is selected; the panel shows the labels back."""
        if _undo_last_accepted(ctx, ctx.panel.get_state("label_field", LABEL_FIELD)) is not None:
            self._refresh(ctx)

    def review_selected(self, ctx):
        if not _has_selection(ctx):
            return
        try:
            queued = queue_for_review(ctx.dataset, list(ctx.selected), REVIEW_REASON)
        except CurationError as exc:
            notified_error(ctx, exc)
            return
        ctx.ops.notify(f"Queued {queued} samples for review.", variant="success")
        self._refresh(ctx)

    def render(self, ctx):
        panel = types.Object()
        if not ctx.panel.get_state("has_run"):
            panel.md("**No label issues yet.** Run the operator **Curation: find label issues** (or "
                     "`curation label-errors DATASET`), then press Refresh.", name="empty")
            panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
            return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100, pad=1))
        s = ctx.panel.get_state("summary", {})
        scored = max(int(s.get("num_scored", 0)), 1)
        verdict = TrustVerdict.from_dict(s.get("trust"))
        weak = verdict is not None and not verdict.trusted
        if verdict is not None:
            panel.md(("⚠️ **" if weak else "**Trusted.** ") + verdict.message + ("**" if weak else ""), name="trust_md")
        what = ("flagged (the model disagrees; not likely label errors at this accuracy)" if weak
                else "likely label errors")
        panel.md(
            f"**{s.get('num_issues', 0)} {what}** among **{s.get('num_scored', 0)}** "
            f"scored samples ({100 * s.get('num_issues', 0) / scored:.1f}%), "
            f"{s.get('num_unlabeled_skipped', 0)} unlabeled skipped; cleanlab `{s.get('filter_by', '')}`, ranked by "
            f"`{s.get('rank_method', '')}`. In review: {ctx.panel.get_state('num_in_review', 0)}."
            + (f"  \nProbabilities: {source}." if (source := ctx.panel.get_state("probabilities")) else ""),
            name="summary_md")
        buttons = panel.h_stack("view_buttons", align_x="left", gap=2)
        buttons.btn("show_suspects", label="Show ranked suspects", on_click=self.show_suspects)
        buttons.btn("show_flagged", label="Show flagged only", on_click=self.show_flagged)
        buttons.btn("refresh", label="Refresh", on_click=self.on_refresh)
        actions = panel.h_stack("actions", align_x="left", gap=2)
        actions.btn("tag", label="Tag selected", on_click=self.tag_selected)
        actions.btn("accept", label="Accept suggested label", on_click=self.accept_selected)
        actions.btn("undo", label="Undo last change", on_click=self.undo_last)
        actions.btn("review", label="Send to review", on_click=self.review_selected)
        # Explicit margins and {"text": ...} titles: the App's plotly drops plain-string titles and clips the rest.
        panel.plot("pairs", layout={"title": {"text": "Flagged samples per given → suggested label"}, "height": 320,
                                    "margin": {"t": 56, "l": 56, "r": 16, "b": 56},
                                    "xaxis": {"title": {"text": "given → suggested"}, "type": "category"},
                                    "yaxis": {"title": {"text": "flagged samples"}, "rangemode": "tozero",
                                              "tickformat": ",d"}},
                   config={"displayModeBar": False})
        panel.plot("noise_matrix", layout={"title": {"text": "Estimated noise matrix P(given | true)"},
                                           "height": 360,
                                           "margin": {"t": 56, "l": 64, "r": 16, "b": 56},
                                           "xaxis": {"title": {"text": "true label"}, "type": "category"},
                                           "yaxis": {"title": {"text": "given label"}, "type": "category"}},
                   config={"displayModeBar": False})
        table = types.TableView()
        for key, label in (("rank", "Rank"), ("file", "File"), ("score", "Label quality"), ("given", "Given"),
                           ("suggested", "Suggested"), ("flagged", "Flagged")):
            table.add_column(key, label=label)
        panel.list("suspects", types.Object(), view=table, label="Worst suspects")
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100, pad=1))
