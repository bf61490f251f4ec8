"""OpenAI-compatible LLM client: structured output, retries, cache, usage and cost.

Every request goes through the `openai` package (AsyncOpenAI) to any OpenAI-compatible
server. One `LLMClient.complete()` call:

* is served from the cache when an earlier call with the same payload (base URL, model,
  messages, temperature, max_tokens, schema) succeeded and validated -- no HTTP request;
* builds its request from the endpoint's capabilities record (capabilities: max_tokens or
  max_completion_tokens, temperature or not, reasoning_effort, strict json_schema), which
  starts from the family's defaults and learns from refusals' error bodies, per endpoint,
  remembered in DuckDB (`endpoint_capabilities`);
* asks for structured output in the best mode the server accepts: strict `json_schema` ->
  when refused (400/415/422 naming the format, or a 500 naming it as llama-cpp-python's
  server sends) `{"type": "json_object", "schema": ...}` -> plain text with the schema in
  the prompt; the mode that works is remembered per endpoint;
* goes through the endpoint's rate gate (core.llm.pacing: RPM/TPM from headers or the profile,
  the common pause after a 429, adaptive concurrency); a 429 waits and goes again;
* fails at once, with the message and a hint, on context-length, auth, unknown-model and
  quota errors;
* retries transport failures (5xx, timeouts, dropped connections) with exponential
  backoff and jitter, honouring `retry-after` (seconds or HTTP date); the openai package's
  own retries are off so that every attempt is visible and logged;
* retries, separately and boundedly, replies that do not parse or validate, telling the
  model what was wrong;
* validates with pydantic, keeps the raw text when that fails, and never raises for
  server or parse errors (CallResult.ok / .error say what happened);
* logs every HTTP attempt in `llm_calls` (never the key), with tokens, latency and cost.

At most `max_concurrency` requests of one client are in flight at once (per event loop), and
the endpoint's gate may hold them back further.
Log rows are written by one background thread per client with group commit; call
`close()` when done (it also happens at garbage collection and interpreter exit). With
`defer_log=True` (what jobs use) a call does not wait for its row's commit: the id is
reserved from the sequence up front and `flush_log()` waits for the rows when it matters.

Where each part lives:
  parsing    the JSON object in a reply, validated (parse_reply, extract_json, balanced_objects)
  formats    structured-output modes: how a schema is asked for in each (MODES), strict schemas
  capabilities  what an endpoint accepts: family defaults, learning from refusals, DuckDB rows
  request    chat_request: the one function that decides a request body (online and batch)
  failures   classify: what a refused request means (rate limit, parameter, format, fatal)
  endpoint   EndpointLink: a client's shared capabilities record and rate gate
  transport  one HTTP request, its error body fields and retry-after
  calllog    the llm_calls writer thread, the cache lookups and the payload hash
  client     LLMClient: the call loop (cache, retries, fallback), run_sync
  call       CallResult, the progress of one call, the parse correction
  probe      LLMClient.test_connection
  pacing     RateGate: an endpoint's permits and waits (ratelimits: headers and buckets;
             adaptive: AIMD concurrency and client lag; gates: one gate per endpoint, the snapshot)
  concurrency  the default requests in flight and the embedded model's cap
  prices     the price table, the prices set in the app, batch discounts
"""
from __future__ import annotations

from core.llm.call import CallResult
from core.llm.calllog import CallLog, canonical_json, insert_calls, payload_hash
from core.llm.capabilities import Capabilities, defaults_for, family_of
from core.llm.client import LLMClient, run_sync
from core.llm.failures import Failure, classify
from core.llm.formats import MODES, response_format_param, schema_instruction, schema_of, strict_schema
from core.llm.parsing import ReplyError, balanced_objects, extract_json, parse_reply, schema_error
from core.llm.prices import estimate_cost
from core.llm.request import chat_request
from core.llm.transport import FORMAT_REJECTED_STATUS, RETRYABLE_STATUS, BadBody, parse_retry_after, read_completion

# the names these had when core.llm was one module (tests import them)
_CallLog = CallLog
_insert_calls = insert_calls
_read_completion = read_completion
_BadBody = BadBody

__all__ = ["CallResult", "LLMClient", "estimate_cost", "payload_hash", "parse_reply",
           "extract_json", "parse_retry_after", "MODES", "balanced_objects", "run_sync",
           "ReplyError", "schema_error", "canonical_json", "schema_of", "schema_instruction",
           "response_format_param", "RETRYABLE_STATUS", "FORMAT_REJECTED_STATUS", "Capabilities",
           "defaults_for", "family_of", "Failure", "classify", "strict_schema", "chat_request"]
