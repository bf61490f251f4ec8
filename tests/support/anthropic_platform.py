"""A fake Anthropic platform on loopback: Message Batches as Anthropic runs them, plus the
OpenAI-compatible chat endpoint Shoal's online calls use.

* `POST /v1/messages/batches` takes `{"requests": [{custom_id, params}]}` and validates it the way
  Anthropic does, answering `400 {"type": "error", "error": {"type": "invalid_request_error",
  "message": "requests.0.params.response_format: Extra inputs are not permitted"}}`-style errors:
  an OpenAI-shaped body (input_file_id / endpoint, lines with method / url / body), a "system"
  message role, OpenAI-only parameters (response_format, max_completion_tokens, ...), a missing
  max_tokens, temperature above 1, custom ids outside `^[a-zA-Z0-9_-]{1,64}$` or repeated; a
  missing `anthropic-version` header is a 400, a missing or wrong `x-api-key` a 401
  `authentication_error`; a body over `max_request_bytes` a 413 `request_too_large`.
* A batch is `in_progress` while its requests are processed in the background over
  `batch_timing[0]` seconds, then `ended`; its `request_counts` stay `processing` until it ends
  (as Anthropic's do), then tally succeeded / errored / canceled / expired. `POST .../cancel`
  makes it `canceling` for `batch_timing[1]` seconds, then `ended` with the requests not yet run
  `canceled`. `GET /v1/messages/batches` lists them newest first (limit, after_id, before_id).
* Results (`results_url`, `GET .../results`, JSONL in shuffled order) are `{custom_id, result}`
  with `succeeded` (a Messages API message: text content block, stop_reason end_turn or
  max_tokens, usage), `errored` (an error response: `not_found_error` for an unknown model,
  `invalid_request_error` "prompt is too long: N tokens > M maximum" above `context_window`),
  `expired` (every request after the first `expire_after` of a batch) or `canceled`.
  `script={custom_id: [outcome, ...]}` decides the next outcomes of a custom id exactly, one per
  batch it appears in: "ok", "overloaded" (errored overloaded_error), "api_error", "expired",
  "too_long" (errored invalid_request_error "prompt is too long", as above a context window).
* The model answers through `responder(chat_body)` -- the request seen as a chat-completions body
  (system first), so the responders of tests.support.openai_server work unchanged.
* `POST /v1/chat/completions` (Anthropic's OpenAI-compatible endpoint) ignores response_format
  as Anthropic does; `GET /v1/models` lists `models` in Anthropic's shape.
"""
from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Sequence
from urllib.parse import parse_qs, urlparse

from core.llm import tokens as token_count
from tests.support.openai_server import FakeOpenAIServer, _Handler, default_responder

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5")
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PARAMS = {"model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences",
          "metadata", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers"}
OUTCOMES = ("ok", "overloaded", "api_error", "expired", "too_long")
MAX_REQUESTS = 100_000


class AnthropicError(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def body(self) -> dict:
        return {"type": "error", "error": {"type": self.kind, "message": self.message},
                "request_id": _new_id("req_")}


def _invalid(message: str) -> AnthropicError:
    return AnthropicError(400, "invalid_request_error", message)


def _new_id(prefix: str, n: int = 24) -> str:
    return prefix + secrets.token_hex(n // 2)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- validation


def _check_message(where: str, m: Any) -> None:
    if not isinstance(m, dict):
        raise _invalid(f"{where}: Input should be a valid dictionary")
    role = m.get("role")
    if role == "system":
        raise _invalid(f'{where}: Unexpected role "system". The Messages API accepts a top-level `system` '
                       'parameter, not "system" as an input message role.')
    if role not in ("user", "assistant"):
        raise _invalid(f"{where}.role: Input should be 'user' or 'assistant'")
    content = m.get("content")
    if not isinstance(content, (str, list)) or (isinstance(content, list) and not content):
        raise _invalid(f"{where}.content: Input should be a valid string or a non-empty list of content blocks")
    extra = sorted(set(m) - {"role", "content"})
    if extra:
        raise _invalid(f"{where}.{extra[0]}: Extra inputs are not permitted")


def check_params(where: str, params: Any) -> None:
    """Raise what Anthropic answers to Messages params it does not take."""
    if not isinstance(params, dict):
        raise _invalid(f"{where}: Input should be a valid dictionary")
    for key in ("model", "max_tokens", "messages"):
        if key not in params:
            raise _invalid(f"{where}.{key}: Field required")
    extra = sorted(set(params) - PARAMS)
    if extra:
        raise _invalid(f"{where}.{extra[0]}: Extra inputs are not permitted")
    if not isinstance(params["max_tokens"], int) or params["max_tokens"] < 1:
        raise _invalid(f"{where}.max_tokens: Input should be greater than or equal to 1")
    temperature = params.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise _invalid(f"{where}.temperature: Input should be less than or equal to 1")
    if "system" in params and not isinstance(params["system"], (str, list)):
        raise _invalid(f"{where}.system: Input should be a valid string or a list of text blocks")
    messages = params["messages"]
    if not isinstance(messages, list) or not messages:
        raise _invalid(f"{where}.messages: List should have at least 1 item after validation, not 0")
    for j, m in enumerate(messages):
        _check_message(f"{where}.messages.{j}", m)


def check_create(body: Any) -> list[dict]:
    """The requests of a create body, or the 400 Anthropic answers to it."""
    if not isinstance(body, dict) or "requests" not in body:
        raise _invalid("requests: Field required")
    extra = sorted(set(body) - {"requests"})
    if extra:
        raise _invalid(f"{extra[0]}: Extra inputs are not permitted")
    requests = body["requests"]
    if not isinstance(requests, list) or not requests:
        raise _invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_REQUESTS:
        raise _invalid(f"requests: List should have at most {MAX_REQUESTS} items after validation, "
                       f"not {len(requests)}")
    seen: set[str] = set()
    for i, r in enumerate(requests):
        if not isinstance(r, dict):
            raise _invalid(f"requests.{i}: Input should be a valid dictionary")
        extra = sorted(set(r) - {"custom_id", "params"})
        if extra:
            raise _invalid(f"requests.{i}.{extra[0]}: Extra inputs are not permitted")
        for key in ("custom_id", "params"):
            if key not in r:
                raise _invalid(f"requests.{i}.{key}: Field required")
        cid = r["custom_id"]
        if not isinstance(cid, str) or not CUSTOM_ID_RE.match(cid):
            raise _invalid(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if cid in seen:
            raise _invalid(f"requests.{i}.custom_id: custom_id '{cid}' is used by more than one request; "
                           "each request in a Message Batch needs a unique custom_id")
        seen.add(cid)
        check_params(f"requests.{i}.params", r["params"])
    return requests


def chat_view(params: dict) -> dict:
    """The Messages params as a chat-completions body (system first), for the responders."""
    system = params.get("system")
    if isinstance(system, list):
        system = "".join(b.get("text", "") for b in system if isinstance(b, dict))

    def text(content: Any) -> str:
        if isinstance(content, str):
            return content
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": m["role"], "content": text(m["content"])} for m in params["messages"]]
    return {"model": params["model"], "messages": messages, "max_tokens": params["max_tokens"],
            "temperature": params.get("temperature")}


# ---------------------------------------------------------------- batches


@dataclass
class MessageBatch:
    id: str
    created_at: float
    t0: float
    requests: list[dict]
    results: list[dict] = field(default_factory=list)   # {custom_id, result} per request run, in order
    cancel_t: float | None = None
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    final: list[dict] | None = None                     # every request's result once ended

    @property
    def ended(self) -> bool:
        return self.final is not None


class AnthropicPlatform(FakeOpenAIServer):
    """See the module docstring."""

    def __init__(self, responder=None, *, models: Sequence[str] = DEFAULT_MODELS, api_key: str | None = None,
                 batch_timing: tuple[float, float] = (0.2, 0.05), expire_after: int | None = None,
                 script: dict[str, list[str]] | None = None, context_window: int | None = None,
                 shuffle_results: bool = True, max_request_bytes: int = 256 * 1024 * 1024, **base: Any):
        super().__init__(responder or default_responder, model=models[0] if models else "claude-sonnet-4-5", **base)
        self.models = list(models)
        self.api_key = api_key
        self.batch_timing = batch_timing
        self.expire_after = expire_after
        self.script = {cid: deque(outcomes) for cid, outcomes in (script or {}).items()}
        for outcomes in self.script.values():
            unknown = set(outcomes) - set(OUTCOMES)
            if unknown:
                raise ValueError(f"unknown outcomes {sorted(unknown)}; choose from {OUTCOMES}")
        self.context_window = context_window
        self.shuffle_results = shuffle_results
        self.max_request_bytes = max_request_bytes
        self.model_responder = self.responder
        self.responder = self._compat_reply          # the OpenAI-compatible endpoint ignores response_format
        self.message_batches: dict[str, MessageBatch] = {}
        self.create_attempts = 0                     # POST /v1/messages/batches received, refused ones included
        self.requests_run = 0                        # batch requests that reached the model
        self._batch_lock = threading.RLock()

    def queue_outcomes(self, custom_id: str, *outcomes: str) -> None:
        """Script the next outcomes of `custom_id`, one per batch it appears in (see the module docstring)."""
        unknown = set(outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)}; choose from {OUTCOMES}")
        with self._batch_lock:
            self.script.setdefault(custom_id, deque()).extend(outcomes)

    @property
    def chat_request_count(self) -> int:
        """Per-call POST /chat/completions requests received (batch requests are not counted)."""
        with self._lock:
            return len(self.requests)

    def _compat_reply(self, body: dict) -> str:
        return self.model_responder({k: v for k, v in body.items() if k != "response_format"})

    # -- auth -------------------------------------------------------------------
    def check_native_headers(self, headers) -> None:
        if self.api_key is not None:
            key = headers.get("x-api-key")
            if not key:
                raise AnthropicError(401, "authentication_error", "x-api-key header is required")
            if key != self.api_key:
                raise AnthropicError(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")

    def check_compat_auth(self, headers) -> None:
        if self.api_key is None:
            return
        given = headers.get("x-api-key") or (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if given != self.api_key:
            raise AnthropicError(401, "authentication_error", "invalid x-api-key")

    # -- batches ----------------------------------------------------------------
    def create_batch(self, raw: bytes) -> MessageBatch:
        with self._batch_lock:
            self.create_attempts += 1
        if len(raw) > self.max_request_bytes:
            raise AnthropicError(413, "request_too_large", f"Request exceeds the maximum allowed number of bytes "
                                 f"({self.max_request_bytes}).")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _invalid("The request body is not valid JSON.") from None
        b = MessageBatch(_new_id("msgbatch_"), time.time(), time.monotonic(), check_create(body))
        with self._batch_lock:
            self.message_batches[b.id] = b
        return b

    def batch(self, batch_id: str) -> MessageBatch:
        with self._batch_lock:
            b = self.message_batches.get(batch_id)
        if b is None:
            raise AnthropicError(404, "not_found_error", f"Message Batch {batch_id} not found")
        return b

    def cancel_batch(self, batch_id: str) -> MessageBatch:
        b = self.batch(batch_id)
        with self._batch_lock:
            self._advance(b)
            if not b.ended and b.cancel_t is None:
                b.cancel_t, b.cancel_initiated_at = time.monotonic(), time.time()
        return b

    def _outcome(self, custom_id: str) -> str:
        queued = self.script.get(custom_id)
        return queued.popleft() if queued else "ok"

    def _run(self, request: dict) -> dict:
        """One request's result (under the batch lock)."""
        cid, params = request["custom_id"], request["params"]
        outcome = self._outcome(cid)
        if outcome == "expired":
            return {"custom_id": cid, "result": {"type": "expired"}}
        if outcome in ("overloaded", "api_error"):
            kind, message = ("overloaded_error", "Overloaded") if outcome == "overloaded" else \
                ("api_error", "Internal server error")
            return {"custom_id": cid, "result": {"type": "errored", "error": AnthropicError(500, kind, message).body()}}
        if outcome == "too_long":
            return {"custom_id": cid, "result": {"type": "errored", "error": _invalid(
                "prompt is too long: 212514 tokens > 200000 maximum").body()}}
        try:
            message = self._message(params)
        except AnthropicError as exc:
            return {"custom_id": cid, "result": {"type": "errored", "error": exc.body()}}
        self.requests_run += 1
        return {"custom_id": cid, "result": {"type": "succeeded", "message": message}}

    def _message(self, params: dict) -> dict:
        model = params["model"]
        if model not in self.models:
            raise AnthropicError(404, "not_found_error", f"model: {model}")
        chat = chat_view(params)
        prompt = token_count.count_messages(chat["messages"], model).tokens
        if self.context_window and prompt + params["max_tokens"] > self.context_window:
            raise _invalid(f"prompt is too long: {prompt} tokens + max_tokens {params['max_tokens']} > "
                           f"{self.context_window} maximum")
        text = self.model_responder(chat)
        out = token_count.count_text(text, model).tokens if text else 0
        stop = "end_turn"
        if out > params["max_tokens"]:
            text, out, stop = text[: int(len(text) * params["max_tokens"] / out)], params["max_tokens"], "max_tokens"
        return {"id": _new_id("msg_"), "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": out, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0}}

    def _advance(self, b: MessageBatch) -> None:
        """Bring a batch up to now (under the batch lock)."""
        if b.ended:
            return
        running, canceling = self.batch_timing
        now = time.monotonic()
        cut = b.cancel_t if b.cancel_t is not None else now
        n = len(b.requests)
        limit = n if self.expire_after is None else min(n, self.expire_after)
        elapsed = cut - b.t0
        done = limit if elapsed >= running else int(limit * elapsed / running) if running > 0 else limit
        while len(b.results) < done:
            b.results.append(self._run(b.requests[len(b.results)]))
        if b.cancel_t is not None:
            if now - b.cancel_t >= canceling:
                self._end(b, "canceled")
        elif elapsed >= running:
            self._end(b, "expired")

    def _end(self, b: MessageBatch, rest: str) -> None:
        final = list(b.results) + [{"custom_id": r["custom_id"], "result": {"type": rest}}
                                   for r in b.requests[len(b.results):]]
        if self.shuffle_results:
            random.Random(b.id).shuffle(final)
        b.final, b.ended_at = final, time.time()

    def status(self, b: MessageBatch) -> str:
        with self._batch_lock:
            self._advance(b)
        return "ended" if b.ended else "canceling" if b.cancel_t is not None else "in_progress"

    def batch_object(self, b: MessageBatch, base_url: str) -> dict:
        status = self.status(b)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if b.final is None:
            counts["processing"] = len(b.requests)
        else:
            for r in b.final:
                counts[r["result"]["type"]] += 1
        return {"id": b.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
                "ended_at": _iso(b.ended_at), "created_at": _iso(b.created_at),
                "expires_at": _iso(b.created_at + 24 * 3600), "archived_at": None,
                "cancel_initiated_at": _iso(b.cancel_initiated_at),
                "results_url": f"{base_url}/messages/batches/{b.id}/results" if b.ended else None}

    def results_jsonl(self, b: MessageBatch) -> bytes:
        if self.status(b) != "ended" or b.final is None:
            raise _invalid(f"Message Batch {b.id} has not ended yet: its results are available once its "
                           "processing_status is ended")
        return "".join(json.dumps(r) + "\n" for r in b.final).encode()

    def list_batches(self, query: dict[str, list[str]], base_url: str) -> dict:
        with self._batch_lock:
            ordered = sorted(self.message_batches.values(), key=lambda b: b.created_at, reverse=True)
        ids = [b.id for b in ordered]
        limit = max(1, min(1000, int((query.get("limit") or ["20"])[0])))
        start = 0
        if query.get("after_id"):
            start = ids.index(query["after_id"][0]) + 1 if query["after_id"][0] in ids else len(ids)
        end = start + limit
        if query.get("before_id") and query["before_id"][0] in ids:
            end = ids.index(query["before_id"][0])
            start = max(0, end - limit)
        page = ordered[start:end]
        data = [self.batch_object(b, base_url) for b in page]
        return {"data": data, "has_more": end < len(ordered), "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    def models_page(self) -> dict:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                for m in self.models]
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}


# ---------------------------------------------------------------- the handler


class _AnthropicHandler(_Handler):
    fake: AnthropicPlatform

    def _fail(self, exc: AnthropicError) -> None:
        self._send_json(exc.status, exc.body(), {"request-id": _new_id("req_")})

    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, method: str) -> None:
        parsed = urlparse(self.path)
        path = parsed.path.rstrip("/")
        path = path[3:] if path.startswith("/v1/") else path
        try:
            if method == "POST" and path == "/chat/completions":
                self.fake.check_compat_auth(self.headers)
                return super().do_POST()
            if path.startswith("/models"):
                self.fake.check_compat_auth(self.headers)
            else:
                self.fake.check_native_headers(self.headers)
            status, payload = self._dispatch(method, path.strip("/").split("/"), parse_qs(parsed.query))
        except AnthropicError as exc:
            return self._fail(exc)
        if isinstance(payload, bytes):
            self.send_response(status)
            self.send_header("Content-Type", "application/binary")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self._send_json(status, payload)

    def _dispatch(self, method: str, parts: list[str], query: dict) -> tuple[int, Any]:
        fake, base = self.fake, self.fake.base_url
        if method == "GET" and parts == ["models"]:
            return 200, fake.models_page()
        if method == "GET" and len(parts) == 2 and parts[0] == "models":
            if parts[1] not in fake.models:
                raise AnthropicError(404, "not_found_error", f"model: {parts[1]}")
            return 200, {"type": "model", "id": parts[1], "display_name": parts[1],
                         "created_at": "2025-09-29T00:00:00Z"}
        if parts[:2] != ["messages", "batches"]:
            raise AnthropicError(404, "not_found_error", f"Not Found: {method} /v1/{'/'.join(parts)}")
        rest = parts[2:]
        if method == "POST" and not rest:
            return 200, fake.batch_object(fake.create_batch(self._read()), base)
        if method == "GET" and not rest:
            return 200, fake.list_batches(query, base)
        if method == "GET" and len(rest) == 1:
            return 200, fake.batch_object(fake.batch(rest[0]), base)
        if method == "POST" and rest[1:] == ["cancel"]:
            self._read()
            return 200, fake.batch_object(fake.cancel_batch(rest[0]), base)
        if method == "GET" and rest[1:] == ["results"]:
            return 200, fake.results_jsonl(fake.batch(rest[0]))
        raise AnthropicError(404, "not_found_error", f"Not Found: {method} /v1/{'/'.join(parts)}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


AnthropicPlatform.handler_class = _AnthropicHandler
