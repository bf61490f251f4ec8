"""Which jobs run in this process: the live worker threads and the `run_job` calls under way.

Kept apart from the workers so that the records (is a job interrupted? pause/cancel signals) and the
runner (one run per job at a time) can ask without importing the threads that call them.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from core.errors import ShoalError
from core.store import Store

if TYPE_CHECKING:
    from core.jobs.workers import JobWorker

_WORKERS_LOCK = threading.Lock()
_RUNNING: set[tuple[str, int]] = set()
_WORKERS: dict[tuple[str, int], JobWorker] = {}


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
        with _WORKERS_LOCK:
            _RUNNING.discard(key)


def worker_alive(store: Store, job_id: int) -> bool:
    key = job_key(store, job_id)
    w = _WORKERS.get(key)
    return (w is not None and w.is_alive()) or key in _RUNNING


def signal_worker(store: Store, job_id: int) -> None:
    """Wake a live worker of a job just cancelled in the database (a pause is read with the heartbeat)."""
    w = _WORKERS.get(job_key(store, job_id))
    if w is not None and w.is_alive():
        status = store.scalar("SELECT status FROM jobs WHERE id = ?", [job_id])
        if status == "cancelled":
            w.cancel.set()
