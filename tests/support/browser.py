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
