"""Run an ingest in a worker thread for the app (no Streamlit here).

The page starts a run, then polls `current_run(store)` from a fragment; the thread writes
its counts to the `ingests` row as it goes (see run.py) and keeps the latest progress in
memory. One run at a time per database file; runs outlive page reruns and reloads.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from core.errors import ShoalError
from core.ingest.run import IngestResult, ingest_sources
from core.progress import Cancelled
from core.store import Store

log = logging.getLogger(__name__)


class IngestRun:
    def __init__(self, store: Store, sources: list[str], **kwargs: Any):
        self.store, self.sources, self.kwargs = store, list(sources), kwargs
        self.cancel = threading.Event()
        self.done, self.total, self.note = 0, None, "starting"
        self.result: IngestResult | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._run, name="shoal-ingest", daemon=True)

    def _progress(self, done: int, total: int | None, note: str) -> None:
        self.done, self.total, self.note = done, total, note

    def _run(self) -> None:
        try:
            self.result = ingest_sources(self.store, self.sources, progress=self._progress,
                                         cancel=self.cancel, **self.kwargs)
        except Cancelled:
            self.error = "Cancelled: what was read before is kept."
        except ShoalError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown on the page; the traceback goes to the log
            log.exception("ingest failed")
            self.error = f"Ingest failed: {type(exc).__name__}: {exc}"
        finally:
            self.finished_at = time.time()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return max(0.0, min(1.0, self.done / self.total))

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def wait(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return not self.running


_runs: dict[str, IngestRun] = {}
_lock = threading.Lock()


def _key(store: Store) -> str:
    return str(store.path.resolve()) if str(store.path) != ":memory:" else f"memory-{id(store)}"


def start_ingest(store: Store, sources: list[str], **kwargs: Any) -> IngestRun:
    """Start ingesting `sources` in the background; refuses while another run is going."""
    with _lock:
        current = _runs.get(_key(store))
        if current is not None and current.running:
            raise ShoalError("An ingest is already running on this database; wait for it or cancel it.")
        run = IngestRun(store, sources, **kwargs)
        _runs[_key(store)] = run
        run.thread.start()
        return run


def current_run(store: Store) -> IngestRun | None:
    """The latest run on this database (running or finished), if any in this process."""
    return _runs.get(_key(store))


def forget_run(store: Store) -> None:
    with _lock:
        run = _runs.get(_key(store))
        if run is not None and not run.running:
            del _runs[_key(store)]
