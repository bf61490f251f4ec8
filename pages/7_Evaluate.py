"""Evaluate: pass@1 (and pass@k) of a model on HumanEval, MBPP or the held-out split of your set, every
sample run in the sandbox; the runs with their 95 % intervals, and whether two runs really differ."""
from __future__ import annotations

import streamlit as st

from core import evaluate as ev
from ui.common import can, page_store
from ui.evaluate.view import comparison, runs_table, start_form

store = page_store()
st.title("Evaluate")
st.caption("Does a model (or a fine-tune on your set) solve code problems? Every sample is executed in the "
           "sandbox against the benchmark's tests; pass@1 comes with a 95% bootstrap interval. Same as "
           "`shoal eval --benchmark humaneval --limit 20`.")

start_form(store, can("jobs"))

st.subheader("Runs")
runs = ev.list_runs(store)
if not runs:
    st.info("No evaluation yet: start one above, or run `shoal eval --benchmark humaneval --limit 20`.")
else:
    runs_table(runs)
    if len(runs) >= 2:
        st.subheader("Compare two runs")
        comparison(store, runs)
