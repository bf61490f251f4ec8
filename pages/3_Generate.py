"""Generate: pick snippets, tasks and models, edit prompts, start a job and watch examples arrive."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import jobs as J
from core.config import Profile, load_profiles, with_model_names
from core.errors import ShoalError
from core.generate import (PoolConfig, PoolSnapshot, Pools, build_generator_messages, current_prompt_version,
                           few_shot, get_prompt_version, list_prompt_versions, save_prompt_version)
from core.local_llm import RECOMMENDED_CONCURRENCY
from core.pipeline import jobs_on_endpoint, queued_jobs, running_job_ids, start_after
from core.snippets import (count_snippets, first_snippet_ids, get_snippet, preview_snippet_ids,
                           selection_names, selection_snippet_ids)
from core.tasks import DEFAULT_MIX, TASKS, get_task
from ui.common import page_store, require_page, reviewer_name
from ui.persist import Form
from ui.scroll import anchor, scroll_to
from ui.text import plain, real_model_help

store = page_store()
require_page("generate")   # prompts and jobs: owner or curator (a reviewer sees why, nothing else)
st.title("Generate and judge")
st.caption("A generator model writes one instruction example per snippet and task; a judge model checks it "
           "rule by rule. Examples that pass the judge (and those you accept later) become few-shot examples "
           "for the next prompts.")

LOCAL_URL = "(embedded local model)"
QUEUE, PARALLEL = "Queue it after the running job", "Run both at the same time"
try:
    BASE_PROFILES = load_profiles(start_local=False)
except ShoalError as exc:
    st.error(str(exc))
    st.stop()

# --------------------------------------------------------------------------- the form, kept across reloads

selections = selection_names(store)
SOURCES = (["Selection"] if selections else []) + ["OSS-Instruct seeds", "All snippets"]
form = Form(store, "generate", reviewer_name(), {
    "gen.source": SOURCES[0], "gen.selection": selections[0] if selections else "",
    "gen.mode": "CodeOcean mix", "gen.task": next(iter(TASKS)), "gen.limit": 20,
    **{f"gen.mix.{t}": float(share) for t, share in DEFAULT_MIX.items()},
    "gen.targets": ["java", "go"], "gen.seeds_only": False,
    **{f"gen.{role}.base_url_in": prof.base_url or LOCAL_URL for role, prof in BASE_PROFILES.items()},
    **{f"gen.{role}.model_in": prof.model for role, prof in BASE_PROFILES.items()},
    "gen.concurrency": 8, "gen.max_calls": 0, "gen.max_cost": 0.0,
    "gen.pool_good": 2, "gen.pool_bad": 1, "gen.pool_seed": 0, "gen.pool_refresh": 50,
    "gen.when_busy": QUEUE,
})
form.allow("gen.source", SOURCES)
form.allow("gen.selection", selections)
form.allow("gen.mode", ["CodeOcean mix", "One task"])
form.allow("gen.task", list(TASKS))
form.allow("gen.targets", J.DEFAULT_TARGETS)
form.allow("gen.when_busy", [QUEUE, PARALLEL])
form.restore()


def current_profiles() -> dict[str, Profile]:
    """The profiles as the Models fields show them now."""
    out = {}
    for role, prof in BASE_PROFILES.items():
        url_in = str(st.session_state.get(f"gen.{role}.base_url_in", "")).strip()
        url = "" if url_in.startswith("(") else url_in
        data = prof.model_dump()
        data.update(base_url=url, model=str(st.session_state.get(f"gen.{role}.model_in", prof.model)).strip())
        if url != prof.base_url:
            data["source"] = "explicit"   # typed on the page: not the embedded model any more
        out[role] = Profile(**data)   # model_dump keeps an implicit key variable implicit
    return out


def uses_local_model(profiles: dict[str, Profile]) -> bool:
    return any(p.source == "local" for p in profiles.values())


def ensure_endpoints(profiles: dict[str, Profile]) -> dict[str, Profile]:
    """Start the embedded local model when no endpoint is configured (a profile with no base URL)."""
    if all(p.base_url for p in profiles.values()):
        return profiles
    with st.spinner("Starting the embedded local model (first start can take a minute)…"):
        started = load_profiles(start_local=True)
    return {r: (p if p.base_url else started[r]) for r, p in profiles.items()}


def snippet_source_ids(source: str, selection: str | None, limit: int) -> list[str]:
    if source == "Selection" and selection:
        return selection_snippet_ids(store, selection, limit)
    return first_snippet_ids(store, limit, seeds_only=source == "OSS-Instruct seeds")


run_tab, prompts_tab, jobs_tab = st.tabs(["Run", "Prompts", "Jobs"])


# --------------------------------------------------------------------------- the job panel (top of Run)

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


def _job_status(job_id: int, s: dict, alive: bool) -> str:
    if job_id in queued_jobs(store):
        return "queued after " + ", ".join(f"#{j}" for j in queued_jobs(store)[job_id])
    if J.is_interrupted(store, job_id):
        return "interrupted (the process stopped; resume to continue)"
    return "running" if alive and s["status"] in ("pending", "paused") else s["status"]


def _job_controls(job_id: int, s: dict, alive: bool) -> None:
    items = s["items"]
    b = st.columns(4)
    if b[0].button("Pause", disabled=not alive, key="gen.pause"):
        J.pause_job(store, job_id)
    if b[1].button("Cancel", disabled=s["status"] in ("done", "cancelled"), key="gen.cancel"):
        J.cancel_job(store, job_id)
    can_resume = not alive and job_id not in queued_jobs(store) and (items["pending"] + items["running"]) > 0
    if b[2].button("Resume", disabled=not can_resume, key="gen.resume"):
        try:
            J.start_worker(store, job_id)
        except ShoalError as exc:
            st.error(str(exc))
        else:
            st.rerun()   # a full run turns on the panel's 1 s polling (run_every is fixed per full run)
    if b[3].button("Retry failed", disabled=alive or items["failed"] == 0, key="gen.retry"):
        J.retry_failed(store, job_id)
        J.start_worker(store, job_id)
        st.rerun()


def _latest_examples(job_id: int, s: dict) -> None:
    st.subheader("Latest examples")
    for row in J.latest_examples(store, job_id, limit=8):
        with st.expander(f"#{row['id']} · {row['task']} · {_verdict(row)}"):
            fields = json.loads(row["fields"]) if row["fields"] else None
            if fields is None:
                st.text("Raw reply (did not parse):")
                st.code(row["raw_text"] or "", language=None)
            else:
                for key, value in fields.items():
                    st.caption(key)
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


def job_panel() -> None:
    jobs = J.list_jobs(store, limit=50)
    if not jobs:
        return
    ids = [j["id"] for j in jobs]
    if st.session_state.get("gen.show_job") in ids:      # a job just started: show it
        st.session_state["gen.panel_job"] = st.session_state.pop("gen.show_job")
    if st.session_state.get("gen.panel_job") not in ids:
        active = running_job_ids(store) + list(queued_jobs(store))
        st.session_state["gen.panel_job"] = max(active) if active else ids[0]
    names = {j["id"]: f"#{j['id']} {j['name'] or ''} · {j['task']}" for j in jobs}
    # the label leaves the status out: it changes while the job runs, and the progress bar shows it
    job_id = st.selectbox("Job", ids, key="gen.panel_job", format_func=lambda i: names[i])
    s = J.job_summary(store, job_id)
    items = s["items"]
    done = items["succeeded"] + items["failed"] + items["skipped"]
    alive = J.worker_alive(store, job_id)
    st.progress(done / max(1, s["n_items"]),
                text=f"Job #{job_id} · {_job_status(job_id, s, alive)} · {done}/{s['n_items']} items")
    k = st.columns(6)
    k[0].metric("Succeeded", items["succeeded"])
    k[1].metric("Failed", items["failed"])
    k[2].metric("Pending", items["pending"] + items["running"])
    k[3].metric("Judge passed", s["judge_passed"])
    k[4].metric("Pre-filter stopped", s["prefilter_rejected"])
    k[5].metric("LLM requests", s["usage"].get("calls", 0))
    st.caption(f"Spent ${s['usage'].get('cost_usd', 0):.4f} (estimated from the price table)"
               + (f" · stopped: {s['stop_reason']}" if s.get("stop_reason") else ""))
    _job_controls(job_id, s, alive)
    with st.expander("Latest examples and failures", expanded=not alive):
        _latest_examples(job_id, s)
    if _LIVE and not (running_job_ids(store) or queued_jobs(store)):
        st.rerun()   # everything finished: one full run refreshes the page and stops the polling


# Poll once a second while a job runs or waits; a still page costs nothing.
_LIVE = bool(running_job_ids(store) or queued_jobs(store))

with run_tab:
    anchor("gen-job-panel")
    st.fragment(run_every=1.0 if _LIVE else None)(job_panel)()
    if st.session_state.pop("gen.scroll_to_panel", False):
        scroll_to("gen-job-panel", nonce=str(st.session_state.get("gen.panel_job")))
    st.divider()


# --------------------------------------------------------------------------- Run tab: the form

def models_expander(local: bool) -> None:
    with st.expander("Models", expanded=False):
        for role in BASE_PROFILES:
            mc1, mc2, mc3 = st.columns([3, 2, 1])
            mc1.text_input(f"{role} base URL", key=f"gen.{role}.base_url_in",
                           help="Set SHOAL_GENERATOR_BASE_URL / SHOAL_JUDGE_BASE_URL (or OPENAI_BASE_URL) to change "
                                "the default; keys come from the environment or .streamlit/secrets.toml.")
            mc2.text_input(f"{role} model", key=f"gen.{role}.model_in",
                           help="Empty: the first model the server lists (asked when the job starts).")
            if mc3.button("Test connection", key=f"gen.{role}.test"):
                test_connection(role)
        if local:
            st.info(real_model_help())


def test_connection(role: str) -> None:
    from core.llm import LLMClient
    try:
        prof_now = ensure_endpoints(current_profiles())[role]
        client = LLMClient(store, prof_now)
        try:
            with st.spinner("Calling the server…"):
                result = client.test_connection()
        finally:
            client.close()
    except ShoalError as exc:
        result = {"ok": False, "error": str(exc)}
    (st.success if result.get("ok") else st.error)(f"{role}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


def limits_expander(local: bool) -> None:
    with st.expander("Concurrency, budget and few-shot pools", expanded=False):
        b1, b2, b3 = st.columns(3)
        b1.number_input("Concurrency (items in flight)", 1, 256, key="gen.concurrency", disabled=local,
                        help=(f"The embedded model answers one request at a time: its jobs run at concurrency "
                              f"{RECOMMENDED_CONCURRENCY}." if local else None))
        b2.number_input("Max calls (0 = no cap)", 0, 10_000_000, key="gen.max_calls")
        b3.number_input("Max cost USD (0 = no cap)", 0.0, 100_000.0, key="gen.max_cost")
        p1, p2, p3, p4 = st.columns(4)
        p1.number_input("Good examples per prompt", 0, 10, key="gen.pool_good")
        p2.number_input("Bad examples per prompt", 0, 10, key="gen.pool_bad")
        p3.number_input("Sampling seed", 0, 1_000_000, key="gen.pool_seed")
        p4.number_input("Refresh pools every N items", 1, 100_000, key="gen.pool_refresh",
                        help="Later items see the examples judged (or reviewed) before them.")


def start_job(snippet_ids: list[str], task, mix, targets, source: str, selection: str | None, local: bool) -> None:
    """Create the job for what the form shows; run it now, or queue it behind a job on the same server."""
    v = st.session_state
    profiles = with_model_names(ensure_endpoints(current_profiles()))
    concurrency = RECOMMENDED_CONCURRENCY if local else int(v["gen.concurrency"])
    busy = jobs_on_endpoint(store, profiles)
    job_id = J.create_job(store, snippet_ids, profiles=profiles, task=task, mix=mix, target_languages=targets,
                          concurrency=concurrency, max_calls=int(v["gen.max_calls"]) or None,
                          max_cost=float(v["gen.max_cost"]) or None, seeds_only=bool(v["gen.seeds_only"]),
                          pool=PoolConfig(good=int(v["gen.pool_good"]), bad=int(v["gen.pool_bad"]),
                                          seed=int(v["gen.pool_seed"]), refresh_every=int(v["gen.pool_refresh"])),
                          name=f"{source}{(': ' + selection) if selection else ''}", source=f"page:{source}")
    if busy and v["gen.when_busy"] == QUEUE:
        start_after(store, job_id, busy)
        v["gen.flash"] = f"Job {job_id} queued: it starts when job " + ", ".join(f"#{j}" for j in busy) + " ends."
    else:
        J.start_worker(store, job_id)
        v["gen.flash"] = f"Job {job_id} started."
    v["gen.show_job"] = job_id        # applied before the panel's picker is drawn (next run)
    v["gen.scroll_to_panel"] = True


with run_tab:
    profiles_now = current_profiles()
    local = uses_local_model(profiles_now)
    if local:
        st.warning("**The embedded local model only demonstrates the flow.** It is a 135M-parameter model on "
                   "the CPU: its examples are weak, its judge passes almost nothing, and a job of 20 items takes "
                   "minutes. Use a real model (Models below) for a dataset you mean to train on.")
    if "gen.flash" in st.session_state:
        st.success(st.session_state.pop("gen.flash"))
    n_snippets = count_snippets(store)
    if n_snippets == 0:
        st.info("No snippets yet: add a corpus (or the built-in demo) on the Corpus page first.")
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        source = st.radio("Snippets", SOURCES, key="gen.source", horizontal=True)
        selection = st.selectbox("Selection", selections, key="gen.selection") if source == "Selection" else None
    with c2:
        mode = st.radio("Tasks", ["CodeOcean mix", "One task"], key="gen.mode", horizontal=True)
        task = st.selectbox("Task", list(TASKS), key="gen.task",
                            format_func=lambda t: get_task(t).title) if mode == "One task" else None
    with c3:
        limit = st.number_input("At most", 1, 100_000, key="gen.limit", help="Snippets to use.")
    mix = None
    if mode != "One task":
        st.caption("Task shares (CodeOcean: 57% generation, 16% summarization, 16% repair, 11% translation); "
                   "tasks are assigned to snippets deterministically.")
        mix = {t: col.number_input(get_task(t).title, 0.0, 1.0, step=0.01, key=f"gen.mix.{t}")
               for col, t in zip(st.columns(len(DEFAULT_MIX)), DEFAULT_MIX)}
    targets = st.multiselect("Target languages (code translation)", J.DEFAULT_TARGETS, key="gen.targets")
    seeds_only = st.checkbox("Only OSS-Instruct seeds (kind = seed)", key="gen.seeds_only",
                             disabled=not (task and get_task(task).prefers_seeds))
    models_expander(local)
    limits_expander(local)
    form.save()

    snippet_ids = snippet_source_ids(source, selection, int(limit)) if n_snippets else []
    plan = None
    if snippet_ids:
        profiles = current_profiles()
        try:
            plan = J.plan_items(store, snippet_ids, task=task, mix=mix, target_languages=targets,
                                generator_model=profiles["generator"].model, judge_model=profiles["judge"].model,
                                seeds_only=seeds_only)
            est = J.estimate_cost(store, plan, profiles)
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Items", plan.n_items)
            m2.metric("LLM calls (before retries)", est["calls"])
            m3.metric("Tokens (upper bound)", f"{est['prompt_tokens'] + est['completion_tokens']:,}")
            m4.metric("Estimated cost", f"${est['cost_usd']:.4f}")
            st.caption("Tasks: " + ", ".join(f"{t} {n}" for t, n in plan.task_counts().items()))
        except ShoalError as exc:
            st.warning(str(exc))
    busy_now = jobs_on_endpoint(store, profiles_now)
    if busy_now:
        st.warning("Job " + ", ".join(f"#{j}" for j in busy_now) + " is running on this server. A second job "
                   "would share it (and slow both down).")
        st.radio("When you start another job", [QUEUE, PARALLEL], key="gen.when_busy", horizontal=True)
    what = f"{plan.n_items} items from " + (f"selection “{selection}”" if selection else source.lower()) if plan else ""
    if st.button("Start job", type="primary", disabled=plan is None, key="gen.start",
                 help=f"Starts {what}." if what else None):
        try:
            start_job(snippet_ids, task, mix, targets, source, selection, local)
        except ShoalError as exc:
            st.error(plain(exc))
        else:
            st.rerun()   # the panel at the top shows the new job, polling from this run on


# --------------------------------------------------------------------------- Prompts tab

def prompt_editor(ptask: str, pv) -> dict:
    c = pv.content
    kp = f"gen.edit.{pv.id}"
    definition = st.text_area("Task definition", c["definition"], key=f"{kp}.definition", height=120)
    requirements = st.text_area("Requirements (one per line)", "\n".join(c["requirements"]), key=f"{kp}.req",
                                height=160)
    rules = st.text_area("Judge rules (one per line)", "\n".join(c["rules"]), key=f"{kp}.rules", height=160)
    with st.expander("Templates (Jinja2; the snippet is passed as data and fenced, never parsed as template)"):
        gen_tpl = st.text_area("Generator template", c["generator_template"], key=f"{kp}.gen_tpl", height=300)
        judge_tpl = st.text_area("Judge template", c["judge_template"], key=f"{kp}.judge_tpl", height=300)
    edited = dict(c, definition=definition.strip(),
                  requirements=[x.strip() for x in requirements.splitlines() if x.strip()],
                  rules=[x.strip() for x in rules.splitlines() if x.strip()],
                  generator_template=gen_tpl, judge_template=judge_tpl)
    note = st.text_input("Note for this version", key=f"{kp}.note")
    if st.button("Save as new version", key=f"{kp}.save", disabled=edited == c,
                 help="Enabled once the text differs from the version shown."):
        try:
            saved = save_prompt_version(store, ptask, edited, note=note or None)
        except ShoalError as exc:
            st.error(plain(exc))
        else:
            # show the saved version at once: the picker moves to it, and Save waits for the next change
            st.session_state["gen.prompt_version_next"] = (ptask, saved.id)
            st.session_state["gen.prompt_flash"] = f"Saved {ptask} v{saved.version}; new jobs use it."
            st.rerun()
    return edited


def prompt_preview(ptask: str, edited: dict, snippet_ids: list[str], targets: list[str]) -> None:
    st.subheader("Preview: the exact generator prompt for one snippet")
    preview_ids = snippet_ids[:50] if snippet_ids else preview_snippet_ids(
        store, seeds_first=get_task(ptask).prefers_seeds)
    sample = None
    if preview_ids:
        pid = st.selectbox("Snippet", preview_ids, key="gen.preview_snippet")
        sample = get_snippet(store, pid)
    if sample is None:
        st.info("Ingest snippets to see a preview.")
        return
    spec = get_task(ptask)
    cfg = PoolConfig(good=int(st.session_state.get("gen.pool_good", 2)),
                     bad=int(st.session_state.get("gen.pool_bad", 1)))
    try:
        good, bad = few_shot(edited, Pools.load(store, ptask, PoolSnapshot.take(store)), cfg, sample["id"])
        target = (targets[0] if targets else "java") if spec.needs_target_language else None
        for m in build_generator_messages(spec, edited, sample, target, good, bad):
            st.caption(m["role"])
            st.code(m["content"], language=None, wrap_lines=True)
    except Exception as exc:   # a template being edited may not render yet
        st.warning(f"The template does not render: {exc}")


with prompts_tab:
    ptask = st.selectbox("Task", list(TASKS), key="gen.prompt_task", format_func=lambda t: get_task(t).title)
    current = current_prompt_version(store, ptask)
    versions = list_prompt_versions(store, ptask)
    if st.session_state.get("gen.prompt_version_next", ("",))[0] == ptask:   # just saved: show that version
        st.session_state[f"gen.prompt_version.{ptask}"] = st.session_state.pop("gen.prompt_version_next")[1]
    vid = st.selectbox("Version", [v["id"] for v in versions], key=f"gen.prompt_version.{ptask}",
                       format_func=lambda i: next(f"v{v['version']}" + (f" · {v['note']}" if v["note"] else "")
                                                  + (" (current)" if v["id"] == current.id else "")
                                                  for v in versions if v["id"] == i))
    if "gen.prompt_flash" in st.session_state:
        st.success(st.session_state.pop("gen.prompt_flash"))
    edited_content = prompt_editor(ptask, get_prompt_version(store, vid))
    prompt_preview(ptask, edited_content, snippet_ids, targets)


# --------------------------------------------------------------------------- Jobs tab

with jobs_tab:
    rows = J.list_jobs(store)
    if rows:
        frame = pd.DataFrame(rows)
        frame["status"] = [("interrupted" if i else s) for i, s in zip(frame["interrupted"], frame["status"])]
        st.dataframe(frame.drop(columns=["interrupted"]), hide_index=True, width="stretch")
    else:
        st.info("No jobs yet.")
