"""Provider Batch APIs: many chat calls in one JSONL file, answered within a day at half price.

OpenAI's Batch API, through the `openai` package (also any server with the same `/v1/files` +
`/v1/batches` endpoints): each input line is `{custom_id, method: "POST", url:
"/v1/chat/completions", body}` where `body` is exactly what the online path would post for that
call (`LLMClient.request_body`); the file is uploaded with purpose "batch", a batch is created
with a 24h completion window, polled, and its output and error files are read back and mapped to
their lines by `custom_id` (the provider returns them in any order).

Nothing here touches the database: `core.jobs.batch` records every id the provider returns the
moment it returns it, and turns each answered line into an `llm_calls` row (`line_attempt` gives
the same `Attempt` an online request would have produced).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterable

import openai
from pydantic import BaseModel

from core.config import Profile, resolve_api_key
from core.errors import ShoalError
from core.llm.parsing import parse_reply
from core.llm.transport import RETRYABLE_STATUS, Attempt, BadBody, read_completion, short_error
from core.prices import estimate_batch_cost

BATCH_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_LINES = 50_000                  # OpenAI: at most 50,000 requests per batch ...
MAX_BYTES = 190 * 1024 * 1024       # ... and a 200 MB input file (kept under it)
TERMINAL = ("completed", "expired", "failed", "cancelled")
ADOPT_SCAN = 500                    # recent provider batches searched for one created before a crash


class BatchAPIError(ShoalError):
    """The provider refused or did not answer a files/batches request. `retryable`: worth trying
    again later (429, 5xx, network); else the request itself is wrong (auth, no Batch API, ...)."""

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

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class LineResult:
    """One line of an output or error file."""
    custom_id: str
    status_code: int | None          # the HTTP status of the line's request; None when it never ran
    body: dict | None                # its response body: a chat completion or an error object
    error_code: str | None = None    # why a line did not run (batch_expired, ...)
    error_message: str | None = None


def batch_line(custom_id: str, body: dict) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}


def to_jsonl(lines: Iterable[dict]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines).encode()


def parse_results(text: str) -> list[LineResult]:
    """The lines of an output or error file ({id, custom_id, response: {status_code, body}, error})."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        response = line.get("response") or None
        error = line.get("error") or None
        out.append(LineResult(
            custom_id=str(line.get("custom_id")),
            status_code=response.get("status_code") if isinstance(response, dict) else None,
            body=response.get("body") if isinstance(response, dict) else None,
            error_code=error.get("code") if isinstance(error, dict) else None,
            error_message=error.get("message") if isinstance(error, dict) else None))
    return out


def line_attempt(result: LineResult, schema: type[BaseModel] | None, model: str, *,
                 prices: dict | None = None, base_url: str | None = None) -> Attempt:
    """The Attempt an online request would have given for this line: kind ok / parse with the
    reply parsed against `schema`, or http with the status and the short error; cost at the
    batch price."""
    if result.status_code is None:
        reason = result.error_message or "the line was not run"
        return Attempt(kind="http", error=f"{result.error_code or 'batch_error'}: {reason}"[:300])
    body = result.body if isinstance(result.body, dict) else {}
    if result.status_code != 200:
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = str(inner.get("message") or "") if isinstance(inner, dict) else ""
        return Attempt(kind="http", status=result.status_code, text=json.dumps(body)[:4000],
                       error=f"http {result.status_code}" + (f": {message[:200]}" if message else ""))
    content = json.dumps(body).encode()
    response = SimpleNamespace(headers={"content-type": "application/json"}, content=content,
                               text=content.decode())
    try:
        text, finish, prompt_tokens, completion_tokens = read_completion(response)
    except BadBody as exc:
        return Attempt(kind="http", status=200, error=str(exc), text=exc.text, retryable=True)
    out = Attempt(kind="ok", status=200, text=text, finish_reason=finish,
                  prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    out.cost_usd = estimate_batch_cost(model, prompt_tokens, completion_tokens, prices, base_url)
    if schema is not None:
        out.parsed, out.error = parse_reply(text, schema, finish == "length")
        out.kind = "ok" if out.error is None else "parse"
    return out


def _api_error(what: str, exc: Exception) -> BatchAPIError:
    status = getattr(exc, "status_code", None)
    retryable = status is None or status in RETRYABLE_STATUS
    hint = ""
    if status == 404 and what in ("upload", "create"):
        hint = " (does this server have a Batch API? run the job without --batch)"
    return BatchAPIError(f"batch {what}: {short_error(exc)}{hint}", retryable)


class OpenAIBatches:
    """OpenAI's Files + Batches endpoints for one profile's server (sync `openai.OpenAI`)."""

    provider = "openai"

    def __init__(self, profile: Profile, client: openai.OpenAI | None = None):
        self.profile = profile
        if client is None:
            client = openai.OpenAI(base_url=profile.base_url, api_key=resolve_api_key(profile),
                                   max_retries=2, timeout=max(60.0, profile.timeout_s))
            if not profile.is_openai:
                client.organization = client.project = None
        self.client = client

    def _call(self, what: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except openai.APIError as exc:
            raise _api_error(what, exc) from None

    def first_model(self) -> str:
        ids = [m.id for m in self._call("models", self.client.models.list)]
        if not ids:
            raise BatchAPIError("the server lists no models; set the model name in the profile", False)
        return ids[0]

    def upload(self, lines: list[dict], name: str = "shoal-batch.jsonl") -> str:
        f = self._call("upload", self.client.files.create, file=(name, to_jsonl(lines)), purpose="batch")
        return f.id

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchInfo:
        b = self._call("create", self.client.batches.create, input_file_id=input_file_id,
                       endpoint=BATCH_ENDPOINT, completion_window=COMPLETION_WINDOW, metadata=metadata)
        return _info(b)

    def find(self, input_file_id: str) -> BatchInfo | None:
        """The batch already created from `input_file_id` (file ids are unique), if any: how a
        batch created just before a crash, whose id was never recorded, is found again."""
        page = self._call("list", self.client.batches.list, limit=100)
        for n, b in enumerate(page):
            if b.input_file_id == input_file_id:
                return _info(b)
            if n >= ADOPT_SCAN:
                break
        return None

    def retrieve(self, batch_id: str) -> BatchInfo:
        return _info(self._call("poll", self.client.batches.retrieve, batch_id))

    def cancel(self, batch_id: str) -> BatchInfo:
        return _info(self._call("cancel", self.client.batches.cancel, batch_id))

    def results(self, info: BatchInfo) -> dict[str, LineResult]:
        """custom_id -> its result, from the output file and the error file."""
        out: dict[str, LineResult] = {}
        for file_id in (info.output_file_id, info.error_file_id):
            if file_id:
                text = self._call("download", self.client.files.content, file_id).text
                for r in parse_results(text):
                    out[r.custom_id] = r
        return out


def _info(b) -> BatchInfo:
    counts = getattr(b, "request_counts", None)
    errors = getattr(getattr(b, "errors", None), "data", None) or []
    text = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if getattr(e, "line", None) else "")
                     for e in errors) or None
    return BatchInfo(id=b.id, status=b.status, input_file_id=b.input_file_id, output_file_id=b.output_file_id,
                     error_file_id=b.error_file_id, total=getattr(counts, "total", 0) or 0,
                     completed=getattr(counts, "completed", 0) or 0, failed=getattr(counts, "failed", 0) or 0,
                     errors=text, metadata=dict(b.metadata or {}), created_at=b.created_at)


def provider_for(profile: Profile) -> OpenAIBatches:
    """The Batch API client for a profile. OpenAI's shape only: Anthropic's Message Batches take a
    different request body (no response_format), so its lines could not be the online body."""
    if profile.source == "local":
        raise ShoalError("The embedded local model has no Batch API: run the job without --batch.")
    if "anthropic.com" in (profile.base_url or ""):
        raise ShoalError("Batch mode speaks OpenAI's Batch API; Anthropic's Message Batches are not "
                         "supported yet: run the job without --batch.")
    return OpenAIBatches(profile)


def chunk_lines(lines: list[dict], max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> list[list[dict]]:
    """Split lines into batches the provider accepts (line count and file size)."""
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


def check_batch_profiles(profiles: dict) -> None:
    """Refuse a batch job whose endpoints have no Batch API, before anything is planned."""
    for profile in profiles.values():
        provider_for(profile)
