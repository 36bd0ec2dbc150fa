"""The active-learning loop: a resumable state machine persisted as FiftyOne runs.

``al_loop`` holds the configuration (and the Label Studio project id); each round is a run ``al_round_NNN``
whose results hold its step and everything the step produced. Steps, in order::

    select -> push -> annotate -> ingest -> retrain -> evaluate -> done

Every pushed task is pre-annotated by the newest model (``active_learning.label_studio.preannotate``). A round's
annotation is complete when each of its tasks is annotated or skipped; skipped samples go back to the pool (and
skipped review samples back to the review queue), recorded in the round's ``skipped``. Label Studio is reached
through a :class:`~active_learning.label_studio.api.LabelStudioAPI` (``connect()``'s client, or the in-memory fake).
The state itself (configuration, rounds) lives in :mod:`active_learning.loop.state`.

Each step reads what the previous ones saved and saves its own output before the step advances, so a crash
(kill -9) or a rerun continues where it stopped: the selection is saved before anything is pushed, pushing skips
samples already in the project, ingestion skips annotations already ingested, and a retrain whose checkpoint
is recorded with a matching hash is not repeated. Rounds differ only in the data; the model and recipe are fixed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from active_learning.data.images import load_images
from active_learning.errors import DataError, InputError, LabelStudioError, ModelError
from active_learning.label_studio.completed import CompletedTasks, fetch_completed
from active_learning.label_studio.ingest import PROVENANCE_FIELD, IngestReport, ingest
from active_learning.label_studio.preannotate import find_predictor, round_task_specs
from active_learning.label_studio.projects import ensure_project, project_url
from active_learning.label_studio.simulate import SimulatedAnnotator, simulate_annotations
from active_learning.label_studio.tasks import push_round_tasks
from active_learning.loop.state import (LOOP_RUN_KEY, STEPS, LoopConfig, RoundState, current_round, list_rounds,
                                        load_config, round_key, save_round)
from active_learning.loop.strategies import REQUIRES, get_strategy, select
from active_learning.model.fixed import FixedModel, file_sha256
from active_learning.model.outputs import checkpoint_dir
from active_learning.store.fields import get_classes, labeled_arrays
from active_learning.store.label_history import REVIEW_STATUS_FIELD, review_queue
from active_learning.store.lease import writer_lease
from active_learning.store.runs import now_utc, record_run

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI

INGEST_WAIT_SECONDS = 120.0  # an ingest or a round's step waits this long for another writer before refusing
Progress = Callable[[float, str], None]  # (fraction done, message)


def init_loop(dataset, config: LoopConfig, client: LabelStudioAPI, new_project: bool = False) -> int:
    """Validate the dataset, create the label field, create or reuse the Label Studio project; returns its id.

    Idempotent: a second call with the same configuration reuses everything.

    Raises:
        InputError: an unknown strategy, or a batch size that is not positive.
        DataError: no pool or test samples, or rounds recorded with another configuration.
        LabelStudioError: the project cannot be used (``ensure_project``).
    """
    import fiftyone as fo

    get_strategy(config.strategy)  # an unknown name is an InputError listing the known ones
    if config.batch_size <= 0 or config.initial_size <= 0:
        raise InputError(f"`batch_size` and `initial_size` must be positive, not {config.batch_size} and "
                         f"{config.initial_size}.")
    pool = dataset.match_tags(config.pool_tag)
    if not len(pool):
        raise DataError(f"No sample is tagged {config.pool_tag!r}: import with a pool (`pool_fraction`) or tag a "
                        "pool first.")
    classes = get_classes(dataset, config.eval_field)
    if config.label_field not in dataset.get_field_schema():
        dataset.add_sample_field(config.label_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        dataset.classes = {**dataset.classes, config.label_field: classes}
        dataset.save()
    test = dataset.match_tags(config.test_tag)
    if not len(test):
        raise DataError(f"No sample is tagged {config.test_tag!r}: the loop evaluates every round on a fixed test "
                        "view.")
    labeled_arrays(test, config.eval_field, classes)  # the test view must be labeled
    previous = None
    if LOOP_RUN_KEY in dataset.list_runs():
        old, previous = load_config(dataset)
        if old != config and list_rounds(dataset):
            raise DataError("This dataset already has rounds with another loop configuration; the model and recipe "
                            "are fixed per loop. Delete the al_* runs to start over, or keep the configuration.")
    title = config.project_title or f"curation: {dataset.name}"[:50]
    project_id = ensure_project(client, title, classes, dataset.name, project_id=previous,
                                new_project=new_project)
    record_run(dataset, LOOP_RUN_KEY, {"kind": "al_loop", **asdict(config)},
               {"project_id": int(project_id), "classes": classes})
    return int(project_id)


# -- the round ---------------------------------------------------------------------------------------------------
def candidates(dataset, config: LoopConfig, rounds: list[RoundState]):
    """Pool samples without a label that no earlier round selected."""
    from fiftyone import ViewField as F

    taken = {sid for r in rounds for sid in set(r.selected) - set(r.skipped)}  # skipped samples are back
    pool = dataset.match_tags(config.pool_tag).match(F(f"{config.label_field}.label") == None)  # noqa: E711
    return pool.exclude(list(taken)) if taken else pool


def _latest_model(rounds: list[RoundState]) -> FixedModel | None:
    done = [r for r in rounds if r.step == "done" and r.checkpoint]
    if not done:
        return None
    last = done[-1]
    return FixedModel.load(last.checkpoint, last.checkpoint_sha256)


def step_select(dataset, config: LoopConfig, state: RoundState, rounds: list[RoundState]) -> None:
    """Choose the round's samples with the strategy (random for round 0) and queue-for-review samples."""
    pool = candidates(dataset, config, [r for r in rounds if r.index != state.index])
    model = _latest_model(rounds)
    strategy = config.strategy if model is not None else "random"
    n = config.batch_size if model is not None else config.initial_size
    ids, paths = pool.values(["id", "filepath"])
    chosen: list[str] = []
    if ids:
        probs = embeddings = labeled_embeddings = None
        needs = REQUIRES.get(strategy, frozenset())
        if model is not None and needs:
            images = load_images(paths, model.recipe.image_size)
            if {"probs", "embeddings"} <= needs:
                probs, embeddings = model.predict_proba_and_embed(images)
            elif "probs" in needs:
                probs = model.predict_proba(images)
            elif "embeddings" in needs:
                embeddings = model.embed(images)
            if "labeled_embeddings" in needs:
                labeled = training_view(dataset, config)
                labeled_embeddings = model.embed(load_images(labeled.values("filepath"), model.recipe.image_size))
        if probs is None and embeddings is None:
            embeddings = np.zeros((len(ids), 1), dtype=np.float32)  # random needs only the pool size
        picked = select(strategy, probs, embeddings, min(n, len(ids)), random_state=config.seed + state.index,
                        labeled_embeddings=labeled_embeddings)
        chosen = [ids[i] for i in picked]
    review: list[str] = []
    if config.include_review_queue and REVIEW_STATUS_FIELD in dataset.get_field_schema():
        review = [i for i in review_queue(dataset).values("id") if i not in set(chosen)]
    if not chosen and not review:
        raise DataError("Nothing left to label: the pool has no unlabeled sample and the review queue is empty.")
    state.strategy, state.selected, state.review = strategy, chosen, review


def step_push(dataset, config: LoopConfig, state: RoundState, client: LabelStudioAPI, project_id: int,
              rounds: list[RoundState]) -> None:
    """Push the round's samples in one bulk import (idempotent), each pre-annotated by the newest model."""
    classes = get_classes(dataset, config.eval_field)
    done = [r for r in rounds if r.step == "done" and r.checkpoint and r.index != state.index]
    last = (round_key(done[-1].index), done[-1].checkpoint, done[-1].checkpoint_sha256) if done else None
    predictor = find_predictor(dataset, classes, last)
    specs = round_task_specs(dataset, state.selected, state.review, state.index, classes,
                             (config.label_field, config.eval_field), predictor, model_version=round_key(state.index))
    result = push_round_tasks(client, project_id, specs, media=config.media)
    state.task_ids = {str(k): int(v) for k, v in result.task_ids.items()}
    state.predictions_from, state.with_prediction = predictor.name, result.with_prediction
    state.media, state.push_note = result.media, result.note
    if state.review:
        dataset.set_values(REVIEW_STATUS_FIELD, {i: "pushed" for i in state.review}, key_field="id")


def training_view(dataset, config: LoopConfig):
    """Train and pool samples labeled in ``label_field``."""
    return dataset.match_tags([config.train_tag, config.pool_tag]).exists(f"{config.label_field}.label")


def step_retrain(dataset, config: LoopConfig, state: RoundState, classes: list[str],
                 progress: Progress | None = None) -> None:
    """Train the fixed model on every labeled sample; the checkpoint and its hash go into the round.

    The checkpoint is content-addressed (``al_round_NNN-<sha256[:16]>.pt``) and the round is recorded with it
    before older checkpoints of the round that no run references are deleted, so a crash at any point leaves
    every recorded checkpoint loadable with its hash. ``progress(fraction, message)`` hears from the training at
    least every ~10 s (epochs and batches).
    """
    from active_learning.store.faults import pause_point
    from active_learning.model.outputs import collect_checkpoints

    if state.checkpoint and state.checkpoint_sha256:
        try:
            if file_sha256(state.checkpoint) == state.checkpoint_sha256:
                return  # already trained before a crash: the recorded checkpoint is intact
        except OSError:
            pass
    arrays = labeled_arrays(training_view(dataset, config), config.label_field, classes)
    recipe = config.recipe()
    model = FixedModel(len(classes), recipe).fit(load_images(arrays.filepaths, recipe.image_size), arrays.labels,
                                                 progress=progress)
    path, sha = model.save_checkpoint(checkpoint_dir(dataset), round_key(state.index))
    pause_point("loop:after-checkpoint-save")
    state.checkpoint, state.checkpoint_sha256 = str(path), sha
    state.num_labeled = len(arrays.labels)
    save_round(dataset, config, state)  # recorded (a rerun skips the training), then the old files go
    collect_checkpoints(dataset, round_key(state.index))


def step_evaluate(dataset, config: LoopConfig, state: RoundState, classes: list[str]) -> None:
    """Accuracy and per-class F1 of the round's model on the fixed test view."""
    from sklearn.metrics import f1_score

    if state.checkpoint is None:
        raise ModelError("The round has no checkpoint to evaluate; rerun the round to retrain.")
    model = FixedModel.load(state.checkpoint, state.checkpoint_sha256)
    arrays = labeled_arrays(dataset.match_tags(config.test_tag), config.eval_field, classes)
    predicted = model.predict(load_images(arrays.filepaths, model.recipe.image_size))
    state.accuracy = float((predicted == arrays.labels).mean())
    scores = f1_score(arrays.labels, predicted, labels=list(range(len(classes))), average=None, zero_division=0)
    state.per_class_f1 = {c: round(float(s), 4) for c, s in zip(classes, scores)}


@dataclass(frozen=True)
class RoundProgress:
    """Where the current round's annotation stands, from the round's record and the samples' provenance.

    Attributes:
        index / step: the round and its step.
        pushed: tasks the round pushed.
        annotated / skipped: of those, annotated and skipped ones, as of the last look at Label Studio.
        ingested: of the round's tasks, those whose labels are in the dataset (counted in the database now).
        with_prediction: pushed tasks that carry a pre-annotation.
    """

    index: int
    step: str
    pushed: int
    annotated: int
    skipped: int
    ingested: int
    with_prediction: int

    @property
    def open(self) -> int:
        """Pushed tasks neither annotated nor skipped."""
        return max(self.pushed - self.annotated - self.skipped, 0)


def round_progress(dataset, state: RoundState) -> RoundProgress:
    """The round's figures, the ingested count read from the database (``ls_provenance.task_id``)."""
    from fiftyone import ViewField as F

    ingested = 0
    if state.task_ids and PROVENANCE_FIELD in dataset.get_field_schema():
        tasks = list(state.task_ids.values())
        ingested = len(dataset.select(list(state.task_ids)).match(
            F(f"{PROVENANCE_FIELD}.task_id").is_in(tasks)))
    return RoundProgress(state.index, state.step, len(state.task_ids), state.annotated, len(state.skipped),
                         ingested, state.with_prediction)


def note_annotation(state: RoundState, completed: CompletedTasks) -> bool:
    """Count the round's annotated and skipped tasks from ``completed``; True when none is left open."""
    finished = {task.task_id for task in completed}
    skipped_ids = set(getattr(completed, "skipped_task_ids", ()))
    state.annotated = sum(1 for task_id in state.task_ids.values() if task_id in finished)
    state.skipped = [sample_id for sample_id, task_id in state.task_ids.items()
                     if task_id in skipped_ids and task_id not in finished]
    return state.annotated + len(state.skipped) >= len(state.task_ids)


def return_skipped(dataset, state: RoundState) -> None:
    """Skipped review samples go back to the review queue (skipped new samples are candidates again)."""
    back = [sample_id for sample_id in state.skipped if sample_id in set(state.review)]
    if back:
        dataset.set_values(REVIEW_STATUS_FIELD, {sample_id: "queued" for sample_id in back}, key_field="id")


def loop_project(dataset) -> tuple[LoopConfig, int]:
    """The loop's configuration and its Label Studio project id; an error when the loop has no project."""
    config, project_id = load_config(dataset)
    if project_id is None:
        raise LabelStudioError("The loop has no Label Studio project; run the loop's init again.")
    return config, int(project_id)


def ingest_current_round(dataset, client: LabelStudioAPI, completed: CompletedTasks | None = None) -> IngestReport:
    """Ingest every finished annotation of the loop's project (idempotent), counted against the current round.

    The one ingest sequence of the product: ``curation al ingest``, the App's ingest operator and panel button, and
    a round's ingest step all call it. When the round waits for annotators, its annotated and skipped counts are
    updated too (the round itself moves on only in :func:`run_round`).

    Returns:
        The :class:`~active_learning.label_studio.ingest.IngestReport`.
    """
    config, project_id = loop_project(dataset)
    completed = fetch_completed(client, project_id) if completed is None else completed
    with writer_lease(dataset.name, "an ingest of Label Studio annotations", wait_seconds=INGEST_WAIT_SECONDS):
        state = current_round(dataset)
        report = ingest(dataset, completed, config.label_field, state.index, project_id)
        if state.step == "annotate" and state.task_ids:
            note_annotation(state, completed)
            save_round(dataset, config, state)
    return report


def step_annotate(dataset, state: RoundState, client: LabelStudioAPI, project_id: int, *,
                  simulate_field: str | None, annotator: SimulatedAnnotator | None, wait: bool,
                  poll_seconds: float, timeout_seconds: float | None,
                  say: Callable[[str, float], None]) -> bool:
    """Simulate the annotators (with ``simulate_field``), then look at (or, with ``wait``, poll) the round's tasks;
    True when every task is annotated or skipped."""
    if simulate_field:
        truth = dict(zip(*dataset.select(list(state.task_ids)).values(["id", f"{simulate_field}.label"])))
        simulate_annotations(client, project_id, state.task_ids, truth, annotator=annotator)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    where = project_url(client, project_id)
    while True:
        complete = note_annotation(state, fetch_completed(client, project_id))
        if complete or not wait or (deadline and time.monotonic() > deadline):
            return complete
        done = state.annotated + len(state.skipped)
        say(f"{state.annotated}/{len(state.task_ids)} annotated, {len(state.skipped)} skipped; "
            f"waiting for the rest at {where}", done / len(state.task_ids))
        time.sleep(poll_seconds)


def run_round(
    dataset,
    client: LabelStudioAPI,
    simulate_field: str | None = None,
    wait: bool = False,
    poll_seconds: float = 10.0,
    timeout_seconds: float | None = None,
    progress: Progress | None = None,
    annotator: SimulatedAnnotator | None = None,
) -> RoundState:
    """Run (or resume) the current round as far as it can go.

    Without ``simulate_field`` and ``wait``, a round stops at ``annotate`` when tasks are still open and returns;
    rerun it (or ingest) later. With ``wait``, it polls Label Studio every ``poll_seconds``. The annotation is
    complete when every task is annotated or skipped. ``progress(fraction of the round, message)`` hears about
    every step, every poll, and the retrain's epochs and batches (at least every ~10 s).
    ``annotator`` sets how the simulated annotator skips and errs (with ``simulate_field``).
    """
    config, project_id = loop_project(dataset)
    classes = get_classes(dataset, config.eval_field)
    rounds = list_rounds(dataset)
    state = current_round(dataset)
    report = progress or (lambda fraction, message: None)
    last = len(STEPS) - 1

    def say(message: str, within: float = 0.0) -> None:
        report((STEPS.index(state.step) + within) / last, f"round {state.index} {state.step}: {message}")

    def advance(step: str, started: float) -> None:
        state.timings[state.step] = round(state.timings.get(state.step, 0.0) + time.perf_counter() - started, 3)
        state.step = step
        save_round(dataset, config, state)

    while state.step != "done":
        started = time.perf_counter()
        say("started")
        with _step_lease(dataset, state):
            if state.step == "select":
                step_select(dataset, config, state, rounds)
                advance("push", started)
            elif state.step == "push":
                step_push(dataset, config, state, client, project_id, rounds)
                say(f"{len(state.task_ids)} tasks, {state.with_prediction} pre-annotated by "
                    f"{state.predictions_from or 'no model'}" + (f"; {state.push_note}" if state.push_note else ""))
                advance("annotate", started)
            elif state.step == "annotate":
                complete = step_annotate(dataset, state, client, project_id, simulate_field=simulate_field,
                                         annotator=annotator, wait=wait, poll_seconds=poll_seconds,
                                         timeout_seconds=timeout_seconds, say=say)
                if not complete:
                    advance("annotate", started)  # saved: resume later (run the round again, or ingest)
                    return state
                return_skipped(dataset, state)
                advance("ingest", started)
            elif state.step == "ingest":
                ingested = ingest_current_round(dataset, client)
                state.ingest = {k: v for k, v in asdict(ingested).items() if isinstance(v, (int, dict))}
                advance("retrain", started)
            elif state.step == "retrain":
                step_retrain(dataset, config, state, classes, progress=lambda f, m: say(m, within=f))
                advance("evaluate", started)
            elif state.step == "evaluate":
                step_evaluate(dataset, config, state, classes)
                state.finished_at = now_utc()
                advance("done", started)
    return state


def _step_lease(dataset, state: RoundState):
    """The dataset's writer lease for a writing step; none while waiting for annotators (that can take days)."""
    if state.step == "annotate":
        return contextlib.nullcontext()
    return writer_lease(dataset.name, f"active-learning round {state.index} ({state.step})",
                        wait_seconds=INGEST_WAIT_SECONDS)


__all__ = ["LOOP_RUN_KEY", "LoopConfig", "RoundProgress", "RoundState", "SimulatedAnnotator", "candidates",
           "ingest_current_round", "init_loop", "list_rounds", "load_config", "round_key", "round_progress",
           "run_round", "simulate_annotations", "training_view"]
