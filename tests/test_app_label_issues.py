"""The "Label issues" panel in the real FiftyOne App, driven by headless Chromium through Playwright.

The dataset has real (small, generated) PNG files and planted out-of-sample probabilities, so no model is trained:
five samples labeled ``a`` are confidently ``b``. ``find_label_issues`` runs before the App starts. The test opens
the panel from the grid's "+" menu and checks, in the browser, the pairs bar chart, the noise-matrix heatmap and the
table of worst suspects; that the view buttons change the App's view (stages in the view bar, the grid's count and
order); then it ticks the first planted samples in the grid, presses "Accept suggested label" and checks in MongoDB
that exactly those samples changed, with the old label in ``label_history``; then it presses "Undo last change"
and checks that the grid, the table and MongoDB show the old labels again, with both changes in the history.

Screenshots: ``test-artifacts/label_issues_panel.png`` (after render), ``label_issues_after_accept.png`` and
``label_issues_after_undo.png``; on failure ``label_issues_failure.png``/``.html`` and the App's log
``label_issues_app.log``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from app_browser_helpers import (ARTIFACTS, PANEL_TIMEOUT_MS, BrowserSteps, chromium_page, open_app, open_panel,
                                 require_chromium, serve_app)

PREFIX = "label_issues"
SCREENSHOT = ARTIFACTS / f"{PREFIX}_panel.png"
SCREENSHOT_AFTER = ARTIFACTS / f"{PREFIX}_after_accept.png"
SCREENSHOT_UNDO = ARTIFACTS / f"{PREFIX}_after_undo.png"
APP_LOG = ARTIFACTS / f"{PREFIX}_app.log"

CLASSES = ["a", "b", "c"]
COLORS = {"a": (200, 60, 40), "b": (40, 120, 200), "c": (60, 170, 80)}
NUM_SAMPLES = 60
NUM_PLANTED = 5
NUM_ACCEPTED = 3  # the first planted samples are accepted; the other planted ones must stay as they are
PROBABILITIES = "out-of-sample, stratified 5-fold over the view, averaged over 25 shifts of up to 2 px"

# Selectors of the FiftyOne 1.22 App's grid and view bar (its own data-cy test hooks, found by dumping the page).
GRID_TILES = '[data-cy="fo-grid"] [data-cy="looker"]'  # one per sample, in the view's order
TILE_CHECKBOX = '[data-cy="looker-checkbox-"]'  # a tile's selection box; it shows on hover
TILE_LABEL = '[data-cy="tag-ground_truth"]'
TILE_RANK = '[data-cy="tag-label_issue_rank"]'  # shown once the sidebar's label_issue_rank box is ticked
SIDEBAR_RANK_CHECKBOX = '[data-cy="checkbox-label_issue_rank"]'
VIEW_STAGES = '[data-cy="view-bar"] [data-cy="input-view-stage"]'  # one per stage, plus the empty "+ add stage"
GRID_COUNT = '[data-cy="entry-counts"]'
SELECTION_COUNT = '[data-cy="selection-count-container"]'


@pytest.fixture
def planted_images(dataset_name: str, tmp_path: Path):
    """60 real PNGs in 3 classes; samples 0, 3, 6, 9, 12 are labeled 'a' but the probabilities say 'b'.

    Returns the dataset (with ``find_label_issues`` already run) and the planted samples' ids.
    """
    import fiftyone as fo
    from PIL import Image, ImageDraw

    from active_learning.model.outputs import DEFAULT_RUN_KEY
    from active_learning.store.runs import record_run
    from curation_checks.label_issues import find_label_issues

    rng = np.random.default_rng(0)
    labels = [CLASSES[i % 3] for i in range(NUM_SAMPLES)]
    paths = []
    for i, label in enumerate(labels):
        image = Image.new("RGB", (96, 96), COLORS[label])
        ImageDraw.Draw(image).text((8, 8), f"{label}{i}", fill=(255, 255, 255))
        path = tmp_path / f"{i:02d}.png"
        image.save(path)
        paths.append(str(path))
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = CLASSES
    dataset.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=y))
                         for p, y in zip(paths, labels)])
    probs = np.full((NUM_SAMPLES, 3), 0.05)
    for i, label in enumerate(labels):
        probs[i, CLASSES.index(label)] = 0.9
    planted = [i for i in range(NUM_SAMPLES) if labels[i] == "a"][:NUM_PLANTED]
    for i in planted:
        probs[i] = [0.03, 0.94, 0.03]
    probs /= probs.sum(1, keepdims=True)
    ids = dataset.values("id")
    dataset.set_values("model_probs", dict(zip(ids, probs.tolist())), key_field="id")
    dataset.set_values("model_embedding", dict(zip(ids, rng.normal(size=(NUM_SAMPLES, 8)).tolist())),
                       key_field="id")
    # The model run a 2-seed K-fold with test-time augmentation would have recorded (the panel says how the
    # probabilities were made); its settings are not asked to change, so find_label_issues reuses the planted ones.
    record_run(dataset, DEFAULT_RUN_KEY, {"kind": "model_outputs", "split": "kfold", "folds": 5, "seeds": [0, 1],
                                          "tta_px": 2, "probabilities": PROBABILITIES}, {"num_scored": NUM_SAMPLES})
    assert find_label_issues(dataset).model is None
    return dataset, [ids[i] for i in planted]


@pytest.fixture
def app_url(planted_images) -> Iterator[str]:
    """The URL of a FiftyOne App serving the planted dataset; the App is always stopped afterwards."""
    dataset, _ = planted_images
    with serve_app(dataset.name, APP_LOG) as url:
        yield url


def tile_texts(tiles, selector: str, count: int) -> list[str]:
    """The text of ``selector`` in each of the first ``count`` grid tiles ('' where a tile has none)."""
    texts = []
    for tile in tiles.all()[:count]:
        tags = tile.locator(selector)
        texts.append((tags.first.text_content(timeout=5_000) or "") if tags.count() else "")
    return texts


def view_stages(page) -> list[str]:
    """The names of the stages in the App's view bar, in order."""
    return [name for name in page.locator(VIEW_STAGES).evaluate_all("inputs => inputs.map(i => i.value)") if name]


def scroll_panel_to(element) -> None:
    """Scroll the panel (its nearest scrollable ancestor, not the page) so that ``element`` is at its top."""
    element.evaluate("""el => {
        for (let box = el.parentElement; box; box = box.parentElement) {
            const style = getComputedStyle(box);
            if (/(auto|scroll)/.test(style.overflowY) && box.scrollHeight > box.clientHeight) {
                box.scrollTop += el.getBoundingClientRect().top - box.getBoundingClientRect().top;
                return;
            }
        }
    }""")


def wait_for_value(get, expected, timeout_ms: int, what: str, interval_ms: int = 500) -> None:
    """Call ``get`` until it returns ``expected``; fail after ``timeout_ms`` with what it returned last."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            last = get()
        except Exception as exc:  # the grid re-renders under our feet: try again
            last = exc
        if last == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: expected {expected!r}, last saw {last!r}")
        time.sleep(interval_ms / 1000)


@pytest.mark.browser
def test_label_issues_panel_plots_ranks_accepts_and_undoes(app_url: str, planted_images) -> None:
    from playwright.sync_api import expect, sync_playwright

    from curation_app.label_issues import label_issues_data

    require_chromium()
    dataset, planted = planted_images
    expected = label_issues_data(dataset)
    ranked = dataset.exists("label_issue_rank").sort_by("label_issue_rank")
    ranked_ids, ranked_files = ranked.values(["id", "filepath"])
    ranked_files = [Path(p).name for p in ranked_files]
    assert set(ranked_ids[:NUM_PLANTED]) == set(planted), "the planted errors rank first (the premise of the test)"
    num_flagged = len(dataset.match({"label_issue_flag": True}))
    pairs = expected["pairs_trace"][0]
    assert pairs["x"][int(np.argmax(pairs["y"]))] == "a → b"
    labels_before = dict(zip(*dataset.values(["id", "ground_truth.label"])))
    wait = PANEL_TIMEOUT_MS

    with sync_playwright() as playwright, chromium_page(playwright, wait) as page:
        steps = BrowserSteps(page, PREFIX, APP_LOG)
        steps.clear_stale_artifacts(SCREENSHOT, SCREENSHOT_AFTER, SCREENSHOT_UNDO)
        open_app(page, steps, app_url)
        panel = open_panel(page, steps, "label_issues", "Label issues")
        plots = panel.locator(".js-plotly-plot")
        pairs_plot, noise_plot = plots.nth(0), plots.nth(1)
        table = panel.locator("table").first
        tiles = page.locator(GRID_TILES)

        with steps.step("the summary, the trust verdict and the buttons show"):
            expect(panel).to_contain_text(f"{expected['summary']['num_issues']} likely label errors", timeout=wait)
            expect(panel).to_contain_text("accuracy 0.917", timeout=wait)  # 55 of 60 agree with the given label
            expect(panel).to_contain_text("the flags can be trusted as likely label errors", timeout=wait)
            expect(panel).not_to_contain_text("too weak", timeout=wait)
            expect(panel).to_contain_text(f"Probabilities: {PROBABILITIES}; seeds 0, 1.", timeout=wait)
            for name in ("Show ranked suspects", "Show flagged only", "Refresh", "Tag selected",
                         "Accept suggested label", "Undo last change", "Send to review"):
                expect(panel.get_by_role("button", name=name, exact=True)).to_be_visible(timeout=wait)

        with steps.step("the pairs bar chart shows 'a → b' as its tallest bar"):
            expect(plots).to_have_count(2, timeout=wait)
            expect(pairs_plot.locator(".gtitle")).to_have_text("Flagged samples per given → suggested label",
                                                               timeout=wait)
            expect(pairs_plot.locator(".g-xtitle")).to_have_text("given → suggested", timeout=wait)
            expect(pairs_plot.locator(".g-ytitle")).to_have_text("flagged samples", timeout=wait)
            bars = pairs_plot.locator("g.trace.bars g.point path")
            expect(bars).to_have_count(len(pairs["x"]), timeout=wait)
            drawn = pairs_plot.evaluate("el => ({x: el.data[0].x, y: el.data[0].y})")
            assert drawn == {"x": pairs["x"], "y": pairs["y"]}, drawn
            heights = bars.evaluate_all("paths => paths.map(p => p.getBBox().height)")
            tallest = int(np.argmax(heights))
            assert drawn["x"][tallest] == "a → b", f"tallest drawn bar is {drawn['x'][tallest]}: heights {heights}"
            assert heights[tallest] > 50 and drawn["y"][tallest] >= NUM_PLANTED, (heights, drawn)
            expect(pairs_plot.locator(".xtick text")).to_contain_text(["a → b"], timeout=wait)

        with steps.step("the noise-matrix heatmap is drawn"):
            expect(noise_plot.locator(".gtitle")).to_have_text("Estimated noise matrix P(given | true)", timeout=wait)
            expect(noise_plot.locator("g.heatmaplayer g.hm image")).to_have_count(1, timeout=wait)
            box = noise_plot.locator("g.heatmaplayer g.hm image").bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100, f"heatmap drawn too small: {box}"
            drawn = noise_plot.evaluate("el => ({type: el.data[0].type, x: el.data[0].x, y: el.data[0].y, "
                                        "z: el.data[0].z})")
            assert drawn["type"] == "heatmap" and drawn["x"] == CLASSES and drawn["y"] == CLASSES, drawn
            assert np.allclose(drawn["z"], expected["noise_trace"][0]["z"]), drawn["z"]
            expect(noise_plot.locator(".heatmap-label")).to_have_count(len(CLASSES) ** 2, timeout=wait)

        with steps.step("the table of worst suspects lists the planted samples first"):
            expect(table.locator("thead th")).to_have_text(
                ["Rank", "File", "Label quality", "Given", "Suggested", "Flagged"], timeout=wait)
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(len(expected["suspects"]), timeout=wait)
            for position in range(NUM_PLANTED):
                cells = rows.nth(position).locator("td")
                for column, text in ((0, str(position + 1)), (1, ranked_files[position]), (3, "a"), (4, "b"),
                                     (5, "yes")):
                    expect(cells.nth(column)).to_have_text(text, timeout=wait)
            expect(rows.nth(NUM_PLANTED).locator("td").nth(5)).to_have_text("", timeout=wait)

        with steps.step(f"save the screenshot to {SCREENSHOT}"):
            page.wait_for_timeout(500)  # let plotly finish its transition before the picture
            page.screenshot(path=str(SCREENSHOT))
            assert SCREENSHOT.stat().st_size > 20_000, "the screenshot is suspiciously small"

        with steps.step("the grid starts in the dataset's order with all samples"):
            expect(page.locator(GRID_COUNT)).to_have_text(f"{NUM_SAMPLES} samples", timeout=wait)
            wait_for_value(lambda: view_stages(page), [], wait, "the view bar's stages")
            expect(tiles.nth(5)).to_be_visible(timeout=wait)
            wait_for_value(lambda: tile_texts(tiles, TILE_LABEL, 6), ["a", "b", "c", "a", "b", "c"], wait,
                           "the labels of the first grid tiles")

        with steps.step("'Show flagged only' sets the view to the flagged samples"):
            panel.get_by_role("button", name="Show flagged only", exact=True).click()
            expect(page.locator(GRID_COUNT)).to_have_text(f"{num_flagged} samples", timeout=wait)
            wait_for_value(lambda: view_stages(page), ["Match", "SortBy"], wait, "the view bar's stages")

        with steps.step("'Show ranked suspects' sorts the grid worst first"):
            panel.get_by_role("button", name="Show ranked suspects", exact=True).click()
            expect(page.locator(GRID_COUNT)).to_have_text(f"{len(ranked_ids)} samples", timeout=wait)
            wait_for_value(lambda: view_stages(page), ["Exists", "SortBy"], wait, "the view bar's stages")
            wait_for_value(lambda: tile_texts(tiles, TILE_LABEL, NUM_PLANTED + 1), ["a"] * NUM_PLANTED + ["b"], wait,
                           "the labels of the first grid tiles (the planted samples, labeled a, come first)")
            # Show each tile's rank, so that a tile maps to a sample id through the database.
            page.locator(SIDEBAR_RANK_CHECKBOX).click()
            wait_for_value(lambda: tile_texts(tiles, TILE_RANK, 8), [str(r) for r in range(1, 9)], wait,
                           "the ranks shown on the first grid tiles")

        selected = ranked_ids[:NUM_ACCEPTED]
        with steps.step(f"select the first {NUM_ACCEPTED} planted samples in the grid"):
            for tile in tiles.all()[:NUM_ACCEPTED]:
                tile.hover()
                tile.locator(TILE_CHECKBOX).click()
                expect(tile.locator("input[type=checkbox]")).to_be_checked(timeout=wait)
            expect(page.locator(SELECTION_COUNT)).to_have_text(str(NUM_ACCEPTED), timeout=wait)
            page.mouse.move(5, 500)  # off the grid: no hover state in the pictures

        with steps.step("'Accept suggested label' relabels the selected samples"):
            panel.get_by_role("button", name="Accept suggested label", exact=True).click()
            wait_for_value(lambda: tile_texts(tiles, TILE_LABEL, NUM_PLANTED),
                           ["b"] * NUM_ACCEPTED + ["a"] * (NUM_PLANTED - NUM_ACCEPTED), wait,
                           "the labels of the first grid tiles after accepting")
            rows = table.locator("tbody tr")
            for position in range(NUM_PLANTED):
                given = "b" if position < NUM_ACCEPTED else "a"
                expect(rows.nth(position).locator("td").nth(3)).to_have_text(given, timeout=wait)

        with steps.step(f"save the screenshot to {SCREENSHOT_AFTER}"):
            scroll_panel_to(table)
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOT_AFTER))
            assert SCREENSHOT_AFTER.stat().st_size > 20_000, "the screenshot is suspiciously small"

        with steps.step("MongoDB holds the accepted labels, the old ones in label_history"):
            dataset.reload()
            ids, labels, suggested, histories = dataset.values(["id", "ground_truth.label", "label_issue_suggested",
                                                                "label_history"])
            changed = {i for i, label in zip(ids, labels) if label != labels_before[i]}
            assert changed == set(selected), f"changed {changed}, selected {selected}"
            for sample_id, label, suggestion, history in zip(ids, labels, suggested, histories):
                if sample_id not in changed:
                    assert not history, f"{sample_id} has a history but was not selected"
                    continue
                assert label == suggestion == "b"
                assert len(history) == 1, history
                entry = history[-1]
                assert (entry["field"], entry["old"], entry["new"], entry["source"]) == (
                    "ground_truth", "a", "b", "label_issues_panel"), entry
                assert entry["who"] and entry["when"] and entry["why"], entry

        with steps.step("'Undo last change' gives the accepted samples their old labels back and says so"):
            undo = panel.get_by_role("button", name="Undo last change", exact=True)
            undo.scroll_into_view_if_needed()
            undo.click()
            expect(page.get_by_text(f"{NUM_ACCEPTED} samples: b → a ({NUM_ACCEPTED}). Both labels stay in "
                                    "label_history.")).to_be_visible(timeout=wait)
            wait_for_value(lambda: tile_texts(tiles, TILE_LABEL, NUM_PLANTED), ["a"] * NUM_PLANTED, wait,
                           "the labels of the first grid tiles after the undo")
            rows = table.locator("tbody tr")
            for position in range(NUM_PLANTED):
                expect(rows.nth(position).locator("td").nth(3)).to_have_text("a", timeout=wait)

        with steps.step(f"save the screenshot to {SCREENSHOT_UNDO}"):
            undo.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOT_UNDO))
            assert SCREENSHOT_UNDO.stat().st_size > 20_000, "the screenshot is suspiciously small"

        steps.report_page_errors()

    # The undo is a change of its own: the accepted label (a human's decision) stays recorded.
    dataset.reload()
    ids, labels, histories = dataset.values(["id", "ground_truth.label", "label_history"])
    assert dict(zip(ids, labels)) == labels_before, "every label is back to what it was"
    for sample_id, history in zip(ids, histories):
        if sample_id not in selected:
            assert not history, f"{sample_id} has a history but was not selected"
            continue
        assert [(h["old"], h["new"], h["source"]) for h in history] == [("a", "b", "label_issues_panel"),
                                                                         ("b", "a", "undo")], history
        assert history[-1]["undoes"] == history[0]["change"] and history[-1]["who"], history


WEAK_SCREENSHOT = ARTIFACTS / f"{PREFIX}_weak_model.png"
WEAK_APP_LOG = ARTIFACTS / f"{PREFIX}_weak_model_app.log"


@pytest.fixture
def weak_model_images(dataset_name: str, tmp_path: Path):
    """60 real PNGs whose planted probabilities agree with only half of the labels: a model too weak to trust."""
    import fiftyone as fo
    from PIL import Image

    from curation_checks.label_issues import find_label_issues

    rng = np.random.default_rng(3)
    labels = [CLASSES[i % 3] for i in range(NUM_SAMPLES)]
    paths = []
    for i, label in enumerate(labels):
        path = tmp_path / f"weak{i:02d}.png"
        Image.new("RGB", (64, 64), COLORS[label]).save(path)
        paths.append(str(path))
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = CLASSES
    dataset.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=y))
                         for p, y in zip(paths, labels)])
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=NUM_SAMPLES)
    for i, label in enumerate(labels[::2]):  # every other sample: the model agrees, weakly
        row = np.full(3, 0.2)
        row[CLASSES.index(label)] = 0.6
        probs[2 * i] = row
    for i in range(1, NUM_SAMPLES, 2):  # the others: the model prefers a wrong class
        wrong = (CLASSES.index(labels[i]) + 1) % 3
        probs[i] = np.roll([0.5, 0.3, 0.2], wrong)
    ids = dataset.values("id")
    dataset.set_values("model_probs", dict(zip(ids, probs.tolist())), key_field="id")
    dataset.set_values("model_embedding", dict(zip(ids, rng.normal(size=(NUM_SAMPLES, 8)).tolist())),
                       key_field="id")
    find_label_issues(dataset)
    return dataset


@pytest.mark.browser
def test_label_issues_panel_says_when_the_model_is_too_weak(weak_model_images) -> None:
    from playwright.sync_api import expect, sync_playwright

    from curation_app.label_issues import label_issues_data

    require_chromium()
    dataset = weak_model_images
    summary = label_issues_data(dataset)["summary"]
    assert summary["trust"]["trusted"] is False and summary["trust"]["accuracy"] == 0.5  # the premise
    wait = PANEL_TIMEOUT_MS
    with serve_app(dataset.name, WEAK_APP_LOG) as url, sync_playwright() as playwright, \
            chromium_page(playwright, wait) as page:
        steps = BrowserSteps(page, f"{PREFIX}_weak_model", WEAK_APP_LOG)
        steps.clear_stale_artifacts(WEAK_SCREENSHOT)
        open_app(page, steps, url)
        panel = open_panel(page, steps, "label_issues", "Label issues")
        with steps.step("the panel says the model is too weak and does not call the flags label errors"):
            expect(panel).to_contain_text("Model too weak to trust: out-of-sample accuracy 0.500", timeout=wait)
            expect(panel).to_contain_text("train the photo recipe on a GPU", timeout=wait)
            expect(panel).to_contain_text(f"{summary['num_issues']} flagged (the model disagrees", timeout=wait)
            expect(panel).not_to_contain_text("likely label errors among", timeout=wait)
        with steps.step(f"save the screenshot to {WEAK_SCREENSHOT}"):
            page.wait_for_timeout(500)
            page.screenshot(path=str(WEAK_SCREENSHOT))
        steps.report_page_errors()
