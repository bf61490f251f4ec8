"""`LLMClient`: one profile's structured calls -- cache, concurrency, pacing, retries, adaptation.

One logical call (`complete`) is a loop of HTTP attempts. Each request body comes from
`core.llm.request.chat_request` with the endpoint's capabilities record (max_tokens or
max_completion_tokens, temperature or not, reasoning_effort, strict json_schema ...) and goes
through the endpoint's rate gate (`core.llm.pacing`, one per endpoint in the process). After each
attempt the call either returns or, by what `core.llm.failures.classify` reads from the error
body, tries again:

* a reply that does not parse is retried (at most `max_parse_retries` times) with a correction;
* a 429 rate limit pauses the endpoint's gate for the time it asks and goes again -- never
  counted as a failure (a call gives up only when one 429 asks for more than
  `max_retry_after_s`, or 429s went on for `max_rate_limit_wait_s`);
* a refused parameter (unsupported_parameter / unsupported_value / invalid_json_schema) is
  learned once in the capabilities record and the request sent again as adapted;
* a refused response_format falls back to the next mode of `MODES` (remembered per endpoint);
* a context-length, auth, unknown-model, quota or other 4xx error fails the call at once with
  the server's message and a hint;
* a transport failure (5xx, timeouts, dropped connections) is retried (at most `max_retries`
  times) after an exponential backoff with jitter, or after the server's `retry-after`.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Sequence, TypeVar

import openai
from pydantic import BaseModel

from core.config import Profile, resolve_api_key
from core.errors import ShoalError
from core.llm import pacing
from core.llm.call import CallProgress, CallResult, parse_correction
from core.llm.calllog import CallLog, canonical_json, payload_hash, successful_replies
from core.llm.capabilities import Capabilities
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.llm.endpoint import EndpointLink
from core.llm.failures import classify
from core.llm.formats import MODES, schema_of
from core.llm.lifecycle import LIMITS  # retry limits: one definition for online and batch mode
from core.llm.parsing import parse_reply
from core.llm.prices import estimate_cost, load_prices
from core.llm.request import chat_request
from core.llm.transport import Attempt, post_chat, short_error
from core.store import Store

_MAX_ADAPTATIONS = 6   # parameter refusals learned within one call (each a different parameter)

_T = TypeVar("_T")


@dataclass
class _LoopState:
    """What a client keeps per event loop: its HTTP client, its concurrency slots, and the
    futures of requests in flight (a second identical request waits for the first)."""
    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    inflight: dict[str, asyncio.Future] = field(default_factory=dict)


class LLMClient:
    """One profile's client. Safe to use from several event loops (one AsyncOpenAI each)."""

    DEFERRED_LINGER_S = 0.0

    def __init__(self, store: Store, profile: Profile, prices: dict | None = None,
                 max_concurrency: int = DEFAULT_CONCURRENCY, max_retries: int = LIMITS.transport_retries,
                 max_parse_retries: int = LIMITS.parse_retries, *,
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 max_retry_after_s: float = LIMITS.max_retry_after_s, seed: int | None = None, defer_log: bool = False,
                 max_rate_limit_wait_s: float = LIMITS.rate_limit_wait_s, rate_gate: pacing.RateGate | None = None):
        """`defer_log`: a call returns without waiting for its `llm_calls` row to be committed
        (its id is reserved up front, rows are committed in batches); the caller then awaits
        `flush_log()` before it relies on the rows being in the database. `rate_gate`: pace with
        this gate instead of the process's gate for the endpoint (tests)."""
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if not profile.base_url:
            raise ShoalError(f"The {profile.role} profile has no server URL: set SHOAL_{profile.role.upper()}"
                             "_BASE_URL, or start the local model (`shoal llm serve`).")
        self.store = store
        self.profile = profile
        self.prices = prices if prices is not None else load_prices()
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.max_parse_retries = max_parse_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_retry_after_s = max_retry_after_s
        self.max_rate_limit_wait_s = max_rate_limit_wait_s
        self._own_gate = rate_gate
        self._link: EndpointLink | None = None
        self.model = profile.model
        self._api_key = resolve_api_key(profile)   # kept in memory only
        fixed = profile.response_format
        self._fixed_mode = None if fixed == "auto" else fixed
        self._rng = random.Random(seed)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = \
            weakref.WeakKeyDictionary()
        self._defer_log = defer_log
        self._log_writer = CallLog(store, linger_s=self.DEFERRED_LINGER_S if defer_log else 0.0)
        weakref.finalize(self, self._log_writer.close)
        self._model_lock: asyncio.Lock | None = None
        self.counters: dict[str, int] = {"requests": 0, "cache_hits": 0, "transport_retries": 0,
                                         "parse_retries": 0, "fallbacks": 0, "failures": 0,
                                         "rate_limited": 0, "adaptations": 0}

    # -- public -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The structured-output mode new calls start with."""
        if self._fixed_mode is not None:
            return self._fixed_mode
        return self._link.caps()[0].current if self._link is not None else MODES[0]

    @property
    def capabilities(self) -> Capabilities | None:
        """What this client's endpoint is known to accept (None before the model is known)."""
        return self._link.caps()[0] if self._link is not None else None

    def pacing(self) -> dict | None:
        """The endpoint's rate gate right now (limits, tokens per minute, waiting, 429s)."""
        return self._link.stats() if self._link is not None else None

    def request_body(self, messages: list[dict], schema: type[BaseModel], mode: str | None = None,
                     correction: list[dict] | None = None) -> dict:
        """The body the online path would POST for this call (model included) in `mode` (default:
        the mode new calls start with), with an optional parse correction appended: what a Batch
        API line carries as its `body`. Built by `core.llm.request.chat_request`, the one function
        that decides request parameters."""
        if not self.model:
            raise ShoalError(f"The {self.profile.role} profile has no model name: set it, or make one call first.")
        link = self._link_for_model()
        link.load_sync()
        caps = link.caps()[0]
        return chat_request(self.profile, self.model, caps, mode or self._fixed_mode or caps.current, messages,
                            schema, schema_of(schema), correction or ())

    def cache_key(self, messages: list[dict], schema: type[BaseModel]) -> str:
        """The llm_calls payload hash of the call `complete(messages, schema)` (its cache key)."""
        return self._payload_key(messages, schema_of(schema))

    async def complete(self, messages: list[dict], schema: type[BaseModel], *,
                       role: str | None = None, cache: bool = True) -> CallResult:
        """One validated structured reply, or a failed CallResult with the reason."""
        t0 = time.perf_counter()
        role = role or self.profile.role
        state = self._state()
        model_error = await self._ensure_model(state)
        if not model_error:
            await self._ensure_link()
        schema_json = schema_of(schema)
        key = self._payload_key(messages, schema_json)
        if model_error:
            self.counters["failures"] += 1
            return CallResult(False, None, None, model_error, None, False,
                              latency_ms=(time.perf_counter() - t0) * 1000)
        if cache:
            hit = await self._cached_or_inflight(state, key, schema)
            if hit is not None:
                self.counters["cache_hits"] += 1
                return replace(hit, cached=True, prompt_tokens=0, completion_tokens=0, cost_usd=0.0,
                               attempts=0, latency_ms=(time.perf_counter() - t0) * 1000)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        state.inflight.setdefault(key, future)
        result: CallResult | None = None
        try:
            result = await self._complete_uncached(state, key, messages, schema, schema_json, role, t0)
            return result
        finally:
            if state.inflight.get(key) is future:
                del state.inflight[key]
            if not future.done():
                future.set_result(result)

    def complete_sync(self, messages: list[dict], schema: type[BaseModel], **kw) -> CallResult:
        """`complete` for scripts and the CLI (runs its own event loop)."""
        return run_sync(self._closing(self.complete(messages, schema, **kw)))

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections (the client stays usable)."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None:
            await state.client.close()

    async def flush_log(self) -> None:
        """Wait until every `llm_calls` row of calls made so far is committed (raises if one of
        them could not be written). Instant-ish without `defer_log`."""
        await self._log_writer.flush()

    def close(self) -> None:
        """Stop the log-writer thread after it has written everything queued (the endpoint's
        last pacing snapshot included)."""
        if self._link is not None and self._link.gate.stats().requests_total:
            self._link.save_pacing(force=True)
        self._log_writer.close()

    def test_connection(self) -> dict:
        """Can we reach the server, and does it enforce a JSON schema?

        {ok, model, latency_ms, schema_enforced: bool|None, mode, error}. The probe asks for
        prose while requesting a schema: only a server that constrains decoding returns a
        valid object. The best enforcing mode found is remembered for later calls.
        """
        from core.llm.probe import probe_connection  # the probe drives this client's attempts
        return run_sync(self._closing(probe_connection(self)))

    # -- internals: event loop state and the model name ------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = _LoopState(self._new_http_client(), asyncio.Semaphore(self.max_concurrency))
            self._states[loop] = state
        return state

    def _new_http_client(self) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=self.profile.base_url, api_key=self._api_key,
                                    max_retries=0, timeout=self.profile.timeout_s)
        if not self.profile.is_openai:
            # OPENAI_ORG_ID / OPENAI_PROJECT_ID / OPENAI_ADMIN_KEY are for OpenAI only
            client.organization = None
            client.project = None
            client.admin_api_key = None
        return client

    async def _closing(self, coro: Awaitable[_T]) -> _T:
        try:
            return await coro
        finally:
            await self.aclose()

    async def _ensure_model(self, state: _LoopState) -> str | None:
        """Fill in an empty profile model from the server's GET /models; error text or None."""
        if self.model:
            return None
        if self._model_lock is None:
            self._model_lock = asyncio.Lock()
        async with self._model_lock:
            if self.model:
                return None
            try:
                page = await state.client.models.list()
                ids = [m.id async for m in page]
            except openai.APIError as exc:
                return f"cannot list models: {short_error(exc)}"
            if not ids:
                return "the server lists no models; set the model name in the profile"
            self.model = ids[0]
        return None

    def _link_for_model(self) -> EndpointLink:
        if self._link is None or self._link.model != self.model:
            self._link = EndpointLink(self.store, self.profile, self.model, self._log_writer,
                                      self.max_concurrency, self._own_gate)
        return self._link

    async def _ensure_link(self) -> None:
        """The shared capabilities record and rate gate of this endpoint, loaded from DuckDB once."""
        link = self._link_for_model()
        if not link.endpoint.loaded:
            await link.load()

    def remember_mode(self, mode: str) -> None:
        """Start later calls in `mode` (a connection test found it to be the best enforced)."""
        if self._fixed_mode is None and self._link is not None:
            self._link.start_from(mode)

    # -- cache and log ---------------------------------------------------------
    def _payload_key(self, messages: list[dict], schema_json: dict | None) -> str:
        extra = {"reasoning_effort": self.profile.reasoning_effort} if self.profile.reasoning_effort else None
        return payload_hash(self.profile.base_url, self.model, messages, self.profile.temperature,
                            self.profile.max_tokens, schema_json, extra)

    async def _cached_or_inflight(self, state: _LoopState, key: str,
                                  schema: type[BaseModel]) -> CallResult | None:
        """A logged reply that validates, else the result of the same request already on its way
        (when that one succeeds), else None."""
        hit = await self._cache_lookup(key, schema)
        if hit is None and key in state.inflight:
            earlier = await asyncio.shield(state.inflight[key])
            if earlier is not None and earlier.ok:
                hit = earlier
        return hit

    async def _cache_lookup(self, key: str, schema: type[BaseModel]) -> CallResult | None:
        if not await self._log_writer.may_hit(key):
            return None
        for row in await self._log_writer.run(successful_replies, key):
            parsed, err = parse_reply(row["response_text"], schema)
            if err is None:
                return CallResult(True, parsed, row["response_text"], None, int(row["id"]), True,
                                  response_format=row["response_format"])
        return None

    async def _log(self, key: str, role: str, request: dict, mode: str, out: Attempt) -> int:
        row = [key, role, self.profile.base_url, self.model, canonical_json(request), out.text, mode,
               out.prompt_tokens, out.completion_tokens, round(out.latency_ms, 3), out.cost_usd,
               out.error, out.status]
        success = out.error is None and out.text is not None
        if self._defer_log:
            return self._log_writer.insert_deferred(row, success)
        return await self._log_writer.insert(row, success=success)

    # -- one logical call ---------------------------------------------------------
    def _mode_now(self, mode: str) -> str:
        """The call's mode, or the endpoint's when another call has learned a weaker one since."""
        if self._fixed_mode is not None or self._link is None:
            return mode
        current = self._link.caps()[0].current
        return current if MODES.index(current) > MODES.index(mode) else mode

    async def _complete_uncached(self, state: _LoopState, key: str, messages: list[dict],
                                 schema: type[BaseModel], schema_json: dict, role: str,
                                 t0: float) -> CallResult:
        call = CallProgress(self.mode, t0)
        while True:
            call.mode = self._mode_now(call.mode)
            out = await self._attempt(state, key, role, messages, schema, schema_json, call.mode, call.meta(),
                                      call.correction)
            call.add(out)
            if out.kind != "http" and self._link is not None:
                self._link.accepted(out.caps_version)   # the server took this request as built
            if out.kind == "ok":
                return call.result(out, True)
            again = self._retry_parse(call, out) if out.kind == "parse" else \
                await self._retry_http(call, out, role)
            if not again:
                self.counters["failures"] += 1
                return call.result(out, False)

    def _retry_parse(self, call: CallProgress, out: Attempt) -> bool:
        """After a reply that did not parse or validate: ask again with a correction, or give up."""
        call.parse_failures += 1
        if call.parse_failures > self.max_parse_retries or (out.error or "").startswith("empty reply"):
            return False
        self.counters["parse_retries"] += 1
        call.correction = parse_correction(out.text, out.error)
        return True

    async def _retry_http(self, call: CallProgress, out: Attempt, role: str) -> bool:
        """After an HTTP-level failure, by what the error body says: wait out a rate limit,
        adapt a refused parameter, fall back to the next mode, back off and retry -- or give up
        (then `out.error` says why, with a hint for the errors no retry can fix)."""
        failure = out.failure or classify(out, call.mode, role, self.model)
        if failure.kind == "rate_limited":
            return self._after_rate_limit(call, out)
        if failure.kind == "unsupported":
            if self._link is not None and call.adaptations < _MAX_ADAPTATIONS and self._link.adapt(out):
                call.adaptations += 1
                self.counters["adaptations"] += 1
                return True
            out.error = f"{out.error} (refused although already adapted to it)"
            return False
        if failure.kind == "format_rejected":
            if self._fixed_mode is not None or call.mode == "text":
                return False
            if self._link is not None:
                self._link.drop_mode(call.mode)
            call.mode = MODES[MODES.index(call.mode) + 1]
            self.counters["fallbacks"] += 1
            return True
        if failure.kind == "fatal":
            if failure.hint:
                out.error = f"{out.error} (hint: {failure.hint})"
            return False
        if call.transport_failures - call.rate_limited >= self.max_retries:
            return False
        call.transport_failures += 1
        delay = self._delay(call.transport_failures - call.rate_limited, out.retry_after)
        if delay is None:
            out.error = f"{out.error} (retry-after {out.retry_after:.0f}s is over the "\
                        f"{self.max_retry_after_s:.0f}s limit)"
            return False
        self.counters["transport_retries"] += 1
        await asyncio.sleep(delay)
        return True

    def _after_rate_limit(self, call: CallProgress, out: Attempt) -> bool:
        """A 429 (the gate is already paused for the time it asks): go again, unless the wait
        asked is over `max_retry_after_s` or 429s went on for `max_rate_limit_wait_s`."""
        now = time.perf_counter()
        if out.retry_after is not None and out.retry_after > self.max_retry_after_s:
            out.error = f"{out.error} (retry-after {out.retry_after:.0f}s is over the "\
                        f"{self.max_retry_after_s:.0f}s limit)"
            return False
        call.first_429 = call.first_429 if call.first_429 is not None else now
        if now - call.first_429 > self.max_rate_limit_wait_s:
            out.error = f"{out.error} (still rate limited after {now - call.first_429:.0f}s)"
            return False
        call.transport_failures += 1
        call.rate_limited += 1
        self.counters["rate_limited"] += 1
        return True

    def _delay(self, failures: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            return retry_after + self._rng.uniform(0, min(0.1 * retry_after, 1.0))
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # -- one HTTP attempt ---------------------------------------------------------
    async def _attempt(self, state: _LoopState, key: str, role: str, messages: list[dict],
                       schema: type[BaseModel] | None, schema_json: dict | None, mode: str,
                       meta: dict, correction: Sequence[dict] = (), instruct: bool = True) -> Attempt:
        """One HTTP request (holding a concurrency slot and a permit of the endpoint's rate
        gate), parsed, then logged (without either). `instruct`: describe the schema in the
        prompt in the modes that need it (the connection probe asks without)."""
        link = self._link_for_model()
        caps, version = link.caps()
        request = chat_request(self.profile, self.model, caps, mode, messages, schema, schema_json,
                               correction, instruct=instruct)
        async with state.semaphore:
            permit = await link.acquire(request)
            try:
                out = await self._request(state, request, schema, caps)
            except BaseException:
                permit.finish(status=0, congested=False)     # cancelled: says nothing about the server
                raise
            out.failure = None if out.kind != "http" else classify(out, mode, role, self.model)
            # a 429 asking for more than we will wait fails the call; it does not pause everyone
            pause = out.failure is not None and out.failure.kind == "rate_limited" and \
                not (out.retry_after is not None and out.retry_after > self.max_retry_after_s)
            link.release(permit, out, rate_limited=pause)
        out.caps_version = version
        logged = {k: v for k, v in request.items() if k != "model"}
        out.call_id = await self._log(key, role, {**logged, **meta}, mode if "response_format" in request else "text", out)
        return out

    async def _request(self, state: _LoopState, request: dict, schema: type[BaseModel] | None,
                       caps: Capabilities) -> Attempt:
        """Send one request; its outcome with the reply parsed."""
        self.counters["requests"] += 1
        out = await post_chat(state.client, request)
        if out.kind == "ok":
            out.cost_usd = estimate_cost(self.model, out.prompt_tokens, out.completion_tokens, self.prices)
            if schema is not None:
                truncated = out.finish_reason == "length"
                out.parsed, out.error = parse_reply(out.text, schema, truncated)
                out.kind = "ok" if out.error is None else "parse"
                if out.error and truncated and not out.text and caps.reasoning_effort:
                    var = f"SHOAL_{self.profile.role.upper()}"
                    out.error = (f"empty reply: the model's reasoning used all {out.completion_tokens} "
                                 f"output tokens; raise {var}_MAX_TOKENS or lower {var}_REASONING_EFFORT")
        return out


def run_sync(coro: Awaitable[_T]) -> _T:
    """asyncio.run, also from a thread that already runs an event loop (then in a new thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="llm-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
