"""The check interface: a named, pure computation over arrays that returns a frozen result.

Like cleanlab's issue managers: a check declares what it needs (labels, predicted probabilities, embeddings),
``run`` takes those arrays and returns a ``CheckResult`` (per-sample scores and flags, and a JSON summary).
Reading arrays from a FiftyOne view and writing results back lives in ``plugins.io``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class CheckInputs:
    """The arrays a check may use; each is None when not computed. Rows align with ``sample_ids``."""

    sample_ids: tuple[str, ...]
    classes: tuple[str, ...]
    labels: np.ndarray | None = None  # class index per sample, -1 where unlabeled
    pred_probs: np.ndarray | None = None  # (N, K) out-of-sample probabilities
    embeddings: np.ndarray | None = None  # (N, D)


@dataclass(frozen=True)
class CheckResult:
    """A check's output: per-sample fields (name -> array aligned with the inputs) and a JSON summary."""

    check: str
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


class Check(Protocol):
    """What every check provides."""

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]]  # names of CheckInputs attributes that must not be None
    field_prefix: ClassVar[str]

    def run(self, inputs: CheckInputs) -> CheckResult: ...
