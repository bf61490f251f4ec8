"""The app's pages and the frame they run in (app.py runs `frame().run()`).

With sign-in configured ([auth] and/or [shoal.local_sign_in] in .streamlit/secrets.toml) the frame
is also the gate: an anonymous browser gets only the sign-in page (the providers' buttons, the
email + password form, or both), whatever URL it asked for, and a signed-in user who is not a
member of the team gets only a page saying so. A local sign-in lasts for this browser session.
"""
from __future__ import annotations

import streamlit as st

from core.errors import ShoalError
from core.team import members as team
from ui.app_pages import app_pages, page_titles
from ui.common import (
    current_identity,
    current_role,
    get_store,
    local_sign_in,
    local_sign_in_enabled,
    oidc_enabled,
    page_setup,
    sign_in_enabled,
    sign_out,
    signed_in,
)
from ui.persist import carry_over


def _providers() -> list[str | None]:
    """The named providers in [auth] ([auth.google], ...), or [None] for the unnamed default one."""
    auth = st.secrets.get("auth") or {}
    named = [k for k, v in auth.items() if hasattr(v, "keys")]
    return named or [None]


WRONG_PASSWORD = ("Wrong email or password. After 5 wrong passwords in a row the account is locked for 15 "
                  "minutes; the team's owner can set a new password (`shoal team passwd EMAIL`).")


def sign_in_page() -> None:
    st.title("🐟 Shoal")
    st.subheader("Sign in")
    st.write("This Shoal is shared by a team. Sign in to see the corpus and review your examples.")
    if local_sign_in_enabled():
        _local_sign_in_form()
    if oidc_enabled():
        for provider in _providers():
            label = "Sign in" + (f" with {provider.title()}" if provider else "")
            st.button(label, key=f"sign_in_{provider or 'default'}", type="primary", on_click=st.login,
                      args=(provider,) if provider else (), icon=":material/login:")


def _local_sign_in_form() -> None:
    """Email + password (core.team.local_accounts); Enter submits. The fields are cleared on submit, so
    the password does not stay in the session."""
    with st.form("local_sign_in", clear_on_submit=True, enter_to_submit=True):
        email = st.text_input("Email", key="ls_email", autocomplete="username")
        password = st.text_input("Password", key="ls_password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if not submitted:
        return
    if local_sign_in(email, password):
        st.rerun()
    st.error(WRONG_PASSWORD, icon=":material/lock:")


def not_a_member_page() -> None:
    st.title("🐟 Shoal")
    st.warning(f"You are signed in as **{current_identity() or 'someone without an email'}**, but you are not a "
               "member of this team. Ask the team's owner to add you on the Team page, then sign in again.",
               icon=":material/lock:")
    st.button("Sign out", key="sign_out_guest", on_click=sign_out, icon=":material/logout:")


def no_owner_page() -> None:
    st.title("🐟 Shoal")
    st.error(team.NO_OWNER, icon=":material/lock:")


def _gate() -> tuple | None:
    """The one page a browser may see before it is a signed-in member, as (function, title, icon, URL
    path); None when it may see all. With sign-in configured and no owner named, Shoal does not start
    at all (only the message)."""
    if not sign_in_enabled():
        return None
    try:
        team.require_owner(get_store(), config=team.config_roles())
    except ShoalError:
        return no_owner_page, "No owner", ":material/lock:", "setup"
    if not signed_in():
        return sign_in_page, "Sign in", ":material/login:", "signin"
    if current_role() is None:
        return not_a_member_page, "Not a member", ":material/lock:", "guest"
    return None


def _gate_pages(gate: tuple) -> list:
    """The gate at its own URL and at every page's: a reload of /Team (a local sign-in lasts for the
    browser session) shows the gate there, not "page not found", and after signing in the same URL
    is the Team page again."""
    fn, title, icon, url_path = gate
    return [st.Page(fn, title=title, icon=icon, url_path=url_path, default=True)] + [
        st.Page(fn, title=title, icon=icon, url_path=t) for t in page_titles()[1:]]


def frame():
    """The set-up done once per run around every page: the navigation menu, then the tab title,
    the wide layout, the shared store and the sidebar settings. Returns the page to run."""
    gate = _gate()
    if gate is not None:
        page = st.navigation(_gate_pages(gate), position="hidden")
        st.set_page_config(page_title=f"{gate[1]} · Shoal", page_icon="🐟", layout="centered")
        return page
    page = st.navigation(app_pages())
    carry_over()            # widget values kept by any page survive this run of another page (ui.persist.keep)
    page_setup(page.title)
    return page
