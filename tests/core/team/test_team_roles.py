"""Roles enforced where each action happens (core.team.members.authorize), on a real DuckDB file with sign-in
configured: a reviewer is refused ingest, embed + map, select, jobs, prompts, checks, export, bulk
review, adjudication and the team settings, and decides only the examples assigned to them (the
`?g=` hole); every refusal is in the audit log; nothing changed. Without sign-in, and for the CLI
(this machine's own user), everything stays allowed. Plus the owner that must be named before the
app starts, and the data roots of the app's ingest."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import review as rv
from core.errors import NotAllowed, OutsideDataRoots, ShoalError
from core.store import open_store
from core.team import members as team
from tests.support.fake_generations import fill_fake
from tests.support.team import ANN, AUTH, BOB, CURATOR, EVE, OWNER, ROLES, refusals, use_secrets


def counts(store) -> dict[str, int]:
    tables = ("ingests", "background_tasks", "selections", "jobs", "prompt_versions", "exports", "checks",
              "reviews", "adjudications", "team_members", "team_settings")
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in tables}


def _actions(store, tmp_path, mine):
    """action name -> a call of the core entry point a page makes for it, as `who`."""
    from core.background import cancel_task
    from core.dataset.checks.exclusions import confirm_exclusions
    from core.dataset.checks.neardup import keep_one
    from core.dataset.checks.results import set_override
    from core.dataset.checks.start import start_checks
    from core.dataset.export import export_dataset, export_zip
    from core.dataset.judge_eval import use_judge_version
    from core.generate.items import save_prompt_version
    from core.generate.jobs import cancel_job, pause_job, retry_failed, start_worker
    from core.generate.jobs.records import create_job
    from core.generate.jobs.start import JobRequest, start_job
    from core.ingest.start import start_ingest
    from core.ingest.upload import save_upload
    from core.maps.start import start_embed_and_map
    from core.select.run import select
    ids = [r[0] for r in store.execute("SELECT id FROM snippets LIMIT 3").fetchall()]
    g = mine[ANN][0]
    task_id = store.scalar("INSERT INTO background_tasks(kind, label, owner, heartbeat) "
                           "VALUES ('ingest', 'x', 'elsewhere', 0) RETURNING id")
    return {
        "ingest": lambda who: start_ingest(store, [str(tmp_path / "data")], actor=who),
        "map": lambda who: start_embed_and_map(store, None, "auto", 32, 0, "kmeans", actor=who),
        "select": lambda who: select(store, "mine", 3, actor=who),
        "jobs": lambda who: start_job(store, JobRequest(snippet_ids=ids), {}, actor=who),
        "jobs ": lambda who: create_job(store, ids, profiles={}, actor=who),
        "prompts": lambda who: save_prompt_version(store, "code_generation", {}, actor=who),
        "prompts ": lambda who: use_judge_version(store, 1, actor=who),
        "checks": lambda who: start_checks(store, "humaneval", None, 0.9, False, False, 0, actor=who),
        "checks ": lambda who: set_override(store, g, "decontamination", True, actor=who),
        "checks  ": lambda who: confirm_exclusions(store, [1], actor=who),
        "checks   ": lambda who: keep_one(store, mine[ANN][:2], mine[ANN][0], reviewer=who),
        "ingest ": lambda who: cancel_task(store, task_id, actor=who),
        "ingest  ": lambda who: save_upload(store, "repo.zip", b"PK", actor=who),
        "jobs  ": lambda who: pause_job(store, 1, actor=who),
        "jobs   ": lambda who: cancel_job(store, 1, actor=who),
        "jobs    ": lambda who: retry_failed(store, 1, actor=who),
        "jobs     ": lambda who: start_worker(store, 1, actor=who),
        "export": lambda who: export_dataset(store, "alpaca", tmp_path / "out", actor=who),
        "export ": lambda who: export_zip(store, "alpaca", actor=who),
        "bulk_review": lambda who: rv.bulk_decide(store, rv.QueueFilter(), "accepted", reviewer=who),
        "adjudicate": lambda who: rv.adjudicate(store, g, "accepted", adjudicator=who),
        "team": lambda who: team.set_member(store, EVE, "owner", actor=who, actor_role=team.acting_role(store, who)),
        "team ": lambda who: team.set_settings(store, actor=who, actor_role=team.acting_role(store, who),
                                               reviewers_per_example=3),
    }


@pytest.mark.parametrize("who", [ANN, EVE])          # a reviewer, and someone who signed in but is no member
def test_every_action_but_review_is_refused_audited_and_changes_nothing(signed, tmp_path, who):
    store, mine = signed
    actions = _actions(store, tmp_path, mine)
    before = counts(store)
    for name, call in actions.items():
        with pytest.raises(NotAllowed, match="you cannot") as err:
            call(who)
        assert ("As a reviewer" if who == ANN else "not a team member") in str(err.value), name
    assert counts(store) == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "uploads").exists()
    refused = [a for a, _ in refusals(store, who)]
    assert refused == [f"{name.strip()}.refused" for name in actions]
    row = store.one("SELECT after FROM audit_log WHERE actor = ? AND action = 'ingest.refused'", [who])
    assert json.loads(row["after"])["role"] == ("reviewer" if who == ANN else None)


def test_a_curator_may_and_is_audited_but_not_the_team(signed, tmp_path):
    from core.generate.items import save_prompt_version
    from core.tasks import get_task
    store, mine = signed
    content = get_task("code_generation").default_content()
    saved = save_prompt_version(store, "code_generation", {**content, "definition": "a curated definition"},
                                actor=CURATOR)
    assert saved.content["definition"] == "a curated definition"
    assert store.scalar("SELECT count(*) FROM audit_log WHERE actor = ? AND action = 'prompts.allowed'",
                        [CURATOR]) == 1
    g = mine[BOB][0]                          # curators and the owner may change any example's verdict
    rv.decide(store, g, "rejected", reviewer=CURATOR, expected_version=rv.version_for(store, g, CURATOR))
    with pytest.raises(NotAllowed, match="As a curator you cannot manage the team"):
        team.set_member(store, EVE, "reviewer", actor=CURATOR, actor_role=team.acting_role(store, CURATOR))
    assert refusals(store, CURATOR) == [("team.refused", EVE)]


def test_a_reviewer_decides_only_the_examples_assigned_to_them(signed):
    """The `?g=` hole: ann opens bob's example by URL and rejects it; core refuses, bob's accept stays."""
    store, mine = signed
    bobs = mine[BOB][0]
    with pytest.raises(NotAllowed, match=f"Example #{bobs} is not in your review queue"):
        rv.decide(store, bobs, "rejected", reviewer=ANN, expected_version=rv.version_for(store, bobs, ANN))
    review = rv.get_review(store, bobs)
    assert (review["verdict"], review["reviewer"]) == ("accepted", BOB)
    assert refusals(store, ANN) == [("review.refused", str(bobs))]
    # nor through undo: bob's decision is not hers to take back
    action_id = store.scalar("SELECT batch_id FROM audit_log WHERE action = 'review.decide' AND actor = ?", [BOB])
    with pytest.raises(NotAllowed, match="apply bulk review actions"):
        rv.undo_action(store, action_id, reviewer=ANN)
    assert rv.get_review(store, bobs)["verdict"] == "accepted"
    # her own queue works as before, undo included
    own = mine[ANN][0]
    rv.decide(store, own, "accepted", reviewer=ANN, expected_version=rv.version_for(store, own, ANN))
    rv.undo_last(store, ANN)
    assert rv.get_review(store, own) is None
    assert [a for a, _ in refusals(store, ANN)] == ["review.refused", "bulk_review.refused"]


def test_a_reviewer_opens_only_the_examples_assigned_to_them(signed):
    """Reading by URL too: ann's `?g=` of bob's example (with his verdict) is refused, even when the page
    claims she may see everything; a curator opens it."""
    store, mine = signed
    bobs = mine[BOB][0]
    for see_all in (False, True):
        with pytest.raises(NotAllowed, match=f"Example #{bobs} is not in your review queue"):
            rv.review_view(store, bobs, ANN, see_all=see_all)
    assert rv.review_view(store, mine[ANN][0], ANN)["item"]["generation"]["id"] == mine[ANN][0]
    assert rv.review_view(store, bobs, CURATOR, see_all=True)["item"]["review"]["verdict"] == "accepted"
    assert refusals(store, ANN) == [("review.refused", str(bobs))] * 2


def test_without_sign_in_and_for_the_cli_everything_stays_allowed(signed, tmp_path, monkeypatch):
    store, mine = signed
    bobs = mine[BOB][0]
    # this machine's own user (the CLI, see the next test) under sign-in: any verdict, signed with its name
    rv.decide(store, bobs, "rejected", reviewer=team.local("boxowner"),
              expected_version=rv.version_for(store, bobs, "boxowner"))
    assert rv.get_review(store, bobs)["reviewer"] == "boxowner"
    # no sign-in configured: one local user, whatever name is typed in the sidebar
    use_secrets(monkeypatch, None)
    other = mine[ANN][1]
    rv.decide(store, other, "accepted", reviewer="typed name", expected_version=rv.version_for(store, other, "x"))
    assert team.acting_role(store, "typed name") == "owner"
    assert refusals(store, "typed name") == [] and refusals(store, "boxowner") == []


def test_cli_review_is_the_machine_owner(tmp_path, monkeypatch):
    from core.cli.main import app
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH + ROLES)
    use_secrets(monkeypatch, secrets)
    monkeypatch.setenv("USER", "boxowner")
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        fill_fake(s, 6, seed=2)
        g = int(s.scalar("SELECT min(id) FROM generations"))
    out = CliRunner().invoke(app, ["--db", str(db), "review", "--reject", str(g)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    with open_store(db) as s:
        assert rv.get_review(s, g)["reviewer"] == "boxowner"


def test_the_app_does_not_start_without_a_named_owner(tmp_path, monkeypatch):
    from core.cli.main import app
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH)                                  # sign-in, and no owner anywhere
    use_secrets(monkeypatch, secrets)
    monkeypatch.setattr("core.appfiles.AppFiles.secrets", lambda self: [secrets], raising=False)
    import core.appfiles
    monkeypatch.setattr(core.appfiles, "exec_streamlit", lambda *a, **k: pytest.fail("the app started"))
    db = tmp_path / "app.duckdb"
    out = CliRunner().invoke(app, ["--db", str(db), "app"])       # `shoal app`: main() prints the message
    assert isinstance(out.exception, ShoalError) and "under `[shoal.team]`" in str(out.exception)
    with open_store(db) as s:
        assert team.sign_in(s, "first@x.org", config=team.config_roles()) is None     # nobody takes the team
        team.set_member(s, OWNER, "owner", actor=team.local(), actor_role="owner")
        team.require_owner(s)


# --------------------------------------------------------------------------- data roots

FUNC = ("def rectangle_area(width, height):\n    \"\"\"Area of a width by height rectangle.\"\"\"\n"
        "    if width < 0 or height < 0:\n        raise ValueError('negative side')\n    return width * height\n")

def test_the_apps_ingest_reads_only_under_the_data_roots(tmp_path, monkeypatch, store):
    from core.ingest.roots import data_roots
    from core.ingest.start import start_ingest
    use_secrets(monkeypatch, None)
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    for d in (root, outside):
        d.mkdir()
        (d / "m.py").write_text(FUNC)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("SHOAL_DATA_ROOTS", str(root))
    for source in (str(outside), str(root / "escape"), "/etc/passwd", str(root / ".." / "elsewhere")):
        with pytest.raises(OutsideDataRoots, match="SHOAL_DATA_ROOTS"):
            start_ingest(store, [source], actor="someone")
    reasons = store.execute("SELECT entity_id, after FROM audit_log WHERE action = 'ingest.refused'").fetchall()
    assert [r[0] for r in reasons] == [str(outside), str(root / "escape"), "/etc/passwd",
                                       str(root / ".." / "elsewhere")]
    assert "outside the folders this app may read from" in json.loads(reasons[0][1])["reason"]
    assert store.scalar("SELECT count(*) FROM ingests") == 0
    run = start_ingest(store, [str(root)], actor="someone")
    run.wait()
    assert run.error is None and run.result.ingested == 1
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'ingest.allowed'") == 1
    # the default: the working directory, the home folder of a single local user, and the uploads
    monkeypatch.delenv("SHOAL_DATA_ROOTS")
    roots = data_roots(store)
    assert Path.cwd().resolve() in roots and Path.home().resolve() in roots
    assert (store.path.resolve().parent / "uploads") in roots
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[shoal]\ndata_roots = ["/srv/corpora"]\n' + AUTH + ROLES)
    use_secrets(monkeypatch, secrets)
    assert data_roots() == [Path("/srv/corpora").resolve()]
    secrets.write_text(AUTH + ROLES)                      # a team: the server account's home is not a root
    assert Path.home().resolve() not in data_roots() or Path.home().resolve() == Path.cwd().resolve()


# --------------------------------------------------------------------------- symlinks in a walked folder

CANARY = "CANARY_7f3a_not_for_the_corpus"


def test_a_team_export_writes_only_under_the_data_roots(signed, tmp_path):
    """A curator's export with "overwrite" replaces the folder it names: with sign-in, only under a root."""
    from core.dataset.export import export_dataset
    store, mine = signed
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("not the app's")
    rv.decide(store, mine[ANN][0], "accepted", reviewer=ANN, expected_version=rv.version_for(store, mine[ANN][0], ANN))
    with pytest.raises(OutsideDataRoots, match="may write to"):
        export_dataset(store, "alpaca", victim, overwrite=True, actor=CURATOR)
    assert (victim / "keep.txt").read_text() == "not the app's"
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'export.refused' AND actor = ?", [CURATOR]) == 1
    res = export_dataset(store, "alpaca", tmp_path / "data" / "out", actor=CURATOR)
    assert res.n_rows >= 1 and (tmp_path / "data" / "out" / "train.jsonl").exists()
    assert export_dataset(store, "alpaca", victim / "cli", actor=None).n_rows >= 1   # the CLI: this machine's user


def test_symlinks_out_of_an_ingested_folder_are_refused_and_counted(tmp_path, store):
    from core.ingest import ingest_sources
    repo, secret = tmp_path / "repo", tmp_path / "secret"
    repo.mkdir()
    secret.mkdir()
    (repo / "good.py").write_text(FUNC)
    (secret / "keys.py").write_text(f"def key():\n    '''The key.'''\n    return '{CANARY}' + 'x' * 20\n")
    (repo / "keys.py").symlink_to(secret / "keys.py")                      # a file link out of the folder
    (repo / "passwd.py").symlink_to("/etc/passwd")                         # what today's ingest read
    (repo / "vendored_secret").symlink_to(secret, target_is_directory=True)  # a folder link out of it
    (repo / "inside.py").symlink_to(repo / "good.py")                      # a link inside: still fine
    (repo / "data").mkdir()
    (secret / "leak.jsonl").write_text(json.dumps({"content": f"def leak():\n    return '{CANARY}'\n",
                                                   "lang": "python", "path": "leak.py"}) + "\n")
    (repo / "data" / "leak.jsonl").symlink_to(secret / "leak.jsonl")

    res = ingest_sources(store, [str(repo)])
    codes = [r[0] for r in store.execute("SELECT code FROM snippets").fetchall()]
    assert codes and not any(CANARY in c or "root:" in c for c in codes)
    errors = {(r[0], r[1]) for r in store.execute("SELECT location, reason FROM ingest_errors").fetchall()}
    for where in ("keys.py", "passwd.py", "vendored_secret/", "data/leak.jsonl"):
        assert (where, "symlink_outside_root") in errors, errors
    assert res.errors_by_reason["symlink_outside_root"] == 4
    detail = store.scalar("SELECT detail FROM ingest_errors WHERE location = 'passwd.py'")
    assert "/etc/passwd" in detail and "outside the folder" in detail

    # a folder of data files: the same rule
    data_res = ingest_sources(store, [str(repo / "data")], fmt="jsonl")
    assert data_res.errors_by_reason["symlink_outside_root"] == 1 and data_res.ingested == 0
    assert not any(CANARY in r[0] for r in store.execute("SELECT code FROM snippets").fetchall())
    assert os.path.islink(repo / "keys.py")                                # nothing was changed on disk


# --------------------------------------------------------------------------- pages name the actor

GUARDED = ("start_ingest", "start_embed_and_map", "start_checks", "start_semantic_checks", "start_judge_eval",
           "select", "start_job", "create_job", "save_prompt_version", "use_judge_version", "export_dataset",
           "export_zip", "set_override", "confirm_exclusions", "cancel_task", "pause_job", "cancel_job",
           "retry_failed", "start_worker", "save_upload")


def test_every_page_call_of_a_guarded_action_names_its_actor():
    """An action called without `actor=` runs as this machine's own user: a page must always name
    the signed-in user (ui.common.reviewer_name), or core could not refuse a reviewer."""
    import ast
    root = Path(__file__).resolve().parents[3]
    missing = []
    for path in [*(root / "pages").glob("*.py"), *(root / "ui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in GUARDED and not any(k.arg in ("actor", None) for k in node.keywords):   # None: **kw passed on
                if name == "select" and not (node.args and ast.unparse(node.args[0]) in ("store", "_store")):
                    continue                     # some other select (a DuckDB relation, a widget)
                missing.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert missing == []
