"""Where a database is in the pipeline, and what is running on it now.

`running_work(store)` is the one answer to "what is running": generation jobs (a live worker in
this process, or a job another process keeps alive with its heartbeat), jobs queued behind
another one on the same endpoint, and the background tasks of core.background (ingest, embed +
map, checks). Home, the pages and `pipeline_status` all read it, so none of them can say
"done" while something runs.

One job at a time per endpoint: `jobs_on_endpoint` names the running (or queued) jobs that use
the same server as a job about to start, and `start_after` queues a job behind them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from core.background import running_tasks
from core.store import Store

_STAGES = [
    ("Corpus", "SELECT count(*) FROM snippets", "snippets ingested",
     "Add a corpus (or the built-in demo) on the Corpus page.", "pages/1_Corpus.py"),
    ("Map", "SELECT count(*) FROM maps", "maps built",
     "Embed the corpus and build its map on the Map page.", "pages/2_Map.py"),
    ("Selection", "SELECT count(*) FROM selections", "selections saved",
     "Pick the most diverse snippets with k-center greedy on the Map page.", "pages/2_Map.py"),
    ("Generate", "SELECT count(*) FROM generations", "examples generated",
     "Generate and judge instruction examples on the Generate page.", "pages/3_Generate.py"),
    ("Review", "SELECT count(*) FROM reviews WHERE verdict IN ('accepted', 'rejected')", "examples reviewed",
     "Accept, edit or reject examples on the Review page.", "pages/4_Review.py"),
    ("Export", "SELECT count(*) FROM exports", "exports written",
     "Check and export the accepted set on the Dataset page.", "pages/5_Dataset.py"),
]
# which stage a kind of work belongs to (background task kinds, and "job")
STAGE_OF = {"ingest": "Corpus", "embed_map": "Map", "job": "Generate", "checks": "Export"}
QUEUE_POLL_S = 1.0


@dataclass(frozen=True)
class Running:
    """One piece of work under way (or queued), as every page shows it."""
    kind: str                 # "job" or a core.background task kind
    id: int                   # job id or background task id
    label: str
    done: int
    total: int | None
    queued_after: tuple[int, ...] = ()   # jobs this one waits for (a queued job)

    @property
    def stage(self) -> str:
        return STAGE_OF.get(self.kind, self.kind)

    @property
    def text(self) -> str:
        what = f"Job #{self.id}" if self.kind == "job" else self.label
        if self.queued_after:
            return f"{what} queued after " + ", ".join(f"#{j}" for j in self.queued_after)
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        return f"{what}: {count}" + (f" · {self.label}" if self.kind == "job" and self.label else "")


# --------------------------------------------------------------------------- running jobs

def _job_rows(store: Store) -> list[dict]:
    return store.rows("""
        SELECT j.id, j.name, j.status, j.n_items, j.heartbeat_at, j.params,
               count(*) FILTER (WHERE i.status IN ('succeeded', 'failed', 'skipped')) AS done
        FROM jobs j LEFT JOIN job_items i ON i.job_id = j.id
        WHERE j.status <> 'done' GROUP BY ALL ORDER BY j.id""")


def running_job_ids(store: Store) -> list[int]:
    """Jobs running now: a live worker here, or `running` with a fresh heartbeat (another process)."""
    from core.jobs import is_interrupted, worker_alive
    out = []
    for r in _job_rows(store):
        if worker_alive(store, r["id"]) or (r["status"] == "running"
                                            and not is_interrupted(store, r["id"], r["status"], r["heartbeat_at"])):
            out.append(int(r["id"]))
    return out


def running_work(store: Store) -> list[Running]:
    """Everything running or queued on this database, jobs first (oldest first)."""
    queued = queued_jobs(store)        # first: a job leaves the queue only once its worker runs
    running = set(running_job_ids(store))
    out = []
    for r in _job_rows(store):
        jid = int(r["id"])
        if jid in running or jid in queued:
            out.append(Running("job", jid, r["name"] or "", int(r["done"] or 0), int(r["n_items"] or 0),
                               tuple(queued.get(jid, ())) if jid not in running else ()))
    for t in running_tasks(store):
        out.append(Running(t.kind, t.id, t.label or t.kind, t.done, t.total))
    return out


def is_busy(store: Store, stage: str | None = None) -> bool:
    return any(stage is None or w.stage == stage for w in running_work(store))


# --------------------------------------------------------------------------- one job per endpoint

def endpoint_key(profile: dict) -> str:
    """What makes two profiles the same server: the embedded model by its name, else the base URL."""
    if profile.get("source") == "local":
        return f"local:{profile.get('model') or ''}"
    return (profile.get("base_url") or "").rstrip("/").lower()


def _job_endpoints(params: dict | str | None) -> set[str]:
    import json
    p = json.loads(params) if isinstance(params, str) else (params or {})
    return {endpoint_key(prof) for prof in (p.get("profiles") or {}).values() if isinstance(prof, dict)}


def jobs_on_endpoint(store: Store, profiles: dict, exclude: int | None = None) -> list[int]:
    """Running or queued jobs that send requests to one of these profiles' servers."""
    wanted = {endpoint_key(p.public() if hasattr(p, "public") else p) for p in profiles.values()}
    active = set(queued_jobs(store)) | set(running_job_ids(store))
    return [int(r["id"]) for r in _job_rows(store)
            if int(r["id"]) in active and int(r["id"]) != exclude and _job_endpoints(r["params"]) & wanted]


_QUEUE: dict[tuple[str, int], tuple[int, ...]] = {}
_QUEUE_LOCK = threading.Lock()


def _qkey(store: Store, job_id: int) -> tuple[str, int]:
    return (str(store.path), int(job_id))


def queued_jobs(store: Store) -> dict[int, tuple[int, ...]]:
    """Jobs of this database waiting (in this process) for others to finish: job id -> the ones it waits for."""
    with _QUEUE_LOCK:
        return {jid: after for (path, jid), after in _QUEUE.items() if path == str(store.path)}


def start_after(store: Store, job_id: int, after: list[int]) -> threading.Thread:
    """Start `job_id` once none of the jobs in `after` runs any more (in a daemon thread).
    A job cancelled while it waits is never started."""
    from core.jobs import get_job, start_worker
    key = _qkey(store, job_id)
    with _QUEUE_LOCK:
        _QUEUE[key] = tuple(int(a) for a in after)

    def wait_then_start() -> None:
        try:
            while True:
                if get_job(store, job_id)["status"] == "cancelled":
                    return
                still = set(running_job_ids(store)) & set(_QUEUE.get(key, ()))
                if not still:
                    break
                time.sleep(QUEUE_POLL_S)
            with _QUEUE_LOCK:   # the worker is registered before the job leaves the queue
                start_worker(store, job_id)
                _QUEUE.pop(key, None)
        finally:
            with _QUEUE_LOCK:
                _QUEUE.pop(key, None)

    thread = threading.Thread(target=wait_then_start, name=f"shoal-queue-{job_id}", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- the stages

def pipeline_status(store: Store) -> list[dict]:
    """One entry per stage: its count, whether it has data (`done`), what runs in it now (`running`),
    and `state`: "running" while work of that stage runs, else "done" or "to do"."""
    work = running_work(store)
    out = []
    for title, sql, help_, next_, page in _STAGES:
        n = int(store.scalar(sql) or 0)
        running = [w for w in work if w.stage == title]
        out.append({"title": title, "count": n, "help": help_, "done": n > 0, "next": next_,
                    "page": page, "page_title": page.split("_", 1)[1].removesuffix(".py"),
                    "running": running, "state": "running" if running else ("done" if n > 0 else "to do")})
    return out


def next_step(steps: list[dict]) -> dict | None:
    """The first stage without data, or None when every stage has some."""
    return next((s for s in steps if not s["done"]), None)
