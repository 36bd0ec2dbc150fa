"""Helpers shared by operators and panels: input validation and turning known errors into notifications."""

from __future__ import annotations

from typing import Callable

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.views import check_label_field
from active_learning.errors import CurationError


def target_view(ctx):
    """The view an operator works on: the App's current view, or the whole dataset."""
    return ctx.target_view() if hasattr(ctx, "target_view") else ctx.view


def reported(ctx, work: Callable[[], dict], errors: tuple[type[Exception], ...] = (CurationError,)) -> dict:
    """Run an operator's ``work``; a known error becomes an App notification and ``{"error": ...}``.

    After a run in the App (not delegated) the App reloads the dataset, so new fields and runs show at once.
    """
    try:
        result = work()
    except errors as exc:
        ctx.ops.notify(str(exc), variant="error")
        return {"error": str(exc)}
    if not ctx.delegated:
        ctx.ops.reload_dataset()
    return result


def show_error(inputs: types.Object, name: str, label: str, description: str) -> types.Property:
    """Show ``label`` and ``description`` as an error in the form and disable Execute.

    A bare ``types.Error`` view is only shown; marking its property ``invalid`` is what makes FiftyOne's
    validation (the App's Execute button, ``execute_operator``) refuse to run the operator.
    """
    return inputs.view(name, types.Error(label=label, description=description), invalid=True,
                       error_message=f"{label}: {description}")


def validate_label_field(ctx, inputs: types.Object, label_field: str) -> bool:
    """Show an error and return False when ``label_field`` is unusable or the view is empty."""
    view = target_view(ctx)
    if view is None or len(view) == 0:
        show_error(inputs, "empty", "The view is empty", "Select some samples (or clear the filter) first.")
        return False
    try:
        check_label_field(view, label_field)
    except CurationError as exc:
        show_error(inputs, "bad_field", "Cannot use this label field", str(exc))
        return False
    return True


def label_field_input(ctx, inputs: types.Object) -> str | None:
    """Add the label-field choice to ``inputs``; None (with the error shown) when there is no Classification field."""
    fields = classification_fields(ctx)
    if not fields:
        show_error(inputs, "none", "No Classification field", "Import a dataset with ground truth first.")
        return None
    inputs.enum("label_field", fields, default=fields[0], label="Label field")
    return ctx.params.get("label_field", fields[0])


K_FOLD_CHOICE = "(K-fold over the view)"


def fit_tag_input(ctx, inputs: types.Object) -> None:
    """The optional split to train on: a dataset tag (disjoint from the view), or K-fold over the view."""
    tags = sorted(ctx.dataset.distinct("tags")) if ctx.dataset is not None else []
    inputs.enum("fit_tag", [K_FOLD_CHOICE] + tags, default=K_FOLD_CHOICE, label="Out-of-sample probabilities from",
                description="K-fold over the view, or a model trained on the samples with this tag (a split "
                            "disjoint from the view, e.g. train when the view is the test split)")


def model_settings_inputs(ctx, inputs: types.Object, several_seeds: bool) -> None:
    """Folds, seed(s), epochs and test-time augmentation, prefilled with the stored model run's settings (so that
    submitting unchanged reuses its probabilities), else the fixed recipe's defaults."""
    from active_learning.model import DEFAULT_TTA_PX, MAX_TTA_PX, Recipe
    from active_learning.predictions import DEFAULT_RUN_KEY
    from active_learning.runs import load_run

    config: dict = {}
    if ctx.dataset is not None and DEFAULT_RUN_KEY in ctx.dataset.list_runs():
        config = load_run(ctx.dataset, DEFAULT_RUN_KEY)[0]
    seeds = config.get("seeds") or [0]
    inputs.int("folds", default=config.get("folds") or 5, label="Folds (K-fold out-of-sample probabilities)")
    if several_seeds:
        inputs.str("seeds", default=",".join(str(s) for s in seeds), label="Seeds",
                   description="comma-separated; several = an ensemble")
    else:
        inputs.int("seed", default=seeds[0], label="Seed")
    inputs.int("epochs", default=config.get("recipe", {}).get("epochs", Recipe().epochs),
               label=f"Epochs (the fixed recipe uses {Recipe().epochs}; recorded with the run)")
    # A run from before test-time augmentation existed made plain probabilities (0).
    tta_px = int(config.get("tta_px", 0)) if config else DEFAULT_TTA_PX
    inputs.int("tta_px", default=tta_px, min=0, max=MAX_TTA_PX, label="Test-time augmentation (pixels)",
               description=f"average each image's probabilities over its shifts of up to this many pixels "
                           f"(0 = none; {DEFAULT_TTA_PX}, the default, ranked label errors better on MNIST and "
                           f"Fashion-MNIST, at {(2 * DEFAULT_TTA_PX + 1) ** 2}x the inference)")


def fit_view_of(ctx):
    """The samples to train on chosen by ``fit_tag_input``, or None for K-fold."""
    tag = ctx.params.get("fit_tag") or K_FOLD_CHOICE
    return None if tag == K_FOLD_CHOICE else ctx.dataset.match_tags(tag)


def classification_fields(ctx) -> list[str]:
    """Names of the dataset's Classification fields, ground truth first."""
    import fiftyone as fo

    if ctx.dataset is None:
        return []
    schema = ctx.dataset.get_field_schema()
    names = [n for n, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
    return sorted(names, key=lambda n: (n != "ground_truth", n))


class RebuildingPanel(foo.Panel):
    """A panel whose content is rebuilt from runs and fields on load, on dataset change and on Refresh.

    Subclasses implement ``_refresh(ctx)``; only UI state lives in ``ctx.panel``.
    """

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        self._refresh(ctx)

    def on_refresh(self, ctx):
        self._refresh(ctx)

    def _refresh(self, ctx) -> None:
        raise NotImplementedError


class ReportPanel(RebuildingPanel):
    """A panel that shows one stored report: ``panel_data(dataset)`` rebuilds it (None before any run).

    ``STATE`` and ``DATA`` map panel keys to keys of that dict: small values go to the panel's state, large ones
    (plot traces, table rows) to its data. ``has_run`` tells ``render`` whether to show the empty state.
    """

    STATE: dict[str, str] = {}
    DATA: dict[str, str] = {}

    def panel_data(self, dataset) -> dict | None:
        raise NotImplementedError

    def _refresh(self, ctx):
        data = self.panel_data(ctx.dataset) if ctx.dataset is not None else None
        ctx.panel.set_state("has_run", data is not None)
        if data is None:
            return
        for key, source in self.STATE.items():
            ctx.panel.set_state(key, data[source])
        for key, source in self.DATA.items():
            ctx.panel.set_data(key, data[source])
