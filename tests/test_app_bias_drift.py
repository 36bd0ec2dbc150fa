"""The "Bias" and "Drift" panels in the real FiftyOne App, driven by headless Chromium through Playwright.

Two datasets of real PNG files with planted model outputs (no training): ``shapes`` (tests/test_bias.py: dark images
misclassified) with its bias report computed, and ``standard`` (tests/test_drift_report.py: drift planted in batches
"2" and "10" of four) with its drift report computed. One App serves both; the test opens each panel from the "+"
menu, checks the charts and tables in the browser against the reports, and clicks a table row's "Show" action to
check that the grid then holds exactly that slice (Bias) or that batch's most drifted samples (Drift).

A third dataset, ``fashion`` (tests/test_drift_report.py: Fashion-MNIST with a real classifier's outputs, Shirt
planted in one of three batches), shows the prior-change heatmap with ten classes, as a user's dataset would.

Screenshots: ``test-artifacts/bias_panel.png``, ``test-artifacts/drift_panel.png``, and the two charts of issue 15
(``bias_intervals.png``, ``drift_prior_heatmap.png``, the latter on ``fashion``); on failure
``bias_drift_failure.png``/``.html`` and the App's log ``bias_drift_app.log``.
"""

from __future__ import annotations

from typing import Iterator
from urllib.parse import quote

import pytest

from app_browser_helpers import ARTIFACTS, PANEL_TIMEOUT_MS, app_panel, open_panel, require_chromium, serve_app
from test_app_label_issues import GRID_COUNT, scroll_panel_to
from test_bias import shapes  # noqa: F401  (fixture)
from test_drift_report import fashion_dataset, build, STANDARD

PREFIX = "bias_drift"
BIAS_SCREENSHOT = ARTIFACTS / "bias_panel.png"
DRIFT_SCREENSHOT = ARTIFACTS / "drift_panel.png"
INTERVALS_SCREENSHOT = ARTIFACTS / "bias_intervals.png"
HEATMAP_SCREENSHOT = ARTIFACTS / "drift_prior_heatmap.png"
APP_LOG = ARTIFACTS / f"{PREFIX}_app.log"
MOST_DRIFTED = 100  # what the panel's Show shows at most (curation_app.drift_panel.MOST_DRIFTED)


@pytest.fixture
def reports(shapes, dataset_name, tmp_path):  # noqa: F811
    """The bias dataset with its report and a second dataset with its drift report."""
    from curation_checks.bias.report import compute_bias
    from curation_checks.drift.report import compute_drift

    bias_report = compute_bias(shapes, n_groups=3)
    drifting = build(f"{dataset_name}-drift", tmp_path / "drift-media", STANDARD)
    drift_report = compute_drift(drifting, "tag:reference", "batch:batch_id", n_permutations=100)
    fashion = fashion_dataset(f"{dataset_name}-fashion", tmp_path / "fashion-media")
    compute_drift(fashion, "tag:reference", "batch:batch_id", n_permutations=50)
    yield shapes, bias_report, drifting, drift_report, fashion
    drifting.delete()
    fashion.delete()


@pytest.fixture
def app_url(reports) -> Iterator[str]:
    with serve_app(reports[0].name, APP_LOG) as url:
        yield url


@pytest.mark.browser
def test_bias_and_drift_panels(app_url: str, reports) -> None:
    from playwright.sync_api import expect, sync_playwright

    from curation_app.bias_panel import bias_panel_data
    from curation_app.drift_panel import drift_panel_data
    from curation_checks.bias.report import slice_view

    require_chromium()
    bias_dataset, bias_report, drift_dataset, drift_report, fashion = reports
    bias = bias_panel_data(bias_dataset)
    worst = bias["slice_specs"][0]
    assert worst["significant"] and worst["field"] == "image_brightness", "the premise: the dark slice comes first"
    worst_count = len(slice_view(bias_dataset, worst))
    drift = drift_panel_data(drift_dataset)
    assert drift["batch_names"] == ["1", "2", "3", "10"] and drift_report.drifted_batches == ["2", "10"]
    wait = PANEL_TIMEOUT_MS

    with sync_playwright() as playwright, app_panel(playwright, app_url, PREFIX, APP_LOG, (BIAS_SCREENSHOT, DRIFT_SCREENSHOT, INTERVALS_SCREENSHOT, HEATMAP_SCREENSHOT,), "bias",
                                                    "Bias", wait) as (page, steps, panel):
        plots = panel.locator(".js-plotly-plot")

        with steps.step("the Bias summary, buttons and four charts show"):
            expect(panel).to_contain_text("Out-of-sample accuracy", timeout=wait)
            expect(panel).to_contain_text(f"{bias['summary']['num_significant']} of {bias['summary']['num_slices']} "
                                          "slices", timeout=wait)
            for name in ("Show worst slice", "Show worst group", "Refresh"):
                expect(panel.get_by_role("button", name=name, exact=True)).to_be_visible(timeout=wait)
            expect(plots).to_have_count(4, timeout=wait)
            expect(plots.nth(0).locator(".gtitle")).to_have_text("Class distribution", timeout=wait)
            expect(plots.nth(1).locator("g.trace.bars")).to_have_count(3, timeout=wait)  # precision, recall, F1

        with steps.step("the interval chart draws each slice's accuracy with its Wilson interval"):
            intervals = plots.nth(2)
            expect(intervals.locator(".gtitle")).to_have_text("Worst slices and groups: accuracy, 95% CI", timeout=wait)
            drawn = intervals.evaluate("el => ({labels: el.data[0].customdata.map(c => c[0]), x: el.data[0].x, "
                                       "plus: el.data[0].error_x.array, minus: el.data[0].error_x.arrayminus})")
            assert drawn["labels"][-1] == worst["label"], drawn["labels"]
            assert drawn["x"][-1] - drawn["minus"][-1] == pytest.approx(worst["ci_low"])
            assert drawn["x"][-1] + drawn["plus"][-1] == pytest.approx(worst["ci_high"])
            expect(intervals.locator("g.errorbar")).not_to_have_count(0, timeout=wait)
            expect(plots.nth(3).locator("g.heatmaplayer g.hm image")).to_have_count(1, timeout=wait)

        with steps.step("every slice and group has its own readable tick label, none clipped or overlapping"):
            scroll_panel_to(intervals)
            page.wait_for_timeout(500)
            expected = bias["interval_axis"]["ticktext"]
            ticks = intervals.locator(".ytick text").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, "
                "left: r.left, right: r.right, text: e.textContent, size: getComputedStyle(e).fontSize}; })")
            box = intervals.evaluate("el => { const r = el.getBoundingClientRect(); return {left: r.left, "
                                     "right: r.right}; }")
            ticks.sort(key=lambda t: t["top"])
            texts = [t["text"] for t in ticks]
            assert texts == [tick.replace("<br>", "") for tick in reversed(expected)], texts  # all, top to bottom
            assert texts[0] == worst["label"].replace(" & ", " &"), f"the worst slice heads the chart: {texts}"
            for upper, lower in zip(ticks, ticks[1:]):
                assert upper["bottom"] <= lower["top"] + 1, f"tick labels overlap: {upper} / {lower}"
            assert all(t["left"] >= box["left"] - 1 for t in ticks), f"a tick label is cut off on the left: {ticks}"
            assert all(float(t["size"].rstrip("px")) >= 11 for t in ticks)
            intervals.screenshot(path=str(INTERVALS_SCREENSHOT))

        table = panel.locator("table").first
        with steps.step("the slices table lists the worst slice first"):
            scroll_panel_to(table)
            first = table.locator("tbody tr").first
            expect(first.locator("td").first).to_have_text(worst["label"], timeout=wait)
            expect(first).to_contain_text("yes", timeout=wait)
            # the worse slice's difference from the rest is negative (issue 15: it read "+66.9 pts")
            assert bias["slices"][0]["vs_rest"].startswith("-")
            expect(first).to_contain_text(bias["slices"][0]["vs_rest"], timeout=wait)
            expect(table.locator("thead")).to_contain_text("Accuracy vs rest", timeout=wait)

        with steps.step(f"save the screenshot to {BIAS_SCREENSHOT}"):
            panel.locator(".js-plotly-plot").nth(2).scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(BIAS_SCREENSHOT))
            assert BIAS_SCREENSHOT.stat().st_size > 20_000

        with steps.step("the first row's Show sets the grid to the worst slice"):
            expect(page.locator(GRID_COUNT)).to_have_text(f"{len(bias_dataset)} samples", timeout=wait)
            table.locator("tbody tr").first.get_by_role("button").first.click()
            expect(page.locator(GRID_COUNT)).to_have_text(f"{worst_count} samples", timeout=wait)

        with steps.step("open the drift dataset"):
            page.goto(f"{app_url}datasets/{quote(drift_dataset.name)}", wait_until="domcontentloaded")
            expect(page.locator(GRID_COUNT)).to_have_text(f"{len(drift_dataset)} samples", timeout=wait)
        panel = open_panel(page, steps, "drift", "Drift")
        plots = panel.locator(".js-plotly-plot")

        with steps.step("the Drift summary and the p-values per batch show"):
            expect(panel).to_contain_text("2 drifted", timeout=wait)
            expect(plots).to_have_count(4, timeout=wait)
            drawn = plots.nth(0).evaluate("el => el.data.map(t => ({name: t.name, x: t.x, y: t.y}))")
            assert [t["x"] for t in drawn] == [drift["batch_names"]] * 2, drawn
            assert [t["y"] for t in drawn] == [t["y"] for t in drift["pvalues"]], drawn
            expect(plots.nth(0).locator("g.scatterlayer g.trace")).to_have_count(2, timeout=wait)
            bars = plots.nth(1).evaluate("el => el.data[0].y")
            assert bars == pytest.approx([b.fraction_ood for b in drift_report.batches])
            expect(plots.nth(2).locator("g.trace.bars")).to_have_count(4, timeout=wait)  # one histogram per batch

        table = panel.locator("table").first
        with steps.step("the batches table gives the verdicts in batch order"):
            scroll_panel_to(table)
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(4, timeout=wait)
            for position, verdict in enumerate(["ok", "DRIFT", "ok", "DRIFT"]):
                expect(rows.nth(position).locator("td").first).to_have_text(drift["batch_names"][position],
                                                                            timeout=wait)
                expect(rows.nth(position)).to_contain_text(verdict, timeout=wait)

        with steps.step(f"save the screenshot to {DRIFT_SCREENSHOT}"):
            plots.nth(0).scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(DRIFT_SCREENSHOT))
            assert DRIFT_SCREENSHOT.stat().st_size > 20_000

        with steps.step("the last row's Show sets the grid to batch '10''s most drifted samples"):
            scroll_panel_to(table)
            table.locator("tbody tr").nth(3).get_by_role("button").first.click()
            expect(page.locator(GRID_COUNT)).to_have_text(f"{MOST_DRIFTED} samples", timeout=wait)

        with steps.step("open the Fashion-MNIST dataset"):
            page.goto(f"{app_url}datasets/{quote(fashion.name)}", wait_until="domcontentloaded")
            expect(page.locator(GRID_COUNT)).to_have_text(f"{len(fashion):,} samples", timeout=wait)
        panel = open_panel(page, steps, "drift", "Drift")
        heatmap_data = drift_panel_data(fashion)["prior"][0]

        with steps.step("the prior-change heatmap prints every cell's change with 2 decimals, in a readable size"):
            heatmap = panel.locator(".js-plotly-plot").nth(3)
            expect(heatmap.locator(".gtitle")).to_contain_text("Class-prior change per batch", timeout=wait)
            scroll_panel_to(heatmap)
            page.wait_for_timeout(500)
            cells = heatmap.locator("g.heatmaplayer text").evaluate_all(
                "els => els.map(e => ({text: e.textContent, size: parseFloat(getComputedStyle(e).fontSize), "
                "fill: getComputedStyle(e).fill}))")
            expected = [text for row in heatmap_data["text"] for text in row]
            assert sorted(c["text"] for c in cells) == sorted(expected), cells
            assert all(c["size"] >= 12 for c in cells), cells
            heatmap.screenshot(path=str(HEATMAP_SCREENSHOT))

        steps.report_page_errors()
