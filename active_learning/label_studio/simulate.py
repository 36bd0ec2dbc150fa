"""A simulated annotator for demos, tests and benchmarks: answers Label Studio tasks through the API.

It reads the hidden truth from a field, and can skip and err on purpose at seeded rates, so a loop can be run end
to end without a person (``curation al round --simulate-annotator FIELD``).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from active_learning.errors import DataError
from active_learning.label_studio.config import choice_result, parse_labeling_config

if TYPE_CHECKING:
    from active_learning.label_studio.api import LabelStudioAPI


@dataclass(frozen=True)
class SimulatedAnnotator:
    """How a simulated annotator answers: from the hidden truth, skipping and erring at given rates (seeded).

    Attributes:
        skip_fraction: share of the tasks skipped (cancelled), as a person unsure of the image does.
        wrong_fraction: share of the answered tasks given a wrong class on purpose.
        seed: which tasks are skipped or answered wrongly.
    """

    skip_fraction: float = 0.0
    wrong_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("skip_fraction", "wrong_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"The simulated annotator's {name} must be from 0 to 1, not {value!r}.")

    def answers(self, truth: Mapping[int, str], classes: list[str]) -> dict[int, str | None]:
        """Task id -> the label to submit, or None to skip; the same tasks skip and err on every call."""
        out: dict[int, str | None] = {}
        for task_id, label in truth.items():
            rng = np.random.default_rng([self.seed, int(task_id)])
            draw, pick = rng.random(2)
            if draw < self.skip_fraction:
                out[task_id] = None
            elif draw < self.skip_fraction + (1 - self.skip_fraction) * self.wrong_fraction and len(classes) > 1:
                others = [c for c in classes if c != label]
                out[task_id] = others[int(pick * len(others))]
            else:
                out[task_id] = label
        return out


def simulate_annotations(client: LabelStudioAPI, project_id: int, task_ids: Mapping[str, int],
                         truth: Mapping[str, str], workers: int = 4,
                         annotator: SimulatedAnnotator | None = None) -> int:
    """Answer (or skip) the round's open tasks through the API from the hidden truth, as annotators would.

    Label Studio 1.23 has no bulk annotation call; one call per task (~0.1-0.4 s), a few in parallel.
    Returns how many tasks were answered or skipped now.
    """
    annotator = annotator or SimulatedAnnotator()
    done = {int(t["id"]) for t in client.annotated_tasks(project_id)}
    config = parse_labeling_config(client.get_project(project_id).label_config)
    open_truth = {task_id: truth[sample_id] for sample_id, task_id in task_ids.items()
                  if task_id not in done and truth.get(sample_id) is not None}
    todo = list(annotator.answers(open_truth, list(config.classes)).items())

    def answer(item: tuple[int, str | None]) -> None:
        task_id, label = item
        if label is None:
            client.create_annotation(task_id, [], was_cancelled=True, lead_time=1.0)
        else:
            client.create_annotation(task_id, choice_result(label, config), lead_time=1.0)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(answer, todo))
    return len(todo)
