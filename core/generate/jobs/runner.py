"""Running a job: up to C items in flight, results written by one thread (`writer`), liveness in `jobs` columns.

* Each item is a chain (generator call → pre-filter → judge call), so generator and judge calls of
  different items overlap. Each finished item is written in one transaction (generation + judgment +
  item status) by a single writer thread, so the event loop never waits on DuckDB and a kill -9
  leaves every item either fully written or still pending.
* Restarting a job turns items left `running` back to `pending`; the example pools are frozen per
  block of items (snapshots recorded in `jobs.params` before the block's first prompt is sent), so
  re-assembled prompts are identical and answered calls come from the cache.
* The heartbeat writes `heartbeat_at`, `calls` and `cost_usd` and reads `jobs.status` back, so a
  pause or cancel set by the page or the CLI stops the launching of new items.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import duckdb

from core.errors import ShoalError
from core.generate.items import ItemResult, PoolConfig, Pools, PoolSnapshot, few_shot, generate_one, get_prompt_version
from core.generate.jobs.records import get_job, job_counts, job_summary, set_job_status
from core.generate.jobs.registry import running_here
from core.generate.jobs.writer import BatchWriter
from core.llm.concurrency import job_concurrency
from core.progress import ProgressFn
from core.store import Store
from core.tasks import get_task

HEARTBEAT_S = 0.5


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
    # the runner flushes both logs before the item's own result is written (so no generation ever
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
            from core.llm import local_model as local_llm
            server = local_llm.ensure_server(prof.model or None)
            out[role] = prof.model_copy(update={"base_url": server.base_url, "model": server.model})
    return out


# --------------------------------------------------------------------------- the job row

def _start_run(store: Store, job_id: int) -> None:
    """Items a killed run left running go back to pending; items whose snippet was deleted since
    planning (they can never run) fail with that reason; the job is marked running."""
    def start(cur) -> None:
        cur.execute("UPDATE job_items SET status = 'pending' WHERE job_id = ? AND status = 'running'", [job_id])
        cur.execute("UPDATE jobs SET status = 'running', heartbeat_at = current_timestamp, "
                    "updated_at = current_timestamp WHERE id = ?", [job_id])
    store.write(start)
    store.write(lambda cur: cur.execute(
        """UPDATE job_items SET status = 'failed', error = 'snippet no longer in the database',
           updated_at = current_timestamp WHERE job_id = ? AND status = 'pending'
           AND snippet_id NOT IN (SELECT id FROM snippets)""", [job_id]))


def _pool_models(store: Store, job_id: int) -> tuple[str | None, str | None]:
    """(generator model, judge model) the job's generations and judgments are recorded under (its
    items' models: one pair per job as planned), which its pools' judge tiers are limited to;
    (None, None), pools unfiltered as before, if its items name no single pair."""
    pairs = store.rows("SELECT DISTINCT generator_model, judge_model FROM job_items WHERE job_id = ?", [job_id])
    if len(pairs) != 1:
        return None, None
    return pairs[0]["generator_model"], pairs[0]["judge_model"]


def _record_snapshot(store: Store, job_id: int, block: int, snap: PoolSnapshot) -> None:
    def record(cur) -> None:
        row = cur.execute("SELECT params FROM jobs WHERE id = ?", [job_id]).fetchone()
        params = json.loads(row[0]) if row[0] else {}
        params.setdefault("pool_snapshots", {})[str(block)] = snap.to_json()
        cur.execute("UPDATE jobs SET params = ? WHERE id = ?", [json.dumps(params), job_id])
    store.write(record)


def _heartbeat(store: Store, job_id: int, state: _RunState) -> str | None:
    """Record liveness and usage; return the status the database holds (the page may have paused us)."""
    def beat(cur) -> str | None:
        row = cur.execute("UPDATE jobs SET heartbeat_at = current_timestamp, calls = ?, cost_usd = ? "
                          "WHERE id = ? RETURNING status", [state.calls, round(state.cost_usd, 6), job_id]).fetchone()
        return None if row is None else row[0]
    return store.write(beat)


def _finish(store: Store, job_id: int, state: _RunState) -> str:
    """Record how the run ended; the job is done, paused (items left) or cancelled."""
    def finish(cur) -> str:
        current = cur.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
        cur.execute("UPDATE job_items SET status = 'pending' WHERE job_id = ? AND status = 'running'", [job_id])
        left = cur.execute("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'pending'",
                           [job_id]).fetchone()[0]
        if state.stop == "cancelled" or current == "cancelled":
            status = "cancelled"
        elif left == 0:
            status = "done"
        else:
            status = "paused"
        cur.execute("UPDATE jobs SET status = ?, calls = ?, cost_usd = ?, stop_reason = ?, "
                    "heartbeat_at = current_timestamp, updated_at = current_timestamp WHERE id = ?",
                    [status, state.calls, round(state.cost_usd, 6), state.stop_reason, job_id])
        return status
    status = store.write(finish)
    try:
        store.checkpoint()
    except duckdb.Error:   # another thread is mid-transaction; DuckDB checkpoints on its own later
        pass
    return status


# --------------------------------------------------------------------------- the runner

class JobRunner:
    """One run of one job: launches its pending items until none is left, a pause or cancel is
    asked for, or a budget cap would be passed; then records how the run ended."""

    def __init__(self, store: Store, job_id: int, *, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, prices: dict | None = None,
                 concurrency: int | None = None, client_options: dict | None = None):
        self.store, self.job_id = store, int(job_id)
        self.progress, self.cancel, self.prices, self.client_options = progress, cancel, prices, client_options
        job = get_job(store, job_id)
        params = job["params"]
        self.n_items = int(job["n_items"])
        self.profiles = _profiles_of(job)
        # as asked (or recorded), capped for the embedded model: the rule new jobs were created by
        self.concurrency = job_concurrency(self.profiles, concurrency or params.get("concurrency"))
        self.state = _RunState(calls=int(job["calls"] or 0), cost_usd=float(job["cost_usd"] or 0.0))
        self.max_calls, self.max_cost = params.get("max_calls"), params.get("max_cost")
        self.pool_cfg = PoolConfig(**(params.get("pool") or {}))
        self.snapshots = {int(k): PoolSnapshot(**v) for k, v in (params.get("pool_snapshots") or {}).items()}
        self.pool_models = _pool_models(store, self.job_id)   # few-shot judge tiers: this job's models only
        self.refresh_every = max(1, int(self.pool_cfg.refresh_every or 1))
        self._pools_of_block: dict[int, dict[str, Pools]] = {}
        self._writing: set[asyncio.Future] = set()   # items past their LLM calls whose result is being written
        self._tasks: set[asyncio.Task] = set()

    # -- the run ----------------------------------------------------------------
    async def run(self) -> str:
        """Run until done or stopped; returns the job's status afterwards."""
        items = self._load_pending()
        self.loop = asyncio.get_running_loop()
        self._db_thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"shoal-job-{self.job_id}-db")
        self.batch_writer = BatchWriter(self.store, self.job_id, self.loop)
        self.gen_client, self.judge_client = _make_clients(self.profiles, self.store, self.concurrency,
                                                           self.prices, self.client_options)
        self.sem = asyncio.Semaphore(self.concurrency)
        hb = asyncio.create_task(self._heartbeat_loop())
        self._report("starting")
        try:
            await self._launch(items)
        finally:
            status = await self._shutdown(hb)
        self._report(status)
        return status

    def _load_pending(self) -> list[dict]:
        """Reset the job for this run; its pending items in plan order, with their snippets."""
        _start_run(self.store, self.job_id)
        items = self.store.rows("""SELECT i.*, s.code, s.language, s.kind FROM
                                     (SELECT *, row_number() OVER (ORDER BY id) - 1 AS position FROM job_items
                                      WHERE job_id = ?) i
                                   JOIN snippets s ON s.id = i.snippet_id
                                   WHERE i.status = 'pending' ORDER BY i.id""", [self.job_id])
        counts = job_counts(self.store, self.job_id)
        self.state.total = self.n_items
        self.state.done = counts["succeeded"] + counts["failed"] + counts["skipped"]
        self.contents = {pid: get_prompt_version(self.store, pid).content
                         for pid in {it["prompt_version_id"] for it in items}}
        self.job_tasks = sorted({it["task"] for it in items})
        return items

    async def _launch(self, items: list[dict]) -> None:
        """Start items while a concurrency slot is free and nothing asks to stop; wait for them."""
        for item in items:
            await self.sem.acquire()
            if await self._must_stop():
                self.sem.release()
                break
            item_pools = await self._pools_for(int(item["position"]) // self.refresh_every)
            self.state.in_flight += 1
            t = asyncio.create_task(self._run_item(item, item_pools))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        if self.state.stop == "cancelled":
            for t in list(self._tasks):
                t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _shutdown(self, hb: asyncio.Task) -> str:
        """Whatever ended the run (Ctrl-C, an error): unfinished items stay pending, clients close,
        every collected result is written, and the job row records the outcome."""
        leftover = [t for t in self._tasks if not t.done()]
        for t in leftover:
            t.cancel()
        hb.cancel()
        await asyncio.gather(hb, *leftover, return_exceptions=True)
        for c in (self.gen_client, self.judge_client):
            try:
                await c.aclose()
                await self.loop.run_in_executor(None, c.close)
            except Exception:
                pass
        await self.loop.run_in_executor(None, self.batch_writer.close)
        status = await self._db(_finish, self.store, self.job_id, self.state)
        self._db_thread.shutdown(wait=True)
        return status

    # -- one item ---------------------------------------------------------------
    async def _run_item(self, item: dict, pools: dict[str, Pools]) -> None:
        slot = True   # the concurrency slot bounds LLM calls in flight; the database write does not need it
        try:
            self.batch_writer.mark_running(item["id"])
            res = await self._call_models(item, pools)
            self.state.calls += res.calls
            self.state.cost_usd += res.cost_usd
            self.state.item_costs.append(res.cost_usd)
            self.state.in_flight -= 1
            self.sem.release()
            slot = False
            res = await self._store_result(item, res)
            self.state.done += 1
            self.state.completed_here += 1
            self._report(res.error or ("judged" if res.judged else "pre-filtered"))
        finally:
            if slot:
                self.state.in_flight -= 1
                self.sem.release()

    async def _call_models(self, item: dict, pools: dict[str, Pools]) -> ItemResult:
        spec = get_task(item["task"])
        content = self.contents[item["prompt_version_id"]]
        good, bad = few_shot(content, pools[item["task"]], self.pool_cfg, item["item_key"])
        snippet = {"id": item["snippet_id"], "code": item["code"], "language": item["language"]}
        try:
            return await generate_one(self.gen_client, self.judge_client, spec, content, snippet,
                                      item["target_language"], good, bad)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected client error: fail the item, keep the job going
            return ItemResult(error=f"internal: {type(exc).__name__}: {exc}"[:500])

    async def _store_result(self, item: dict, res: ItemResult) -> ItemResult:
        """Write the item (after its call log rows, which the generation refers to); returns what was written."""
        written = self.loop.create_future()
        self._writing.add(written)
        try:
            try:
                await self.gen_client.flush_log()
                await self.judge_client.flush_log()
            except Exception as exc:  # noqa: BLE001 - the item fails with the reason, the job goes on
                res = ItemResult(error=f"internal: call log not written: {exc}"[:500])
            await self.batch_writer.submit(item, res)
        finally:
            self._writing.discard(written)
            written.set_result(None)
        return res

    async def _pools_for(self, block: int) -> dict[str, Pools]:
        """The pools for a block of items: from its recorded snapshot, or a new one recorded now
        (durably, before any of the block's prompts is sent, so a resume rebuilds the same prompts)."""
        if block not in self._pools_of_block:
            snap = self.snapshots.get(block)
            if snap is None:
                if self._writing:   # results already answered belong in the new snapshot: let them land first
                    await asyncio.gather(*list(self._writing), return_exceptions=True)
                snap = await self._db(PoolSnapshot.take, self.store)
                await self._db(_record_snapshot, self.store, self.job_id, block, snap)
                self.snapshots[block] = snap
            loaded = await self._db(self._load_pools, snap)
            self._pools_of_block.clear()       # earlier blocks are done launching
            self._pools_of_block[block] = loaded
        return self._pools_of_block[block]

    def _load_pools(self, snap: PoolSnapshot) -> dict[str, Pools]:
        """Each of the job's tasks' pools at `snap`, the judge tiers limited to the job's models."""
        gen, judge = self.pool_models
        return {t: Pools.load(self.store, t, snap, generator_model=gen, judge_model=judge)
                for t in self.job_tasks}

    # -- stopping ---------------------------------------------------------------
    def _note_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set() and self.state.stop is None:
            self.state.stop, self.state.stop_reason = "cancelled", "cancelled"

    async def _must_stop(self) -> bool:
        """Holding a slot: should no further item start? A budget cap is judged on the real cost of
        the items in flight, so those are waited for before deciding."""
        state = self.state
        self._note_cancel()
        budget = self._over_budget() if state.stop is None else None
        if budget and state.in_flight > 0:
            self.sem.release()
            while state.in_flight > 0 and self._over_budget():
                await asyncio.sleep(0.05)
            await self.sem.acquire()
            budget = self._over_budget()
        if budget:
            state.stop, state.stop_reason = "budget", budget
        return bool(state.stop)

    def _over_budget(self) -> str | None:
        state = self.state
        if self.max_calls is not None and state.calls + 2 * (state.in_flight + 1) > int(self.max_calls):
            return f"budget: call cap {self.max_calls} reached ({state.calls} calls made)"
        if self.max_cost is not None:
            avg = (sum(state.item_costs) / len(state.item_costs)) if state.item_costs else 0.0
            if state.cost_usd + avg * (state.in_flight + 1) > float(self.max_cost):
                return f"budget: cost cap ${self.max_cost} reached (${state.cost_usd:.4f} spent)"
        return None

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                status = await self._db(_heartbeat, self.store, self.job_id, self.state)
            except duckdb.Error:      # a missed beat is harmless; the next one retries
                status = None
            if status in ("paused", "cancelled") and self.state.stop is None:
                self.state.stop, self.state.stop_reason = status, f"{status} by user"
            self._note_cancel()
            await asyncio.sleep(HEARTBEAT_S)

    # -- helpers ----------------------------------------------------------------
    async def _db(self, fn, *args):
        """Run a blocking database call on the run's own thread (the event loop never waits on DuckDB)."""
        return await self.loop.run_in_executor(self._db_thread, fn, *args)

    def _report(self, note: str = "") -> None:
        if self.progress is not None:
            self.progress(self.state.done, self.state.total, note)


def run_online_job(store: Store, job_id: int, *, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None, prices: dict | None = None,
                   concurrency: int | None = None, client_options: dict | None = None) -> dict:
    """Run (or resume) a job until its pending items are done, it is paused/cancelled or a budget
    cap stops it. Blocking; returns the job summary. `client_options` go to both LLMClients
    (max_retries, max_parse_retries, backoff_base_s, ...)."""
    return run_here(store, job_id, lambda: JobRunner(store, job_id, progress=progress, cancel=cancel, prices=prices,
                                                     concurrency=concurrency, client_options=client_options))


def run_here(store: Store, job_id: int, make_runner: Callable[[], Any]) -> dict:
    """Run a job in this process with the runner `make_runner()` builds (a cancelled job starts
    again as pending), blocking until it stops; returns the job summary."""
    job = get_job(store, job_id)
    with running_here(store, job_id):
        if job["status"] == "cancelled":
            set_job_status(store, job_id, "pending")
        from core.llm import run_sync
        # run_sync: also from a thread that already runs an event loop (Jupyter, Playwright's sync API)
        run_sync(make_runner().run())
    return job_summary(store, job_id)
