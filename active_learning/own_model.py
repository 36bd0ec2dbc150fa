"""Bring your own model: probabilities from a head on the user's embeddings, or from the user's own predictions.

FiftyOne users often have better features than a model trained from scratch on their data can give: embeddings
from ``compute_embeddings`` with a zoo model, or predictions of their production model. Both paths write the same
fields and the same ``curation_model`` run as the fixed model (``active_learning.predictions``), so every check,
report and panel reads them unchanged:

- ``compute_head_outputs(view, embeddings_field)``: a K-fold head (multinomial logistic regression on standardised
  features, or a small MLP) trained on the embeddings gives out-of-sample probabilities in seconds; the
  embeddings are copied to ``model_embedding`` for the near-duplicate and outlier checks.
- ``import_predictions(view, predictions_field)``: the user's ``Classification`` predictions with ``logits``
  (softmaxed) or only a ``confidence`` (spread evenly over the other classes); recorded as not out-of-sample
  unless the user says they are, and the label-error report says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.predictions import (DEFAULT_RUN_KEY, EMBEDDING_FIELD, PROBS_FIELD, ModelRunSummary,
                                         write_predictions)
from active_learning.runs import record_run
from active_learning.views import labeled_arrays, write_fields

HEADS = ("logistic", "mlp")


@dataclass(frozen=True)
class Head:
    """A classifier head on fixed features (scikit-learn): ``logistic`` regression or a one-hidden-layer ``mlp``."""

    kind: str = "logistic"
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


def head_cross_val_proba(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                         seeds: Sequence[int] = (0,), head: Head | None = None) -> np.ndarray:
    """Out-of-sample probabilities of a head on ``features`` by stratified K-fold (averaged over ``seeds``)."""
    from sklearn.model_selection import StratifiedKFold

    head = head or Head()
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    if folds < 2:
        raise DataError(f"K-fold needs at least 2 folds; got {folds}.")
    if counts[counts > 0].min() < folds:
        raise DataError(f"Some classes have fewer labeled samples than folds ({folds}): label more of them or use "
                        "fewer folds.")
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


def compute_head_outputs(view, embeddings_field: str, label_field: str = "ground_truth", folds: int = 5,
                         seeds: Sequence[int] = (0,), head: Head | None = None, test_view=None,
                         run_key: str = DEFAULT_RUN_KEY) -> ModelRunSummary:
    """Out-of-sample probabilities of a K-fold head on ``embeddings_field``; writes the model fields and run."""
    started = time.perf_counter()
    head = head or Head()
    seeds = tuple(int(s) for s in seeds) or (0,)
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
               config={"kind": "model_outputs", "source": "embeddings_head", "label_field": label_field,
                       "embeddings_field": embeddings_field, "head": head.kind, "recipe": None, "folds": folds,
                       "seeds": list(seeds), "probabilities": how, "split": "kfold", "tta_px": 0,
                       "out_of_sample": True, "classes": arrays.classes,
                       "fields": [PROBS_FIELD, "model_prediction", EMBEDDING_FIELD]},
               results={"num_scored": summary.num_scored, "num_unlabeled_skipped": summary.num_unlabeled_skipped,
                        "out_of_sample_accuracy": accuracy, "test_accuracy": test_accuracy, "num_test": num_test,
                        "device": "cpu", "seconds": summary.seconds})
    return summary


def predictions_to_proba(predictions: Sequence, classes: Sequence[str], field: str) -> np.ndarray:
    """Probability rows from FiftyOne ``Classification`` predictions: softmax of ``logits`` (one per class), or the
    ``confidence`` on the predicted class and the rest spread evenly over the other classes."""
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    rows = np.zeros((len(predictions), k), dtype=np.float64)
    for row, prediction in enumerate(predictions):
        if prediction is None:
            raise DataError(f"Sample {row} of the view has no {field!r}; predict the whole view first.")
        logits = getattr(prediction, "logits", None)
        if logits is not None:
            logits = np.asarray(logits, dtype=np.float64).ravel()
            if len(logits) != k or not np.isfinite(logits).all():
                raise DataError(f"{field!r} logits must be {k} finite numbers, one per class of {list(classes)}; "
                                f"got {len(logits)}.")
            shifted = np.exp(logits - logits.max())
            rows[row] = shifted / shifted.sum()
            continue
        label, confidence = getattr(prediction, "label", None), getattr(prediction, "confidence", None)
        if label not in index:
            raise DataError(f"{field!r} predicts {label!r}, which is not in the class list {list(classes)}.")
        if confidence is None or not 0 <= float(confidence) <= 1:
            raise DataError(f"{field!r} needs logits or a confidence in [0, 1]; got {confidence!r}.")
        rows[row] = (1 - float(confidence)) / max(k - 1, 1)
        rows[row, index[label]] = float(confidence)
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
               config={"kind": "model_outputs", "source": "predictions_field", "label_field": label_field,
                       "predictions_field": predictions_field, "recipe": None, "folds": None, "seeds": [],
                       "probabilities": how, "split": "predictions", "tta_px": 0, "out_of_sample": out_of_sample,
                       "classes": arrays.classes, "fields": [PROBS_FIELD, "model_prediction"]},
               results={"num_scored": summary.num_scored, "num_unlabeled_skipped": summary.num_unlabeled_skipped,
                        "out_of_sample_accuracy": accuracy, "seconds": summary.seconds})
    return summary
