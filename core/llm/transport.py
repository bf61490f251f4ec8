"""One HTTP request to a chat-completions endpoint and what its outcome means.

`post_chat` sends one request through the `openai` package and never raises for server or
network trouble: it returns an `Attempt` whose status and short error say what happened.
What a failure means (rate limit, refused parameter or format, fatal, transient) is read from
the status and error body by `core.llm.failures.classify`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import BaseModel

from core.llm.ratelimits import retry_delay
from core.redact import redact, redact_obj

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
FORMAT_REJECTED_STATUS = {400, 415, 422}   # what servers answer to a response_format they lack


@dataclass
class Attempt:
    kind: str                     # ok | http | parse
    status: int | None = None
    text: str | None = None
    parsed: BaseModel | None = None
    error: str | None = None
    retry_after: float | None = None
    retryable: bool = False       # forced retry for a 2xx that is not a chat completion
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    call_id: int | None = None
    finish_reason: str | None = None
    headers: Any = None           # the reply's headers (x-ratelimit-*, retry-after) for the rate gate
    error_code: str | None = None     # OpenAI's error body: code, param, type, message
    error_param: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    caps_version: int = 0         # the capabilities record the request was built from
    failure: Any = None           # core.llm.failures.Failure of an HTTP-level failure


class BadBody(Exception):
    """A 2xx answer that is not a chat completion: retried like a transport error."""

    def __init__(self, message: str, text: str | None = None):
        super().__init__(message)
        self.text = text


async def post_chat(client: openai.AsyncOpenAI, request: dict) -> Attempt:
    """POST one chat completion (`request`: the whole body, model included); kind "ok" with
    text, finish reason and tokens when a chat completion came back, else kind "http" with the
    status, short error, the error body's code/param/type/message and the body text."""
    out = Attempt(kind="http")
    t = time.perf_counter()
    try:
        # The body goes in extra_body (sent as is): the package's TypedDict transform of
        # messages and schema costs several ms of CPU per call and changes nothing in
        # plain JSON dicts; on 2 cores that alone capped throughput well below C/L.
        raw = await client.chat.completions.with_raw_response.create(
            model=request["model"], messages=[], extra_body=redact_obj(request))   # no key leaves in a prompt
        out.status = raw.status_code
        out.headers = raw.headers
        out.latency_ms = (time.perf_counter() - t) * 1000
        out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens = \
            read_completion(raw.http_response)
        out.kind = "ok"
    except openai.APIStatusError as exc:
        out.latency_ms = (time.perf_counter() - t) * 1000
        out.status = exc.status_code
        out.error = short_error(exc)
        out.text = body_text(exc)
        out.headers = exc.response.headers
        out.retry_after = parse_retry_after(exc.response.headers)
        out.error_code, out.error_param, out.error_type, out.error_message = error_fields(exc)
    except openai.APIError as exc:   # timeouts, refused or dropped connections, bad bodies
        out.latency_ms = (time.perf_counter() - t) * 1000
        out.error = short_error(exc)
    except BadBody as exc:
        out.error = str(exc)
        out.text = exc.text
        out.retryable = True
    if out.error:   # a provider's error that echoes the key must not reach job_items, the CLI or a log
        out.error, out.text, out.error_message = redact(out.error), redact(out.text), redact(out.error_message)
    return out


def read_completion(response: Any) -> tuple[str | None, str | None, int, int]:
    """(content, finish_reason, prompt_tokens, completion_tokens) of a chat completion body.

    Read straight from the JSON: building openai's ChatCompletion model (raw.parse()) took a
    sizeable share of the client's CPU per call for the four values used here."""
    ctype = response.headers.get("content-type", "")
    try:
        data = json.loads(response.content) if "json" in ctype else None
    except ValueError:
        data = None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise BadBody(f"bad response body: not a chat completion ({ctype or 'no content-type'})",
                      response.text[:4000])
    choice = choices[0] if choices else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) else 0

    return (content if isinstance(content, str) else None, choice.get("finish_reason"),
            count("prompt_tokens"), count("completion_tokens"))


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date
    (core.llm.ratelimits.retry_delay reads them, the 429 message aside)."""
    return retry_delay(headers, None, now)


def short_error(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIStatusError):
        body, message = exc.body, ""
        if isinstance(body, dict):
            error = body.get("error")
            inner = error if isinstance(error, dict) else body
            message = str(inner.get("message") or "")
        elif isinstance(body, str):
            message = body
        return f"http {exc.status_code}" + (f": {message[:200]}" if message else "")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return "connection error" + (f": {str(cause)[:160]}" if cause else "")
    if isinstance(exc, openai.APIResponseValidationError):
        return "bad response body"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def error_fields(exc: openai.APIStatusError) -> tuple[str | None, str | None, str | None, str | None]:
    """(code, param, type, message) of an error body in OpenAI's shape (the package already
    unwraps {"error": {...}}); Nones for other shapes."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return None, None, None, body if isinstance(body, str) else None

    def text(key: str) -> str | None:
        value = body.get(key)
        return None if value is None else str(value)
    return text("code"), text("param"), text("type"), text("message")


def body_text(exc: openai.APIStatusError) -> str | None:
    try:
        return exc.response.text[:4000]
    except Exception:  # the body may be unread or undecodable; it is only kept for the log
        return None
