"""Evaluation runs in DuckDB (migration 022): create or resume a run, record samples, read results.

Every figure is computed from `eval_problem_results` (per problem: n samples answered, c passed),
so a run's table, its interval and a comparison with another run all come from stored rows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from core.errors import ShoalError
from core.evaluate.stats import bootstrap_ci, per_problem_pass_at_k
from core.llm.calllog import canonical_json
from core.store import Store, returned

UNFINISHED = ("running", "incomplete", "failed", "cancelled")


@dataclass(frozen=True)
class RunIdentity:
    """What makes two evaluations the same run: a second `shoal eval` with these resumes the first."""
    benchmark: str
    source: str | None
    base_url: str
    model: str
    n_samples: int
    temperature: float
    max_tokens: int
    problem_ids: tuple[str, ...]
    params: tuple[tuple[str, Any], ...]
    endpoint: str = ""   # the endpoint's identity (core.evaluate.sampling.endpoint_id)

    @property
    def key(self) -> str:
        payload = {"benchmark": self.benchmark, "source": self.source, "endpoint": self.endpoint,
                   "model": self.model, "n": self.n_samples, "temperature": self.temperature,
                   "max_tokens": self.max_tokens, "problems": list(self.problem_ids), "params": dict(self.params)}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def open_run(store: Store, ident: RunIdentity, ks: list[int]) -> tuple[int, bool]:
    """(run id, resumed): the newest unfinished run with this identity, else a new one."""
    row = store.one(f"SELECT id FROM eval_runs WHERE run_key = ? AND status IN {UNFINISHED} ORDER BY id DESC LIMIT 1",
                    [ident.key])
    if row is not None:
        run_id = int(row["id"])
        store.write(lambda cur: cur.execute("UPDATE eval_runs SET status = 'running', error = NULL, ks = ? "
                                            "WHERE id = ?", [json.dumps(ks), run_id]))
        return run_id, True

    def insert(cur) -> int:
        cur.execute("INSERT INTO eval_runs (run_key, benchmark, source, base_url, model, n_samples, ks, temperature, "
                    "max_tokens, params, n_problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [ident.key, ident.benchmark, ident.source, ident.base_url, ident.model, ident.n_samples,
                     json.dumps(ks), ident.temperature, ident.max_tokens, json.dumps(dict(ident.params)),
                     len(ident.problem_ids)])
        run_id = int(returned(cur))
        cur.executemany("INSERT INTO eval_problems (run_id, problem_id, position) VALUES (?, ?, ?)",
                        [[run_id, pid, i] for i, pid in enumerate(ident.problem_ids)])
        return run_id
    return store.write(insert), False


def done_samples(store: Store, run_id: int) -> set[tuple[str, int]]:
    """(problem, sample) pairs already answered and executed (a sample without a reply is retried)."""
    return {(r[0], int(r[1])) for r in store.execute(
        "SELECT problem_id, sample FROM eval_samples WHERE run_id = ? AND passed IS NOT NULL", [run_id]).fetchall()}


def record_sample(store: Store, run_id: int, row: dict) -> None:
    """One sample's outcome, replacing an earlier no-reply of the same sample."""
    values = [run_id, row["problem_id"], row["sample"], row["completion"], row["status"], row["passed"],
              row["error"], row["exec_seconds"], row["llm_call_id"], row["cached"]]
    store.write(lambda cur: cur.execute(
        "INSERT OR REPLACE INTO eval_samples (run_id, problem_id, sample, completion, status, passed, error, "
        "exec_seconds, llm_call_id, cached) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values))


def finish_run(store: Store, run_id: int, status: str, metrics: dict | None, calls: int, seconds: float,
               error: str | None = None) -> None:
    """Close a session of the run: its status, figures, the requests and seconds it added, and the
    cost of every sample answered by a request (not the cache)."""
    store.write(lambda cur: cur.execute(
        "UPDATE eval_runs SET status = ?, metrics = coalesce(?, metrics), error = ?, calls = calls + ?, "
        "cost_usd = (SELECT coalesce(sum(c.cost_usd), 0) FROM eval_samples s JOIN llm_calls c "
        "ON c.id = s.llm_call_id WHERE s.run_id = ? AND NOT s.cached), seconds = seconds + ?, "
        "finished_at = current_timestamp WHERE id = ?",
        [status, None if metrics is None else json.dumps(metrics), error, calls, run_id, seconds, run_id]))


def get_run(store: Store, run_id: int) -> dict:
    row = store.one("SELECT * FROM eval_runs WHERE id = ?", [int(run_id)])
    if row is None:
        raise ShoalError(f"No evaluation run #{run_id}: `shoal eval runs` lists them.")
    for k in ("ks", "params", "metrics"):
        if isinstance(row.get(k), str):
            row[k] = json.loads(row[k])
    return row


def problem_results(store: Store, run_id: int) -> list[dict]:
    """Per problem of the run, in its order: n (samples answered), c (passed), unscored (no reply, or the sandbox never returned)."""
    return store.rows("SELECT p.problem_id, coalesce(r.n, 0) AS n, coalesce(r.c, 0) AS c, "
                      "coalesce(r.unscored, 0) AS unscored FROM eval_problems p "
                      "LEFT JOIN eval_problem_results r ON r.run_id = p.run_id AND r.problem_id = p.problem_id "
                      "WHERE p.run_id = ? ORDER BY p.position", [int(run_id)])


def sample_statuses(store: Store, run_id: int) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in store.execute(
        "SELECT status, count(*) FROM eval_samples WHERE run_id = ? GROUP BY status ORDER BY status",
        [int(run_id)]).fetchall()}


def run_metrics(store: Store, run_id: int, ks: list[int], seed: int = 0) -> dict:
    """pass@k (for each k no larger than the samples answered) with its 95 % bootstrap interval, over
    the problems with at least one answered sample; a sample that got no reply counts as not passing."""
    results = problem_results(store, run_id)
    scored = [r for r in results if r["n"] + r["unscored"] > 0]
    counts = [(int(r["n"]) + int(r["unscored"]), int(r["c"])) for r in scored]
    out: dict[str, Any] = {"n_problems": len(results), "n_scored": len(scored),
                           "n_samples": sum(n for n, _ in counts), "n_passed": sum(c for _, c in counts),
                           "n_unscored": sum(int(r["unscored"]) for r in scored),
                           "problems_solved": sum(1 for _, c in counts if c > 0),
                           "statuses": sample_statuses(store, run_id), "pass_at_k": {}}
    if not counts:
        out.update(pass_at_1=None, pass_at_1_ci=None)
        return out
    n_min = min(n for n, _ in counts)
    for k in sorted({1, *ks}):
        if k > n_min:
            continue
        scores = per_problem_pass_at_k(counts, k)
        lo, hi = bootstrap_ci(scores, seed=seed)
        out["pass_at_k"][str(k)] = {"value": float(scores.mean()), "ci": [lo, hi]}
    out["pass_at_1"] = out["pass_at_k"]["1"]["value"]
    out["pass_at_1_ci"] = out["pass_at_k"]["1"]["ci"]
    return out


def list_runs(store: Store, limit: int = 100) -> list[dict]:
    """The newest runs with their figures and progress (samples done of those asked)."""
    rows = store.rows("SELECT r.id, r.benchmark, r.source, r.model, r.base_url, r.n_samples, r.n_problems, "
                      "r.temperature, r.status, r.error, r.metrics, r.calls, r.cost_usd, r.seconds, r.created_at, "
                      "r.finished_at, (SELECT count(*) FROM eval_samples s WHERE s.run_id = r.id "
                      "AND s.passed IS NOT NULL) AS samples_done FROM eval_runs r ORDER BY r.id DESC LIMIT ?",
                      [limit])
    for r in rows:
        r["metrics"] = json.loads(r["metrics"]) if isinstance(r["metrics"], str) else r["metrics"]
        r["samples_total"] = int(r["n_problems"]) * int(r["n_samples"])
    return rows
