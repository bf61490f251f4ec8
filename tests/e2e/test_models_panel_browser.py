"""The Models panel in Chromium as a person edits it: it stays open while a server is typed in (a
switch away from the embedded model used to re-create it collapsed), and a key pasted then left
with Tab is the key the panel says it will send."""
from __future__ import annotations

import json

import pytest

from core.store import open_store
from core.tasks import get_task
from tests.support.browser import choose, no_exception, wait_for_app
from tests.support.fake_generations import fill_fake

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def panel_open(page) -> bool:
    return page.evaluate("() => { const d = [...document.querySelectorAll('[data-testid=stExpander] details')]"
                         ".find(e => e.querySelector('summary').innerText.includes('Models'));"
                         " return !!d && d.open; }")


def test_the_models_panel_stays_open_and_shows_the_typed_key(tmp_path, page, app_server):
    db = tmp_path / "models.duckdb"
    with open_store(db) as s:
        fill_fake(s, 6, seed=3)
        for pid, task, content in s.execute("SELECT id, task, content FROM prompt_versions").fetchall():
            full = {**get_task(task).default_content(), "rules": json.loads(content)["rules"]}   # templates too
            s.execute("UPDATE prompt_versions SET content = ? WHERE id = ?", [json.dumps(full), pid])
    srv = app_server(db, env={"SHOAL_GENERATOR_BASE_URL": "", "SHOAL_JUDGE_BASE_URL": ""})
    page.goto(srv.url + "/Generate")
    wait_for_app(page)
    page.locator("[data-testid=stExpander] summary").filter(has_text="Models").wait_for()
    if not panel_open(page):
        page.locator("[data-testid=stExpander] summary").filter(has_text="Models").click()
    wait_for_app(page)
    choose(page, "generator endpoint", "Any OpenAI-compatible URL")
    assert panel_open(page), "the panel closed when the endpoint changed"
    url = page.get_by_role("textbox", name="generator base URL")
    url.fill("http://127.0.0.1:9/v1")
    url.press("Tab")
    wait_for_app(page)
    assert panel_open(page), "the panel closed after the base URL was typed"
    key = page.get_by_role("textbox", name="generator API key")
    key.fill("sk-test-0123456789abcdef")
    key.press("Tab")                 # the focus moves to the field's own "show password" button: no blur
    wait_for_app(page)
    assert panel_open(page), "the panel closed after the key was typed"
    page.get_by_text("Key: typed here, kept for this session only").first.wait_for(timeout=30_000)
    no_exception(page)
