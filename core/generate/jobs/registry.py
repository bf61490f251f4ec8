"""Which jobs run in this process: the live worker threads and the `run_job` calls under way.

Kept apart from the workers so that the records (is a job interrupted? pause/cancel signals) and the
runner (one run per job at a time) can ask without importing the threads that call them.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from core.errors import ShoalError
from core.store import Store

if TYPE_CHECKING:
    from core.generate.jobs.workers import JobWorker

_WORKERS_LOCK = threading.Lock()
_RUNNING: set[tuple[str, int]] = set()
_WORKERS: dict[tuple[str, int], JobWorker] = {}
# Called as hook(store, job_id) when a run ends, while the job still counts as running here: the
# durable queue hands the server over to the next job without a moment in which neither runs.
_RUN_END_HOOKS: list[Callable[[Store, int], None]] = []
log = logging.getLogger(__name__)


def job_key(store: Store, job_id: int) -> tuple[str, int]:
    return (str(store.path), int(job_id))


@contextmanager
def running_here(store: Store, job_id: int) -> Iterator[None]:
    """Claim a job for one run in this process; refuses a second concurrent run of the same job."""
    key = job_key(store, job_id)
    with _WORKERS_LOCK:
        if key in _RUNNING:
            raise ShoalError(f"Job {job_id} is already running in this process.")
        _RUNNING.add(key)
    try:
        yield
    finally:
        for hook in list(_RUN_END_HOOKS):
            try:
                hook(store, int(job_id))
            except Exception:   # the run itself is over and recorded; a failed hand-over is retried by the queue
                log.warning("end-of-run hook %r failed for job %s", hook, job_id, exc_info=True)
        with _WORKERS_LOCK:
            _RUNNING.discard(key)


def on_run_end(hook: Callable[[Store, int], None]) -> None:
    """Register `hook(store, job_id)`, called once per run as it ends (the job still counted as running)."""
    if hook not in _RUN_END_HOOKS:
        _RUN_END_HOOKS.append(hook)


def worker_alive(store: Store, job_id: int) -> bool:
    key = job_key(store, job_id)
    w = _WORKERS.get(key)
    return (w is not None and w.is_alive()) or key in _RUNNING


def live_job_ids(store: Store) -> list[int]:
    """Jobs of this database with a live worker thread or a run under way in this process."""
    path = str(store.path)
    with _WORKERS_LOCK:
        ids = {jid for (p, jid), w in _WORKERS.items() if p == path and w.is_alive()}
        ids |= {jid for (p, jid) in _RUNNING if p == path}
    return sorted(ids)


def signal_worker(store: Store, job_id: int) -> None:
    """Wake a live worker of a job just cancelled in the database (a pause is read with the heartbeat)."""
    w = _WORKERS.get(job_key(store, job_id))
    if w is not None and w.is_alive():
        status = store.scalar("SELECT status FROM jobs WHERE id = ?", [job_id])
        if status == "cancelled":
            w.cancel.set()
