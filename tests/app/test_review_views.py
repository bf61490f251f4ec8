"""Saved views on the Review page (AppTest): filters set in the sidebar are saved under a name; after
the filters change, picking the name puts every filter back and the queue count with them, also in a
fresh session on the same database; a taken name is refused with a message (no traceback); a view
whose cluster is gone applies the rest and says so; the view is deleted from the sidebar."""
from __future__ import annotations

import re

import pytest
import streamlit as st

from core import review as rv
from tests.support.apptest import markdown_texts, shared_store
from tests.support.review_page import review_db, run_page

SAVE = "FormSubmitter:rv_view_form-Save"


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    db, info = review_db(tmp_path, monkeypatch)
    st.cache_data.clear()           # the filter widgets' options are cached per database path
    return db, info


def in_queue(at) -> int:
    """N of the header's "**Queue** k of N"."""
    for m in at.markdown:
        hit = re.search(r"\*\*Queue\*\* (?:\d+|–) of (\d+)", m.value)
        if hit:
            return int(hit.group(1))
    raise AssertionError("no queue count on the page")


def save(at, name: str, shared: bool = False):
    at.text_input(key="rv_view_name").input(name)
    if shared:
        at.checkbox(key="rv_view_shared").check()
    at.button(key=SAVE).click().run()
    assert not at.exception, at.exception
    return at


def pick(at, view_id: int):
    at.selectbox(key="rv_view").set_value(view_id).run()
    assert not at.exception, at.exception
    return at


def test_a_saved_view_puts_its_filters_back_also_in_a_new_session(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    everything = in_queue(at)
    at.selectbox(key="rv_judge").set_value("failed").run()
    at.multiselect(key="rv_tasks").set_value(["code_generation"]).run()
    at.selectbox(key="rv_sort").set_value("newest").run()
    f = rv.QueueFilter(judge="failed", tasks=("code_generation",))
    n = rv.queue_count(store, f)
    assert 0 < n < everything and in_queue(at) == n

    save(at, "failed generations")
    views = rv.list_views(store, "tester")
    assert [(v["name"], v["filter"], v["sort"], v["shared"]) for v in views] == [
        ("failed generations", f, "newest", False)]
    vid = views[0]["id"]
    assert at.selectbox(key="rv_view").value == vid                       # the saved view is the one picked
    assert at.text_input(key="rv_view_name").value == ""
    assert any("Saved the view failed generations" in t.value for t in at.toast)

    save(at, "failed generations")                                        # the name is taken: said, not raised
    assert any("already a view of yours named 'failed generations'" in e.value for e in at.sidebar.error)
    assert at.text_input(key="rv_view_name").value == "failed generations"  # the refused name stays in the box
    assert len(rv.list_views(store, "tester")) == 1

    at.selectbox(key="rv_judge").set_value("any").run()
    at.multiselect(key="rv_tasks").set_value([]).run()
    at.selectbox(key="rv_sort").set_value("oldest").run()
    assert in_queue(at) == everything
    assert any("changed since this view was picked" in c.value for c in at.sidebar.caption)
    at.button(key="rv_view_reapply").click().run()                       # the same view, picked again
    assert (at.selectbox(key="rv_judge").value, at.multiselect(key="rv_tasks").value) == ("failed", ["code_generation"])
    assert at.selectbox(key="rv_sort").value == "newest" and in_queue(at) == n

    pick(at, 0)                                                           # "— none —" changes nothing
    at.selectbox(key="rv_judge").set_value("passed").run()
    at.multiselect(key="rv_tasks").set_value(["code_repair"]).run()
    assert in_queue(at) != n
    pick(at, vid)
    assert at.selectbox(key="rv_judge").value == "failed"
    assert at.multiselect(key="rv_tasks").value == ["code_generation"]
    assert at.selectbox(key="rv_sort").value == "newest"
    assert in_queue(at) == n
    assert any("**Queue** 1 of" in m.value for m in at.markdown)         # at the top of that queue

    at.selectbox(key="rv_judge").set_value("unjudged").run()             # the last filter is kept per reviewer ...
    fresh = run_page()                                                    # ... a new session, the same database
    assert fresh.selectbox(key="rv_judge").value == "unjudged"
    assert fresh.selectbox(key="rv_view").value == 0
    assert fresh.selectbox(key="rv_view").options == ["— none —", "failed generations"]
    pick(fresh, vid)
    assert fresh.selectbox(key="rv_judge").value == "failed"
    assert fresh.multiselect(key="rv_tasks").value == ["code_generation"]
    assert in_queue(fresh) == n


def test_shared_views_deleted_views_and_a_gone_cluster(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    theirs = rv.save_view(store, "**team** queue", rv.QueueFilter(judge="passed"), "oldest", actor="ann", shared=True)
    rv.save_view(store, "ann's own", rv.QueueFilter(judge="failed"), "oldest", actor="ann")
    at.multiselect(key="rv_clusters").set_value([1, 2]).run()
    at.selectbox(key="rv_judge").set_value("failed").run()
    save(at, "two clusters", shared=True)
    mine = next(v for v in rv.list_views(store, "tester") if v["name"] == "two clusters")
    assert mine["shared"] and mine["filter"].clusters == (1, 2)
    at.run()
    picker = at.selectbox(key="rv_view")
    assert picker.options == ["— none —", "**team** queue (shared by ann)", "two clusters (shared by you)"]   # by name

    store.execute("DELETE FROM clusters WHERE map_id = ? AND cluster = 2", [info["map_id"]])
    store.execute("DELETE FROM map_points WHERE map_id = ? AND cluster = 2", [info["map_id"]])
    st.cache_data.clear()
    at.multiselect(key="rv_clusters").set_value([]).run()
    at.selectbox(key="rv_judge").set_value("any").run()
    pick(at, 0)                                                           # saving picked it: pick it anew
    pick(at, mine["id"])
    assert at.multiselect(key="rv_clusters").value == [1]
    assert at.selectbox(key="rv_judge").value == "failed"
    assert any("applied without cluster 2 (no longer on the latest map)" in w.value for w in at.sidebar.warning)
    assert in_queue(at) == rv.queue_count(store, rv.QueueFilter(clusters=(1,), judge="failed"))

    pick(at, theirs["id"])                                                # another person's shared view
    assert at.selectbox(key="rv_judge").value == "passed" and at.selectbox(key="rv_sort").value == "oldest"
    assert not [t for t in markdown_texts(at) if "**team**" in t]        # its name shown as text
    at.button(key="rv_view_delete").click().run()                        # the local user is the owner: may
    assert not at.exception, at.exception
    assert [v["name"] for v in rv.list_views(store, "tester")] == ["two clusters"]
    assert at.selectbox(key="rv_view").value == 0
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'view.delete' AND actor = 'tester'") == 1
