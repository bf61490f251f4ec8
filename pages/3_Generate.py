"""Generate: pick snippets, tasks and models, edit prompts, start a job and watch examples arrive."""
from __future__ import annotations

import streamlit as st

from ui.common import page_store, require_page
from ui.generate.form import run_form, run_tab
from ui.generate.job_panel import jobs_table, show_job_panel
from ui.generate.prompts import prompts_tab

store = page_store()
require_page("generate")   # prompts and jobs: owner or curator (a reviewer sees why, nothing else)
st.title("Generate and judge")
st.caption("A generator model writes one instruction example per snippet and task; a judge model checks it "
           "rule by rule. Examples that pass the judge (and those you accept later) become few-shot examples "
           "for the next prompts.")

form = run_form(store)      # the form's fields, restored before any widget is drawn
run, prompts, jobs = st.tabs(["Run", "Prompts", "Jobs"])
with run:
    show_job_panel(store)   # the running (or last) job: progress, pacing, batches, examples
    choice = run_tab(form)  # snippets, tasks, Models panel, limits, batch mode, estimate, Start
with prompts:
    prompts_tab(store, choice.snippet_ids, choice.targets,
                (choice.profiles["generator"].model, choice.profiles["judge"].model))
with jobs:
    jobs_table(store)
