"""The batch-mode tables (`batches`, `batch_requests`, `batch_item_rounds`): what a batch-mode run
(core.generate.jobs.batch) records before and after each provider request, and reads back to plan a
round. Every write is one transaction, so a crash leaves a state a resume can continue from."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.config import Profile
from core.llm import insert_calls
from core.llm.batch.routes import BatchInfo, BatchProvider, chunk_lines
from core.llm.lifecycle import GENERATE
from core.llm.tokens import count_messages
from core.store import Store, insert_frame, register

WRITE_CHUNK = 500          # items / rows per statement when writing results


def open_batches(store: Store, job_id: int) -> list[dict]:
    """The job's batches not collected yet, each with its `age_s` since it was sent (or planned)."""
    return store.rows("""SELECT *, coalesce(epoch(now()) - submitted_at,
                                            date_diff('second', created_at, current_timestamp::TIMESTAMP)) AS age_s
                         FROM batches WHERE job_id = ? AND status <> 'collected' ORDER BY id""", [job_id])


def note_info(store: Store, batch_id: int, info: BatchInfo) -> None:
    """Record what the provider says about a batch (id, status, counts, files)."""
    store.write(lambda cur: cur.execute(
        """UPDATE batches SET provider_batch_id = ?, status = ?, request_total = ?, request_completed = ?,
           request_failed = ?, output_file_id = ?, error_file_id = ?, error = ?, updated_at = current_timestamp
           WHERE id = ?""", [info.id, info.status, info.total, info.completed, info.failed, info.output_file_id,
                            info.error_file_id, info.errors, batch_id]))


def cancel_requested(store: Store, batch_id: int) -> None:
    """You cancelled this batch: the lines it never ran are sent again on resume, never counted."""
    store.write(lambda cur: cur.execute("UPDATE batches SET cancel_requested = true WHERE id = ?", [batch_id]))


_SUBMISSION_COLUMNS = ("input_file_id", "status", "submitted_at")


def record_submission(store: Store, batch_id: int, **columns: Any) -> None:
    """A step of a batch's submission (file uploaded, create request about to be sent), written
    before the provider request that could create the batch."""
    names = [c for c in columns if c in _SUBMISSION_COLUMNS]
    sets = ", ".join(f"{c} = ?" for c in names)
    store.write(lambda cur: cur.execute(f"UPDATE batches SET {sets}, updated_at = current_timestamp WHERE id = ?",
                                        [columns[c] for c in names] + [batch_id]))


def claimed(store: Store, provider_batch_id: str) -> bool:
    """Whether some batch row already records this provider batch (then it is never adopted again)."""
    return bool(store.scalar("SELECT count(*) FROM batches WHERE provider_batch_id = ?", [provider_batch_id]))


@dataclass
class Need:
    """One batch line to send: the first call of an item not answered yet, the step of the item it
    answers (core.llm.lifecycle), why it is sent and the item's try it counts in."""
    item_id: int
    role: str
    key: str
    mode: str
    body: dict
    step: str = GENERATE
    reason: str = "first call"
    item_try: int = 0


Group = tuple[str, Profile, BatchProvider, list[Need]]


def record_round(store: Store, job_id: int, round_no: int, groups: list[Group],
                 new_pins: list[int], waiting: list[int]) -> None:
    """The round's batches and lines, the items it planned first, its items marked running: one transaction."""
    def write(cur) -> None:
        for roles, profile, provider, needs in groups:
            for chunk_needs in _split(needs, provider):
                bid = int(cur.execute(
                    "INSERT INTO batches(job_id, round, role, provider, base_url, model, n_lines) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [job_id, round_no, roles, provider.provider, profile.base_url, chunk_needs[0].body["model"],
                     len(chunk_needs)]).fetchone()[0])
                frame = pd.DataFrame({"batch_id": bid, "custom_id": [f"{n.item_id}-{n.role}" for n in chunk_needs],
                                      "job_item_id": [n.item_id for n in chunk_needs],
                                      "role": [n.role for n in chunk_needs],
                                      "payload_hash": [n.key for n in chunk_needs],
                                      "mode": [n.mode for n in chunk_needs],
                                      "body": [json.dumps(n.body, ensure_ascii=False) for n in chunk_needs],
                                      "step": [n.step for n in chunk_needs],
                                      "reason": [n.reason for n in chunk_needs],
                                      "item_try": [n.item_try for n in chunk_needs]})
                insert_frame(cur, "batch_requests", frame)       # body: JSON text, cast on insert
        if new_pins:
            insert_frame(cur, "batch_item_rounds", pd.DataFrame({"job_item_id": new_pins, "job_id": job_id,
                                                                 "round": round_no}))
        cur.execute("UPDATE job_items SET status = 'running', updated_at = current_timestamp "
                    "WHERE list_contains(?, id) AND status = 'pending'", [waiting])
    store.write(write)


def _split(needs: list[Need], provider: BatchProvider) -> list[list[Need]]:
    """Needs in chunks the provider accepts as one batch each."""
    lines = [provider.line(f"{n.item_id}-{n.role}", n.body) for n in needs]
    by_id = {line["custom_id"]: n for n, line in zip(needs, lines)}
    return [[by_id[line["custom_id"]] for line in chunk]
            for chunk in chunk_lines(lines, provider.max_lines, provider.max_bytes)]


def request_tokens(body: dict) -> tuple[int, int]:
    """(prompt tokens, output limit) of a line's request, in either provider's shape."""
    system = [{"role": "system", "content": body["system"]}] if isinstance(body.get("system"), str) else []
    prompt = count_messages(system + list(body.get("messages") or []), body["model"]).tokens
    return prompt, int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def line_history(store: Store, job_id: int) -> list[dict]:
    """The lines answered so far in this job, oldest first; `current`: sent in its item's present
    try (a retry by hand starts the counts again)."""
    return store.rows("""SELECT r.batch_id, r.custom_id, r.job_item_id, r.payload_hash, r.role, r.step, r.status,
                                r.error, r.mode, r.llm_call_id, c.response_text, c.response_format,
                                coalesce(r.item_try, i.attempts) >= i.attempts AS current
                         FROM batch_requests r JOIN batches b ON b.id = r.batch_id
                         JOIN job_items i ON i.id = r.job_item_id
                         LEFT JOIN llm_calls c ON c.id = r.llm_call_id
                         WHERE b.job_id = ? AND r.status <> 'pending' ORDER BY b.id, r.custom_id""", [job_id])


def job_replies(store: Store, job_id: int) -> dict[str, list[dict]]:
    """Successful llm_calls rows of the payloads this job sent in batches, newest first (one query)."""
    out: dict[str, list[dict]] = {}
    for r in store.rows("""SELECT payload_hash, id, response_text, response_format FROM llm_calls
                           WHERE error IS NULL AND response_text IS NOT NULL AND payload_hash IN
                             (SELECT r.payload_hash FROM batch_requests r JOIN batches b ON b.id = r.batch_id
                              WHERE b.job_id = ?)
                           ORDER BY id DESC""", [job_id]):
        out.setdefault(r["payload_hash"], []).append(r)
    return out


def end_unsent(cur, batch_id: int, why: str) -> None:
    """Inside a transaction: a batch never created ends its lines with `why` (their items fail)."""
    cur.execute("UPDATE batch_requests SET status = 'fatal', error = ?, body = NULL "
                "WHERE batch_id = ? AND status = 'pending'", [why, batch_id])
    cur.execute("UPDATE batches SET status = 'collected', error = ?, collected_at = current_timestamp, "
                "updated_at = current_timestamp WHERE id = ?", [why, batch_id])


def write_collected(cur, job_id: int, batch_id: int, calls: list[list], updates: list[list], ran: int,
                    cost: float) -> None:
    """Inside a transaction: a finished batch's `llm_calls` rows, its lines' outcomes (`updates`:
    custom id, status, error, whether it has a call row), the batch marked collected and the job's
    calls and cost."""
    ids: list[int] = []
    for start in range(0, len(calls), WRITE_CHUNK):
        ids += insert_calls(cur, calls[start:start + WRITE_CHUNK])
    call_ids = iter(ids)
    frame = pd.DataFrame({"custom_id": [u[0] for u in updates], "status": [u[1] for u in updates],
                          "error": [u[2] for u in updates],
                          "llm_call_id": pd.array([next(call_ids) if u[3] else None for u in updates],
                                                  dtype="Int64")})
    register(cur, "_collected", frame)
    try:
        cur.execute("""UPDATE batch_requests SET status = c.status, error = c.error, llm_call_id = c.llm_call_id,
                       body = NULL FROM _collected c
                       WHERE batch_requests.batch_id = ? AND batch_requests.custom_id = c.custom_id""", [batch_id])
    finally:
        cur.unregister("_collected")
    cur.execute("UPDATE batches SET status = 'collected', cost_usd = ?, collected_at = current_timestamp, "
                "updated_at = current_timestamp WHERE id = ?", [round(cost, 8), batch_id])
    cur.execute("UPDATE jobs SET calls = calls + ?, cost_usd = cost_usd + ? WHERE id = ?",
                [ran, round(cost, 8), job_id])
