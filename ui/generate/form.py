"""The Generate page's Run form: snippets, tasks, models, limits, batch mode, the estimate and Start.

The form's fields survive a reload and a trip to another page (ui.persist.Form); the Models
panel (ui.generate.models_panel) decides the profiles the next Start uses.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import streamlit as st

from core.config import Profile
from core.errors import ShoalError
from core.generate import jobs as J
from core.generate.items import PoolConfig
from core.generate.jobs.start import JobRequest, JobSettings, job_settings, start_job
from core.ingest.snippets import count_snippets, first_snippet_ids
from core.llm.concurrency import DEFAULT_CONCURRENCY, uses_local_model
from core.llm.presets import batch_support
from core.llm.prices import batch_share
from core.llm.profiles import load_profiles
from core.pipeline import jobs_on_endpoint
from core.select.stored import selection_id, selection_items, selection_names
from core.store import Store
from core.tasks import DEFAULT_MIX, TASKS, get_task
from ui.common import reviewer_name
from ui.generate.models_panel import (
    allow_presets,
    chosen_presets,
    chosen_profiles,
    form_defaults,
    models_panel,
    reconcile_presets,
)
from ui.persist import Form
from ui.text import plain

QUEUE, PARALLEL = "Queue it after the running job", "Run both at the same time"
BATCH_LABEL = "Batch (half price, slower)"


@dataclass
class RunForm:
    store: Store
    base: dict[str, Profile]       # the environment's profiles (the panel starts from them)
    form: Form
    sources: list[str]
    selections: list[str]


@dataclass
class Choice:
    """What the form asks for: snippets, tasks and the profiles the job would use."""
    snippet_ids: list[str]
    task: str | None
    mix: dict | None
    targets: list[str]
    source: str
    selection: str | None
    profiles: dict[str, Profile]
    local: bool
    batch: bool
    problem: str | None = None     # why the Models panel's choice cannot start a job


def base_profiles() -> dict[str, Profile]:
    try:
        return load_profiles(start_local=False)
    except ShoalError as exc:
        st.error(str(exc))
        st.stop()
        return {}


def run_form(store: Store) -> RunForm:
    """The form's fields with their defaults, restored (URL, then DuckDB, then defaults)."""
    base = base_profiles()
    selections = selection_names(store)
    sources = (["Selection"] if selections else []) + ["OSS-Instruct seeds", "All snippets"]
    form = Form(store, "generate", reviewer_name(), {
        "gen.source": sources[0], "gen.selection": selections[0] if selections else "",
        "gen.mode": "CodeOcean mix", "gen.task": next(iter(TASKS)), "gen.limit": 20,
        **{f"gen.mix.{t}": float(share) for t, share in DEFAULT_MIX.items()},
        "gen.targets": ["java", "go"], "gen.seeds_only": False,
        **form_defaults(base),
        "gen.concurrency": DEFAULT_CONCURRENCY, "gen.max_calls": 0, "gen.max_cost": 0.0,
        "gen.pool_good": 2, "gen.pool_bad": 1, "gen.pool_seed": 0, "gen.pool_refresh": 50,
        "gen.when_busy": QUEUE, "gen.batch": False,
    })
    form.allow("gen.source", sources)
    form.allow("gen.selection", selections)
    form.allow("gen.mode", ["CodeOcean mix", "One task"])
    form.allow("gen.task", list(TASKS))
    form.allow("gen.targets", J.DEFAULT_TARGETS)
    form.allow("gen.when_busy", [QUEUE, PARALLEL])
    allow_presets(form, base)
    form.restore()
    reconcile_presets(base)
    return RunForm(store, base, form, sources, selections)


def _profiles_now(rf: RunForm) -> tuple[dict[str, Profile], str | None]:
    """The profiles the panel's choice makes, or the environment's and why the choice cannot be used
    (the panel shows it; Start waits until it is fixed)."""
    try:
        return chosen_profiles(rf.base), None
    except ShoalError as exc:
        return rf.base, str(exc)


def _snippets_and_tasks(rf: RunForm) -> tuple:
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        source = st.radio("Snippets", rf.sources, key="gen.source", horizontal=True)
        selection = st.selectbox("Selection", rf.selections, key="gen.selection") if source == "Selection" else None
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
    st.checkbox("Only OSS-Instruct seeds (kind = seed)", key="gen.seeds_only",
                disabled=not (task and get_task(task).prefers_seeds))
    return source, selection, task, mix, int(limit), targets


def limits_expander(local: bool, settings: JobSettings) -> None:
    with st.expander("Concurrency, budget and few-shot pools", expanded=False):
        b1, b2, b3 = st.columns(3)
        b1.number_input("Concurrency (items in flight)", 1, 256, key="gen.concurrency", disabled=local,
                        help=(f"The embedded model answers one request at a time: its jobs run at concurrency "
                              f"{settings.concurrency}."
                              if local else f"Default {DEFAULT_CONCURRENCY}, as `shoal generate`."))
        b2.number_input("Max calls (0 = no cap)", 0, 10_000_000, key="gen.max_calls")
        b3.number_input("Max cost USD (0 = no cap)", 0.0, 100_000.0, key="gen.max_cost")
        p1, p2, p3, p4 = st.columns(4)
        p1.number_input("Good examples per prompt", 0, 10, key="gen.pool_good")
        p2.number_input("Bad examples per prompt", 0, 10, key="gen.pool_bad")
        p3.number_input("Sampling seed", 0, 1_000_000, key="gen.pool_seed")
        p4.number_input("Refresh pools every N items", 1, 100_000, key="gen.pool_refresh",
                        help="Later items see the examples judged (or reviewed) before them.")


def _batch_choice(profiles: dict[str, Profile]) -> bool:
    """The batch checkbox, offered when both endpoints have a Batch API; whether batch mode is on."""
    ok, why = batch_support(profiles, chosen_presets(profiles))
    st.checkbox(BATCH_LABEL, key="gen.batch", disabled=not ok,
                help=("The calls go through the provider's Batch API in rounds (generator calls, then judge "
                      "calls): half the price, answered within 24 hours." if ok else f"Not available: {why}."))
    return ok and bool(st.session_state.get("gen.batch"))


def _snippet_ids(store: Store, source: str, selection: str | None, limit: int) -> list[str]:
    if source == "Selection" and selection:
        sel_id = selection_id(store, selection)
        return [] if sel_id is None else selection_items(store, sel_id, limit)
    return first_snippet_ids(store, limit, seeds_only=source == "OSS-Instruct seeds")


def _estimate(store: Store, c: Choice) -> J.JobPlan | None:
    try:
        plan = J.plan_items(store, c.snippet_ids, task=c.task, mix=c.mix, target_languages=c.targets,
                            generator_model=c.profiles["generator"].model, judge_model=c.profiles["judge"].model,
                            seeds_only=bool(st.session_state.get("gen.seeds_only")))
        est = J.estimate_job_cost(store, plan, c.profiles)
    except ShoalError as exc:
        st.warning(str(exc))
        return None
    cost = est["cost_usd"] * (batch_share(c.profiles) if c.batch else 1.0)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Items", plan.n_items)
    m2.metric("LLM calls (before retries)", est["calls"])
    m3.metric("Tokens (upper bound)", f"{est['prompt_tokens'] + est['completion_tokens']:,}")
    m4.metric("Estimated cost (batch price)" if c.batch else "Estimated cost", f"${cost:.4f}")
    st.caption("Tasks: " + ", ".join(f"{t} {n}" for t, n in plan.task_counts().items()))
    return plan


def job_request(c: Choice) -> JobRequest:
    """What the form asks for, as core.generate.jobs.start takes it (the CLI builds the same from its options)."""
    v = st.session_state
    return JobRequest(c.snippet_ids, task=c.task, mix=c.mix, targets=c.targets, concurrency=int(v["gen.concurrency"]),
                      max_calls=int(v["gen.max_calls"]) or None, max_cost=float(v["gen.max_cost"]) or None,
                      seeds_only=bool(v["gen.seeds_only"]), batch=c.batch,
                      pool=PoolConfig(good=int(v["gen.pool_good"]), bad=int(v["gen.pool_bad"]),
                                      seed=int(v["gen.pool_seed"]), refresh_every=int(v["gen.pool_refresh"])),
                      name=f"{c.source}{(': ' + c.selection) if c.selection else ''}", source=f"page:{c.source}")


def start_from_page(store: Store, c: Choice) -> None:
    """Start (or queue) the job the form shows, through the function `shoal generate` uses."""
    v = st.session_state
    with st.spinner("Starting the embedded local model (first start can take a minute)…") if c.local else nullcontext():
        started = start_job(store, job_request(c), c.profiles, allow_parallel=v.get("gen.when_busy") == PARALLEL,
                            actor=reviewer_name())
    job_id = started.job_id
    if started.queued:
        v["gen.flash"] = (f"Job {job_id} queued: it starts when job " + ", ".join(f"#{j}" for j in started.queued_after)
                          + " ends.")
    else:
        v["gen.flash"] = f"Job {job_id} started" + (" in batch mode." if c.batch else ".")
    v["gen.show_job"] = job_id        # applied before the panel's picker is drawn (next run)
    v["gen.scroll_to_panel"] = True


def settings_line(settings: JobSettings) -> None:
    """Before a job starts: which model each role uses and the concurrency it will run at."""
    st.caption("The job will use: " + settings.describe())


def _start_button(store: Store, c: Choice, plan: J.JobPlan | None, settings: JobSettings) -> None:
    busy_now = jobs_on_endpoint(store, c.profiles)
    if busy_now:
        st.warning("Job " + ", ".join(f"#{j}" for j in busy_now) + " is running on this server. A second job "
                   "would share it (and slow both down).")
        st.radio("When you start another job", [QUEUE, PARALLEL], key="gen.when_busy", horizontal=True)
    what = (f"{plan.n_items} items from " + (f"selection “{c.selection}”" if c.selection else c.source.lower())
            + (" in batch mode" if c.batch else "")) if plan else ""
    if c.problem:
        st.warning(f"Models: {c.problem}")
    else:
        settings_line(settings)
    # started in the click's callback, before the run it triggers: that one run draws the panel with the new
    # job and polls (a start inside the run, then st.rerun(), drew the whole page twice as the job began)
    st.button("Start job", type="primary", disabled=plan is None or bool(c.problem), key="gen.start",
              help=f"Starts {what}." if what else None, on_click=_start_clicked, args=(store, c))
    if "gen.start_error" in st.session_state:
        st.error(st.session_state.pop("gen.start_error"))


def _start_clicked(store: Store, c: Choice) -> None:
    try:
        start_from_page(store, c)
    except ShoalError as exc:
        st.session_state["gen.start_error"] = plain(exc)


def run_tab(rf: RunForm) -> Choice:
    """The Run tab below the job panel; returns what the form asks for (the Prompts tab previews it)."""
    store = rf.store
    profiles, problem = _profiles_now(rf)
    local = uses_local_model(profiles)
    if local:
        st.warning("**The embedded local model only demonstrates the flow.** It is a 135M-parameter model on "
                   "the CPU: its examples are weak, its judge passes almost nothing, and a job of 20 items takes "
                   "minutes. Use a real model (Models below) for a dataset you mean to train on.")
    if "gen.flash" in st.session_state:
        st.success(st.session_state.pop("gen.flash"))
    n_snippets = count_snippets(store)
    if n_snippets == 0:
        st.info("No snippets yet: add a corpus (or the built-in demo) on the Corpus page first.")
    source, selection, task, mix, limit, targets = _snippets_and_tasks(rf)
    models_panel(store, rf.base, local)
    settings = job_settings(profiles, int(st.session_state.get("gen.concurrency") or DEFAULT_CONCURRENCY))
    limits_expander(local, settings)
    batch = _batch_choice(profiles)
    rf.form.save()
    c = Choice(_snippet_ids(store, source, selection, limit) if n_snippets else [], task, mix, targets, source,
               selection, profiles, local, batch, problem)
    plan = _estimate(store, c) if c.snippet_ids else None
    _start_button(store, c, plan, settings)
    return c
