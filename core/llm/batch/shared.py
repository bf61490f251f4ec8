"""What every provider Batch API route shares: its errors, what a batch and a result line look
like once read, the provider interface the job side drives, and the Attempt an answered line gives.

A route (core.llm.batch.openai_route, core.llm.batch.anthropic_route) knows its provider's request shape,
result format and endpoints; `core.generate.jobs.batch` only sees `BatchProvider`: it records every id
the provider returns the moment it returns it, and turns each result line into an `llm_calls`
row through `BatchProvider.line_attempt` (the same `Attempt` an online request would have given).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from pydantic import BaseModel

from core.errors import ShoalError
from core.llm.parsing import parse_reply
from core.llm.prices import estimate_batch_cost
from core.llm.transport import Attempt

if TYPE_CHECKING:
    from core.llm.client import LLMClient

# a provider's batch status after which it changes no more (OpenAI's four, Anthropic's "ended")
TERMINAL = ("completed", "expired", "failed", "cancelled", "ended")


class BatchAPIError(ShoalError):
    """The provider refused or did not answer a batch request. `retryable`: worth trying again
    later (429, 5xx, network); else the request itself is wrong (auth, no Batch API, ...)."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class BatchInfo:
    """What the provider says about one batch."""
    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: str | None = None       # batch-level (validation) errors, joined
    metadata: dict | None = None
    created_at: int | None = None
    results_url: str | None = None  # Anthropic: where the results are, once the batch has ended

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class LineResult:
    """One result line of a batch, whatever the provider's format."""
    custom_id: str
    status_code: int | None          # the HTTP status of the line's request; None when it never ran
    body: dict | None                # its response body: the provider's answer or an error object
    error_code: str | None = None    # why a line did not run (batch_expired, expired, ...)
    error_message: str | None = None
    not_run: bool = False            # cancelled before it ran: sent again on resume, never a failure


# record(**columns): write these `batches` columns now (before the next provider request)
RecordBatch = Callable[..., None]


class BatchProvider(Protocol):
    """One provider's Batch API for one profile's server, as `core.generate.jobs.batch` drives it."""

    provider: str                 # the `batches.provider` value
    modes: tuple[str, ...]        # the structured-output modes a line may ask in
    max_lines: int                # requests per batch ...
    max_bytes: int                # ... and bytes of input per batch the provider accepts

    def first_model(self) -> str: ...

    def close(self) -> None: ...

    def request(self, llm: LLMClient, messages: list[dict], schema: type[BaseModel], mode: str,
                correction: list[dict]) -> dict:
        """The request a line carries (what the provider runs), built from the online client's body."""
        ...

    def line(self, custom_id: str, body: dict) -> dict:
        """One entry of the batch's input as it is sent."""
        ...

    def submit(self, batch: dict, lines: Callable[[], list[tuple[str, dict]]], record: RecordBatch,
               claimed: Callable[[str], bool]) -> BatchInfo:
        """Create the batch for the `batches` row `batch` (or find the one a crash left unrecorded),
        recording each step with `record` before the request that could create it is sent.
        `claimed(id)`: a provider batch already recorded for some row (never adopted again)."""
        ...

    def retrieve(self, batch_id: str) -> BatchInfo: ...

    def cancel(self, batch_id: str) -> BatchInfo: ...

    def results(self, info: BatchInfo) -> dict[str, LineResult]:
        """custom_id -> its result line (the provider returns them in any order)."""
        ...

    def line_attempt(self, result: LineResult, schema: type[BaseModel] | None, model: str, *,
                     prices: dict | None = None, base_url: str | None = None) -> Attempt: ...


def answered_attempt(text: str | None, finish: str | None, prompt_tokens: int, completion_tokens: int,
                     schema: type[BaseModel] | None, model: str, *, prices: dict | None = None,
                     base_url: str | None = None) -> Attempt:
    """The Attempt of a line the model answered: kind ok / parse with the reply parsed against
    `schema` (finish "length": cut off), cost at the batch price."""
    out = Attempt(kind="ok", status=200, text=text, finish_reason=finish,
                  prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    out.cost_usd = estimate_batch_cost(model, prompt_tokens, completion_tokens, prices, base_url)
    if schema is not None:
        out.parsed, out.error = parse_reply(text, schema, finish == "length")
        out.kind = "ok" if out.error is None else "parse"
    return out


def unrun_attempt(code: str | None, message: str | None) -> Attempt:
    """The Attempt of a line the provider never ran (expired, ...): sent again as a new line."""
    reason = message or "the line was not run"
    return Attempt(kind="http", error=f"{code or 'batch_error'}: {reason}"[:300])


def to_jsonl(lines: Iterable[dict]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines).encode()


def chunk_lines(lines: list[dict], max_lines: int = 50_000, max_bytes: int = 190 * 1024 * 1024) -> list[list[dict]]:
    """Split lines into batches the provider accepts (line count and size; the defaults are
    OpenAI's, the stricter of the two)."""
    chunks: list[list[dict]] = [[]]
    size = 0
    for line in lines:
        n = len(to_jsonl([line]))
        if chunks[-1] and (len(chunks[-1]) >= max_lines or size + n > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += n
    return [c for c in chunks if c]
