"""One logical call of `LLMClient.complete`: what it yields (`CallResult`) and what it has done so far
(`CallProgress`: its mode, failures and the tokens and cost summed over its attempts), and the
correction a retry after an unparsable reply sends (online and batch)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import BaseModel

from core.llm.transport import Attempt

__all__ = ["CallResult", "CallProgress", "parse_correction"]


@dataclass
class CallResult:
    ok: bool                 # True when the reply parsed and validated against the schema
    parsed: BaseModel | None
    raw_text: str | None     # always kept, also when parsing failed
    error: str | None        # short reason: "http 500", "timeout", "invalid json", "schema: <field> ..."
    call_id: int | None      # llm_calls.id of the (last) call
    cached: bool
    prompt_tokens: int = 0   # summed over every attempt of this call (0 when cached)
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0  # wall time of the whole call, retries and waits included
    attempts: int = 0        # HTTP requests sent for this call
    response_format: str | None = None  # the mode of the last attempt


@dataclass
class CallProgress:
    """One logical call so far: its current mode, pending correction, failure counts and the
    tokens and cost summed over its attempts."""
    mode: str
    t0: float
    correction: list[dict] = field(default_factory=list)
    transport_failures: int = 0    # every HTTP-level retry, 429s included (logged as transport_retry)
    rate_limited: int = 0
    first_429: float | None = None
    adaptations: int = 0
    parse_failures: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_text: str | None = None   # the last thing the model said (never an error body)

    def meta(self) -> dict:
        """Logged with the request so each retry is recognisable in llm_calls."""
        return {"transport_retry": self.transport_failures, "parse_retry": self.parse_failures}

    def add(self, out: Attempt) -> None:
        self.attempts += 1
        self.prompt_tokens += out.prompt_tokens
        self.completion_tokens += out.completion_tokens
        self.cost_usd += out.cost_usd
        if out.kind != "http":
            self.model_text = out.text

    def result(self, out: Attempt, ok: bool) -> CallResult:
        return CallResult(ok, out.parsed, self.model_text, out.error, out.call_id, False,
                          self.prompt_tokens, self.completion_tokens, self.cost_usd,
                          (time.perf_counter() - self.t0) * 1000, self.attempts, self.mode)


def parse_correction(text: str | None, error: str | None) -> list[dict]:
    """Appended to the messages when a reply did not parse or validate (online and batch retries)."""
    return [{"role": "assistant", "content": (text or "")[:4000]},
            {"role": "user", "content": f"That reply was not valid ({error}). "
             "Answer again with only the JSON object that matches the schema."}]
