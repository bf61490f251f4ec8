"""DuckDB store: one file on disk, numbered migrations, small typed query helpers.

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

def _m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    for seq in ("ingests", "ingest_errors", "maps", "selections", "prompt_versions", "jobs",
                "job_items", "llm_calls", "generations", "judgments", "audit_log", "checks",
                "exports", "check_runs"):
        con.execute(f"CREATE SEQUENCE IF NOT EXISTS seq_{seq} START 1")
    con.execute("""
    CREATE TABLE ingests (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_ingests'),
        started_at TIMESTAMP DEFAULT current_timestamp,
        finished_at TIMESTAMP,
        sources JSON,               -- list of source strings as given
        format VARCHAR,
        params JSON,                -- filters, seeds, ...
        ingested INTEGER DEFAULT 0,
        duplicates INTEGER DEFAULT 0,
        filtered INTEGER DEFAULT 0,
        errors INTEGER DEFAULT 0,
        status VARCHAR DEFAULT 'running'   -- running | done | failed | cancelled
    )""")
    con.execute("""
    CREATE TABLE snippets (
        id VARCHAR PRIMARY KEY,     -- sha256 (hex, 32 chars) of the normalized code
        kind VARCHAR NOT NULL,      -- function | seed
        source VARCHAR NOT NULL,    -- the source as the user gave it (file, folder, 'stdlib')
        source_kind VARCHAR NOT NULL, -- codesearchnet | wholefile | dir | stdlib
        repo VARCHAR,
        path VARCHAR,
        func_name VARCHAR,
        language VARCHAR NOT NULL,
        code VARCHAR NOT NULL,
        docstring VARCHAR,
        url VARCHAR,
        start_line INTEGER,         -- 1-based, inclusive
        end_line INTEGER,
        n_chars INTEGER NOT NULL,
        seed_rng BIGINT,            -- OSS-Instruct seeds: the RNG seed that drew the lines
        ingest_id BIGINT,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE ingest_errors (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_ingest_errors'),
        ingest_id BIGINT,
        source VARCHAR,
        location VARCHAR,           -- file:line, file#record, path inside a folder
        kind VARCHAR NOT NULL,      -- error | filtered
        reason VARCHAR NOT NULL,    -- short machine-countable reason, e.g. 'too_short'
        detail VARCHAR,             -- human text
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE embeddings (
        content_hash VARCHAR NOT NULL,  -- hash of the exact text that was embedded
        model VARCHAR NOT NULL,
        dim INTEGER NOT NULL,
        vector FLOAT[] NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (content_hash, model)
    )""")
    con.execute("""
    CREATE TABLE maps (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_maps'),
        name VARCHAR,
        model VARCHAR NOT NULL,
        params JSON,
        n_points INTEGER,
        n_clusters INTEGER,
        status VARCHAR DEFAULT 'done',
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE map_points (
        map_id BIGINT NOT NULL,
        snippet_id VARCHAR NOT NULL,
        x FLOAT NOT NULL,
        y FLOAT NOT NULL,
        cluster INTEGER NOT NULL,
        PRIMARY KEY (map_id, snippet_id)
    )""")
    con.execute("""
    CREATE TABLE clusters (
        map_id BIGINT NOT NULL,
        cluster INTEGER NOT NULL,
        label VARCHAR,
        terms JSON,
        size INTEGER,
        PRIMARY KEY (map_id, cluster)
    )""")
    con.execute("""
    CREATE TABLE selections (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_selections'),
        name VARCHAR NOT NULL UNIQUE,
        method VARCHAR NOT NULL,     -- kcenter | kcenter_fast | random | stratified | manual
        map_id BIGINT,
        model VARCHAR,
        params JSON,
        budget INTEGER,
        n_items INTEGER,
        n_candidates INTEGER,
        coverage_mean DOUBLE,
        coverage_max DOUBLE,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE selection_items (
        selection_id BIGINT NOT NULL,
        snippet_id VARCHAR NOT NULL,
        rank INTEGER NOT NULL,       -- order of picking
        PRIMARY KEY (selection_id, snippet_id)
    )""")
    con.execute("""
    CREATE TABLE prompt_versions (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_prompt_versions'),
        task VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        content JSON NOT NULL,       -- definition, requirements, schema, templates, rules
        content_hash VARCHAR NOT NULL,
        note VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp,
        UNIQUE (task, version)
    )""")
    con.execute("""
    CREATE TABLE jobs (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_jobs'),
        name VARCHAR,
        status VARCHAR NOT NULL DEFAULT 'pending', -- pending|running|paused|cancelled|done
        params JSON,                 -- tasks/mix, target languages, profiles (no keys), caps
        selection_id BIGINT,
        n_items INTEGER DEFAULT 0,
        created_at TIMESTAMP DEFAULT current_timestamp,
        updated_at TIMESTAMP DEFAULT current_timestamp,
        heartbeat_at TIMESTAMP
    )""")
    con.execute("""
    CREATE TABLE job_items (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_job_items'),
        job_id BIGINT NOT NULL,
        item_key VARCHAR NOT NULL,   -- snippet x task x target x prompt version x models
        snippet_id VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        target_language VARCHAR,
        prompt_version_id BIGINT,
        generator_model VARCHAR,
        judge_model VARCHAR,
        status VARCHAR NOT NULL DEFAULT 'pending', -- pending|running|succeeded|failed|skipped
        error VARCHAR,
        attempts INTEGER DEFAULT 0,
        generation_id BIGINT,
        updated_at TIMESTAMP DEFAULT current_timestamp,
        UNIQUE (job_id, item_key)
    )""")
    con.execute("""
    CREATE TABLE llm_calls (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_llm_calls'),
        payload_hash VARCHAR NOT NULL,
        role VARCHAR,                -- generator | judge | test
        base_url VARCHAR,
        model VARCHAR,
        request JSON,                -- messages and parameters (never the key)
        response_text VARCHAR,
        response_format VARCHAR,     -- json_schema | json_object | text
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_ms DOUBLE,
        cost_usd DOUBLE,
        error VARCHAR,
        status_code INTEGER,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE generations (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_generations'),
        job_id BIGINT,
        job_item_id BIGINT,
        snippet_id VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        target_language VARCHAR,
        prompt_version_id BIGINT,
        generator_model VARCHAR,
        fields JSON,                 -- parsed output (task_name, instruction, information, solution / problem ...)
        raw_text VARCHAR,
        parse_ok BOOLEAN,
        prefilter_ok BOOLEAN,
        prefilter_reasons JSON,
        llm_call_id BIGINT,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE judgments (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_judgments'),
        generation_id BIGINT NOT NULL,
        judge_model VARCHAR,
        prompt_version_id BIGINT,
        rules JSON,                  -- [{rule, answer: yes|no, reason}]
        overall BOOLEAN,
        analysis VARCHAR,
        raw_text VARCHAR,
        parse_ok BOOLEAN,
        llm_call_id BIGINT,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE reviews (
        generation_id BIGINT PRIMARY KEY,
        verdict VARCHAR NOT NULL,    -- accepted | rejected | skipped
        note VARCHAR,
        reasons JSON,
        edited_fields JSON,          -- the reviewer's edited copy of generations.fields
        reviewer VARCHAR,
        version INTEGER NOT NULL DEFAULT 1,
        batch_id VARCHAR,            -- bulk action this verdict came from (undo as one)
        updated_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE audit_log (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_audit_log'),
        created_at TIMESTAMP DEFAULT current_timestamp,
        actor VARCHAR,
        action VARCHAR NOT NULL,
        entity VARCHAR,
        entity_id VARCHAR,
        before JSON,
        after JSON,
        batch_id VARCHAR
    )""")
    con.execute("""
    CREATE TABLE check_runs (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_check_runs'),
        kind VARCHAR NOT NULL,       -- decontamination | near_duplicate | execution
        params JSON,
        summary JSON,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE checks (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_checks'),
        run_id BIGINT,
        generation_id BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        passed BOOLEAN NOT NULL,
        detail JSON,
        overridden BOOLEAN DEFAULT FALSE,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE exports (
        id BIGINT PRIMARY KEY DEFAULT nextval('seq_exports'),
        format VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        n_rows INTEGER,
        params JSON,
        card VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""")
    con.execute("""
    CREATE TABLE ui_state (
        key VARCHAR PRIMARY KEY,     -- e.g. 'review.position'
        value JSON,
        updated_at TIMESTAMP DEFAULT current_timestamp
    )""")


def _m002_indexes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE INDEX idx_snippets_lang ON snippets(language)")
    con.execute("CREATE INDEX idx_llm_calls_hash ON llm_calls(payload_hash)")
    con.execute("CREATE INDEX idx_generations_snippet ON generations(snippet_id)")
    con.execute("CREATE INDEX idx_judgments_generation ON judgments(generation_id)")
    con.execute("CREATE INDEX idx_job_items_job ON job_items(job_id)")
    con.execute("CREATE INDEX idx_checks_generation ON checks(generation_id)")


def _migration_sql(name: str) -> str:
    """The text of a frozen SQL migration in core/migrations/."""
    return (Path(__file__).resolve().parent / "migrations" / name).read_text()


# Ordered, append-only: never edit a migration that has shipped; add a new one.
MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("001_initial", _m001_initial),
    ("002_indexes", _m002_indexes),
    ("003_review_views", lambda con: __import__("core.review", fromlist=["x"]).create_review_views(con)),
    ("005_background_tasks", lambda con: con.execute(_migration_sql("005_background_tasks.sql"))),
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded in `_migrations`; return the names applied."""
    con.execute("""CREATE TABLE IF NOT EXISTS _migrations (
        name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)""")
    done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, fn in MIGRATIONS:
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


class Store:
    """The project database. Safe to share between threads: each thread gets a cursor."""

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False):
        self.path = Path(path) if path else default_db_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def __enter__(self) -> "Store":
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
        r = cur.fetchone()
        if r is None:
            return None
        return dict(zip([d[0] for d in cur.description], r))

    def scalar(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        r = self.cursor().execute(sql, params or []).fetchone()
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
        for i in range(attempts):
            try:
                with self._write_lock, self.transaction() as cur:
                    return fn(cur)
            except duckdb.TransactionException:
                if i == attempts - 1:
                    raise
                time.sleep(0.02 * (i + 1))

    def insert_df(self, table: str, frame: pd.DataFrame) -> int:
        """Append a DataFrame whose columns are a subset of `table`'s columns."""
        if frame.empty:
            return 0
        cur = self.cursor()
        cur.register("_shoal_insert", frame)
        try:
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _shoal_insert")
        finally:
            cur.unregister("_shoal_insert")
        return len(frame)

    def checkpoint(self) -> None:
        self.cursor().execute("CHECKPOINT")

    # -- small shared helpers --------------------------------------------------
    def get_ui_state(self, key: str, default: Any = None) -> Any:
        v = self.scalar("SELECT value FROM ui_state WHERE key = ?", [key])
        return default if v is None else json.loads(v)

    def set_ui_state(self, key: str, value: Any) -> None:
        self.execute(
            "INSERT INTO ui_state(key, value, updated_at) VALUES (?, ?, current_timestamp) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [key, json.dumps(value)],
        )

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
