"""Saved views of the Review queue (core.review.views) on real DuckDB files: a saved view lists and
applies back to the very filter and sort it was saved from; personal views are their owner's, shared
ones everyone's; names are checked (empty, too long, taken); with sign-in configured a reviewer may
not delete or overwrite someone else's shared view, a curator may; a view whose clusters or
selection are gone applies the rest and says what it left out; every save and delete is audited.
Plus the CLI (`shoal review views`)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core import review as rv
from core.errors import NotAllowed, ShoalError
from core.store import open_store
from tests.support.audit import audit_rows
from tests.support.fake_generations import fill_fake
from tests.support.team import ANN, BOB, CURATOR, refusals


@pytest.fixture
def info(store):
    return fill_fake(store, 30, seed=5)


def _a_filter(store, info) -> rv.QueueFilter:
    """A filter that uses every field the Review sidebar sets."""
    opts = rv.filter_options(store)
    return rv.QueueFilter(tasks=("code_generation", "code_repair"), languages=("python",), clusters=(1, 3),
                          selection_id=info["selection_id"], judge="failed", rule=opts["rules"][0],
                          rule_answer="yes", status="any", reviewer=None, search="parse")


def _names(views) -> list[tuple[str, str, bool]]:
    return [(v["name"], v["owner"], v["shared"]) for v in views]


def test_save_list_and_apply_round_trip(store, info):
    f = _a_filter(store, info)
    saved = rv.save_view(store, "  failed python  ", f.with_(assigned_to="ann"), "random", seed=7, actor="ann")
    assert saved["name"] == "failed python"                                # stripped
    listed = rv.list_views(store, "ann")
    assert [v["id"] for v in listed] == [saved["id"]]
    view = listed[0]
    assert (view["filter"], view["sort"], view["seed"], view["shared"]) == (f, "random", 7, False)   # assigned_to left out
    assert view["map_id"] == info["map_id"]                                # the map its clusters are on
    applied, dropped = rv.resolve_view(store, rv.visible_view(store, saved["id"], "ann"))
    assert applied == f and dropped == []
    assert rv.queue_count(store, applied) == rv.queue_count(store, f)
    assert rv.get_view(store, saved["id"])["filter"] == f
    got = audit_rows(store, "view.save")
    assert [(r["actor"], r["entity"], r["entity_id"], r["before"]) for r in got] == [
        ("ann", "saved_view", str(saved["id"]), None)]
    assert rv.QueueFilter.from_dict(got[0]["after"]["filter"]) == f and got[0]["after"]["name"] == "failed python"


def test_personal_views_are_their_owners_shared_ones_everyones(store, info):
    mine = rv.save_view(store, "mine", rv.QueueFilter(judge="failed"), "newest", actor="ann")
    team_view = rv.save_view(store, "team", rv.QueueFilter(status="any"), "oldest", actor="ann", shared=True)
    bobs = rv.save_view(store, "bob's", rv.QueueFilter(judge="passed"), "cluster", actor="bob")
    assert _names(rv.list_views(store, "ann")) == [("mine", "ann", False), ("team", "ann", True)]
    assert _names(rv.list_views(store, "bob")) == [("bob's", "bob", False), ("team", "ann", True)]
    assert [v["label"] for v in ({**v, "label": rv.view_label(v, "bob")} for v in rv.list_views(store, "bob"))] == [
        "bob's", "team (shared by ann)"]
    assert rv.view_label(team_view, "ann") == "team (shared by you)"
    assert rv.visible_view(store, team_view["id"], "bob")["name"] == "team"
    with pytest.raises(ShoalError, match="of yours"):
        rv.visible_view(store, mine["id"], "bob")                          # another person's are private
    with pytest.raises(ShoalError, match="of yours"):
        rv.delete_view(store, mine["id"], actor="bob")
    assert len(rv.list_views(store, None, everyone=True)) == 3
    rv.delete_view(store, bobs["id"], actor="bob")
    assert _names(rv.list_views(store, "bob")) == [("team", "ann", True)]
    assert [(r["actor"], r["before"]["name"]) for r in audit_rows(store, "view.delete")] == [("bob", "bob's")]
    with pytest.raises(ShoalError, match="no saved view"):
        rv.get_view(store, bobs["id"])


def test_names_are_checked_and_a_taken_one_refused(store, info):
    rv.save_view(store, "todo", rv.QueueFilter(judge="failed"), "newest", actor="ann")
    with pytest.raises(ShoalError, match="already a view of yours named 'todo'"):
        rv.save_view(store, " todo ", rv.QueueFilter(judge="passed"), "oldest", actor="ann")
    assert rv.list_views(store, "ann")[0]["filter"].judge == "failed"     # nothing changed
    rv.save_view(store, "todo", rv.QueueFilter(judge="passed"), "newest", actor="bob")       # bob's own name space
    rv.save_view(store, "todo", rv.QueueFilter(judge="unjudged"), "newest", actor="ann", shared=True)  # shared space
    with pytest.raises(ShoalError, match="already a shared view named 'todo' \\(saved by ann\\)"):
        rv.save_view(store, "todo", rv.QueueFilter(), "newest", actor="bob", shared=True)
    again = rv.save_view(store, "todo", rv.QueueFilter(judge="passed"), "oldest", actor="ann", replace=True)
    assert [(v["name"], v["filter"].judge, v["sort"]) for v in rv.list_views(store, "ann")] == [
        ("todo", "passed", "oldest"), ("todo", "unjudged", "newest")]
    assert audit_rows(store, "view.save")[-1]["before"]["filter"]["judge"] == "failed"       # overwritten, audited
    assert again["id"] == rv.list_views(store, "ann")[0]["id"]
    for bad, says in (("   ", "name first"), ("x" * 81, "at most 80"), ("two\nlines", "one line")):
        with pytest.raises(ShoalError, match=says):
            rv.save_view(store, bad, rv.QueueFilter(), "newest", actor="ann")
    assert len(rv.save_view(store, "y" * 80, rv.QueueFilter(), "newest", actor="ann")["name"]) == 80
    with pytest.raises(ShoalError, match="Unknown sort"):
        rv.save_view(store, "z", rv.QueueFilter(), "sideways", actor="ann")
    assert store.scalar("SELECT count(*) FROM saved_views") == 4


def test_only_the_author_a_curator_or_the_owner_change_a_shared_view(signed):
    store, mine = signed
    shared = rv.save_view(store, "repairs", rv.QueueFilter(tasks=("code_repair",)), "newest", actor=ANN, shared=True)
    assert [v["name"] for v in rv.list_views(store, BOB)] == ["repairs"]           # every member sees it
    with pytest.raises(NotAllowed, match="only its author, a curator or the owner may delete"):
        rv.delete_view(store, shared["id"], actor=BOB)
    with pytest.raises(NotAllowed, match="may overwrite"):
        rv.save_view(store, "repairs", rv.QueueFilter(), "oldest", actor=BOB, shared=True, replace=True)
    assert [r[0] for r in refusals(store, BOB)] == ["review.refused", "review.refused"]
    assert rv.get_view(store, shared["id"])["filter"].tasks == ("code_repair",)   # untouched
    with pytest.raises(NotAllowed):
        rv.save_view(store, "x", rv.QueueFilter(), "newest", actor="stranger@x.org")   # not a member
    rv.delete_view(store, shared["id"], actor=CURATOR)
    assert rv.list_views(store, ANN) == []
    assert [(r["actor"], r["before"]["owner"]) for r in audit_rows(store, "view.delete")] == [(CURATOR, ANN)]
    own = rv.save_view(store, "mine", rv.QueueFilter(), "newest", actor=BOB, shared=True)
    rv.delete_view(store, own["id"], actor=BOB)                                   # the author may


def test_a_view_whose_cluster_or_selection_is_gone_applies_the_rest(store, info):
    f = _a_filter(store, info)
    view = rv.save_view(store, "wide", f, "cluster", actor="ann")
    store.execute("DELETE FROM map_points WHERE map_id = ? AND cluster = 3", [info["map_id"]])
    store.execute("DELETE FROM clusters WHERE map_id = ? AND cluster = 3", [info["map_id"]])
    store.execute("DELETE FROM selection_items WHERE selection_id = ?", [info["selection_id"]])
    store.execute("DELETE FROM selections WHERE id = ?", [info["selection_id"]])
    applied, dropped = rv.resolve_view(store, rv.get_view(store, view["id"]))
    assert applied == f.with_(clusters=(1,), selection_id=None)
    assert dropped == ["cluster 3 (no longer on the latest map)", f"selection #{info['selection_id']} (deleted)"]

    newer = int(store.scalar("INSERT INTO maps(name, model, params, n_points, n_clusters) "
                             "VALUES ('rebuilt', 'fake', '{}', 1, 1) RETURNING id"))
    applied, dropped = rv.resolve_view(store, rv.get_view(store, view["id"]))
    assert applied == f.with_(clusters=(), selection_id=None)               # its clusters meant another map
    assert dropped[0] == f"clusters 1, 3 (picked on map #{info['map_id']}; the latest map is #{newer})"
    assert applied.tasks == f.tasks and applied.search == "parse" and applied.judge == "failed"


# --------------------------------------------------------------------------- CLI

def test_cli_lists_the_views(tmp_path, monkeypatch):
    from core.cli.main import app
    monkeypatch.setenv("USER", "boxowner")
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        fill_fake(s, 3, seed=2)
        rv.save_view(s, "[red]mine[/red]", rv.QueueFilter(judge="failed", tasks=("code_repair",)), "newest",
                     actor="boxowner")
        rv.save_view(s, "team", rv.QueueFilter(status="any"), "oldest", actor="ann", shared=True)
        rv.save_view(s, "ann's own", rv.QueueFilter(), "oldest", actor="ann")
    run = lambda *a: CliRunner().invoke(app, ["--db", str(db), "review", *a], catch_exceptions=False)  # noqa: E731
    out = run("views", "--json")
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [(v["name"], v["owner"], v["shared"], v["sort"]) for v in listed] == [
        ("[red]mine[/red]", "boxowner", False, "newest"), ("team", "ann", True, "oldest")]
    assert listed[0]["filter"]["judge"] == "failed" and listed[0]["filter"]["tasks"] == ["code_repair"]
    text = run("views")
    assert text.exit_code == 0 and "[red]mine[/red]" in text.stdout and "team (shared by ann)" in text.stdout
    assert "judge=failed" in text.stdout
    assert [v["name"] for v in json.loads(run("views", "--json", "--reviewer", "ann").stdout)] == ["ann's own", "team"]
    assert len(json.loads(run("views", "--json", "--all").stdout)) == 3
    empty = CliRunner().invoke(app, ["--db", str(tmp_path / "none.duckdb"), "review", "views"])
    assert empty.exit_code == 0 and "No saved views" in empty.stdout
