"""The active-learning loop: a resumable state machine persisted as FiftyOne runs.

``al_loop`` holds the configuration (and the Label Studio project id); each round is a run ``al_round_NNN``
whose results hold its step and everything the step produced. Steps, in order::

    select -> push -> annotate -> ingest -> retrain -> evaluate -> done

Every pushed task is pre-annotated by the newest model (``active_learning.preannotate``). A round's annotation
is complete when each of its tasks is annotated or skipped; skipped samples go back to the pool (and skipped
review samples back to the review queue), recorded in the round's ``skipped``.

Each step reads what the previous ones saved and saves its own output before the step advances, so a crash
(kill -9) or a rerun continues where it stopped: the selection is saved before anything is pushed, pushing skips
samples already in the project, ingestion skips annotations already ingested, and a retrain whose checkpoint
is recorded with a matching hash is not repeated. Rounds differ only in the data; the model and recipe are fixed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

import numpy as np

from active_learning.errors import DataError, LabelStudioError, ModelError
from active_learning.images import load_images
from active_learning.label_history import REVIEW_STATUS_FIELD, review_queue
from active_learning.lease import writer_lease
from active_learning.model import LOOP_MIN_STEPS, FixedModel, Recipe, file_sha256, named_recipe
from active_learning.predictions import checkpoint_dir
from active_learning.runs import load_run, now_utc, record_run, update_run_results
from active_learning.simulate import SimulatedAnnotator, simulate_annotations
from active_learning.strategies import REQUIRES, STRATEGIES, select
from active_learning.views import get_classes, labeled_arrays

LOOP_RUN_KEY = "al_loop"
INGEST_WAIT_SECONDS = 120.0  # an ingest or a round's step waits this long for another writer before refusing
STEPS = ("select", "push", "annotate", "ingest", "retrain", "evaluate", "done")
Progress = Callable[[float, str], None]  # (fraction done, message)


def round_key(index: int) -> str:
    """The run key of round ``index``."""
    return f"al_round_{index:03d}"


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs. Recorded in the ``al_loop`` run; the recipe is the fixed one with a floor of ``min_steps``
    optimizer steps per training (and other epochs when ``epochs`` is set).

    Attributes:
        label_field: where human labels go (a Classification field; created when missing).
        eval_field: the labels of the test view used for evaluation.
        pool_tag / train_tag / test_tag: the splits. Training uses train+pool samples labeled in
            ``label_field``; candidates are pool samples without a label that no round has selected yet.
        strategy: a name from ``active_learning.strategies.STRATEGIES``; round 0 is always random.
        batch_size: samples selected per round (round 0: ``initial_size``).
        include_review_queue: also push the samples queued for review (label errors) in the next round.
        project_title: the Label Studio project (default: ``curation: <dataset>``).
        media: how images reach Label Studio (``auto``, ``local-files``, ``upload``).
        epochs: override the fixed recipe's epochs (None: the recipe's own).
        recipe_name: the loop's recipe (``fast`` or ``photo``), chosen once at ``al init`` (``auto``: the dataset's
            model-run recipe, else by the images' colour) and kept for every round.
        min_steps: every round trains for at least this many optimizer steps (``Recipe.min_steps``). Early rounds
            hold few labels: 100 labels x 12 epochs is 12 steps, a model whose uncertainty is close to noise. The
            floor costs about 3 minutes per round on 2 CPU cores and about 15 s on a GPU (docs/active_learning.md).
    """

    label_field: str = "ground_truth"
    eval_field: str = "ground_truth"
    pool_tag: str = "pool"
    train_tag: str = "train"
    test_tag: str = "test"
    strategy: str = "margin"
    batch_size: int = 100
    initial_size: int = 100
    seed: int = 0
    epochs: int | None = None
    min_steps: int = LOOP_MIN_STEPS
    include_review_queue: bool = True
    project_title: str = ""
    media: str = "auto"
    recipe_name: str = "fast"  # loops recorded before named recipes trained ResNet-18: fast

    def recipe(self) -> Recipe:
        """The loop's named recipe with its seed and step floor (and epochs, when overridden)."""
        overrides = {} if self.epochs is None else {"epochs": self.epochs}
        return named_recipe(self.recipe_name, seed=self.seed, min_steps=self.min_steps, **overrides)


@dataclass
class RoundState:
    """One round as stored in its run."""

    index: int
    step: str = "select"
    strategy: str = "random"
    selected: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    task_ids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    num_labeled: int = 0
    accuracy: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    ingest: dict[str, Any] = field(default_factory=dict)
    annotated: int = 0
    skipped: list[str] = field(default_factory=list)
    predictions_from: str = ""
    with_prediction: int = 0
    media: str = ""
    push_note: str = ""
    started_at: str = ""
    finished_at: str = ""

    @classmethod
    def from_results(cls, results: Mapping[str, Any]) -> "RoundState":
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in results.items() if k in known})
        state.task_ids = {str(k): int(v) for k, v in state.task_ids.items()}
        return state


# -- persistence -----------------------------------------------------------------------------------------------
def load_config(dataset) -> tuple[LoopConfig, int | None]:
    """The loop's configuration and Label Studio project id; ``DataError`` when ``al init`` was not run."""
    if LOOP_RUN_KEY not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no active-learning loop yet: run `curation al init` first.")
    config, results = load_run(dataset, LOOP_RUN_KEY)
    known = {f.name for f in fields(LoopConfig)}
    stored = {k: v for k, v in config.items() if k in known}
    stored.setdefault("min_steps", 0)  # loops recorded before the floor existed trained without one: keep it so
    return LoopConfig(**stored), results.get("project_id")


def list_rounds(dataset) -> list[RoundState]:
    """All rounds, oldest first."""
    keys = sorted(k for k in dataset.list_runs() if k.startswith("al_round_"))
    return [RoundState.from_results(load_run(dataset, key)[1]) for key in keys]


def save_round(dataset, config: LoopConfig, state: RoundState) -> None:
    """Persist the round: registered once, then its results are replaced in place at every step."""
    key = round_key(state.index)
    if key in dataset.list_runs():
        update_run_results(dataset, key, asdict(state))
    else:
        record_run(dataset, key, {"kind": "al_round", **asdict(config), "round": state.index}, asdict(state))


def init_loop(dataset, config: LoopConfig, client, new_project: bool = False) -> int:
    """Validate the dataset, create the label field, create or reuse the Label Studio project; returns its id.

    Idempotent: a second call with the same configuration reuses everything.
    """
    import fiftyone as fo

    from active_learning.ls_bridge import ensure_project

    if config.strategy not in STRATEGIES:
        raise DataError(f"Unknown strategy {config.strategy!r}; available: {', '.join(sorted(STRATEGIES))}.")
    if config.batch_size <= 0 or config.initial_size <= 0:
        raise DataError("--batch-size and --initial-size must be positive.")
    pool = dataset.match_tags(config.pool_tag)
    if not len(pool):
        raise DataError(f"No sample is tagged {config.pool_tag!r}: import with --pool-fraction or tag a pool first.")
    classes = get_classes(dataset, config.eval_field)
    if config.label_field not in dataset.get_field_schema():
        dataset.add_sample_field(config.label_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        dataset.classes = {**dataset.classes, config.label_field: classes}
        dataset.save()
    test = dataset.match_tags(config.test_tag)
    if not len(test):
        raise DataError(f"No sample is tagged {config.test_tag!r}: the loop evaluates every round on a fixed test view.")
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
def current_round(dataset) -> RoundState:
    """The unfinished round, or a new one after the last finished round."""
    rounds = list_rounds(dataset)
    if rounds and rounds[-1].step != "done":
        return rounds[-1]
    return RoundState(index=len(rounds), started_at=now_utc())


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


def step_push(dataset, config: LoopConfig, state: RoundState, client, project_id: int,
              rounds: list[RoundState]) -> None:
    """Push the round's samples in one bulk import (idempotent), each pre-annotated by the newest model."""
    from active_learning.label_history import REVIEW_STATUS_FIELD as STATUS
    from active_learning.ls_bridge import push_round_tasks
    from active_learning.preannotate import find_predictor, round_task_specs

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
        dataset.set_values(STATUS, {i: "pushed" for i in state.review}, key_field="id")


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
    from active_learning.faults import pause_point
    from active_learning.predictions import collect_checkpoints

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
        return max(self.pushed - self.annotated - self.skipped, 0)


def round_progress(dataset, state: RoundState) -> RoundProgress:
    """The round's figures, the ingested count read from the database (``ls_provenance.task_id``)."""
    from fiftyone import ViewField as F

    from active_learning.ls_bridge import PROVENANCE_FIELD

    ingested = 0
    if state.task_ids and PROVENANCE_FIELD in dataset.get_field_schema():
        tasks = list(state.task_ids.values())
        ingested = len(dataset.select(list(state.task_ids)).match(
            F(f"{PROVENANCE_FIELD}.task_id").is_in(tasks)))
    return RoundProgress(state.index, state.step, len(state.task_ids), state.annotated, len(state.skipped),
                         ingested, state.with_prediction)


def _note_annotation(state: RoundState, completed) -> bool:
    """Count the round's annotated and skipped tasks from ``completed``; True when none is left open."""
    finished = {task.task_id for task in completed}
    skipped_ids = set(getattr(completed, "skipped_task_ids", ()))
    state.annotated = sum(1 for task_id in state.task_ids.values() if task_id in finished)
    state.skipped = [sample_id for sample_id, task_id in state.task_ids.items()
                     if task_id in skipped_ids and task_id not in finished]
    return state.annotated + len(state.skipped) >= len(state.task_ids)


def _return_skipped(dataset, state: RoundState) -> None:
    """Skipped review samples go back to the review queue (skipped new samples are candidates again)."""
    from active_learning.label_history import REVIEW_STATUS_FIELD as STATUS

    back = [sample_id for sample_id in state.skipped if sample_id in set(state.review)]
    if back:
        dataset.set_values(STATUS, {sample_id: "queued" for sample_id in back}, key_field="id")


def ingest_current_round(dataset, client, completed=None):
    """Ingest every finished annotation of the loop's project (idempotent), counted against the current round.

    The one ingest sequence of the product: ``curation al ingest``, the App's ingest operator and panel button, and
    a round's ingest step all call it. When the round waits for annotators, its annotated and skipped counts are
    updated too (the round itself moves on only in :func:`run_round`).

    Returns:
        The :class:`~active_learning.ls_bridge.IngestReport`.
    """
    from active_learning.ls_bridge import fetch_completed, ingest

    config, project_id = load_config(dataset)
    if project_id is None:
        raise LabelStudioError("The loop has no Label Studio project; run the loop's init again.")
    completed = fetch_completed(client, project_id) if completed is None else completed
    with writer_lease(dataset.name, "an ingest of Label Studio annotations", wait_seconds=INGEST_WAIT_SECONDS):
        state = current_round(dataset)
        report = ingest(dataset, completed, config.label_field, state.index, project_id)
        if state.step == "annotate" and state.task_ids:
            _note_annotation(state, completed)
            save_round(dataset, config, state)
    return report


def run_round(
    dataset,
    client,
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
    from active_learning.ls_bridge import fetch_completed, project_url

    config, project_id = load_config(dataset)
    if project_id is None:
        raise LabelStudioError("The loop has no Label Studio project; run the loop's init again.")
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
                if simulate_field:
                    truth = dict(zip(*dataset.select(list(state.task_ids)).values(
                        ["id", f"{simulate_field}.label"])))
                    simulate_annotations(client, project_id, state.task_ids, truth, annotator=annotator)
                deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
                where = project_url(client, project_id)
                while True:
                    complete = _note_annotation(state, fetch_completed(client, project_id))
                    if complete or not wait or (deadline and time.monotonic() > deadline):
                        break
                    done = state.annotated + len(state.skipped)
                    say(f"{state.annotated}/{len(state.task_ids)} annotated, {len(state.skipped)} skipped; "
                        f"waiting for the rest at {where}", within=done / len(state.task_ids))
                    time.sleep(poll_seconds)
                if not complete:
                    advance("annotate", started)  # saved: resume later (run the round again, or ingest)
                    return state
                _return_skipped(dataset, state)
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


def learning_curve(dataset) -> list[dict[str, Any]]:
    """One point per finished round: labels so far, accuracy, strategy."""
    return [{"round": r.index, "num_labeled": r.num_labeled, "accuracy": r.accuracy, "strategy": r.strategy}
            for r in list_rounds(dataset) if r.step == "done"]


__all__ = ["LoopConfig", "RoundState", "RoundProgress", "SimulatedAnnotator", "init_loop", "run_round",
           "ingest_current_round", "round_progress", "learning_curve", "list_rounds"]
