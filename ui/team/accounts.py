"""Local accounts on the Team page (owner only; core.team.local_accounts checks the role again): the
accounts with their locks, a form that sets a member's password, and removing an account.

The password fields are cleared when the form is sent, so a password does not stay in the session;
nothing of a password or its hash is shown or audited."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ShoalError
from core.store import Store
from core.team import local_accounts as la
from ui.text import plain

FLASH = "tm_accounts_flash"


def _set_password(store: Store, actor: str) -> None:
    ss = st.session_state
    identity, password, again = ss.get("tm_acc_identity", ""), ss.get("tm_acc_password", ""), ss.get("tm_acc_again", "")
    ss["tm_acc_password"] = ss["tm_acc_again"] = ""     # not kept in the session, whatever the browser does
    if password != again:
        ss[FLASH] = ("The two passwords differ: nothing was changed.", False)
        return
    try:
        la.set_password(store, identity, password, actor=actor)
        ss[FLASH] = (f"The password of {plain(la.normalize_identity(identity))} is set; they sign in with it "
                     "on the sign-in page.", True)
    except ShoalError as exc:
        ss[FLASH] = (plain(exc), False)


def _remove(store: Store, identity: str, actor: str) -> None:
    try:
        la.remove_account(store, identity, actor=actor)
        st.session_state[FLASH] = (f"The local account {plain(identity)} was removed.", True)
    except ShoalError as exc:
        st.session_state[FLASH] = (plain(exc), False)


def accounts_panel(store: Store, actor: str) -> None:
    """The owner's local accounts section (shown only where local sign-in is on)."""
    st.header("Local accounts")
    st.caption("Email + password sign-in for members without an identity provider. A member still needs a "
               "role above; five wrong passwords in a row lock the account for 15 minutes (setting a new "
               "password unlocks it).")
    if FLASH in st.session_state:
        msg, ok = st.session_state.pop(FLASH)
        (st.success if ok else st.error)(msg)
    rows = la.accounts(store)
    if rows:
        st.dataframe(pd.DataFrame([{"account": r["identity"], "failed sign-ins": r["failed_attempts"],
                                    "locked until": r["locked_until"], "password set": r["updated_at"]}
                                   for r in rows]), hide_index=True, width="stretch")
    with st.form("tm_accounts_form", clear_on_submit=True, border=True):
        cols = st.columns([3, 2, 2, 1])
        cols[0].text_input("Email", key="tm_acc_identity", placeholder="reviewer@example.com")
        cols[1].text_input("New password", key="tm_acc_password", type="password")
        cols[2].text_input("Again", key="tm_acc_again", type="password")
        cols[3].form_submit_button("Set password", type="primary", on_click=_set_password, args=(store, actor))
    if rows:
        cols = st.columns([3, 1])
        gone = cols[0].selectbox("Remove an account", [r["identity"] for r in rows], index=None,
                                 key="tm_acc_remove", placeholder="choose an account")
        cols[1].button("Remove account", key="tm_acc_remove_go", disabled=not gone, on_click=_remove,
                       args=(store, gone, actor))
