"""Jobs in the database: create, read, control (pause / cancel / retry) and the reads pages show.

Control goes through `jobs.status` (the page and the CLI set `paused` / `cancelled`); the runner
reads it with its heartbeat. Liveness (heartbeat, calls, cost, stop reason) lives in columns of
`jobs`; `jobs.params` holds what the job was asked to do and its frozen pool snapshots.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd

from core.errors import ShoalError
from core.generate.items import PoolConfig, PoolSnapshot
from core.generate.jobs.plan import plan_items
from core.generate.jobs.registry import signal_worker, worker_alive
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.store import Store, insert_frame
from core.team import members as team

STALE_AFTER_S = 15.0
DONE_STATUSES = ("succeeded", "failed", "skipped")


def _job_params(*, task, mix, target_languages, concurrency, max_calls, max_cost, pool, snapshot, seeds_only,
                mix_seed, source, profiles, plan, batch=False) -> dict:
    return {
        "batch": batch, "task": task, "mix": mix, "target_languages": list(target_languages or []),
        "concurrency": concurrency, "max_calls": max_calls, "max_cost": max_cost,
        "pool": (pool or PoolConfig()).to_json(), "pool_snapshots": {"0": snapshot.to_json()},
        "seeds_only": seeds_only, "mix_seed": mix_seed, "source": source,
        "profiles": {r: p.public() if hasattr(p, "public") else p.model_dump() for r, p in profiles.items()},
        "prompt_versions": plan.prompt_versions, "unknown_ids": len(plan.unknown_ids),
        "not_seeds": plan.skipped_kind,
    }


def _item_frame(items: list[dict], done_elsewhere: dict[str, int]) -> pd.DataFrame:
    frame = pd.DataFrame(items)
    frame["status"] = [("skipped" if k in done_elsewhere else "pending") for k in frame["item_key"]]
    frame["generation_id"] = [done_elsewhere.get(k) for k in frame["item_key"]]
    frame["error"] = [("already generated in another job" if k in done_elsewhere else None)
                      for k in frame["item_key"]]
    frame["generation_id"] = frame["generation_id"].astype("Int64")
    return frame


def create_job(store: Store, snippet_ids: Sequence[str], *, profiles: dict, task: str | None = None,
               mix: dict[str, float] | None = None, target_languages: Sequence[str] | None = None,
               concurrency: int = DEFAULT_CONCURRENCY, max_calls: int | None = None, max_cost: float | None = None,
               pool: PoolConfig | None = None, seeds_only: bool = False, name: str | None = None,
               selection_id: int | None = None, mix_seed: int = 0, source: str | None = None,
               batch: bool = False, actor: str | None = None) -> int:
    """Plan and persist a job; returns its id. Items done in another job are stored as 'skipped'.
    `batch`: run its calls through the provider's Batch API (core.generate.jobs.batch)."""
    team.authorize(store, actor, "jobs", target=name or task or "mix")
    if concurrency < 1:
        raise ShoalError("Concurrency must be at least 1.")
    gen, judge = profiles["generator"], profiles["judge"]
    if batch:
        from core.llm.batch.routes import check_batch_profiles
        check_batch_profiles(profiles)
    plan = plan_items(store, snippet_ids, task=task, mix=mix, target_languages=target_languages,
                      generator_model=gen.model, judge_model=judge.model, seeds_only=seeds_only,
                      mix_seed=mix_seed)
    done_elsewhere = {r["item_key"]: r["generation_id"] for r in store.rows(
        "SELECT item_key, any_value(generation_id) AS generation_id FROM job_items "
        "WHERE status = 'succeeded' AND list_contains(?, item_key) GROUP BY item_key",
        [[it["item_key"] for it in plan.items]])}
    params = _job_params(task=task, mix=mix, target_languages=target_languages, concurrency=concurrency,
                         max_calls=max_calls, max_cost=max_cost, pool=pool, snapshot=PoolSnapshot.take(store),
                         seeds_only=seeds_only, mix_seed=mix_seed, source=source, profiles=profiles, plan=plan,
                         batch=batch)
    frame = _item_frame(plan.items, done_elsewhere)

    def insert(cur) -> int:
        job_id = int(cur.execute(
            "INSERT INTO jobs(name, status, params, selection_id, n_items) VALUES (?, 'pending', ?, ?, ?) RETURNING id",
            [name, json.dumps(params), selection_id, plan.n_items]).fetchone()[0])
        insert_frame(cur, "job_items", frame.assign(job_id=job_id))
        return job_id

    job_id = store.write(insert)
    store.audit("create", "job", job_id, after={"n_items": plan.n_items, "task": task, "mix": mix})
    return job_id


def get_job(store: Store, job_id: int) -> dict:
    row = store.one("SELECT * FROM jobs WHERE id = ?", [job_id])
    if row is None:
        raise ShoalError(f"Job {job_id} does not exist (see `shoal jobs`).")
    row["params"] = json.loads(row["params"]) if isinstance(row["params"], str) else (row["params"] or {})
    return row


def set_job_status(store: Store, job_id: int, status: str) -> None:
    store.write(lambda cur: cur.execute(
        "UPDATE jobs SET status = ?, updated_at = current_timestamp WHERE id = ?", [status, job_id]))


def pause_job(store: Store, job_id: int, actor: str | None = None) -> None:
    """Ask the runner to stop launching items; in-flight items finish and are stored."""
    team.authorize(store, actor, "jobs", target=f"pause job {job_id}")
    get_job(store, job_id)
    set_job_status(store, job_id, "paused")
    signal_worker(store, job_id)


def mark_cancelled(store: Store, job_id: int, actor: str | None = None) -> None:
    """Stop the job; unfinished items stay pending (a later resume can still run them)."""
    team.authorize(store, actor, "jobs", target=f"cancel job {job_id}")
    get_job(store, job_id)
    set_job_status(store, job_id, "cancelled")
    signal_worker(store, job_id)


def retry_failed(store: Store, job_id: int, actor: str | None = None) -> int:
    """Put failed items back to pending; returns how many."""
    team.authorize(store, actor, "jobs", target=f"retry job {job_id}")
    get_job(store, job_id)
    n = int(store.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'failed'", [job_id]))
    store.write(lambda cur: cur.execute(
        "UPDATE job_items SET status = 'pending', updated_at = current_timestamp WHERE job_id = ? AND status = 'failed'",
        [job_id]))
    set_job_status(store, job_id, "pending")
    return n


def record_stop_reason(store: Store, job_id: int, reason: str, status: str | None = None) -> None:
    """Why a run stopped (and optionally the status it leaves the job in)."""
    store.write(lambda cur: cur.execute(
        "UPDATE jobs SET stop_reason = ?, status = coalesce(?, status) WHERE id = ?", [reason, status, job_id]))


def job_counts(store: Store, job_id: int) -> dict[str, int]:
    counts = {s: 0 for s in ("pending", "running", "succeeded", "failed", "skipped")}
    for r in store.rows("SELECT status, count(*) AS n FROM job_items WHERE job_id = ? GROUP BY status", [job_id]):
        counts[r["status"]] = int(r["n"])
    return counts


def failure_reasons(store: Store, job_id: int, limit: int = 20) -> list[dict]:
    """Failed items of a job grouped by their error, most frequent first."""
    return store.rows("""SELECT coalesce(error, 'unknown') AS reason, count(*) AS n FROM job_items
                         WHERE job_id = ? AND status = 'failed' GROUP BY 1 ORDER BY n DESC LIMIT ?""",
                      [job_id, int(limit)])


def prefilter_counts(store: Store, job_id: int) -> list[dict]:
    """Generations of a job the pre-filter stopped, counted by reason (the part before ':')."""
    return store.rows("""
        SELECT split_part(r.reason, ':', 1) AS reason, count(*) AS n
        FROM (SELECT unnest(CAST(g.prefilter_reasons AS VARCHAR[])) AS reason
              FROM job_items i JOIN generations g ON g.id = i.generation_id
              WHERE i.job_id = ? AND i.status <> 'skipped' AND g.prefilter_ok = FALSE) r
        GROUP BY 1 ORDER BY n DESC""", [job_id])


def job_summary(store: Store, job_id: int) -> dict:
    job = get_job(store, job_id)
    counts = job_counts(store, job_id)
    q = store.one("""
        SELECT count(g.id) AS generations,
               count(*) FILTER (WHERE g.prefilter_ok = FALSE) AS prefilter_rejected,
               count(j.id) AS judged,
               count(*) FILTER (WHERE j.overall) AS judge_passed
        FROM job_items i JOIN generations g ON g.id = i.generation_id
        LEFT JOIN latest_judgments j ON j.generation_id = g.id
        WHERE i.job_id = ? AND i.status <> 'skipped'""", [job_id]) or {}
    p = job["params"]
    return {"job_id": job_id, "name": job["name"], "status": job["status"], "n_items": job["n_items"],
            "items": counts, **{k: int(v or 0) for k, v in q.items()},
            "usage": {"calls": int(job["calls"] or 0), "cost_usd": float(job["cost_usd"] or 0.0)},
            "stop_reason": job["stop_reason"],
            "failures": failure_reasons(store, job_id), "prefilter_reasons": prefilter_counts(store, job_id),
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


# --------------------------------------------------------------------------- reads for the Generate page

def latest_examples(store: Store, job_id: int, limit: int = 8) -> list[dict]:
    """A job's newest generations with their snippet, current judgment and review verdict."""
    return store.rows("""
        SELECT g.id, g.task, g.target_language, g.fields, g.parse_ok, g.prefilter_ok, g.prefilter_reasons,
               g.raw_text, j.overall, j.rules, j.analysis, r.verdict AS review, s.language, s.code
        FROM generations g JOIN snippets s ON s.id = g.snippet_id
        LEFT JOIN latest_judgments j ON j.generation_id = g.id LEFT JOIN reviews r ON r.generation_id = g.id
        WHERE g.job_id = ? ORDER BY g.id DESC LIMIT ?""", [job_id, int(limit)])


def failed_items(store: Store, job_id: int, limit: int = 200) -> list[dict]:
    """A job's failed items, one row each, in plan order."""
    return store.rows("SELECT i.id, i.task, i.snippet_id, i.error, i.attempts FROM job_items i "
                      "WHERE i.job_id = ? AND i.status = 'failed' ORDER BY i.id LIMIT ?", [job_id, int(limit)])
