"""Planning a batch-mode round: every pending item walks the online chain with stand-in clients
that answer from the call log; the first call of an item not answered yet becomes a line of the
next batch (core.generate.jobs.batch explains the rounds)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel

from core.generate.jobs.batch_rows import Need
from core.llm import CallResult, LLMClient, parse_reply
from core.llm.batch.routes import BatchProvider
from core.llm.call import parse_correction
from core.llm.calllog import successful_replies
from core.llm.formats import MODES
from core.llm.lifecycle import RESEND_REASONS, Limits, current_step, first_reason, gave_up, give_up
from core.store import Store

DEFERRED = "waiting for a batch"


class PlanningClient:
    """Stands in for an LLMClient inside generate_one while a round is planned."""

    def __init__(self, planner: Planner, llm: LLMClient, role: str, provider: BatchProvider):
        self.planner, self.llm, self.role, self.provider = planner, llm, role, provider

    async def complete(self, messages: list[dict], schema: type[BaseModel], *, role: str | None = None,
                       cache: bool = True) -> CallResult:
        return self.planner.answer(self, messages, schema)


@dataclass
class Planner:
    """Answers calls from the call log; the first unanswered call of an item becomes a `Need`.
    Each call belongs to a step of its item (core.llm.lifecycle): a step answered before keeps its
    answer, and a step's lines in the item's present try are counted against the limits."""
    store: Store
    history: list[dict]
    replies: dict[str, list[dict]]
    ok_hashes: set[str]
    modes: dict[str, str]
    limits: Limits
    schemas: dict[str, type[BaseModel]]
    tries: dict[int, int] = field(default_factory=dict)      # item id -> its try (job_items.attempts)
    needs: dict[str, Need] = field(default_factory=dict)    # payload hash -> its line
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

    def client(self, llm: LLMClient, role: str, provider: BatchProvider) -> PlanningClient:
        return PlanningClient(self, llm, role, provider)

    def answer(self, via: PlanningClient, messages: list[dict], schema: type[BaseModel]) -> CallResult:
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
            self.needs[key] = Need(self.item_id, role, key, mode,
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


def role_modes(history: list[dict], llms: dict[str, LLMClient],
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

