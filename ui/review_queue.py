"""The Review queue: its filters (sidebar), its counts (the header line), the list of what comes
next, and the refresh while new examples arrive."""
from __future__ import annotations

import streamlit as st

from core import review as rv
from core.store import Store
from ui.common import can
from ui.persist import PERSIST
from ui.review_state import SS, cursor, on_filter_change, options, save_position


def queue_sidebar(store: Store) -> None:
    """The queue's filters and sort; any change starts at the top of the new queue."""
    opts = options(store, str(store.path))
    change = {"on_change": on_filter_change, "args": (store,)}
    with st.sidebar:
        st.subheader("Review queue")
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
