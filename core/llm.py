"""OpenAI-compatible LLM client: structured output, retries, cache, usage and cost.

Every request goes through the `openai` package (AsyncOpenAI) to any OpenAI-compatible
server. One `complete()` call:

* is served from the cache when an earlier call with the same payload (base URL, model,
  messages, temperature, max_tokens, schema) succeeded and validated -- no HTTP request;
* otherwise asks for structured output in the best mode the server accepts:
  `json_schema` -> when refused (400/415/422, or a 500 naming response_format as
  llama-cpp-python's server sends) `{"type": "json_object", "schema": ...}` -> plain text
  with the schema in the prompt; the mode that works is remembered per client;
* retries transport failures (429, 5xx, timeouts, dropped connections) with exponential
  backoff and jitter, honouring `retry-after` (seconds or HTTP date); the openai package's
  own retries are off so that every attempt is visible and logged;
* retries, separately and boundedly, replies that do not parse or validate, telling the
  model what was wrong;
* validates with pydantic, keeps the raw text when that fails, and never raises for
  server or parse errors (CallResult.ok / .error say what happened);
* logs every HTTP attempt in `llm_calls` (never the key), with tokens, latency and cost.

At most `max_concurrency` requests of one client are in flight at once (per event loop).
Log rows are written by one background thread per client with group commit; call
`close()` when done (it also happens at garbage collection and interpreter exit). With
`defer_log=True` (what jobs use) a call does not wait for its row's commit: the id is
reserved from the sequence up front and `flush_log()` waits for the rows when it matters.
"""
from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import json
import random
import re
import threading
import time
import weakref
import queue
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, TypeVar

import openai
import pydantic
from pydantic import BaseModel

from core.config import Profile, resolve_api_key
from core.errors import ShoalError
from core.prices import estimate_cost, load_prices
from core.store import Store

__all__ = ["CallResult", "LLMClient", "estimate_cost", "payload_hash", "parse_reply",
           "extract_json", "parse_retry_after", "MODES"]

MODES = ("json_schema", "json_object", "text")
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
FORMAT_REJECTED_STATUS = {400, 415, 422}   # what servers answer to a response_format they lack
T = TypeVar("T")


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


# ---------------------------------------------------------------- pure helpers


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def payload_hash(base_url: str, model: str, messages: list[dict], temperature: float,
                 max_tokens: int, schema: dict | None) -> str:
    """sha256 of the canonical JSON payload: the cache key of one logical request."""
    payload = {"base_url": base_url.rstrip("/"), "model": model, "messages": messages,
               "temperature": temperature, "max_tokens": max_tokens, "schema": schema}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class ReplyError(ValueError):
    """A reply that is not the JSON object we asked for; str() is the short reason."""


_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.S)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def balanced_objects(text: str):
    """Yield each top-level {...} block (string-aware brace matching), in order."""
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    yield text[start:i + 1]
                    break
        else:
            yield None   # an object that never closes: the reply was cut off
            return
        start = text.find("{", i + 1)


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except ValueError:
        return json.loads(_TRAILING_COMMA_RE.sub(r"\1", candidate))


def extract_json(text: str | None, truncated: bool = False) -> Any:
    """The JSON object in a model reply, tolerantly: the whole text, else a ``` fenced
    block, else the first {...} block that parses (trailing commas forgiven)."""
    s = (text or "").strip()
    if not s:
        raise ReplyError("empty reply")
    candidates = [s] + [b.strip() for b in _FENCE_RE.findall(s)]
    for cand in candidates:
        try:
            return _loads(cand)
        except ValueError:
            pass
    unclosed = False
    for block in balanced_objects(s):
        if block is None:
            unclosed = True
            break
        try:
            return _loads(block)
        except ValueError:
            continue
    if truncated or unclosed:
        raise ReplyError("truncated json")
    if "{" not in s:
        raise ReplyError("no json object in reply")
    raise ReplyError("invalid json")


def schema_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "(root)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"schema: {loc} {first.get('msg', 'invalid')}{more}"[:300]


def parse_reply(text: str | None, schema: type[BaseModel],
                truncated: bool = False) -> tuple[BaseModel | None, str | None]:
    """(validated model, None) or (None, short reason)."""
    try:
        obj = extract_json(text, truncated)
    except ReplyError as exc:
        return None, str(exc)
    if not isinstance(obj, dict):
        return None, f"schema: expected a JSON object, got {type(obj).__name__}"
    try:
        return schema.model_validate(obj), None
    except pydantic.ValidationError as exc:
        return None, schema_error(exc)


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@functools.lru_cache(maxsize=256)
def schema_of(schema: type[BaseModel]) -> dict:
    """The model's JSON schema, built once per class (pydantic takes about a millisecond).
    Shared: callers must not modify it."""
    return schema.model_json_schema()


def schema_instruction(schema_json: dict) -> str:
    """Appended to the last user message when the server cannot constrain the output."""
    return ("Reply with only one JSON object, no other text, that matches this JSON schema:\n"
            "```json\n" + json.dumps(schema_json, ensure_ascii=False) + "\n```")


@functools.lru_cache(maxsize=256)
def _instruction_of(schema: type[BaseModel]) -> str:
    return schema_instruction(schema_of(schema))


def _with_instruction(messages: list[dict], instruction: str) -> list[dict]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            m["content"] = m["content"].rstrip() + "\n\n" + instruction
            return out
    return out + [{"role": "user", "content": instruction}]


def response_format_param(mode: str, schema: type[BaseModel], schema_json: dict) -> dict | None:
    if mode == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "reply"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema_json, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema_json}
    return None


# ---------------------------------------------------------------- the client


@dataclass
class _Attempt:
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


@dataclass
class _LoopState:
    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    inflight: dict[str, asyncio.Future] = field(default_factory=dict)


_CALL_COLUMNS = ("payload_hash, role, base_url, model, request, response_text, response_format, "
                 "prompt_tokens, completion_tokens, latency_ms, cost_usd, error, status_code")
_INSERT_CALL = f"INSERT INTO llm_calls ({_CALL_COLUMNS}) VALUES ({', '.join(['?'] * 13)}) RETURNING id"


def _insert_calls(cur, rows: list[list], preset: list[int | None] | None = None) -> list[int]:
    """Insert rows into llm_calls; their ids in order (`preset` ids are used as given). Several
    rows go in one statement with ids drawn from the sequence first (DuckDB's per-statement
    cost dominates small inserts)."""
    preset = preset or [None] * len(rows)
    if len(rows) == 1 and preset[0] is None:
        return [int(cur.execute(_INSERT_CALL, rows[0]).fetchone()[0])]
    missing = [i for i, call_id in enumerate(preset) if call_id is None]
    fresh = iter(int(r[0]) for r in cur.execute("SELECT nextval('seq_llm_calls') FROM range(?)",
                                                [len(missing)]).fetchall()) if missing else iter(())
    ids = [call_id if call_id is not None else next(fresh) for call_id in preset]
    one = "(" + ", ".join(["?"] * 14) + ")"
    cur.execute(f"INSERT INTO llm_calls (id, {_CALL_COLUMNS}) VALUES {', '.join([one] * len(rows))}",
                [v for call_id, row in zip(ids, rows) for v in (call_id, *row)])
    return ids


def _successful_replies(store: Store, key: str) -> list[dict]:
    return store.rows("SELECT id, response_text, response_format FROM llm_calls "
                      "WHERE payload_hash = ? AND error IS NULL AND response_text IS NOT NULL "
                      "ORDER BY id DESC LIMIT 3", [key])


class _CallLog:
    """Writes `llm_calls` on one background thread so the event loop never waits on DuckDB.

    Rows that queue up while a commit runs are written together in one transaction (group
    commit: one autocommit per row costs several ms). It also keeps the set of payload
    hashes that have a successful reply, so a cache miss -- the common case on a first
    run -- needs no query at all.
    """

    ID_BLOCK = 256   # ids reserved from the sequence at once for deferred rows

    def __init__(self, store: Store, linger_s: float = 0.0):
        self.store = store
        self.linger_s = linger_s   # wait this long after a first row so more share its commit
        self._queue: "queue.SimpleQueue[tuple[str, Any, Future] | None]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ok_hashes: set[str] | None = None
        self._free_ids: list[int] = []
        self.failed_rows = 0                 # deferred rows that could not be written
        self.last_error: str | None = None

    def _submit(self, kind: str, payload: Any) -> "asyncio.Future | None":
        fut: Future = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="llm-calls-writer", daemon=True)
                self._thread.start()
            self._queue.put((kind, payload, fut))
        return None if isinstance(payload, tuple) and kind == "insert" else asyncio.wrap_future(fut)

    async def insert(self, row: list, success: bool) -> int:
        call_id = await self._submit("insert", row)
        if success and self._ok_hashes is not None:
            self._ok_hashes.add(row[0])
        return call_id

    def insert_deferred(self, row: list, success: bool) -> int:
        """Queue a row under an id reserved now; its commit is not awaited (see `flush`)."""
        if not self._free_ids:
            block = self.store.execute("SELECT nextval('seq_llm_calls') FROM range(?)",
                                       [self.ID_BLOCK]).fetchall()
            self._free_ids = [int(r[0]) for r in reversed(block)]
        call_id = self._free_ids.pop()
        self._submit("insert", (row, call_id))
        if success and self._ok_hashes is not None:
            self._ok_hashes.add(row[0])
        return call_id

    async def flush(self) -> None:
        """Return once every row queued before this call is committed (FIFO writer); raise if a
        deferred row could not be written since the last flush."""
        await self.run(lambda store: None)
        if self.failed_rows:
            failed, self.failed_rows = self.failed_rows, 0
            raise RuntimeError(f"{failed} llm_calls row(s) not written: {self.last_error}")

    async def run(self, fn: Callable[..., T], *args) -> T:
        return await self._submit("call", (fn, args))

    async def may_hit(self, key: str) -> bool:
        if self._ok_hashes is None:
            hashes = await self.run(lambda store: {r[0] for r in store.execute(
                "SELECT DISTINCT payload_hash FROM llm_calls "
                "WHERE error IS NULL AND response_text IS NOT NULL").fetchall()})
            if self._ok_hashes is None:
                self._ok_hashes = hashes
        return key in self._ok_hashes

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            if self.linger_s > 0 and item[0] == "insert":
                time.sleep(self.linger_s)
            while len(batch) < 256:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)   # finish this batch, then stop
                    break
                batch.append(nxt)
            inserts = [b for b in batch if b[0] == "insert"]
            if inserts:
                self._write(inserts)
            for kind, payload, fut in batch:
                if kind == "call" and fut.set_running_or_notify_cancel():
                    fn, args = payload
                    try:
                        fut.set_result(fn(self.store, *args))
                    except BaseException as exc:  # handed to the awaiting coroutine
                        fut.set_exception(exc)

    def _write(self, inserts: list) -> None:
        rows = [payload[0] if isinstance(payload, tuple) else payload for _, payload, _ in inserts]
        preset = [payload[1] if isinstance(payload, tuple) else None for _, payload, _ in inserts]
        try:
            with self.store.transaction() as cur:
                ids = _insert_calls(cur, rows, preset)
        except BaseException as exc:  # handed to every awaiting coroutine; deferred rows are counted
            for (_, payload, fut) in inserts:
                if isinstance(payload, tuple):
                    self.failed_rows += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, _, fut), call_id in zip(inserts, ids):
            if not fut.done():
                fut.set_result(int(call_id))


class LLMClient:
    """One profile's client. Safe to use from several event loops (one AsyncOpenAI each)."""

    DEFERRED_LINGER_S = 0.0

    def __init__(self, store: Store, profile: Profile, prices: dict | None = None,
                 max_concurrency: int = 8, max_retries: int = 4, max_parse_retries: int = 1, *,
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 max_retry_after_s: float = 120.0, seed: int | None = None, defer_log: bool = False):
        """`defer_log`: a call returns without waiting for its `llm_calls` row to be committed
        (its id is reserved up front, rows are committed in batches); the caller then awaits
        `flush_log()` before it relies on the rows being in the database."""
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
        self.model = profile.model
        self._api_key = resolve_api_key(profile)   # kept in memory only
        fixed = profile.response_format
        self._fixed_mode = None if fixed == "auto" else fixed
        self._mode = self._fixed_mode or MODES[0]
        self._rng = random.Random(seed)
        self._states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = \
            weakref.WeakKeyDictionary()
        self._defer_log = defer_log
        self._log_writer = _CallLog(store, linger_s=self.DEFERRED_LINGER_S if defer_log else 0.0)
        weakref.finalize(self, self._log_writer.close)
        self._model_lock: asyncio.Lock | None = None
        self.counters: dict[str, int] = {"requests": 0, "cache_hits": 0, "transport_retries": 0,
                                         "parse_retries": 0, "fallbacks": 0, "failures": 0}

    # -- public -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The structured-output mode new calls start with."""
        return self._mode

    async def complete(self, messages: list[dict], schema: type[BaseModel], *,
                       role: str | None = None, cache: bool = True) -> CallResult:
        """One validated structured reply, or a failed CallResult with the reason."""
        t0 = time.perf_counter()
        role = role or self.profile.role
        state = self._state()
        model_error = await self._ensure_model(state)
        schema_json = schema_of(schema)
        key = payload_hash(self.profile.base_url, self.model, messages, self.profile.temperature,
                           self.profile.max_tokens, schema_json)
        if model_error:
            self.counters["failures"] += 1
            return CallResult(False, None, None, model_error, None, False,
                              latency_ms=(time.perf_counter() - t0) * 1000)
        if cache:
            hit = await self._cache_lookup(key, schema)
            if hit is None and key in state.inflight:   # the same request is on its way
                earlier = await asyncio.shield(state.inflight[key])
                if earlier is not None and earlier.ok:
                    hit = earlier
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
        """Stop the log-writer thread after it has written everything queued."""
        self._log_writer.close()

    def test_connection(self) -> dict:
        """Can we reach the server, and does it enforce a JSON schema?

        {ok, model, latency_ms, schema_enforced: bool|None, mode, error}. The probe asks for
        prose while requesting a schema: only a server that constrains decoding returns a
        valid object. The best enforcing mode found is remembered for later calls.
        """
        return run_sync(self._closing(self._test_connection()))

    # -- internals: event loop state and DB thread ------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            client = openai.AsyncOpenAI(base_url=self.profile.base_url, api_key=self._api_key,
                                        max_retries=0, timeout=self.profile.timeout_s)
            if not self.profile.is_openai:
                # OPENAI_ORG_ID / OPENAI_PROJECT_ID / OPENAI_ADMIN_KEY are for OpenAI only
                client.organization = None
                client.project = None
                client.admin_api_key = None
            state = _LoopState(client, asyncio.Semaphore(self.max_concurrency))
            self._states[loop] = state
        return state

    async def _closing(self, coro: Awaitable[T]) -> T:
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
                return f"cannot list models: {_short_error(exc)}"
            if not ids:
                return "the server lists no models; set the model name in the profile"
            self.model = ids[0]
        return None

    # -- cache and log ---------------------------------------------------------
    async def _cache_lookup(self, key: str, schema: type[BaseModel]) -> CallResult | None:
        if not await self._log_writer.may_hit(key):
            return None
        for row in await self._log_writer.run(_successful_replies, key):
            parsed, err = parse_reply(row["response_text"], schema)
            if err is None:
                return CallResult(True, parsed, row["response_text"], None, int(row["id"]), True,
                                  response_format=row["response_format"])
        return None

    async def _log(self, key: str, role: str, request: dict, mode: str, out: _Attempt) -> int:
        row = [key, role, self.profile.base_url, self.model, canonical_json(request), out.text, mode,
               out.prompt_tokens, out.completion_tokens, round(out.latency_ms, 3), out.cost_usd,
               out.error, out.status]
        success = out.error is None and out.text is not None
        if self._defer_log:
            return self._log_writer.insert_deferred(row, success)
        return await self._log_writer.insert(row, success=success)

    # -- one logical call ---------------------------------------------------------
    async def _complete_uncached(self, state: _LoopState, key: str, messages: list[dict],
                                 schema: type[BaseModel], schema_json: dict, role: str,
                                 t0: float) -> CallResult:
        mode = self._mode
        correction: list[dict] = []
        transport_failures = parse_failures = attempts = 0
        p_tok = c_tok = 0
        cost = 0.0
        model_text: str | None = None   # the last thing the model said (never an error body)
        while True:
            sent = messages if mode == "json_schema" else \
                _with_instruction(messages, _instruction_of(schema))
            out = await self._attempt(state, key, role, sent + correction, schema, schema_json,
                                      mode, {"transport_retry": transport_failures,
                                             "parse_retry": parse_failures})
            attempts += 1
            p_tok += out.prompt_tokens
            c_tok += out.completion_tokens
            cost += out.cost_usd
            if out.kind != "http":
                model_text = out.text
            if out.kind != "http" and mode != self._mode and self._fixed_mode is None:
                self._mode = mode   # the server accepted this mode: start there from now on

            def result(ok: bool) -> CallResult:
                if not ok:
                    self.counters["failures"] += 1
                return CallResult(ok, out.parsed, model_text, out.error, out.call_id, False, p_tok, c_tok,
                                  cost, (time.perf_counter() - t0) * 1000, attempts, mode)

            if out.kind == "ok":
                return result(True)
            if out.kind == "parse":
                parse_failures += 1
                if parse_failures > self.max_parse_retries:
                    return result(False)
                self.counters["parse_retries"] += 1
                correction = [{"role": "assistant", "content": (out.text or "")[:4000]},
                              {"role": "user", "content": f"That reply was not valid ({out.error}). "
                               "Answer again with only the JSON object that matches the schema."}]
                continue
            # an HTTP-level failure
            if _format_rejected(out, mode) and self._fixed_mode is None:
                mode = MODES[MODES.index(mode) + 1]
                self.counters["fallbacks"] += 1
                continue
            if not _retryable(out) or transport_failures >= self.max_retries:
                return result(False)
            transport_failures += 1
            delay = self._delay(transport_failures, out.retry_after)
            if delay is None:
                out.error = f"{out.error} (retry-after {out.retry_after:.0f}s is over the "\
                            f"{self.max_retry_after_s:.0f}s limit)"
                return result(False)
            self.counters["transport_retries"] += 1
            await asyncio.sleep(delay)

    def _delay(self, failures: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            return retry_after + self._rng.uniform(0, min(0.1 * retry_after, 1.0))
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def _attempt(self, state: _LoopState, key: str, role: str, messages: list[dict],
                       schema: type[BaseModel] | None, schema_json: dict | None, mode: str,
                       meta: dict) -> _Attempt:
        """One HTTP request (holding a concurrency slot), parsed, then logged (without the slot)."""
        async with state.semaphore:
            out, request, logged_mode = await self._request(state, messages, schema, schema_json, mode, meta)
        out.call_id = await self._log(key, role, request, logged_mode, out)
        return out

    async def _request(self, state: _LoopState, messages: list[dict], schema: type[BaseModel] | None,
                       schema_json: dict | None, mode: str, meta: dict) -> tuple[_Attempt, dict, str]:
        rf = response_format_param(mode, schema, schema_json) if schema is not None else None
        params: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "temperature": self.profile.temperature,
                                  "max_tokens": self.profile.max_tokens}
        if rf is not None:
            params["response_format"] = rf
        out = _Attempt(kind="http")
        self.counters["requests"] += 1
        t = time.perf_counter()
        try:
            # The body goes in extra_body (sent as is): the package's TypedDict transform of
            # messages and schema costs several ms of CPU per call and changes nothing in
            # plain JSON dicts; on 2 cores that alone capped throughput well below C/L.
            body = {k: v for k, v in params.items() if k != "model"}
            raw = await state.client.chat.completions.with_raw_response.create(
                model=self.model, messages=[], extra_body=body)
            out.status = raw.status_code
            out.latency_ms = (time.perf_counter() - t) * 1000
            text, finish_reason, out.prompt_tokens, out.completion_tokens = _read_completion(raw.http_response)
            out.text = text
            out.cost_usd = estimate_cost(self.model, out.prompt_tokens, out.completion_tokens, self.prices)
            if schema is None:
                out.kind = "ok"
            else:
                truncated = finish_reason == "length"
                out.parsed, out.error = parse_reply(out.text, schema, truncated)
                out.kind = "ok" if out.error is None else "parse"
        except openai.APIStatusError as exc:
            out.latency_ms = (time.perf_counter() - t) * 1000
            out.status = exc.status_code
            out.error = _short_error(exc)
            out.text = _body_text(exc)
            out.retry_after = parse_retry_after(exc.response.headers)
        except openai.APIError as exc:   # timeouts, refused or dropped connections, bad bodies
            out.latency_ms = (time.perf_counter() - t) * 1000
            out.error = _short_error(exc)
        except _BadBody as exc:
            out.error = str(exc)
            out.text = exc.text
            out.retryable = True
        request = {**params, **meta}
        request.pop("model")
        return out, request, mode if rf else "text"

    async def _test_connection(self) -> dict:
        t0 = time.perf_counter()
        state = self._state()
        report: dict[str, Any] = {"ok": False, "model": None, "latency_ms": None, "schema_enforced": None,
                                  "mode": None, "error": None, "base_url": self.profile.base_url}
        error = await self._ensure_model(state)
        report["model"] = self.model or None
        if error:
            report["error"] = error
            return report
        probe = [{"role": "user", "content": "Say hello in a few words of plain prose. Do not use JSON."}]
        schema_json = schema_of(_Probe)
        key = payload_hash(self.profile.base_url, self.model, probe, self.profile.temperature,
                           self.profile.max_tokens, schema_json)
        if self._fixed_mode is None:
            structured = ["json_schema", "json_object"]
        else:
            structured = [self._fixed_mode] if self._fixed_mode != "text" else []
        accepted = enforced = None

        async def send(mode: str) -> _Attempt:
            t = time.perf_counter()
            with_schema = mode != "text"
            out = await self._attempt(state, key, "test", probe, _Probe if with_schema else None,
                                      schema_json if with_schema else None, mode, {"probe": mode})
            report["latency_ms"] = round((time.perf_counter() - t) * 1000, 1)
            return out

        for mode in structured:
            out = await send(mode)
            if out.kind == "http":
                if _format_rejected(out, mode):
                    continue           # this server does not know the mode: try the next
                report["error"] = out.error
                return report
            accepted = accepted or mode
            if out.kind == "ok":       # prose was asked for, a valid object came back
                enforced = mode
                break
        if accepted is None:           # no structured mode asked, or every one refused
            out = await send("text")
            if out.kind == "http":
                report["error"] = out.error
                return report
            accepted = "text"
        report["ok"] = True
        report["schema_enforced"] = (enforced is not None) if structured else None
        report["mode"] = enforced or accepted
        if self._fixed_mode is None:
            self._mode = report["mode"]
        report["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return report


class _Probe(BaseModel):
    greeting: str
    word_count: int


class _BadBody(Exception):
    """A 2xx answer that is not a chat completion: retried like a transport error."""

    def __init__(self, message: str, text: str | None = None):
        super().__init__(message)
        self.text = text


def _read_completion(response: Any) -> tuple[str | None, str | None, int, int]:
    """(content, finish_reason, prompt_tokens, completion_tokens) of a chat completion body.

    Read straight from the JSON: building openai's ChatCompletion model (raw.parse()) took a
    sizeable share of the client's CPU per call for the four values used here."""
    ctype = response.headers.get("content-type", "")
    try:
        data = json.loads(response.content) if "json" in ctype else None
    except ValueError:
        data = None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise _BadBody(f"bad response body: not a chat completion ({ctype or 'no content-type'})",
                       response.text[:4000])
    choice = choices[0] if choices else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) else 0

    return (content if isinstance(content, str) else None, choice.get("finish_reason"),
            count("prompt_tokens"), count("completion_tokens"))


def _format_rejected(out: _Attempt, mode: str) -> bool:
    """Did the server refuse the response_format of this mode? A 400/415/422, or -- as
    llama-cpp-python's server does for json_schema -- a 500 whose message names it."""
    if mode == "text" or out.kind != "http" or out.status is None:
        return False
    if out.status in FORMAT_REJECTED_STATUS:
        return True
    text = f"{out.error} {out.text or ''}".lower()
    return out.status >= 500 and ("response_format" in text or mode in text)


def _retryable(out: _Attempt) -> bool:
    return out.retryable or out.status is None or out.status in RETRYABLE_STATUS


def _short_error(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIStatusError):
        body, message = exc.body, ""
        if isinstance(body, dict):
            inner = body.get("error") if isinstance(body.get("error"), dict) else body
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


def _body_text(exc: openai.APIStatusError) -> str | None:
    try:
        return exc.response.text[:4000]
    except Exception:  # the body may be unread or undecodable; it is only kept for the log
        return None


def run_sync(coro: Awaitable[T]) -> T:
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
