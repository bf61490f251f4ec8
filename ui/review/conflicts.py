"""The Review page's conflicts view (adjudicators): overlap examples whose reviewers disagree,
every response side by side, and a final verdict that goes into the audit log."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.code import code_lang
from ui.common import reviewer_name
from ui.review.item import show_generated
from ui.review.state import SS, flash, show_notices
from ui.text import plain, text_table, verdict_badge


def do_adjudicate(store: Store, gid: int, verdict: str) -> None:
    try:
        out = rv.adjudicate(store, gid, verdict, adjudicator=reviewer_name(),
                            note=SS.get(f"rv_adj_note_{gid}") or None)
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    flash(f"#{gid} resolved: {out['verdict']} (final) — saved", "⚖️")


def conflicts_panel(store: Store) -> None:
    show_notices()
    ids = rv.conflict_ids(store)
    counts = rv.status_counts(store)
    st.markdown(f"**{len(ids)} in conflict** · agreed {counts['agreed']} · resolved {counts['resolved']} · "
                f"pending {counts['pending']}. An adjudication is final and goes into the audit log.")
    if not ids:
        st.info("No conflicts: every overlap example so far has reviewers who agree (or is still pending).")
        return
    gid = st.selectbox("Conflict", ids, key="rv_conflict", format_func=lambda g: f"Example #{g}")
    item = rv.get_item(store, gid)
    g, snip = item["generation"], item["snippet"]
    st.markdown(f"### Conflict on example #{gid}\n{plain(g['task'])} · "
                f"{verdict_badge(item['judgment']['overall'] if item['judgment'] else None)}")
    st.table(text_table(pd.DataFrame([{
        "reviewer": r["reviewer"], "verdict": r["verdict"], "note": r.get("note") or "", "reasons": ", ".join(r["reasons"]),
        "edited": r["edited_fields"] is not None, "at": str(r["updated_at"])[:19]}
        for r in rv.responses(store, gid)]).set_index("reviewer")))
    left, right = st.columns(2, gap="medium")
    with left:
        st.code(snip.get("code") or "(snippet missing)", language=code_lang(snip.get("language")), line_numbers=True,
                wrap_lines=True)
    with right:
        show_generated(g, g["fields"] or {}, snip.get("language"))
    st.text_input("Adjudication note", key=f"rv_adj_note_{gid}", placeholder="Why this verdict (optional)")
    c = st.columns(2)
    c[0].button("Accept (final)", key="rv_adj_accept", type="primary", on_click=do_adjudicate,
                args=(store, gid, "accepted"), width="stretch")
    c[1].button("Reject (final)", key="rv_adj_reject", on_click=do_adjudicate, args=(store, gid, "rejected"),
                width="stretch")
