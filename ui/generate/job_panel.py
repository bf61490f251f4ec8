"""The Generate page's job panel (top of the Run tab) and the Jobs tab: progress, controls,
pacing, provider batches, the newest examples with their verdicts, failures."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.errors import ShoalError
from core.generate import jobs as J
from core.pipeline import queued_jobs, running_job_ids
from core.store import Store
from ui.common import reviewer_name
from ui.generate.progress import batch_section, pacing_section
from ui.scroll import anchor, scroll_to
from ui.text import plain

POLL_S = 2.0            # progress and counts, while a job runs or waits
DETAILS_POLL_S = 10.0   # pacing, provider batches and (when asked for) the newest examples


def jobs_live(store: Store) -> bool:
    """A job runs or waits: the panel polls once a second (a still page costs nothing)."""
    return bool(running_job_ids(store) or queued_jobs(store))


def _verdict(row: dict) -> str:
    if row["review"]:
        return f"human: {row['review']}"
    if not row["parse_ok"]:
        return "unparseable"
    if not row["prefilter_ok"]:
        return "pre-filter: " + "; ".join(json.loads(row["prefilter_reasons"] or "[]"))
    if row["overall"] is None:
        return "not judged"
    return "judge: pass" if row["overall"] else "judge: fail"


def _job_status(store: Store, job_id: int, s: dict, alive: bool) -> str:
    if job_id in queued_jobs(store):
        return "queued after " + ", ".join(f"#{j}" for j in queued_jobs(store)[job_id])
    if J.is_interrupted(store, job_id):
        return "interrupted (the process stopped; resume to continue)"
    return "running" if alive and s["status"] in ("pending", "paused") else s["status"]


def _job_controls(store: Store, job_id: int, s: dict, alive: bool) -> None:
    items = s["items"]
    b = st.columns(4)
    me = reviewer_name()
    try:
        if b[0].button("Pause", disabled=not alive, key="gen.pause"):
            J.pause_job(store, job_id, actor=me)
        if b[1].button("Cancel", disabled=s["status"] in ("done", "cancelled"), key="gen.cancel"):
            J.cancel_job(store, job_id, actor=me)
        can_resume = not alive and job_id not in queued_jobs(store) and (items["pending"] + items["running"]) > 0
        if b[2].button("Resume", disabled=not can_resume, key="gen.resume"):
            J.start_worker(store, job_id, actor=me)
            st.rerun()   # a full run turns on the panel's 1 s polling (run_every is fixed per full run)
        if b[3].button("Retry failed", disabled=alive or items["failed"] == 0, key="gen.retry"):
            J.retry_failed(store, job_id, actor=me)
            J.start_worker(store, job_id, actor=me)
            st.rerun()
    except ShoalError as exc:
        st.error(plain(exc))


def _latest_examples(store: Store, job_id: int, s: dict) -> None:
    st.subheader("Latest examples")
    for row in J.latest_examples(store, job_id, limit=8):
        with st.expander(f"#{row['id']} · {row['task']} · {_verdict(row)}"):     # app words only (task, verdict, reason codes)
            fields = json.loads(row["fields"]) if row["fields"] else None
            if fields is None:
                st.text("Raw reply (did not parse):")
                st.code(row["raw_text"] or "", language=None, wrap_lines=True)
            else:
                for key, value in fields.items():
                    st.caption(plain(key))
                    st.code(str(value), language=None, wrap_lines=True)
            if row["rules"]:
                st.dataframe(pd.DataFrame(json.loads(row["rules"])), hide_index=True, width="stretch")
                st.text(f"Judge analysis: {row['analysis'] or ''}")
    failures = J.failed_items(store, job_id, limit=200)
    if failures or s["prefilter_reasons"]:
        st.subheader("Failures")
        if failures:
            st.dataframe(pd.DataFrame(failures), hide_index=True, width="stretch")
        if s["prefilter_reasons"]:
            st.caption("Stopped by the pre-filter (no judge call), by reason")
            st.dataframe(pd.DataFrame(s["prefilter_reasons"]), hide_index=True, width="stretch")


def _examples_section(store: Store, job_id: int, s: dict, alive: bool) -> None:
    """The newest examples and the failures. While the job runs here they are drawn only when asked for:
    this panel runs once a second in the process the job runs in, and drawing eight examples (code, rule
    tables) each time took CPU the job's own thread needed (a collapsed expander's content is drawn too)."""
    if alive and not st.toggle("Show the newest examples while it runs", key="gen.live_examples",
                               help=f"They refresh every {DETAILS_POLL_S:g} s while the job runs; off, the job runs faster."):
        return
    with st.expander("Latest examples and failures", expanded=True):
        _latest_examples(store, job_id, s)


def _panel_job(store: Store, jobs: list[dict]) -> int:
    """The job the panel shows: one just started, else the one picked, else the newest active."""
    ids = [j["id"] for j in jobs]
    if st.session_state.get("gen.show_job") in ids:      # a job just started: show it
        st.session_state["gen.panel_job"] = st.session_state.pop("gen.show_job")
    if st.session_state.get("gen.panel_job") not in ids:
        active = running_job_ids(store) + list(queued_jobs(store))
        st.session_state["gen.panel_job"] = max(active) if active else ids[0]
    names = {j["id"]: f"#{j['id']} {j['name'] or ''} · {j['task']}" for j in jobs}
    # the label leaves the status out: it changes while the job runs, and the progress bar shows it
    return st.selectbox("Job", ids, key="gen.panel_job", format_func=lambda i: names[i])


def _progress(store: Store, job_id: int, live: bool) -> None:
    """Progress and counts: what changes every second while the job runs (a small fragment, so that each
    refresh costs the job's process and the browser little)."""
    s = J.job_summary(store, job_id)
    items = s["items"]
    done = items["succeeded"] + items["failed"] + items["skipped"]
    alive = J.worker_alive(store, job_id)
    st.progress(done / max(1, s["n_items"]),
                text=f"Job #{job_id} · {_job_status(store, job_id, s, alive)} · {done}/{s['n_items']} items")
    k = st.columns(6)
    # "Generated", not "Succeeded": an item the generator answered is not yet a good example (the judge says)
    k[0].metric("Generated", items["succeeded"], help="Items the generator answered with a readable example. "
                "Whether an example is good is the judge's verdict (Judge passed).")
    k[1].metric("Failed", items["failed"])
    k[2].metric("Pending", items["pending"] + items["running"])
    k[3].metric("Judge passed", f"{s['judge_passed']} of {items['succeeded']}" if items["succeeded"] else s["judge_passed"],
                help="Examples the judge passed, of those generated.")
    k[4].metric("Pre-filter stopped", s["prefilter_rejected"])
    k[5].metric("LLM requests", s["usage"].get("calls", 0))
    st.caption(f"Spent ${s['usage'].get('cost_usd', 0):.4f} (at the models' prices)"
               + (f" · stopped: {s['stop_reason']}" if s.get("stop_reason") else ""))
    if live and not jobs_live(store):
        st.rerun()   # everything finished: one full run refreshes the page and stops the polling


def _details(store: Store, job_id: int) -> None:
    """Pacing, provider batches and the newest examples: refreshed every few seconds while the job runs."""
    s = J.job_summary(store, job_id)
    batch_section(store, job_id)
    pacing_section(store, job_id)
    _examples_section(store, job_id, s, J.worker_alive(store, job_id))


def job_panel(store: Store, live: bool) -> None:
    """The job picker and controls (drawn by full runs: starting, pausing or the end of a job makes one),
    with the progress polled every POLL_S and the details every DETAILS_POLL_S while a job runs or waits.
    The job runs in this process: a heavier or more frequent refresh slowed it (issue 20, bench_app_vs_cli)."""
    jobs = J.list_jobs(store, limit=50)
    if not jobs:
        return
    job_id = _panel_job(store, jobs)
    st.fragment(run_every=POLL_S if live else None)(_progress)(store, job_id, live)
    _job_controls(store, job_id, J.job_summary(store, job_id), J.worker_alive(store, job_id))
    st.fragment(run_every=DETAILS_POLL_S if live else None)(_details)(store, job_id)


def show_job_panel(store: Store) -> None:
    """The panel at the top of the Run tab, polling while a job runs or waits."""
    live = jobs_live(store)
    anchor("gen-job-panel")
    job_panel(store, live)
    if st.session_state.pop("gen.scroll_to_panel", False):
        scroll_to("gen-job-panel", nonce=str(st.session_state.get("gen.panel_job")))
    st.divider()


def jobs_table(store: Store) -> None:
    rows = J.list_jobs(store)
    if rows:
        frame = pd.DataFrame(rows)
        frame["status"] = [("interrupted" if i else s) for i, s in zip(frame["interrupted"], frame["status"])]
        st.dataframe(frame.drop(columns=["interrupted"]), hide_index=True, width="stretch")
    else:
        st.info("No jobs yet.")
