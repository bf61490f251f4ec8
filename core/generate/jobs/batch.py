"""Batch mode: a job's LLM calls go through the provider's Batch API in rounds (half price, slower).

The provider is the profile's route (core.llm.batch.routes: OpenAI's Batch API or Anthropic's Message
Batches); everything here -- the rounds, the recorded ids, resume, per-line outcomes, costs -- is
the same for both, driven through `core.llm.batch.shared.BatchProvider`.

A round is plan → submit → poll → collect:

* plan: every pending item walks the online chain (`core.generate.items.generate_one`, through
  `JobRunner._call_models`) with stand-in clients (`Planner`) that answer from the call log: a
  call answered before is a cache hit; the first call not answered yet becomes a batch line and
  the item waits. So round 1 holds the generator calls of every item, round 2 the judge calls of
  those that passed the pre-filter, later rounds the repair rounds and the retries (expired or
  failed lines, a parse correction, a weaker response_format: the online client's rules, across
  rounds). Items whose chain completes are written through `core.generate.jobs.writer.write_batch`.
  Every line records its item's step (generate, repair N, judge), why it was sent and the item's
  try; the bounds of `core.llm.lifecycle` are counted per item and step in the present try, and a step
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
from functools import partial
from typing import Any

from pydantic import BaseModel

from core.config import Profile
from core.errors import ShoalError
from core.generate.items import Pools, PoolSnapshot
from core.generate.jobs import batch_rows, records
from core.generate.jobs import runner as online
from core.generate.jobs.batch_plan import Planner, role_modes
from core.generate.jobs.batch_report import tally
from core.generate.jobs.batch_rows import WRITE_CHUNK, Group, Need
from core.generate.jobs.records import get_job
from core.generate.jobs.runner import HEARTBEAT_S, JobRunner, _finish, _heartbeat, _record_snapshot
from core.generate.jobs.writer import write_batch
from core.llm import LLMClient, canonical_json
from core.llm.batch.routes import TERMINAL, BatchAPIError, BatchInfo, BatchProvider, LineResult, provider_for
from core.llm.calllog import successful_hashes
from core.llm.failures import classify
from core.llm.lifecycle import Limits, gave_up
from core.llm.prices import estimate_batch_cost
from core.progress import ProgressFn
from core.store import Store
from core.tasks import Judgment, get_task

DEFAULT_POLL_S = 30.0      # OpenAI batches take minutes to hours: polling faster buys nothing
CANCEL_WAIT_S = 60.0       # after a cancel, wait this long for the provider to hand back finished lines


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds:.3g} s"


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
        if batch_rows.open_batches(self.store, self.job_id):
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
        batch_rows.record_round(self.store, self.job_id, round_no, self._groups(needs),
                                [i for i in waiting if i not in pinned], waiting)
        sent, why = Counter(n.step for n in needs), Counter(n.reason for n in needs)
        self._report(f"round {round_no}: {len(needs)} calls sent as a batch ({tally(sent)}; why: {tally(why)})")
        return True

    # -- planning ---------------------------------------------------------------
    async def _plan(self, items: list[dict], round_no: int) -> tuple[Planner, list[tuple[dict, Any]]]:
        """Walk every item's chain from the call log; (the planner with the lines to send, finished items).
        Round 0 only learns the schemas of the lines in flight."""
        history = batch_rows.line_history(self.store, self.job_id)
        providers = {role: self._provider(self.profiles[role]) for role in self.llm}
        modes = role_modes(history, self.llm, {role: p.modes for role, p in providers.items()})
        planner = Planner(self.store, history, batch_rows.job_replies(self.store, self.job_id), successful_hashes(self.store),
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

    def _within_budget(self, needs: list[Need]) -> list[Need]:
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
                prompt, limit = batch_rows.request_tokens(n.body)
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

    def _groups(self, needs: list[Need]) -> list[Group]:
        """Lines by endpoint (a provider batch holds one model's requests)."""
        groups: dict[tuple, list[Need]] = {}
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
            b, lines, partial(batch_rows.record_submission, self.store, b["id"]), partial(batch_rows.claimed, self.store))
        batch_rows.note_info(self.store, b["id"], info)

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
        for b in batch_rows.open_batches(self.store, self.job_id):
            try:
                if b["provider_batch_id"] is None:
                    if not submit:
                        continue
                    self._submit(b)
                    b = self.store.one_row("SELECT * FROM batches WHERE id = ?", [b["id"]])
                info = self._provider(self._profile_of(b)).retrieve(b["provider_batch_id"])
                if (info.status, info.completed, info.failed) != (b["status"], b["request_completed"],
                                                                  b["request_failed"]):
                    batch_rows.note_info(self.store, b["id"], info)
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
        batch_rows.note_info(self.store, b["id"], self._provider(self._profile_of(b)).cancel(b["provider_batch_id"]))

    def _refused(self, b: dict, exc: BatchAPIError) -> str:
        """A retryable Batch API error, counted (core.llm.lifecycle's batch_api_tries, one after another):
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
        self.store.write(lambda cur: batch_rows.end_unsent(cur, b["id"], why))
        self._report(f"batch {b['id']}: {why}")
        return "ended"

    def _cancel_open(self) -> None:
        for b in batch_rows.open_batches(self.store, self.job_id):
            if b["provider_batch_id"] and b["status"] not in TERMINAL:
                batch_rows.cancel_requested(self.store, b["id"])
                try:
                    batch_rows.note_info(self.store, b["id"], self._provider(self._profile_of(b)).cancel(b["provider_batch_id"]))
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
        self.store.write(lambda cur: batch_rows.write_collected(cur, self.job_id, b["id"], calls, updates, ran,
                                                                cost))
        self.state.calls += ran
        self.state.cost_usd += cost
        self._report(f"batch {b['id']} collected: {ran} calls, ${cost:.4f}")

    def _unrun_status(self, b: dict, info: BatchInfo, res: LineResult | None) -> str:
        """A line that never ran: `not_run` when you cancelled (sent again on resume, never counted),
        `cancelled` when the provider did (counted: core.llm.lifecycle's cancelled_resends), else a failed
        line (`retry`: the batch was refused as a whole, or it ended without this line's result)."""
        if info.status == "failed" or b.get("overdue"):
            return "retry"
        if b.get("cancel_requested") or self.state.stop == "cancelled":
            return "not_run"
        if info.status in ("cancelled", "cancelling") or (res is not None and res.not_run):
            return "cancelled"
        return "retry"

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


def cancel_provider_batches(store: Store, job_id: int) -> int:
    """Cancel a job's provider batches still running (also when no runner is alive); how many."""
    job = get_job(store, job_id)
    stored = job["params"].get("profiles") or {}
    n = 0
    for b in batch_rows.open_batches(store, job_id):
        if not b["provider_batch_id"] or b["status"] in TERMINAL:
            continue
        profile = Profile(**stored[str(b["role"]).split(",")[0]])
        batch_rows.cancel_requested(store, b["id"])
        try:
            provider = provider_for(profile)
            try:
                batch_rows.note_info(store, b["id"], provider.cancel(b["provider_batch_id"]))
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
    online runner (`core.generate.jobs.runner.run_online_job`, see there). Blocking; returns the job summary."""
    if get_job(store, job_id)["params"].get("batch"):
        return run_batch_job(store, job_id, progress=progress, cancel=cancel, prices=prices,
                             client_options=client_options)
    return online.run_online_job(store, job_id, progress=progress, cancel=cancel, prices=prices,
                                 concurrency=concurrency, client_options=client_options)


def cancel_job(store: Store, job_id: int, actor: str | None = None) -> None:
    """`core.generate.jobs.records.mark_cancelled`, and a batch-mode job's provider batches are cancelled too
    (also when no runner is alive to do it)."""
    records.mark_cancelled(store, job_id, actor)
    if get_job(store, job_id)["params"].get("batch"):
        cancel_provider_batches(store, job_id)
