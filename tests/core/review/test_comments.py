"""Comments on an example (core.review.comments) on real DuckDB files: added, listed oldest first,
deleted (the row kept, the list without it), validated; role-checked with sign-in configured (a
reviewer comments only on the examples assigned to them; deletes only their own; a curator any), and
every add, delete and refusal in the audit log. Plus the CLI (`shoal review comment/comments/uncomment`)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core import review as rv
from core.errors import NotAllowed, ShoalError
from core.store import open_store
from tests.support.audit import audit_rows
from tests.support.fake_generations import fill_fake
from tests.support.team import ANN, BOB, CURATOR, EVE, refusals


@pytest.fixture
def gids(store):
    fill_fake(store, 4, seed=3)
    return [int(r[0]) for r in store.execute("SELECT id FROM generations ORDER BY id").fetchall()]


def test_add_list_delete_oldest_first_and_audited(store, gids, monkeypatch):
    monkeypatch.setenv("USER", "boxowner")
    g1, g2, g3 = gids[:3]
    a = rv.add_comment(store, g1, "  first look: the tests miss n=0  \n", actor="ann")
    b = rv.add_comment(store, g1, "second", actor="bob")
    rv.add_comment(store, g2, "on another example", actor="ann")
    c = rv.add_comment(store, g1, "third, from the command line", actor=None)     # this machine's own user
    assert a["body"] == "first look: the tests miss n=0"                           # stripped
    assert c["author"] == "boxowner"
    listed = rv.list_comments(store, g1)
    assert [x["body"] for x in listed] == ["first look: the tests miss n=0", "second", "third, from the command line"]
    assert [x["author"] for x in listed] == ["ann", "bob", "boxowner"]
    assert [x["created_at"] for x in listed] == sorted(x["created_at"] for x in listed)
    assert all(x["generation_id"] == g1 for x in listed)
    assert rv.list_comments(store, g3) == []
    both = rv.comments_for(store, [g1, g2, g3])
    assert set(both) == {g1, g2}                                     # an example without comments is left out
    assert [x["id"] for x in both[g1]] == [x["id"] for x in listed] and both[g2][0]["body"] == "on another example"
    assert rv.comments_for(store, []) == {}

    rv.delete_comment(store, b["id"], actor="bob")
    assert [x["id"] for x in rv.list_comments(store, g1)] == [a["id"], c["id"]]
    assert [x["id"] for x in rv.comments_for(store, [g1])[g1]] == [a["id"], c["id"]]
    kept = store.one("SELECT body, deleted_at FROM comments WHERE id = ?", [b["id"]])
    assert kept["body"] == "second" and kept["deleted_at"] is not None   # the row stays, marked deleted
    with pytest.raises(ShoalError, match="deleted"):
        rv.delete_comment(store, b["id"], actor="bob")
    with pytest.raises(ShoalError, match="no comment #9999"):
        rv.delete_comment(store, 9999, actor="bob")

    added = audit_rows(store, "comment.add")
    assert [(r["actor"], r["entity"], r["entity_id"]) for r in added] == [
        ("ann", "comment", str(a["id"])), ("bob", "comment", str(b["id"])), ("ann", "comment", str(a["id"] + 2)),
        ("boxowner", "comment", str(c["id"]))]
    assert added[0]["after"] == {"generation_id": g1, "body": "first look: the tests miss n=0"}
    deleted = audit_rows(store, "comment.delete")
    assert [(r["actor"], r["entity_id"]) for r in deleted] == [("bob", str(b["id"]))]
    assert deleted[0]["before"] == {"generation_id": g1, "author": "bob", "body": "second"}


def test_body_is_validated_and_nothing_is_written_when_refused(store, gids):
    g = gids[0]
    for bad, message in (("", "empty"), ("   \n\t ", "empty"), (None, "empty"), ("x" * 4001, "4,001 characters")):
        with pytest.raises(ShoalError, match=message):
            rv.add_comment(store, g, bad, actor="ann")
    with pytest.raises(ShoalError, match="must be text"):
        rv.add_comment(store, g, 42, actor="ann")                 # type: ignore[arg-type]
    with pytest.raises(ShoalError, match="no generated example #424242"):
        rv.add_comment(store, 424242, "hello", actor="ann")
    assert store.scalar("SELECT count(*) FROM comments") == 0
    assert audit_rows(store, "comment.add") == []
    longest = rv.add_comment(store, g, " " + "y" * 4000 + " ", actor="ann")    # 4,000 after stripping: kept
    assert len(longest["body"]) == 4000


def test_markdown_in_a_body_is_stored_verbatim(store, gids):
    body = "**x** ![b](http://127.0.0.1:9/x) <img src=\"http://127.0.0.1:9/i\"> __init__ :red[y] $z$\n  indented"
    rv.add_comment(store, gids[0], body, actor="ann")
    assert rv.list_comments(store, gids[0])[0]["body"] == body
    assert rv.comments_for(store, [gids[0]])[gids[0]][0]["body"] == body


# --------------------------------------------------------------------------- roles (sign-in configured)

def test_a_reviewer_comments_only_on_examples_assigned_to_them(signed):
    store, mine = signed
    own, others = mine[ANN][0], mine[BOB][0]
    rv.add_comment(store, own, "mine", actor=ANN)
    with pytest.raises(NotAllowed, match="not in your review queue"):
        rv.add_comment(store, others, "not mine", actor=ANN)
    with pytest.raises(NotAllowed, match="not a team member"):
        rv.add_comment(store, own, "who am I", actor=EVE)
    assert ("comment.refused", str(others)) in refusals(store, ANN)
    assert ("comment.refused", str(own)) in refusals(store, EVE)
    assert [c["body"] for c in rv.list_comments(store, own)] == ["mine"]
    assert rv.list_comments(store, others) == []
    assert [r["actor"] for r in audit_rows(store, "comment.add")] == [ANN]
    rv.add_comment(store, others, "a curator may comment anywhere", actor=CURATOR)
    assert [c["author"] for c in rv.list_comments(store, others)] == [CURATOR]


def test_deleting_someone_elses_comment_needs_a_curator(signed):
    store, mine = signed
    g = mine[ANN][0]
    first = rv.add_comment(store, g, "first", actor=ANN)
    second = rv.add_comment(store, g, "second", actor=ANN)
    by_curator = rv.add_comment(store, g, "from the curator", actor=CURATOR)
    with pytest.raises(NotAllowed, match="delete other people's comments"):
        rv.delete_comment(store, first["id"], actor=BOB)
    with pytest.raises(NotAllowed, match="delete other people's comments"):
        rv.delete_comment(store, by_curator["id"], actor=ANN)
    assert ("moderate_comments.refused", f"comment {first['id']}") in refusals(store, BOB)
    assert ("moderate_comments.refused", f"comment {by_curator['id']}") in refusals(store, ANN)
    assert [c["id"] for c in rv.list_comments(store, g)] == [first["id"], second["id"], by_curator["id"]]

    rv.delete_comment(store, second["id"], actor=ANN)                  # her own
    rv.delete_comment(store, first["id"], actor=CURATOR)               # a curator: anyone's
    assert [c["id"] for c in rv.list_comments(store, g)] == [by_curator["id"]]
    assert [(r["actor"], r["entity_id"], r["before"]["author"]) for r in audit_rows(store, "comment.delete")] == [
        (ANN, str(second["id"]), ANN), (CURATOR, str(first["id"]), ANN)]


# --------------------------------------------------------------------------- CLI

def test_cli_comment_list_and_delete(tmp_path, monkeypatch):
    from core.cli.main import app
    monkeypatch.setenv("USER", "boxowner")
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        fill_fake(s, 3, seed=2)
        g = int(s.scalar("SELECT min(id) FROM generations"))
    run = lambda *a: CliRunner().invoke(app, ["--db", str(db), "review", *a], catch_exceptions=False)  # noqa: E731
    out = run("comment", str(g), "**check** [red]the[/red] edge case")
    assert out.exit_code == 0, out.output
    assert run("comment", str(g), "second", "--reviewer", "ann").exit_code == 0
    listed = json.loads(run("comments", str(g), "--json").stdout)
    assert [(c["author"], c["body"]) for c in listed] == [("boxowner", "**check** [red]the[/red] edge case"),
                                                          ("ann", "second")]
    text = run("comments", str(g))
    assert text.exit_code == 0 and "**check** [red]the[/red] edge case" in text.stdout   # printed as typed
    assert "boxowner" in text.stdout and "ann" in text.stdout
    assert run("uncomment", str(listed[0]["id"])).exit_code == 0
    assert [c["body"] for c in json.loads(run("comments", str(g), "--json").stdout)] == ["second"]
    empty = run("comment", str(g), "   ")
    assert empty.exit_code == 1 and "empty" in empty.output
    missing = run("comments", "98765")
    assert missing.exit_code == 1 and "no generated example #98765" in missing.output
    assert run().exit_code == 1                                  # `shoal review` alone still asks for one action
    with open_store(db) as s:
        assert [r["actor"] for r in audit_rows(s, "comment.add")] == ["boxowner", "ann"]
        assert [r["actor"] for r in audit_rows(s, "comment.delete")] == ["boxowner"]


def test_comments_travel_with_the_export_as_provenance(store, gids, tmp_path):
    from core.dataset.export import export_dataset
    g = gids[0]
    rv.decide(store, g, "accepted", reviewer="ann", expected_version=rv.version_for(store, g, "ann"))
    rv.add_comment(store, g, "the tests miss n=0", actor="ann")
    rv.add_comment(store, g, "**fixed** in v2", actor="bob")
    gone = rv.add_comment(store, g, "typo", actor="bob")
    rv.delete_comment(store, gone["id"], actor="bob")
    export_dataset(store, "alpaca", tmp_path / "out", include_judged=True)
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    mine = next(r for r in rows if r["provenance"]["generation_id"] == g)
    assert [(c["author"], c["text"]) for c in mine["provenance"]["comments"]] == [
        ("ann", "the tests miss n=0"), ("bob", "**fixed** in v2")]
    assert all(r["provenance"]["comments"] == [] for r in rows if r["provenance"]["generation_id"] != g)
