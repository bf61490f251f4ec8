"""Generation jobs: planned items persisted in DuckDB, an async runner, pause/cancel/resume/retry.

* An item is idempotent on snippet × task × target language × prompt version × models
  (`item_key`); an item that already succeeded in another job is planned as `skipped`.
* The runner keeps up to C items in flight; each item is a chain (generator call → pre-filter →
  judge call), so generator and judge calls of different items overlap. Each finished item is
  written in one transaction (generation + judgment + item status) by a single writer thread,
  so the event loop never waits on DuckDB and a kill -9 leaves every item either fully written
  or still pending.
* Restarting a job turns items left `running` back to `pending`; the example pools are frozen at
  job creation, so the re-assembled prompts are identical and answered calls come from the cache.
* Control goes through `jobs.status` in the database (the page and the CLI set `paused` /
  `cancelled`); the runner polls it with its heartbeat.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import duckdb

from core.errors import ShoalError
from core.generate import (ItemResult, PoolConfig, Pools, PoolSnapshot, current_prompt_version, few_shot,
                           generate_one, get_prompt_version)
from core.progress import ProgressFn
from core.store import Store
from core.tasks import TASKS, get_task

DEFAULT_TARGETS = ["java", "python", "go", "javascript", "rust", "cpp"]
HEARTBEAT_S = 0.5
STALE_AFTER_S = 15.0
DONE_STATUSES = ("succeeded", "failed", "skipped")


# --------------------------------------------------------------------------- planning

def _h(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def item_key(snippet_id: str, task: str, target: str | None, prompt_version_id: int,
             generator_model: str, judge_model: str) -> str:
    return _h(snippet_id, task, target, prompt_version_id, generator_model, judge_model)


def assign_tasks(snippet_ids: Sequence[str], mix: dict[str, float], seed: int = 0) -> list[str]:
    """Deterministic task per snippet with counts matching the shares (largest remainder), spread
    evenly over the snippets by smooth weighted round robin in hash order (so a prefix keeps the mix)."""
    unknown = [t for t in mix if t not in TASKS]
    if unknown:
        raise ShoalError(f"Unknown task(s) in the mix: {', '.join(unknown)}")
    total_w = sum(max(0.0, w) for w in mix.values())
    if total_w <= 0:
        raise ShoalError("The task mix needs at least one positive share.")
    n = len(snippet_ids)
    exact = {t: n * max(0.0, w) / total_w for t, w in mix.items()}
    quota = {t: int(v) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: (-(exact[t] - quota[t]), t))[: n - sum(quota.values())]:
        quota[t] += 1
    order = sorted(range(n), key=lambda i: _h(seed, snippet_ids[i]))
    current = {t: 0 for t in quota}
    left = dict(quota)
    out = [""] * n
    for i in order:
        for t in current:
            if left[t] > 0:
                current[t] += quota[t]
        t = max((t for t in current if left[t] > 0), key=lambda t: (current[t], quota[t], t))
        current[t] -= n
        left[t] -= 1
        out[i] = t
    return out


def choose_target(source_language: str, targets: Sequence[str], key: str) -> str:
    """A target language different from the source, picked deterministically from `targets`."""
    src = (source_language or "").lower()
    options = [t for t in targets if t.lower() != src] or [t for t in DEFAULT_TARGETS if t != src]
    return options[int(_h(key), 16) % len(options)]


@dataclass
class JobPlan:
    items: list[dict]
    unknown_ids: list[str]
    prompt_versions: dict[str, int]
    skipped_kind: int = 0

    @property
    def n_items(self) -> int:
        return len(self.items)

    def task_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it["task"]] = out.get(it["task"], 0) + 1
        return out


def plan_items(store: Store, snippet_ids: Sequence[str], *, task: str | None = None,
               mix: dict[str, float] | None = None, target_languages: Sequence[str] | None = None,
               generator_model: str = "", judge_model: str = "", seeds_only: bool = False,
               mix_seed: int = 0) -> JobPlan:
    """The items a job would run (not stored). Exactly one of `task` / `mix`."""
    if (task is None) == (mix is None):
        raise ShoalError("Choose either one task or a task mix.")
    if task is not None:
        get_task(task)
    ids = list(dict.fromkeys(snippet_ids))
    if not ids:
        raise ShoalError("No snippets given: pick a selection or a file of snippet ids.")
    found: dict[str, dict] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for r in store.rows("SELECT id, language, kind FROM snippets WHERE list_contains(?, id)", [chunk]):
            found[r["id"]] = r
    unknown = [i for i in ids if i not in found]
    ids = [i for i in ids if i in found]
    skipped_kind = 0
    if seeds_only:
        before = len(ids)
        ids = [i for i in ids if found[i]["kind"] == "seed"]
        skipped_kind = before - len(ids)
    if not ids:
        raise ShoalError("None of the given snippet ids is in the database"
                         + (" (or none is an OSS-Instruct seed)" if seeds_only else "") + ".")
    tasks = [task] * len(ids) if task else assign_tasks(ids, mix, mix_seed)
    targets = list(target_languages or [])
    versions = {t: current_prompt_version(store, t).id for t in sorted(set(tasks))}
    items = []
    for sid, t in zip(ids, tasks):
        target = None
        if get_task(t).needs_target_language:
            target = choose_target(found[sid]["language"], targets or DEFAULT_TARGETS, f"{sid}:{mix_seed}")
        items.append({"snippet_id": sid, "task": t, "target_language": target,
                      "prompt_version_id": versions[t], "generator_model": generator_model,
                      "judge_model": judge_model,
                      "item_key": item_key(sid, t, target, versions[t], generator_model, judge_model)})
    return JobPlan(items, unknown, versions, skipped_kind)


def estimate_cost(store: Store, plan: JobPlan, profiles: dict, prices: dict | None = None) -> dict:
    """Calls, tokens and cost before running: prompt length from the real templates (≈4 chars per
    token), completions at their max_tokens (an upper bound)."""
    from core.generate import build_generator_messages, build_judge_messages
    try:
        from core.llm import estimate_cost as price
    except ImportError:  # pragma: no cover - llm module missing only during development
        price = None
    sample = plan.items[: min(20, plan.n_items)]
    codes = {r["id"]: r for r in store.rows("SELECT id, code, language FROM snippets WHERE list_contains(?, id)",
                                           [[it["snippet_id"] for it in sample]])}
    gen_chars = judge_chars = 0
    for it in sample:
        pv = get_prompt_version(store, it["prompt_version_id"])
        spec = get_task(it["task"])
        good, bad = few_shot(pv.content, None, PoolConfig(), it["item_key"])
        sn = codes[it["snippet_id"]]
        gen_chars += sum(len(m["content"]) for m in
                         build_generator_messages(spec, pv.content, sn, it["target_language"], good, bad))
        judge_chars += sum(len(m["content"]) for m in
                           build_judge_messages(spec, pv.content, sn, it["target_language"], good[0] if good else {}))
    n = plan.n_items
    k = max(1, len(sample))
    gen, judge = profiles["generator"], profiles["judge"]
    gen_pt = int(gen_chars / k / 4) * n
    gen_ct = int(gen.max_tokens) * n
    judge_pt = int(judge_chars / k / 4 + gen.max_tokens) * n
    judge_ct = int(judge.max_tokens) * n
    cost = 0.0
    if price is not None:
        cost = price(gen.model, gen_pt, gen_ct, prices) + price(judge.model, judge_pt, judge_ct, prices)
    return {"items": n, "calls": 2 * n, "prompt_tokens": gen_pt + judge_pt,
            "completion_tokens": gen_ct + judge_ct, "cost_usd": round(cost, 4)}


# --------------------------------------------------------------------------- jobs in the database

def _retry_write(fn: Callable[[], Any], attempts: int = 20) -> Any:
    """Run a small write, retrying DuckDB's optimistic-concurrency conflicts (page vs worker)."""
    for i in range(attempts):
        try:
            return fn()
        except duckdb.TransactionException:
            if i == attempts - 1:
                raise
            time.sleep(0.02 * (i + 1))


def create_job(store: Store, snippet_ids: Sequence[str], *, profiles: dict, task: str | None = None,
               mix: dict[str, float] | None = None, target_languages: Sequence[str] | None = None,
               concurrency: int = 8, max_calls: int | None = None, max_cost: float | None = None,
               pool: PoolConfig | None = None, seeds_only: bool = False, name: str | None = None,
               selection_id: int | None = None, mix_seed: int = 0, source: str | None = None) -> int:
    """Plan and persist a job; returns its id. Items done in another job are stored as 'skipped'."""
    if concurrency < 1:
        raise ShoalError("Concurrency must be at least 1.")
    gen, judge = profiles["generator"], profiles["judge"]
    plan = plan_items(store, snippet_ids, task=task, mix=mix, target_languages=target_languages,
                      generator_model=gen.model, judge_model=judge.model, seeds_only=seeds_only,
                      mix_seed=mix_seed)
    done_elsewhere = {r["item_key"]: r["generation_id"] for r in store.rows(
        "SELECT item_key, any_value(generation_id) AS generation_id FROM job_items "
        "WHERE status = 'succeeded' AND list_contains(?, item_key) GROUP BY item_key",
        [[it["item_key"] for it in plan.items]])}
    params = {
        "task": task, "mix": mix, "target_languages": list(target_languages or []),
        "concurrency": concurrency, "max_calls": max_calls, "max_cost": max_cost,
        "pool": (pool or PoolConfig()).to_json(), "pool_snapshots": {"0": PoolSnapshot.take(store).to_json()},
        "seeds_only": seeds_only, "mix_seed": mix_seed, "source": source,
        "profiles": {r: p.public() if hasattr(p, "public") else p.model_dump() for r, p in profiles.items()},
        "prompt_versions": plan.prompt_versions, "unknown_ids": len(plan.unknown_ids),
        "not_seeds": plan.skipped_kind, "usage": {"calls": 0, "cost_usd": 0.0}, "stop_reason": None,
    }
    import pandas as pd
    with store.transaction() as cur:
        job_id = int(cur.execute(
            "INSERT INTO jobs(name, status, params, selection_id, n_items) VALUES (?, 'pending', ?, ?, ?) RETURNING id",
            [name, json.dumps(params), selection_id, plan.n_items]).fetchone()[0])
        frame = pd.DataFrame(plan.items)
        frame["job_id"] = job_id
        frame["status"] = [("skipped" if k in done_elsewhere else "pending") for k in frame["item_key"]]
        frame["generation_id"] = [done_elsewhere.get(k) for k in frame["item_key"]]
        frame["error"] = [("already generated in another job" if k in done_elsewhere else None)
                          for k in frame["item_key"]]
        frame["generation_id"] = frame["generation_id"].astype("Int64")
        cur.register("_job_items_new", frame)
        cols = ", ".join(frame.columns)
        cur.execute(f"INSERT INTO job_items ({cols}) SELECT {cols} FROM _job_items_new")
        cur.unregister("_job_items_new")
    store.audit("create", "job", job_id, after={"n_items": plan.n_items, "task": task, "mix": mix})
    return job_id


def get_job(store: Store, job_id: int) -> dict:
    row = store.one("SELECT * FROM jobs WHERE id = ?", [job_id])
    if row is None:
        raise ShoalError(f"Job {job_id} does not exist (see `shoal jobs`).")
    row["params"] = json.loads(row["params"]) if isinstance(row["params"], str) else (row["params"] or {})
    return row


def set_job_status(store: Store, job_id: int, status: str) -> None:
    _retry_write(lambda: store.execute("UPDATE jobs SET status = ?, updated_at = current_timestamp WHERE id = ?",
                                       [status, job_id]))


def pause_job(store: Store, job_id: int) -> None:
    """Ask the runner to stop launching items; in-flight items finish and are stored."""
    get_job(store, job_id)
    set_job_status(store, job_id, "paused")
    _signal(store, job_id)


def cancel_job(store: Store, job_id: int) -> None:
    """Stop the job; unfinished items stay pending (a later resume can still run them)."""
    get_job(store, job_id)
    set_job_status(store, job_id, "cancelled")
    _signal(store, job_id)


def retry_failed(store: Store, job_id: int) -> int:
    """Put failed items back to pending; returns how many."""
    get_job(store, job_id)
    n = int(store.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'failed'", [job_id]))
    _retry_write(lambda: store.execute(
        "UPDATE job_items SET status = 'pending', updated_at = current_timestamp WHERE job_id = ? AND status = 'failed'",
        [job_id]))
    set_job_status(store, job_id, "pending")
    return n


def job_counts(store: Store, job_id: int) -> dict[str, int]:
    counts = {s: 0 for s in ("pending", "running", "succeeded", "failed", "skipped")}
    for r in store.rows("SELECT status, count(*) AS n FROM job_items WHERE job_id = ? GROUP BY status", [job_id]):
        counts[r["status"]] = int(r["n"])
    return counts


def job_summary(store: Store, job_id: int) -> dict:
    job = get_job(store, job_id)
    counts = job_counts(store, job_id)
    q = store.one("""
        SELECT count(g.id) AS generations,
               count(*) FILTER (WHERE g.prefilter_ok = FALSE) AS prefilter_rejected,
               count(j.id) AS judged,
               count(*) FILTER (WHERE j.overall) AS judge_passed
        FROM job_items i JOIN generations g ON g.id = i.generation_id
        LEFT JOIN judgments j ON j.generation_id = g.id
        WHERE i.job_id = ? AND i.status <> 'skipped'""", [job_id]) or {}
    failures = store.rows("""SELECT coalesce(error, 'unknown') AS reason, count(*) AS n FROM job_items
                             WHERE job_id = ? AND status = 'failed' GROUP BY 1 ORDER BY n DESC LIMIT 20""", [job_id])
    prefilter = store.rows("""
        SELECT split_part(r.reason, ':', 1) AS reason, count(*) AS n
        FROM (SELECT unnest(CAST(g.prefilter_reasons AS VARCHAR[])) AS reason
              FROM job_items i JOIN generations g ON g.id = i.generation_id
              WHERE i.job_id = ? AND i.status <> 'skipped' AND g.prefilter_ok = FALSE) r
        GROUP BY 1 ORDER BY n DESC""", [job_id])
    p = job["params"]
    return {"job_id": job_id, "name": job["name"], "status": job["status"], "n_items": job["n_items"],
            "items": counts, **{k: int(v or 0) for k, v in q.items()},
            "usage": p.get("usage", {}), "stop_reason": p.get("stop_reason"),
            "failures": failures, "prefilter_reasons": prefilter,
            "created_at": str(job["created_at"]), "heartbeat_at": str(job["heartbeat_at"]),
            "task": p.get("task"), "mix": p.get("mix")}


def list_jobs(store: Store, limit: int = 100) -> list[dict]:
    rows = store.rows(f"""
        SELECT j.id, j.name, j.status, j.n_items, j.created_at, j.heartbeat_at,
               json_extract_string(j.params, '$.task') AS task,
               count(*) FILTER (WHERE i.status = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE i.status = 'failed') AS failed,
               count(*) FILTER (WHERE i.status IN ('pending', 'running')) AS pending,
               count(*) FILTER (WHERE i.status = 'skipped') AS skipped
        FROM jobs j LEFT JOIN job_items i ON i.job_id = j.id
        GROUP BY ALL ORDER BY j.id DESC LIMIT {int(limit)}""")
    for r in rows:
        r["task"] = r["task"] or "mix"
        r["interrupted"] = is_interrupted(store, r["id"], r["status"], r["heartbeat_at"])
    return rows


def is_interrupted(store: Store, job_id: int, status: str | None = None, heartbeat_at: Any = None) -> bool:
    """A job marked running whose runner is gone (no live worker here, heartbeat stale)."""
    if status is None:
        job = get_job(store, job_id)
        status, heartbeat_at = job["status"], job["heartbeat_at"]
    if status != "running" or worker_alive(store, job_id):
        return False
    if heartbeat_at is None:
        return True
    age = store.scalar("SELECT epoch(CAST(current_timestamp AS TIMESTAMP) - CAST(? AS TIMESTAMP))", [str(heartbeat_at)])
    return age is None or float(age) > STALE_AFTER_S


# --------------------------------------------------------------------------- the runner

@dataclass
class _RunState:
    calls: int = 0
    cost_usd: float = 0.0
    done: int = 0
    total: int = 0
    stop: str | None = None          # paused | cancelled | budget
    stop_reason: str | None = None
    last_note: str = ""
    completed_here: int = 0
    in_flight: int = 0
    item_costs: list[float] = field(default_factory=list)


def _make_clients(profiles: dict, store: Store, concurrency: int, prices: dict | None, options: dict | None):
    from core.llm import LLMClient
    # defer_log: an item's judge call need not wait for the commit of its generator call's log row;
    # run_item flushes both logs before the item's own result is written (so no generation ever
    # refers to an uncommitted llm_calls row)
    options = {"defer_log": os.environ.get("SHOAL_DEFER_LOG", "1") == "1", **(options or {})}
    return tuple(LLMClient(store, profiles[role], prices=prices, max_concurrency=concurrency, **options)
                 for role in ("generator", "judge"))


def _profiles_of(job: dict) -> dict:
    from core.config import Profile
    stored = job["params"].get("profiles") or {}
    if set(stored) < {"generator", "judge"}:
        raise ShoalError(f"Job {job['id']} has no stored model profiles.")
    out = {role: Profile(**stored[role]) for role in ("generator", "judge")}
    for role, prof in out.items():
        if prof.source == "local":   # the embedded server's port changes between runs: find it (or start it) again
            from core import local_llm
            server = local_llm.ensure_server(prof.model or None)
            out[role] = prof.model_copy(update={"base_url": server.base_url, "model": server.model})
    return out


def _values(rows: list[list], casts: Sequence[str] | None = None) -> tuple[str, list]:
    """A multi-row VALUES list and its flat parameters (one statement instead of one per row)."""
    one = "(" + ", ".join(f"?::{c}" if c else "?" for c in (casts or [""] * len(rows[0]))) + ")"
    return ", ".join([one] * len(rows)), [x for row in rows for x in row]


_GEN_COLS = ("job_id, job_item_id, snippet_id, task, target_language, prompt_version_id, generator_model, fields, "
             "raw_text, parse_ok, prefilter_ok, prefilter_reasons, llm_call_id")
_JUDGE_COLS = "generation_id, judge_model, prompt_version_id, rules, overall, analysis, raw_text, parse_ok, llm_call_id"


def _write_batch(store: Store, job_id: int, running: list[int], results: list[tuple[dict, ItemResult]],
                 count_attempt: set[int] = frozenset()) -> None:
    """One transaction for everything the writer collected: items newly in flight are marked running;
    each finished item gets its generation + judgment + status. An item is written whole or not at all;
    an item's earlier (failed, unreviewed) generation is replaced, never duplicated. A handful of
    statements per batch whatever its size: DuckDB's cost is per statement, not per row."""
    with store.transaction() as cur:
        mark = running
        if mark:
            cur.execute("UPDATE job_items SET status = 'running', attempts = attempts + 1, error = NULL, "
                        "updated_at = current_timestamp WHERE list_contains(?, id) AND status = 'pending'", [mark])
        if not results:
            return
        redo = [item["id"] for item, _ in results if item.get("generation_id") is not None or item.get("attempts")]
        if redo:
            old = [r[0] for r in cur.execute(
                "SELECT g.id FROM generations g LEFT JOIN reviews r ON r.generation_id = g.id "
                "WHERE list_contains(?, g.job_item_id) AND r.generation_id IS NULL", [redo]).fetchall()]
            if old:
                cur.execute("DELETE FROM judgments WHERE list_contains(?, generation_id)", [old])
                cur.execute("DELETE FROM generations WHERE list_contains(?, id)", [old])
        by_item = {item["id"]: (item, res) for item, res in results}
        gen_rows = [[job_id, item["id"], item["snippet_id"], item["task"], item["target_language"],
                     item["prompt_version_id"], item["generator_model"],
                     None if res.fields is None else json.dumps(res.fields, ensure_ascii=False),
                     res.raw_text, res.parse_ok, res.prefilter_ok, json.dumps(res.prefilter_reasons), res.gen_call_id]
                    for item, res in results if res.has_generation]
        gen_of: dict[int, int] = {}
        if gen_rows:
            values, params = _values(gen_rows, ["BIGINT", "BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR",
                                                "JSON", "VARCHAR", "BOOLEAN", "BOOLEAN", "JSON", "BIGINT"])
            for gid, item_id in cur.execute(f"INSERT INTO generations ({_GEN_COLS}) VALUES {values} "
                                            f"RETURNING id, job_item_id", params).fetchall():
                gen_of[int(item_id)] = int(gid)
        judge_rows = [[gen_of[item_id], item["judge_model"], item["prompt_version_id"],
                       None if res.judge_rules is None else json.dumps(res.judge_rules, ensure_ascii=False),
                       res.judge_overall, res.judge_analysis, res.judge_raw, res.judge_parse_ok, res.judge_call_id]
                      for item_id, (item, res) in by_item.items() if res.judged and item_id in gen_of]
        if judge_rows:
            values, params = _values(judge_rows, ["BIGINT", "VARCHAR", "BIGINT", "JSON", "BOOLEAN", "VARCHAR",
                                                  "VARCHAR", "BOOLEAN", "BIGINT"])
            cur.execute(f"INSERT INTO judgments ({_JUDGE_COLS}) VALUES {values}", params)
        status_rows = [[item["id"], "failed" if res.error else "succeeded", res.error, gen_of.get(item["id"]),
                        1 if item["id"] in count_attempt else 0] for item, res in results]
        values, params = _values(status_rows, ["BIGINT", "VARCHAR", "VARCHAR", "BIGINT", "INTEGER"])
        cur.execute(f"""UPDATE job_items SET status = v.status, error = v.error, generation_id = v.generation_id,
                        attempts = job_items.attempts + v.bump, updated_at = current_timestamp
                        FROM (VALUES {values}) v(id, status, error, generation_id, bump)
                        WHERE job_items.id = v.id""", params)


class _BatchWriter:
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

    def _loop(self) -> None:
        while True:
            self._wake.wait(0.5)
            if not self._closed:
                time.sleep(self.LINGER_S)   # let results that finish together share one commit
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
            bump = finished & unmarked
            if running or batch:
                try:
                    _retry_write(lambda: _write_batch(self.store, self.job_id, running,
                                                      [(i, r) for i, r, _ in batch], bump))
                    errors = [None] * len(batch)
                except Exception:
                    errors = []   # isolate the bad item: write the rest one by one
                    for item, res, _ in batch:
                        try:
                            _retry_write(lambda: _write_batch(self.store, self.job_id, [], [(item, res)], bump))
                            errors.append(None)
                        except Exception as exc:  # noqa: BLE001 - reported to the item's coroutine
                            errors.append(exc)
                for (_, _, fut), exc in zip(batch, errors):
                    try:
                        self.loop.call_soon_threadsafe(self._settle, fut, exc)
                    except RuntimeError:   # the loop is gone (cancelled run)
                        pass
            elif self._closed:
                return


def _record_snapshot(store: Store, job_id: int, block: int, snap: PoolSnapshot) -> None:
    def do():
        with store.transaction() as cur:
            row = cur.execute("SELECT params FROM jobs WHERE id = ?", [job_id]).fetchone()
            params = json.loads(row[0]) if row[0] else {}
            params.setdefault("pool_snapshots", {})[str(block)] = snap.to_json()
            cur.execute("UPDATE jobs SET params = ? WHERE id = ?", [json.dumps(params), job_id])
    _retry_write(do)


def _heartbeat(store: Store, job_id: int, state: _RunState) -> str:
    """Record liveness and usage; return the status the database holds (the page may have paused us)."""
    def do():
        with store.transaction() as cur:
            row = cur.execute("SELECT status, params FROM jobs WHERE id = ?", [job_id]).fetchone()
            params = json.loads(row[1]) if row[1] else {}
            params["usage"] = {"calls": state.calls, "cost_usd": round(state.cost_usd, 6)}
            cur.execute("UPDATE jobs SET heartbeat_at = current_timestamp, params = ? WHERE id = ?",
                        [json.dumps(params), job_id])
            return row[0]
    return _retry_write(do)


def _finish(store: Store, job_id: int, state: _RunState) -> str:
    def do():
        with store.transaction() as cur:
            row = cur.execute("SELECT status, params FROM jobs WHERE id = ?", [job_id]).fetchone()
            params = json.loads(row[1]) if row[1] else {}
            params["usage"] = {"calls": state.calls, "cost_usd": round(state.cost_usd, 6)}
            params["stop_reason"] = state.stop_reason
            cur.execute("UPDATE job_items SET status = 'pending' WHERE job_id = ? AND status = 'running'", [job_id])
            left = cur.execute("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'pending'",
                               [job_id]).fetchone()[0]
            if state.stop == "cancelled" or row[0] == "cancelled":
                status = "cancelled"
            elif left == 0:
                status = "done"
            else:
                status = "paused"
            cur.execute("UPDATE jobs SET status = ?, params = ?, heartbeat_at = current_timestamp, "
                        "updated_at = current_timestamp WHERE id = ?", [status, json.dumps(params), job_id])
            return status
    status = _retry_write(do)
    try:
        store.checkpoint()
    except duckdb.Error:   # another thread is mid-transaction; DuckDB checkpoints on its own later
        pass
    return status


async def _run(store: Store, job_id: int, progress: ProgressFn | None, cancel: threading.Event | None,
               prices: dict | None, concurrency: int | None, client_options: dict | None) -> str:
    job = get_job(store, job_id)
    params = job["params"]
    profiles = _profiles_of(job)
    C = int(concurrency or params.get("concurrency") or 8)
    if any(getattr(p, "source", "") == "local" for p in profiles.values()):
        C = 1   # the embedded llama.cpp server answers one request at a time: more only queue into timeouts
    usage = params.get("usage") or {}
    state = _RunState(calls=int(usage.get("calls", 0)), cost_usd=float(usage.get("cost_usd", 0.0)))
    max_calls, max_cost = params.get("max_calls"), params.get("max_cost")
    pool_cfg = PoolConfig(**(params.get("pool") or {}))
    snapshots = {int(k): PoolSnapshot(**v) for k, v in (params.get("pool_snapshots") or {}).items()}
    refresh_every = max(1, int(pool_cfg.refresh_every or 1))

    def reset_and_start():
        with store.transaction() as cur:
            cur.execute("UPDATE job_items SET status = 'pending' WHERE job_id = ? AND status = 'running'", [job_id])
            cur.execute("UPDATE jobs SET status = 'running', heartbeat_at = current_timestamp, "
                        "updated_at = current_timestamp WHERE id = ?", [job_id])
    _retry_write(reset_and_start)

    def fail_orphans():   # an item whose snippet was deleted since planning can never run
        store.execute("""UPDATE job_items SET status = 'failed', error = 'snippet no longer in the database',
                         updated_at = current_timestamp WHERE job_id = ? AND status = 'pending'
                         AND snippet_id NOT IN (SELECT id FROM snippets)""", [job_id])
    _retry_write(fail_orphans)
    items = store.rows("""SELECT i.*, s.code, s.language, s.kind FROM
                            (SELECT *, row_number() OVER (ORDER BY id) - 1 AS position FROM job_items
                             WHERE job_id = ?) i
                          JOIN snippets s ON s.id = i.snippet_id
                          WHERE i.status = 'pending' ORDER BY i.id""", [job_id])
    counts = job_counts(store, job_id)
    state.total = int(job["n_items"])
    state.done = counts["succeeded"] + counts["failed"] + counts["skipped"]
    contents = {pid: get_prompt_version(store, pid).content for pid in {it["prompt_version_id"] for it in items}}
    job_tasks = sorted({it["task"] for it in items})

    loop = asyncio.get_running_loop()
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shoal-job-{job_id}-db")
    batch_writer = _BatchWriter(store, job_id, loop)

    async def db(fn, *args):
        return await loop.run_in_executor(writer, fn, *args)

    def report(note: str = "") -> None:
        if progress is not None:
            progress(state.done, state.total, note)

    gen_client, judge_client = _make_clients(profiles, store, C, prices, client_options)
    sem = asyncio.Semaphore(C)
    tasks: set[asyncio.Task] = set()

    pools_of_block: dict[int, dict[str, Pools]] = {}
    writing: set[asyncio.Future] = set()   # items past their LLM calls whose result is being written

    async def pools_for(block: int) -> dict[str, Pools]:
        """The pools for a block of items: from its recorded snapshot, or a new one recorded now
        (durably, before any of the block's prompts is sent, so a resume rebuilds the same prompts)."""
        if block not in pools_of_block:
            snap = snapshots.get(block)
            if snap is None:
                if writing:   # results already answered belong in the new snapshot: let them land first
                    await asyncio.gather(*list(writing), return_exceptions=True)
                snap = await db(PoolSnapshot.take, store)
                await db(_record_snapshot, store, job_id, block, snap)
                snapshots[block] = snap
            loaded = await db(lambda: {t: Pools.load(store, t, snap) for t in job_tasks})
            pools_of_block.clear()       # earlier blocks are done launching
            pools_of_block[block] = loaded
        return pools_of_block[block]

    async def run_item(item: dict, pools: dict[str, Pools]) -> None:
        slot = True   # the concurrency slot bounds LLM calls in flight; the database write does not need it
        try:
            batch_writer.mark_running(item["id"])
            spec = get_task(item["task"])
            content = contents[item["prompt_version_id"]]
            good, bad = few_shot(content, pools[item["task"]], pool_cfg, item["item_key"])
            snippet = {"id": item["snippet_id"], "code": item["code"], "language": item["language"]}
            try:
                res = await generate_one(gen_client, judge_client, spec, content, snippet,
                                         item["target_language"], good, bad)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or an unexpected client error: fail the item, keep the job going
                res = ItemResult(error=f"internal: {type(exc).__name__}: {exc}"[:500])
            state.calls += res.calls
            state.cost_usd += res.cost_usd
            state.item_costs.append(res.cost_usd)
            state.in_flight -= 1
            sem.release()
            slot = False
            written = loop.create_future()
            writing.add(written)
            try:
                try:
                    await gen_client.flush_log()
                    await judge_client.flush_log()
                except Exception as exc:  # noqa: BLE001 - the item fails with the reason, the job goes on
                    res = ItemResult(error=f"internal: call log not written: {exc}"[:500])
                await batch_writer.submit(item, res)
            finally:
                writing.discard(written)
                written.set_result(None)
            state.done += 1
            state.completed_here += 1
            report(res.error or ("judged" if res.judged else "pre-filtered"))
        finally:
            if slot:
                state.in_flight -= 1
                sem.release()

    async def heartbeat() -> None:
        while True:
            try:
                status = await db(_heartbeat, store, job_id, state)
            except duckdb.Error:      # a missed beat is harmless; the next one retries
                status = None
            if status in ("paused", "cancelled") and state.stop is None:
                state.stop, state.stop_reason = status, f"{status} by user"
            if cancel is not None and cancel.is_set() and state.stop is None:
                state.stop, state.stop_reason = "cancelled", "cancelled"
            await asyncio.sleep(HEARTBEAT_S)

    def over_budget() -> str | None:
        if max_calls is not None and state.calls + 2 * (state.in_flight + 1) > int(max_calls):
            return f"budget: call cap {max_calls} reached ({state.calls} calls made)"
        if max_cost is not None:
            avg = (sum(state.item_costs) / len(state.item_costs)) if state.item_costs else 0.0
            if state.cost_usd + avg * (state.in_flight + 1) > float(max_cost):
                return f"budget: cost cap ${max_cost} reached (${state.cost_usd:.4f} spent)"
        return None

    hb = asyncio.create_task(heartbeat())
    report("starting")
    try:
        for item in items:
            await sem.acquire()
            if cancel is not None and cancel.is_set() and state.stop is None:
                state.stop, state.stop_reason = "cancelled", "cancelled"
            budget = over_budget() if state.stop is None else None
            if budget and state.in_flight > 0:   # wait for the in-flight items' real cost before deciding
                sem.release()
                while state.in_flight > 0 and over_budget():
                    await asyncio.sleep(0.05)
                await sem.acquire()
                budget = over_budget()
            if budget:
                state.stop, state.stop_reason = "budget", budget
            if state.stop:
                sem.release()
                break
            item_pools = await pools_for(int(item["position"]) // refresh_every)
            state.in_flight += 1
            t = asyncio.create_task(run_item(item, item_pools))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if state.stop == "cancelled":
            for t in list(tasks):
                t.cancel()
        if tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
    finally:
        leftover = [t for t in tasks if not t.done()]   # interrupted (Ctrl-C, error): items stay pending
        for t in leftover:
            t.cancel()
        hb.cancel()
        await asyncio.gather(hb, *leftover, return_exceptions=True)
        for c in (gen_client, judge_client):
            try:
                await c.aclose()
                await loop.run_in_executor(None, c.close)
            except Exception:
                pass
        await loop.run_in_executor(None, batch_writer.close)
        status = await db(_finish, store, job_id, state)
        writer.shutdown(wait=True)
    report(status)
    return status


def run_job(store: Store, job_id: int, *, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None, prices: dict | None = None,
            concurrency: int | None = None, client_options: dict | None = None) -> dict:
    """Run (or resume) a job until its pending items are done, it is paused/cancelled or a budget
    cap stops it. Blocking; returns the job summary. `client_options` go to both LLMClients
    (max_retries, max_parse_retries, backoff_base_s, ...)."""
    job = get_job(store, job_id)
    key = (str(store.path), int(job_id))
    with _WORKERS_LOCK:
        if key in _RUNNING:
            raise ShoalError(f"Job {job_id} is already running in this process.")
        _RUNNING.add(key)
    try:
        if job["status"] == "cancelled":
            set_job_status(store, job_id, "pending")
        from core.llm import run_sync
        # run_sync: also from a thread that already runs an event loop (Jupyter, Playwright's sync API)
        run_sync(_run(store, job_id, progress, cancel, prices, concurrency, client_options))
    finally:
        with _WORKERS_LOCK:
            _RUNNING.discard(key)
    return job_summary(store, job_id)


# --------------------------------------------------------------------------- worker threads (for the app)

_WORKERS_LOCK = threading.Lock()
_RUNNING: set[tuple[str, int]] = set()
_WORKERS: dict[tuple[str, int], "JobWorker"] = {}


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
                job = get_job(self.store, self.job_id)
                params = job["params"]
                params["stop_reason"] = f"error: {self.error}"[:500]
                _retry_write(lambda: self.store.execute(
                    "UPDATE jobs SET status = 'paused', params = ? WHERE id = ?", [json.dumps(params), self.job_id]))
            except Exception:
                pass


def start_worker(store: Store, job_id: int, prices: dict | None = None) -> JobWorker:
    """Start (or return the live) background worker for a job."""
    key = (str(store.path), int(job_id))
    with _WORKERS_LOCK:
        w = _WORKERS.get(key)
        if w is not None and w.is_alive():
            return w
        if key in _RUNNING:
            raise ShoalError(f"Job {job_id} is already running in this process.")
        w = JobWorker(store, job_id, prices)
        _WORKERS[key] = w
    w.start()
    return w


def worker_alive(store: Store, job_id: int) -> bool:
    key = (str(store.path), int(job_id))
    w = _WORKERS.get(key)
    return (w is not None and w.is_alive()) or key in _RUNNING


def _signal(store: Store, job_id: int) -> None:
    w = _WORKERS.get((str(store.path), int(job_id)))
    if w is not None and w.is_alive():
        status = store.scalar("SELECT status FROM jobs WHERE id = ?", [job_id])
        if status == "cancelled":
            w.cancel.set()


def wait_for_worker(store: Store, job_id: int, timeout: float | None = None) -> bool:
    w = _WORKERS.get((str(store.path), int(job_id)))
    if w is None:
        return True
    w.join(timeout)
    return not w.is_alive()
