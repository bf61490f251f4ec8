"""One way to run long work off the page: a named task in a worker thread, its state in DuckDB.

`start_task(store, kind, work)` runs `work(ctx)` in a daemon thread that makes no UI calls.
The work reports through `ctx.progress(done, total, note)` / `ctx.stage(name)` and stops at
its next check when `ctx.cancel` is set. A companion thread writes that progress and a
heartbeat to the task's `background_tasks` row (at most twice a second) and turns a
cancel request written by anyone into `ctx.cancel`. The worker writes the outcome (done,
failed, cancelled, with a JSON result) itself, before its thread ends.

Pages only read rows (`latest_task`, `running_tasks`), so leaving a page never stops the
work, and any page can show it. A row left `running` by a process that died is stale: its
heartbeat stops; rows this process owns are checked against its live threads instead.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import ShoalError
from core.progress import Cancelled
from core.store import Store, returned
from core.team import members as team

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5       # seconds between progress writes while a task runs
STALE_AFTER = 30.0      # a running row with no heartbeat for this long belongs to a dead process
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
FINISHED = ("done", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class TaskKind:
    """What the user sees of one kind of work: its name in messages and how its stops read."""
    name: str                     # the `kind` column, e.g. "ingest"
    title: str                    # "An ingest": starts the sentence refusing a second run
    cancelled: str = "Cancelled."
    failure_prefix: str = ""      # before "ExcType: message" of an unexpected error


@dataclass(frozen=True)
class TaskRecord:
    """One `background_tasks` row as a page shows it."""
    id: int
    kind: str
    label: str
    status: str                   # running | done | failed | cancelled | interrupted
    stage: str | None
    done: int
    total: int | None
    message: str
    error: str | None
    result: dict | None
    started_at: Any
    finished_at: Any
    stale: bool                   # `running` in the table, but nobody is running it any more

    @property
    def running(self) -> bool:
        return self.status == "running" and not self.stale

    @property
    def fraction(self) -> float:
        return max(0.0, min(1.0, self.done / self.total)) if self.total else 0.0

    @property
    def shown_status(self) -> str:
        return "interrupted" if self.stale else self.status


class TaskContext:
    """What the work function gets: progress reporting and the cancel event."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.done, self.note = 0, "starting"
        self.total: int | None = None
        self.stage_name: str | None = None
        self.changed = True

    def progress(self, done: int, total: int | None, note: str = "") -> None:
        self.done, self.total, self.note, self.changed = done, total, note, True

    def stage(self, name: str, note: str = "") -> None:
        """Start a new step: its progress starts from zero."""
        self.stage_name, self.done, self.total, self.note, self.changed = name, 0, None, note, True


class Task:
    """A task started by this process: its thread, its cancel event and the work's return value."""

    def __init__(self, store: Store, task_id: int, kind: TaskKind, work: Callable[[TaskContext], Any],
                 describe: Callable[[Any], dict] | None):
        self.store, self.id, self.kind = store, task_id, kind
        self.ctx = TaskContext()
        self.result: Any = None           # what the work returned (the table keeps its summary)
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._work, self._describe = work, describe
        self._stop_flushing = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"shoal-{kind.name}-{task_id}", daemon=True)
        self._flusher = threading.Thread(target=self._flush_loop, name=f"shoal-{kind.name}-{task_id}-beat",
                                         daemon=True)

    # -- state of the thread ------------------------------------------------------
    @property
    def cancel(self) -> threading.Event:
        return self.ctx.cancel

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    @property
    def fraction(self) -> float:
        return max(0.0, min(1.0, self.ctx.done / self.ctx.total)) if self.ctx.total else 0.0

    @property
    def note(self) -> str:
        return self.ctx.note

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def wait(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return not self.running

    def record(self) -> TaskRecord | None:
        return task_record(self.store, self.id)

    # -- the worker ---------------------------------------------------------------
    def _start(self) -> None:
        self._flusher.start()   # first: the worker joins it when it ends
        self.thread.start()

    def _run(self) -> None:
        status, summary = "failed", None
        try:
            self.result = self._work(self.ctx)
            summary = self._describe(self.result) if self._describe else None
            status = "done"
        except Cancelled:
            status, self.error = "cancelled", self.kind.cancelled
        except ShoalError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown on the page; the traceback goes to the log
            log.exception("%s task %s failed", self.kind.name, self.id)
            self.error = f"{self.kind.failure_prefix}{type(exc).__name__}: {exc}"
        finally:
            self._stop_flushing.set()
            self._flusher.join()
            self._finish(status, summary)
            self.finished_at = time.time()

    def _finish(self, status: str, summary: dict | None) -> None:
        c = self.ctx
        try:
            self.store.write(lambda cur: cur.execute(
                "UPDATE background_tasks SET status = ?, stage = ?, done = ?, total = ?, message = ?, error = ?, "
                "result = ?, heartbeat = ?, finished_at = current_timestamp WHERE id = ?",
                [status, c.stage_name, c.done, c.total, c.note, self.error,
                 None if summary is None else json.dumps(summary, default=str), time.time(), self.id]))
        except Exception:  # the database is gone (closed store): the thread still ends cleanly
            log.exception("could not record the end of %s task %s", self.kind.name, self.id)

    def _flush_loop(self) -> None:
        """Write progress and the heartbeat; pick up cancel requests made through the table."""
        while not self._stop_flushing.wait(FLUSH_EVERY):
            try:
                self._flush()
            except Exception:  # a missed beat is harmless; the next one retries
                log.debug("progress write of task %s failed", self.id, exc_info=True)

    def _flush(self) -> None:
        c = self.ctx
        changed, c.changed = c.changed, False

        def write(cur):
            if changed:
                cur.execute("UPDATE background_tasks SET stage = ?, done = ?, total = ?, message = ?, heartbeat = ? "
                            "WHERE id = ?", [c.stage_name, c.done, c.total, c.note, time.time(), self.id])
            else:
                cur.execute("UPDATE background_tasks SET heartbeat = ? WHERE id = ?", [time.time(), self.id])
            return cur.execute("SELECT cancel_requested FROM background_tasks WHERE id = ?", [self.id]).fetchone()

        row = self.store.write(write)
        if row and row[0]:
            c.cancel.set()


# --------------------------------------------------------------------------- this process's tasks

_tasks: dict[tuple[str, int], Task] = {}      # by (database file, task id)
_lock = threading.Lock()


def _db_key(store: Store) -> str:
    return str(store.path.resolve()) if str(store.path) != ":memory:" else f"memory-{id(store)}"


def _local(store: Store, task_id: int) -> Task | None:
    return _tasks.get((_db_key(store), int(task_id)))


def start_task(store: Store, kind: TaskKind, work: Callable[[TaskContext], Any], *, label: str = "",
               describe: Callable[[Any], dict] | None = None, exclusive: bool = True) -> Task:
    """Run `work(ctx)` in a worker thread as a task of `kind`; refuses a second running task of
    the same kind on this database when `exclusive`. `describe(result)` gives the stored summary."""
    with _lock:
        mark_interrupted(store)
        if exclusive and is_running(store, kind.name):
            raise ShoalError(f"{kind.title} is already running on this database; wait for it or cancel it.")
        task_id = store.write(lambda cur: returned(cur.execute(
            "INSERT INTO background_tasks(kind, label, owner, heartbeat, message) VALUES (?, ?, ?, ?, 'starting') "
            "RETURNING id", [kind.name, label, OWNER, time.time()])))
        task = Task(store, int(task_id), kind, work, describe)
        _tasks[(_db_key(store), task.id)] = task
        task._start()
        return task


_CANCEL_NEEDS = {"ingest": "ingest", "embed_map": "map"}   # the action a cancel is part of; else "checks"


def cancel_task(store: Store, task_id: int, *, actor: str | None = None) -> None:
    """Ask a task to stop at its next check (work finished before is kept)."""
    kind = store.scalar("SELECT kind FROM background_tasks WHERE id = ?", [task_id])
    team.authorize(store, actor, _CANCEL_NEEDS.get(kind, "checks"), target=f"cancel task {task_id}")
    store.write(lambda cur: cur.execute(
        "UPDATE background_tasks SET cancel_requested = true WHERE id = ?", [task_id]))
    task = _local(store, task_id)
    if task is not None:
        task.cancel.set()


def mark_interrupted(store: Store) -> int:
    """Record stale `running` rows as interrupted; returns how many."""
    stale = [r.id for r in _running_rows(store) if r.stale]
    if stale:
        store.write(lambda cur: cur.execute(
            f"UPDATE background_tasks SET status = 'interrupted', finished_at = current_timestamp, "
            f"error = coalesce(error, 'Interrupted: the process running it stopped.') "
            f"WHERE id IN ({', '.join('?' * len(stale))})", stale))
    return len(stale)


# --------------------------------------------------------------------------- reads

_COLUMNS = ("id, kind, label, status, stage, done, total, message, error, result, owner, heartbeat, "
            "started_at, finished_at")


def _record(row: dict, store: Store) -> TaskRecord:
    stale = False
    if row["status"] == "running":
        if row["owner"] == OWNER:   # ours: is its thread alive (or not started yet)?
            task = _local(store, row["id"])
            stale = task is None or (task.thread.ident is not None and not task.thread.is_alive())
        else:
            stale = row["heartbeat"] is None or time.time() - row["heartbeat"] > STALE_AFTER
    return TaskRecord(id=int(row["id"]), kind=row["kind"], label=row["label"] or "", status=row["status"],
                      stage=row["stage"], done=int(row["done"] or 0), total=row["total"],
                      message=row["message"] or "", error=row["error"],
                      result=json.loads(row["result"]) if row["result"] else None,
                      started_at=row["started_at"], finished_at=row["finished_at"], stale=stale)


def task_record(store: Store, task_id: int) -> TaskRecord | None:
    row = store.one(f"SELECT {_COLUMNS} FROM background_tasks WHERE id = ?", [task_id])
    return None if row is None else _record(row, store)


def latest_task(store: Store, kind: str) -> TaskRecord | None:
    """The newest task of `kind` (running or finished), if any."""
    row = store.one(f"SELECT {_COLUMNS} FROM background_tasks WHERE kind = ? ORDER BY id DESC LIMIT 1", [kind])
    return None if row is None else _record(row, store)


def _running_rows(store: Store) -> list[TaskRecord]:
    return [_record(r, store) for r in store.rows(
        f"SELECT {_COLUMNS} FROM background_tasks WHERE status = 'running' ORDER BY id")]


def running_tasks(store: Store) -> list[TaskRecord]:
    """What is running on this database now, oldest first (stale rows left out)."""
    return [r for r in _running_rows(store) if not r.stale]


def is_running(store: Store, kind: str) -> bool:
    """Whether a task of `kind` is running on this database now."""
    return any(t.kind == kind for t in running_tasks(store))


def list_tasks(store: Store, limit: int = 20) -> list[TaskRecord]:
    """The newest tasks, running or finished."""
    return [_record(r, store) for r in store.rows(
        f"SELECT {_COLUMNS} FROM background_tasks ORDER BY id DESC LIMIT ?", [limit])]


def local_task(store: Store, task_id: int) -> Task | None:
    """The in-process handle of a task this process started (for its return value), if any."""
    return _local(store, task_id)


def wait_for_tasks(timeout: float = 60) -> bool:
    """Wait until every task this process started has finished; True if all did in time."""
    deadline = time.time() + timeout
    for task in list(_tasks.values()):
        if not task.wait(max(0.0, deadline - time.time())):
            return False
    return True
