"""The Review page's bulk view: one verdict for every example matching the sidebar filter, as one
action that can be undone, and the list of recent actions with their Undo buttons."""
from __future__ import annotations

import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.common import reviewer_name
from ui.review.state import SS, current_filter, flash, show_notices
from ui.text import plain


def bulk_panel(store: Store) -> None:
    show_notices()
    f = current_filter()
    st.markdown("Apply one verdict to **every example matching the sidebar filter**, as one action you can undo.")
    verdict = st.radio("Verdict", ["accepted", "rejected"], horizontal=True, key="rv_bulk_verdict",
                       format_func=lambda v: {"accepted": "Accept all", "rejected": "Reject all"}[v])
    overwrite = st.checkbox("Also change examples that already have a human verdict", key="rv_bulk_overwrite")
    note = st.text_input("Note for these verdicts (optional)", key="rv_bulk_note")
    pre = rv.bulk_preview(store, f, verdict, overwrite)
    st.markdown(f"{pre.matching} examples match the filter; **{pre.to_change} will be {verdict}**"
                + (f" ({pre.overriding} overriding a human verdict)" if pre.overriding else "")
                + (f"; {pre.already} already are." if pre.already else "."))
    st.checkbox(f"Yes, mark {pre.to_change} examples as {verdict}", key="rv_bulk_confirm",
                disabled=pre.to_change == 0)
    st.button("Apply bulk action", type="primary", key="rv_bulk_go", on_click=do_bulk,
              args=(store, f, verdict, overwrite, note), disabled=not SS.get("rv_bulk_confirm") or pre.to_change == 0)
    recent_actions(store)


def recent_actions(store: Store) -> None:
    st.subheader("Recent actions")
    acts = rv.recent_actions(store, 15)
    if not acts:
        st.caption("No decisions yet.")
    for a in acts:
        c1, c2 = st.columns([5, 1])
        kind = "bulk" if a["action"] == "review.bulk" else f"#{a['first_generation']}"
        c1.markdown(f"{str(a['at'])[:19]} · **{plain(a['reviewer'])}** · {kind} · {a['verdict']} · {a['n']} example(s)"
                    + (" · _undone_" if a["undone"] else ""))
        if not a["undone"]:
            c2.button("Undo", key=f"rv_undo_{a['action_id']}", on_click=do_undo_action, args=(store, a["action_id"]))


def do_bulk(store: Store, f: rv.QueueFilter, verdict: str, overwrite: bool, note: str) -> None:
    try:
        res = rv.bulk_decide(store, f, verdict, reviewer=reviewer_name(), note=note, overwrite=overwrite)
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    SS["rv_bulk_confirm"] = False
    flash(f"{res.changed} examples {verdict} as one action — saved", "✅")


def do_undo_action(store: Store, action_id: str) -> None:
    try:
        res = rv.undo_action(store, action_id, reviewer=reviewer_name())
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    flash(f"Undone: {res.restored} restored"
          + (f", {res.not_restored} changed since and left alone" if res.not_restored else ""), "↩️")
