"""Review page (AppTest): decisions land in DuckDB, stale saves are refused, bulk + undo, agreement drill-down."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import review as rv
from core.store import open_store
from tests.support.fake_generations import fill_fake

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "4_Review.py")


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    db = tmp_path / "review_app.duckdb"
    monkeypatch.setenv("SHOAL_DB", str(db))
    monkeypatch.setenv("USER", "tester")
    with open_store(db) as s:
        info = fill_fake(s, 60, seed=11)
    return db, info


def shared_store(db: Path):
    """The page's own (cached, process-wide) connection, to inspect what it wrote."""
    from ui.common import _store
    return _store(str(db))


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def shown_gid(at: AppTest) -> int | None:
    for m in at.markdown:
        hit = re.search(r"### Example #(\d+)", m.value)
        if hit:
            return int(hit.group(1))
    return None


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def test_accept_reject_edit_undo_write_to_duckdb(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    first = shown_gid(at)
    assert first == rv.first_in_queue(store, rv.QueueFilter())
    assert any("**Queue** 1 of 60" in m.value for m in at.markdown)
    assert any(c.value for c in at.code)                                   # source + code fields highlighted

    click(at, "rv_accept")
    assert rv.get_review(store, first)["verdict"] == "accepted"
    assert rv.get_review(store, first)["reviewer"] == "tester"
    second = shown_gid(at)
    assert second not in (None, first)
    assert any("Accepted #" in t.value for t in at.toast)

    click(at, "rv_reject")
    at.text_input(key=f"rv_note_{second}").input("solution ignores the limit")
    at.button(key=f"FormSubmitter:rv_reject_form_{second}-Confirm reject (Enter)").click().run()
    r = rv.get_review(store, second)
    assert (r["verdict"], r["note"]) == ("rejected", "solution ignores the limit")
    third = shown_gid(at)
    assert third not in (first, second)

    click(at, "rv_edit")
    fields = rv.get_item(store, third)["generation"]["fields"]
    name = next(n for n in fields if n != "task_name")
    at.text_area(key=f"rv_field_{third}_{name}").input("Edited by a human.")
    at.button(key=f"FormSubmitter:rv_edit_form_{third}-Save edit & accept").click().run()
    r = rv.get_review(store, third)
    assert r["verdict"] == "accepted" and r["edited_fields"][name] == "Edited by a human."

    click(at, "rv_undo")                                                    # undoes the edit
    assert rv.get_review(store, third) is None
    assert shown_gid(at) == third
    assert store.scalar("SELECT count(*) FROM reviews") == 2
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'review.decide'") == 3

    # the position survives a reload (a new session reads DuckDB / the URL)
    at2 = run_page()
    assert shown_gid(at2) == third


def test_stale_save_is_refused_with_a_message(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    gid = shown_gid(at)
    rv.decide(store, gid, "rejected", reviewer="someone-else", expected_version=0, note="theirs")  # another tab
    click(at, "rv_accept")
    assert any("changed after you opened it" in e.value for e in at.error)
    r = rv.get_review(store, gid)
    assert (r["verdict"], r["reviewer"]) == ("rejected", "someone-else")
    assert shown_gid(at) == gid
    click(at, "rv_reload")
    click(at, "rv_accept")                                                  # after reloading it is allowed
    assert rv.get_review(store, gid)["verdict"] == "accepted"


def test_filters_bulk_and_undo(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    at.selectbox(key="rv_judge").set_value("passed").run()
    at.multiselect(key="rv_tasks").set_value(["code_generation"]).run()
    want = rv.queue_ids(store, rv.QueueFilter(judge="passed", tasks=("code_generation",)))
    assert want and shown_gid(at) in want
    at.segmented_control(key="rv_mode").set_value("Bulk").run()
    assert any(f"{len(want)} will be accepted" in m.value for m in at.markdown)
    at.checkbox(key="rv_bulk_confirm").check().run()
    click(at, "rv_bulk_go")
    got = store.df("SELECT generation_id FROM reviews WHERE verdict = 'accepted'")["generation_id"]
    assert sorted(got) == sorted(want)
    act = rv.recent_actions(store, 1)[0]
    assert act["action"] == "review.bulk" and act["n"] == len(want)
    click(at, f"rv_undo_{act['action_id']}")
    assert store.scalar("SELECT count(*) FROM reviews") == 0


def test_agreement_cell_opens_its_examples(app_db):
    db, info = app_db
    store = shared_store(db)
    judged = store.df("SELECT generation_id, overall FROM latest_judgments ORDER BY 1").head(20)
    for i, row in enumerate(judged.itertuples()):
        human = bool(row.overall) if i % 4 else not bool(row.overall)
        rv.decide(store, int(row.generation_id), "accepted" if human else "rejected", reviewer="ann",
                  expected_version=0)
    at = run_page()
    at.segmented_control(key="rv_mode").set_value("Agreement").run()
    assert not at.exception
    assert [m.value for m in at.metric][:1] == ["20"]
    res = rv.agreement(store)
    click(at, "rv_cell_judge_no_accepted")
    assert at.segmented_control(key="rv_mode").value == "Review"
    gid = shown_gid(at)
    behind = rv.queue_ids(store, rv.QueueFilter(judge="failed", status="accepted"))
    assert len(behind) == res["overall"]["judge_no_accepted"] and gid in behind


def test_url_position_and_empty_database(app_db, tmp_path, monkeypatch):
    db, info = app_db
    target = info["generation_ids"][17]
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["g"] = str(target)
    at.run()
    assert not at.exception and shown_gid(at) == target          # a shared link opens that example
    empty = tmp_path / "empty.duckdb"
    monkeypatch.setenv("SHOAL_DB", str(empty))
    at = run_page()
    assert shown_gid(at) is None
    assert any("Nothing to review" in i.value for i in at.info)


def test_queue_list_shows_the_next_examples_in_order(app_db):
    db, info = app_db
    at = run_page()
    store = shared_store(db)
    at.toggle(key="rv_list").set_value(True).run()
    assert not at.exception
    table = at.dataframe[0].value
    order = list(rv.queue_page(store, rv.QueueFilter(), "judge_failed_first", limit=50)["id"])
    assert list(table["id"]) == order[:len(table)] and len(table) == 50
