"""One job at a time per endpoint, and the durable queue behind it.

A job asked to wait for the jobs on its server is a `jobs` row with status 'queued' (and
`queued_after`: the jobs it was queued behind, as the pages show it). It never lives only in the
memory of the process that queued it: whichever Shoal process next finds its servers free starts
it — the app's queue runner (a daemon thread that looks once a second, `ensure_queue_runner`) or
`shoal jobs --run-queued` — so killing the app loses no queued job and a restart picks it up.

The rule, per endpoint, first come first served: a queued job may start when no running job and
no job queued before it uses one of its servers (`ready_jobs`). Starting claims the row
(queued -> pending) in one write, so two ticks never start the same job twice.
"""
from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from typing import Any, Callable

import duckdb

from core.store import Store

log = logging.getLogger(__name__)

QUEUE_POLL_S = 1.0
QUEUED = "queued"

# Held while a queued job is claimed and its worker registered, and while the queue is read: a
# reader of this process sees a job either queued or running, never neither.
_QUEUE_LOCK = threading.RLock()


# --------------------------------------------------------------------------- running jobs

def job_rows(store: Store) -> list[dict]:
    """Jobs not done yet, or still in a worker here (a run that just ended hands its server over
    before its thread ends), oldest first, with their finished-item count."""
    from core.generate.jobs.registry import live_job_ids
    return store.rows("""
        SELECT j.id, j.name, j.status, j.n_items, j.heartbeat_at, j.params, j.queued_after,
               count(*) FILTER (WHERE i.status IN ('succeeded', 'failed', 'skipped')) AS done
        FROM jobs j LEFT JOIN job_items i ON i.job_id = j.id
        WHERE j.status <> 'done' OR list_contains(?, j.id) GROUP BY ALL ORDER BY j.id""", [live_job_ids(store)])


def _is_running(store: Store, row: dict) -> bool:
    from core.generate.jobs.records import is_interrupted
    from core.generate.jobs.registry import worker_alive
    return worker_alive(store, row["id"]) or (
        row["status"] == "running" and not is_interrupted(store, row["id"], row["status"], row["heartbeat_at"]))


def running_job_ids(store: Store) -> list[int]:
    """Jobs running now: a live worker here, or `running` with a fresh heartbeat (another process)."""
    return [int(r["id"]) for r in job_rows(store) if _is_running(store, r)]


# --------------------------------------------------------------------------- endpoints

def endpoint_key(profile: dict) -> str:
    """What makes two profiles the same server: the embedded model by its name, else the base URL."""
    if profile.get("source") == "local":
        return f"local:{profile.get('model') or ''}"
    return (profile.get("base_url") or "").rstrip("/").lower()


def job_endpoints(params: dict | str | None) -> set[str]:
    """The servers a job sends requests to (from its stored profiles)."""
    p = json.loads(params) if isinstance(params, str) else (params or {})
    return {endpoint_key(prof) for prof in (p.get("profiles") or {}).values() if isinstance(prof, dict)}


def profile_endpoints(profiles: dict) -> set[str]:
    return {endpoint_key(p.public() if hasattr(p, "public") else p) for p in profiles.values()}


def jobs_on_endpoint(store: Store, profiles: dict, exclude: int | None = None) -> list[int]:
    """Running or queued jobs that send requests to one of these profiles' servers."""
    wanted = profile_endpoints(profiles)
    active = set(queued_jobs(store)) | set(running_job_ids(store))
    return [int(r["id"]) for r in job_rows(store)
            if int(r["id"]) in active and int(r["id"]) != exclude and job_endpoints(r["params"]) & wanted]


def blocking_jobs(store: Store, job_id: int) -> list[int]:
    """What job `job_id` would wait for under the one-job-per-endpoint rule: the running jobs on
    its servers and the jobs queued on them before it."""
    rows = job_rows(store)
    mine = next((job_endpoints(r["params"]) for r in rows if int(r["id"]) == int(job_id)), set())
    return [int(r["id"]) for r in rows if int(r["id"]) != int(job_id) and job_endpoints(r["params"]) & mine
            and (_is_running(store, r) or (r["status"] == QUEUED and int(r["id"]) < int(job_id)))]


# --------------------------------------------------------------------------- the queue

def queued_jobs(store: Store) -> dict[int, tuple[int, ...]]:
    """Jobs of this database waiting for their server: job id -> the jobs it was queued behind."""
    with _QUEUE_LOCK:
        rows = store.rows("SELECT id, queued_after FROM jobs WHERE status = ? ORDER BY id", [QUEUED])
    return {int(r["id"]): tuple(int(a) for a in (r["queued_after"] or ())) for r in rows}


def queue_job(store: Store, job_id: int, after: list[int]) -> None:
    """Put a job in the durable queue, behind `after` (it starts when its servers are free)."""
    from core.generate.jobs.records import get_job
    get_job(store, job_id)
    store.write(lambda cur: cur.execute(
        "UPDATE jobs SET status = ?, queued_after = ?, updated_at = current_timestamp WHERE id = ?",
        [QUEUED, [int(a) for a in after], int(job_id)]))


def ready_jobs(store: Store, finished: int | None = None) -> list[int]:
    """Queued jobs that may start now, in queue order: no running job and no job queued before
    them uses one of their servers. `finished`: a job whose run is ending (not counted as running)."""
    rows = job_rows(store)
    taken: set[str] = set()
    for r in rows:
        if int(r["id"]) != finished and _is_running(store, r):
            taken |= job_endpoints(r["params"])
    ready = []
    for r in rows:
        if r["status"] != QUEUED:
            continue
        ends = job_endpoints(r["params"])
        if not ends & taken:
            ready.append(int(r["id"]))
        taken |= ends       # a later job on these servers waits for this one, started or not
    return ready


def claim(store: Store, job_id: int) -> bool:
    """Take a job out of the queue to start it (queued -> pending); False if it left it already."""
    return store.write(lambda cur: cur.execute(
        "UPDATE jobs SET status = 'pending', updated_at = current_timestamp WHERE id = ? AND status = ? "
        "RETURNING id", [int(job_id), QUEUED]).fetchone()) is not None


def start_ready(store: Store, finished: int | None = None) -> list[int]:
    """Start (in worker threads of this process) every queued job whose servers are free; their ids.
    `finished`: the job whose run is ending now (its servers count as free)."""
    from core.generate.jobs.workers import start_worker
    started: list[int] = []
    if not store.scalar("SELECT count(*) FROM jobs WHERE status = ?", [QUEUED]):
        return started     # the usual tick: nothing waits
    with _QUEUE_LOCK:    # the worker is registered before the job leaves the queue for any reader here
        for job_id in ready_jobs(store, finished):
            if claim(store, job_id):
                start_worker(store, job_id)
                started.append(job_id)
    return started


def claim_next_ready(store: Store) -> int | None:
    """Claim the first queued job whose servers are free, to run it in the caller's thread."""
    with _QUEUE_LOCK:
        for job_id in ready_jobs(store):
            if claim(store, job_id):
                return job_id
    return None


def run_queued(store: Store, run: Callable[[int], Any], *, until: int | None = None,
               on_wait: Callable[[dict[int, tuple[int, ...]]], None] | None = None,
               poll_s: float = QUEUE_POLL_S) -> list[int]:
    """Work the queue in this thread: run each job as its servers come free (`run(job_id)` blocks),
    until nothing is queued (or job `until` has left the queue). Returns the jobs run, in order.
    `on_wait(queue)` is called (once per wait) while every queued job waits for a job running elsewhere."""
    ran: list[int] = []
    waiting = False
    while True:
        queue = queued_jobs(store)
        if not queue or (until is not None and int(until) not in queue):
            return ran
        job_id = claim_next_ready(store)
        if job_id is None:
            if on_wait is not None and not waiting:
                on_wait(queue)
            waiting = True
            time.sleep(poll_s)
            continue
        waiting = False
        ran.append(job_id)
        run(job_id)


# --------------------------------------------------------------------------- the app's queue runner

class QueueRunner(threading.Thread):
    """The app's ticking starter: once a second, start the queued jobs whose servers are free.
    Ends when its store is closed."""

    def __init__(self, store: Store, poll_s: float = QUEUE_POLL_S):
        super().__init__(name="shoal-job-queue", daemon=True)
        self.store, self.poll_s = store, poll_s
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                start_ready(self.store)
            except duckdb.ConnectionException:    # the store was closed: nothing left to run on
                return
            except Exception:                      # a missed tick is harmless; the next one retries
                log.warning("job queue tick failed", exc_info=True)
            self.stop.wait(self.poll_s)


_RUNNERS: dict[int, QueueRunner] = {}
_RUNNERS_LOCK = threading.Lock()


@atexit.register
def stop_queue_runners(timeout: float = 5.0) -> None:
    """Stop this process's queue runners (at exit: never leave one inside a DuckDB call)."""
    with _RUNNERS_LOCK:
        runners = list(_RUNNERS.values())
        _RUNNERS.clear()
    for r in runners:
        r.stop.set()
    for r in runners:
        r.join(timeout)


def _hand_over(store: Store, job_id: int) -> None:
    """As a run ends in a process with a queue runner (the app): start the jobs queued for its
    servers at once, while it still counts as running, so no reader ever sees neither job."""
    runner = _RUNNERS.get(id(store))
    if runner is not None and runner.store is store and runner.is_alive():
        start_ready(store, finished=job_id)


def ensure_queue_runner(store: Store) -> QueueRunner:
    """Start (once per store in this process) the thread that starts queued jobs; return it."""
    from core.generate.jobs.registry import on_run_end
    on_run_end(_hand_over)
    with _RUNNERS_LOCK:
        r = _RUNNERS.get(id(store))
        if r is None or not r.is_alive() or r.store is not store:
            r = QueueRunner(store)
            _RUNNERS[id(store)] = r
            r.start()
        return r


def start_after(store: Store, job_id: int, after: list[int]) -> threading.Thread:
    """Queue `job_id` behind `after` (durably) and make sure this process's queue runner will start
    it once its servers are free. Returns a daemon thread that ends when the job leaves the queue
    (started, cancelled or paused); a job cancelled while it waits is never started."""
    queue_job(store, job_id, after)
    ensure_queue_runner(store)

    def wait_until_dequeued() -> None:
        try:
            while int(job_id) in queued_jobs(store):
                time.sleep(min(QUEUE_POLL_S, 0.2))
        except duckdb.Error:
            return

    waiter = threading.Thread(target=wait_until_dequeued, name=f"shoal-queued-{job_id}", daemon=True)
    waiter.start()
    return waiter
