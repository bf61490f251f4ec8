"""The DuckDB file opened by a second process while the app holds it: a clear message, the app unharmed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.ingest import ingest_sources
from core.store import open_store
from tests.support.browser import screenshot, wait_for_app, wait_or_fail

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "ingest"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def metric(page, label: str) -> int:
    m = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return int(m.locator("[data-testid='stMetricValue']").inner_text().replace(",", ""))


def test_second_process_gets_a_clear_message_and_the_app_keeps_working(tmp_path, page, app_server):
    db = tmp_path / "locked.duckdb"
    with open_store(db) as s:
        ingest_sources(s, [str(DATA / "multilang_repo")])
        n_before = int(s.scalar("SELECT count(*) FROM snippets"))
    srv = app_server(db, env={"SHOAL_DEMO_SOURCE": "stdlib:json"})
    page.goto(srv.url + "/Corpus")
    wait_for_app(page)
    wait_or_fail(page, page.locator("[data-testid='stMetric']").filter(has_text="Rejected"), 60_000,
                 "the Corpus page's metrics")
    assert metric(page, "Snippets") == n_before      # the app has the file open now

    env = {k: v for k, v in os.environ.items() if k != "SHOAL_DB"}
    for args in (["stats"], ["stats", "--json"]):
        proc = subprocess.run([sys.executable, "-m", "core.cli.main", "--db", str(db), *args], cwd=str(ROOT), env=env,
                              capture_output=True, text=True, timeout=60)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out
        assert "Traceback" not in out and "duckdb.IOException" not in out, out
        flat = " ".join(out.split())                 # rich wraps long lines on stderr
        assert str(db.resolve()).replace(" ", "") in flat.replace(" ", ""), out
        assert f"PID {srv.proc.pid}" in flat, out     # names the holder: the app's own process
        assert "in use by" in flat and "--db" in flat, out

    # The app did not notice: it still reads and writes its database.
    page.reload()
    wait_for_app(page)
    wait_or_fail(page, page.locator("[data-testid='stMetric']").filter(has_text="Rejected"), 60_000,
                 "the Corpus page's metrics")
    assert metric(page, "Snippets") == n_before
    page.get_by_text("Add a source").click()
    page.get_by_role("button", name="Load demo corpus").click()
    wait_or_fail(page, page.get_by_text("new snippets"), 90_000, "the demo ingest's summary")
    page.wait_for_function(
        "n => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".find(e => e.innerText.includes('Snippets'));"
        " return m && parseInt(m.querySelector('[data-testid=stMetricValue]').innerText.replace(/,/g, '')) > n; }",
        arg=n_before, timeout=30_000)
    n_shown = metric(page, "Snippets")
    screenshot(page, "reliability_db_locked_app_still_works")
    srv.stop()

    with open_store(db, read_only=True) as s:          # the lock is gone with the app; the write landed
        assert int(s.scalar("SELECT count(*) FROM snippets")) == n_shown > n_before
