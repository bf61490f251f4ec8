"""DuckDB store: one file on disk, numbered SQL migrations (core/migrations/), small typed query helpers.

One read-write connection per process (DuckDB allows only one writer process per
file); every thread works through its own cursor of that connection.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb
import pandas as pd

from core.errors import DatabaseBusy, ShoalError

DEFAULT_DB = "shoal.duckdb"


def default_db_path() -> Path:
    """`SHOAL_DB` if set, else ./shoal.duckdb."""
    return Path(os.environ.get("SHOAL_DB") or DEFAULT_DB)


# --------------------------------------------------------------------------- schema

MIGRATIONS_PACKAGE = "core"
MIGRATIONS_FOLDER = "migrations"


def migration_sql(name: str) -> str:
    """The frozen SQL of migration `name` (core/migrations/<name>.sql, shipped as package data)."""
    return (resources.files(MIGRATIONS_PACKAGE) / MIGRATIONS_FOLDER / f"{name}.sql").read_text(encoding="utf-8")


def sql_migration(name: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """A migration body that executes one frozen SQL file (all of its statements)."""
    def run(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(migration_sql(name))
    run.__name__ = f"migration_{name}"
    return run


def _migration_names() -> list[str]:
    folder = resources.files(MIGRATIONS_PACKAGE) / MIGRATIONS_FOLDER
    return sorted(p.name[:-len(".sql")] for p in folder.iterdir() if p.name.endswith(".sql"))


# Ordered by file name, append-only: never edit a migration that has shipped; add a new file.
# Each is recorded in `_migrations` under its file name without ".sql" (e.g. "001_initial").
MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    (name, sql_migration(name)) for name in _migration_names()
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded in `_migrations`, each in its own transaction;
    return the names applied."""
    con.execute("""CREATE TABLE IF NOT EXISTS _migrations (
        name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)""")
    done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, fn in sorted(MIGRATIONS, key=lambda m: m[0]):
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute("INSERT INTO _migrations(name) VALUES (?)", [name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        done.add(name)
        applied.append(name)
    return applied


# --------------------------------------------------------------------------- store

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<holder>.+?) \(PID (?P<pid>\d+)\)")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" in msg.lower():
            m = _LOCK_RE.search(msg)
            holder = f"{m.group('holder')} (PID {m.group('pid')})" if m else "another process"
            raise DatabaseBusy(path, holder) from None
        raise ShoalError(f"Cannot open database {path}: {msg}") from None


def private_files(path: Path) -> None:
    """Shoal's files are readable by their owner only: from now on this process creates files 0600
    and folders 0700 (umask 077: DuckDB makes the WAL afresh after every checkpoint, and exports and
    secrets follow the same rule), and an existing database or WAL of ours is tightened to 0600."""
    old = os.umask(0o077)
    os.umask(old | 0o077)
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError:
            pass


def finish(cur: duckdb.DuckDBPyConnection) -> None:
    """Finish the result a fetchone() left open: DuckDB 2 refuses register() on a cursor until then."""
    complete = getattr(cur, "complete", None)     # DuckDB 2; older versions had no such state
    if complete is not None:
        complete()


def register(cur: duckdb.DuckDBPyConnection, name: str, frame: Any) -> None:
    """`cur.register(name, frame)`, after finishing any result left open on the (shared thread) cursor."""
    finish(cur)
    cur.register(name, frame)


def insert_frame(cur: duckdb.DuckDBPyConnection, table: str, frame: Any, *, or_ignore: bool = False) -> None:
    """INSERT a DataFrame's (or Arrow table's) rows into `table`, its columns matched by name, through a
    view registered on `cur` for the statement only. `or_ignore`: rows that break a key are skipped."""
    view = f"_shoal_rows_{table}"
    names = getattr(frame, "column_names", None) or list(frame.columns)
    cols = ", ".join(f'"{c}"' for c in names)
    register(cur, view, frame)
    try:
        cur.execute(f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO {table} ({cols}) SELECT {cols} FROM {view}")
    finally:
        cur.unregister(view)


def first_row(cur: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of the statement just run, its result then finished."""
    row = cur.fetchone()
    finish(cur)
    return row


def returned(cur: duckdb.DuckDBPyConnection) -> Any:
    """The first value of the row the statement just run gave (an INSERT ... RETURNING id).
    A statement that gave no row here is a bug, so it raises rather than returning None."""
    row = first_row(cur)
    if row is None:
        raise LookupError("the statement returned no row")
    return row[0]


def retried(fn: Callable[[], Any], errors: tuple[type[BaseException], ...], attempts: int, backoff_s: float) -> Any:
    """`fn()`, tried again after `errors` (DuckDB's write conflicts) with a growing pause, `attempts` times."""
    for i in range(attempts):
        try:
            return fn()
        except errors:
            if i == attempts - 1:
                raise
            time.sleep(backoff_s * (i + 1))
    raise ValueError("attempts must be at least 1")


_UPDATE_UI_STATE = "UPDATE ui_state SET value = ?, updated_at = current_timestamp WHERE key = ?"


class Store:
    """The project database. Safe to share between threads: each thread gets a cursor."""

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False):
        self.path = Path(path) if path else default_db_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not read_only:
                private_files(self.path)
        self.con = _connect(self.path, read_only)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        if not read_only:
            migrate(self.con)

    # -- cursors ------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self.con.cursor()
            self._local.cursor = cur
        return cur

    def close(self) -> None:
        try:
            self.con.close()
        except duckdb.Error:
            pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries ------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict | None = None):
        return self.cursor().execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor().executemany(sql, rows)

    def df(self, sql: str, params: Sequence[Any] | dict | None = None) -> pd.DataFrame:
        return self.cursor().execute(sql, params or []).df()

    def rows(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
        cur = self.cursor().execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] | dict | None = None) -> dict | None:
        cur = self.cursor().execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        r = first_row(cur)
        return None if r is None else dict(zip(cols, r))

    def one_row(self, sql: str, params: Sequence[Any] | dict | None = None) -> dict:
        """The row of a query that always gives exactly one (an aggregate without GROUP BY)."""
        row = self.one(sql, params)
        if row is None:
            raise LookupError("the query gave no row")
        return row

    def scalar(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        r = first_row(self.cursor().execute(sql, params or []))
        return None if r is None else r[0]

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN/COMMIT on this thread's cursor; ROLLBACK on error."""
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], Any], *, attempts: int = 20) -> Any:
        """The one path for writes: run `fn(cursor)` in a transaction under the store's write lock.

        DuckDB's optimistic concurrency can still refuse a commit when another process-local
        connection (a page and a worker) touched the same rows; such conflicts are retried with a
        short back-off, up to `attempts` times. Returns what `fn` returns.
        """
        def once() -> Any:
            with self._write_lock, self.transaction() as cur:
                return fn(cur)
        return retried(once, (duckdb.TransactionException,), attempts, 0.02)

    def insert_df(self, table: str, frame: pd.DataFrame) -> int:
        """Append a DataFrame whose columns are a subset of `table`'s columns."""
        if frame.empty:
            return 0
        insert_frame(self.cursor(), table, frame)
        return len(frame)

    def checkpoint(self) -> None:
        """Write the WAL into the file now, unless another thread is mid-write (a background task's
        heartbeat): then DuckDB checkpoints on its own later, and waiting would gain nothing."""
        try:
            self.cursor().execute("CHECKPOINT")
        except duckdb.TransactionException:
            pass

    # -- small shared helpers --------------------------------------------------
    def get_ui_state(self, key: str, default: Any = None) -> Any:
        v = self.scalar("SELECT value FROM ui_state WHERE key = ?", [key])
        return default if v is None else json.loads(v)

    def set_ui_state(self, key: str, value: Any, *, attempts: int = 20) -> None:
        """Save `value` under `key`: one UPDATE, and an INSERT only the first time a key is saved.
        (A page saves its position on every accept; DuckDB's INSERT ... ON CONFLICT DO UPDATE costs
        about three times a plain UPDATE of the row.) Not under the write lock: a key is one
        user's, and when two threads write the same key at once (two tabs), the one DuckDB refuses
        tries again, so the last one wins."""
        cur = self.cursor()
        text = json.dumps(value)

        def once() -> None:
            row = first_row(cur.execute(_UPDATE_UI_STATE, [text, key]))
            if not (row and row[0]):
                cur.execute("INSERT INTO ui_state(key, value, updated_at) VALUES (?, ?, current_timestamp)",
                            [key, text])
        retried(once, (duckdb.ConstraintException, duckdb.TransactionException), attempts, 0.005)

    def audit(self, action: str, entity: str, entity_id: Any, before: Any = None,
              after: Any = None, actor: str | None = None, batch_id: str | None = None) -> None:
        self.execute(
            "INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [actor, action, entity, None if entity_id is None else str(entity_id),
             None if before is None else json.dumps(before, default=str),
             None if after is None else json.dumps(after, default=str), batch_id],
        )

    def table_counts(self) -> dict[str, int]:
        tables = ["snippets", "ingest_errors", "embeddings", "maps", "selections", "jobs",
                  "generations", "judgments", "reviews", "checks", "exports"]
        return {t: int(self.scalar(f"SELECT count(*) FROM {t}")) for t in tables}


def open_store(path: str | os.PathLike | None = None, read_only: bool = False) -> Store:
    return Store(path, read_only=read_only)
