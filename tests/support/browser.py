"""Browser helpers: Debian Chromium driven by Playwright (never `playwright install`)."""
from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# the Review page's edit box has the focus and all its text selected, so typing replaces it
ALL_TEXT_SELECTED = ("() => { const el = document.activeElement; return !!el && el.tagName === 'TEXTAREA' "
                     "&& el.value.length > 0 && el.selectionStart === 0 && el.selectionEnd === el.value.length; }")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script (no 'running' status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
