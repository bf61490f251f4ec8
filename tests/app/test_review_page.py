"""Review page (AppTest): decisions land in DuckDB, stale saves are refused, bulk + undo, agreement drill-down."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import review as rv
from tests.support.apptest import markdown_texts, shared_store
from tests.support.review_page import PAGE, click, review_db, run_page, shown_gid


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    return review_db(tmp_path, monkeypatch)


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


APP = str(Path(__file__).resolve().parents[2] / "app.py")
REVIEW, MAP, CORPUS = "pages/4_Review.py", "pages/2_Map.py", "pages/1_Corpus.py"


def test_leaving_the_review_page_and_coming_back_keeps_its_filter(app_db):
    """Streamlit drops a widget's state after a run that does not draw it: coming back to Review from
    another page used to fail (st.session_state has no attribute "rv_clusters") and lose the filter."""
    db, info = app_db
    store = shared_store(db)       # fill_fake's cluster terms are bare words; the Map page reads {"term", "score"}
    store.execute("UPDATE clusters SET terms = '[{\"term\": \"x\", \"score\": 1.0}]'")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page(REVIEW).run()
    assert not at.exception, at.exception
    at.selectbox(key="rv_judge").set_value("failed").run()
    at.selectbox(key="rv_rule").set_value(at.selectbox(key="rv_rule").options[1]).run()
    at.radio(key="rv_rule_answer").set_value("yes").run()
    gid = shown_gid(at)
    for other in (MAP, CORPUS, "pages/0_Home.py"):
        at.switch_page(other).run()
        assert not at.exception, at.exception
        at.switch_page(REVIEW).run()
        assert not at.exception, (other, at.exception)
        assert at.selectbox(key="rv_judge").value == "failed"
        assert at.radio(key="rv_rule_answer").value == "yes"
        assert shown_gid(at) == gid
    at.selectbox(key="rv_rule").set_value("").run()       # the rule's answer is no longer drawn ...
    at.selectbox(key="rv_judge").set_value("any").run()   # ... and later runs still read it
    assert not at.exception, at.exception


PLANTED = "Fraction.__reduce__ **bold** ![x](http://127.0.0.1:9/beacon) <img src=\"http://127.0.0.1:9/i\">"
RAW = re.compile(r"(?<!\\)(__reduce__|\*\*bold|!\[x\]\(|<img)")   # the planted Markdown / HTML, unescaped


def test_untrusted_text_is_escaped_wherever_markdown_renders(app_db):
    db, info = app_db
    store = shared_store(db)
    gid = int(store.scalar("SELECT generation_id FROM judgments ORDER BY generation_id LIMIT 1"))
    sid = store.scalar("SELECT snippet_id FROM generations WHERE id = ?", [gid])
    store.execute("UPDATE snippets SET func_name = 'Fraction.__reduce__', path = 'fractions/__init__.py' "
                  "WHERE id = ?", [sid])
    import json
    fields = json.loads(store.scalar("SELECT fields FROM generations WHERE id = ?", [gid]))
    fields["__notes__"] = PLANTED
    store.execute("UPDATE generations SET fields = ? WHERE id = ?", [json.dumps(fields), gid])
    rules = json.loads(store.scalar("SELECT rules FROM judgments WHERE generation_id = ?", [gid]))
    rules[0].update(answer="no", reason=PLANTED)
    store.execute("UPDATE judgments SET rules = ? WHERE generation_id = ?", [json.dumps(rules), gid])
    rv.decide(store, gid, "rejected", reviewer="tester", expected_version=0, note=PLANTED)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["g"] = str(gid)
    at.run()
    assert not at.exception, at.exception
    at.toggle(key="rv_history").set_value(True).run()
    texts = markdown_texts(at)
    leaks = [t for t in texts if RAW.search(t)]
    assert not leaks, leaks
    joined = "\n".join(texts)
    assert r"Fraction.\_\_reduce\_\_" in joined                       # the snippet's name, in the caption
    assert r"fractions/\_\_init\_\_.py" in joined                     # its path
    assert r"!\[x\](http\://127.0.0.1\:9/beacon)" in joined            # the judge reason and the note
    assert r"\_\_notes\_\_" in joined                                 # a generated field's name
    rule_table = at.table[0].value
    assert rule_table.iloc[0]["answer"].startswith("✗")                # a failing rule is marked
