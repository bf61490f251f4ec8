"""Local accounts in a real browser: the owner signs in with a password, sets a member's password on
the Team page (Enter in the form sends it), leaves for another page and comes back, reloads; the
member then signs in with the new password and sees no accounts panel."""
from __future__ import annotations

import pytest

from core.store import open_store
from core.team import local_accounts as la
from core.team import members as team
from tests.support.browser import main_text, screenshot, wait_for_app
from tests.support.fake_generations import fill_fake

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OWNER, BOB = "ann@example.com", "bob@example.com"
OWNER_PASSWORD, NEW_PASSWORD = "the owner's long passphrase", "bob's brand new passphrase"


def sign_in(page, url: str, email: str, password: str) -> None:
    if page.url != url:
        page.goto(url)
    wait_for_app(page)
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("textbox", name="Password").press("Enter")
    page.get_by_text(f"Signed in as {email}").first.wait_for(timeout=30_000)
    wait_for_app(page)


def open_team(page) -> None:
    """Through the menu: a new URL would be a new session, which a local sign-in does not outlive."""
    page.get_by_role("link", name="Team").first.click()
    wait_for_app(page)
    page.get_by_role("heading", name="Members").wait_for()


def test_the_owner_sets_a_password_in_the_browser_and_the_member_signs_in_with_it(tmp_path, page, browser,
                                                                                   app_server):
    db = tmp_path / "accounts.duckdb"
    with open_store(db) as s:
        fill_fake(s, 6, seed=3)
        team.set_member(s, OWNER, "owner", actor=team.local(), actor_role="owner", config={})
        team.set_member(s, BOB, "reviewer", actor=OWNER, actor_role="owner", config={})
        la.set_password(s, OWNER, OWNER_PASSWORD, actor=team.local())
        s.checkpoint()
    srv = app_server(db, env={"SHOAL_LOCAL_SIGN_IN": "1"})

    owner = page
    sign_in(owner, srv.url, OWNER, OWNER_PASSWORD)
    open_team(owner)
    owner.get_by_role("heading", name="Local accounts").wait_for()
    form = owner.locator("[data-testid='stForm']").filter(has_text="New password")
    form.get_by_role("textbox", name="Email").fill(BOB)
    form.get_by_role("textbox", name="New password").fill(NEW_PASSWORD)
    form.get_by_role("textbox", name="Again").fill(NEW_PASSWORD)
    form.get_by_role("textbox", name="Again").press("Enter")                      # Enter in the form sends it
    owner.get_by_text(f"The password of {BOB} is set").wait_for(timeout=30_000)
    screenshot(owner, "team_local_accounts_set")
    assert form.get_by_role("textbox", name="New password").input_value() == ""   # the fields are emptied

    owner.get_by_role("link", name="Review").first.click()          # leave the page and come back
    wait_for_app(owner)
    open_team(owner)
    owner.get_by_role("heading", name="Local accounts").wait_for()
    assert BOB in main_text(owner)
    owner.reload()                     # a local sign-in lasts for the browser session: the form, at /Team
    wait_for_app(owner)
    owner.get_by_role("textbox", name="Password").wait_for()
    assert "Local accounts" not in main_text(owner) and not owner.get_by_text("Page not found").count()
    assert owner.url.endswith("/Team")
    sign_in(owner, owner.url, OWNER, OWNER_PASSWORD)               # and signing in there opens the Team page
    owner.get_by_role("heading", name="Local accounts").wait_for()

    bob = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    sign_in(bob, srv.url, BOB, NEW_PASSWORD)
    open_team(bob)
    assert "Local accounts" not in main_text(bob)
    assert f"Signed in as {BOB} · reviewer" in bob.inner_text("[data-testid='stSidebar']")
    bob.context.close()
