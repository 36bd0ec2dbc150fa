"""The bias report as a value: ``BiasReport`` (what the run ``bias`` stores) and reading it back from a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from active_learning.errors import DataError
from active_learning.store.runs import load_run
from curation_checks.bias.class_metrics import ClassMetrics
from curation_checks.bias.distribution import ClassDistribution
from curation_checks.bias.groups import GroupSearch
from curation_checks.bias.slices import SlicePerformance

RUN_KEY = "bias"


@dataclass(frozen=True)
class BiasReport:
    """Everything ``run_bias`` found; ``to_dict`` is what the run ``bias`` stores."""

    label_field: str
    classes: tuple[str, ...]
    num_samples: int  # samples in the view
    num_scored: int  # labeled samples with an out-of-sample prediction
    num_unlabeled: int
    num_unscored: int  # labeled samples without model outputs, left out
    metrics: ClassMetrics
    distribution: ClassDistribution
    slices: SlicePerformance
    groups: GroupSearch | None
    config: dict

    @property
    def accuracy(self) -> float:
        """Out-of-sample accuracy over the scored samples."""
        return self.metrics.accuracy

    @property
    def num_filled(self) -> int | None:
        """Samples given the final model's outputs before scoring (None: not filled, or a report from before)."""
        return self.config.get("num_filled")

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return {
            "label_field": self.label_field,
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "num_scored": self.num_scored,
            "num_unlabeled": self.num_unlabeled,
            "num_unscored": self.num_unscored,
            "accuracy": self.metrics.to_dict()["accuracy"],
            "metrics": self.metrics.to_dict(),
            "distribution": self.distribution.to_dict(),
            "slices": self.slices.to_dict(),
            "groups": None if self.groups is None else self.groups.to_dict(),
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BiasReport":
        """Rebuild from ``to_dict`` output."""
        return cls(
            label_field=data["label_field"], classes=tuple(data["classes"]), num_samples=data["num_samples"],
            num_scored=data["num_scored"], num_unlabeled=data["num_unlabeled"], num_unscored=data["num_unscored"],
            metrics=ClassMetrics.from_dict(data["metrics"]),
            distribution=ClassDistribution.from_dict(data["distribution"]),
            slices=SlicePerformance.from_dict(data["slices"]),
            groups=None if data.get("groups") is None else GroupSearch.from_dict(data["groups"]),
            config=dict(data.get("config") or {}),
        )


def load_bias_report(dataset, run_key: str = RUN_KEY) -> BiasReport:
    """The report of the last ``run_bias`` on ``dataset`` (from its run)."""
    if run_key not in dataset.list_runs():
        raise DataError(f"Dataset {dataset.name!r} has no bias report yet (run {run_key!r}): compute it first "
                        "(run_bias, `curation bias` or the Compute bias operator).")
    _, results = load_run(dataset, run_key)
    return BiasReport.from_dict(results["report"])
