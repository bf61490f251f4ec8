"""Reviewer guidelines per task (core.review.guidelines) on real DuckDB files: every save a new version
with author and time, the latest shown, the general ('*') ones combined with the task's own, clearing
as a new version, bad tasks and long bodies refused, a stale editor refused; with sign-in configured a
reviewer (and a non-member) refused and audited, a curator and the owner allowed. Plus the CLI
(`shoal team guidelines TASK [--set FILE|-] [--history] [--json]`)."""
from __future__ import annotations

import json

import duckdb
import pytest
from typer.testing import CliRunner

from core import review as rv
from core.cli.main import app
from core.errors import NotAllowed, ShoalError
from core.store import open_store
from core.tasks import TASKS
from tests.support.audit import audit_rows
from tests.support.team import ANN, CURATOR, EVE, OWNER, refusals

GEN, SUM, REPAIR = "code_generation", "code_summarization", "code_repair"


def test_the_migration_makes_a_versioned_table(store):
    assert store.scalar("SELECT count(*) FROM _migrations WHERE name = '027_guidelines'") == 1
    store.execute("INSERT INTO guidelines(task, version, body, author) VALUES ('*', 1, 'a', 'x')")
    with pytest.raises(duckdb.ConstraintException):          # unique (task, version)
        store.execute("INSERT INTO guidelines(task, version, body, author) VALUES ('*', 1, 'b', 'y')")
    row = store.one("SELECT id, created_at FROM guidelines")
    assert row["id"] == 1 and row["created_at"] is not None   # from the sequence, stamped


def test_versions_increase_and_the_latest_is_shown(store, monkeypatch):
    monkeypatch.setenv("USER", "boxowner")
    v1 = rv.set_guidelines(store, GEN, "  Reject solutions without tests.\n", actor="ann")
    v2 = rv.set_guidelines(store, GEN, "Reject solutions without tests.\nAccept short ones.", actor=None)
    assert (v1["version"], v1["body"], v1["author"], v1["changed"]) == (1, "Reject solutions without tests.", "ann",
                                                                        True)
    assert (v2["version"], v2["author"], v2["changed"]) == (2, "boxowner", True)    # None: this machine's user
    hist = rv.guideline_history(store, GEN)
    assert [(h["version"], h["author"]) for h in hist] == [(2, "boxowner"), (1, "ann")]    # newest first
    assert all(h["created_at"] is not None for h in hist)
    cur = rv.current_guidelines(store, GEN)
    assert cur["own"]["body"] == "Reject solutions without tests.\nAccept short ones." and cur["own"]["version"] == 2
    assert cur["general"] is None and cur["task"] == GEN
    assert rv.current_guidelines(store, REPAIR) is None                 # another task's are not these
    assert rv.latest_version(store, GEN)["version"] == 2

    same = rv.set_guidelines(store, GEN, "Reject solutions without tests.\nAccept short ones.  ", actor="ann")
    assert (same["changed"], same["version"]) == (False, 2)             # the same text: nothing written
    assert len(rv.guideline_history(store, GEN)) == 2

    audit = audit_rows(store, "guidelines.set")
    assert [(a["actor"], a["entity"], a["entity_id"]) for a in audit] == [("ann", "guidelines", GEN),
                                                                        ("boxowner", "guidelines", GEN)]
    assert audit[0]["before"] is None and audit[0]["after"] == {"version": 1, "body": v1["body"]}
    assert audit[1]["before"] == {"version": 1, "body": v1["body"]} and audit[1]["after"]["version"] == 2


def test_general_guidelines_are_combined_with_the_tasks_own(store):
    rv.set_guidelines(store, "*", "Be strict about licences.", actor="cur")
    rv.set_guidelines(store, SUM, "A summary says what, not how.", actor="cur")
    rv.set_guidelines(store, "*", "Be strict about licences and secrets.", actor="cur")
    cur = rv.current_guidelines(store, SUM)
    assert cur["general"]["body"] == "Be strict about licences and secrets." and cur["general"]["version"] == 2
    assert cur["own"]["body"] == "A summary says what, not how." and cur["own"]["version"] == 1
    other = rv.current_guidelines(store, GEN)                            # only the general ones
    assert other["general"]["version"] == 2 and other["own"] is None
    everyone = rv.current_guidelines(store, "*")
    assert everyone["general"]["version"] == 2 and everyone["own"] is None
    assert [h["version"] for h in rv.guideline_history(store, "*")] == [2, 1]
    assert rv.guideline_scopes() == ["*", *TASKS]


def test_an_empty_body_clears_them_as_a_new_version(store):
    rv.set_guidelines(store, "*", "General.", actor="cur")
    rv.set_guidelines(store, GEN, "Own.", actor="cur")
    cleared = rv.set_guidelines(store, GEN, "   ", actor="cur")
    assert (cleared["version"], cleared["body"], cleared["changed"]) == (2, "", True)
    cur = rv.current_guidelines(store, GEN)
    assert cur["own"] is None and cur["general"]["body"] == "General."
    rv.set_guidelines(store, "*", "", actor="cur")
    assert rv.current_guidelines(store, GEN) is None                     # both cleared: nothing to show
    assert [h["body"] for h in rv.guideline_history(store, GEN)] == ["", "Own."]      # the history stays
    assert audit_rows(store, "guidelines.set")[2]["after"] == {"version": 2, "body": ""}
    nothing = rv.set_guidelines(store, REPAIR, "", actor="cur")          # clearing what was never written
    assert (nothing["changed"], nothing["version"]) == (False, 0)
    assert rv.guideline_history(store, REPAIR) == []


def test_bad_task_long_body_and_stale_editor_are_refused(store):
    for bad in ("code_golf", "", None, "all", " * x"):
        with pytest.raises(ShoalError, match="Unknown task"):
            rv.set_guidelines(store, bad, "text", actor="cur")
    with pytest.raises(ShoalError, match="Unknown task"):
        rv.guideline_history(store, "code_golf")
    with pytest.raises(ShoalError, match="20,000"):
        rv.set_guidelines(store, GEN, "x" * 20_001, actor="cur")
    with pytest.raises(ShoalError, match="must be text"):
        rv.set_guidelines(store, GEN, 42, actor="cur")                   # type: ignore[arg-type]
    assert store.scalar("SELECT count(*) FROM guidelines") == 0
    assert rv.set_guidelines(store, GEN, "x" * 20_000, actor="cur")["version"] == 1     # the limit itself is fine

    rv.set_guidelines(store, GEN, "Newer.", actor="bob", expected_version=1)
    with pytest.raises(rv.StaleGuidelines, match="now version 2 by bob") as err:
        rv.set_guidelines(store, GEN, "Mine, from version 1.", actor="ann", expected_version=1)
    assert err.value.version == 2
    with pytest.raises(rv.StaleGuidelines):
        rv.set_guidelines(store, SUM, "First?", actor="ann", expected_version=3)
    assert [h["body"][:6] for h in rv.guideline_history(store, GEN)] == ["Newer.", "xxxxxx"]
    assert rv.set_guidelines(store, SUM, "First.", actor="ann", expected_version=0)["version"] == 1


def test_only_curators_and_the_owner_write_them_with_sign_in(signed):
    store, _ = signed
    for who in (ANN, EVE):                                             # a reviewer; someone not in the team
        with pytest.raises(NotAllowed, match="edit the reviewer guidelines"):
            rv.set_guidelines(store, GEN, "Accept everything.", actor=who)
        assert refusals(store, who) == [("guidelines.refused", GEN)]
    assert store.scalar("SELECT count(*) FROM guidelines") == 0
    refused = store.one("SELECT entity, after FROM audit_log WHERE action = 'guidelines.refused' AND actor = ?", [ANN])
    assert refused["entity"] == "permission" and json.loads(refused["after"])["role"] == "reviewer"

    a = rv.set_guidelines(store, GEN, "Tests must run.", actor=CURATOR)
    b = rv.set_guidelines(store, "*", "No secrets in examples.", actor=OWNER)
    assert (a["author"], a["version"], b["author"]) == (CURATOR, 1, OWNER)
    assert [r["actor"] for r in audit_rows(store, "guidelines.set")] == [CURATOR, OWNER]
    cur = rv.current_guidelines(store, GEN)                            # what the reviewer reads
    assert (cur["general"]["body"], cur["own"]["body"]) == ("No secrets in examples.", "Tests must run.")


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def db(tmp_path, monkeypatch):
    import core.secrets_file
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [tmp_path / "no-secrets.toml"])
    monkeypatch.setenv("USER", "ownerbox")
    monkeypatch.delenv("SHOAL_IDENTITY", raising=False)
    path = tmp_path / "guidelines.duckdb"
    open_store(path).close()
    return path


def run(db, *args, input: str | None = None):
    return CliRunner().invoke(app, ["--db", str(db), *args], input=input, catch_exceptions=False)


def ok(db, *args, input: str | None = None):
    out = run(db, *args, input=input)
    assert out.exit_code == 0, out.output
    return out


def test_cli_sets_shows_and_lists_the_guidelines(db, tmp_path):
    text = tmp_path / "gen.md"
    text.write_text("# Code generation\n- the function must be tested\n", encoding="utf-8")
    out = ok(db, "team", "guidelines", GEN)
    assert "No guidelines for Code generation yet" in out.stdout
    assert "saved as version 1" in ok(db, "team", "guidelines", GEN, "--set", str(text)).output
    assert "saved as version 1" in ok(db, "team", "guidelines", "all", "--set", "-", input="Be kind.\n").output
    assert "unchanged at version 1" in ok(db, "team", "guidelines", "*", "--set", "-", input="Be kind.").output
    shown = ok(db, "team", "guidelines", GEN).stdout
    assert "== All tasks · version 1 · ownerbox" in shown and "Be kind." in shown
    assert "== Code generation · version 1 · ownerbox" in shown and "- the function must be tested" in shown
    assert shown.index("Be kind.") < shown.index("# Code generation")   # the general ones first
    data = json.loads(ok(db, "team", "guidelines", GEN, "--json").stdout)
    assert data["general"]["body"] == "Be kind." and data["own"]["body"].startswith("# Code generation")
    assert data["own"]["author"] == "ownerbox"

    saved = json.loads(ok(db, "team", "guidelines", GEN, "--set", "-", "--json", input="").stdout)
    assert (saved["version"], saved["body"], saved["changed"]) == (2, "", True)       # cleared
    hist = json.loads(ok(db, "team", "guidelines", GEN, "--history", "--json").stdout)
    assert [h["version"] for h in hist] == [2, 1]
    listing = ok(db, "team", "guidelines", GEN, "--history").stdout
    assert "== version 2 · ownerbox" in listing and "(cleared)" in listing
    with open_store(db) as s:
        assert s.scalar("SELECT count(*) FROM audit_log WHERE action = 'guidelines.set' AND actor = 'ownerbox'") == 3

    out = run(db, "team", "guidelines", "code_golf")
    assert out.exit_code == 1 and "Unknown task 'code_golf'" in out.output
    out = run(db, "team", "guidelines", GEN, "--set", str(tmp_path / "missing.md"))
    assert out.exit_code == 1 and "Cannot read the guidelines" in out.output


def test_cli_checks_the_role_of_as_identity(db):
    ok(db, "team", "add", "ann@example.com", "--role", "reviewer")
    ok(db, "team", "add", "cy@example.com", "--role", "curator")
    out = run(db, "team", "--as", "ann@example.com", "guidelines", GEN, "--set", "-", input="No.")
    assert out.exit_code == 1 and "edit the reviewer guidelines" in out.output
    out = ok(db, "team", "--as", "cy@example.com", "guidelines", GEN, "--set", "-", input="Tests first.")
    assert "saved as version 1" in out.output
    shown = ok(db, "team", "--as", "ann@example.com", "guidelines", GEN).stdout     # a reviewer reads them
    assert "version 1 · cy@example.com" in shown and "Tests first." in shown
    with open_store(db) as s:
        assert s.scalar("SELECT count(*) FROM audit_log WHERE action = 'guidelines.refused' "
                        "AND actor = 'ann@example.com'") == 1
        assert [r["author"] for r in rv.guideline_history(s, GEN)] == ["cy@example.com"]
