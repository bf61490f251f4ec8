"""Deciding on one example: the action bar (with its keyboard shortcuts), the reject form, the
accept-anyway box, and the callbacks that write each decision to DuckDB (core.review) before the
page moves on.

The page keeps the review version it loaded the example at, so a save over someone else's newer
verdict is refused (rv.StaleReview) and said once, above the example.
"""
from __future__ import annotations

import time

import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.common import reviewer_name
from ui.focus import focus
from ui.review.state import SS, STATUS_WORDS, do_prev, flash, go_next, mine_only, open_panel, save_position
from ui.text import plain

SHORTCUTS = {"accept": "A", "reject": "X", "edit": "E", "skip": "S", "undo": "U", "next": "J", "prev": "K"}


def loaded(store: Store, gid: int) -> int:
    """The version this session saw when it opened the example (the reviewer's own response's on
    an overlap example, else the example's review's)."""
    seen = SS.get("rv_loaded") or {}
    return int(seen["version"]) if seen.get("gid") == gid else rv.version_for(store, gid, reviewer_name())


def seconds_open(gid: int) -> float | None:
    seen = SS.get("rv_loaded") or {}
    return time.monotonic() - seen["at"] if seen.get("gid") == gid and seen.get("at") else None


def loaded_stop(store: Store, gid: int) -> list[str] | None:
    """The pre-filter's stop reasons the session saw when it opened the example (read again only
    for an example it did not open)."""
    seen = SS.get("rv_loaded") or {}
    return seen["stop"] if seen.get("gid") == gid and "stop" in seen else rv.prefilter_stop(store, gid)


def remember_loaded(store: Store, gid: int) -> None:
    """Note the example's current version (and pre-filter stop) as the one this session has open."""
    SS["rv_loaded"] = {"gid": gid, "version": rv.version_for(store, gid, reviewer_name()), "at": time.monotonic(),
                       "stop": rv.prefilter_stop(store, gid)}


def reload_example(store: Store, gid: int) -> None:
    remember_loaded(store, gid)
    SS["rv_error"] = None


def ask_accept(store: Store, gid: int) -> None:
    """Accept, except that an example the pre-filter stopped asks first (it was never judged)."""
    if loaded_stop(store, gid) is not None:
        SS["rv_panel"] = "confirm_accept"
        return
    decide(store, "accepted", gid)


def decide(store: Store, verdict: str, gid: int, edited: dict | None = None, note: str | None = None,
           reasons: list | None = None) -> None:
    try:
        res = rv.decide(store, gid, verdict, reviewer=reviewer_name(), expected_version=loaded(store, gid),
                        note=note, reasons=reasons, edited_fields=edited, seconds_open=seconds_open(gid))
    except rv.StaleReview as exc:
        # said once: the error above the example (with its Reload button), no toast, no second notice
        SS["rv_error"] = str(exc)
        SS["rv_panel"] = None
        return
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=True)
        return
    word = {"accepted": "Accepted" + (" (edited)" if res["edited_fields"] and edited else ""),
            "rejected": "Rejected", "skipped": "Skipped"}[verdict]
    status = f" · {STATUS_WORDS[res['status']]}" if res.get("status") else ""
    flagged = " · stopped by the pre-filter: flagged in the export" \
        if verdict == "accepted" and loaded_stop(store, gid) is not None else ""
    flash(f"{word} #{gid} — saved (version {res['version']}){status}{flagged}", "✅" if verdict == "accepted" else "📝")
    go_next(store, gid)


def do_reject(store: Store, gid: int) -> None:
    decide(store, "rejected", gid, note=SS.get(f"rv_note_{gid}") or None, reasons=SS.get(f"rv_reasons_{gid}") or [])


def do_skip(store: Store, gid: int) -> None:
    review = rv.get_review(store, gid)
    if review and review["verdict"] in ("accepted", "rejected"):
        flash(f"#{gid} keeps its verdict ({review['verdict']}); moved on", "⏭️")
        go_next(store, gid)
        return
    decide(store, "skipped", gid)


def do_undo(store: Store) -> None:
    try:
        res = rv.undo_last(store, reviewer_name())
    except ShoalError as exc:
        flash(str(exc), "⚠️", error=isinstance(exc, rv.StaleReview))
        return
    if res.action in ("review.decide", "review.respond") and res.generation_ids:
        gid = res.generation_ids[0]
        remember_loaded(store, gid)
        save_position(store, gid)
        flash(f"Undone: #{gid} is back to its previous state", "↩️")
    else:
        flash(f"Undone bulk action: {res.restored} examples restored"
              + (f", {res.not_restored} changed since and left alone" if res.not_restored else ""), "↩️")
    SS["rv_panel"] = None


# --------------------------------------------------------------------------- drawing

def draw_actions(store: Store, gid: int) -> None:
    cols = st.columns(7)
    k = SHORTCUTS
    cols[0].button("Accept", key="rv_accept", type="primary", shortcut=k["accept"], on_click=ask_accept,
                   args=(store, gid), width="stretch")
    cols[1].button("Reject…", key="rv_reject", shortcut=k["reject"], on_click=open_panel, args=("reject",),
                   width="stretch")
    cols[2].button("Edit…", key="rv_edit", shortcut=k["edit"], on_click=open_panel, args=("edit",), width="stretch")
    cols[3].button("Skip", key="rv_skip", shortcut=k["skip"], on_click=do_skip, args=(store, gid), width="stretch")
    cols[4].button("Undo", key="rv_undo", shortcut=k["undo"], on_click=do_undo, args=(store,), width="stretch")
    cols[5].button("Prev", key="rv_prev", shortcut=k["prev"], on_click=do_prev, args=(store, gid), width="stretch")
    cols[6].button("Next", key="rv_next", shortcut=k["next"], on_click=go_next, args=(store, gid), width="stretch")
    st.caption("Keys: **A** accept · **X** reject (type a note, Enter) · **E** edit (Ctrl+Enter saves & accepts) · "
               "**S** skip · **U** undo your last decision · **J** / **K** next / previous. "
               f"Reviewing as **{plain(reviewer_name())}**" + (" · your assigned queue" if mine_only() else "") + ".")


def reject_form(store: Store, gid: int) -> None:
    """The reject note and quick reasons; Enter saves."""
    with st.form(f"rv_reject_form_{gid}", border=True):
        st.text_input("Reject note", key=f"rv_note_{gid}", placeholder="Why is this example bad? (Enter saves)")
        st.pills("Quick reasons", rv.QUICK_REASONS, selection_mode="multi", key=f"rv_reasons_{gid}")
        st.form_submit_button("Confirm reject (Enter)", type="primary", on_click=do_reject, args=(store, gid))
    focus("Reject note", f"reject-{gid}")


def confirm_accept(store: Store, gid: int) -> None:
    """Accepting an example the pre-filter stopped: said, and asked once more."""
    with st.container(border=True):
        st.markdown(f"Accept #{gid} although the pre-filter stopped it? It was never judged; the export "
                    "marks it (`prefilter_failed`).")
        c1, c2 = st.columns(2)
        c1.button("Accept anyway", key="rv_accept_anyway", type="primary", on_click=decide,
                  args=(store, "accepted", gid), width="stretch")
        c2.button("Cancel", key="rv_accept_cancel", on_click=open_panel, args=("confirm_accept",),
                  width="stretch")
