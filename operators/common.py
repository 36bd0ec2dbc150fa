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


def reported(ctx, work: Callable[[], dict], errors: tuple[type[Exception], ...] = (CurationError,),
             lease: bool = True) -> dict:
    """Run an operator's ``work``; a known error becomes an App notification and ``{"error": ...}``.

    The work holds the dataset's writer lease (``active_learning.lease``; ``lease=False`` for work that takes it
    itself, step by step): a second writer is refused with who holds it. After a run in the App (not delegated) the
    App reloads the dataset, so new fields and runs show at once.
    """
    from active_learning.lease import writer_lease

    holder = f"the App's {getattr(ctx, 'operator_uri', None) or 'operator'}"
    try:
        if lease and ctx.dataset is not None:
            with writer_lease(ctx.dataset.name, holder):
                result = work()
        else:
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
    """Recipe, folds, seed(s), epochs and test-time augmentation, prefilled with the stored model run's settings (so
    that submitting unchanged reuses its probabilities), else the defaults of the recipe the dataset would get."""
    from active_learning.model import MAX_TTA_PX, RECIPES, default_tta_px, named_recipe
    from active_learning.predictions import stored_model_config

    config: dict = (stored_model_config(ctx.dataset) if ctx.dataset is not None else None) or {}
    seeds = config.get("seeds") or [0]
    stored_name = (config.get("recipe") or {}).get("name", "fast") if config else "auto"
    inputs.enum("recipe", ["auto", *RECIPES], default=stored_name, label="Recipe",
                description="photo: a network for small photos (the default for colour images); fast: ResNet-18 "
                            "(the default for grayscale); auto keeps the dataset's recipe once chosen")
    chosen = ctx.params.get("recipe", stored_name)
    recipe = named_recipe(chosen) if chosen in RECIPES else _likely_recipe(ctx)
    inputs.int("folds", default=config.get("folds") or 5, label="Folds (K-fold out-of-sample probabilities)")
    if several_seeds:
        inputs.str("seeds", default=",".join(str(s) for s in seeds), label="Seeds",
                   description="comma-separated; several = an ensemble")
    else:
        inputs.int("seed", default=seeds[0], label="Seed")
    stored_epochs = (config.get("recipe") or {}).get("epochs") if chosen == stored_name else None
    epochs = stored_epochs or (recipe.epochs if recipe else None)
    inputs.int("epochs", default=epochs, label="Epochs (recorded with the run; empty = the recipe's own)")
    # A run from before test-time augmentation existed made plain probabilities (0).
    tta_px = int(config.get("tta_px", 0)) if config and chosen == stored_name else (
        default_tta_px(recipe) if recipe else None)
    inputs.int("tta_px", default=tta_px, min=0, max=MAX_TTA_PX, label="Test-time augmentation (pixels)",
               description="average each image's probabilities over its shifts of up to this many pixels "
                           "(and their mirror images for the photo recipe); empty = the recipe's default "
                           "(2 for fast: it ranked label errors better on digits; 0 for photo)")


def _likely_recipe(ctx):
    """The recipe ``auto`` would choose for the dataset (its images' colour), or ``fast`` when they can't be read."""
    from active_learning.errors import CurationError
    from active_learning.model import RECIPES
    from active_learning.predictions import resolve_recipe

    try:
        return resolve_recipe(ctx.dataset) if ctx.dataset is not None else RECIPES["fast"]
    except CurationError:
        return RECIPES["fast"]


def recipe_from_params(view, params: dict):
    """The recipe the operator's form asks for, or None when it asks for nothing (reuse what is stored)."""
    from active_learning.predictions import resolve_recipe

    name = params.get("recipe") or "auto"
    epochs = params.get("epochs")
    seeds = [int(s) for s in str(params.get("seeds") or params.get("seed") or "0").split(",") if s.strip()]
    if name == "auto" and epochs is None:
        return None
    return resolve_recipe(view, name, epochs=None if epochs is None else int(epochs), seed=seeds[0] if seeds else 0)


def fit_view_of(ctx):
    """The samples to train on chosen by ``fit_tag_input``, or None for K-fold."""
    tag = ctx.params.get("fit_tag") or K_FOLD_CHOICE
    return None if tag == K_FOLD_CHOICE else ctx.dataset.match_tags(tag)


OWN_MODEL_NONE = "(the fixed model)"


def own_model_inputs(ctx, inputs: types.Object) -> None:
    """Bring your own model: an embeddings field for a K-fold head, or a Classification field of predictions."""
    import fiftyone as fo

    schema = ctx.dataset.get_field_schema() if ctx.dataset is not None else {}
    ours = {"model_probs", "model_embedding", "model_prediction"}
    vectors = sorted(n for n, f in schema.items() if n not in ours and (
        isinstance(f, (fo.VectorField, fo.ArrayField)) or
        (isinstance(f, fo.ListField) and isinstance(getattr(f, "field", None), fo.FloatField))))
    inputs.enum("embeddings_field", [OWN_MODEL_NONE, *vectors], default=OWN_MODEL_NONE,
                label="Your embeddings (optional)",
                description="a K-fold logistic-regression head on this field gives the probabilities in seconds")
    predictions = [n for n in classification_fields(ctx) if n not in ours and n != ctx.params.get("label_field")]
    inputs.enum("predictions_field", [OWN_MODEL_NONE, *predictions], default=OWN_MODEL_NONE,
                label="Your predictions (optional)",
                description="a Classification field with logits or confidences; recorded as not out-of-sample")


def own_model_outputs(view, params: dict):
    """The summary of the user's own model chosen by ``own_model_inputs``, or None for the fixed model."""
    from active_learning.own_model import Head, compute_head_outputs, import_predictions

    embeddings = params.get("embeddings_field")
    predictions = params.get("predictions_field")
    label_field = params.get("label_field", "ground_truth")
    if embeddings and embeddings != OWN_MODEL_NONE:
        return compute_head_outputs(view, embeddings, label_field=label_field, folds=int(params.get("folds") or 5),
                                    head=Head(seed=int(params.get("seed") or 0)))
    if predictions and predictions != OWN_MODEL_NONE:
        return import_predictions(view, predictions, label_field=label_field)
    return None


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
