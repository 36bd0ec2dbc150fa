"""Bring your own model: probabilities from a head on the user's embeddings, or from the user's own predictions.

FiftyOne users often have better features than a model trained from scratch on their data can give: embeddings
from ``compute_embeddings`` with a zoo model, or predictions of their production model. Both paths write the same
fields and the same ``curation_model`` run as the fixed model (``active_learning.model.outputs``), so every check,
report and panel reads them unchanged:

- ``compute_head_outputs(view, embeddings_field)``: a K-fold head (multinomial logistic regression on standardised
  features, or a small MLP) trained on the embeddings gives out-of-sample probabilities in seconds; the
  embeddings are copied to ``model_embedding`` for the near-duplicate and outlier checks.
- ``import_predictions(view, predictions_field)``: the user's ``Classification`` predictions with ``logits``
  (softmaxed) or only a ``confidence`` (spread evenly over the other classes); recorded as not out-of-sample
  unless the user says they are, and the label-error report says so.

``OwnModel`` names one of the two; the CLI, the operators and ``find_label_issues`` all go through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.model.fixed import ProgressCallback, Recipe
from active_learning.model.model_run import EMBEDDINGS_HEAD, PREDICTIONS_FIELD
from active_learning.model.outputs import (DEFAULT_RUN_KEY, EMBEDDING_FIELD, PREDICTION_FIELD, PROBS_FIELD,
                                           ModelRunSummary, compute_model_outputs, write_predictions)
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS
from active_learning.model.splits import check_fold_counts
from active_learning.store.fields import label_indices, labeled_arrays, write_fields
from active_learning.store.runs import record_run

HEADS = ("logistic", "mlp")
DEFAULT_HEAD = "logistic"


@dataclass(frozen=True)
class Head:
    """A classifier head on fixed features (scikit-learn): ``logistic`` regression or a one-hidden-layer ``mlp``."""

    kind: str = DEFAULT_HEAD
    regularization: float = 1.0  # inverse strength C of logistic regression; alpha = 1e-4 / C for the MLP
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise InputError(f"Unknown head {self.kind!r}; choose one of: {', '.join(HEADS)}.")

    def build(self):
        """An unfitted scikit-learn pipeline: standardise, then the head."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.kind == "logistic":
            head = LogisticRegression(C=self.regularization, max_iter=1000, random_state=self.seed)
        else:
            head = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-4 / self.regularization, max_iter=300,
                                 early_stopping=True, random_state=self.seed)
        return make_pipeline(StandardScaler(), head)


def _full_proba(model, features: np.ndarray, num_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class, also those absent from the model's training labels."""
    out = np.zeros((len(features), num_classes), dtype=np.float64)
    out[:, model.classes_] = model.predict_proba(features)
    return out


def head_cross_val_proba(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = DEFAULT_FOLDS,
                         seeds: Sequence[int] = DEFAULT_SEEDS, head: Head | None = None) -> np.ndarray:
    """Out-of-sample probabilities of a head on ``features`` by stratified K-fold (averaged over ``seeds``)."""
    from sklearn.model_selection import StratifiedKFold

    head = head or Head()
    labels = np.asarray(labels, dtype=np.int64)
    check_fold_counts(labels, num_classes, folds)
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    for seed in seeds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
        for train_index, held_out in splitter.split(features, labels):
            model = Head(head.kind, head.regularization, int(seed)).build().fit(features[train_index],
                                                                               labels[train_index])
            probs[held_out] += _full_proba(model, features[held_out], num_classes)
    probs /= len(seeds)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def _read_embeddings(view, field: str, sample_ids: Sequence[str]) -> np.ndarray:
    if field not in view.get_field_schema():
        raise DataError(f"The dataset has no field {field!r}; compute embeddings first (e.g. FiftyOne's "
                        f"compute_embeddings(model, embeddings_field={field!r})) or name an existing field.")
    ids, rows = view.select(list(sample_ids), ordered=True).values(["id", field])
    if list(ids) != list(sample_ids):
        raise DataError("Some samples to score are not in the view; reload the dataset and try again.")
    missing = sum(r is None for r in rows)
    if missing:
        raise DataError(f"{missing} samples have no {field!r}; compute embeddings for the whole view first.")
    try:
        features = np.asarray([np.asarray(r, dtype=np.float64).ravel() for r in rows])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{field!r} does not hold numeric vectors of one length ({exc}).") from exc
    if features.ndim != 2 or not np.isfinite(features).all():
        raise DataError(f"{field!r} must hold finite vectors of one length; got shape {features.shape}.")
    return features


def compute_head_outputs(view, embeddings_field: str, label_field: str = "ground_truth", folds: int = DEFAULT_FOLDS,
                         seeds: Sequence[int] = DEFAULT_SEEDS, head: Head | None = None, test_view=None,
                         run_key: str = DEFAULT_RUN_KEY) -> ModelRunSummary:
    """Out-of-sample probabilities of a K-fold head on ``embeddings_field``; writes the model fields and run."""
    started = time.perf_counter()
    head = head or Head()
    seeds = tuple(int(s) for s in seeds) or DEFAULT_SEEDS
    arrays = labeled_arrays(view, label_field)
    k = len(arrays.classes)
    features = _read_embeddings(view, embeddings_field, arrays.sample_ids)
    probs = head_cross_val_proba(features, arrays.labels, k, folds, seeds, head)
    final = head.build().fit(features, arrays.labels)
    write_predictions(view._dataset, arrays.sample_ids, probs, arrays.classes, features)
    if arrays.num_unlabeled:
        unlabeled = view.exclude(arrays.sample_ids)
        ids = unlabeled.values("id")
        write_fields(view._dataset, ids, {EMBEDDING_FIELD: _read_embeddings(view, embeddings_field, ids)})
    test_accuracy, num_test = None, 0
    if test_view is not None and len(test_view):
        test = labeled_arrays(test_view, label_field, arrays.classes)
        test_probs = _full_proba(final, _read_embeddings(test_view, embeddings_field, test.sample_ids), k)
        write_predictions(view._dataset, test.sample_ids, test_probs, arrays.classes, None, write_probs=False)
        test_accuracy, num_test = float((test_probs.argmax(1) == test.labels).mean()), len(test.labels)
    accuracy = float((probs.argmax(1) == arrays.labels).mean())
    how = (f"out-of-sample, stratified {folds}-fold {head.kind} head on the embeddings in {embeddings_field!r}")
    summary = ModelRunSummary(
        run_key=run_key, num_scored=len(arrays.labels), num_unlabeled_skipped=arrays.num_unlabeled, folds=folds,
        seeds=seeds, out_of_sample_accuracy=accuracy, test_accuracy=test_accuracy, num_test=num_test,
        checkpoint="", checkpoint_sha256="", device="cpu", seconds=time.perf_counter() - started,
        recipe=f"{head.kind} head on {embeddings_field}")
    record_run(view, run_key,
               config={"kind": "model_outputs", "source": EMBEDDINGS_HEAD, "label_field": label_field,
                       "embeddings_field": embeddings_field, "head": head.kind, "recipe": None, "folds": folds,
                       "seeds": list(seeds), "probabilities": how, "split": "kfold", "tta_px": 0,
                       "out_of_sample": True, "classes": arrays.classes,
                       "fields": [PROBS_FIELD, PREDICTION_FIELD, EMBEDDING_FIELD]},
               results={"num_scored": summary.num_scored, "num_unlabeled_skipped": summary.num_unlabeled_skipped,
                        "out_of_sample_accuracy": accuracy, "test_accuracy": test_accuracy, "num_test": num_test,
                        "device": "cpu", "seconds": summary.seconds})
    return summary


def predictions_to_proba(predictions: Sequence, classes: Sequence[str], field: str) -> np.ndarray:
    """Probability rows from FiftyOne ``Classification`` predictions: softmax of ``logits`` (one per class), or the
    ``confidence`` on the predicted class and the rest spread evenly over the other classes."""
    k = len(classes)
    missing = next((row for row, prediction in enumerate(predictions) if prediction is None), None)
    if missing is not None:
        raise DataError(f"Sample {missing} of the view has no {field!r}; predict the whole view first.")
    without_logits = [row for row, prediction in enumerate(predictions) if getattr(prediction, "logits", None) is None]
    predicted = label_indices([getattr(predictions[row], "label", None) for row in without_logits], classes, field)
    rows = np.zeros((len(predictions), k), dtype=np.float64)
    for row, prediction in enumerate(predictions):
        logits = getattr(prediction, "logits", None)
        if logits is None:
            continue
        logits = np.asarray(logits, dtype=np.float64).ravel()
        if len(logits) != k or not np.isfinite(logits).all():
            raise DataError(f"{field!r} logits must be {k} finite numbers, one per class of {list(classes)}; "
                            f"got {len(logits)}.")
        shifted = np.exp(logits - logits.max())
        rows[row] = shifted / shifted.sum()
    for row, label in zip(without_logits, predicted.tolist()):
        confidence = getattr(predictions[row], "confidence", None)
        if label < 0:
            raise DataError(f"Sample {row} of the view has a {field!r} prediction without a label or logits.")
        if confidence is None or not 0 <= float(confidence) <= 1:
            raise DataError(f"{field!r} needs logits or a confidence in [0, 1]; got {confidence!r}.")
        rows[row] = (1 - float(confidence)) / max(k - 1, 1)
        rows[row, label] = float(confidence)
    return rows


def import_predictions(view, predictions_field: str, label_field: str = "ground_truth",
                       out_of_sample: bool = False, run_key: str = DEFAULT_RUN_KEY) -> ModelRunSummary:
    """The user's predictions in ``predictions_field`` as the model's probabilities, fields and run."""
    started = time.perf_counter()
    if predictions_field not in view.get_field_schema():
        raise DataError(f"The dataset has no field {predictions_field!r}; name a Classification field holding "
                        "your model's predictions.")
    arrays = labeled_arrays(view, label_field)
    predictions = view.select(list(arrays.sample_ids), ordered=True).values(predictions_field)
    probs = predictions_to_proba(predictions, arrays.classes, predictions_field)
    write_predictions(view._dataset, arrays.sample_ids, probs, arrays.classes, None)
    accuracy = float((probs.argmax(1) == arrays.labels).mean())
    kind = "out-of-sample (as the user says)" if out_of_sample else "NOT out-of-sample"
    how = f"{kind}: the user's predictions in {predictions_field!r}"
    summary = ModelRunSummary(
        run_key=run_key, num_scored=len(arrays.labels), num_unlabeled_skipped=arrays.num_unlabeled, folds=0,
        seeds=(), out_of_sample_accuracy=accuracy, test_accuracy=None, num_test=0, checkpoint="",
        checkpoint_sha256="", device="", seconds=time.perf_counter() - started, split="predictions",
        recipe=f"the user's predictions in {predictions_field!r}, "
               f"{'out-of-sample as the user says' if out_of_sample else 'NOT out-of-sample'}")
    record_run(view, run_key,
               config={"kind": "model_outputs", "source": PREDICTIONS_FIELD, "label_field": label_field,
                       "predictions_field": predictions_field, "recipe": None, "folds": None, "seeds": [],
                       "probabilities": how, "split": "predictions", "tta_px": 0, "out_of_sample": out_of_sample,
                       "classes": arrays.classes, "fields": [PROBS_FIELD, PREDICTION_FIELD]},
               results={"num_scored": summary.num_scored, "num_unlabeled_skipped": summary.num_unlabeled_skipped,
                        "out_of_sample_accuracy": accuracy, "seconds": summary.seconds})
    return summary


@dataclass(frozen=True)
class OwnModel:
    """The user's own model instead of the fixed one: a K-fold ``head`` on ``embeddings_field``, or the predictions
    in ``predictions_field`` (``out_of_sample``: they come from a model that never trained on these samples).

    Raises:
        InputError: neither or both fields are named, or ``head`` is unknown.
    """

    embeddings_field: str | None = None
    predictions_field: str | None = None
    head: str = DEFAULT_HEAD
    out_of_sample: bool = False

    def __post_init__(self) -> None:
        if bool(self.embeddings_field) == bool(self.predictions_field):
            raise InputError("Name one of `embeddings_field` (a head on your embeddings) and `predictions_field` "
                             "(your model's predictions), not " + ("both." if self.embeddings_field else "neither."))
        Head(self.head)  # an unknown head fails here, before anything runs

    def compute(self, view, label_field: str = "ground_truth", folds: int = DEFAULT_FOLDS,
                seeds: Sequence[int] = DEFAULT_SEEDS, test_view=None) -> ModelRunSummary:
        """The model's probabilities over ``view`` as the model fields and the ``curation_model`` run."""
        if self.embeddings_field:
            seeds = tuple(int(s) for s in seeds) or DEFAULT_SEEDS
            return compute_head_outputs(view, self.embeddings_field, label_field=label_field, folds=folds,
                                        seeds=seeds, head=Head(self.head, seed=seeds[0]), test_view=test_view)
        return import_predictions(view, str(self.predictions_field), label_field=label_field,
                                  out_of_sample=self.out_of_sample)


def compute_outputs(view, own_model: OwnModel | None = None, label_field: str = "ground_truth",
                    folds: int = DEFAULT_FOLDS, seeds: Sequence[int] = DEFAULT_SEEDS, test_view=None,
                    recipe: Recipe | None = None, device: str | None = None, fit_view=None, tta_px: int | None = None,
                    progress: ProgressCallback | None = None) -> ModelRunSummary:
    """The model outputs of ``view``: from ``own_model`` when given, else from the fixed model
    (``compute_model_outputs``; ``recipe``, ``device``, ``fit_view``, ``tta_px`` and ``progress`` are the fixed
    model's, which the user's own model does not use). ``curation model`` and the App's "Compute model outputs"
    both call this."""
    if own_model is not None:
        return own_model.compute(view, label_field, folds=folds, seeds=seeds, test_view=test_view)
    return compute_model_outputs(view, label_field=label_field, folds=folds, seeds=seeds, recipe=recipe,
                                 device=device, test_view=test_view, progress=progress, fit_view=fit_view,
                                 tta_px=tta_px)
