"""Out-of-sample probabilities of the fixed model: stratified K-fold over one view, or models trained on a disjoint one.

Every probability row comes from a model that never saw the sample, which is what cleanlab's label-error search,
the bias report and the loop's strategies need. ``compute_model_outputs`` (``active_learning.model.outputs``) runs
these over FiftyOne views.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from active_learning.errors import DataError
from active_learning.model.fixed import FixedModel, ProgressCallback, check_images
from active_learning.model.recipes import DEFAULT_FOLDS, Recipe


def check_fold_counts(labels: np.ndarray, num_classes: int, folds: int) -> None:
    """Raise ``DataError`` unless a stratified ``folds``-fold can hold out every present class in every fold.

    The message names the classes with too few labeled samples and the largest ``folds`` that would work.
    """
    if folds < 2:
        raise DataError(f"K-fold needs at least 2 folds; got {folds}.")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts[counts > 0]
    if present.min() < folds:
        small = [int(c) for c in np.flatnonzero((counts > 0) & (counts < folds))]
        fewer = f" or use `folds={int(present.min())}` (the smallest class count)" if present.min() >= 2 else ""
        raise DataError(
            f"Classes {small} have fewer labeled samples than folds ({folds}): label more samples of them{fewer}."
        )


def cross_val_proba(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    folds: int = DEFAULT_FOLDS,
    recipe: Recipe | None = None,
    seeds: tuple[int, ...] | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    tta_px: int = 0,
    on_fold: Callable[[FixedModel, np.ndarray], None] | None = None,
    train_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-sample predicted probabilities by stratified K-fold: every row comes from a model that never saw it.

    With several ``seeds`` the fold split and the training seed change together and the probabilities are
    averaged (an ensemble), which steadies the ranking of borderline samples. ``tta_px``: see
    ``FixedModel.predict_proba``. ``on_fold(model, held_out)`` is called after each fold (e.g. to keep a model).
    ``train_mask``: the rows a fold may train on (default all); every row is still predicted by the fold that
    holds it out, and the folds are the same as without a mask (the split is over all labels). A second pass
    that leaves out the first pass's suspects (``active_learning.model.outputs``) uses it.
    """
    from sklearn.model_selection import StratifiedKFold

    recipe = recipe or Recipe()
    seeds = seeds or (recipe.seed,)
    labels = np.asarray(labels, dtype=np.int64)
    check_images(images)
    check_fold_counts(labels, num_classes, folds)
    if train_mask is not None:
        train_mask = np.asarray(train_mask, dtype=bool)
        if train_mask.shape != labels.shape:
            raise DataError(f"train_mask has {train_mask.shape[0]} rows for {labels.shape[0]} labels.")
        check_fold_counts(labels[train_mask], num_classes, folds)
    total = folds * len(seeds)
    probs = np.zeros((len(images), num_classes), dtype=np.float64)
    done = 0
    for seed in seeds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train_index, held_out in splitter.split(np.zeros(len(labels)), labels):
            if train_mask is not None:
                train_index = train_index[train_mask[train_index]]
            def fold_progress(fraction: float, message: str, _done: int = done) -> None:
                if progress is not None:
                    progress((_done + fraction) / total, f"fold {_done % folds + 1}/{folds} seed {seed}: {message}")

            model = FixedModel(num_classes, recipe.with_seed(seed), device=device)
            model.fit(images, labels[train_index], progress=fold_progress, rows=train_index)
            probs[held_out] += model.predict_proba(images, tta_px=tta_px, rows=held_out)
            if on_fold is not None:
                on_fold(model, held_out)
            done += 1
    probs /= len(seeds)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def disjoint_proba(
    fit_images: np.ndarray,
    fit_labels: np.ndarray,
    images: np.ndarray,
    num_classes: int,
    recipe: Recipe | None = None,
    seeds: tuple[int, ...] | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    tta_px: int = 0,
) -> tuple[np.ndarray, FixedModel]:
    """Out-of-sample probabilities of ``images`` from models trained on a disjoint labeled split.

    One model per seed, trained on all of ``fit_images``; with several seeds their probabilities are averaged.
    Returns the probabilities and the first seed's model (the run's final model). The caller guarantees that the
    split is disjoint (``compute_model_outputs`` checks sample ids).
    """
    recipe = recipe or Recipe()
    seeds = seeds or (recipe.seed,)
    check_images(images)
    probs = np.zeros((len(images), num_classes), dtype=np.float64)
    first: FixedModel | None = None
    for i, seed in enumerate(seeds):
        def seed_progress(fraction: float, message: str, _i: int = i) -> None:
            if progress is not None:
                progress((_i + fraction) / len(seeds), f"seed {seed}: {message}")

        model = FixedModel(num_classes, recipe.with_seed(seed), device=device)
        model.fit(fit_images, fit_labels, progress=seed_progress)
        probs += model.predict_proba(images, tta_px=tta_px)
        first = first or model
    probs /= len(seeds)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32), first
