"""The loop's state in MongoDB: its configuration (run ``al_loop``) and one run per round (``al_round_NNN``).

A round's run holds its step and everything its steps produced (:class:`RoundState`); it is registered once and
its results are replaced in place at every step, so any process (the CLI, the App, a delegated worker) reads the
same rounds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from collections.abc import Mapping
from typing import Any

from active_learning.errors import DataError
from active_learning.model.fixed import LOOP_MIN_STEPS, Recipe, named_recipe
from active_learning.store.runs import load_run, now_utc, record_run, update_run_results

LOOP_RUN_KEY = "al_loop"
ROUND_PREFIX = "al_round_"
STEPS = ("select", "push", "annotate", "ingest", "retrain", "evaluate", "done")


def round_key(index: int) -> str:
    """The run key of round ``index``."""
    return f"{ROUND_PREFIX}{index:03d}"


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs. Recorded in the ``al_loop`` run; the recipe is the fixed one with a floor of ``min_steps``
    optimizer steps per training (and other epochs when ``epochs`` is set).

    Attributes:
        label_field: where human labels go (a Classification field; created when missing).
        eval_field: the labels of the test view used for evaluation.
        pool_tag / train_tag / test_tag: the splits. Training uses train+pool samples labeled in
            ``label_field``; candidates are pool samples without a label that no round has selected yet.
        strategy: a name from ``active_learning.loop.strategies.STRATEGIES``; round 0 is always random.
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
    def from_results(cls, results: Mapping[str, Any]) -> RoundState:
        """The round stored in a run's results (keys of older or newer versions are ignored)."""
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in results.items() if k in known})
        state.task_ids = {str(k): int(v) for k, v in state.task_ids.items()}
        return state


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
    keys = sorted(k for k in dataset.list_runs() if k.startswith(ROUND_PREFIX))
    return [RoundState.from_results(load_run(dataset, key)[1]) for key in keys]


def save_round(dataset, config: LoopConfig, state: RoundState) -> None:
    """Persist the round: registered once, then its results are replaced in place at every step."""
    key = round_key(state.index)
    if key in dataset.list_runs():
        update_run_results(dataset, key, asdict(state))
    else:
        record_run(dataset, key, {"kind": "al_round", **asdict(config), "round": state.index}, asdict(state))


def current_round(dataset) -> RoundState:
    """The unfinished round, or a new one after the last finished round."""
    rounds = list_rounds(dataset)
    if rounds and rounds[-1].step != "done":
        return rounds[-1]
    return RoundState(index=len(rounds), started_at=now_utc())
