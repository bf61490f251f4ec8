"""Shared fixtures: every test gets its own database file; paths to test data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.support.streamlit_server import StreamlitServer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# The team's shared folder (MBPP for the decontamination tests) sits beside the checkout; a clone
# elsewhere finds it through SHOAL_SHARED_DIR or at its usual place.
_SHARED_PLACES = [Path(p) for p in (os.environ.get("SHOAL_SHARED_DIR"), ROOT.parent / "shared", "/work/shared") if p]
SHARED = next((p for p in _SHARED_PLACES if p.is_dir()), _SHARED_PLACES[0])


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """Point SHOAL_DB at a temp file so no test touches a real database."""
    monkeypatch.setenv("SHOAL_DB", str(tmp_path / "shoal.duckdb"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture
def store(tmp_path):
    from core.store import open_store
    s = open_store(tmp_path / "test.duckdb")
    yield s
    s.close()


# --------------------------------------------------------------------------- browser (one per test module)

@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API leaves an event loop running in the main thread while it
    is open, which would leak into every later (non-browser) test of the session."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get).")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _save_failed_page(item, rep) -> None:
    """A failing browser test's page, saved while its server still runs (fixtures are torn down
    after this): test-artifacts/failed-<test>.png and .txt, the text added to the failure report."""
    pg = item.funcargs.get("page")
    if pg is None or pg.is_closed():
        return
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        name = f"failed-{item.name}"[:120]
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        text = pg.locator("body").inner_text(timeout=5_000)
        (ARTIFACTS / f"{name}.txt").write_text(text)
        rep.sections.append(("page when the test failed", f"test-artifacts/{name}.png\n{text[:3000]}"))
    except Exception as exc:   # a dead page must not hide the test's own failure
        rep.sections.append(("page when the test failed", f"could not save it: {exc}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        _save_failed_page(item, rep)


@pytest.fixture
def page(browser):
    """A fresh browser tab (saved with its text when its test fails: `_save_failed_page`)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


@pytest.fixture
def app_server(tmp_path):
    """Factory: app_server(db_path=None, env=None) -> running StreamlitServer (stopped after the test)."""
    started = []

    def start(db_path: Path | None = None, env: dict | None = None) -> StreamlitServer:
        srv = StreamlitServer(db_path or tmp_path / "app.duckdb", env=env).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
