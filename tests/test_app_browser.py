"""The "Curation overview" panel in the real FiftyOne App, driven by headless Chromium through Playwright.

The App runs in a subprocess (``tests/app_server.py``) that inherits the session's isolated MongoDB and plugins
directory, from a working directory outside the checkout (``tests/app_browser_helpers.py``). The test opens the
panel from the grid's "+" (new panel) menu and checks what the browser drew: the plotly bars (with the same numbers
as ``overview_data``) and the table of runs. The screenshot lands in ``test-artifacts/curation_overview_panel.png``;
on failure a ``curation_overview_failure.png``/``.html`` pair and the App's log (``curation_overview_app.log``) lie
beside it.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from app_browser_helpers import ARTIFACTS, PANEL_TIMEOUT_MS, app_panel, require_chromium, serve_app

PREFIX = "curation_overview"
SCREENSHOT = ARTIFACTS / f"{PREFIX}_panel.png"
APP_LOG = ARTIFACTS / f"{PREFIX}_app.log"


@pytest.fixture
def curated_dataset(dataset_name: str):
    """The digits with one check recorded: the panel has bars for train and test and two runs to list."""
    from active_learning.data.importers import import_dataset
    from curation_checks.io import run_check

    dataset = import_dataset(dataset_name, None, progress=False)
    run_check(dataset, "class_balance")
    return dataset


@pytest.fixture
def app_url(curated_dataset) -> Iterator[str]:
    """The URL of a FiftyOne App serving ``curated_dataset``; the App is always stopped afterwards."""
    with serve_app(curated_dataset.name, APP_LOG) as url:
        yield url


@pytest.mark.browser
def test_curation_overview_panel_renders_chart_and_runs(app_url: str, curated_dataset) -> None:
    from playwright.sync_api import expect, sync_playwright

    from curation_app.overview_panel import overview_data

    require_chromium()
    expected = overview_data(curated_dataset)
    assert [t["name"] for t in expected["traces"]] == ["train", "test"]
    assert [r["key"] for r in expected["runs"]] == ["check_class_balance", "curation_import"]
    wait = PANEL_TIMEOUT_MS

    with sync_playwright() as playwright, app_panel(playwright, app_url, PREFIX, APP_LOG, (SCREENSHOT,), "curation_overview",
                                                    "Curation overview", wait) as (page, steps, panel):

        plot = panel.locator(".js-plotly-plot").first
        bars = plot.locator("g.trace.bars g.point path")
        with steps.step("the panel draws the plotly bar chart"):
            expect(plot).to_be_visible(timeout=wait)
            expect(plot.locator(".main-svg").first).to_be_visible(timeout=wait)
            expect(plot.locator("g.trace.bars")).to_have_count(len(expected["traces"]), timeout=wait)
            expect(bars).to_have_count(sum(len(t["x"]) for t in expected["traces"]), timeout=wait)
            expect(plot.locator(".gtitle")).to_have_text("Samples per class and split", timeout=wait)
            expect(plot.locator(".legend .legendtext")).to_have_text(["train", "test"], timeout=wait)
            drawn = plot.evaluate("el => el.data.map(t => ({name: t.name, type: t.type, x: t.x, y: t.y}))")
            assert drawn == [{k: t[k] for k in ("name", "type", "x", "y")} for t in expected["traces"]], drawn
            heights = bars.evaluate_all("paths => paths.map(p => p.getBBox().height)")
            assert min(heights) > 5, f"bars are drawn flat: heights {heights}"

        with steps.step("the panel shows its header and the table of runs"):
            expect(panel).to_contain_text(f"{expected['num_samples']:,} samples", timeout=wait)
            table = panel.locator("table").first
            expect(table.locator("thead th")).to_contain_text(["Run", "Kind", "Created (UTC)", "Figures"],
                                                              timeout=wait)
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(len(expected["runs"]), timeout=wait)
            for row, run in zip(rows.all(), expected["runs"]):
                expect(row).to_contain_text(run["key"], timeout=wait)
                expect(row).to_contain_text(run["kind"], timeout=wait)
            expect(table).to_contain_text("num_labeled=1797", timeout=wait)

        with steps.step(f"save the screenshot to {SCREENSHOT}"):
            page.wait_for_timeout(500)  # let plotly finish its transition before the picture
            page.screenshot(path=str(SCREENSHOT))
            assert SCREENSHOT.stat().st_size > 20_000, "the screenshot is suspiciously small"

        steps.report_page_errors()
