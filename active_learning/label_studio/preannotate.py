"""Pre-annotations for a round's Label Studio tasks: which model predicts, its guesses, and the note per task.

Every pushed task should open with a choice already selected. The prediction comes from the newest model the loop
has, in this order:

1. the checkpoint of the last finished round (the model that chose this round's samples);
2. the dataset's fixed-model run (``curation_model``: ``curation model`` trained it on the labeled split), for
   round 0 when it exists and labels the loop's classes;
3. the ``model_prediction`` field stored on the samples (e.g. written by a model you brought);

and none when there is no model at all (the tasks then say so in their note). Samples queued for review show
their suggested label (from the label-errors check when it made one, else the model's guess) as the prediction,
with the current label and the reason for the review in the note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from active_learning.errors import CurationError
from active_learning.label_studio.tasks import TaskSpec

if TYPE_CHECKING:
    from active_learning.model.fixed import FixedModel

logger = logging.getLogger(__name__)

STORED_PREDICTION_FIELD = "model_prediction"
SUGGESTED_FIELD = "label_issue_suggested"
SUGGESTED_CONFIDENCE_FIELD = "label_issue_confidence"
REVIEW_REASON_FIELD = "review_reason"


@dataclass(frozen=True)
class Guess:
    """One sample's pre-annotation: the class and its probability (None when unknown)."""

    label: str
    score: float | None


@dataclass(frozen=True)
class Predictor:
    """The model that pre-annotates a round: a loaded checkpoint, or the stored predictions field, or nothing.

    Attributes:
        name: what made the predictions, e.g. ``al_round_002``, ``curation_model``, ``model_prediction``; ``""``
            when there is no model.
        model: the loaded model (None for stored predictions or no model).
    """

    name: str
    model: "FixedModel | None" = None

    @property
    def available(self) -> bool:
        """Whether there is a model (or stored predictions) at all."""
        return bool(self.name)


def find_predictor(dataset, classes: Sequence[str], last_checkpoint: tuple[str, str, str] | None) -> Predictor:
    """The newest model for this round (see the module's docstring); never raises for a missing model.

    Args:
        dataset: the FiftyOne dataset.
        classes: the loop's class list; a model of other classes is not used.
        last_checkpoint: (round key, checkpoint path, SHA-256) of the last finished round, if any.
    """
    from active_learning.model.fixed import FixedModel
    from active_learning.model.model_run import load_model_run
    from active_learning.model.outputs import load_model

    if last_checkpoint is not None:
        key, path, sha = last_checkpoint
        return Predictor(key, FixedModel.load(path, sha))
    run = load_model_run(dataset)
    if run is not None and run.checkpoint and list(run.classes) == list(classes):
        try:
            return Predictor(run.run_key, load_model(dataset))
        except (CurationError, OSError) as error:
            logger.info("The dataset's model run cannot pre-annotate: %s", error)
    if STORED_PREDICTION_FIELD in dataset.get_field_schema():
        return Predictor(STORED_PREDICTION_FIELD)
    return Predictor("")


def model_guesses(predictor: Predictor, view, classes: Sequence[str]) -> dict[str, Guess]:
    """Sample id -> the predictor's class and probability for the samples of ``view``."""
    from active_learning.data.images import load_images

    if not predictor.available or not len(view):
        return {}
    if predictor.model is None:
        ids, labels, scores = view.values(["id", f"{STORED_PREDICTION_FIELD}.label",
                                           f"{STORED_PREDICTION_FIELD}.confidence"])
        return {i: Guess(label, None if score is None else float(score))
                for i, label, score in zip(ids, labels, scores) if label in set(classes)}
    model = predictor.model
    ids, paths = view.values(["id", "filepath"])
    probs = model.predict_proba(load_images(paths, model.recipe.image_size))  # a guess to pre-select: no TTA
    best = probs.argmax(axis=1)
    return {i: Guess(classes[b], float(probs[row, b])) for row, (i, b) in enumerate(zip(ids, best))}


def _percent(score: float | None) -> str:
    return "" if score is None else f" ({100 * score:.0f}%)"


def new_sample_note(guess: Guess | None, predictor: Predictor) -> str:
    """The note above a new sample's image."""
    if guess is None:
        return "New sample. No model has been trained yet, so nothing is pre-selected: choose the class."
    return (f"New sample. Pre-selected: the model's guess {guess.label!r}{_percent(guess.score)}, from "
            f"{predictor.name}. Change it if it is wrong.")


def review_note(current: str | None, suggestion: Guess | None, reason: str | None) -> str:
    """The note above a review sample's image: its current label, the suggestion and why it is back."""
    parts = [f"Review: this sample is labeled {current!r} now." if current else "Review: this sample has no label."]
    if suggestion is not None:
        parts.append(f"Pre-selected: the suggested label {suggestion.label!r}{_percent(suggestion.score)}.")
    if reason:
        parts.append(f"Why: {reason}.")
    parts.append("Choose the right class.")
    return " ".join(parts)


def _column(view, name: str, schema: dict[str, Any]) -> list:
    return view.values(name) if name.split(".")[0] in schema else [None] * len(view)


def round_task_specs(
    dataset,
    new_ids: Sequence[str],
    review_ids: Sequence[str],
    round_index: int,
    classes: Sequence[str],
    label_fields: Sequence[str],
    predictor: Predictor,
    model_version: str,
) -> list[TaskSpec]:
    """The round's tasks: new samples with the model's guess, review samples with their suggested label.

    Every task carries ``model_version`` (one per round: Label Studio shows the predictions of one version), a
    note saying where the pre-selection comes from, and for review samples the current label (the first of
    ``label_fields`` that has one: the loop's label field, then the evaluation field) and the reason.
    """
    new_view = dataset.select(list(new_ids), ordered=True)
    review_view = dataset.select(list(review_ids), ordered=True)
    guesses = model_guesses(predictor, dataset.select(list(new_ids) + list(review_ids)), classes)
    specs: list[TaskSpec] = []
    for sample_id, path in zip(*new_view.values(["id", "filepath"])):
        guess = guesses.get(sample_id)
        specs.append(TaskSpec(sample_id, path, round_index, predicted_label=guess and guess.label,
                              score=guess and guess.score, model_version=model_version if guess else None,
                              note=new_sample_note(guess, predictor)))
    if not len(review_view):
        return specs
    schema = dataset.get_field_schema()
    ids, paths = review_view.values(["id", "filepath"])
    columns = [_column(review_view, f"{name}.label", schema) for name in label_fields]
    current = [next((label for label in labels if label is not None), None) for labels in zip(*columns)]
    suggested = _column(review_view, SUGGESTED_FIELD, schema)
    confidence = _column(review_view, SUGGESTED_CONFIDENCE_FIELD, schema)
    reasons = _column(review_view, REVIEW_REASON_FIELD, schema)
    for sample_id, path, label, suggestion, score, reason in zip(ids, paths, current, suggested, confidence,
                                                                  reasons):
        guess = (Guess(suggestion, None if score is None else float(score)) if suggestion in set(classes)
                 else guesses.get(sample_id))
        specs.append(TaskSpec(sample_id, path, round_index, predicted_label=guess and guess.label,
                              score=guess and guess.score, model_version=model_version if guess else None,
                              note=review_note(label, guess, reason)))
    return specs
