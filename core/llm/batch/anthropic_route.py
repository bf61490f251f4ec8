"""Anthropic's Message Batches API: a request builder, a result parser and the provider client.

* Requests are Messages API params (`messages_params`), made from the body the online client
  would post to Anthropic's OpenAI-compatible endpoint for the same call, so both routes ask the
  same thing (same prompt, temperature, output limit) and share one cache key: system messages
  go to the top-level `system`, consecutive turns of one role are joined, `max_tokens` is always
  set, temperature is kept within Anthropic's 0..1.
* Structured output: Anthropic has no `response_format`, so a line asks in Shoal's "text" mode
  (the JSON schema described in the prompt, the reply read by `core.llm.parsing`) -- what the
  online route already does for this family (core.llm.capabilities), so a parse failure gets the
  same correction and the reply the same validation. (Tool use with an `input_schema` would
  constrain the reply more, but its answer is a tool input, not text: the call log, the cache and
  the correction loop all work on the reply's text.)
* `POST /v1/messages/batches` with `{"requests": [{custom_id, params}]}` creates a batch in one
  request (no file); `GET /v1/messages/batches/{id}` is polled until `processing_status` is
  "ended"; the results (JSONL at `results_url`) are `{custom_id, result: {type: succeeded |
  errored | expired | canceled, ...}}` in any order. Headers: `x-api-key`, `anthropic-version`.
* A batch created just before a crash (its id never recorded) has no file to be found by: the
  row records when its create request was first sent (`submitted_at`), and a restart adopts the
  provider batch created since then with the same number of requests that no row has claimed.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel

from core.config import Profile, resolve_api_key
from core.llm.batch.shared import BatchAPIError, BatchInfo, LineResult, RecordBatch, answered_attempt, unrun_attempt
from core.llm.formats import schema_instruction, with_instruction
from core.llm.transport import RETRYABLE_STATUS, Attempt

if TYPE_CHECKING:
    from core.llm.client import LLMClient

API_VERSION = "2023-06-01"
MAX_REQUESTS = 100_000               # Anthropic: at most 100,000 requests per batch ...
_MAX_BYTES = 250 * 1024 * 1024        # ... and 256 MB per create request (kept under it)
MAX_TEMPERATURE = 1.0
_ADOPT_SCAN = 500                     # recent provider batches searched for one created before a crash
CLOCK_SKEW_S = 300.0                 # our clock against the provider's, when matching creation times
GET_RETRIES = 2                      # a poll or download retried at once after a transient failure

# the HTTP status each error type of Anthropic's has (an errored result carries only the type)
STATUS_OF_ERROR = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                   "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                   "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


# --------------------------------------------------------------------------- the request builder

def _text_of(content: Any) -> str:
    """A chat message's content as plain text (OpenAI content parts: their text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _schema_in(response_format: dict) -> dict | None:
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return response_format.get("schema")


def messages_params(body: dict) -> dict:
    """Anthropic's Messages API params for the call a chat-completions `body` describes (see the
    module docstring). A `response_format` in it becomes the schema described in the prompt."""
    system: list[str] = []
    turns: list[dict] = []
    for m in body.get("messages") or []:
        text = _text_of(m.get("content"))
        if m.get("role") in ("system", "developer"):
            if text.strip():
                system.append(text)
            continue
        role = "assistant" if m.get("role") == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})
    schema = _schema_in(body["response_format"]) if isinstance(body.get("response_format"), dict) else None
    if schema:
        turns = with_instruction(turns, schema_instruction(schema))
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    params: dict[str, Any] = {"model": body["model"], "max_tokens": int(limit or 1024), "messages": turns}
    if system:
        params["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        params["temperature"] = min(max(float(body["temperature"]), 0.0), MAX_TEMPERATURE)
    return params


def request_line(custom_id: str, params: dict) -> dict:
    return {"custom_id": custom_id, "params": params}


# --------------------------------------------------------------------------- the result parser

def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def parse_anthropic_results(text: str) -> list[LineResult]:
    """The lines of a results file ({custom_id, result: {type, message | error}})."""
    out = []
    for raw in text.splitlines():
        if raw.strip():
            line = json.loads(raw)
            out.append(_line_result(str(line.get("custom_id")), line.get("result") or {}))
    return out


def _line_result(custom_id: str, result: dict) -> LineResult:
    kind = result.get("type")
    if kind == "succeeded":
        return LineResult(custom_id, 200, result.get("message"))
    if kind == "errored":
        outer = _dict(result.get("error"))
        inner = _dict(outer.get("error")) or outer
        etype = str(inner.get("type") or "api_error")
        return LineResult(custom_id, STATUS_OF_ERROR.get(etype, 500), outer, error_code=etype,
                          error_message=str(inner.get("message") or ""))
    if kind == "canceled":
        return LineResult(custom_id, None, None, "canceled", "the batch was canceled before this request ran",
                          not_run=True)
    if kind == "expired":
        return LineResult(custom_id, None, None, "expired", "the batch ended (24 hours) before this request ran")
    return LineResult(custom_id, None, None, "unknown_result", f"result type {kind!r}")


def anthropic_line_attempt(result: LineResult, schema: type[BaseModel] | None, model: str, *,
                           prices: dict | None = None, base_url: str | None = None) -> Attempt:
    """The Attempt an online request would have given for this line: the message's text parsed
    against `schema` (stop_reason max_tokens: cut off), or http with the error type's status and
    Anthropic's message; cost at the batch price."""
    if result.status_code is None:
        return unrun_attempt(result.error_code, result.error_message)
    body = result.body if isinstance(result.body, dict) else {}
    if result.status_code != 200:
        message = (result.error_message or "")[:200]
        return Attempt(kind="http", status=result.status_code, text=json.dumps(body)[:4000],
                       error=f"http {result.status_code}: {message} ({result.error_code})",
                       error_type=result.error_code, error_message=result.error_message)
    content = body.get("content")
    if body.get("type") != "message" or not isinstance(content, list):
        return Attempt(kind="http", status=200, error="bad result: not a message", text=json.dumps(body)[:4000],
                       retryable=True)
    text = "".join(str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    usage = _dict(body.get("usage"))

    def count(*keys: str) -> int:
        return sum(int(v) for v in (usage.get(k) for k in keys) if isinstance(v, int))

    finish = "length" if body.get("stop_reason") == "max_tokens" else "stop"
    return answered_attempt(text, finish, count("input_tokens", "cache_creation_input_tokens",
                                                "cache_read_input_tokens"),
                            count("output_tokens"), schema, model, prices=prices, base_url=base_url)


# --------------------------------------------------------------------------- the provider client

def _epoch(stamp: Any) -> float | None:
    """Unix time of an RFC 3339 stamp ("2025-01-01T10:00:00.123Z"), None when unreadable."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _info(b: dict) -> BatchInfo:
    counts = _dict(b.get("request_counts"))

    def n(key: str) -> int:
        return int(counts.get(key) or 0)
    created = _epoch(b.get("created_at"))
    return BatchInfo(id=str(b["id"]), status=str(b.get("processing_status") or "in_progress"),
                     total=sum(n(k) for k in ("processing", "succeeded", "errored", "canceled", "expired")),
                     completed=n("succeeded"), failed=n("errored") + n("expired"),
                     created_at=int(created) if created is not None else None, results_url=b.get("results_url"))


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    inner = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else body
    if isinstance(inner, dict):
        return f"{inner.get('type') or 'error'}: {str(inner.get('message') or '')[:200]}"
    return str(body)[:200]


class AnthropicBatches:
    """Anthropic's Message Batches endpoints for one profile's server (its base URL ends in /v1)."""

    provider = "anthropic"
    modes: tuple[str, ...] = ("text",)
    max_lines = MAX_REQUESTS
    max_bytes = _MAX_BYTES

    def __init__(self, profile: Profile, http: httpx.Client | None = None):
        self.profile = profile
        self.base = profile.base_url.rstrip("/") + "/"
        self.http = http or httpx.Client(
            base_url=self.base, timeout=max(60.0, profile.timeout_s),
            headers={"x-api-key": resolve_api_key(profile), "anthropic-version": API_VERSION})

    def close(self) -> None:
        self.http.close()

    def _send(self, what: str, method: str, url: str, **kw) -> httpx.Response:
        """One request; a transient failure of a GET is tried again at once (a create never is:
        a lost answer may hide a batch that exists, found again by `find` on the next poll)."""
        error = BatchAPIError(f"batch {what}: not sent", True)
        for attempt in range(GET_RETRIES + 1 if method == "GET" else 1):
            try:
                resp = self.http.request(method, url, **kw)
            except httpx.HTTPError as exc:
                error = BatchAPIError(f"batch {what}: connection error: {str(exc)[:160]}", True)
            else:
                if resp.status_code < 400:
                    return resp
                hint = ""
                if resp.status_code == 404 and what == "create":
                    hint = " (does this server have Anthropic's Message Batches API? run the job without --batch)"
                elif resp.status_code in (401, 403):
                    hint = " (check the Anthropic API key)"
                error = BatchAPIError(f"batch {what}: http {resp.status_code}: {_error_text(resp)}{hint}",
                                      resp.status_code in RETRYABLE_STATUS)
            if not error.retryable:
                break
            time.sleep(0.2 * (attempt + 1))
        raise error

    def _json(self, what: str, method: str, url: str, **kw) -> dict:
        data = self._send(what, method, url, **kw).json()
        if not isinstance(data, dict):
            raise BatchAPIError(f"batch {what}: the server's answer is not a JSON object", True)
        return data

    def first_model(self) -> str:
        ids = [str(m["id"]) for m in self._json("models", "GET", "models").get("data") or [] if m.get("id")]
        if not ids:
            raise BatchAPIError("the server lists no models; set the model name in the profile", False)
        return ids[0]

    def request(self, llm: LLMClient, messages: list[dict], schema: type[BaseModel], mode: str,
                correction: list[dict]) -> dict:
        """The Messages params of the call the online client would make in text mode."""
        return messages_params(llm.request_body(messages, schema, "text", correction))

    def line(self, custom_id: str, body: dict) -> dict:
        return request_line(custom_id, body)

    def submit(self, batch: dict, lines: Callable[[], list[tuple[str, dict]]], record: RecordBatch,
               claimed: Callable[[str], bool]) -> BatchInfo:
        """Create the batch in one request, after recording that it is being sent; a row left
        'submitting' by a crash first looks for the batch that request may have created."""
        if batch["status"] == "submitting":
            found = self.find(batch, claimed)
            if found is not None:
                return found
        record(status="submitting", submitted_at=batch.get("submitted_at") or time.time())
        requests = [request_line(cid, params) for cid, params in lines()]
        return _info(self._json("create", "POST", "messages/batches", json={"requests": requests}))

    def find(self, batch: dict, claimed: Callable[[str], bool]) -> BatchInfo | None:
        """The oldest provider batch created since this row's create request was first sent, with
        as many requests as the row has lines, that no row has claimed (the list is newest first)."""
        since = float(batch.get("submitted_at") or 0.0) - CLOCK_SKEW_S
        params: dict[str, Any] = {"limit": 100}
        best, seen = None, 0
        while seen < _ADOPT_SCAN:
            page = self._json("list", "GET", "messages/batches", params=params)
            for b in page.get("data") or []:
                seen += 1
                created = _epoch(b.get("created_at"))
                if created is not None and created < since:
                    return best
                info = _info(b)
                if info.total == int(batch["n_lines"]) and not claimed(info.id):
                    best = info
            if not page.get("has_more") or not page.get("last_id"):
                break
            params["after_id"] = page["last_id"]
        return best

    def retrieve(self, batch_id: str) -> BatchInfo:
        return _info(self._json("poll", "GET", f"messages/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> BatchInfo:
        return _info(self._json("cancel", "POST", f"messages/batches/{batch_id}/cancel"))

    def results(self, info: BatchInfo) -> dict[str, LineResult]:
        """custom_id -> its result. The key goes only to this profile's server: a `results_url`
        elsewhere is read through the same server's results route instead."""
        url = info.results_url or ""
        here, there = urlparse(self.base), urlparse(url)
        if not url or (there.scheme, there.netloc) != (here.scheme, here.netloc):
            url = f"messages/batches/{info.id}/results"
        return {r.custom_id: r for r in parse_anthropic_results(self._send("download", "GET", url).text)}

    def line_attempt(self, result: LineResult, schema: type[BaseModel] | None, model: str, *,
                     prices: dict | None = None, base_url: str | None = None) -> Attempt:
        return anthropic_line_attempt(result, schema, model, prices=prices, base_url=base_url)
