"""The dataset's model run (``curation_model``), read in one place: what made the stored probabilities.

``compute_model_outputs``, the embeddings head and imported predictions record the run (``active_learning.model.
outputs``, ``active_learning.model.own_model``); every reader (label issues, the App's forms and panels, drift, the
CLI) gets it as one typed ``ModelRun`` from ``load_model_run``, with the fallbacks for runs recorded by older
versions applied here once: a run of the fixed model without a recipe, or with one recorded before named recipes
existed, is ``fast`` (they were all ResNet-18); a run from before test-time augmentation made plain
probabilities (``tta_px`` 0); a run of the fixed model is out-of-sample unless it says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from active_learning.model.recipes import Recipe
from active_learning.model.trust import TrustVerdict, model_trust
from active_learning.store.runs import load_run

DEFAULT_RUN_KEY = "curation_model"
FIXED_MODEL = "fixed_model"  # ``source`` of a run of the fixed model (its runs record no source)
EMBEDDINGS_HEAD = "embeddings_head"
PREDICTIONS_FIELD = "predictions_field"


@dataclass(frozen=True)
class ModelRun:
    """A model run as recorded, with the old-run fallbacks applied.

    ``recipe`` is None for the user's own model (``source`` ``embeddings_head`` or ``predictions_field``);
    ``split`` is ``kfold``, ``disjoint`` (trained on another view, ``num_fit`` samples) or ``predictions``;
    ``folds`` is None for a disjoint split and for predictions. Figures the run did not record are None.
    """

    run_key: str
    source: str
    split: str
    recipe: Recipe | None
    folds: int | None
    seeds: tuple[int, ...]
    tta_px: int
    num_fit: int
    out_of_sample: bool
    label_field: str | None
    classes: tuple[str, ...]
    probabilities: str  # how the probabilities were made, in words
    num_scored: int | None
    out_of_sample_accuracy: float | None
    test_accuracy: float | None
    checkpoint: str  # "" without one (the user's own model)
    checkpoint_sha256: str
    device: str
    seconds: float | None
    created_at: str
    embeddings_field: str | None = None
    predictions_field: str | None = None
    head: str | None = None
    passes: int = 1  # 2: the second pass, trained without the first pass's suspects (``num_left_out`` of them)
    num_left_out: int = 0

    @classmethod
    def from_recorded(cls, run_key: str, config: dict[str, Any], results: dict[str, Any]) -> "ModelRun":
        """The run from its recorded ``config`` and ``results`` (``active_learning.store.runs.load_run``)."""
        source = str(config.get("source") or FIXED_MODEL)
        split = str(config.get("split") or "kfold")
        classes = config.get("classes")
        return cls(
            run_key=run_key,
            source=source,
            split=split,
            recipe=recorded_recipe(config),
            folds=_int_or_none(config.get("folds")),
            seeds=tuple(int(s) for s in config.get("seeds") or ()),
            tta_px=int(config.get("tta_px") or 0),
            num_fit=int(config.get("num_fit") or 0),
            out_of_sample=bool(config.get("out_of_sample", split != "predictions")),
            label_field=config.get("label_field") or None,
            classes=tuple(str(c) for c in classes) if isinstance(classes, list) else (),
            probabilities=str(config.get("probabilities") or ""),
            num_scored=_int_or_none(results.get("num_scored")),
            out_of_sample_accuracy=_float_or_none(results.get("out_of_sample_accuracy")),
            test_accuracy=_float_or_none(results.get("test_accuracy")),
            checkpoint=str(results.get("checkpoint") or ""),
            checkpoint_sha256=str(results.get("checkpoint_sha256") or ""),
            device=str(results.get("device") or ""),
            seconds=_float_or_none(results.get("seconds")),
            created_at=str(config.get("created_at") or ""),
            embeddings_field=config.get("embeddings_field"),
            predictions_field=config.get("predictions_field"),
            head=config.get("head"),
            passes=int(config.get("passes") or 1),
            num_left_out=int((config.get("left_out") or {}).get("count") or 0),
        )

    @property
    def disjoint(self) -> bool:
        """Whether the probabilities come from models trained on another view (not a K-fold over this one)."""
        return self.split == "disjoint"

    @property
    def model_name(self) -> str:
        """The model in a few words: the recipe's name, or the user's own model."""
        if self.recipe is not None:
            return self.recipe.name
        if self.source == EMBEDDINGS_HEAD:
            return f"{self.head or 'a'} head on {self.embeddings_field}"
        if self.source == PREDICTIONS_FIELD:
            return f"the predictions in {self.predictions_field}"
        return self.source

    @property
    def trust(self) -> TrustVerdict | None:
        """The verdict on the run's out-of-sample accuracy, or None when it recorded none."""
        return model_trust(self.out_of_sample_accuracy) if self.out_of_sample_accuracy is not None else None

    @property
    def run_date(self) -> str:
        """When the run was recorded, e.g. ``2025-01-05 10:00 UTC`` (``?`` for a run without the time)."""
        return run_date(self.created_at)

    @property
    def description(self) -> str:
        """How the probabilities were made and with which seeds, e.g. ``out-of-sample, ...; seeds 0, 1``."""
        seeds = ", ".join(map(str, self.seeds))
        return f"{self.probabilities}; seed{'s' if len(self.seeds) > 1 else ''} {seeds}"


def recorded_recipe(config: dict[str, Any]) -> Recipe | None:
    """The recipe a model run recorded (fields this version does not know are dropped): None for the user's own
    model, ``fast`` for a run of the fixed model that recorded none or one without a name (older versions)."""
    if (config.get("source") or FIXED_MODEL) != FIXED_MODEL:
        return None
    recorded = config.get("recipe")
    return Recipe.from_dict(recorded) if isinstance(recorded, dict) else Recipe()


def load_model_run(dataset, run_key: str = DEFAULT_RUN_KEY) -> ModelRun | None:
    """The dataset's model run ``run_key``, or None when the dataset has none."""
    if run_key not in dataset.list_runs():
        return None
    config, results = load_run(dataset, run_key)
    return ModelRun.from_recorded(run_key, config, results)


def run_date(created_at: str) -> str:
    """An ISO time as ``2025-01-05 10:00 UTC`` (``?`` when it is missing or not a time)."""
    try:
        return datetime.fromisoformat(str(created_at)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return "?"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
