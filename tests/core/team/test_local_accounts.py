"""Local sign-in accounts (core.team.local_accounts) on a real DuckDB file: argon2 hashes (never the
password, not even in the audit log), right and wrong passwords, the lockout after 5 wrong ones in
a row and its end after 15 minutes (an injected clock), a rehash when the parameters change, only
the owner sets passwords, and local sign-in turning the team's role checks on — plus
`shoal team passwd` through typer's CliRunner."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from core import secrets_file
from core.cli.main import app
from core.errors import NotAllowed, ShoalError
from core.store import open_store
from core.team import local_accounts as la
from core.team import members as team

OWNER, BOB, EVE = "owner@x.org", "bob@x.org", "eve@x.org"
PASSWORD = "correct horse battery staple"
T0 = datetime(2030, 1, 1, 12, 0, 0)


def use_secrets(monkeypatch, path) -> None:
    import core.secrets_file
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [path])


@pytest.fixture
def local_team(tmp_path, monkeypatch):
    """Local sign-in on through the secrets file (no [auth]), an owner and a reviewer in the team."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[shoal.local_sign_in]\nenabled = true\n\n[shoal.team]\nowner = "{OWNER}"\n')
    use_secrets(monkeypatch, secrets)
    monkeypatch.delenv(secrets_file.LOCAL_SIGN_IN_ENV, raising=False)
    store = open_store(tmp_path / "accounts.duckdb")
    team.set_member(store, BOB, "reviewer", actor=OWNER, actor_role="owner")
    yield store
    store.close()


def audit(store, action_like: str = "account.%") -> list[dict]:
    return store.rows("SELECT actor, action, entity_id, CAST(before AS VARCHAR) AS before, "
                      "CAST(after AS VARCHAR) AS after FROM audit_log WHERE action LIKE ? ORDER BY id", [action_like])


def test_local_sign_in_turns_the_team_on_without_auth(tmp_path, monkeypatch):
    off = tmp_path / "off.toml"
    off.write_text("[shoal]\n")
    use_secrets(monkeypatch, off)
    monkeypatch.delenv(secrets_file.LOCAL_SIGN_IN_ENV, raising=False)
    assert not team.sign_in_on() and not secrets_file.sign_in_configured() and not team.local_sign_in_on()
    monkeypatch.setenv(secrets_file.LOCAL_SIGN_IN_ENV, "1")                 # the environment alone
    assert team.sign_in_on() and team.local_sign_in_on() and secrets_file.sign_in_configured()
    assert not secrets_file.oidc_configured()
    monkeypatch.delenv(secrets_file.LOCAL_SIGN_IN_ENV)
    on = tmp_path / "on.toml"
    on.write_text("[shoal.local_sign_in]\nenabled = true\n")           # the secrets file alone
    use_secrets(monkeypatch, on)
    assert team.sign_in_on() and team.local_sign_in_on() and secrets_file.sign_in_configured([on])
    store = open_store(tmp_path / "roles.duckdb")
    try:                                                               # core's role checks hold now
        assert team.acting_role(store, "stranger@x.org") is None
        with pytest.raises(NotAllowed):
            team.authorize(store, "stranger@x.org", "review")
    finally:
        store.close()


def test_the_hash_is_argon2id_and_never_the_password(local_team):
    store = local_team
    la.set_password(store, "Bob@X.org ", PASSWORD, actor=OWNER)
    row = store.rows("SELECT * FROM local_accounts")
    assert len(row) == 1 and row[0]["identity"] == BOB
    digest = row[0]["password_hash"]
    assert digest.startswith("$argon2id$") and PASSWORD not in digest
    assert row[0]["failed_attempts"] == 0 and row[0]["locked_until"] is None
    la.set_password(store, BOB, PASSWORD, actor=OWNER)                 # a fresh salt each time
    assert store.scalar("SELECT password_hash FROM local_accounts") != digest
    assert "password_hash" not in la.accounts(store)[0]


def test_verify_right_and_wrong(local_team):
    store = local_team
    la.set_password(store, BOB, PASSWORD, actor=OWNER)
    assert la.verify(store, BOB, PASSWORD, now=T0)
    assert la.verify(store, "  BOB@x.org", PASSWORD, now=T0)          # the email as typed
    assert not la.verify(store, BOB, PASSWORD + "!", now=T0)
    assert not la.verify(store, BOB, "", now=T0)
    assert not la.verify(store, "nobody@x.org", PASSWORD, now=T0)
    assert not la.verify(store, "not an email", PASSWORD, now=T0)
    assert la.verify(store, BOB, PASSWORD, now=T0)                     # a success resets the count
    assert store.scalar("SELECT failed_attempts FROM local_accounts") == 0


def test_five_wrong_passwords_lock_the_account_for_15_minutes(local_team):
    store = local_team
    la.set_password(store, BOB, PASSWORD, actor=OWNER)
    for i in range(4):
        assert not la.verify(store, BOB, f"wrong guess {i}", now=T0)
    assert la.locked_until(store, BOB, now=T0) is None
    assert la.verify(store, BOB, PASSWORD, now=T0)                     # 4 in a row: not locked; count reset
    for i in range(5):
        assert not la.verify(store, BOB, f"wrong guess {i}", now=T0 + timedelta(seconds=i))
    until = T0 + timedelta(seconds=4) + la.LOCK_FOR
    assert la.locked_until(store, BOB, now=T0 + timedelta(minutes=1)) == until
    assert not la.verify(store, BOB, PASSWORD, now=T0 + timedelta(minutes=10))   # the right one, still locked
    assert not la.verify(store, BOB, PASSWORD, now=until - timedelta(seconds=1))
    assert la.verify(store, BOB, PASSWORD, now=until)                  # the lock has ended
    assert store.rows("SELECT failed_attempts, locked_until FROM local_accounts") == [
        {"failed_attempts": 0, "locked_until": None}]

    actions = [a["action"] for a in audit(store, "account.%") if a["action"] != "account.password_set"]
    assert actions == ["account.sign_in_failed"] * 9 + ["account.locked"] + ["account.sign_in_failed"] * 2
    locked = next(a for a in audit(store) if a["action"] == "account.locked")
    assert locked["entity_id"] == BOB and json.loads(locked["after"])["failed_attempts"] == 5
    assert [json.loads(a["after"])["reason"] for a in audit(store, "account.sign_in_failed")][-2:] == ["locked"] * 2


def test_failures_after_an_expired_lock_count_from_zero(local_team):
    store = local_team
    la.set_password(store, BOB, PASSWORD, actor=OWNER)
    for _ in range(5):
        la.verify(store, BOB, "wrong wrong wrong", now=T0)
    later = T0 + la.LOCK_FOR + timedelta(minutes=1)
    assert not la.verify(store, BOB, "wrong wrong wrong", now=later)   # one failure: not locked again
    assert la.locked_until(store, BOB, now=later) is None
    assert store.scalar("SELECT failed_attempts FROM local_accounts") == 1
    assert la.verify(store, BOB, PASSWORD, now=later)


def test_an_old_hash_is_replaced_on_sign_in(local_team):
    store = local_team
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    store.execute("INSERT INTO local_accounts(identity, password_hash) VALUES (?, ?)", [BOB, weak])
    assert la.hasher().check_needs_rehash(weak)
    assert la.verify(store, BOB, PASSWORD, now=T0)
    digest = store.scalar("SELECT password_hash FROM local_accounts")
    assert digest != weak and not la.hasher().check_needs_rehash(digest)
    assert la.verify(store, BOB, PASSWORD, now=T0)


def test_only_the_owner_sets_passwords_and_no_password_is_audited(local_team):
    store = local_team
    with pytest.raises(NotAllowed):
        la.set_password(store, EVE, PASSWORD, actor=BOB)               # a reviewer
    with pytest.raises(NotAllowed):
        la.set_password(store, BOB, PASSWORD, actor="stranger@x.org")  # not a member
    assert store.scalar("SELECT count(*) FROM local_accounts") == 0
    assert [a["action"] for a in audit(store, "team.refused")] == ["team.refused", "team.refused"]
    la.set_password(store, BOB, PASSWORD, actor=OWNER)
    la.set_password(store, EVE, PASSWORD, actor=team.local("ownerbox"))   # this machine's user (the CLI)
    with pytest.raises(ShoalError, match="at least 12"):
        la.set_password(store, BOB, "short", actor=OWNER)
    with pytest.raises(ShoalError, match="not an email"):
        la.set_password(store, "bob", PASSWORD, actor=OWNER)
    with pytest.raises(NotAllowed):
        la.remove_account(store, EVE, actor=BOB)
    la.verify(store, BOB, "a wrong password here", now=T0)
    la.remove_account(store, EVE, actor=OWNER)
    with pytest.raises(ShoalError, match="no local account"):
        la.remove_account(store, EVE, actor=OWNER)
    assert [(a["actor"], a["action"], a["entity_id"]) for a in audit(store) if a["action"] != "account.sign_in_failed"] \
        == [(OWNER, "account.password_set", BOB), ("ownerbox", "account.password_set", EVE),
            (OWNER, "account.removed", EVE)]
    everything = json.dumps(store.rows("SELECT * FROM audit_log"), default=str)
    assert PASSWORD not in everything and "a wrong password here" not in everything and "argon2" not in everything


def test_an_account_without_a_role_is_not_a_member(local_team):
    store = local_team
    la.set_password(store, EVE, PASSWORD, actor=OWNER)
    assert la.verify(store, EVE, PASSWORD, now=T0)
    assert team.sign_in(store, EVE) is None and team.acting_role(store, EVE) is None
    with pytest.raises(NotAllowed):
        team.authorize(store, EVE, "review")


# --------------------------------------------------------------------------- shoal team passwd

def run(db, *args, stdin: str | None = None):
    return CliRunner().invoke(app, ["--db", str(db), "team", "passwd", *args], input=stdin, catch_exceptions=False)


def test_cli_passwd_sets_and_removes_a_password(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[shoal.local_sign_in]\nenabled = true\n[shoal.team]\nowner = "{OWNER}"\n')
    use_secrets(monkeypatch, secrets)
    monkeypatch.setenv("USER", "ownerbox")
    monkeypatch.delenv("SHOAL_IDENTITY", raising=False)
    db = tmp_path / "cli.duckdb"

    out = run(db, "Bob@x.org", "--password-stdin", stdin=PASSWORD + "\n")
    assert out.exit_code == 0, out.output
    assert "Password set for bob@x.org" in out.output and "not a team member yet" in out.output
    out = run(db, EVE, stdin=f"{PASSWORD}x\n{PASSWORD}x\n")           # asked twice, hidden
    assert out.exit_code == 0, out.output
    assert PASSWORD not in out.output
    out = run(db, "short@x.org", "--password-stdin", stdin="short\n")
    assert out.exit_code == 1 and "at least 12" in out.output
    out = run(db, "--remove", EVE)
    assert out.exit_code == 0 and f"{EVE} was removed" in out.output
    out = CliRunner().invoke(app, ["--db", str(db), "team", "--as", BOB, "passwd", BOB, "--password-stdin"],
                             input=PASSWORD + "\n")                    # not a member: refused, nothing asked
    assert out.exit_code == 1 and "cannot manage the team" in out.output

    with open_store(db) as s:
        assert la.verify(s, BOB, PASSWORD) and not la.has_account(s, EVE) and not la.has_account(s, "short@x.org")
        rows = s.rows("SELECT actor, action, entity_id FROM audit_log WHERE action LIKE 'account.%' ORDER BY id")
        assert [(r["actor"], r["action"], r["entity_id"]) for r in rows] == [
            ("ownerbox", "account.password_set", BOB), ("ownerbox", "account.password_set", EVE),
            ("ownerbox", "account.removed", EVE)]
        assert PASSWORD not in json.dumps(s.rows("SELECT * FROM audit_log"), default=str)
