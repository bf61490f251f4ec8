"""Local sign-in in the app (AppTest, the whole frame: app.py): with `[shoal.local_sign_in]` on and
no [auth], an anonymous session sees only the email + password form; a reviewer signs in through it
and sees the app with the reviewer's role (the Team page without its controls); a wrong password
shows a clear error and grants nothing; "Sign out" ends the session's sign-in; an account without a
role sees only "not a member"."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store import open_store
from core.team import local_accounts as la
from core.team import members as team
from tests.support.apptest import ran, shared_store
from tests.support.fake_generations import fill_fake

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TEAM_PAGE = "pages/6_Team.py"
OWNER, BOB, EVE = "ann@example.com", "bob@example.com", "eve@example.com"
PASSWORD = "a reviewer's long passphrase"
FORM = "FormSubmitter:local_sign_in-Sign in"


@pytest.fixture
def local_db(tmp_path, monkeypatch):
    import core.secrets_file
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[shoal.local_sign_in]\nenabled = true\n")      # no [auth]: no identity provider
    monkeypatch.setattr(core.secrets_file, "secrets_paths", lambda: [secrets])
    monkeypatch.delenv(core.secrets_file.LOCAL_SIGN_IN_ENV, raising=False)
    db = tmp_path / "local_app.duckdb"
    monkeypatch.setenv("SHOAL_DB", str(db))
    with open_store(db) as s:
        fill_fake(s, 6, seed=5)
        team.set_member(s, OWNER, "owner", actor=team.local(), actor_role="owner", config={})
        team.set_member(s, BOB, "reviewer", actor=OWNER, actor_role="owner", config={})
        for who in (OWNER, BOB, EVE):                                  # eve has an account, no role
            la.set_password(s, who, PASSWORD, actor=team.local())
    return db


def anonymous() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": False}                                  # no OIDC session
    return ran(at)


def sign_in(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input(key="ls_email").input(email)
    at.text_input(key="ls_password").input(password)
    return ran(at.button(key=FORM).click())


def test_a_reviewer_signs_in_with_a_password_and_has_the_reviewers_role(local_db):
    at = anonymous()
    assert [t.label for t in at.text_input] == ["Email", "Password"]   # the form, nothing of the app
    assert not [b for b in at.button if (b.key or "").startswith("sign_in_")]   # no OIDC buttons without [auth]
    assert not at.sidebar.markdown and "Sign in" in [s.value for s in at.subheader]

    at = sign_in(at, "Bob@Example.com", PASSWORD)
    assert not at.error
    assert any(f"Signed in as `{BOB}` · reviewer" in m.value for m in at.sidebar.markdown)
    team_page = ran(at.switch_page(TEAM_PAGE))
    roles = next(d.value for d in team_page.dataframe if "member" in d.value.columns)
    assert dict(zip(roles["member"], roles["role"])) == {OWNER: "owner", BOB: "reviewer"}
    assert not [b for b in team_page.button if b.key in ("tm_assign", "tm_remove_go")]     # no owner's controls
    assert not [t for t in team_page.text_input if t.key == "tm_identity"]
    assert team_page.session_state["_local_identity"] == BOB
    assert "ls_password" not in team_page.session_state or not team_page.session_state["ls_password"]
    store = shared_store(local_db)
    assert store.scalar("SELECT last_seen_at IS NOT NULL FROM team_members WHERE identity = ?", [BOB])

    out = ran(team_page.button(key="sign_out").click())                # signing out: the form again
    assert [t.label for t in out.text_input] == ["Email", "Password"]
    assert "_local_identity" not in out.session_state


def test_a_wrong_password_shows_an_error_and_grants_nothing(local_db):
    at = sign_in(anonymous(), BOB, PASSWORD + " not")
    assert any("Wrong email or password" in e.value for e in at.error)
    assert [t.label for t in at.text_input] == ["Email", "Password"]   # still only the form
    assert "_local_identity" not in at.session_state and not at.sidebar.markdown
    at = sign_in(at, "nobody@example.com", PASSWORD)
    assert any("Wrong email or password" in e.value for e in at.error)
    store = shared_store(local_db)
    assert store.scalar("SELECT failed_attempts FROM local_accounts WHERE identity = ?", [BOB]) == 1
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'account.sign_in_failed'") == 2


def test_an_account_without_a_role_is_not_a_member(local_db):
    at = sign_in(anonymous(), EVE, PASSWORD)
    assert any("not a member of this team" in w.value for w in at.warning)
    assert not at.sidebar.markdown
    out = ran(at.button(key="sign_out_guest").click())
    assert [t.label for t in out.text_input] == ["Email", "Password"]


def test_the_owner_sets_a_members_password_on_the_team_page(local_db):
    new = "a brand new passphrase for bob"
    owner = ran(sign_in(anonymous(), OWNER, PASSWORD).switch_page(TEAM_PAGE))
    assert "Local accounts" in [h.value for h in owner.header]
    accounts = next(d.value for d in owner.dataframe if "account" in d.value.columns)
    assert sorted(accounts["account"]) == [OWNER, BOB, EVE] and "password_hash" not in accounts.columns

    def send(at: AppTest, email: str, password: str, again: str) -> AppTest:
        at.text_input(key="tm_acc_identity").input(email)
        at.text_input(key="tm_acc_password").input(password)
        at.text_input(key="tm_acc_again").input(again)
        return ran(at.button(key="FormSubmitter:tm_accounts_form-Set password").click())

    owner = send(owner, BOB, new, new + "x")                             # a typo in the second field
    assert any("The two passwords differ" in e.value for e in owner.error)
    store = shared_store(local_db)
    assert la.verify(store, BOB, PASSWORD) and not la.verify(store, BOB, new)
    owner = send(owner, BOB, new, new)
    assert any(f"The password of {BOB} is set" in s.value for s in owner.success)
    assert not owner.session_state["tm_acc_password"] and not owner.session_state["tm_acc_again"]   # cleared
    assert la.verify(store, BOB, new) and not la.verify(store, BOB, PASSWORD)
    audit = store.rows("SELECT actor, action, after FROM audit_log WHERE action = 'account.password_set' "
                       "ORDER BY id DESC LIMIT 1")[0]
    assert audit["actor"] == OWNER and new not in str(audit["after"])

    bob = ran(sign_in(anonymous(), BOB, new).switch_page(TEAM_PAGE))    # Bob signs in with it
    assert any(f"Signed in as `{BOB}` · reviewer" in m.value for m in bob.sidebar.markdown)
    assert "Local accounts" not in [h.value for h in bob.header]        # a reviewer: no accounts panel
    assert not [t for t in bob.text_input if t.key == "tm_acc_identity"]
