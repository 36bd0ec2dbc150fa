"""The model settings the front ends offer and read: one source of defaults for the CLI, the operators and notebooks.

``offered_settings`` is what a form is prefilled with (the dataset's model run, so that submitting unchanged reuses
its probabilities; else the defaults of the recipe the dataset would get), ``asked_recipe`` turns a recipe name and
overrides into the recipe to train (or None: reuse what is stored), ``parse_seeds`` reads seeds typed as text.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from active_learning.errors import CurationError, InputError
from active_learning.model.model_run import load_model_run
from active_learning.model.outputs import resolve_recipe
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS, RECIPES, Recipe, default_tta_px, named_recipe

AUTO = "auto"  # the recipe name that keeps the dataset's recipe once chosen (else photo for colour, fast for gray)
RECIPE_CHOICES = (AUTO, *RECIPES)


@dataclass(frozen=True)
class OfferedSettings:
    """What a form offers for a model run before the user changes anything."""

    recipe_name: str  # the recipe choice's default: the model run's recipe, else ``auto``
    recipe: Recipe  # the recipe the chosen name stands for (its epochs and test-time augmentation are offered)
    folds: int
    seeds: tuple[int, ...]
    epochs: int
    tta_px: int


def offered_settings(dataset, chosen: str | None = None) -> OfferedSettings:
    """The settings to offer for ``dataset`` when the recipe ``chosen`` is picked (None: the default choice).

    The model run's settings when there is one (its recipe, folds, seeds, epochs and test-time augmentation; a run
    of the user's own model offers ``auto`` and the fixed model's defaults), else ``DEFAULT_FOLDS``,
    ``DEFAULT_SEEDS`` and the chosen recipe's own epochs and test-time augmentation.
    """
    run = load_model_run(dataset) if dataset is not None else None
    stored = run.recipe if run is not None else None
    recipe_name = stored.name if stored is not None else AUTO
    chosen = chosen or recipe_name
    same = stored is not None and chosen == stored.name
    if same:
        recipe = stored
    elif chosen in RECIPES:
        recipe = named_recipe(chosen)
    else:
        recipe = likely_recipe(dataset)
    return OfferedSettings(
        recipe_name=recipe_name,
        recipe=recipe,
        folds=run.folds if run is not None and run.folds else DEFAULT_FOLDS,
        seeds=run.seeds if run is not None and run.seeds else DEFAULT_SEEDS,
        epochs=recipe.epochs,
        tta_px=run.tta_px if same else default_tta_px(recipe),
    )


def likely_recipe(dataset) -> Recipe:
    """The recipe ``auto`` would choose for ``dataset`` (its model run's, else by its images' colour), or ``fast``
    when there is no dataset or its images cannot be read."""
    if dataset is None:
        return RECIPES["fast"]
    try:
        return resolve_recipe(dataset)
    except CurationError:
        return RECIPES["fast"]


def asked_recipe(view, name: str | None = None, epochs: int | None = None, image_size: int | None = None,
                 seed: int = DEFAULT_SEEDS[0], always: bool = False, device: str | None = None) -> Recipe | None:
    """The recipe a caller asks for by name and overrides (``resolve_recipe``), with ``seed``.

    None when it asks for nothing (``name`` None or ``auto``, no ``epochs``, no ``image_size``) and ``always`` is
    False: ``find_label_issues`` then reuses what is stored.

    Raises:
        InputError: ``epochs`` or ``image_size`` is not a positive integer, or ``name`` is not a recipe.
    """
    for setting, value in (("epochs", epochs), ("image_size", image_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise InputError(f"`{setting}` must be a positive integer (or left empty for the recipe's own); "
                             f"got {value!r}.")
    name = name or AUTO
    if not always and name == AUTO and epochs is None and image_size is None:
        return None
    return resolve_recipe(view, name, device=device, epochs=epochs, image_size=image_size, seed=seed)


def recipe_change_note(dataset, recipe: Recipe | None) -> str | None:
    """What training ``recipe`` means when it is not the recipe of the dataset's model run; None when it is."""
    run = load_model_run(dataset)
    stored = run.recipe if run is not None else None
    if recipe is None or stored is None or stored.name == recipe.name:
        return None
    return (f"Recipe {recipe.name!r} replaces this dataset's {stored.name!r}: the new run's probabilities and "
            "checkpoint replace the old ones (recorded in the run).")


def parse_seeds(text: str | int | None) -> tuple[int, ...] | None:
    """Seeds typed as ``0,1,2`` (one seed is a plain integer); None when there are none.

    Raises:
        InputError: a seed is not a non-negative integer.
    """
    parts = [part.strip() for part in str("" if text is None else text).split(",") if part.strip()]
    if not parts:
        return None
    try:
        seeds = tuple(int(part) for part in parts)
    except ValueError:
        seeds = ()
    if not seeds or any(seed < 0 for seed in seeds):
        raise InputError(f"`seeds` must be comma-separated non-negative integers (e.g. 0,1,2); got {text!r}.")
    return seeds
