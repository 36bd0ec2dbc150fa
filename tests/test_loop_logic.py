"""Pure logic of the annotation loop, without Label Studio: progress with an ETA, the simulated annotator's rates,
and what a task's note says."""

from __future__ import annotations

import pytest

from active_learning.errors import DataError
from active_learning.label_studio.preannotate import Guess, Predictor, new_sample_note, review_note
from active_learning.progress import eta_seconds, format_duration, with_eta
from active_learning.label_studio.simulate import SimulatedAnnotator


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (44.6, "45 s"), (95, "2 min"), (3600, "60 min"),
                                           (5400, "1 h 30 min"), (-3, "0 s")])
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_eta_follows_the_pace_so_far_and_needs_a_pace_first() -> None:
    assert eta_seconds(0.25, 60.0) == pytest.approx(180.0)
    assert eta_seconds(0.01, 60.0) is None, "under 2% done there is no pace yet"
    assert eta_seconds(1.0, 60.0) == 0.0
    now = [100.0]
    seen: list[tuple[float, str]] = []
    progress = with_eta(lambda fraction, message: seen.append((fraction, message)), clock=lambda: now[0])
    progress(0.0, "fold 1/5")
    now[0] = 130.0
    progress(0.5, "fold 3/5")
    now[0] = 190.0
    progress(1.5, "done")
    assert seen == [(0.0, "fold 1/5"), (0.5, "fold 3/5 (about 30 s left)"), (1.0, "done")]


def test_the_simulated_annotator_skips_and_errs_at_its_rates_and_the_same_tasks_every_time() -> None:
    classes = [str(i) for i in range(10)]
    truth = {task_id: classes[task_id % 10] for task_id in range(1, 4001)}
    annotator = SimulatedAnnotator(skip_fraction=0.05, wrong_fraction=0.10, seed=7)
    answers = annotator.answers(truth, classes)
    skipped = [t for t, label in answers.items() if label is None]
    answered = {t: label for t, label in answers.items() if label is not None}
    wrong = [t for t, label in answered.items() if label != truth[t]]
    assert 0.04 < len(skipped) / len(truth) < 0.06
    assert 0.085 < len(wrong) / len(answered) < 0.115
    assert all(label in classes for label in answered.values())
    assert annotator.answers(truth, classes) == answers, "deterministic per seed and task"
    assert SimulatedAnnotator().answers(truth, classes) == truth, "by default it answers the truth"
    with pytest.raises(DataError, match="skip_fraction"):
        SimulatedAnnotator(skip_fraction=1.5)


def test_notes_say_where_the_preselection_comes_from_and_why_a_sample_is_back() -> None:
    note = new_sample_note(Guess("Coat", 0.873), Predictor("al_round_002"))
    assert note == ("New sample. Pre-selected: the model's guess 'Coat' (87%), from al_round_002. Change it if it is "
                    "wrong.")
    assert "nothing is pre-selected" in new_sample_note(None, Predictor(""))
    review = review_note("Shirt", Guess("T-shirt/top", 0.93), "suspected label error")
    assert review == ("Review: this sample is labeled 'Shirt' now. Pre-selected: the suggested label 'T-shirt/top' "
                      "(93%). Why: suspected label error. Choose the right class.")
    assert review_note(None, None, None) == "Review: this sample has no label. Choose the right class."
