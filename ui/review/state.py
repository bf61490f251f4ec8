"""The Review page's session state: the reviewer's filter, sort and position, and the notices.

Filter and position live in Session State (widget keys `rv_*`), in the URL (?g=) and in DuckDB
(ui_state per reviewer), so a reload or a new tab lands where the reviewer was. Streamlit drops a
widget's entry after any run that does not draw it (a run of another page, or the rule answer while
no rule is picked): the widgets are kept (ui.persist.keep, drawn with **PERSIST), so coming back to
the page finds its filter.
"""
from __future__ import annotations

import streamlit as st

from core import review as rv
from core.store import Store
from ui.common import can, get_user_state, reviewer_name, set_user_state
from ui.persist import keep

SS = st.session_state
STATE_KEY = "review.state"           # ui_state (per reviewer): filter, sort, seed, current example

STATUS_WORDS = {"pending": "pending", "decided": "decided", "agreed": "agreed", "conflict": "in conflict",
                "resolved": "resolved"}


@st.cache_data(ttl=30, show_spinner=False)
def options(_store, db: str) -> dict:
    return rv.filter_options(_store)


def saved_state(store: Store) -> dict:
    return get_user_state(store, STATE_KEY, {}) or {}


def has_queue(store: Store) -> bool:
    """Whether this reviewer has examples assigned (then their queue is those, not everything)."""
    return rv.has_assignments(store, reviewer_name())


# every widget key of the page's filters, sort and views, with its value for "no restriction"
_NO_FILTER = rv.QueueFilter()
WIDGET_DEFAULTS: dict = {
    "rv_tasks": [], "rv_langs": [], "rv_clusters": [], "rv_selection": 0, "rv_judge": _NO_FILTER.judge,
    "rv_rule": "", "rv_rule_answer": _NO_FILTER.rule_answer, "rv_status": _NO_FILTER.status,
    "rv_reviewer_filter": "", "rv_search": "", "rv_sort": "judge_failed_first", "rv_seed": 0,
    "rv_mode": "Review", "rv_mine": True, "rv_list": False, "rv_history": False}


def init_state(store: Store) -> None:
    """Every run, before the sidebar: on a browser session's first run the filter and position come
    from the URL / DuckDB; later runs put back what a run of another page dropped."""
    if not SS.get("rv_init"):
        _load_saved(store)
        SS["rv_init"] = True
    keep(WIDGET_DEFAULTS)


def _load_saved(store: Store) -> None:
    saved = saved_state(store)
    f = rv.QueueFilter.from_dict(saved.get("filter"))
    SS.update({
        "rv_tasks": list(f.tasks), "rv_langs": list(f.languages), "rv_clusters": list(f.clusters),
        # selectboxes use 0 / "" for "no restriction" (a None value would show as an empty widget)
        "rv_selection": f.selection_id or 0, "rv_judge": f.judge, "rv_rule": f.rule or "",
        "rv_rule_answer": f.rule_answer, "rv_status": f.status, "rv_reviewer_filter": f.reviewer or "",
        "rv_search": f.search,
        "rv_sort": saved.get("sort", "judge_failed_first"), "rv_seed": int(saved.get("seed", 0)),
        "rv_mode": "Review", "rv_panel": None, "rv_mine": bool(saved.get("mine", True)),
    })
    gid = st.query_params.get("g") or saved.get("generation_id")
    try:
        SS["rv_gid"] = int(gid) if gid is not None else None
    except ValueError:
        SS["rv_gid"] = None


def current_filter() -> rv.QueueFilter:
    return rv.QueueFilter(
        tasks=tuple(SS.rv_tasks), languages=tuple(SS.rv_langs), clusters=tuple(SS.rv_clusters),
        selection_id=SS.rv_selection or None, judge=SS.rv_judge, rule=SS.rv_rule or None,
        rule_answer=SS.rv_rule_answer, status=SS.rv_status, reviewer=SS.rv_reviewer_filter or None,
        search=SS.rv_search or "", assigned_to=reviewer_name() if mine_only() else None)


def mine_only() -> bool:
    """Only my assigned examples: always for a reviewer with a queue; a choice for owners and curators."""
    if not SS.get("rv_has_queue"):
        return False
    return not can("bulk_review") or bool(SS.get("rv_mine", True))


def save_position(store: Store, gid: int | None) -> None:
    """Where the reviewer is: URL (?g=) and DuckDB, so a reload or a new tab lands here."""
    if gid != SS.get("rv_gid"):
        SS["rv_error"] = None
    SS["rv_gid"] = gid
    if gid is None:
        st.query_params.pop("g", None)
    else:
        st.query_params["g"] = str(gid)
    set_user_state(store, STATE_KEY, {"filter": current_filter().to_dict(), "sort": SS.rv_sort,
                                      "seed": int(SS.rv_seed), "generation_id": gid, "mine": bool(SS.get("rv_mine", True))})


def cursor() -> rv.QueueCursor:
    f, sort, seed = current_filter(), SS.rv_sort, int(SS.rv_seed)
    cur = SS.get("rv_cursor")
    if cur is None or not cur.same_queue(f, sort, seed):
        cur = SS["rv_cursor"] = rv.QueueCursor(f, sort, seed)
    return cur


def on_filter_change(store: Store) -> None:
    """A new filter starts at the top of its queue."""
    SS["rv_panel"] = None
    save_position(store, cursor().next_after(store, None))


def go_next(store: Store, after: int | None) -> None:
    nxt = cursor().next_after(store, after)
    SS["rv_panel"] = None
    save_position(store, nxt)


def do_prev(store: Store, gid: int) -> None:
    f = current_filter()
    ids = rv.queue_window(store, f, SS.rv_sort, int(SS.rv_seed), gid, direction=-1, limit=1)
    if ids:
        SS["rv_panel"] = None
        save_position(store, ids[0])
    else:
        flash("This is the first example in the queue", "ℹ️")


def open_example(store: Store, gid: int) -> None:
    """Leave a table (agreement, queue list) for this example in the Review view."""
    SS.update({"rv_mode": "Review", "rv_panel": None})
    save_position(store, int(gid))


def open_panel(name: str) -> None:
    SS["rv_panel"] = None if SS.get("rv_panel") == name else name


# --------------------------------------------------------------------------- notices

def flash(message: str, icon: str = "✅", error: bool = False) -> None:
    SS["rv_flash"] = (message, icon)
    SS["rv_error"] = message if error else None


def show_flash() -> None:
    if SS.get("rv_flash"):
        msg, icon = SS.pop("rv_flash")
        st.toast(msg, icon=icon)


def show_notices() -> None:
    """The toast of the last action, and its error above the panel (said once)."""
    show_flash()
    if SS.get("rv_error"):
        st.error(SS.pop("rv_error"))
