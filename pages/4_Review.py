"""Review: one example at a time, judge reasoning beside the code; accept / reject / edit fast; bulk; agreement.

Every decision is written to DuckDB (core.review) inside the button callback, before the page
moves on; the page only keeps what it is showing (the example id and the review version it was
loaded at, so a save over someone else's newer verdict is refused).

In a team, each reviewer's position and filters are their own (ui_state keyed by reviewer), their
queue holds the examples assigned to them, other reviewers' verdicts on an overlap example stay
hidden until they have given theirs (blind), and adjudicators resolve conflicts in "Conflicts".

The parts live in ui/review_*.py: state (filter, position, notices), queue (sidebar filters,
counts, list), item (one example), decisions (action bar, reject form), edit, bulk, agreement,
conflicts.
"""
from __future__ import annotations

import streamlit as st

from ui.common import can, page_store
from ui.persist import PERSIST
from ui.review.agreement import agreement_panel, people_panel
from ui.review.bulk import bulk_panel
from ui.review.conflicts import conflicts_panel
from ui.review.item import review_panel
from ui.review.queue import queue_sidebar, watch_for_new_examples
from ui.review.state import SS, has_queue, init_state

store = page_store()

init_state(store)
SS["rv_has_queue"] = has_queue(store)
queue_sidebar(store)

st.title("Review")
modes = ["Review"] + (["Bulk"] if can("bulk_review") else []) + ["Agreement"] + (
    ["Conflicts"] if can("adjudicate") else [])
if SS.get("rv_mode") not in modes:
    SS["rv_mode"] = "Review"
mode = st.segmented_control("View", modes, key="rv_mode", **PERSIST, required=True, label_visibility="collapsed")
if mode == "Bulk":
    bulk_panel(store)
elif mode == "Agreement":
    agreement_panel(store)
    if can("adjudicate"):
        people_panel(store)
elif mode == "Conflicts":
    conflicts_panel(store)
else:
    review_panel(store)
watch_for_new_examples(store)
