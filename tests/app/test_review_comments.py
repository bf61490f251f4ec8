"""Comments on the Review page (AppTest): added through the form, listed with author and time, the body
shown as text (Markdown in it neither rendered nor fetched), an empty one refused with a message,
deleted by its author; everything in DuckDB and the audit log."""
from __future__ import annotations

import re

import pytest

from core import review as rv
from tests.support.apptest import markdown_texts, shared_store
from tests.support.review_page import PAGE, click, review_db, run_page, shown_gid

BODY = "**x** ![b](http://127.0.0.1:9/x) <img src=\"http://127.0.0.1:9/i\"> __init__"
RAW = re.compile(r"(?<!\\)(\*\*x|!\[b\]\(|<img|__init__)")      # the planted Markdown / HTML, unescaped


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    return review_db(tmp_path, monkeypatch, n=8, seed=4)[0]


def submit(at, gid: int, body: str):
    at.text_area(key=f"rv_comment_body_{gid}").input(body)
    at.button(key=f"FormSubmitter:rv_comment_form_{gid}-Add comment").click().run()
    assert not at.exception, at.exception
    return at


def test_a_comment_added_through_the_form_is_listed_as_text(app_db):
    at = run_page()
    assert PAGE.endswith("4_Review.py")
    store = shared_store(app_db)
    gid = shown_gid(at)
    assert gid is not None
    assert not any(t.value == BODY for t in at.text)

    submit(at, gid, BODY)
    saved = rv.list_comments(store, gid)
    assert [(c["author"], c["body"]) for c in saved] == [("tester", BODY)]
    assert shown_gid(at) == gid                                          # still on the same example
    assert [t.value for t in at.text if t.value == BODY] == [BODY]      # the body, literally, as st.text
    assert at.text_area(key=f"rv_comment_body_{gid}").value == ""        # the box emptied once saved
    assert any(f"Comment added to #{gid}" in t.value for t in at.toast)
    texts = markdown_texts(at)
    assert not [t for t in texts if RAW.search(t)]                       # nowhere rendered as Markdown / HTML
    when = str(saved[0]["created_at"])[:19]
    assert any("tester" in c.value and when.replace(":", r"\:") in c.value for c in at.caption)   # author · time
    assert any(m.value.startswith("**Comments** (1)") for m in at.markdown)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'comment.add' AND actor = 'tester'") == 1

    submit(at, gid, "   ")                                               # empty: refused, said, nothing saved
    assert any("empty" in e.value for e in at.error)
    assert at.text_area(key=f"rv_comment_body_{gid}").value == "   "     # a refused comment stays in the box
    assert len(rv.list_comments(store, gid)) == 1

    submit(at, gid, "second thought")
    assert [c["body"] for c in rv.list_comments(store, gid)] == [BODY, "second thought"]
    bodies = [t.value for t in at.text if t.value in (BODY, "second thought")]
    assert bodies == [BODY, "second thought"]                             # oldest first

    click(at, f"rv_comment_del_{saved[0]['id']}")
    assert [c["body"] for c in rv.list_comments(store, gid)] == ["second thought"]
    assert not any(t.value == BODY for t in at.text)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'comment.delete' AND actor = 'tester'") == 1


def test_comments_stay_with_their_example(app_db):
    store = shared_store(app_db)
    gids = [int(r[0]) for r in store.execute("SELECT id FROM generations ORDER BY id").fetchall()]
    at = run_page()
    gid = shown_gid(at)
    other = next(g for g in gids if g != gid)
    rv.add_comment(store, other, "about the other one", actor="ann")
    submit(at, gid, "about this one")
    assert [t.value for t in at.text if t.value.startswith("about")] == ["about this one"]
    at2 = run_page()                                                     # a new session: read from DuckDB
    assert shown_gid(at2) == gid
    assert [t.value for t in at2.text if t.value.startswith("about")] == ["about this one"]
