"""The journey's first step in the browser (load the demo corpus on a fresh database) and the figures the
later steps use: the demo modules, the selection's budget and name."""
from __future__ import annotations

from tests.support.browser import full_page_shot, metric_value, no_exception, wait_for_app, wait_metric_at_least

DEMO_MODULES = "stdlib:json,csv,textwrap,string,shlex"   # ~60 functions: small, real code
BUDGET = 12
SELECTION = "journey pick"


def corpus_step(page, url: str) -> int:
    page.goto(url + "/Corpus")
    wait_for_app(page)
    page.get_by_text("No code yet").wait_for()               # a fresh database
    page.get_by_role("button", name="Load demo corpus").click()
    page.get_by_text("new snippets").wait_for(timeout=120_000)
    wait_for_app(page)
    wait_metric_at_least(page, "Snippets", 1, 30_000)
    page.locator("[data-testid='stPlotlyChart']").first.wait_for()
    no_exception(page)
    n = int(metric_value(page, "Snippets").replace(",", ""))
    full_page_shot(page, "journey-1-corpus")
    return n
