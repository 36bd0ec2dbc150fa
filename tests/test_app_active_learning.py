"""The "Active learning" panel in the real FiftyOne App, with a real Label Studio, driven by headless Chromium.

A loop on digits runs one round through the real Label Studio (simulated annotator, tiny training) and a second
round that stops after pushing its tasks, as it does when people annotate. The test opens the panel and checks the
learning curve and the rounds table against the runs; then the pending tasks are annotated through Label Studio's
API as a person would, and the panel's "Ingest annotations now" button ingests them from the App: the labels land
in the dataset with their provenance, the App says how many, and the panel's table shows them (also after Refresh).

Screenshot: ``test-artifacts/active_learning_panel.png``; on failure ``active_learning_failure.png``/``.html`` and
the App's log ``active_learning_app.log``.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

import pytest

from app_browser_helpers import ARTIFACTS, PANEL_TIMEOUT_MS, app_panel, require_chromium, serve_app

pytestmark = pytest.mark.labelstudio

PREFIX = "active_learning"
SCREENSHOT = ARTIFACTS / f"{PREFIX}_panel.png"
APP_LOG = ARTIFACTS / f"{PREFIX}_app.log"
INITIAL, BATCH = 30, 20


@pytest.fixture(autouse=True)
def _local_files_root(label_studio, monkeypatch):
    # The server serves local files under this root; the client (and the App, which inherits the environment)
    # must build image URLs against the same one.
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.local_files_root))


@pytest.fixture
def loop_dataset(label_studio, dataset_name, tmp_path):
    """Digits with a pool; round 0 done (simulated), round 1 pushed and waiting for annotators."""
    from active_learning.data.importers import import_dataset
    from active_learning.label_studio.connection import LabelStudioSettings, connect
    from active_learning.loop.rounds import LoopConfig, init_loop, run_round

    dataset = import_dataset(dataset_name, None, pool_fraction=0.6, progress=False,
                             media_dir=str(tmp_path / "media"))
    client = connect(LabelStudioSettings(url=label_studio.url, api_key=label_studio.personal_access_token,
                                         timeout=60))
    config = LoopConfig(label_field="al_label", eval_field="ground_truth", strategy="margin", batch_size=BATCH,
                        initial_size=INITIAL, epochs=1, min_steps=0, project_title=f"app-{dataset_name[-40:]}")
    project_id = init_loop(dataset, config, client)
    first = run_round(dataset, client, simulate_field="ground_truth")
    second = run_round(dataset, client)  # no annotator: pushed, waiting
    assert (first.step, second.step) == ("done", "annotate")
    return dataset, client, project_id, first, second


@pytest.fixture
def app_url(loop_dataset, label_studio) -> Iterator[str]:
    """The App, with the Label Studio URL and token in its environment (as a deployment would set them)."""
    saved = {k: os.environ.get(k) for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    os.environ["LABEL_STUDIO_URL"] = label_studio.url
    os.environ["LABEL_STUDIO_API_KEY"] = label_studio.personal_access_token
    try:
        with serve_app(loop_dataset[0].name, APP_LOG) as url:
            yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.browser
def test_active_learning_panel_shows_the_curve_and_ingests(app_url: str, loop_dataset, label_studio) -> None:
    from playwright.sync_api import expect, sync_playwright

    from active_learning.loop.rounds import simulate_annotations
    from curation_app.active_learning_panel import active_learning_data

    require_chromium()
    dataset, client, project_id, first, second = loop_dataset
    label_studio_url = label_studio.url
    expected = active_learning_data(dataset)
    assert expected["traces"][0]["x"] == [INITIAL]
    wait = PANEL_TIMEOUT_MS

    with sync_playwright() as playwright, app_panel(playwright, app_url, PREFIX, APP_LOG, (SCREENSHOT,), "active_learning",
                                                    "Active learning", wait) as (page, steps, panel):
        plot = panel.locator(".js-plotly-plot")
        table = panel.locator("table").first

        with steps.step("the header names the strategy, the project and the waiting round"):
            expect(panel).to_contain_text(f"Label Studio project {project_id}", timeout=wait)
            expect(panel).to_contain_text("current round 1: annotate", timeout=wait)
            for name in ("Run / resume round", "Ingest annotations now", "Refresh"):
                expect(panel.get_by_role("button", name=name, exact=True)).to_be_visible(timeout=wait)

        with steps.step("the learning curve has round 0's point"):
            expect(plot).to_have_count(1, timeout=wait)
            expect(plot.locator(".gtitle")).to_have_text("Test accuracy vs labels", timeout=wait)
            drawn = plot.evaluate("el => el.data.map(t => ({name: t.name, x: t.x, y: t.y}))")
            assert drawn == [{"name": "margin", "x": [INITIAL], "y": [round(first.accuracy, 4)]}], drawn

        with steps.step("the rounds table shows round 0 done and round 1 waiting, its tasks all pre-annotated"):
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(2, timeout=wait)
            expect(rows.nth(0)).to_contain_text("done", timeout=wait)
            expect(rows.nth(1)).to_contain_text("annotate", timeout=wait)
            expect(panel).to_contain_text(f"Round 1 annotation: 0 annotated, 0 skipped, 0 ingested of {BATCH} "
                                          f"pushed ({BATCH} pre-annotated)", timeout=wait)

        with steps.step("the header links to the Label Studio project"):
            link = panel.locator(f'a[href="{label_studio_url}/projects/{project_id}/data"]')
            expect(link).to_have_text(f"Label Studio project {project_id}", timeout=wait)

        with steps.step(f"save the screenshot to {SCREENSHOT}"):
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOT))
            assert SCREENSHOT.stat().st_size > 20_000

        with steps.step("'Run / resume round' opens the round operator's form (it can be delegated)"):
            panel.get_by_role("button", name="Run / resume round", exact=True).click()
            expect(page.get_by_text("Simulated annotator field (optional)")).to_be_visible(timeout=wait)
            page.keyboard.press("Escape")
            expect(page.get_by_text("Simulated annotator field (optional)")).to_be_hidden(timeout=wait)

        truth = dict(zip(*dataset.select(list(second.task_ids)).values(["id", "ground_truth.label"])))
        assert simulate_annotations(client, project_id, second.task_ids, truth) == BATCH

        with steps.step("'Ingest annotations now' ingests in the App and redraws the table"):
            panel.get_by_role("button", name="Ingest annotations now", exact=True).click()
            # The operator's notification: the success message, or the error it turned into a notification.
            note = page.get_by_text(re.compile(r"Ingested \d+ new annotations|Label Studio at |rror")).first
            expect(note).to_be_visible(timeout=wait)
            assert f"Ingested {BATCH} new annotations" in note.inner_text(), note.inner_text()
            expect(panel).to_contain_text(f"{BATCH} annotated, 0 skipped, {BATCH} ingested of {BATCH} pushed",
                                          timeout=wait)

        with steps.step("after Refresh the panel still counts the annotations"):
            panel.get_by_role("button", name="Refresh", exact=True).click()
            expect(panel).to_contain_text(f"{BATCH} annotated, 0 skipped, {BATCH} ingested of {BATCH} pushed",
                                          timeout=wait)

        steps.report_page_errors()

    dataset.reload()
    labeled = dataset.select(list(second.task_ids)).exists("al_label.label")
    assert len(labeled) == BATCH
    assert labeled.values("al_label.label") == labeled.values("ground_truth.label")
    for provenance in labeled.values("ls_provenance"):
        assert provenance["project_id"] == project_id and provenance["round"] == 1, provenance
