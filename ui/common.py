"""Things every page needs: the shared store, the sidebar settings, the set-up the frame does once."""
from __future__ import annotations

import os
import time

import streamlit as st

from core.errors import ShoalError
from core.store import Store, default_db_path, open_store
from core.team import members as team


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    from core.generate.jobs.endpoint_queue import ensure_queue_runner
    store = open_store(path)
    ensure_queue_runner(store)   # jobs queued before a restart (rows in DuckDB) start when their server is free
    return store


def get_store() -> Store:
    """The process-wide read-write connection (one per file), or a clear stop if busy."""
    path = os.environ.get("SHOAL_DB") or str(default_db_path())
    try:
        return _store(path)
    except ShoalError as exc:
        st.error(str(exc))
        st.stop()


def page_store() -> Store:
    """What every page calls first: the shared store, with the page inside the frame (app.py).

    Until some session has called st.navigation, Streamlit treats the `pages/` folder next to
    app.py as a legacy multipage app and runs a page file on its own (a fresh server whose
    first request is /Corpus). Leave that mode for good (what st.navigation itself does) and
    rerun at once, before the page draws anything, so app.py frames the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    return get_store()


# --------------------------------------------------------------------------- who is using the app

def oidc_enabled() -> bool:
    """Whether Streamlit's sign-in (`st.login`) is configured: an [auth] section in secrets.toml
    with redirect_uri and cookie_secret."""
    try:
        auth = st.secrets.get("auth")
    except Exception:  # no secrets file at all (Streamlit raises its own error types)
        return False
    return bool(auth) and bool(auth.get("redirect_uri")) and bool(auth.get("cookie_secret"))


def local_sign_in_enabled() -> bool:
    """Whether local sign-in (email + password, core.team.local_accounts) is on: `[shoal.local_sign_in]
    enabled = true` in secrets.toml or SHOAL_LOCAL_SIGN_IN=1 — as core decides it (core.team.members)."""
    return team.local_sign_in_on()


def sign_in_enabled() -> bool:
    """Whether this Shoal is a team's: OIDC sign-in, local sign-in, or both. Without either the app
    is one person's, on 127.0.0.1."""
    return oidc_enabled() or local_sign_in_enabled()


LOCAL_IDENTITY = "_local_identity"   # session_state: the identity a local sign-in proved (this browser session)


def _oidc_signed_in() -> bool:
    return bool(getattr(st.user, "is_logged_in", False))


def _local_identity() -> str | None:
    return st.session_state.get(LOCAL_IDENTITY) if local_sign_in_enabled() else None


def signed_in() -> bool:
    return _oidc_signed_in() or bool(_local_identity())


def local_sign_in(identity: str, password: str) -> bool:
    """Check a local account's password (core.team.local_accounts.verify: argon2, lockout after repeated
    failures); on success this browser session is signed in as that identity."""
    from core.team import local_accounts
    if not local_sign_in_enabled() or not local_accounts.verify(get_store(), identity, password):
        return False
    st.session_state[LOCAL_IDENTITY] = local_accounts.normalize_identity(identity)
    st.session_state.pop("_team_role", None)
    return True


def sign_out() -> None:
    """End this session's sign-in: a local one is forgotten here, an OIDC one goes through st.logout."""
    ss = st.session_state
    ss.pop("_team_role", None)
    if ss.pop(LOCAL_IDENTITY, None) and not _oidc_signed_in():
        return
    st.logout()


@st.cache_data(ttl=30, show_spinner=False)
def _config_roles() -> dict[str, str]:
    return team.config_roles()


_ROLE_TTL = 20.0   # seconds a session trusts the role it read (the owner may change it meanwhile)


def current_identity() -> str | None:
    """Who is signed in, from either route: the OIDC user's email (else subject), else the identity a
    local sign-in proved in this session; None before sign-in."""
    if _oidc_signed_in():
        return team.identity_of(st.user.to_dict())
    return _local_identity()


def current_role() -> str | None:
    """owner | curator | reviewer, or None for a signed-in user who is not a member. Without
    sign-in configured the single local user is the owner."""
    if not sign_in_enabled():
        return "owner"
    ident = current_identity()
    if not ident:
        return None
    ss = st.session_state
    cached = ss.get("_team_role")
    if cached and cached[0] == ident and time.monotonic() - cached[2] < _ROLE_TTL:
        return cached[1]
    store = get_store()
    if not cached or cached[0] != ident:      # first run of this session: record the sign-in
        name = st.user.to_dict().get("name") if _oidc_signed_in() else None
        role = team.sign_in(store, ident, name, config=_config_roles())
    else:
        role = team.role_of(store, ident, config=_config_roles())
    ss["_team_role"] = (ident, role, time.monotonic())
    return role


def reviewer_name() -> str:
    """Who acts and signs: the signed-in user (core checks their role), else the name typed in the
    sidebar (local use: this machine's own user, core.team.members.Local, allowed everything)."""
    if sign_in_enabled():
        return current_identity() or ""
    return team.Local(st.session_state.get("reviewer") or os.environ.get("USER") or "reviewer")


def can(action: str) -> bool:
    return team.allowed(current_role(), action)


def lock_note(action: str) -> str | None:
    """Why the user's role may not do `action` (to show by a disabled control), None when it may."""
    try:
        team.require(current_role(), action)
    except team.NotAllowed as exc:
        return str(exc)
    return None


def require_page(action: str) -> None:
    """Stop the page with a clear message unless the user's role allows `action` (the refusal is
    audited by core.team.members.authorize, like the refusal of the action itself)."""
    try:
        team.authorize(get_store(), reviewer_name(), action, target="page", role=current_role(), audit_allowed=False)
    except team.NotAllowed as exc:
        st.warning(str(exc), icon=":material/lock:")
        st.stop()


def sidebar(store: Store) -> None:
    with st.sidebar:
        st.caption(f"Database: `{store.path}`")
        if sign_in_enabled():
            st.markdown(f"Signed in as `{current_identity()}` · {current_role() or 'not a member'}")
            st.button("Sign out", key="sign_out", on_click=sign_out, icon=":material/logout:")
            return
        if "reviewer" not in st.session_state:
            st.session_state["reviewer"] = store.get_ui_state("reviewer", os.environ.get("USER") or "reviewer")
        name = st.text_input("Reviewer", key="reviewer", help="Recorded with every review decision.")
        if name and name != store.get_ui_state("reviewer"):
            store.set_ui_state("reviewer", name)


def user_state_key(key: str) -> str:
    """A ui_state key of this user's own (queue position, filters): two people never share one."""
    return f"{key}:{reviewer_name()}"


def get_user_state(store: Store, key: str, default=None):
    """This user's saved state; local use falls back to the state saved before it was per user."""
    value = store.get_ui_state(user_state_key(key))
    if value is None and not sign_in_enabled():
        value = store.get_ui_state(key)
    return default if value is None else value


def set_user_state(store: Store, key: str, value) -> None:
    store.set_ui_state(user_state_key(key), value)


def page_setup(title: str, icon: str = "🐟") -> Store:
    """The frame's set-up, once per run before the page: tab title, wide layout, store, sidebar."""
    st.set_page_config(page_title=f"{title} · Shoal", page_icon=icon, layout="wide")
    store = get_store()
    sidebar(store)
    return store


def next_step_box(step: dict | None) -> None:
    """"Next step" with a link to its page (core.pipeline.next_step)."""
    from ui.app_pages import page
    if step is None:
        st.success("Every stage has data. Export the accepted set from the Dataset page.")
        return
    st.info(f"**Next step:** {step['next']}")
    st.page_link(page(step["page"]), label=f"Go to {step['page']}", icon="➡️")
