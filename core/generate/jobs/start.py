"""Starting a generation job: the one set of rules the Generate page and `shoal generate` share.

* the profiles a job records (`core.llm.profiles.ready_profiles`): the embedded model started where a
  role uses it, every model name filled in from the server's list (or a clear refusal);
* its concurrency (`core.llm.concurrency.job_concurrency`): what was asked, else
  `DEFAULT_CONCURRENCY`, capped for the embedded model;
* one job at a time per server (core/generate/jobs/endpoint_queue.py): a job whose server is busy is queued
  behind the jobs running (or queued) there, unless parallel runs are asked for.

`job_settings` says, before anything starts, what a job on some profiles would run with (the page
shows it); `job_params` turns a request into `create_job`'s arguments; `start_job` does all of it.
Where the job then runs is the caller's choice: a worker thread of this process (the page; a
queued job is started by the app's queue runner) or the caller's own thread (the CLI).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from core.config import Profile
from core.generate.items import PoolConfig
from core.generate.jobs import records
from core.llm.concurrency import asked_concurrency, job_concurrency
from core.llm.profiles import ready_profiles
from core.store import Store
from core.team import members as team

__all__ = ["JobRequest", "JobSettings", "StartedJob", "job_settings", "job_params", "start_job"]


@dataclass(frozen=True)
class JobRequest:
    """What a person asked for: snippets, tasks, limits (page form or command-line options)."""
    snippet_ids: Sequence[str]
    task: str | None = None
    mix: dict[str, float] | None = None
    targets: Sequence[str] = ()
    concurrency: int | None = None            # None: DEFAULT_CONCURRENCY
    max_calls: int | None = None
    max_cost: float | None = None
    pool: PoolConfig = field(default_factory=PoolConfig)
    seeds_only: bool = False
    batch: bool = False
    name: str | None = None
    source: str | None = None                 # "selection:NAME", "page:Selection", ...
    selection_id: int | None = None


@dataclass(frozen=True)
class JobSettings:
    """What a job on these profiles runs with: each role's model and the concurrency (with why it is
    not what was asked, when it is not)."""
    profiles: dict[str, Profile]
    concurrency: int
    asked: int
    note: str | None = None

    def describe(self) -> str:
        """One line for the page and the CLI: which model each role uses, and the concurrency."""
        roles = " · ".join(f"{role}: {_model_words(p)}" for role, p in self.profiles.items())
        return f"{roles} · concurrency {self.concurrency}" + (f" ({self.note})" if self.note else "")


def _model_words(p: Profile) -> str:
    if p.source == "local":
        return f"{p.model or 'embedded model'} (embedded local model)"
    return f"{p.model or '(the first model the server lists)'} at {p.base_url or '?'}"


def job_settings(profiles: dict[str, Profile], asked: int | None = None) -> JobSettings:
    """The settings a job on `profiles` would run with when `asked` items are to be in flight."""
    want = asked_concurrency(asked)
    n = job_concurrency(profiles, want)
    note = None
    if n != want:           # only the embedded model's cap lowers what was asked
        note = f"the embedded local model answers one request at a time, not {want}"
    return JobSettings(dict(profiles), n, want, note)


def job_params(request: JobRequest, settings: JobSettings) -> dict[str, Any]:
    """`create_job`'s keyword arguments for a request (snippet ids aside): the same for page and CLI."""
    return dict(profiles=settings.profiles, task=request.task, mix=request.mix,
                target_languages=list(request.targets), concurrency=settings.concurrency,
                max_calls=request.max_calls, max_cost=request.max_cost, pool=request.pool,
                seeds_only=request.seeds_only, name=request.name, selection_id=request.selection_id,
                source=request.source, batch=request.batch)


@dataclass(frozen=True)
class StartedJob:
    job_id: int
    settings: JobSettings
    queued_after: list[int]          # empty: it runs now

    @property
    def queued(self) -> bool:
        return bool(self.queued_after)


def start_job(store: Store, request: JobRequest, profiles: dict[str, Profile], *, allow_parallel: bool = False,
              run_in: Literal["worker", "caller"] = "worker", list_models=None,
              actor: str | None = None) -> StartedJob:
    """Create the job by the rules above and start it, or queue it behind the jobs on its server.

    run_in="worker": it runs in a worker thread of this process (the app), or, when queued, the
    process's queue runner starts it once its server is free. run_in="caller": nothing is started;
    the caller runs the job (or works the queue) in its own thread (the CLI, with its progress bar)."""
    team.authorize(store, actor, "jobs", target=request.name, audit_allowed=False)   # before any model starts
    ready = ready_profiles(profiles) if list_models is None else ready_profiles(profiles, list_models)
    settings = job_settings(ready, request.concurrency)
    job_id = records.create_job(store, list(request.snippet_ids), **job_params(request, settings), actor=actor)
    from core.generate.jobs.endpoint_queue import blocking_jobs, queue_job, start_after
    busy = [] if allow_parallel else blocking_jobs(store, job_id)
    if busy:
        if run_in == "worker":
            start_after(store, job_id, busy)
        else:
            queue_job(store, job_id, busy)
    elif run_in == "worker":
        from core.generate.jobs.workers import start_worker
        start_worker(store, job_id)
    return StartedJob(job_id, settings, busy)


def last_job_profiles(store: Store) -> dict[str, Profile] | None:
    """The profiles the newest job recorded (the Models panel's choice, or the environment's, when it
    started), None before any job: what the judge calibration uses, so it judges with the judge the
    examples were judged by. The embedded model's profile comes back without its (old) server URL."""
    import json
    row = store.one("SELECT params FROM jobs ORDER BY id DESC LIMIT 1")
    params = (json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]) if row else None
    stored = (params or {}).get("profiles") or {}
    if not {"generator", "judge"} <= set(stored):
        return None
    out = {role: Profile(**stored[role]) for role in ("generator", "judge")}
    return {role: p.model_copy(update={"base_url": ""}) if p.source == "local" else p for role, p in out.items()}
