"""Dataset versions: every export records its examples and their content hashes; two exports diff into
added / removed / edited examples (with the fields an edit changed), also after their folders are gone."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.dataset.export import export_dataset, export_zip
from core.dataset.versions import diff_versions, list_versions
from core.errors import ShoalError
from core.store import open_store
from tests.support.dataset_versions import E1, E2, NEW_INSTRUCTION, two_versions


def test_diff_lists_added_removed_and_edited_examples(store, tmp_path):
    s = two_versions(store, tmp_path)
    g = s["g"]
    d = diff_versions(store, s["v1"], s["v2"])
    assert d.added == sorted(g[6:8])
    assert d.removed == [g[0]]
    assert d.edited == sorted([g[1], g[2]])                   # #3's new note changed nothing exported
    assert d.counts == {"added": 2, "removed": 1, "edited": 2, "unchanged": 3}
    assert (d.a["id"], d.b["id"]) == (s["v1"], s["v2"])
    items = {i.generation_id: i for i in d.items}
    assert {gid: i.change for gid, i in items.items()} == {g[6]: "added", g[7]: "added", g[0]: "removed",
                                                           g[1]: "edited", g[2]: "edited"}
    assert {i.task for i in d.items} == {"code_generation"}
    # the edit made before export 1 comes back from the audit log, the one after from the review
    assert [(f.field, f.before, f.after) for f in items[g[1]].fields] == [("output", E1, E2)]
    assert [(f.field, f.before, f.after) for f in items[g[2]].fields] == [
        ("instruction", s["instruction"], NEW_INSTRUCTION)]
    assert items[g[2]].instruction == NEW_INSTRUCTION
    # the other way round
    back = diff_versions(store, s["v2"], s["v1"])
    assert (back.added, back.removed, back.edited) == ([g[0]], sorted(g[6:8]), sorted([g[1], g[2]]))
    assert [(f.before, f.after) for f in {i.generation_id: i for i in back.items}[g[1]].fields] == [(E2, E1)]


def test_versions_list_and_the_zip_download_is_a_version_too(store, tmp_path):
    s = two_versions(store, tmp_path)
    _, res = export_zip(store, "parquet", name="Download")
    versions = list_versions(store)
    assert [(v["id"], v["format"], v["n_rows"], v["name"], v["recorded"]) for v in versions] == [
        (res.export_id, "parquet", 7, "Download", True), (s["v2"], "messages", 7, "Second cut", True),
        (s["v1"], "alpaca", 6, "First cut", True)]
    assert versions[0]["path"] == "download:shoal-parquet.zip"
    assert store.scalar("SELECT count(*) FROM export_items WHERE export_id = ?", [res.export_id]) == 7
    same = diff_versions(store, s["v2"], res.export_id)        # same content in another format: no change
    assert same.counts == {"added": 0, "removed": 0, "edited": 0, "unchanged": 7} and same.items == []


def test_exports_before_versions_and_unknown_ids_are_clear_errors(store, tmp_path):
    s = two_versions(store, tmp_path)
    old = int(store.scalar("INSERT INTO exports(format, path, n_rows, params, card) "
                           "VALUES ('alpaca', '/old/export', 5, '{}', '---\n---\n# Old set\n') RETURNING id"))
    v = {x["id"]: x for x in list_versions(store)}
    assert v[old]["recorded"] is False and v[old]["name"] == "Old set"
    with pytest.raises(ShoalError, match=f"Export #{old} was made before versions were recorded; export again"):
        diff_versions(store, old, s["v2"])
    with pytest.raises(ShoalError, match="There is no export #9999"):
        diff_versions(store, s["v1"], 9999)


def test_export_row_and_items_are_written_together(store, tmp_path, monkeypatch):
    s = two_versions(store, tmp_path)
    import core.dataset.export as ex

    def broken(cur, export_id, rows):
        raise RuntimeError("disk full while recording the version")
    monkeypatch.setattr(ex, "record_export_items", broken)
    with pytest.raises(RuntimeError):
        export_dataset(store, "alpaca", tmp_path / "v3")
    assert store.scalar("SELECT max(id) FROM exports") == s["v2"]      # no exports row without its items


def test_cli_versions_and_diff(store, tmp_path):
    s = two_versions(store, tmp_path)
    g = s["g"]
    old = int(store.scalar("INSERT INTO exports(format, path, n_rows, params, card) "
                           "VALUES ('alpaca', '/old', 5, '{}', '# Old') RETURNING id"))
    db = store.path
    store.checkpoint()
    store.close()
    run = CliRunner(env={"COLUMNS": "250"})     # rich wraps tables at the terminal width
    res = run.invoke(app, ["--db", str(db), "export", "versions", "--json"])
    assert res.exit_code == 0, res.output
    assert [v["id"] for v in json.loads(res.stdout)] == [old, s["v2"], s["v1"]]
    res = run.invoke(app, ["--db", str(db), "export", "versions"])
    assert res.exit_code == 0, res.output
    assert "Second cut" in res.stdout and "made before versions" in res.stdout

    res = run.invoke(app, ["--db", str(db), "export", "diff", str(s["v1"]), str(s["v2"]), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["added"], out["removed"], out["edited"]) == (sorted(g[6:8]), [g[0]], sorted([g[1], g[2]]))
    assert out["counts"]["unchanged"] == 3
    edited = {i["generation_id"]: i for i in out["items"]}[g[1]]
    assert edited["fields"] == [{"field": "output", "before": E1, "after": E2}]

    res = run.invoke(app, ["--db", str(db), "export", "diff", str(s["v1"]), str(s["v2"])])
    assert res.exit_code == 0, res.output
    assert "2 added, 1 removed, 2 edited, 3 unchanged" in res.stdout
    assert "return x + 2" in res.stdout and "removed" in res.stdout

    res = run.invoke(app, ["--db", str(db), "export", "diff", str(old), str(s["v2"])])
    assert res.exit_code == 1 and "made before versions were recorded" in res.output
    res = run.invoke(app, ["--db", str(db), "export"])                # neither an export nor a subcommand
    assert res.exit_code == 1 and "Give --format and --out" in res.output
    res = run.invoke(app, ["--db", str(db), "export", "--format", "alpaca", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output                               # `shoal export` itself still exports
    s2 = open_store(db)
    try:
        assert s2.scalar("SELECT count(*) FROM export_items WHERE export_id = (SELECT max(id) FROM exports)") == 7
    finally:
        s2.close()
