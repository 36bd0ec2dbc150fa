"""Shared pieces of the headless-Chromium App tests: serve the App in a subprocess, open a panel, fail with context.

The App runs in a subprocess (``tests/app_server.py``) that inherits the session's isolated MongoDB and plugins
directory, from a working directory outside the checkout (the checkout's ``plugins/`` folder must never be
importable as ``plugins``). Every failing browser step saves ``<prefix>_failure.png``/``.html`` beside the App's
log in ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from services import free_port, stop_process, wait_for_port

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
APP_SERVER = TESTS / "app_server.py"
CHROMIUM = os.environ.get("CURATION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}

APP_START_TIMEOUT_S = 240  # the App answers in ~10-25 s; a cold, busy machine can take several times that
PAGE_TIMEOUT_MS = 120_000  # the first page load compiles a large bundle
PANEL_TIMEOUT_MS = 90_000  # the panel's on_load queries MongoDB through the App server

# Selectors of the FiftyOne 1.22 App (found by dumping the page: they are the App's own data-cy test hooks).
NEW_PANEL_BUTTON = '[data-cy="new-panel-btn"]'
PANEL_OPTIONS = '[data-cy^="new-panel-option-"]'


def panel_option(name: str) -> str:
    """The entry of the new-panel (+) menu for the panel ``name``."""
    return f'[data-cy="new-panel-option-{name}"]'


def panel_tab(name: str) -> str:
    """The tab of an open panel."""
    return f'[data-cy="panel-tab-{name}"]'


def panel_content(name: str) -> str:
    """The content of an open panel."""
    return f'[data-cy="panel-content-{name}"]'


def log_tail(path: Path, chars: int = 6000) -> str:
    """The end of a log file, for failure messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log at {path}: {exc})"


def descendants(pid: int) -> list:
    """The live child processes of ``pid``, recursively (FiftyOne's App server runs in its own session)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_app(proc: subprocess.Popen) -> None:
    """Stop the App process and anything it started that outlived it, by process id."""
    import psutil

    children = descendants(proc.pid)
    stop_process(proc)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    """Wait until ``url`` answers 200, failing early if the App process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the App exited with code {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"the App did not serve {url} within {timeout:.0f} s (last: {last})")


@contextlib.contextmanager
def serve_app(dataset_name: str, app_log: Path) -> Iterator[str]:
    """Serve the App on ``dataset_name`` in a subprocess and yield its URL; the App is always stopped afterwards."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="fo-app-") as cwd, app_log.open("w") as log:
        proc = subprocess.Popen([sys.executable, str(APP_SERVER), dataset_name, str(port)], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            try:
                wait_for_port(port, APP_START_TIMEOUT_S, proc, "the FiftyOne App")
                wait_for_http(url, APP_START_TIMEOUT_S, proc)
            except RuntimeError as exc:
                pytest.fail(f"{exc}\n--- App log ({app_log})\n{log_tail(app_log)}")
            yield url
        finally:
            stop_app(proc)


def require_chromium() -> None:
    """Fail with what to do when the system Chromium is missing (never download a browser)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does) or set CURATION_CHROMIUM")


@contextlib.contextmanager
def chromium_page(playwright, timeout_ms: int = PANEL_TIMEOUT_MS) -> Iterator:
    """A page of a fresh headless Chromium (the system one), closed afterwards."""
    require_chromium()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(timeout_ms)
        yield page
    finally:
        browser.close()


class BrowserSteps:
    """Runs named steps on a page; a failing step fails the test with the App's log, the console and a screenshot.

    Args:
        page: the Playwright page.
        prefix: the artifacts' name prefix (``<prefix>_failure.png``, ``<prefix>_console.log``).
        app_log: the App's log, whose tail goes into failure messages.
    """

    def __init__(self, page, prefix: str, app_log: Path) -> None:
        self.page = page
        self.prefix = prefix
        self.app_log = app_log
        self.console: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}\n{exc.stack or ''}"))

    def _on_console(self, message) -> None:
        # The App preloads fonts from the internet, which this machine cannot reach: that noise is not a failure.
        if message.type == "error" and "ERR_NAME_NOT_RESOLVED" not in message.text:
            self.console.append(f"console.error: {message.text[:500]}")

    def clear_stale_artifacts(self, *paths: Path) -> None:
        """Remove the artifacts of an earlier run, so a stale picture never passes for this one."""
        for stale in (*paths, *ARTIFACTS.glob(f"{self.prefix}_failure.*")):
            stale.unlink(missing_ok=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # any failure: Playwright timeouts, assertions
            with contextlib.suppress(Exception):
                self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}_failure.png"))
                (ARTIFACTS / f"{self.prefix}_failure.html").write_text(self.page.content())
            console = "\n".join(self.console[-20:]) or "(none)"
            pytest.fail(
                f"browser step failed: {name}\n{type(exc).__name__}: {str(exc)[:3000]}\n"
                f"--- browser console errors\n{console}\n"
                f"--- App log ({self.app_log})\n{log_tail(self.app_log)}\n"
                f"(screenshot and HTML of the page: {ARTIFACTS}/{self.prefix}_failure.*)",
                pytrace=False,
            )

    def report_page_errors(self) -> None:
        """Write the console errors to ``<prefix>_console.log``; warn (not fail) about uncaught page errors."""
        log = ARTIFACTS / f"{self.prefix}_console.log"
        log.write_text("\n".join(self.console))
        page_errors = [e.splitlines()[0] for e in self.console if e.startswith("pageerror")]
        if page_errors:
            # FiftyOne's own router sometimes throws "entry is loading" while the App settles; it does not
            # stop the panels, so it is reported rather than failed on.
            warnings.warn(f"uncaught errors in the App page (the test passed): {page_errors}; see {log}")


def open_app(page, steps: BrowserSteps, url: str) -> None:
    """Load the App and dismiss the 'Explore Enterprise' popup (now and whenever it comes back)."""
    from playwright.sync_api import expect

    dismiss = page.get_by_role("button", name="Dismiss", exact=True)
    with steps.step(f"open the App at {url}"):
        page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_MS)
        expect(page.locator(NEW_PANEL_BUTTON).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)

    with steps.step("dismiss the 'Explore Enterprise' popup"):
        with contextlib.suppress(Exception):  # it does not always show
            dismiss.wait_for(state="visible", timeout=8_000)
            dismiss.click(timeout=5_000)
        expect(dismiss).to_be_hidden(timeout=10_000)
        # Should it show up again later, over the grid, close it before the next action.
        page.add_locator_handler(dismiss, lambda button: button.click(), no_wait_after=True)


def open_panel(page, steps: BrowserSteps, name: str, label: str, timeout_ms: int = PANEL_TIMEOUT_MS):
    """Open the panel ``name`` (shown as ``label``) from the grid's new-panel (+) menu; return its content."""
    from playwright.sync_api import expect

    with steps.step(f"open '{label}' from the new-panel (+) menu"):
        page.locator(NEW_PANEL_BUTTON).first.click()
        option = page.locator(panel_option(name))
        try:
            option.wait_for(state="visible", timeout=30_000)
        except Exception as exc:
            offered = page.locator(PANEL_OPTIONS).all_inner_texts()
            raise AssertionError(f"the new-panel menu offers {offered}, not '{label}': "
                                 "the plugin did not load in the App") from exc
        expect(option).to_contain_text(label, timeout=timeout_ms)
        option.click()
        expect(page.locator(panel_tab(name))).to_contain_text(label, timeout=timeout_ms)
    return page.locator(panel_content(name))


@contextlib.contextmanager
def app_panel(playwright, app_url: str, prefix: str, app_log: Path, artifacts: Sequence[Path], name: str, label: str,
              timeout_ms: int = PANEL_TIMEOUT_MS) -> Iterator[tuple]:
    """Chromium on the App with the plugin's panel ``name`` open: yields ``(page, steps, panel)``.

    ``artifacts`` are the screenshots this test writes; stale ones from an earlier run are removed first.
    """
    with chromium_page(playwright, timeout_ms) as page:
        steps = BrowserSteps(page, prefix, app_log)
        steps.clear_stale_artifacts(*artifacts)
        open_app(page, steps, app_url)
        yield page, steps, open_panel(page, steps, name, label, timeout_ms)
