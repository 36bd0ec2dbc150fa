"""The fixed model over FiftyOne views: out-of-sample probabilities, a checkpoint, embeddings, evaluation.

Fields written (prefix ``model_``): ``model_probs`` (list of floats, out-of-sample), ``model_prediction``
(Classification with confidence), ``model_embedding`` (penultimate features). The run ``curation_model``
(``DEFAULT_RUN_KEY``) records the recipe, folds, seeds, device, the checkpoint path and its SHA-256, and the
figures; read it back with ``active_learning.model.model_run.load_model_run``.
"""

from __future__ import annotations

import logging
import numbers
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from active_learning.data.image_source import load_view_images
from active_learning.data.images import load_images
from active_learning.errors import DataError, InputError, ModelError
from active_learning.model.augment import tta_description
from active_learning.model.checkpoints import TEMP_SUFFIX, temp_file_writer
from active_learning.model.fixed import (MAX_TTA_PX, FixedModel, ProgressCallback, Recipe, default_recipe,
                                         default_tta_px, named_recipe, select_device, uses_bf16)
from active_learning.model.model_run import DEFAULT_RUN_KEY, FIXED_MODEL, load_model_run
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS
from active_learning.model.splits import cross_val_proba, disjoint_proba
from active_learning.store.faults import pause_point
from active_learning.store.fields import LabeledArrays, labeled_arrays, write_fields
from active_learning.store.processes import process_started
from active_learning.store.runs import load_run, record_run

PROBS_FIELD = "model_probs"
PREDICTION_FIELD = "model_prediction"
EMBEDDING_FIELD = "model_embedding"
MODEL_FIELDS = (PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRunSummary:
    """What ``compute_model_outputs`` did, for reports."""

    run_key: str
    num_scored: int
    num_unlabeled_skipped: int
    folds: int
    seeds: tuple[int, ...]
    out_of_sample_accuracy: float
    test_accuracy: float | None
    num_test: int
    checkpoint: str
    checkpoint_sha256: str
    device: str
    seconds: float
    split: str = "kfold"  # or "disjoint": a model trained on another view scored this one
    num_fit: int = 0  # disjoint: the labeled samples the model was trained on
    tta_px: int = 0  # test-time augmentation: probabilities averaged over shifts of up to this many pixels
    recipe: str = "fast"  # the named recipe the model was trained with
    tta_flip: bool = False  # test-time augmentation averaged over mirror images too (recipes that train with flips)
    passes: int = 1  # 2: a second pass, trained without the ``num_left_out`` samples the first pass flagged
    num_left_out: int = 0

    @property
    def source(self) -> str:
        """How the probabilities are out-of-sample, in words."""
        tta = f", {tta_description(self.tta_px, self.tta_flip)}" if self.tta_px or self.tta_flip else ""
        if self.split == "predictions":
            return self.recipe  # e.g. "predictions in weak"
        if self.split == "disjoint":
            return (f"model trained on a disjoint view of {self.num_fit} labeled samples, "
                    f"seeds {list(self.seeds)}{tta}")
        left_out = f", trained without {self.num_left_out:,} suspects" if self.num_left_out else ""
        return f"{self.folds}-fold, seeds {list(self.seeds)}{tta}{left_out}"


def resolve_recipe(view, name: str | None = None, device: str | None = None, **overrides) -> Recipe:
    """The recipe to train with on ``view``: ``name`` (``fast``/``photo``/``photo-lite``), or for ``None``/``"auto"``
    the one the dataset's model run already uses (a dataset keeps its recipe), else ``default_recipe``: ``fast`` for
    grayscale images (judged on a sample of the view's images), ``photo`` for colour ones where ``device`` (None:
    ``select_device``) trains under bfloat16, ``photo-lite`` on a CPU without bfloat16 units. ``overrides`` that
    are not None replace fields.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name not in (None, "auto"):
        return named_recipe(name, **overrides)
    run = load_model_run(view._dataset)
    stored = run.recipe if run is not None else None
    if stored is not None:
        return replace_recipe(stored, **overrides)
    paths = view.values("filepath")
    sample = [paths[i] for i in np.linspace(0, len(paths) - 1, min(64, len(paths))).astype(int)] if paths else []
    if not sample:
        raise DataError("The view is empty: there are no images to choose a recipe for.")
    bf16 = uses_bf16(select_device(device))
    return replace_recipe(default_recipe(load_images(sample, 32), bf16=bf16), **overrides)


def replace_recipe(recipe: Recipe, **overrides) -> Recipe:
    """``recipe`` with some fields replaced."""
    from dataclasses import replace

    return replace(recipe, **overrides) if overrides else recipe



def image_cache_dir(dataset) -> Path:
    """Where the decoded-once image cache of ``dataset`` goes (views too large for memory stream from it)."""
    import fiftyone as fo

    return Path(fo.config.default_dataset_dir) / "_curation_cache" / dataset.name


def checkpoint_dir(dataset) -> Path:
    """Where checkpoints of ``dataset`` go: beside FiftyOne's datasets, one folder per dataset."""
    import fiftyone as fo

    return Path(fo.config.default_dataset_dir) / "_curation_models" / dataset.name


def collect_checkpoints(dataset, run_key: str) -> list[Path]:
    """Delete the checkpoints of ``run_key`` that no run of ``dataset`` references any more, and the temporary
    files that killed writers left in the checkpoint folder; returns what was deleted.

    Call it after the run's record: the new checkpoint is referenced by then and the one it replaces is not. A
    checkpoint of ``run_key`` is ``<run_key>-<sha256[:16]>.pt`` (or ``<run_key>.pt``, the fixed name older
    versions wrote). It is kept while any run's configuration or results name a file of that name, and so is one
    newer than every referenced one (another process may have saved it and not recorded it yet); nothing is
    deleted when a run cannot be read. A temporary file (``*.tmp``) is deleted when it is older than this process
    and the process that was writing it is gone.
    """
    folder = checkpoint_dir(dataset)
    if not folder.is_dir():
        return []
    removed = _remove_stale_temp_files(folder)
    own = re.compile(rf"^{re.escape(run_key)}(-[0-9a-f]{{16}})?\.pt$")
    candidates = [path for path in folder.iterdir() if own.match(path.name) and path.is_file()]
    if not candidates:
        return removed
    referenced: set[str] = set()
    dataset.reload()
    for key in dataset.list_runs():
        try:
            config, results = load_run(dataset, key)
        except Exception:  # noqa: BLE001 - an unreadable run may reference any file: keep them all
            logger.warning("Run %r of dataset %r cannot be read; no checkpoint is deleted.", key, dataset.name)
            return removed
        referenced.update(Path(text).name for text in _strings(results) + _strings(config) if text.endswith(".pt"))
    mtimes = {path: _mtime(path) for path in candidates}
    newest = max((t for path, t in mtimes.items() if path.name in referenced and t is not None), default=None)
    for path, mtime in mtimes.items():
        # A file newer than every referenced one may be another process's, saved and not yet recorded: kept.
        if path.name not in referenced and mtime is not None and newest is not None and mtime <= newest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # deleted meanwhile (another process collected it)
        return None


def _strings(value) -> list[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []


def _remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete ``*.tmp`` files in ``folder`` written before this process started by processes that are gone."""
    started = process_started(os.getpid()) or 0.0
    removed = []
    for path in folder.glob(f"*{TEMP_SUFFIX}"):
        try:
            if path.stat().st_mtime >= started:
                continue
        except FileNotFoundError:  # renamed or deleted meanwhile by its writer
            continue
        writer = temp_file_writer(path)
        if writer is not None and writer != os.getpid() and process_started(writer) is not None:
            continue  # still being written by a live process (on this machine)
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def compute_model_outputs(
    view,
    label_field: str = "ground_truth",
    folds: int = DEFAULT_FOLDS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    recipe: Recipe | None = None,
    device: str | None = None,
    test_view=None,
    run_key: str = DEFAULT_RUN_KEY,
    progress: ProgressCallback | None = None,
    fit_view=None,
    tta_px: int | None = None,
    leave_out: Sequence[str] = (),
    passes: int = 1,
    leave_out_reason: str = "",
) -> ModelRunSummary:
    """Out-of-sample probabilities for every labeled sample of ``view``, a final model, embeddings, a checkpoint.

    By default the probabilities come from a stratified K-fold over the view and the final model is trained on
    all of it. With ``fit_view`` (a labeled view disjoint from ``view``, e.g. the training split when ``view`` is
    the test split) one model per seed is trained on ``fit_view`` alone and scores ``view``; ``folds`` is unused
    and the first seed's model is the final one. The final model's checkpoint is saved with its hash in the run;
    it embeds the view's samples and, when ``test_view`` is given, is evaluated there (test samples get
    predictions, never used for training).

    ``recipe``: None = ``resolve_recipe(view, device=device)`` (the dataset's recipe, else photo or photo-lite for
    colour, fast for grayscale).
    ``tta_px`` (test-time augmentation; None = the recipe's default, ``default_tta_px``; 0 = none): every
    probability row, out-of-sample and test, is the mean over the image's (2 tta_px + 1)^2 copies shifted by up
    to ``tta_px`` pixels, and their mirror images for recipes that train with flips
    (``FixedModel.predict_proba``); shifts ranked label errors better on MNIST and Fashion-MNIST
    (docs/benchmarks.md) and cost (2 tta_px + 1)^2 times the inference, ~10% of the training's time on a CPU.

    ``leave_out``: sample ids no model trains on (a second pass leaves out the first pass's suspects; K-fold only,
    ``passes`` and ``leave_out_reason`` are recorded with their count); they are still scored, by the fold that
    holds them out, like every other sample.
    """
    started = time.perf_counter()
    recipe = recipe or resolve_recipe(view, device=device)
    tta_px = default_tta_px(recipe) if tta_px is None else tta_px
    if isinstance(tta_px, bool) or not isinstance(tta_px, numbers.Integral) or not 0 <= tta_px <= MAX_TTA_PX:
        raise InputError(f"`tta_px` must be an integer from 0 (no test-time augmentation) to {MAX_TTA_PX}; "
                         f"got {tta_px!r}.")
    seeds = tuple(int(s) for s in seeds) or (recipe.seed,)
    dataset = view._dataset
    arrays = labeled_arrays(view, label_field)
    fit_arrays = None
    if fit_view is not None:
        if not len(fit_view):
            raise DataError("The view to train on (fit_view) is empty: pick the labeled split to train the model on.")
        fit_arrays = labeled_arrays(fit_view, label_field, arrays.classes)
        overlap = len(set(fit_arrays.sample_ids) & set(view.values("id")))
        if overlap:
            raise DataError(f"{overlap} samples are both scored and trained on: the view to train on must be "
                            "disjoint from the scored view (e.g. tags train and test), or use K-fold.")
    if test_view is not None and len(set(test_view.values("id")) & set(arrays.sample_ids)):
        raise DataError("The test view overlaps the training view; use disjoint splits (e.g. tags train and test).")
    if test_view is not None and len(test_view):
        labeled_arrays(test_view, label_field, arrays.classes)  # an unusable test view fails before any training
    if leave_out and fit_arrays is not None:
        raise InputError("Leaving samples out of training needs K-fold: with a split to train on (fit_view) the "
                         "scored samples are not trained on anyway.")
    train_mask = np.asarray([i not in set(leave_out) for i in arrays.sample_ids], dtype=bool)
    num_left_out = int((~train_mask).sum())
    if num_left_out == len(train_mask):
        raise DataError("Every labeled sample is to be left out of training: nothing is left to train on.")
    kept = np.flatnonzero(train_mask) if num_left_out else None
    k = len(arrays.classes)
    step = _progress_steps(progress)
    images = load_view_images(arrays.filepaths, recipe.image_size, image_cache_dir(dataset))
    step(0.02, f"loaded {len(images)} images" + (" (streamed from the disk cache)" if isinstance(images, np.memmap)
                                                  else ""))

    if fit_arrays is None:
        probs = cross_val_proba(images, arrays.labels, k, folds, recipe, seeds, device,
                                progress=lambda f, m: step(0.02 + 0.78 * f, m), tta_px=tta_px,
                                train_mask=train_mask if num_left_out else None)
        final = FixedModel(k, recipe, device=device).fit(
            images, arrays.labels if kept is None else arrays.labels[kept],
            progress=lambda f, m: step(0.80 + 0.15 * f, f"final model: {m}"), rows=kept)
        how = f"out-of-sample, stratified {folds}-fold over the view"
    else:
        fit_images = load_view_images(fit_arrays.filepaths, recipe.image_size, image_cache_dir(dataset))
        probs, final = disjoint_proba(fit_images, fit_arrays.labels, images, k, recipe, seeds, device,
                                      progress=lambda f, m: step(0.02 + 0.93 * f, m), tta_px=tta_px)
        del fit_images
        how = (f"out-of-sample, {len(seeds)} model(s) trained on a disjoint view of {len(fit_arrays.labels)} "
               "labeled samples")
    if num_left_out:
        how += (f", trained without {num_left_out:,} of them ({leave_out_reason})" if leave_out_reason
                else f", trained without {num_left_out:,} of them")
    if tta_px or recipe.flip:
        how += f", {tta_description(tta_px, recipe.flip)}"
    step(0.96, f"embedding {len(images)} images with the final model")
    embeddings = final.embed(images)
    # Content-addressed (<run_key>-<sha[:16]>.pt): the checkpoint the run records now is never replaced, so a crash
    # before the record below leaves that one loadable; collect_checkpoints removes the other after the record.
    ckpt, sha = final.save_checkpoint(checkpoint_dir(dataset), run_key)
    pause_point("model:after-checkpoint-save")

    step(0.97, f"writing probabilities, predictions and embeddings of {len(arrays.sample_ids)} samples")
    write_predictions(dataset, arrays.sample_ids, probs, arrays.classes, embeddings)
    if arrays.num_unlabeled:
        step(0.98, f"embedding the {arrays.num_unlabeled} unlabeled samples")
        # Unlabeled samples get no out-of-sample probabilities (there is no label to hold out) but do get
        # embeddings, so near-duplicate and outlier checks cover the whole view.
        unlabeled = view.exclude(arrays.sample_ids)
        ids, paths = unlabeled.values(["id", "filepath"])
        write_fields(dataset, ids, {EMBEDDING_FIELD: final.embed(load_view_images(paths, recipe.image_size,
                                                                                  image_cache_dir(dataset)))})
    test_accuracy, num_test = None, 0
    if test_view is not None and len(test_view):
        step(0.99, f"evaluating on the {len(test_view)} test samples")
        test_accuracy, num_test = evaluate(final, test_view, label_field, arrays.classes, tta_px=tta_px)
    step(1.0, "done")
    oos_accuracy = float((probs.argmax(1) == arrays.labels).mean())
    summary = ModelRunSummary(
        run_key=run_key, num_scored=len(arrays.labels), num_unlabeled_skipped=arrays.num_unlabeled, folds=folds,
        seeds=seeds, out_of_sample_accuracy=oos_accuracy, test_accuracy=test_accuracy, num_test=num_test,
        checkpoint=str(ckpt), checkpoint_sha256=sha, device=final.device_, seconds=time.perf_counter() - started,
        split="kfold" if fit_arrays is None else "disjoint",
        num_fit=0 if fit_arrays is None else len(fit_arrays.labels), tta_px=int(tta_px), recipe=recipe.name,
        tta_flip=recipe.flip, passes=int(passes), num_left_out=num_left_out,
    )
    record_run(
        view, run_key,
        config={"kind": "model_outputs", "source": FIXED_MODEL, "label_field": label_field, "recipe": recipe.to_dict(),
                "folds": folds if fit_arrays is None else None, "seeds": list(seeds), "probabilities": how,
                "split": summary.split, "num_fit": summary.num_fit, "tta_px": summary.tta_px,
                "classes": arrays.classes, "passes": int(passes),
                "left_out": {"count": num_left_out, "why": leave_out_reason} if num_left_out else None,
                "fields": list(MODEL_FIELDS)},
        results={"num_scored": summary.num_scored, "num_unlabeled_skipped": summary.num_unlabeled_skipped,
                 "out_of_sample_accuracy": oos_accuracy, "test_accuracy": test_accuracy, "num_test": num_test,
                 "checkpoint": str(ckpt), "checkpoint_sha256": sha, "device": final.device_,
                 "precision": getattr(final, "precision_", "fp32"), "seconds": summary.seconds},
    )
    collect_checkpoints(dataset, run_key)
    return summary


def _progress_steps(progress: ProgressCallback | None) -> ProgressCallback:
    def step(fraction: float, message: str) -> None:
        if progress is not None:
            progress(round(min(max(fraction, 0.0), 1.0), 6), message)  # 0.8 + 0.15 * 1.0 is 0.95, not 0.95000...1

    return step


def write_predictions(dataset, sample_ids: list[str], probs: np.ndarray, classes: list[str],
                       embeddings: np.ndarray | None, write_probs: bool = True) -> None:
    """Write predictions (and probabilities, embeddings) of ``sample_ids`` in one bulk write."""
    import fiftyone as fo

    predicted = probs.argmax(axis=1)
    predictions = [fo.Classification(label=classes[p], confidence=float(row[p])) for p, row in zip(predicted, probs)]
    columns: dict[str, object] = {PREDICTION_FIELD: predictions}
    if write_probs:
        columns[PROBS_FIELD] = np.round(probs.astype(np.float64), 6)
    if embeddings is not None:
        columns[EMBEDDING_FIELD] = embeddings.astype(np.float64)
    write_fields(dataset, sample_ids, columns)  # type: ignore[arg-type]


def evaluate(model: FixedModel, view, label_field: str, classes: list[str], tta_px: int = 0) -> tuple[float, int]:
    """Accuracy of ``model`` on the labeled samples of ``view``; writes ``model_prediction`` there too."""
    arrays: LabeledArrays = labeled_arrays(view, label_field, classes)
    images = load_view_images(arrays.filepaths, model.recipe.image_size, image_cache_dir(view._dataset))
    probs = model.predict_proba(images, tta_px=tta_px)
    write_predictions(view._dataset, arrays.sample_ids, probs, classes, None, write_probs=False)
    return float((probs.argmax(1) == arrays.labels).mean()), len(arrays.labels)


def load_model(dataset, run_key: str = DEFAULT_RUN_KEY, device: str | None = None) -> FixedModel:
    """The final model of run ``run_key``, verified against the recorded checkpoint hash."""
    run = load_model_run(dataset, run_key)
    if run is None:
        raise DataError(f"Dataset {dataset.name!r} has no run {run_key!r}; runs: {sorted(dataset.list_runs())}.")
    if not run.checkpoint or not run.checkpoint_sha256:
        raise ModelError(f"Run {run_key!r} has no checkpoint (or no hash of it); run `curation model` first.")
    return FixedModel.load(run.checkpoint, run.checkpoint_sha256, device=select_device(device))


def read_probs(view, field: str = PROBS_FIELD) -> tuple[list[str], np.ndarray]:
    """Sample ids and the stored probability rows of samples that have them; validates the rows."""
    ids, rows = view.values(["id", field])
    keep = [i for i, r in enumerate(rows) if r is not None]
    if not keep:
        raise DataError(f"No sample in the view has {field!r}; compute the model outputs first (`curation model`).")
    probs = np.asarray([rows[i] for i in keep], dtype=np.float64)
    if not np.isfinite(probs).all():
        raise DataError(f"{field!r} holds NaN or infinite values; recompute the model outputs.")
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise DataError(f"{field!r} rows are not probability distributions (negative or not summing to 1).")
    return [ids[i] for i in keep], probs
