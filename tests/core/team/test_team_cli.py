"""`shoal team` on a real DuckDB file: members, add/remove, assign with overlap, agreement — and the
role of `--as IDENTITY` checked as the app checks it."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core import review as rv
from core.cli.main import app
from core.review.agreement import kappa_from_counts
from core.store import open_store
from core.team import members as team
from tests.support.fake_generations import fill_fake


@pytest.fixture
def db(tmp_path, monkeypatch):
    import core.secrets_file
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [tmp_path / "no-secrets.toml"])  # no roles from files
    monkeypatch.setenv("USER", "ownerbox")
    monkeypatch.delenv("SHOAL_IDENTITY", raising=False)
    path = tmp_path / "team.duckdb"
    with open_store(path) as s:
        fill_fake(s, 60, seed=3)
    return path


def run(db, *args):
    return CliRunner().invoke(app, ["--db", str(db), *args], catch_exceptions=False)


def ok(db, *args):
    out = run(db, *args)
    assert out.exit_code == 0, out.output
    return out


def test_members_add_change_remove_without_identity_act_as_the_owner(db):
    ok(db, "team", "add", "Ann@Example.com", "--role", "owner", "--name", "Ann")
    ok(db, "team", "add", "bob@example.com")                              # reviewer by default
    ok(db, "team", "add", "cy@example.com", "--role", "curator")
    ok(db, "team", "add", "bob@example.com", "--role", "curator")         # a role changes
    data = json.loads(ok(db, "team", "members", "--json").stdout)
    assert {m["identity"]: m["role"] for m in data} == {"ann@example.com": "owner", "bob@example.com": "curator",
                                                         "cy@example.com": "curator"}
    assert next(m for m in data if m["identity"] == "ann@example.com")["name"] == "Ann"
    ok(db, "team", "remove", "cy@example.com")
    table = ok(db, "team", "members").output
    assert "bob@example.com" in table and "cy@example.com" not in table
    with open_store(db) as s:
        audit = s.rows("SELECT actor, action, entity_id, after FROM audit_log WHERE action LIKE 'team.%' ORDER BY id")
    assert [a["action"] for a in audit] == ["team.role"] * 4 + ["team.remove"]
    assert {a["actor"] for a in audit} == {"ownerbox"}                      # the machine's user, as the owner
    assert json.loads(audit[3]["after"]) == {"role": "curator"} and audit[3]["entity_id"] == "bob@example.com"
    out = run(db, "team", "add", "dan@example.com", "--role", "boss")
    assert out.exit_code == 1 and "Unknown role 'boss'" in out.output
    out = run(db, "team", "remove", "ann@example.com")                     # the only owner
    assert out.exit_code == 1 and "needs an owner" in out.output


def test_an_identity_is_held_to_its_role(db):
    ok(db, "team", "add", "ann@example.com", "--role", "owner")
    ok(db, "team", "add", "bob@example.com", "--role", "reviewer")
    ok(db, "team", "add", "cy@example.com", "--role", "curator")
    for cmd in (["add", "eve@example.com"], ["remove", "cy@example.com"], ["assign", "--overlap", "2"]):
        for who in ("bob@example.com", "cy@example.com"):
            out = run(db, "team", "--as", who, *cmd)
            assert out.exit_code == 1 and "cannot manage the team" in out.output, (who, cmd, out.output)
    out = run(db, "team", "--as", "BOB@example.com", "agreement")          # a reviewer: no agreement view
    assert out.exit_code == 1 and "cannot resolve conflicts" in out.output
    out = run(db, "team", "--as", "stranger@example.com", "members")
    assert out.exit_code == 1 and "not a team member" in out.output
    ok(db, "team", "--as", "bob@example.com", "members")                  # any member sees the team
    ok(db, "team", "--as", "cy@example.com", "agreement")
    ok(db, "team", "--as", "ann@example.com", "add", "eve@example.com", "--role", "reviewer")
    with open_store(db) as s:
        assert team.role_of(s, "eve@example.com", config={}) == "reviewer"
        assert s.scalar("SELECT actor FROM audit_log WHERE entity_id = 'eve@example.com'") == "ann@example.com"
        assert s.scalar("SELECT count(*) FROM assignments") == 0           # the refused assign wrote nothing


def test_assign_with_overlap_is_what_the_team_page_does(db):
    ok(db, "team", "add", "ann@example.com", "--role", "owner")
    for r in ("r1@example.com", "r2@example.com", "r3@example.com"):
        ok(db, "team", "add", r)
    out = run(db, "team", "assign", "--overlap", "2", "--share", "0.5", "--seed", "4", "--json")
    assert out.exit_code == 0, out.output
    res = json.loads(out.stdout)
    assert res["examples"] == 60 and res["overlap_examples"] == 30 and res["rows"] == 90
    assert set(res["per_reviewer"]) == {"r1@example.com", "r2@example.com", "r3@example.com"}   # not the owner
    with open_store(db) as s:
        assert rv.overlap_summary(s)["by_needed"] == {1: 30, 2: 30}
        assert team.get_settings(s) == {"reviewers_per_example": 2, "overlap_share": 0.5}
        assert s.scalar("SELECT actor FROM audit_log WHERE action = 'team.assign'") == "ownerbox"
    again = json.loads(ok(db, "team", "assign", "--overlap", "2", "--json").stdout)
    assert again["examples"] == 0                                           # nothing left unassigned
    out = run(db, "team", "assign", "--overlap", "3", "-r", "r1@example.com", "-r", "r2@example.com")
    assert out.exit_code == 1 and "needs at least 3 reviewers" in out.output
    out = run(db, "team", "assign", "--overlap", "2", "--share", "1.5")
    assert out.exit_code == 1 and "fraction between 0 and 1" in out.output


def test_agreement_reports_cohen_per_pair_fleiss_per_task_and_per_rule(db):
    ok(db, "team", "assign", "--overlap", "2", "-r", "a@x.org", "-r", "b@x.org", "--seed", "1")
    with open_store(db) as s:
        ids = [int(r[0]) for r in s.execute("SELECT id FROM generations ORDER BY id LIMIT 24").fetchall()]
        pattern = {}
        for i, g in enumerate(ids):
            va = "accepted" if i % 3 else "rejected"
            vb = va if i % 4 else ("rejected" if va == "accepted" else "accepted")
            for who, v in (("a@x.org", va), ("b@x.org", vb)):
                rv.decide(s, g, v, reviewer=who, expected_version=rv.version_for(s, g, who))
            pattern[g] = (va, vb)
        tasks = dict(s.execute("SELECT id, task FROM generations").fetchall())
    data = json.loads(ok(db, "team", "agreement", "--json").stdout)
    (pair,) = data["pairs"]
    tp = sum(a == b == "accepted" for a, b in pattern.values())
    tn = sum(a == b == "rejected" for a, b in pattern.values())
    fp = sum((a, b) == ("accepted", "rejected") for a, b in pattern.values())
    fn = sum((a, b) == ("rejected", "accepted") for a, b in pattern.values())
    assert (pair["a"], pair["b"], pair["n"]) == ("a@x.org", "b@x.org", len(ids))
    assert pair["kappa"] == pytest.approx(kappa_from_counts(tp, fn, fp, tn))
    assert data["fleiss"]["n_examples"] == len(ids) and data["fleiss"]["split"] == fp + fn
    assert set(data["per_task"]) == {tasks[g] for g in ids}
    assert sum(b["n_examples"] for b in data["per_task"].values()) == len(ids)
    assert data["per_rule"] and all(b["n"] > 0 for b in data["per_rule"].values())
    one = next(iter(data["per_task"]))
    only = json.loads(ok(db, "team", "agreement", "--task", one, "--json").stdout)
    assert set(only["per_task"]) == {one} and only["fleiss"]["n_examples"] == data["per_task"][one]["n_examples"]
    text = ok(db, "team", "agreement").output
    assert "Cohen's kappa per pair" in text and "Fleiss' kappa" in text and f"{pair['kappa']:.2f}" in text
    assert "judge's rules" in text
