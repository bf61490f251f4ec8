"""Shoal home: where the user is in the pipeline, what is running now, and what to do next."""
import streamlit as st

from core.pipeline import next_step, pipeline_status, running_work
from ui.common import next_step_box, page_store
from ui.text import plain

store = page_store()

st.title("🐟 Shoal")
st.write("Turn an ocean of raw code into a small, diverse, high-quality instruction-tuning dataset.")

STATE = {"running": "⏳ running", "done": "✅ done", "to do": "⬜ to do", "stale": "⚠️ out of date"}


def stages() -> None:
    steps = pipeline_status(store)
    for col, step in zip(st.columns(len(steps)), steps):
        with col:
            st.metric(step["title"], f"{step['count']:,}", help=step["help"])
            st.caption(STATE[step["state"]])
    work = running_work(store)
    if work:
        st.info("**Running now:** " + " · ".join(plain(w.text) for w in work))
    next_step_box(next_step(steps))
    if LIVE and not work:
        st.rerun()      # everything finished: a full run stops the polling


LIVE = bool(running_work(store))
st.fragment(run_every=2.0 if LIVE else None)(stages)()
