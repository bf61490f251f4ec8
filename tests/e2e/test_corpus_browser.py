"""The Corpus page in real Chromium: the counts of a prepared database are on screen."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.ingest import ingest_sources
from core.store import open_store
from tests.support.browser import screenshot, wait_for_app

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_corpus_page_shows_counts(page, app_server, tmp_path):
    db = tmp_path / "corpus.duckdb"
    with open_store(db) as s:  # prepare before the app holds the file
        ingest_sources(s, [str(DATA / "codesearchnet" / "original"), str(DATA / "multilang_repo")])
        n = int(s.scalar("SELECT count(*) FROM snippets"))
        n_rejected = int(s.scalar("SELECT count(*) FROM ingest_errors"))
    srv = app_server(db, env={"SHOAL_DEMO_SOURCE": "stdlib:json"})
    page.goto(srv.url + "/Corpus")
    wait_for_app(page)
    # Wait for this page's own metrics (the home page has metrics too while the app boots).
    page.locator("[data-testid='stMetric']").filter(has_text="Rejected").wait_for()
    wait_for_app(page)
    metrics = page.locator("[data-testid='stMetric']")
    values = {}
    for i in range(metrics.count()):
        m = metrics.nth(i)
        values[m.locator("[data-testid='stMetricLabel']").inner_text().strip()] = \
            m.locator("[data-testid='stMetricValue']").inner_text().strip()
    assert values["Snippets"] == str(n)
    assert values["Languages"] == "9"
    assert values["Rejected"] == str(n_rejected)
    page.get_by_text("Rejected records").first.wait_for()
    page.locator("[data-testid='stPlotlyChart']").first.wait_for()
    screenshot(page, "corpus_page")

    # Load the demo corpus (a small stdlib subset here): the ingest runs in a worker thread,
    # the page shows progress, then reruns with the new counts.
    page.get_by_text("Add a source").click()
    page.get_by_role("button", name="Load demo corpus").click()
    page.get_by_text("new snippets").wait_for(timeout=90_000)
    wait_for_app(page)
    snippets = page.locator("[data-testid='stMetric']").filter(has_text="Snippets")
    page.wait_for_function(
        "n => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".find(e => e.innerText.includes('Snippets'));"
        " return m && parseInt(m.querySelector('[data-testid=stMetricValue]').innerText.replace(/,/g, '')) > n; }",
        arg=n, timeout=30_000)
    assert int(snippets.locator("[data-testid='stMetricValue']").inner_text().replace(",", "")) > n
    screenshot(page, "corpus_page_after_demo")
