"""A fake OpenAI *platform*: FakeOpenAIServer plus the places where clients trip on the real one.

Everything the base server does (faults, latency, responders, request log) still applies;
on top, each switchable per instance:

* model families (`enforce_params`): reasoning models (o1*, o3*, o4-mini*, gpt-5* except
  gpt-5*-chat*) reject `max_tokens` and sampling penalties (`unsupported_parameter`) and
  temperature/top_p other than 1 (`unsupported_value`), accept `reasoning_effort`, and spend
  `reasoning_tokens` of `max_completion_tokens` before any visible output (too small a limit
  gives empty content with finish_reason "length"). Chat models accept max_tokens and reject
  `reasoning_effort`. Models not in `models` answer 404 `model_not_found`;
* strict structured outputs (`strict_schemas`): a `"strict": true` json_schema must have
  `additionalProperties: false` and every property required on every object, else 400
  `invalid_json_schema` with OpenAI's message; replies conform to the schema. With
  `loose_schema_fault_rate`, non-strict json_schema replies sometimes ignore the schema
  (OpenAI does not constrain them);
* `context_window` (tokens, or {model: tokens}): 400 `context_length_exceeded` above it;
  `api_key`: 401 `invalid_api_key` for any other key; `quota_exhausted`: 429 `insufficient_quota`;
* `rpm` / `tpm`: OpenAI's limiter -- buckets that refill limit/`window_s` per second
  (`window_s` 60 like OpenAI; smaller makes tests fast), a request charged prompt tokens
  (counted with core.llm.tokens, as a client can) + its max output tokens at admission, the
  unused output refunded when it finishes (`refund_unused_output`). Every reply carries
  `x-ratelimit-limit/remaining/reset-requests/-tokens`; a 429 says "Rate limit reached for
  ... on tokens per min (TPM): Limit L, Used U, Requested R. Please try again in 1.2s." with
  `retry-after-ms` and `retry-after`;
* Files and Batches: POST/GET/DELETE /v1/files, GET /v1/files/{id}/content, POST/GET
  /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel. A batch goes
  validating -> in_progress -> finalizing -> completed over `batch_timing` seconds with
  growing `request_counts`; its output and error files hold OpenAI's line format
  ({id, custom_id, response: {status_code, request_id, body}, error}), in shuffled order
  (`shuffle_batch_output`); `batch_expire_after=N` expires every line after the N-th
  (`batch_expired` lines in the error file). Batch lines never count as chat requests:
  `chat_request_count` tells how many per-call requests arrived.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import math
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from core.llm import tokens as token_count
from tests.support.openai_server import FakeOpenAIServer, _Handler, default_responder, requested_schema

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-5-mini", "o4-mini")
_REASONING_RE = re.compile(r"^(o1|o3|o4-mini|gpt-5)")
REASONING_UNSUPPORTED = ("max_tokens", "presence_penalty", "frequency_penalty", "logprobs",
                         "top_logprobs", "logit_bias")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
RATE_LIMIT_DOC = "Visit https://platform.openai.com/account/rate-limits to learn more."


def model_family(model: str) -> str:
    """"reasoning" for OpenAI's reasoning models, else "chat"."""
    name = (model or "").lower()
    return "reasoning" if _REASONING_RE.match(name) and "-chat" not in name else "chat"


def format_duration(seconds: float) -> str:
    """OpenAI's duration format: "644ms", "1.2s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{math.ceil(rest):d}s"


class PlatformError(Exception):
    """An error reply: status and OpenAI's error object."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}


# ---------------------------------------------------------------- request checks


def _unsupported_value(param: str, value: Any) -> PlatformError:
    return PlatformError(400, f"Unsupported value: '{param}' does not support {value!r} with this "
                         "model. Only the default (1) value is supported.", param=param,
                         code="unsupported_value")


def check_params(body: dict) -> None:
    """Raise what OpenAI answers for parameters the model's family does not take."""
    if model_family(body.get("model", "")) == "reasoning":
        for param in REASONING_UNSUPPORTED:
            if body.get(param) is not None:
                hint = " Use 'max_completion_tokens' instead." if param == "max_tokens" else ""
                raise PlatformError(400, f"Unsupported parameter: '{param}' is not supported with "
                                    f"this model.{hint}", param=param, code="unsupported_parameter")
        for param in ("temperature", "top_p"):
            value = body.get(param)
            if value is not None and value != 1:
                raise _unsupported_value(param, value)
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in REASONING_EFFORTS:
            raise PlatformError(400, f"Invalid value: '{effort}'. Supported values are: 'minimal', "
                                "'low', 'medium', and 'high'.", param="reasoning_effort",
                                code="invalid_value")
        return
    if body.get("reasoning_effort") is not None:
        raise PlatformError(400, "Unsupported parameter: 'reasoning_effort' is not supported with "
                            "this model.", param="reasoning_effort", code="unsupported_parameter")
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 2:
        side = "above maximum" if temperature > 2 else "below minimum"
        bound = "<= 2" if temperature > 2 else ">= 0"
        raise PlatformError(400, f"Invalid 'temperature': decimal {side} value. Expected a value "
                            f"{bound}, but got {temperature} instead.", param="temperature",
                            code=f"decimal_{'above_max' if temperature > 2 else 'below_min'}_value")


def _is_object(schema: dict) -> bool:
    kind = schema.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema


def strict_schema_problem(schema: Any, context: tuple = ()) -> str | None:
    """What OpenAI's strict mode refuses in `schema` ("In context=(...), ..."), or None."""
    if not isinstance(schema, dict):
        return None
    if _is_object(schema):
        if schema.get("additionalProperties") is not False:
            return f"In context={context!r}, 'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        required = schema.get("required")
        missing = [k for k in props if not isinstance(required, list) or k not in required]
        if missing:
            return (f"In context={context!r}, 'required' is required to be supplied and to be an array "
                    f"including every key in properties. Missing '{missing[0]}'.")
        for key, sub in props.items():
            if (problem := strict_schema_problem(sub, context + ("properties", key))):
                return problem
    if isinstance(schema.get("items"), dict):
        if (problem := strict_schema_problem(schema["items"], context + ("items",))):
            return problem
    for key in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or []):
            if (problem := strict_schema_problem(sub, context + (key, str(i)))):
                return problem
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            if (problem := strict_schema_problem(sub, context + (key, name))):
                return problem
    return None


def check_response_format(body: dict) -> None:
    rf = body.get("response_format") or {}
    if rf.get("type") != "json_schema":
        return
    spec = rf.get("json_schema") or {}
    if not spec.get("name"):
        raise PlatformError(400, "Missing required parameter: 'response_format.json_schema.name'.",
                            param="response_format.json_schema.name", code="missing_required_parameter")
    if spec.get("strict") is not True:
        return
    schema = spec.get("schema") or {}
    name = spec["name"]
    if schema.get("type") != "object":
        raise PlatformError(400, f"Invalid schema for response_format '{name}': schema must be a JSON "
                            f"Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'.",
                            param="response_format", code="invalid_json_schema")
    if (problem := strict_schema_problem(schema)):
        raise PlatformError(400, f"Invalid schema for response_format '{name}': {problem}",
                            param="response_format", code="invalid_json_schema")


def max_output_of(body: dict) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(key), int):
            return body[key]
    return None


# ---------------------------------------------------------------- the limiter


@dataclass
class _Window:
    """Units used, draining at limit/window_s per second (OpenAI's continuous refill)."""
    limit: float
    window_s: float
    used: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def drain(self, now: float) -> None:
        self.used = max(0.0, self.used - (now - self.stamp) * self.limit / self.window_s)
        self.stamp = now

    def wait(self, amount: float) -> float:
        return max(0.0, (self.used + amount - self.limit) * self.window_s / self.limit)

    def remaining(self) -> int:
        return max(0, int(self.limit - self.used))

    def reset(self) -> str:
        return format_duration(self.used * self.window_s / self.limit)


class _Limiter:
    """RPM/TPM for one model (OpenAI's limits are per model)."""

    def __init__(self, rpm: float | None, tpm: float | None, window_s: float, organization: str):
        self.requests = _Window(rpm, window_s) if rpm else None
        self.tokens = _Window(tpm, window_s) if tpm else None
        self.organization = organization
        self.lock = threading.Lock()

    def _drain(self, now: float) -> None:
        for w in (self.requests, self.tokens):
            if w is not None:
                w.drain(now)

    def headers(self) -> dict:
        out = {}
        for kind, w in (("requests", self.requests), ("tokens", self.tokens)):
            if w is not None:
                out[f"x-ratelimit-limit-{kind}"] = str(int(w.limit))
                out[f"x-ratelimit-remaining-{kind}"] = str(w.remaining())
                out[f"x-ratelimit-reset-{kind}"] = w.reset()
        return out

    def admit(self, model: str, cost: int) -> dict:
        """Charge one request of `cost` tokens, or raise its 429. Returns the headers."""
        with self.lock:
            now = time.monotonic()
            self._drain(now)
            org = f"for {model} in organization {self.organization}"
            if self.tokens is not None and cost > self.tokens.limit:
                raise PlatformError(429, f"Request too large {org} on tokens per min (TPM): Limit "
                                    f"{int(self.tokens.limit)}, Requested {cost}. The input or output "
                                    f"tokens must be reduced in order to run successfully. {RATE_LIMIT_DOC}",
                                    kind="tokens", code="rate_limit_exceeded", headers=self.headers())
            for kind, label, w, amount in (("requests", "requests per min (RPM)", self.requests, 1),
                                           ("tokens", "tokens per min (TPM)", self.tokens, cost)):
                if w is not None and w.used + amount > w.limit:
                    wait = w.wait(amount)
                    raise PlatformError(
                        429, f"Rate limit reached {org} on {label}: Limit {int(w.limit)}, Used "
                        f"{math.ceil(w.used)}, Requested {amount}. Please try again in "
                        f"{format_duration(wait)}. {RATE_LIMIT_DOC}", kind=kind, code="rate_limit_exceeded",
                        headers={**self.headers(), "retry-after-ms": str(math.ceil(wait * 1000)),
                                 "retry-after": str(max(1, math.ceil(wait)))})
            if self.requests is not None:
                self.requests.used += 1
            if self.tokens is not None:
                self.tokens.used += cost
            return self.headers()

    def refund(self, tokens: int) -> dict:
        with self.lock:
            self._drain(time.monotonic())
            if self.tokens is not None and tokens > 0:
                self.tokens.used = max(0.0, self.tokens.used - tokens)
            return self.headers()


# ---------------------------------------------------------------- files and batches


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def obj(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "status_details": None, "expires_at": None}


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict | None
    created_at: int
    t0: float
    lines: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)     # one per processed line, in input order
    errors: list[dict] | None = None                      # validation errors: the batch failed
    cancel_t: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict = field(default_factory=dict)            # status -> unix time it was reached
    final: str | None = None                              # terminal status once files are written


def _new_id(prefix: str, n: int = 24) -> str:
    return prefix + secrets.token_hex(n // 2)


# ---------------------------------------------------------------- the server


class OpenAIPlatform(FakeOpenAIServer):
    """See the module docstring."""

    def __init__(self, responder=None, *, models: Sequence[str] = DEFAULT_MODELS,
                 api_key: str | None = None, enforce_params: bool = True, strict_schemas: bool = True,
                 context_window: int | dict | None = None, quota_exhausted: bool = False,
                 rpm: float | None = None, tpm: float | None = None, window_s: float = 60.0,
                 refund_unused_output: bool = True, default_max_output: int = 4096,
                 reasoning_tokens: int = 0, loose_schema_fault_rate: float = 0.0,
                 batch_timing: tuple[float, float, float] = (0.1, 0.3, 0.1),
                 batch_expire_after: int | None = None, shuffle_batch_output: bool = True,
                 organization: str = "org-shoaltest", **base: Any):
        super().__init__(responder or default_responder, model=models[0] if models else "gpt-4o-mini", **base)
        self.models = list(models)
        self.api_key = api_key
        self.enforce_params = enforce_params
        self.strict_schemas = strict_schemas
        self.context_window = context_window
        self.quota_exhausted = quota_exhausted
        self.rpm, self.tpm, self.window_s = rpm, tpm, window_s
        self.refund_unused_output = refund_unused_output
        self.default_max_output = default_max_output
        self.reasoning_tokens = reasoning_tokens
        self.loose_schema_fault_rate = loose_schema_fault_rate
        self.batch_timing = batch_timing
        self.batch_expire_after = batch_expire_after
        self.shuffle_batch_output = shuffle_batch_output
        self.organization = organization
        self._limiters: dict[str, _Limiter] = {}
        self._platform_lock = threading.RLock()
        self._loose_rng = random.Random(base.get("seed", 0))
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.usage_log: list[tuple[float, int]] = []    # (t, prompt + completion tokens) per reply
        self.rate_limited = 0                           # 429s for RPM/TPM
        self.batch_lines_processed = 0
        self.model_responder = self.responder      # what the "model" answers
        self.responder = self.respond               # the base server asks through the platform

    @property
    def chat_request_count(self) -> int:
        """Per-call POST /chat/completions requests received (batch lines are not counted)."""
        with self._lock:
            return len(self.requests)

    # -- per-request pieces ---------------------------------------------------
    def limiter(self, model: str) -> _Limiter | None:
        if not (self.rpm or self.tpm):
            return None
        with self._platform_lock:
            if model not in self._limiters:
                self._limiters[model] = _Limiter(self.rpm, self.tpm, self.window_s, self.organization)
            return self._limiters[model]

    def prompt_tokens(self, body: dict) -> int:
        return token_count.count_messages(body.get("messages") or [], body.get("model")).tokens

    def check_auth(self, authorization: str | None) -> None:
        if self.api_key is None or authorization == f"Bearer {self.api_key}":
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given:
            raise PlatformError(401, "You didn't provide an API key. You need to provide your API key "
                                "in an Authorization header using Bearer auth (i.e. Authorization: "
                                "Bearer YOUR_KEY).", code=None)
        masked = given[:3] + "*" * max(0, len(given) - 7) + given[-4:]
        raise PlatformError(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def check_request(self, body: dict) -> int:
        """Raise the error OpenAI would answer before running the model; else the prompt tokens."""
        model = body.get("model")
        if model not in self.models:
            raise PlatformError(404, f"The model `{model}` does not exist or you do not have access to it.",
                                code="model_not_found")
        if self.quota_exhausted:
            raise PlatformError(429, "You exceeded your current quota, please check your plan and billing "
                                "details. For more information on this error, read the docs: "
                                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                                kind="insufficient_quota", code="insufficient_quota")
        if self.enforce_params:
            check_params(body)
        if self.strict_schemas:
            check_response_format(body)
        prompt = self.prompt_tokens(body)
        window = self.context_window.get(model) if isinstance(self.context_window, dict) else self.context_window
        if window:
            out = max_output_of(body) or 0
            if prompt > window:
                raise PlatformError(400, f"This model's maximum context length is {window} tokens. However, "
                                    f"your messages resulted in {prompt} tokens. Please reduce the length "
                                    "of the messages.", param="messages", code="context_length_exceeded")
            if prompt + out > window:
                raise PlatformError(400, f"This model's maximum context length is {window} tokens. However, "
                                    f"you requested {prompt + out} tokens ({prompt} in the messages, {out} in "
                                    "the completion). Please reduce the length of the messages or completion.",
                                    param="messages", code="context_length_exceeded")
        return prompt

    def respond(self, body: dict) -> str:
        schema, mode = requested_schema(body)
        spec = (body.get("response_format") or {}).get("json_schema") or {}
        if mode == "json_schema" and spec.get("strict") is not True and self.loose_schema_fault_rate:
            with self._platform_lock:
                loose = self._loose_rng.random() < self.loose_schema_fault_rate
            if loose:
                return json.dumps({"answer": "the model ignored the (non-strict) schema"})
        return self.model_responder(body)

    def completion(self, body: dict, content: str, finish: str, prompt: int, request_id: str) -> dict:
        """The chat.completion object: usage with the model's tokenizer, reasoning tokens spent
        before visible output, content cut at the output limit."""
        model = body.get("model")
        reasoning = self.reasoning_tokens if model_family(model) == "reasoning" else 0
        limit = max_output_of(body)
        visible = token_count.count_text(content, model).tokens if content else 0
        if limit is not None and reasoning + visible > limit:
            room = max(0, limit - reasoning)
            content = content[: int(len(content) * room / visible)] if visible else ""
            visible = min(room, token_count.count_text(content, model).tokens if content else 0)
            reasoning = min(reasoning, limit)
            finish = "length"
        completion = reasoning + visible
        return {
            "id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_shoaltest",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
        }

    # -- files ----------------------------------------------------------------
    def add_file(self, filename: str, purpose: str, content: bytes) -> _File:
        f = _File(_new_id("file-", 22), filename, purpose, content, int(time.time()))
        with self._platform_lock:
            self.files[f.id] = f
        return f

    def file(self, file_id: str) -> _File:
        with self._platform_lock:
            f = self.files.get(file_id)
        if f is None:
            raise PlatformError(404, f"No such File object: {file_id}", param="id")
        return f

    # -- batches --------------------------------------------------------------
    def create_batch(self, body: dict) -> _Batch:
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(key):
                raise PlatformError(400, f"Missing required parameter: '{key}'.", param=key,
                                    code="missing_required_parameter")
        if body["endpoint"] != "/v1/chat/completions":
            raise PlatformError(400, f"Invalid value: '{body['endpoint']}'. Supported values are: "
                                "'/v1/chat/completions'.", param="endpoint", code="invalid_value")
        if body["completion_window"] != "24h":
            raise PlatformError(400, f"Invalid value: '{body['completion_window']}'. Supported values "
                                "are: '24h'.", param="completion_window", code="invalid_value")
        f = self.file(body["input_file_id"])
        if f.purpose != "batch":
            raise PlatformError(400, f"File {f.id} has purpose '{f.purpose}'; a batch needs purpose "
                                "'batch'.", param="input_file_id", code="invalid_file_purpose")
        b = _Batch(_new_id("batch_"), f.id, body["endpoint"], body["completion_window"],
                   body.get("metadata"), int(time.time()), time.monotonic())
        b.lines, b.errors = self._parse_batch_input(f.content, b.endpoint)
        b.stamps["created"] = b.created_at
        with self._platform_lock:
            self.batches[b.id] = b
        return b

    @staticmethod
    def _parse_batch_input(content: bytes, endpoint: str) -> tuple[list[dict], list[dict] | None]:
        lines, errors, seen = [], [], set()
        for n, raw in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
            def bad(code: str, message: str, param: str | None = None, n: int = n) -> None:
                errors.append({"code": code, "message": message, "param": param, "line": n})
            try:
                line = json.loads(raw)
            except ValueError:
                bad("invalid_json_line", "This line is not parseable as valid JSON.")
                continue
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                bad("missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
                continue
            if line["custom_id"] in seen:
                bad("duplicate_custom_id", "The custom_id for this request is a duplicate of another "
                    "request. The custom_id parameter must be unique for each request in a batch.", "custom_id")
                continue
            if line.get("method") != "POST":
                bad("invalid_method", "The method must be 'POST'.", "method")
                continue
            if line.get("url") != endpoint:
                bad("invalid_url", f"The url must match the batch endpoint '{endpoint}'.", "url")
                continue
            if not isinstance(line.get("body"), dict):
                bad("missing_required_parameter", "Missing required parameter: 'body'.", "body")
                continue
            seen.add(line["custom_id"])
            lines.append(line)
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "The batch input file is empty.",
                           "param": None, "line": None})
        return lines, errors or None

    def cancel_batch(self, batch_id: str) -> dict:
        b = self.batch(batch_id)
        with self._platform_lock:
            status = self._advance(b)
            if status in ("validating", "in_progress", "finalizing") and b.cancel_t is None:
                b.cancel_t = time.monotonic()
                b.stamps["cancelling"] = int(time.time())
        return self.batch_object(b)

    def batch(self, batch_id: str) -> _Batch:
        with self._platform_lock:
            b = self.batches.get(batch_id)
        if b is None:
            raise PlatformError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return b

    def _run_line(self, line: dict) -> dict:
        """One batch line through the same checks and model as a per-call request."""
        request_id = _new_id("req_", 32)
        body = line["body"]
        try:
            prompt = self.check_request(body)
            payload = self.completion(body, self.respond(body), "stop", prompt, request_id)
            response = {"status_code": 200, "request_id": request_id, "body": payload}
        except PlatformError as exc:
            response = {"status_code": exc.status, "request_id": request_id, "body": exc.body()}
        self.batch_lines_processed += 1
        return {"id": _new_id("batch_req_", 32), "custom_id": line["custom_id"], "response": response,
                "error": None}

    def _advance(self, b: _Batch) -> str:
        """Bring a batch up to now (under the platform lock); its current status."""
        if b.final:
            return b.final
        if b.errors:
            b.stamps.setdefault("failed", int(time.time()))
            b.final = "failed"
            return b.final
        validating, running, finalizing = self.batch_timing
        now = time.monotonic()
        cut = b.cancel_t if b.cancel_t is not None else now
        elapsed = cut - b.t0
        n = len(b.lines)
        limit = n if self.batch_expire_after is None else min(n, self.batch_expire_after)
        done = 0 if elapsed < validating else \
            limit if elapsed >= validating + running else int(limit * (elapsed - validating) / running)
        while len(b.results) < done:
            b.results.append(self._run_line(b.lines[len(b.results)]))
        if elapsed >= validating:
            b.stamps.setdefault("in_progress", int(time.time()))
        if b.cancel_t is not None:
            if now - b.cancel_t >= finalizing:
                return self._finish(b, "cancelled")
            return "cancelling"
        if elapsed < validating:
            return "validating"
        if elapsed < validating + running:
            return "in_progress"
        b.stamps.setdefault("finalizing", int(time.time()))
        if elapsed < validating + running + finalizing:
            return "finalizing"
        return self._finish(b, "expired" if limit < n else "completed")

    def _finish(self, b: _Batch, status: str) -> str:
        good = [r for r in b.results if r["response"]["status_code"] == 200]
        bad = [r for r in b.results if r["response"]["status_code"] != 200]
        if status == "expired":
            bad += [{"id": _new_id("batch_req_", 32), "custom_id": line["custom_id"], "response": None,
                     "error": {"code": "batch_expired", "message": "This request could not be executed "
                               "before the completion window expired."}}
                    for line in b.lines[len(b.results):]]
        rng = random.Random(b.id)
        for rows, attr, suffix in ((good, "output_file_id", "output"), (bad, "error_file_id", "error")):
            if not rows:
                continue
            if self.shuffle_batch_output:
                rows = rows[:]
                rng.shuffle(rows)
            text = "".join(json.dumps(r) + "\n" for r in rows)
            setattr(b, attr, self.add_file(f"{b.id}_{suffix}.jsonl", "batch_output", text.encode()).id)
        b.stamps.setdefault(status, int(time.time()))
        b.final = status
        return status

    def batch_object(self, b: _Batch) -> dict:
        with self._platform_lock:
            status = self._advance(b)
            results = list(b.results)
            s = dict(b.stamps)
        failed = sum(1 for r in results if r["response"]["status_code"] != 200)
        total = len(b.lines)
        if status == "expired":
            failed += total - len(results)
        usage_in = sum(r["response"]["body"].get("usage", {}).get("prompt_tokens", 0) for r in results)
        usage_out = sum(r["response"]["body"].get("usage", {}).get("completion_tokens", 0) for r in results)
        return {
            "id": b.id, "object": "batch", "endpoint": b.endpoint,
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
            "input_file_id": b.input_file_id, "completion_window": b.completion_window,
            "status": status, "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "created_at": b.created_at, "in_progress_at": s.get("in_progress"),
            "expires_at": b.created_at + 24 * 3600, "finalizing_at": s.get("finalizing"),
            "completed_at": s.get("completed"), "failed_at": s.get("failed"), "expired_at": s.get("expired"),
            "cancelling_at": s.get("cancelling"), "cancelled_at": s.get("cancelled"),
            "request_counts": {"total": 0 if b.errors else total,
                               "completed": len(results) - sum(1 for r in results
                                                               if r["response"]["status_code"] != 200),
                               "failed": failed},
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out, "total_tokens": usage_in + usage_out,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
            "metadata": b.metadata,
        }


class _PlatformHandler(_Handler):
    """Adds the platform's checks, limits and routes to the base handler."""
    fake: OpenAIPlatform

    def _platform_error(self, exc: PlatformError) -> int:
        self._send_json(exc.status, exc.body(), exc.headers)
        return exc.status

    # -- chat -----------------------------------------------------------------
    def _chat(self, body: dict, entry: dict) -> int:
        fake = self.fake
        self.reply_headers = {"x-request-id": _new_id("req_", 32)}
        self._charge: tuple[_Limiter, int, int] | None = None
        try:
            fake.check_auth(self.headers.get("Authorization"))
            prompt = fake.check_request(body)
            self._prompt = prompt
            limiter = fake.limiter(body.get("model"))
            if limiter is not None:
                out = max_output_of(body) or fake.default_max_output
                try:
                    self.reply_headers.update(limiter.admit(body.get("model"), prompt + out))
                except PlatformError as exc:
                    if exc.code == "rate_limit_exceeded":
                        with fake._lock:
                            fake.rate_limited += 1
                    raise
                self._charge = (limiter, prompt, out)
        except PlatformError as exc:
            entry["fault"] = exc.code or f"http_{exc.status}"
            return self._platform_error(exc)
        try:
            return super()._chat(body, entry)
        finally:
            if self._charge is not None:      # no reply (a fault): the output was not produced
                limiter, prompt, out = self._charge
                if fake.refund_unused_output:
                    limiter.refund(out)
            self.reply_headers = {}

    def _completion(self, body: dict, content: str, finish: str) -> dict:
        fake = self.fake
        payload = fake.completion(body, content, finish, self._prompt,
                                  self.reply_headers.get("x-request-id", "x"))
        usage = payload["usage"]
        with fake._lock:
            fake.usage_log.append((time.monotonic(), usage["total_tokens"]))
        if self._charge is not None:
            limiter, prompt, out = self._charge
            self._charge = None
            unused = out - usage["completion_tokens"] if fake.refund_unused_output else 0
            self.reply_headers.update(limiter.refund(unused) if unused > 0 else limiter.headers())
        return payload

    # -- routes ---------------------------------------------------------------
    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, method: str) -> None:
        path = self.path.split("?")[0].rstrip("/")
        path = path[3:] if path.startswith("/v1/") else path
        self.reply_headers = {"x-request-id": _new_id("req_", 32)}
        try:
            if method == "POST" and path == "/chat/completions":
                self.reply_headers = {}
                return super().do_POST()
            self.fake.check_auth(self.headers.get("Authorization"))
            status, payload = self._dispatch(method, path)
            if isinstance(payload, bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self._send_json(status, payload)
        except PlatformError as exc:
            self._platform_error(exc)
        finally:
            self.reply_headers = {}

    def _dispatch(self, method: str, path: str) -> tuple[int, Any]:
        fake = self.fake
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["models"]:
            return 200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                     "owned_by": "system"} for m in fake.models]}
        if method == "GET" and len(parts) == 2 and parts[0] == "models":
            if parts[1] not in fake.models:
                raise PlatformError(404, f"The model '{parts[1]}' does not exist", param="model",
                                    code="model_not_found")
            return 200, {"id": parts[1], "object": "model", "created": 0, "owned_by": "system"}
        if parts[0] == "files":
            return self._files(method, parts[1:])
        if parts[0] == "batches":
            return self._batches(method, parts[1:])
        raise PlatformError(404, f"Invalid URL ({method} /v1{path})", code="unknown_url")

    def _files(self, method: str, rest: list[str]) -> tuple[int, Any]:
        fake = self.fake
        if method == "POST" and not rest:
            fields = _multipart(self.headers.get("Content-Type", ""), self._read_body())
            purpose = fields.get("purpose", (None, b""))[1].decode()
            if "file" not in fields:
                raise PlatformError(400, "Missing required parameter: 'file'.", param="file",
                                    code="missing_required_parameter")
            if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
                raise PlatformError(400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose",
                                    code="invalid_value")
            filename, data = fields["file"]
            return 200, fake.add_file(filename or "upload.jsonl", purpose, data).obj()
        if method == "GET" and not rest:
            with fake._platform_lock:
                files = [f.obj() for f in fake.files.values()]
            return 200, {"object": "list", "data": files, "has_more": False}
        if len(rest) == 1 and method == "GET":
            return 200, fake.file(rest[0]).obj()
        if len(rest) == 1 and method == "DELETE":
            fake.file(rest[0])
            with fake._platform_lock:
                fake.files.pop(rest[0], None)
            return 200, {"id": rest[0], "object": "file", "deleted": True}
        if len(rest) == 2 and rest[1] == "content" and method == "GET":
            return 200, fake.file(rest[0]).content
        raise PlatformError(404, f"Invalid URL ({method} /v1/files/{'/'.join(rest)})", code="unknown_url")

    def _batches(self, method: str, rest: list[str]) -> tuple[int, Any]:
        fake = self.fake
        if method == "POST" and not rest:
            try:
                body = json.loads(self._read_body() or b"{}")
            except ValueError:
                raise PlatformError(400, "We could not parse the JSON body of your request.") from None
            return 200, fake.batch_object(fake.create_batch(body))
        if method == "GET" and not rest:
            with fake._platform_lock:
                batches = list(fake.batches.values())
            data = [fake.batch_object(b) for b in reversed(batches)]
            return 200, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": False}
        if method == "GET" and len(rest) == 1:
            return 200, fake.batch_object(fake.batch(rest[0]))
        if method == "POST" and len(rest) == 2 and rest[1] == "cancel":
            self._read_body()
            return 200, fake.cancel_batch(rest[0])
        raise PlatformError(404, f"Invalid URL ({method} /v1/batches/{'/'.join(rest)})", code="unknown_url")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


def _multipart(content_type: str, data: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (filename, bytes)} of a multipart/form-data body."""
    if not content_type.startswith("multipart/form-data"):
        raise PlatformError(400, "The request must be multipart/form-data.")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


OpenAIPlatform.handler_class = _PlatformHandler
