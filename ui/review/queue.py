"""The Review queue: its filters (sidebar), saved named views of them, its counts (the header line),
the list of what comes next, and the refresh while new examples arrive.

Saved views (core.review.views): picking one writes every filter widget's Session State key in the
picker's on_change callback, before the widgets are drawn again, and starts at the top of that
queue (`on_filter_change`); what no longer exists (a deleted selection, a cluster of a replaced
map) is left out and said. Saving and deleting happen in callbacks too; a refusal (a name taken,
someone else's shared view) is said above the picker."""
from __future__ import annotations

import streamlit as st

from core import review as rv
from core.errors import ShoalError
from core.store import Store
from ui.common import can, reviewer_name
from ui.persist import PERSIST, keep
from ui.review.state import SS, current_filter, cursor, flash, on_filter_change, options, save_position
from ui.text import plain

_VIEW_ERROR = "rv_view_error"        # a refused save / delete / pick, said once above the picker
_VIEW_NOTE = "rv_view_note"          # what a picked view left out, said once
_VIEW_APPLIED = "rv_view_applied"    # (view id, filter, sort, seed) as the view was applied or saved


def queue_sidebar(store: Store) -> None:
    """The queue's filters and sort; any change starts at the top of the new queue."""
    opts = options(store, str(store.path))
    change = {"on_change": on_filter_change, "args": (store,)}
    with st.sidebar:
        st.subheader("Review queue")
        saved_views(store)
        if SS.rv_has_queue and can("bulk_review"):
            st.toggle("Only my assigned examples", key="rv_mine", **PERSIST, **change)
        st.multiselect("Task", opts["tasks"], key="rv_tasks", **PERSIST, **change)
        st.multiselect("Language", opts["languages"], key="rv_langs", **PERSIST, **change)
        clusters = {c["cluster"]: c["label"] for c in opts["clusters"]}
        SS["rv_clusters"] = [c for c in SS.rv_clusters if c in clusters]
        st.multiselect("Cluster (latest map)", list(clusters), key="rv_clusters", **PERSIST, **change,
                       format_func=lambda c: f"{c} · {clusters.get(c) or ''}", disabled=not clusters)
        sels = {s["id"]: s["name"] for s in opts["selections"]}
        if SS.rv_selection not in sels:
            SS["rv_selection"] = 0
        st.selectbox("Selection", [0, *sels], key="rv_selection", **PERSIST, **change,
                     format_func=lambda i: sels.get(i, "all snippets"))
        st.selectbox("Judge verdict", rv.JUDGE_CHOICES, key="rv_judge", **PERSIST, **change)
        if SS.rv_rule not in opts["rules"]:
            SS["rv_rule"] = ""
        st.selectbox("Judge rule", ["", *opts["rules"]], key="rv_rule", **PERSIST, **change,
                     format_func=lambda r: r or "any rule")
        if SS.rv_rule:
            st.radio("…answered", ["no", "yes"], key="rv_rule_answer", **PERSIST, horizontal=True, **change)
        st.selectbox("Review status", rv.STATUS_CHOICES, key="rv_status", **PERSIST, **change,
                     format_func=lambda s: {"todo": "to do (not accepted/rejected)"}.get(s, s))
        if SS.rv_reviewer_filter not in opts["reviewers"]:
            SS["rv_reviewer_filter"] = ""
        st.selectbox("Reviewer", ["", *opts["reviewers"]], key="rv_reviewer_filter", **PERSIST, **change,
                     format_func=lambda r: r or "anyone")
        st.text_input("Search text (or #id)", key="rv_search", **PERSIST, **change)
        st.selectbox("Sort", list(rv.SORTS), key="rv_sort", **PERSIST, format_func=rv.SORTS.get, **change)
        if SS.rv_sort == "random":
            st.number_input("Random seed", min_value=0, step=1, key="rv_seed", **PERSIST, **change)


# --------------------------------------------------------------------------- saved views

def _view_state() -> tuple[dict, str, int]:
    """What a view keeps of the sidebar now: the filter (without "only my assigned"), sort and seed."""
    return current_filter().with_(assigned_to=None).to_dict(), SS.rv_sort, int(SS.rv_seed)


def _apply_view(store: Store) -> None:
    """The picker's callback: every filter widget set from the view, then the top of its queue."""
    vid = SS.get("rv_view") or 0
    if not vid:
        SS[_VIEW_APPLIED] = None
        return
    try:
        view = rv.visible_view(store, vid, reviewer_name())
    except ShoalError as exc:
        SS[_VIEW_ERROR], SS["rv_view"], SS[_VIEW_APPLIED] = str(exc), 0, None
        return
    f, dropped = rv.resolve_view(store, view, options(store, str(store.path)))
    SS.update({
        "rv_tasks": list(f.tasks), "rv_langs": list(f.languages), "rv_clusters": list(f.clusters),
        "rv_selection": f.selection_id or 0, "rv_judge": f.judge, "rv_rule": f.rule or "",
        "rv_rule_answer": f.rule_answer, "rv_status": f.status, "rv_reviewer_filter": f.reviewer or "",
        "rv_search": f.search, "rv_sort": view["sort"], "rv_seed": int(view["seed"]),
    })
    SS[_VIEW_APPLIED] = (int(vid), *_view_state())
    on_filter_change(store)
    if dropped:
        SS[_VIEW_NOTE] = f"The view \"{view['name']}\" was applied without " + "; ".join(dropped) + "."
    flash(f"Applied the view {plain(view['name'])}", "🔖")


def _save_view(store: Store) -> None:
    """The save form's callback (the button, or Enter in the name): saved and picked; a refusal said."""
    try:
        view = rv.save_view(store, SS.get("rv_view_name") or "", current_filter(), SS.rv_sort, seed=int(SS.rv_seed),
                            actor=reviewer_name(), shared=bool(SS.get("rv_view_shared")),
                            replace=bool(SS.get("rv_view_replace")))
    except ShoalError as exc:
        SS[_VIEW_ERROR] = str(exc)
        return
    SS["rv_view"] = int(view["id"])
    SS[_VIEW_APPLIED] = (int(view["id"]), *_view_state())
    SS.update({"rv_view_name": "", "rv_view_shared": False, "rv_view_replace": False})
    flash(f"Saved the view {plain(view['name'])}" + (" for the team" if view["shared"] else ""), "🔖")


def _delete_view(store: Store) -> None:
    try:
        view = rv.delete_view(store, SS.get("rv_view") or 0, actor=reviewer_name())
    except ShoalError as exc:
        SS[_VIEW_ERROR] = str(exc)
        return
    SS["rv_view"], SS[_VIEW_APPLIED] = 0, None
    flash(f"Deleted the view {plain(view['name'])}", "🗑️")


def saved_views(store: Store) -> None:
    """The "Saved view" picker (the reviewer's own views, then the team's shared ones), a Delete
    button for a picked view they may delete, and the "Save this view" form."""
    me = reviewer_name()
    keep({"rv_view": 0})
    try:
        views = {int(v["id"]): v for v in rv.list_views(store, me)}
    except ShoalError:                           # no reviewer name yet: nothing to list
        views = {}
    if SS.get("rv_view") not in views:
        SS["rv_view"] = 0
    error, note = SS.pop(_VIEW_ERROR, None), SS.pop(_VIEW_NOTE, None)
    if error:
        st.error(plain(error))
    if note:
        st.warning(plain(note))
    st.selectbox("Saved view", [0, *views], key="rv_view", **PERSIST, on_change=_apply_view, args=(store,),
                 format_func=lambda i: rv.view_label(views[i], str(me)) if i in views else "— none —",
                 help="Pick a view to apply all of its filters and its sort at once.")
    picked = views.get(SS.rv_view)
    if picked is not None:
        applied = SS.get(_VIEW_APPLIED)
        if applied and applied[0] == picked["id"] and tuple(applied[1:]) != _view_state():
            st.caption("The filters have changed since this view was picked.")
            st.button("Apply the view again", key="rv_view_reapply", type="tertiary", on_click=_apply_view,
                      args=(store,))
        if picked["owner"] == str(me) or (picked["shared"] and can("bulk_review")):
            st.button("Delete this view", key="rv_view_delete", icon=":material/delete:", type="tertiary",
                      on_click=_delete_view, args=(store,))
    with st.expander("Save this view"):
        # not clear_on_submit: a refused name stays in the box; `_save_view` empties it once saved
        with st.form("rv_view_form", border=False):
            st.text_input("Name", key="rv_view_name", max_chars=rv.MAX_VIEW_NAME,
                          placeholder="e.g. failed repairs in Python")
            st.checkbox("Share with the team", key="rv_view_shared",
                        help="Every member sees a shared view; only you, a curator or the owner may change or "
                             "delete it.")
            st.checkbox("Replace the view of that name", key="rv_view_replace")
            st.form_submit_button("Save", on_click=_save_view, args=(store,))


def draw_counts(store: Store, slot, f: rv.QueueFilter, gid: int | None) -> None:
    """Counts for the current filter; drawn last into a slot at the top so the example shows first."""
    c = cursor().summary(store, gid)          # kept in step, not recounted (core.review.counts)
    pos = f"{c['position']} of {c['in_filter']}" if c["position"] else f"– of {c['in_filter']}"
    slot.markdown(
        f"**Queue** {pos} · to do {c['todo']} · accepted {c['accepted']} · rejected {c['rejected']} · "
        f"skipped {c['skipped']} · edited {c['edited']} · judge pass {c['judge_passed']} / fail "
        f"{c['judge_failed']} / not judged {c['unjudged']}")


def jump_to(store: Store, ids: list[int]) -> None:
    state = SS.get("rv_list_table")
    rows = list(state["selection"]["rows"]) if state else []
    if rows and rows[0] < len(ids):
        SS["rv_panel"] = None
        save_position(store, ids[rows[0]])


def draw_queue_list(store: Store, f: rv.QueueFilter, gid: int) -> None:
    """The next examples in queue order (keyset from the current one); click a row to open it."""
    ids = [gid] + rv.queue_window(store, f, SS.rv_sort, int(SS.rv_seed), gid, 1, 49)
    df = rv.queue_rows(store, ids)
    st.dataframe(df, hide_index=True, key="rv_list_table", on_select=lambda: jump_to(store, ids),
                 selection_mode="single-row", width="stretch")


@st.fragment(run_every=3.0)
def watch_for_new_examples(store: Store) -> None:
    """Another tab (or a job) adds examples: refresh the page so the queue and its counts show them.
    Waits while a reject note or an edit is open, so nothing typed is disturbed."""
    n = rv.generation_count(store)
    seen = SS.get("rv_seen_generations")
    SS["rv_seen_generations"] = n
    if seen is not None and n != seen and not SS.get("rv_panel"):
        st.rerun()
