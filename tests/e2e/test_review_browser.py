"""Review in a real browser, keyboard only: accept, reject with a note, edit, undo; then a stale save."""
from __future__ import annotations

import json

import pytest

from core import review as rv
from core.store import open_store
from tests.support.browser import ALL_TEXT_SELECTED, screenshot, wait_for_app
from tests.support.fake_generations import fill_fake

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOWN_GID_JS = """() => {
  const h = [...document.querySelectorAll('h3')].map(e => e.innerText).find(t => t.includes('Example #'));
  const m = h && h.match(/Example #(\\d+)/);
  return m ? Number(m[1]) : null;
}"""


def shown_gid(page) -> int | None:
    return page.evaluate(SHOWN_GID_JS)


def wait_gid(page, predicate_js: str, timeout: float = 20_000) -> int:
    """Wait until the example id shown satisfies `predicate_js` (a JS expression over `g`)."""
    page.wait_for_function(f"() => {{ const g = ({SHOWN_GID_JS})(); return g !== null && ({predicate_js}); }}",
                           timeout=timeout)
    wait_for_app(page)
    return shown_gid(page)


def open_review(page, url: str, gid: int | None = None) -> int:
    page.goto(url + "/Review" + (f"?g={gid}" if gid else ""))
    wait_for_app(page)
    gid = wait_gid(page, "true")
    # widgets are lazy-loaded by the frontend: wait until the decision buttons are real
    page.wait_for_selector("button:has-text('Accept')", state="visible", timeout=60_000)
    page.wait_for_selector("[data-testid='stCode'] pre", timeout=60_000)
    return gid


def prepare(tmp_path, n=40):
    db = tmp_path / "review_e2e.duckdb"
    with open_store(db) as s:
        info = fill_fake(s, n, seed=21)
        s.checkpoint()
    return db, info


def test_keyboard_only_review_lands_in_duckdb(tmp_path, page, app_server):
    db, info = prepare(tmp_path)
    srv = app_server(db, env={"USER": "kbd"})
    first = open_review(page, srv.url)

    page.keyboard.press("a")                                     # accept
    second = wait_gid(page, f"g !== {first}")
    page.wait_for_selector("[data-testid='stToast']:has-text('Accepted #%d')" % first)

    page.keyboard.press("x")                                     # reject: the note box gets the focus
    page.wait_for_selector("input[aria-label='Reject note']")
    page.wait_for_function("() => document.activeElement && document.activeElement.getAttribute('aria-label') === 'Reject note'")
    page.keyboard.type("a wrong answer")                         # typing 'a' here must not accept
    page.keyboard.press("Enter")
    third = wait_gid(page, f"g !== {second}")

    page.keyboard.press("e")                                     # edit: first field focused, text selected
    page.wait_for_function(ALL_TEXT_SELECTED)
    field = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    page.keyboard.type("Write it better, in Python.")
    page.keyboard.press("Control+Enter")
    fourth = wait_gid(page, f"g !== {third}")
    assert fourth not in (first, second, third)
    screenshot(page, "review_after_edit")

    page.keyboard.press("a")                                     # accept the fourth ...
    wait_gid(page, f"g !== {fourth}")
    page.keyboard.press("u")                                     # ... and undo it: back on the fourth
    assert wait_gid(page, f"g === {fourth}") == fourth
    page.wait_for_selector("[data-testid='stToast']:has-text('Undone')")
    screenshot(page, "review_after_undo")
    srv.stop()

    with open_store(db) as s:
        rows = {r["generation_id"]: r for r in s.rows("SELECT * FROM reviews")}
        assert set(rows) == {first, second, third}
        assert rows[first]["verdict"] == "accepted" and rows[first]["edited_fields"] is None
        assert (rows[second]["verdict"], rows[second]["note"]) == ("rejected", "a wrong answer")
        assert rows[third]["verdict"] == "accepted"
        assert json.loads(rows[third]["edited_fields"])[field] == "Write it better, in Python."
        assert all(r["reviewer"] == "kbd" for r in rows.values())
        actions = [r[0] for r in s.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
        assert actions == ["review.decide"] * 4 + ["review.undo", rv.UNDO_MARKER]


def test_second_browser_context_gets_the_stale_save_message(tmp_path, browser, app_server):
    db, info = prepare(tmp_path, n=12)
    srv = app_server(db)
    gid = info["generation_ids"][0]
    ctx_a, ctx_b = (browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2))
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        for pg in (a, b):
            pg.set_default_timeout(30_000)
            assert open_review(pg, srv.url, gid) == gid
        for pg, text in ((a, "First tab's edit."), (b, "Second tab's edit.")):
            pg.keyboard.press("e")
            pg.wait_for_function(ALL_TEXT_SELECTED)
            pg.keyboard.type(text)
            pg.keyboard.press("Control+Enter")
            wait_for_app(pg)
        wait_gid(a, f"g !== {gid}")
        b.wait_for_selector("[data-testid='stAlert']:has-text('changed after you opened it')")
        assert shown_gid(b) == gid
        screenshot(b, "review_stale_save")
    finally:
        ctx_a.close()
        ctx_b.close()
    srv.stop()
    with open_store(db) as s:
        r = rv.get_review(s, gid)
        assert r["version"] == 1 and r["verdict"] == "accepted"
        assert "First tab's edit." in json.dumps(r["edited_fields"])
        assert "Second tab" not in json.dumps(r["edited_fields"])
        assert s.scalar("SELECT count(*) FROM audit_log") == 1

