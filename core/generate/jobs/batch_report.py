"""What a batch-mode job's provider batches did: each round's lines (what, why, how they came back)
and the batches in flight, for the Generate page and `shoal jobs --show`."""
from __future__ import annotations

from collections import Counter
from typing import Mapping

from core.generate.jobs.records import get_job
from core.store import Store

_OUTCOMES = {"pending": "in flight", "ok": "answered", "parse": "did not parse", "format": "format refused",
             "retry": "expired or failed", "fatal": "error", "cancelled": "cancelled by the provider",
             "not_run": "cancelled by you"}


def tally(counts: Mapping[str, int]) -> str:
    """Counts as "name ×n", the largest first."""
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def batch_rounds(store: Store, job_id: int) -> list[dict]:
    """Each round of a batch-mode job: how many lines it sent, what (the items' steps: generate,
    repair N, judge), why (first call, tests failed, line expired or failed, ...), how they came back,
    and `text`, the line the page and `shoal jobs` print."""
    out: dict[int, dict] = {}
    for r in store.rows("""SELECT b.round, coalesce(r.step, r.role) AS step, coalesce(r.reason, 'first call') AS reason,
                                  r.status, count(*) AS n
                           FROM batch_requests r JOIN batches b ON b.id = r.batch_id
                           WHERE b.job_id = ? GROUP BY ALL ORDER BY ALL""", [job_id]):
        d = out.setdefault(int(r["round"]), {"round": int(r["round"]), "lines": 0, "sent": Counter(),
                                             "why": Counter(), "outcome": Counter()})
        n = int(r["n"])
        d["lines"] += n
        d["sent"][r["step"]] += n
        d["why"][r["reason"]] += n
        d["outcome"][_OUTCOMES.get(r["status"], r["status"])] += n
    rounds = []
    for d in out.values():
        d = {**d, **{k: dict(d[k]) for k in ("sent", "why", "outcome")}}
        d["text"] = (f"round {d['round']}: {d['lines']} line(s) · sent: {tally(d['sent'])} · why: {tally(d['why'])}"
                     f" · came back: {tally(d['outcome'])}")
        rounds.append(d)
    return rounds


def batch_status(store: Store, job_id: int) -> dict:
    """A job's provider batches for the page and `shoal jobs --show`: the ones in flight with their
    request counts, every round (`round_lines`: what each sent, how many lines and why), and the
    cost at the batch price."""
    job = get_job(store, job_id)
    rows = store.rows("""SELECT id, round, role, provider, model, provider_batch_id, status, n_lines,
                                request_total, request_completed, request_failed, cost_usd,
                                CAST(created_at AS VARCHAR) AS created_at, CAST(updated_at AS VARCHAR) AS updated_at
                         FROM batches WHERE job_id = ? ORDER BY id""", [job_id])
    return {"batch": bool(job["params"].get("batch")), "rounds": max((r["round"] for r in rows), default=0),
            "in_flight": [r for r in rows if r["status"] != "collected"], "batches": rows,
            "round_lines": batch_rounds(store, job_id),
            "cost_usd": round(sum(float(r["cost_usd"] or 0) for r in rows), 6)}

