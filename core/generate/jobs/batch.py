"""Batch mode: a job's LLM calls go through the provider's Batch API in rounds (half price, slower).

The provider is the profile's route (core.llm.batch.routes: OpenAI's Batch API or Anthropic's Message
Batches); everything here -- the rounds, the recorded ids, resume, per-line outcomes, costs -- is
the same for both, driven through `core.llm.batch.shared.BatchProvider`.

A round is plan → submit → poll → collect:

* plan: every pending item walks the online chain (`core.generate.items.generate_one`, through
  `JobRunner._call_models`) with stand-in clients (`_Planner`) that answer from the call log: a
  call answered before is a cache hit; the first call not answered yet becomes a batch line and
  the item waits. So round 1 holds the generator calls of every item, round 2 the judge calls of
  those that passed the pre-filter, later rounds the repair rounds and the retries (expired or
  failed lines, a parse correction, a weaker response_format: the online client's rules, across
  rounds). Items whose chain completes are written through `core.generate.jobs.writer.write_batch`.
  Every line records its item's step (generate, repair N, judge), why it was sent and the item's
  try; the bounds of `core.generate.lifecycle` are counted per item and step in the present try, and a step
  answered before keeps its answer even when a later walk builds its prompt differently (the
  sandbox's output can change between runs) -- so every item, and the job, ends.
* submit: the lines of one endpoint (base URL + model) go into one provider batch. Its rows in
  `batches` / `batch_requests` are written before anything is sent; each submission step (OpenAI:
  the input file id; Anthropic: the time its create request was first sent) and the batch id are
  recorded the moment they happen, and a batch created just before a crash (id never recorded) is
  found again (by its input file; by creation time and size). A restart never submits twice.
* poll: heartbeat and pause / cancel as in the online runner; a cancel cancels the provider batch
  (the lines it finished are still collected: they are paid for).
* collect: every output and error line becomes an `llm_calls` row exactly like an online attempt
  (payload hash = cache key, request, reply, tokens, cost at the batch price), in one transaction
  with its `batch_requests` row and the job's calls and cost. A rerun or an online retry then hits
  the cache.

Few-shot pools: round r reads the pools at snapshot r (recorded in `jobs.params.pool_snapshots`
before its prompts are built); an item always uses the snapshot of the round that first planned it
(`batch_item_rounds`), so re-planning rebuilds byte-identical prompts and finds their answers.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

import pandas as pd
from pydantic import BaseModel

from core.config import Profile
from core.errors import ShoalError
from core.generate.items import Pools, PoolSnapshot
from core.generate.jobs import records
from core.generate.jobs import runner as online
from core.generate.jobs.records import get_job
from core.generate.jobs.runner import HEARTBEAT_S, JobRunner, _finish, _heartbeat, _record_snapshot
from core.generate.jobs.writer import write_batch
from core.generate.lifecycle import GENERATE, RESEND_REASONS, Limits, current_step, first_reason, gave_up, give_up
from core.llm import CallResult, LLMClient, canonical_json, insert_calls, parse_reply
from core.llm.batch.routes import TERMINAL, BatchAPIError, BatchInfo, BatchProvider, LineResult, chunk_lines, provider_for
from core.llm.calllog import successful_hashes, successful_replies
from core.llm.client import parse_correction
from core.llm.failures import classify
from core.llm.formats import MODES
from core.llm.prices import estimate_batch_cost
from core.progress import ProgressFn
from core.store import Store, register
from core.tasks import Judgment, get_task
from core.llm.tokens import count_messages

DEFAULT_POLL_S = 30.0      # OpenAI batches take minutes to hours: polling faster buys nothing
CANCEL_WAIT_S = 60.0       # after a cancel, wait this long for the provider to hand back finished lines
DEFERRED = "waiting for a batch"
WRITE_CHUNK = 500          # items / rows per statement when writing results


# --------------------------------------------------------------------------- batch rows

def _span(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds:.3g} s"


def _open_batches(store: Store, job_id: int) -> list[dict]:
    """The job's batches not collected yet, each with its `age_s` since it was sent (or planned)."""
    return store.rows("""SELECT *, coalesce(epoch(now()) - submitted_at,
                                            date_diff('second', created_at, current_timestamp::TIMESTAMP)) AS age_s
                         FROM batches WHERE job_id = ? AND status <> 'collected' ORDER BY id""", [job_id])


def _note_info(store: Store, batch_id: int, info: BatchInfo) -> None:
    """Record what the provider says about a batch (id, status, counts, files)."""
    store.write(lambda cur: cur.execute(
        """UPDATE batches SET provider_batch_id = ?, status = ?, request_total = ?, request_completed = ?,
           request_failed = ?, output_file_id = ?, error_file_id = ?, error = ?, updated_at = current_timestamp
           WHERE id = ?""", [info.id, info.status, info.total, info.completed, info.failed, info.output_file_id,
                            info.error_file_id, info.errors, batch_id]))


def _cancel_requested(store: Store, batch_id: int) -> None:
    """You cancelled this batch: the lines it never ran are sent again on resume, never counted."""
    store.write(lambda cur: cur.execute("UPDATE batches SET cancel_requested = true WHERE id = ?", [batch_id]))


_SUBMISSION_COLUMNS = ("input_file_id", "status", "submitted_at")


def _record_submission(store: Store, batch_id: int, **columns: Any) -> None:
    """A step of a batch's submission (file uploaded, create request about to be sent), written
    before the provider request that could create the batch."""
    names = [c for c in columns if c in _SUBMISSION_COLUMNS]
    sets = ", ".join(f"{c} = ?" for c in names)
    store.write(lambda cur: cur.execute(f"UPDATE batches SET {sets}, updated_at = current_timestamp WHERE id = ?",
                                        [columns[c] for c in names] + [batch_id]))


def _claimed(store: Store, provider_batch_id: str) -> bool:
    """Whether some batch row already records this provider batch (then it is never adopted again)."""
    return bool(store.scalar("SELECT count(*) FROM batches WHERE provider_batch_id = ?", [provider_batch_id]))


def _frame_insert(cur, table: str, frame: pd.DataFrame, select: str) -> None:
    register(cur, "_batch_rows", frame)
    try:
        cur.execute(f"INSERT INTO {table} SELECT {select} FROM _batch_rows")
    finally:
        cur.unregister("_batch_rows")


@dataclass
class _Need:
    """One batch line to send: the first call of an item not answered yet, the step of the item it
    answers (core.generate.lifecycle), why it is sent and the item's try it counts in."""
    item_id: int
    role: str
    key: str
    mode: str
    body: dict
    step: str = GENERATE
    reason: str = "first call"
    item_try: int = 0


Group = tuple[str, Profile, BatchProvider, list[_Need]]


def _record_round(store: Store, job_id: int, round_no: int, groups: list[Group],
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
                _frame_insert(cur, "batch_requests (batch_id, custom_id, job_item_id, role, payload_hash, mode, body, "
                                   "step, reason, item_try)", frame,
                              "batch_id, custom_id, job_item_id, role, payload_hash, mode, CAST(body AS JSON), "
                              "step, reason, item_try")
        if new_pins:
            _frame_insert(cur, "batch_item_rounds (job_item_id, job_id, round)",
                          pd.DataFrame({"job_item_id": new_pins, "job_id": job_id, "round": round_no}),
                          "job_item_id, job_id, round")
        cur.execute("UPDATE job_items SET status = 'running', updated_at = current_timestamp "
                    "WHERE list_contains(?, id) AND status = 'pending'", [waiting])
    store.write(write)


def _split(needs: list[_Need], provider: BatchProvider) -> list[list[_Need]]:
    """Needs in chunks the provider accepts as one batch each."""
    lines = [provider.line(f"{n.item_id}-{n.role}", n.body) for n in needs]
    by_id = {line["custom_id"]: n for n, line in zip(needs, lines)}
    return [[by_id[line["custom_id"]] for line in chunk]
            for chunk in chunk_lines(lines, provider.max_lines, provider.max_bytes)]


def _request_tokens(body: dict) -> tuple[int, int]:
    """(prompt tokens, output limit) of a line's request, in either provider's shape."""
    system = [{"role": "system", "content": body["system"]}] if isinstance(body.get("system"), str) else []
    prompt = count_messages(system + list(body.get("messages") or []), body["model"]).tokens
    return prompt, int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def _history(store: Store, job_id: int) -> list[dict]:
    """The lines answered so far in this job, oldest first; `current`: sent in its item's present
    try (a retry by hand starts the counts again)."""
    return store.rows("""SELECT r.batch_id, r.custom_id, r.job_item_id, r.payload_hash, r.role, r.step, r.status,
                                r.error, r.mode, r.llm_call_id, c.response_text, c.response_format,
                                coalesce(r.item_try, i.attempts) >= i.attempts AS current
                         FROM batch_requests r JOIN batches b ON b.id = r.batch_id
                         JOIN job_items i ON i.id = r.job_item_id
                         LEFT JOIN llm_calls c ON c.id = r.llm_call_id
                         WHERE b.job_id = ? AND r.status <> 'pending' ORDER BY b.id, r.custom_id""", [job_id])


def _job_replies(store: Store, job_id: int) -> dict[str, list[dict]]:
    """Successful llm_calls rows of the payloads this job sent in batches, newest first (one query)."""
    out: dict[str, list[dict]] = {}
    for r in store.rows("""SELECT payload_hash, id, response_text, response_format FROM llm_calls
                           WHERE error IS NULL AND response_text IS NOT NULL AND payload_hash IN
                             (SELECT r.payload_hash FROM batch_requests r JOIN batches b ON b.id = r.batch_id
                              WHERE b.job_id = ?)
                           ORDER BY id DESC""", [job_id]):
        out.setdefault(r["payload_hash"], []).append(r)
    return out


# --------------------------------------------------------------------------- planning

class _PlanningClient:
    """Stands in for an LLMClient inside generate_one while a round is planned."""

    def __init__(self, planner: _Planner, llm: LLMClient, role: str, provider: BatchProvider):
        self.planner, self.llm, self.role, self.provider = planner, llm, role, provider

    async def complete(self, messages: list[dict], schema: type[BaseModel], *, role: str | None = None,
                       cache: bool = True) -> CallResult:
        return self.planner.answer(self, messages, schema)


@dataclass
class _Planner:
    """Answers calls from the call log; the first unanswered call of an item becomes a `_Need`.
    Each call belongs to a step of its item (core.generate.lifecycle): a step answered before keeps its
    answer, and a step's lines in the item's present try are counted against the limits."""
    store: Store
    history: list[dict]
    replies: dict[str, list[dict]]
    ok_hashes: set[str]
    modes: dict[str, str]
    limits: Limits
    schemas: dict[str, type[BaseModel]]
    tries: dict[int, int] = field(default_factory=dict)      # item id -> its try (job_items.attempts)
    needs: dict[str, _Need] = field(default_factory=dict)    # payload hash -> its line
    waiting: dict[int, str] = field(default_factory=dict)    # item id -> the payload hash it waits for
    item_id: int = 0

    def __post_init__(self) -> None:
        self.by_key: dict[str, list[dict]] = {}
        self.by_step: dict[tuple[int, str], list[dict]] = {}
        self.item_lines: Counter[int] = Counter()
        for r in self.history:
            self.by_key.setdefault(r["payload_hash"], []).append(r)
            if r["step"] is not None:
                self.by_step.setdefault((int(r["job_item_id"]), r["step"]), []).append(r)
            if r["current"] and r["status"] != "not_run":
                self.item_lines[int(r["job_item_id"])] += 1

    def client(self, llm: LLMClient, role: str, provider: BatchProvider) -> _PlanningClient:
        return _PlanningClient(self, llm, role, provider)

    def answer(self, via: _PlanningClient, messages: list[dict], schema: type[BaseModel]) -> CallResult:
        """The logged answer of this call (or of its step), the failure the online client would
        end with (a bound reached), or DEFERRED after noting the call as a line of the next batch."""
        llm, role, step_name = via.llm, via.role, current_step()
        key = llm.cache_key(messages, schema)
        self.schemas[key] = schema
        hit = self._cached(key, schema) or self._answered_step(step_name, schema)
        if hit is not None:
            return hit
        if self.item_id in self.waiting:   # an earlier step of this item waits for its line: nothing after
            return CallResult(False, None, None, DEFERRED, None, False)   # it is sent before it is answered
        past = self._past(key, step_name)
        why = give_up([p["status"] for p in past], self.limits)
        if why is None and self.item_lines[self.item_id] >= self.limits.item_lines():
            why = f"{self.item_lines[self.item_id]} lines sent for this item"
        if why is not None:
            return self._ended(past, why)
        last_parse = next((p for p in reversed(past) if p["status"] == "parse"), None)
        correction = parse_correction(last_parse["response_text"], last_parse["error"]) if last_parse else []
        mode = self.modes[role]
        if key not in self.needs:
            reason = RESEND_REASONS.get(past[-1]["status"], "sent again") if past else first_reason(step_name)
            self.needs[key] = _Need(self.item_id, role, key, mode,
                                    via.provider.request(llm, messages, schema, mode, correction),
                                    step_name, reason, self.tries.get(self.item_id, 0))
        self.waiting[self.item_id] = key
        return CallResult(False, None, None, DEFERRED, None, False)

    def _cached(self, key: str, schema: type[BaseModel]) -> CallResult | None:
        rows = self.replies.get(key)
        if rows is None and key in self.ok_hashes:
            rows = successful_replies(self.store, key)
        for row in rows or []:
            parsed, err = parse_reply(row["response_text"], schema)
            if err is None:
                return CallResult(True, parsed, row["response_text"], None, int(row["id"]), True,
                                  response_format=row["response_format"])
        return None

    def _answered_step(self, step_name: str, schema: type[BaseModel]) -> CallResult | None:
        """The answer this item's step already got, when this walk built its prompt differently (a
        sandbox's output that changed between runs): the step is never sent again."""
        for r in reversed(self.by_step.get((self.item_id, step_name), [])):
            if r["status"] == "ok" and r["response_text"] is not None:
                parsed, err = parse_reply(r["response_text"], schema)
                if err is None:
                    return CallResult(True, parsed, r["response_text"], None, int(r["llm_call_id"]), True,
                                      response_format=r["response_format"])
        return None

    def _past(self, key: str, step_name: str) -> list[dict]:
        """The lines of this call in the present try: sent with its payload, or for this item's step."""
        lines = {(r["batch_id"], r["custom_id"]): r
                 for r in self.by_key.get(key, []) + self.by_step.get((self.item_id, step_name), []) if r["current"]}
        return [lines[k] for k in sorted(lines)]

    @staticmethod
    def _ended(past: list[dict], why: str) -> CallResult:
        """The failed result the online client would return after these lines (a bound reached)."""
        last = past[-1] if past else {"status": None, "error": None, "llm_call_id": None}
        model_text = next((p["response_text"] for p in reversed(past) if p["status"] == "parse"), None)
        error = last["error"] if last["status"] == "fatal" else gave_up(last["error"], why)
        return CallResult(False, None, model_text, error, last["llm_call_id"], False)


def _modes(history: list[dict], llms: dict[str, LLMClient],
           allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each role's structured-output mode: the client's (or the first its provider's lines can ask
    in), moved past every mode the server refused."""
    modes = {role: llm.mode if llm.mode in allowed[role] else allowed[role][0] for role, llm in llms.items()}
    for line in history:
        if line["status"] == "format" and line["mode"] in MODES[:-1]:
            nxt = MODES[MODES.index(line["mode"]) + 1]
            if MODES.index(nxt) > MODES.index(modes[line["role"]]):
                modes[line["role"]] = nxt
    return modes


# --------------------------------------------------------------------------- the runner

class BatchJobRunner(JobRunner):
    """One run of a batch-mode job: rounds until no item is left, a pause / cancel / budget stop,
    or a provider error that needs the user (then the job is left paused with the reason)."""

    def __init__(self, store: Store, job_id: int, *, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, prices: dict | None = None,
                 client_options: dict | None = None, poll_s: float | None = None):
        super().__init__(store, job_id, progress=progress, cancel=cancel, prices=prices,
                         client_options=client_options)
        self.limits = Limits.of(client_options)     # the online client's limits, read the same way
        self.poll_s = float(poll_s if poll_s is not None else os.environ.get("SHOAL_BATCH_POLL_S", DEFAULT_POLL_S))
        self.llm = {role: LLMClient(store, self.profiles[role], prices=prices) for role in ("generator", "judge")}
        self.providers: dict[tuple, BatchProvider] = {}
        self.schemas: dict[str, type[BaseModel]] = {}
        self._round_pools: dict[int, dict[str, Pools]] = {}
        self._beat_at = 0.0
        self._api_errors: dict[int, int] = {}    # batch row -> Batch API errors one after another

    # -- the run ----------------------------------------------------------------
    async def run(self) -> str:
        self._load_pending()      # marks the job running (a paused job is being resumed)
        self._report("starting")
        try:
            for role, llm in self.llm.items():
                if not llm.model:
                    llm.model = self._provider(self.profiles[role]).first_model()
            while await self._step():
                pass
        except BatchAPIError as exc:
            self.state.stop, self.state.stop_reason = "error", f"error: {exc}"[:500]
        finally:
            for llm in self.llm.values():
                llm.close()
            for provider in self.providers.values():
                provider.close()
            status = _finish(self.store, self.job_id, self.state)
        self._report(status)
        return status

    async def _step(self) -> bool:
        """See the open batches through, or plan and submit the next round; False when the run is over."""
        if self._beat():
            return False
        if _open_batches(self.store, self.job_id):
            if not self.schemas:
                await self._plan(self._load_pending(), 0)   # a resumed run: learn each line's schema
            return self._see_through()
        items = self._load_pending()
        if not items:
            return False
        round_no = int(self.store.scalar("SELECT coalesce(max(round), 0) + 1 FROM batches WHERE job_id = ?",
                                         [self.job_id]))
        planner, results = await self._plan(items, round_no)
        self._write_results(results)
        if not planner.needs:
            return bool(results)
        needs = self._within_budget(list(planner.needs.values()))
        if not needs:
            return False
        pinned = self._pinned()
        waiting = list(planner.waiting)
        _record_round(self.store, self.job_id, round_no, self._groups(needs),
                      [i for i in waiting if i not in pinned], waiting)
        sent, why = Counter(n.step for n in needs), Counter(n.reason for n in needs)
        self._report(f"round {round_no}: {len(needs)} calls sent as a batch ({_tally(sent)}; why: {_tally(why)})")
        return True

    # -- planning ---------------------------------------------------------------
    async def _plan(self, items: list[dict], round_no: int) -> tuple[_Planner, list[tuple[dict, Any]]]:
        """Walk every item's chain from the call log; (the planner with the lines to send, finished items).
        Round 0 only learns the schemas of the lines in flight."""
        history = _history(self.store, self.job_id)
        providers = {role: self._provider(self.profiles[role]) for role in self.llm}
        modes = _modes(history, self.llm, {role: p.modes for role, p in providers.items()})
        planner = _Planner(self.store, history, _job_replies(self.store, self.job_id), successful_hashes(self.store),
                           modes, self.limits, self.schemas, {int(it["id"]): int(it["attempts"] or 0) for it in items})
        self.gen_client, self.judge_client = planner.client(self.llm["generator"], "generator", providers["generator"]), \
            planner.client(self.llm["judge"], "judge", providers["judge"])
        pinned = self._pinned()
        results = []
        for n, item in enumerate(items):
            if n % 200 == 199:
                self._beat()          # a large round takes a while to plan: stay visibly alive
            planner.item_id = int(item["id"])
            res = await self._call_models(item, self._pools_of_round(pinned.get(item["id"], round_no)))
            if planner.item_id not in planner.waiting:
                results.append((item, res))
        return planner, results

    def _pinned(self) -> dict[int, int]:
        return {int(r["job_item_id"]): int(r["round"]) for r in self.store.rows(
            "SELECT job_item_id, round FROM batch_item_rounds WHERE job_id = ?", [self.job_id])}

    def _pools_of_round(self, round_no: int) -> dict[str, Pools]:
        """The pools at the round's snapshot (taken and recorded before its first prompt is built)."""
        round_no = max(round_no, 1)
        if round_no not in self._round_pools:
            snap = self.snapshots.get(round_no)
            if snap is None:
                snap = PoolSnapshot.take(self.store)
                _record_snapshot(self.store, self.job_id, round_no, snap)
                self.snapshots[round_no] = snap
            self._round_pools[round_no] = self._load_pools(snap)
        return self._round_pools[round_no]

    def _write_results(self, results: list[tuple[dict, Any]]) -> None:
        for start in range(0, len(results), WRITE_CHUNK):
            chunk = results[start:start + WRITE_CHUNK]
            self.store.write(partial(write_batch, job_id=self.job_id, running=[], results=chunk,
                                     count_attempt={it["id"] for it, _ in chunk}))
            self.state.done += len(chunk)
            self.state.completed_here += len(chunk)
            self._report(f"{len(chunk)} items written")

    def _within_budget(self, needs: list[_Need]) -> list[_Need]:
        """The lines this round may send under the call and cost caps (judge lines first: their items
        are further along); an empty list stops the run with the reason."""
        needs.sort(key=lambda n: (n.role != "judge", n.item_id))
        if self.max_calls is not None:
            room = int(self.max_calls) - self.state.calls
            if room < len(needs):
                needs = needs[: max(0, room)]
                if not needs:
                    self.state.stop, self.state.stop_reason = \
                        "budget", f"budget: call cap {self.max_calls} reached ({self.state.calls} calls made)"
        if self.max_cost is not None and needs:
            spent, kept = self.state.cost_usd, []
            for n in needs:   # prompt tokens counted, output at its limit: an upper bound at the batch price
                prompt, limit = _request_tokens(n.body)
                spent += estimate_batch_cost(n.body["model"], prompt, limit, self.prices,
                                             self.profiles[n.role].base_url)
                if spent > float(self.max_cost):
                    break
                kept.append(n)
            if not kept:
                self.state.stop, self.state.stop_reason = \
                    "budget", f"budget: cost cap ${self.max_cost} reached (${self.state.cost_usd:.4f} spent)"
            needs = kept
        return needs

    def _groups(self, needs: list[_Need]) -> list[Group]:
        """Lines by endpoint (a provider batch holds one model's requests)."""
        groups: dict[tuple, list[_Need]] = {}
        for n in needs:
            p = self.profiles[n.role]
            groups.setdefault((p.base_url, n.body["model"], p.api_key_env, p.batch_api), []).append(n)
        out = []
        for members in groups.values():
            roles = ",".join(sorted({n.role for n in members}))
            profile = self.profiles[members[0].role]
            out.append((roles, profile, self._provider(profile), members))
        return out

    # -- submitting and polling ---------------------------------------------------
    def _provider(self, profile: Profile) -> BatchProvider:
        key = (profile.base_url, profile.api_key_env, profile.batch_api)
        if key not in self.providers:
            self.providers[key] = provider_for(profile)
        return self.providers[key]

    def _profile_of(self, b: dict) -> Profile:
        return self.profiles[str(b["role"]).split(",")[0]]

    def _submit(self, b: dict) -> None:
        """Create the batch at the provider (or find the one a crash left unrecorded); each step is
        recorded before the request that could create it, the batch id the moment it comes back."""
        def lines() -> list[tuple[str, dict]]:
            return [(r["custom_id"], json.loads(r["body"])) for r in self.store.rows(
                "SELECT custom_id, body FROM batch_requests WHERE batch_id = ? ORDER BY custom_id", [b["id"]])]
        info = self._provider(self._profile_of(b)).submit(
            b, lines, partial(_record_submission, self.store, b["id"]), partial(_claimed, self.store))
        _note_info(self.store, b["id"], info)

    def _see_through(self) -> bool:
        """Poll the open batches until each is collected (True) or the run must stop (False)."""
        last_poll, cancel_deadline = 0.0, None
        while True:
            stop = self._beat()
            if stop and self.state.stop != "cancelled":
                return False          # paused: the batches keep running; a resume polls them again
            if stop and cancel_deadline is None:
                cancel_deadline = time.monotonic() + CANCEL_WAIT_S
                self._cancel_open()
            if time.monotonic() - last_poll >= self.poll_s or last_poll == 0.0:
                last_poll = time.monotonic()
                if self._poll_once(submit=cancel_deadline is None):
                    return cancel_deadline is None
            if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                return False
            time.sleep(min(self.poll_s, HEARTBEAT_S))

    def _poll_once(self, submit: bool = True) -> bool:
        """One look at every open batch (submitting those not yet sent); True when none is left open."""
        left = 0
        for b in _open_batches(self.store, self.job_id):
            try:
                if b["provider_batch_id"] is None:
                    if not submit:
                        continue
                    self._submit(b)
                    b = self.store.one_row("SELECT * FROM batches WHERE id = ?", [b["id"]])
                info = self._provider(self._profile_of(b)).retrieve(b["provider_batch_id"])
                if (info.status, info.completed, info.failed) != (b["status"], b["request_completed"],
                                                                  b["request_failed"]):
                    _note_info(self.store, b["id"], info)
                    self._report(f"batch {b['id']} {info.status}: {info.completed + info.failed}/{info.total}")
                self._api_errors.pop(b["id"], None)
                if info.terminal:
                    self._collect(b, info)
                    continue
                self._cancel_if_overdue(b)
            except BatchAPIError as exc:
                outcome = self._refused(b, exc) if exc.retryable else "stop"
                if outcome == "stop":
                    raise
                if outcome == "ended":
                    continue
            left += 1
        return left == 0

    def _cancel_if_overdue(self, b: dict) -> None:
        """A batch still not ended `batch_overdue_s` after it was sent is cancelled (once): the lines
        it never ran count as expired ones (`_unrun_status`), so a provider that never finishes a
        batch cannot keep the job running for ever."""
        if b.get("overdue") or b.get("cancel_requested") or b["provider_batch_id"] is None:
            return
        if float(b.get("age_s") or 0.0) < self.limits.batch_overdue_s:
            return
        self.store.write(lambda cur: cur.execute("UPDATE batches SET overdue = true WHERE id = ?", [b["id"]]))
        self._report(f"batch {b['id']}: not ended {_span(b['age_s'])} after it was sent; cancelling it")
        _note_info(self.store, b["id"], self._provider(self._profile_of(b)).cancel(b["provider_batch_id"]))

    def _refused(self, b: dict, exc: BatchAPIError) -> str:
        """A retryable Batch API error, counted (core.generate.lifecycle's batch_api_tries, one after another):
        "again" below the bound; at it, a batch never created ends its lines with the reason ("ended":
        their items fail, the job goes on), one created stops the run with the reason ("stop": a
        resume polls it again)."""
        n = self._api_errors[b["id"]] = self._api_errors.get(b["id"], 0) + 1
        if n < self.limits.batch_api_tries:
            self._report(f"batch {b['id']}: {exc} (try {n} of {self.limits.batch_api_tries}; trying again)")
            return "again"
        why = gave_up(str(exc), f"{n} Batch API requests refused one after another")
        if b["provider_batch_id"] is not None:
            exc.args = (f"{why}; resume the job to poll batch {b['provider_batch_id']} again",)
            return "stop"
        self.store.write(lambda cur: self._end_unsent(cur, b["id"], why))
        self._report(f"batch {b['id']}: {why}")
        return "ended"

    @staticmethod
    def _end_unsent(cur, batch_id: int, why: str) -> None:
        cur.execute("UPDATE batch_requests SET status = 'fatal', error = ?, body = NULL "
                    "WHERE batch_id = ? AND status = 'pending'", [why, batch_id])
        cur.execute("UPDATE batches SET status = 'collected', error = ?, collected_at = current_timestamp, "
                    "updated_at = current_timestamp WHERE id = ?", [why, batch_id])

    def _cancel_open(self) -> None:
        for b in _open_batches(self.store, self.job_id):
            if b["provider_batch_id"] and b["status"] not in TERMINAL:
                _cancel_requested(self.store, b["id"])
                try:
                    _note_info(self.store, b["id"], self._provider(self._profile_of(b)).cancel(b["provider_batch_id"]))
                except BatchAPIError as exc:
                    self._report(f"batch {b['id']}: cancel failed: {exc}")

    def _beat(self) -> bool:
        """Heartbeat (at most every HEARTBEAT_S) with pause / cancel read back; True when the run must stop."""
        now = time.monotonic()
        if now - self._beat_at >= HEARTBEAT_S:
            self._beat_at = now
            status = _heartbeat(self.store, self.job_id, self.state)
            if status in ("paused", "cancelled") and self.state.stop is None:
                self.state.stop, self.state.stop_reason = status, f"{status} by user"
        self._note_cancel()
        return self.state.stop is not None

    # -- collecting ---------------------------------------------------------------
    def _collect(self, b: dict, info: BatchInfo) -> None:
        """Every line of a finished batch into llm_calls and batch_requests, with the job's calls and
        cost, in one transaction."""
        provider = self._provider(self._profile_of(b))
        results = provider.results(info)
        requests = self.store.rows("""SELECT r.custom_id, r.role, r.payload_hash, r.mode, r.body, i.task
                                      FROM batch_requests r JOIN job_items i ON i.id = r.job_item_id
                                      WHERE r.batch_id = ? AND r.status = 'pending' ORDER BY r.custom_id""", [b["id"]])
        counts = {r["payload_hash"]: r for r in self.store.rows(
            """SELECT r.payload_hash, count(*) FILTER (WHERE r.status = 'retry') AS retries,
                      count(*) FILTER (WHERE r.status = 'parse') AS parses
               FROM batch_requests r JOIN batches b ON b.id = r.batch_id
               WHERE b.job_id = ? AND r.status <> 'pending' GROUP BY 1""", [self.job_id])}
        calls, updates, ran, cost = [], [], 0, 0.0
        for req in requests:
            res = results.get(req["custom_id"])
            if res is None or res.not_run:   # never ran: the batch was cancelled first, or refused as a whole
                status = self._unrun_status(b, info, res)
                why = (f"batch_overdue: cancelled, not ended {_span(self.limits.batch_overdue_s)} after it "
                       "was sent") if b.get("overdue") else (res.error_message if res else None) or info.errors or (
                    f"batch {info.status} before this line ran" if status != "retry"
                    else f"batch {info.status} without a result for this line")
                updates.append([req["custom_id"], status, why, False])
                continue
            out = provider.line_attempt(res, self._schema_of(req), b["model"], prices=self.prices,
                                        base_url=b["base_url"])
            body = {k: v for k, v in json.loads(req["body"]).items() if k != "model"}
            seen = counts.get(req["payload_hash"]) or {}
            request = {**body, "transport_retry": int(seen.get("retries") or 0),
                       "parse_retry": int(seen.get("parses") or 0), "batch_id": b["provider_batch_id"]}
            mode = req["mode"] if "response_format" in body else "text"
            calls.append([req["payload_hash"], req["role"], b["base_url"], b["model"], canonical_json(request),
                          out.text, mode, out.prompt_tokens, out.completion_tokens, None, out.cost_usd, out.error,
                          out.status])
            updates.append([req["custom_id"], *self._classify(out, req["mode"], req["role"]), True])
            ran += res.status_code is not None
            cost += out.cost_usd
        self.store.write(lambda cur: self._write_collected(cur, b["id"], calls, updates, ran, cost))
        self.state.calls += ran
        self.state.cost_usd += cost
        self._report(f"batch {b['id']} collected: {ran} calls, ${cost:.4f}")

    def _unrun_status(self, b: dict, info: BatchInfo, res: LineResult | None) -> str:
        """A line that never ran: `not_run` when you cancelled (sent again on resume, never counted),
        `cancelled` when the provider did (counted: core.generate.lifecycle's cancelled_resends), else a failed
        line (`retry`: the batch was refused as a whole, or it ended without this line's result)."""
        if info.status == "failed" or b.get("overdue"):
            return "retry"
        if b.get("cancel_requested") or self.state.stop == "cancelled":
            return "not_run"
        if info.status in ("cancelled", "cancelling") or (res is not None and res.not_run):
            return "cancelled"
        return "retry"

    def _write_collected(self, cur, batch_id: int, calls: list[list], updates: list[list], ran: int,
                         cost: float) -> None:
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
                    [ran, round(cost, 8), self.job_id])

    def _schema_of(self, req: dict) -> type[BaseModel]:
        known = self.schemas.get(req["payload_hash"])
        if known is not None:
            return known
        return get_task(req["task"]).schema if req["role"] == "generator" else Judgment

    def _classify(self, out, mode: str, role: str) -> tuple[str, str | None]:
        """What the line's outcome means for the next round (the online client's rules), and its
        reason (a fatal one with the hint the online client gives, since it becomes the item's)."""
        if out.kind in ("ok", "parse"):
            return out.kind, out.error
        failure = classify(out, mode, role, self.profiles[role].model or "")
        if failure.kind == "format_rejected" and self.profiles[role].response_format == "auto":
            return "format", out.error
        if failure.kind in ("transient", "rate_limited"):
            return "retry", out.error
        # a refused parameter would be refused again: the request body comes from the same capabilities
        return "fatal", f"{out.error} (hint: {failure.hint})" if failure.hint else out.error


# --------------------------------------------------------------------------- entry points

def run_batch_job(store: Store, job_id: int, *, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None, prices: dict | None = None,
                  client_options: dict | None = None, poll_s: float | None = None) -> dict:
    """Run (or resume) a batch-mode job until its items are done, it is paused / cancelled, a budget
    cap stops it or the provider needs the user. Blocking; returns the job summary."""
    return online.run_here(store, job_id, lambda: BatchJobRunner(store, job_id, progress=progress, cancel=cancel,
                                                                 prices=prices, client_options=client_options,
                                                                 poll_s=poll_s))


_OUTCOMES = {"pending": "in flight", "ok": "answered", "parse": "did not parse", "format": "format refused",
             "retry": "expired or failed", "fatal": "error", "cancelled": "cancelled by the provider",
             "not_run": "cancelled by you"}


def _tally(counts: Mapping[str, int]) -> str:
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
        d["text"] = (f"round {d['round']}: {d['lines']} line(s) · sent: {_tally(d['sent'])} · why: {_tally(d['why'])}"
                     f" · came back: {_tally(d['outcome'])}")
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


def cancel_provider_batches(store: Store, job_id: int) -> int:
    """Cancel a job's provider batches still running (also when no runner is alive); how many."""
    job = get_job(store, job_id)
    stored = job["params"].get("profiles") or {}
    n = 0
    for b in _open_batches(store, job_id):
        if not b["provider_batch_id"] or b["status"] in TERMINAL:
            continue
        profile = Profile(**stored[str(b["role"]).split(",")[0]])
        _cancel_requested(store, b["id"])
        try:
            provider = provider_for(profile)
            try:
                _note_info(store, b["id"], provider.cancel(b["provider_batch_id"]))
            finally:
                provider.close()
            n += 1
        except ShoalError:
            pass   # the runner (or a later resume) tries again
    return n


# --------------------------------------------------------------------------- mode-aware entry points (core.generate.jobs exports these)

def run_job(store: Store, job_id: int, *, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None, prices: dict | None = None,
            concurrency: int | None = None, client_options: dict | None = None) -> dict:
    """Run (or resume) a job in its mode: batch-mode jobs in rounds here, the others through the
    online runner (`core.generate.jobs.runner.run_job`, see there). Blocking; returns the job summary."""
    if get_job(store, job_id)["params"].get("batch"):
        return run_batch_job(store, job_id, progress=progress, cancel=cancel, prices=prices,
                             client_options=client_options)
    return online.run_job(store, job_id, progress=progress, cancel=cancel, prices=prices,
                          concurrency=concurrency, client_options=client_options)


def cancel_job(store: Store, job_id: int, actor: str | None = None) -> None:
    """`core.generate.jobs.records.cancel_job`, and a batch-mode job's provider batches are cancelled too
    (also when no runner is alive to do it)."""
    records.cancel_job(store, job_id, actor)
    if get_job(store, job_id)["params"].get("batch"):
        cancel_provider_batches(store, job_id)
