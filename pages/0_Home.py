"""Shoal home: where the user is in the pipeline and what to do next."""
from pathlib import Path

import streamlit as st

from core.pipeline import pipeline_status
from ui.common import page_store

store = page_store()

st.title("🐟 Shoal")
st.write("Turn an ocean of raw code into a small, diverse, high-quality instruction-tuning dataset.")

steps = pipeline_status(store)
cols = st.columns(len(steps))
for col, step in zip(cols, steps):
    with col:
        st.metric(step["title"], f"{step['count']:,}", help=step["help"])
        st.caption("✅ done" if step["done"] else "⬜ to do")

next_step = next((s for s in steps if not s["done"]), None)
if next_step is None:
    st.success("Every stage has data. Export the accepted set from the Dataset page.")
else:
    st.info(f"**Next step:** {next_step['next']}")
    if Path(next_step["page"]).exists():
        st.page_link(next_step["page"], label=f"Go to {next_step['page_title']}", icon="➡️")
