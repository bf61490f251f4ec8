"""Background worker threads for the app: one per running job, everything they do is in DuckDB."""
from __future__ import annotations

import sys
import threading

from core.errors import ShoalError
from core.generate.jobs.batch import run_job  # mode-aware: batch-mode jobs run in rounds
from core.generate.jobs.records import record_stop_reason
from core.generate.jobs.registry import _RUNNING, _WORKERS, _WORKERS_LOCK, job_key, worker_alive
from core.store import Store
from core.team import members as team

__all__ = ["JobWorker", "start_worker", "worker_alive", "wait_for_worker", "WORKER_SWITCH_INTERVAL_S"]

# A worker shares its process (the app's) with threads that compute while it waits on sockets: the page's
# script runs, the web server. Python hands the GIL back to a waiting thread only after the switch interval
# (5 ms by default), and the job's event loop waits that long again after every socket read -- which, with
# a page refreshing beside it, made its calls take twice as long as the same calls from the CLI.
WORKER_SWITCH_INTERVAL_S = 0.001


class JobWorker(threading.Thread):
    """Runs one job in the background; makes no UI calls; everything it does is in DuckDB."""

    def __init__(self, store: Store, job_id: int, prices: dict | None = None):
        super().__init__(name=f"shoal-job-{job_id}", daemon=True)
        self.store, self.job_id, self.prices = store, int(job_id), prices
        self.cancel = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            run_job(self.store, self.job_id, cancel=self.cancel, prices=self.prices)
        except Exception as exc:   # recorded for the page; the job stays resumable
            self.error = str(exc) if isinstance(exc, ShoalError) else f"{type(exc).__name__}: {exc}"
            try:
                record_stop_reason(self.store, self.job_id, f"error: {self.error}"[:500], status="paused")
            except Exception:
                pass


def start_worker(store: Store, job_id: int, prices: dict | None = None, actor: str | None = None) -> JobWorker:
    """Start (or return the live) background worker for a job (`actor`: who resumes it, checked)."""
    team.authorize(store, actor, "jobs", target=f"run job {job_id}")
    key = job_key(store, job_id)
    with _WORKERS_LOCK:
        w = _WORKERS.get(key)
        if w is not None and w.is_alive():
            return w
        if key in _RUNNING:
            raise ShoalError(f"Job {job_id} is already running in this process.")
        w = JobWorker(store, job_id, prices)
        _WORKERS[key] = w
    if sys.getswitchinterval() > WORKER_SWITCH_INTERVAL_S:
        sys.setswitchinterval(WORKER_SWITCH_INTERVAL_S)
    w.start()
    return w


def wait_for_worker(store: Store, job_id: int, timeout: float | None = None) -> bool:
    w = _WORKERS.get(job_key(store, job_id))
    if w is None:
        return True
    w.join(timeout)
    return not w.is_alive()
