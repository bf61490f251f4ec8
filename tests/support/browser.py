"""Browser helpers: Debian Chromium driven by Playwright (never `playwright install`)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# the Review page's edit box has the focus and all its text selected, so typing replaces it
ALL_TEXT_SELECTED = ("() => { const el = document.activeElement; return !!el && el.tagName === 'TEXTAREA' "
                     "&& el.value.length > 0 && el.selectionStart === 0 && el.selectionEnd === el.value.length; }")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# the map component's iframe
MAP_FRAME = "iframe[title*='shoal_map']"


# Streamlit marks its root with the script's run state and every element left over from the
# previous run with data-stale until the current run replaces or removes it.
APP_IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]');
}"""


def wait_for_app(page, timeout: float = 60_000, settle_ms: int = 250) -> None:
    """Wait until Streamlit has finished running the script and no stale element is left.

    Idle must hold twice, `settle_ms` apart: right after a click the rerun it triggers may not
    have started yet, and a polling fragment may start another one.
    """
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    deadline = time.monotonic() + timeout / 1000
    while True:
        page.wait_for_function(APP_IDLE, timeout=max(1.0, (deadline - time.monotonic()) * 1000))
        page.wait_for_timeout(settle_ms)
        if page.evaluate(APP_IDLE):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not settle within {timeout / 1000:.0f} s")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def full_page_shot(page, name: str) -> Path:
    """Streamlit scrolls inside its own container: grow the viewport so the screenshot holds the page."""
    height = page.evaluate("() => (document.querySelector(\"[data-testid='stMain']\") || document.body).scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 100, 8_000))})
    try:
        return screenshot(page, name)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def wait_or_fail(page, target, timeout: float, state: str = "") -> None:
    """Wait for `target` (a CSS selector or a locator); stop at once (with its text) if the page shows an
    error or an exception instead. A timeout names `state` (what was awaited), saves a screenshot and
    prints the page's text, so a failure in CI says what the page showed instead."""
    bad = "[data-testid='stAlertContentError'], [data-testid='stException']"
    wanted = page.locator(target) if isinstance(target, str) else target
    try:
        wanted.or_(page.locator(bad)).first.wait_for(timeout=timeout)
    except Exception as exc:
        shot = full_page_shot(page, "timed-out")
        text = page.locator("body").inner_text()[:3000]
        raise AssertionError(f"waited {timeout / 1000:.0f} s for {state or target!r}; screenshot {shot}; "
                             f"the page showed:\n{text}") from exc
    errors = page.locator(bad)
    assert errors.count() == 0, errors.first.inner_text()


def choose(page, label: str, option: str, where=None, tries: int = 4) -> None:
    """Pick `option` in the selectbox labelled `label` (inside `where`). A rerun that lands while the list
    is open (a fragment's timer, a late rerun on a loaded machine) closes it: open it again, a few times."""
    box = (where or page).locator("[data-testid='stSelectbox']").filter(has_text=label).first
    wanted = page.get_by_role("option", name=option, exact=True)
    for attempt in range(tries):
        wait_for_app(page)
        box.click()
        try:
            wanted.click(timeout=10_000)
            break
        except Exception:
            if attempt == tries - 1:
                raise
            print(f"choose({label!r}, {option!r}): the list was not open, opening it again")
            page.keyboard.press("Escape")
    wait_for_app(page)


def no_exception(page) -> None:
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, errors.first.inner_text()


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    return ctx, page


def goto(page, url: str) -> None:
    page.goto(url)
    wait_for_app(page)


def main_text(page) -> str:
    return page.inner_text("[data-testid='stMain']")


def metric_value(page, label: str) -> str:
    m = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return m.locator("[data-testid='stMetricValue']").inner_text().strip()


def wait_metric_at_least(page, label: str, n: int, timeout: float) -> None:
    page.wait_for_function(
        "([label, n]) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".find(e => e.querySelector('[data-testid=stMetricLabel]')?.innerText.trim() === label);"
        " return m && parseInt(m.querySelector('[data-testid=stMetricValue]').innerText.replace(/,/g, '')) >= n; }",
        arg=[label, n], timeout=timeout)
