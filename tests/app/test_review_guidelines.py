"""Reviewer guidelines in the app (AppTest): on the Review page, the guidelines of the current example's
task (with the general ones, never another task's) beside it, Markdown and HTML in them shown as text;
on the Team page, the editor for curators and the owner (a task, the latest text, Save as a new
version, the history, a stale save refused with the typed text kept, clearing), hidden from reviewers."""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core import review as rv
from core.store import open_store
from core.team import members as team
from tests.support.apptest import markdown_texts, ran, shared_store
from tests.support.review_page import PAGE, review_db
from tests.support.team_page import TEAM_PAGE, as_user

BODY = ("**x** ![b](http://127.0.0.1:9/x)\n<img src=\"http://127.0.0.1:9/i\"> __init__\n"
        "# Accept only\n- tested code")
RAW = re.compile(r"(?<!\\)(\*\*x|!\[b\]\(|<img|__init__|# Accept)")     # the planted Markdown / HTML, unescaped
GENERAL = "General: secrets are a reject."
OTHER = "Only for the other task."


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    return review_db(tmp_path, monkeypatch, n=8, seed=4)[0]


def open_example(gid: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["g"] = str(gid)
    return ran(at)


def guideline_boxes(at: AppTest) -> list:
    return [e for e in at.expander if e.label.startswith("Guidelines for")]


def test_the_review_page_shows_the_examples_task_guidelines_as_text(app_db):
    store = shared_store(app_db)
    tasks = store.rows("SELECT task, min(id) AS gid FROM generations GROUP BY task ORDER BY task")
    (task, gid), (other, other_gid) = [(r["task"], int(r["gid"])) for r in tasks[:2]]
    at = open_example(gid)
    assert not guideline_boxes(at)                                         # none written: nothing drawn

    rv.set_guidelines(store, task, BODY, actor="cur")
    rv.set_guidelines(store, other, OTHER, actor="cur")
    rv.set_guidelines(store, "*", GENERAL, actor="cur")
    ran(at)
    (box,) = guideline_boxes(at)
    assert box.label == f"Guidelines for {rv.scope_title(task)}"
    shown = [m.value for m in box.markdown]
    assert shown[0] == "General\\: secrets are a reject."                 # the general ones first
    assert shown[1] == ("\\*\\*x\\*\\* !\\[b\\](http\\://127.0.0.1\\:9/x)  \n"
                        "\\<img src=\"http\\://127.0.0.1\\:9/i\"\\> \\_\\_init\\_\\_  \n"
                        "\\# Accept only  \n\\- tested code")            # literal, a line per line
    captions = [c.value for c in box.caption]
    assert captions[0].startswith("All tasks · version 1 · cur · ")
    assert captions[1].startswith(f"{rv.scope_title(task)} · version 1 · cur · ")
    texts = markdown_texts(at)
    assert not [t for t in texts if RAW.search(t)]                         # nowhere rendered as Markdown / HTML
    assert not [t for t in texts if OTHER in t]                            # not the other task's

    rv.set_guidelines(store, task, "Second version.", actor="cur")
    ran(at)
    assert [m.value for m in guideline_boxes(at)[0].markdown] == ["General\\: secrets are a reject.",
                                                                   "Second version."]   # the latest

    at2 = open_example(other_gid)                                          # an example of the other task
    (box2,) = guideline_boxes(at2)
    assert box2.label == f"Guidelines for {rv.scope_title(other)}"
    assert [m.value for m in box2.markdown] == ["General\\: secrets are a reject.", OTHER]


@pytest.fixture
def members_db(team_db):
    with open_store(team_db) as s:
        for who, role in (("bob@example.com", "reviewer"), ("cy@example.com", "curator")):
            team.set_member(s, who, role, actor="ann@example.com", actor_role="owner", config={})
    return team_db


def history(at: AppTest) -> list[tuple[int, str, str]]:
    df = next(d.value for d in at.dataframe if {"version", "author", "text"} <= set(d.value.columns))
    return list(zip(df["version"].astype(int), df["author"], df["text"]))


def test_the_team_page_editor_saves_versions(members_db):
    GEN = "code_generation"
    at = ran(as_user(TEAM_PAGE, "ann@example.com", "Ann"))                 # the owner
    assert at.selectbox(key="tm_gl_task").value == "*"
    ran(at.selectbox(key="tm_gl_task").set_value(GEN))
    assert at.text_area(key=f"tm_gl_body_{GEN}_0").value == ""
    assert any("No version saved yet" in c.value for c in at.caption)
    at.text_area(key=f"tm_gl_body_{GEN}_0").input("Reject untested code.")
    ran(at.button(key="tm_gl_save").click())
    store = shared_store(members_db)
    (v1,) = rv.guideline_history(store, GEN)
    assert (v1["version"], v1["body"], v1["author"]) == (1, "Reject untested code.", "ann@example.com")
    assert any("Saved the Code generation guidelines as version 1" in s.value for s in at.success)
    assert at.text_area(key=f"tm_gl_body_{GEN}_1").value == "Reject untested code."     # prefilled: the latest
    assert at.button(key="tm_gl_save").label == "Save as version 2"
    assert history(at) == [(1, "ann@example.com", "Reject untested code.")]

    rv.set_guidelines(store, GEN, "Cy's version.", actor="cy@example.com")   # someone saves meanwhile
    at.text_area(key=f"tm_gl_body_{GEN}_1").input("Ann's second thoughts.")
    ran(at.button(key="tm_gl_save").click())
    assert any("changed since you opened them (now version 2 by cy@example.com)" in e.value for e in at.error)
    assert rv.latest_version(store, GEN)["body"] == "Cy's version."           # nothing overwritten
    assert at.text_area(key=f"tm_gl_body_{GEN}_2").value == "Ann's second thoughts."   # the typed text kept
    ran(at.button(key="tm_gl_save").click())                               # saved over the newer one, knowingly
    assert [(h["version"], h["body"]) for h in rv.guideline_history(store, GEN)][0] == (3, "Ann's second thoughts.")

    at.text_area(key=f"tm_gl_body_{GEN}_3").input("")
    ran(at.button(key="tm_gl_save").click())
    assert any("Cleared the Code generation guidelines (version 4)" in s.value for s in at.success)
    assert rv.current_guidelines(store, GEN) is None
    assert [h[0] for h in history(at)] == [4, 3, 2, 1] and history(at)[0][2] == "(cleared)"

    cy = ran(as_user(TEAM_PAGE, "cy@example.com"))                         # a curator edits them too
    assert cy.selectbox(key="tm_gl_task").value == "*"
    bob = ran(as_user(TEAM_PAGE, "bob@example.com"))                       # a reviewer: no editor at all
    assert not [s for s in bob.selectbox if s.key == "tm_gl_task"]
    assert not [b for b in bob.button if b.key == "tm_gl_save"]
    assert not [h for h in bob.header if h.value == "Reviewer guidelines"]
