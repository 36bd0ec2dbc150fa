"""Helpers shared by operators and panels: input validation and turning known errors into notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.data.importers import LABEL_FIELD
from active_learning.errors import CurationError
from active_learning.model.outputs import MODEL_FIELDS
from active_learning.model.own_model import OwnModel
from active_learning.model.recipes import DEFAULT_SEEDS, DEFAULT_TTA_PX, MAX_TTA_PX
from active_learning.model.settings import RECIPE_CHOICES, asked_recipe, offered_settings, parse_seeds
from active_learning.store.fields import check_label_field


def delegable_config(name: str, label: str, delegate_by_default: bool = False) -> foo.OperatorConfig:
    """The config of a heavy operator: dynamic inputs, run now or by a delegated worker (the default for trainings)."""
    return foo.OperatorConfig(name=name, label=label, dynamic=True, allow_immediate_execution=True,
                              allow_delegated_execution=True, default_choice_to_delegated=delegate_by_default)


def target_view(ctx):
    """The view an operator works on: the App's current view, or the whole dataset."""
    return ctx.target_view() if hasattr(ctx, "target_view") else ctx.view


def reported(ctx, work: Callable[[], dict], lease: bool = True) -> dict:
    """Run an operator's ``work``; a known error (``CurationError``) becomes an App notification and
    ``{"error": ...}``, an unexpected one propagates (FiftyOne shows it with its traceback).

    The work holds the dataset's writer lease (``active_learning.store.lease``; ``lease=False`` for work that takes it
    itself, step by step): a second writer is refused with who holds it. After a run in the App (not delegated) the
    App reloads the dataset, so new fields and runs show at once.
    """
    from active_learning.store.lease import writer_lease

    holder = f"the App's {getattr(ctx, 'operator_uri', None) or 'operator'}"
    try:
        if lease and ctx.dataset is not None:
            with writer_lease(ctx.dataset.name, holder):
                result = work()
        else:
            result = work()
    except CurationError as exc:
        return notified_error(ctx, exc)
    if not ctx.delegated:
        ctx.ops.reload_dataset()
    return result


def notified_error(ctx, error: CurationError) -> dict:
    """Show a known error as one App notification; the operator's result ``{"error": message}``."""
    ctx.ops.notify(str(error), variant="error")
    return {"error": str(error)}


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
    """Recipe, folds, seed(s), epochs and test-time augmentation, prefilled with ``offered_settings`` (the stored
    model run's, so that submitting unchanged reuses its probabilities, else the defaults of the recipe the dataset
    would get)."""
    offered = offered_settings(ctx.dataset, ctx.params.get("recipe"))
    inputs.enum("recipe", list(RECIPE_CHOICES), default=offered.recipe_name, label="Recipe",
                description="photo: a network for small photos (the default for colour images); photo-lite: photo "
                            "at half width (the colour default on a CPU without bfloat16 units); fast: ResNet-18 "
                            "(the default for grayscale); auto keeps the dataset's recipe once chosen")
    inputs.int("folds", default=offered.folds, min=2, label="Folds (K-fold out-of-sample probabilities)")
    if several_seeds:
        inputs.str("seeds", default=",".join(str(s) for s in offered.seeds), label="Seeds",
                   description="comma-separated; several = an ensemble")
    else:
        inputs.int("seed", default=offered.seeds[0], min=0, label="Seed")
    inputs.int("epochs", default=offered.epochs, min=1,
               label="Epochs (recorded with the run; empty = the recipe's own)")
    inputs.int("tta_px", default=offered.tta_px, min=0, max=MAX_TTA_PX, label="Test-time augmentation (pixels)",
               description="average each image's probabilities over its shifts of up to this many pixels "
                           f"(and their mirror images for the photo recipe); empty = the recipe's default "
                           f"({DEFAULT_TTA_PX} for fast: it ranked label errors better on digits; 0 for photo)")


def validate_seeds(ctx, inputs: types.Object) -> None:
    """Show an error (and disable Execute) when the typed seeds are not integers (``parse_seeds``)."""
    try:
        parse_seeds(ctx.params.get("seeds"))
    except CurationError as exc:
        show_error(inputs, "bad_seeds", "Seeds must be integers", str(exc))


@dataclass(frozen=True)
class ModelParams:
    """The model settings an operator's form sent, read once: None where the form left a setting out."""

    label_field: str
    folds: int | None
    seeds: tuple[int, ...] | None
    recipe_name: str | None
    epochs: int | None
    tta_px: int | None
    own_model: OwnModel | None

    @classmethod
    def of(cls, params: dict) -> "ModelParams":
        """The settings in an operator's ``ctx.params`` (a script may name only some)."""
        return cls(
            label_field=params.get("label_field") or LABEL_FIELD,
            folds=_int_or_none(params.get("folds")),
            seeds=parse_seeds(params.get("seeds") if params.get("seeds") is not None else params.get("seed")),
            recipe_name=params.get("recipe"),
            epochs=_int_or_none(params.get("epochs")),
            tta_px=_int_or_none(params.get("tta_px")),
            own_model=own_model_of(params),
        )

    def recipe(self, view, always: bool = False):
        """The recipe the form asks for (``asked_recipe``), or None when it asks for nothing and not ``always``."""
        return asked_recipe(view, self.recipe_name, epochs=self.epochs, seed=(self.seeds or DEFAULT_SEEDS)[0],
                            always=always)


def _int_or_none(value) -> int | None:
    return None if value is None or value == "" else int(value)


def fit_view_of(ctx):
    """The samples to train on chosen by ``fit_tag_input``, or None for K-fold."""
    tag = ctx.params.get("fit_tag") or K_FOLD_CHOICE
    return None if tag == K_FOLD_CHOICE else ctx.dataset.match_tags(tag)


OWN_MODEL_NONE = "(the fixed model)"


def own_model_inputs(ctx, inputs: types.Object) -> None:
    """Bring your own model: an embeddings field for a K-fold head, or a Classification field of predictions."""
    import fiftyone as fo

    schema = ctx.dataset.get_field_schema() if ctx.dataset is not None else {}
    ours = set(MODEL_FIELDS)
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
    try:
        own_model_of(ctx.params)
    except CurationError as exc:
        show_error(inputs, "bad_own_model", "Choose one of your embeddings and your predictions", str(exc))


def own_model_of(params: dict) -> OwnModel | None:
    """The user's own model chosen by ``own_model_inputs``, or None for the fixed model."""
    def chosen(name: str) -> str | None:
        value = params.get(name)
        return value if value and value != OWN_MODEL_NONE else None

    embeddings, predictions = chosen("embeddings_field"), chosen("predictions_field")
    if embeddings is None and predictions is None:
        return None
    return OwnModel(embeddings_field=embeddings, predictions_field=predictions)


def classification_fields(ctx) -> list[str]:
    """Names of the dataset's Classification fields, ground truth first."""
    import fiftyone as fo

    if ctx.dataset is None:
        return []
    schema = ctx.dataset.get_field_schema()
    names = [n for n, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
    return sorted(names, key=lambda n: (n != LABEL_FIELD, n))


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
