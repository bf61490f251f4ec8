"""The `llm_calls` table: one row per HTTP attempt, written off the event loop, and the cache.

A logical request is keyed by `payload_hash` (base URL, model, messages, temperature,
max_tokens, schema). A row with that hash, no error and a response text is a cached reply:
the client re-validates it and serves it without a request.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

from core.redact import configured_secrets, redact
from core.store import Store

_T = TypeVar("_T")

CALL_COLUMNS = ("payload_hash, role, base_url, model, request, response_text, response_format, "
                "prompt_tokens, completion_tokens, latency_ms, cost_usd, error, status_code")
_INSERT_CALL = f"INSERT INTO llm_calls ({CALL_COLUMNS}) VALUES ({', '.join(['?'] * 13)}) RETURNING id"
_SECRET_COLUMNS = (4, 5, 11)   # request, response_text, error: redacted before they are stored
MAX_BATCH = 256   # rows (and queued calls) handled by one turn of the writer thread


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def payload_hash(base_url: str, model: str, messages: list[dict], temperature: float,
                 max_tokens: int, schema: dict | None, extra: dict | None = None) -> str:
    """sha256 of the canonical JSON payload: the cache key of one logical request. `extra`
    (settings that change the reply, e.g. reasoning_effort) counts only when given, so keys of
    calls without it stay what they were."""
    payload = {"base_url": base_url.rstrip("/"), "model": model, "messages": messages,
               "temperature": temperature, "max_tokens": max_tokens, "schema": schema}
    if extra:
        payload["extra"] = extra
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def insert_calls(cur, rows: list[list], preset: list[int | None] | None = None) -> list[int]:
    """Insert rows into llm_calls; their ids in order (`preset` ids are used as given). Several
    rows go in one statement with ids drawn from the sequence first (DuckDB's per-statement
    cost dominates small inserts). Keys in the request, the reply or the error are redacted first
    (core.redact): a provider's 401 that echoes the key, a key pasted into a prompt."""
    rows = _redacted(rows)
    preset = preset or [None] * len(rows)
    if len(rows) == 1 and preset[0] is None:
        return [int(cur.execute(_INSERT_CALL, rows[0]).fetchone()[0])]
    missing = [i for i, call_id in enumerate(preset) if call_id is None]
    fresh = iter(int(r[0]) for r in cur.execute("SELECT nextval('seq_llm_calls') FROM range(?)",
                                                [len(missing)]).fetchall()) if missing else iter(())
    ids = [call_id if call_id is not None else next(fresh) for call_id in preset]
    one = "(" + ", ".join(["?"] * 14) + ")"
    cur.execute(f"INSERT INTO llm_calls (id, {CALL_COLUMNS}) VALUES {', '.join([one] * len(rows))}",
                [v for call_id, row in zip(ids, rows) for v in (call_id, *row)])
    return ids


def _redacted(rows: list[list]) -> list[list]:
    secrets = configured_secrets()
    out = []
    for row in rows:
        row = list(row)
        for i in _SECRET_COLUMNS:
            if isinstance(row[i], str):
                row[i] = redact(row[i], secrets)
        out.append(row)
    return out


def successful_replies(store: Store, key: str) -> list[dict]:
    """The newest few logged replies of payload `key` that had no error (cache candidates)."""
    return store.rows("SELECT id, response_text, response_format FROM llm_calls "
                      "WHERE payload_hash = ? AND error IS NULL AND response_text IS NOT NULL "
                      "ORDER BY id DESC LIMIT 3", [key])


def successful_hashes(store: Store) -> set[str]:
    return {r[0] for r in store.execute("SELECT DISTINCT payload_hash FROM llm_calls "
                                        "WHERE error IS NULL AND response_text IS NOT NULL").fetchall()}


class CallLog:
    """Writes `llm_calls` on one background thread so the event loop never waits on DuckDB.

    Rows that queue up while a commit runs are written together in one `Store.write()`
    transaction (group commit: one autocommit per row costs several ms). It also keeps the set
    of payload hashes that have a successful reply, so a cache miss -- the common case on a
    first run -- needs no query at all.

    Queue items are (kind, payload, future): ("insert", row, f) resolves f to the new id;
    ("insert", (row, reserved_id), f) is a deferred row nobody awaits; ("call", (fn, args), f)
    runs fn(store, *args) on the writer thread, after every row queued before it.
    """

    ID_BLOCK = 256   # ids reserved from the sequence at once for deferred rows

    def __init__(self, store: Store, linger_s: float = 0.0):
        self.store = store
        self.linger_s = linger_s   # wait this long after a first row so more share its commit
        self._queue: queue.SimpleQueue[tuple[str, Any, Future] | None] = queue.SimpleQueue()
        self._thread_lock = threading.Lock()   # guards starting and stopping the writer thread
        self._thread: threading.Thread | None = None
        self._ok_hashes: set[str] | None = None
        self._free_ids: list[int] = []
        self.failed_rows = 0                 # deferred rows that could not be written
        self.last_error: str | None = None

    # -- what the client calls ---------------------------------------------------
    async def insert(self, row: list, success: bool) -> int:
        call_id = await asyncio.wrap_future(self._submit("insert", row))
        self._note(row, success)
        return call_id

    def insert_deferred(self, row: list, success: bool) -> int:
        """Queue a row under an id reserved now; its commit is not awaited (see `flush`)."""
        call_id = self._reserve_id()
        self._submit("insert", (row, call_id))
        self._note(row, success)
        return call_id

    async def flush(self) -> None:
        """Return once every row queued before this call is committed (FIFO writer); raise if a
        deferred row could not be written since the last flush."""
        await self.run(lambda store: None)
        if self.failed_rows:
            failed, self.failed_rows = self.failed_rows, 0
            raise RuntimeError(f"{failed} llm_calls row(s) not written: {self.last_error}")

    async def run(self, fn: Callable[..., _T], *args) -> _T:
        return await asyncio.wrap_future(self._submit("call", (fn, args)))

    def submit(self, fn: Callable[..., Any], *args) -> Future:
        """Run fn(store, *args) on the writer thread without waiting; an error is kept in
        `last_error` (these are bookkeeping writes: a failed one must not fail a call)."""
        fut = self._submit("call", (fn, args))

        def noted(f: Future) -> None:
            if not f.cancelled() and f.exception() is not None:
                self.last_error = f"{getattr(fn, '__name__', 'call')}: {f.exception()}"[:300]
        fut.add_done_callback(noted)
        return fut

    async def may_hit(self, key: str) -> bool:
        """False when no successful reply of `key` was ever logged (no query after the first)."""
        if self._ok_hashes is None:
            hashes = await self.run(successful_hashes)
            if self._ok_hashes is None:
                self._ok_hashes = hashes
        return key in self._ok_hashes

    def close(self) -> None:
        with self._thread_lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # -- internals -----------------------------------------------------------------
    def _note(self, row: list, success: bool) -> None:
        if success and self._ok_hashes is not None:
            self._ok_hashes.add(row[0])

    def _reserve_id(self) -> int:
        if not self._free_ids:
            block = self.store.execute("SELECT nextval('seq_llm_calls') FROM range(?)",
                                       [self.ID_BLOCK]).fetchall()
            self._free_ids = [int(r[0]) for r in reversed(block)]
        return self._free_ids.pop()

    def _submit(self, kind: str, payload: Any) -> Future:
        fut: Future = Future()
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="llm-calls-writer", daemon=True)
                self._thread.start()
            self._queue.put((kind, payload, fut))
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = self._gather(item)
            inserts = [b for b in batch if b[0] == "insert"]
            if inserts:
                self._write(inserts)
            for kind, payload, fut in batch:
                if kind == "call" and fut.set_running_or_notify_cancel():
                    fn, args = payload
                    try:
                        fut.set_result(fn(self.store, *args))
                    except BaseException as exc:  # handed to the awaiting coroutine
                        fut.set_exception(exc)

    def _gather(self, first: tuple) -> list[tuple]:
        """`first` and whatever else is queued (up to MAX_BATCH), lingering after a first row."""
        batch = [first]
        if self.linger_s > 0 and first[0] == "insert":
            time.sleep(self.linger_s)
        while len(batch) < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)   # finish this batch, then stop
                break
            batch.append(nxt)
        return batch

    def _write(self, inserts: list) -> None:
        rows = [payload[0] if isinstance(payload, tuple) else payload for _, payload, _ in inserts]
        preset = [payload[1] if isinstance(payload, tuple) else None for _, payload, _ in inserts]
        try:
            ids = self.store.write(lambda cur: insert_calls(cur, rows, preset))
        except BaseException as exc:  # handed to every awaiting coroutine; deferred rows are counted
            for (_, payload, fut) in inserts:
                if isinstance(payload, tuple):
                    self.failed_rows += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, _, fut), call_id in zip(inserts, ids):
            if not fut.done():
                fut.set_result(int(call_id))
