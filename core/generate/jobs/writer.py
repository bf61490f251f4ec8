"""Writing job results: one thread, group commits (many items per transaction), each item whole or not at all."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from functools import partial
from typing import AbstractSet, Sequence

from core.generate.items import ItemResult
from core.redact import redact
from core.store import Store


def _values(rows: list[list], casts: Sequence[str] | None = None) -> tuple[str, list]:
    """A multi-row VALUES list and its flat parameters (one statement instead of one per row)."""
    one = "(" + ", ".join(f"?::{c}" if c else "?" for c in (casts or [""] * len(rows[0]))) + ")"
    return ", ".join([one] * len(rows)), [x for row in rows for x in row]


_GEN_COLS = ("job_id, job_item_id, snippet_id, task, target_language, prompt_version_id, generator_model, fields, "
             "raw_text, parse_ok, prefilter_ok, prefilter_reasons, llm_call_id")
_GEN_CASTS = ["BIGINT", "BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR",
              "JSON", "VARCHAR", "BOOLEAN", "BOOLEAN", "JSON", "BIGINT"]
_JUDGE_COLS = "generation_id, judge_model, prompt_version_id, rules, overall, analysis, raw_text, parse_ok, llm_call_id"
_JUDGE_CASTS = ["BIGINT", "VARCHAR", "BIGINT", "JSON", "BOOLEAN", "VARCHAR", "VARCHAR", "BOOLEAN", "BIGINT"]


def _drop_replaced_generations(cur, results: list[tuple[dict, ItemResult]]) -> None:
    """An item run before (a retry) loses its earlier generation and judgment, unless a human reviewed it."""
    redo = [item["id"] for item, _ in results if item.get("generation_id") is not None or item.get("attempts")]
    if not redo:
        return
    old = [r[0] for r in cur.execute(
        "SELECT g.id FROM generations g LEFT JOIN reviews r ON r.generation_id = g.id "
        "WHERE list_contains(?, g.job_item_id) AND r.generation_id IS NULL", [redo]).fetchall()]
    if old:
        cur.execute("DELETE FROM checks WHERE list_contains(?, generation_id)", [old])
        cur.execute("DELETE FROM judgments WHERE list_contains(?, generation_id)", [old])
        cur.execute("DELETE FROM generations WHERE list_contains(?, id)", [old])


def _insert_generations(cur, job_id: int, results: list[tuple[dict, ItemResult]]) -> dict[int, int]:
    """Insert the generations of the results that have one; returns job item id → generation id."""
    rows = [[job_id, item["id"], item["snippet_id"], item["task"], item["target_language"],
             item["prompt_version_id"], item["generator_model"],
             None if res.fields is None else json.dumps(res.fields, ensure_ascii=False),
             res.raw_text, res.parse_ok, res.prefilter_ok, json.dumps(res.prefilter_reasons), res.gen_call_id]
            for item, res in results if res.has_generation]
    if not rows:
        return {}
    values, params = _values(rows, _GEN_CASTS)
    return {int(item_id): int(gid) for gid, item_id in cur.execute(
        f"INSERT INTO generations ({_GEN_COLS}) VALUES {values} RETURNING id, job_item_id", params).fetchall()}


def _insert_judgments(cur, results: list[tuple[dict, ItemResult]], gen_of: dict[int, int]) -> None:
    by_item = {item["id"]: (item, res) for item, res in results}
    rows = [[gen_of[item_id], item["judge_model"], item["prompt_version_id"],
             None if res.judge_rules is None else json.dumps(res.judge_rules, ensure_ascii=False),
             res.judge_overall, res.judge_analysis, res.judge_raw, res.judge_parse_ok, res.judge_call_id]
            for item_id, (item, res) in by_item.items() if res.judged and item_id in gen_of]
    if rows:
        values, params = _values(rows, _JUDGE_CASTS)
        cur.execute(f"INSERT INTO judgments ({_JUDGE_COLS}) VALUES {values}", params)


def _insert_execution_checks(cur, results: list[tuple[dict, ItemResult]], gen_of: dict[int, int]) -> None:
    """The generation loop's sandbox run of each example (core.generate.items) as its `execution` check."""
    rows = [[gen_of[item["id"]], bool(res.execution["passed"]), json.dumps(res.execution, ensure_ascii=False)]
            for item, res in results if res.execution and item["id"] in gen_of]
    if rows:
        values, params = _values(rows, ["BIGINT", "BOOLEAN", "JSON"])
        cur.execute(f"INSERT INTO checks(generation_id, kind, passed, detail) "
                    f"SELECT v.g, 'execution', v.p, v.d FROM (VALUES {values}) v(g, p, d)", params)


def write_batch(cur, job_id: int, running: list[int], results: list[tuple[dict, ItemResult]],
                 count_attempt: AbstractSet[int] = frozenset()) -> None:
    """Everything the writer collected, inside the caller's transaction: items newly in flight are
    marked running; each finished item gets its generation + judgment + status. An item is written
    whole or not at all; an item's earlier (failed, unreviewed) generation is replaced, never
    duplicated. A handful of statements per batch whatever its size: DuckDB's cost is per
    statement, not per row."""
    if running:
        cur.execute("UPDATE job_items SET status = 'running', attempts = attempts + 1, error = NULL, "
                    "updated_at = current_timestamp WHERE list_contains(?, id) AND status = 'pending'", [running])
    if not results:
        return
    _drop_replaced_generations(cur, results)
    gen_of = _insert_generations(cur, job_id, results)
    _insert_judgments(cur, results, gen_of)
    _insert_execution_checks(cur, results, gen_of)
    status_rows = [[item["id"], "failed" if res.error else "succeeded", redact(res.error), gen_of.get(item["id"]),
                    1 if item["id"] in count_attempt else 0] for item, res in results]
    values, params = _values(status_rows, ["BIGINT", "VARCHAR", "VARCHAR", "BIGINT", "INTEGER"])
    cur.execute(f"""UPDATE job_items SET status = v.status, error = v.error, generation_id = v.generation_id,
                    attempts = job_items.attempts + v.bump, updated_at = current_timestamp
                    FROM (VALUES {values}) v(id, status, error, generation_id, bump)
                    WHERE job_items.id = v.id""", params)


class BatchWriter:
    """The one thread that writes job progress. Results that finish while a write is under way are
    committed together in the next transaction (group commit), so DuckDB never limits throughput."""

    LINGER_S = 0.05
    MARK_EVERY_S = 1.0

    def __init__(self, store: Store, job_id: int, loop: asyncio.AbstractEventLoop):
        self.store, self.job_id, self.loop = store, job_id, loop
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running: list[int] = []
        self._results: list[tuple[dict, ItemResult, asyncio.Future]] = []
        self._closed = False
        self._marked_at = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"shoal-job-{job_id}-writer", daemon=True)
        self._thread.start()

    def mark_running(self, item_id: int) -> None:
        with self._lock:
            self._running.append(item_id)

    def submit(self, item: dict, res: ItemResult) -> asyncio.Future:
        fut = self.loop.create_future()
        with self._lock:
            self._results.append((item, res, fut))
        self._wake.set()
        return fut

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _settle(self, fut: asyncio.Future, exc: BaseException | None) -> None:
        if not fut.done():
            fut.set_exception(exc) if exc else fut.set_result(None)

    def _take(self) -> tuple[list[int], list[tuple[dict, ItemResult, asyncio.Future]], set[int]]:
        """What the next transaction writes: running marks, finished results, attempts to count."""
        with self._lock:
            self._wake.clear()
            batch, self._results = self._results, []
            unmarked = set(self._running)
            finished = {item["id"] for item, _, _ in batch}
            now = time.monotonic()
            # 'running' marks are informational: written at most once a second, never for an item
            # that finished meanwhile (its status update counts the attempt instead)
            if now - self._marked_at >= self.MARK_EVERY_S:
                running = [i for i in self._running if i not in finished]
                self._running = []
                self._marked_at = now
            else:
                running = []
                self._running = [i for i in self._running if i not in finished]
        return running, batch, finished & unmarked

    def _write(self, running: list[int], batch: list, bump: set[int]) -> list[BaseException | None]:
        """Write the batch in one transaction; if that fails, item by item, so one bad item fails alone."""
        try:
            self.store.write(lambda cur: write_batch(cur, self.job_id, running, [(i, r) for i, r, _ in batch], bump))
            return [None] * len(batch)
        except Exception:
            errors: list[BaseException | None] = []
            for item, res, _ in batch:
                try:
                    self.store.write(partial(write_batch, job_id=self.job_id, running=[], results=[(item, res)],
                                             count_attempt=bump))
                    errors.append(None)
                except Exception as exc:  # noqa: BLE001 - reported to the item's coroutine
                    errors.append(exc)
            return errors

    def _loop(self) -> None:
        while True:
            self._wake.wait(0.5)
            if not self._closed:
                time.sleep(self.LINGER_S)   # let results that finish together share one commit
            running, batch, bump = self._take()
            if running or batch:
                errors = self._write(running, batch, bump)
                for (_, _, fut), exc in zip(batch, errors):
                    try:
                        self.loop.call_soon_threadsafe(self._settle, fut, exc)
                    except RuntimeError:   # the loop is gone (cancelled run)
                        pass
            elif self._closed:
                return
