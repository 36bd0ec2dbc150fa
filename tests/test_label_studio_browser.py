"""A pushed task as the annotator meets it: the real Label Studio's labeling page in headless Chromium.

The loop pushes a round (pre-annotated by the dataset's model run); a person logs in, opens a task, and finds the
model's class already selected, the model version and score on the prediction tab, and the note above the image.
Screenshot: ``test-artifacts/label_studio_task.png`` (``label_studio_task_failure.png`` when a step fails).
"""

from __future__ import annotations

import os

import pytest
from app_browser_helpers import ARTIFACTS, chromium_page

from active_learning.label_studio.connection import LabelStudioSettings, connect
from active_learning.loop.rounds import init_loop, run_round
from active_learning.loop.state import LoopConfig

pytestmark = [pytest.mark.labelstudio, pytest.mark.browser]


@pytest.fixture
def pushed_round(dataset_name, tmp_path, label_studio, monkeypatch):
    """A digits loop whose round 0 is pushed (pre-annotated by a one-epoch model run) and waits for annotators."""
    from active_learning.data.importers import import_dataset
    from active_learning.model.fixed import named_recipe
    from active_learning.model.outputs import compute_model_outputs

    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.local_files_root))
    dataset = import_dataset(dataset_name, None, pool_fraction=0.6, progress=False, media_dir=str(tmp_path / "media"))
    compute_model_outputs(dataset.match_tags("train"), folds=2, recipe=named_recipe("fast", epochs=1))
    client = connect(LabelStudioSettings(url=label_studio.url, api_key=label_studio.personal_access_token))
    config = LoopConfig(label_field="al_label", initial_size=3, epochs=1, min_steps=0,
                        project_title=f"b-{dataset.name[-40:]}")
    project_id = init_loop(dataset, config, client)
    state = run_round(dataset, client)
    assert state.step == "annotate" and state.with_prediction == 3
    return client, project_id, state


def test_a_pushed_task_opens_with_the_models_class_selected(pushed_round, label_studio):
    from playwright.sync_api import sync_playwright

    client, project_id, state = pushed_round
    sample_id, task_id = next(iter(state.task_ids.items()))
    (prediction,) = client.get_task(task_id)["predictions"]
    predicted = prediction["result"][0]["value"]["choices"][0]
    shot = ARTIFACTS / "label_studio_task.png"
    for stale in (shot, ARTIFACTS / "label_studio_task_failure.png"):
        stale.unlink(missing_ok=True)
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as playwright, chromium_page(playwright) as page:
        try:
            page.goto(f"{label_studio.url}/user/login")
            page.fill("input[name=email]", label_studio.username)
            page.fill("input[name=password]", label_studio.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/user/login" not in url)
            page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task_id}")
            checked = page.locator("label:has(input[type=radio]:checked)", has_text=predicted)
            checked.first.wait_for(state="visible")
            page.get_by_text("Pre-selected: the model's guess").first.wait_for(state="visible")
            page.get_by_text("al_round_000").first.wait_for(state="visible")  # the prediction's model version
            page.screenshot(path=str(shot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "label_studio_task_failure.png"))
            raise
