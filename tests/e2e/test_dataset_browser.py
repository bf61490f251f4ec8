"""The Dataset page in Chromium on a demo set: every chart renders; screenshot saved as an artefact."""
from __future__ import annotations

import pytest

from core.dataset.checks.analytics import categories, default_embedder
from core.dataset.checks.decontam import run_decontamination
from core.dataset.checks.examples import load_examples
from core.dataset.checks.neardup import run_near_duplicates
from core.store import open_store
from tests.support.browser import screenshot, wait_for_app
from tests.support.seed_data import demo_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_dataset_page_shows_every_chart(tmp_path, app_server, page):
    db = tmp_path / "dataset.duckdb"
    store = open_store(db)
    demo_dataset(store, n=60)
    run_decontamination(store, "humaneval")
    run_near_duplicates(store)
    # embed the examples here (cached in the database by text hash): the app then draws the
    # category chart from the cache without loading the model in its own process
    categories(load_examples(store), default_embedder(store))
    store.checkpoint()
    store.close()

    srv = app_server(db)
    page.goto(f"{srv.url}/Dataset", timeout=120_000)
    wait_for_app(page, timeout=180_000)
    page.get_by_role("heading", name="Analytics").wait_for(timeout=180_000)
    charts = page.locator("[data-testid='stPlotlyChart']")
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stPlotlyChart']\")]"
        ".filter(e => e.querySelector('.main-svg')).length >= 8", timeout=240_000)
    wait_for_app(page, timeout=120_000)
    assert charts.count() == 8
    assert page.locator("[data-testid='stException']").count() == 0
    for title in ("Task and language mix", "Length (tokens)", "Categories (Magicoder's ten)",
                  "Similarity to HumanEval (TF-IDF)", "Acceptance rate per task", "Acceptance rate per cluster",
                  "Judge vs human", "Accepted set on the corpus map"):
        assert page.get_by_text(title, exact=True).count() >= 1, title
    # Streamlit scrolls inside its own container: grow the viewport so the screenshot holds the whole page
    height = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 12_000)})
    page.wait_for_timeout(1500)
    path = screenshot(page, "dataset")
    assert path.stat().st_size > 50_000
