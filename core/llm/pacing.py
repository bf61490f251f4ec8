"""Rate gate: one per endpoint (base URL + model or account), shared by every job and role.

A call asks its endpoint's gate (core.llm.gates.gate_for) for a permit before it sends a request
and gives the permit back with the outcome:

    gate = gate_for(gate_key(base_url, model))
    permit = await gate.acquire(prompt_tokens, max_output_tokens)
    ...                                   # send the request
    permit.finish(status=200, prompt_tokens=..., completion_tokens=..., headers=headers)

The gate paces four things at once:

* requests per minute and tokens per minute, each as a bucket that refills `limit` units per
  window continuously (core.llm.ratelimits.Bucket). A permit reserves prompt + requested output
  tokens up front (what the server charges); finishing it refunds what the reply did not use;
* limits set explicitly, or learned from `x-ratelimit-limit-*` headers, and the window they
  refill over from `x-ratelimit-reset-*` (reset = used x window / limit); the
  `x-ratelimit-remaining-tokens/-requests` of a reply lower the local buckets when the
  server knows of more use (another process on the same account);
* one common pause after a 429, honouring its `retry-after-ms` / `retry-after` header or
  its "Please try again in 1.2s" message, and syncing the token bucket to the "Used" the
  message reports;
* adaptive concurrency (core.llm.adaptive) for servers that never send 429s.

Waiters are served first come first served. The gate is thread-safe (one lock) and works
from any number of event loops and threads at once: `acquire` for async code,
`acquire_sync` for threads. `stats()` is a snapshot for the UI.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from core.llm.adaptive import CLIENT_LAG_S, AdaptiveWindow
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.llm.ratelimits import Bucket, parse_rate_limit_headers, retry_delay, used_of_limit

__all__ = ["RateGate", "Permit", "GateStats"]

WINDOW_S = 60.0
MIN_WINDOW_S, MAX_WINDOW_S = 0.5, 3600.0   # what a window learned from reset headers may be
MAX_NAP_S = 0.5          # a waiter re-checks at least this often (limits may change meanwhile)
_INF = math.inf


# ---------------------------------------------------------------- permits and stats


@dataclass
class Permit:
    """One admitted request. `finish()` exactly once (a second call is ignored)."""
    gate: RateGate
    prompt_tokens: int
    max_output_tokens: int
    reserved: int
    started: float
    waited_s: float
    done: bool = False

    def finish(self, **outcome: Any) -> None:
        """See RateGate.release for the keywords."""
        self.gate.release(self, **outcome)


@dataclass(frozen=True)
class GateStats:
    key: str
    rpm_limit: float | None
    tpm_limit: float | None
    limits_from: str               # "explicit", "headers", "explicit+headers" or "none"
    concurrency_limit: int | None  # None: unbounded
    in_flight: int
    waiting: int
    requests_last_window: int      # finished in the last `window_s` seconds
    tokens_last_window: int        # their real usage (prompt + completion)
    window_s: float
    total_wait_s: float            # summed over every permit
    rate_limited: int              # 429s reported
    paused_for_s: float            # what is left of the common pause
    requests_total: int
    tokens_total: int

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens_last_window * 60.0 / self.window_s


class _Waiter:
    __slots__ = ("cost", "wake")

    def __init__(self, cost: int, wake: Callable[[], None]):
        self.cost = cost
        self.wake = wake


# ---------------------------------------------------------------- the gate


class RateGate:
    """See the module docstring. `clock` is injectable for tests (monotonic seconds)."""

    def __init__(self, key: str = "", *, rpm: float | None = None, tpm: float | None = None,
                 max_concurrency: int | None = None, adaptive: bool = False,
                 initial_concurrency: int | None = None, min_concurrency: int = 1,
                 latency_tolerance: float = 2.0, window_s: float = WINDOW_S,
                 default_pause_s: float = 1.0, max_pause_s: float = 120.0,
                 adaptive_until_limits: bool = False, clock: Callable[[], float] = time.monotonic):
        """`adaptive_until_limits`: stop adapting the concurrency once headers state the
        server's limits (a rate-limited API paces with them and its 429s, and its latency says
        nothing about its load)."""
        if adaptive and not max_concurrency:
            max_concurrency = 64
        self.key = key
        self.window_s = float(window_s)
        self.default_pause_s = default_pause_s
        self.max_pause_s = max_pause_s
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._explicit = {"requests": rpm, "tokens": tpm}
        self._learned: dict[str, float] = {}
        self._window_samples: deque[float] = deque(maxlen=9)
        self._buckets: dict[str, Bucket] = {k: Bucket.full(v, self.window_s, now)
                                            for k, v in self._explicit.items() if v}
        self._max_concurrency = max_concurrency
        self._adaptive_until_limits = adaptive_until_limits
        self._aimd: AdaptiveWindow | None = None
        if adaptive and max_concurrency:   # adaptive always has a ceiling (64 unless given, above)
            self._aimd = AdaptiveWindow(ceiling=float(max_concurrency), floor=float(min_concurrency),
                                        window=float(initial_concurrency or min(DEFAULT_CONCURRENCY, max_concurrency)),
                                        tolerance=latency_tolerance)
        self._in_flight = 0
        self._pause_until = -_INF
        self._consecutive_429 = 0
        self._waiters: deque[_Waiter] = deque()
        self._recent: deque[tuple[float, int]] = deque()   # (finished at, tokens used)
        self._total_wait = 0.0
        self._rate_limited = 0
        self._requests_total = 0
        self._tokens_total = 0

    # -- limits -------------------------------------------------------------
    def set_limits(self, rpm: float | None = None, tpm: float | None = None) -> None:
        """Set explicit limits (None leaves a limit as it is)."""
        with self._lock:
            now = self._clock()
            for kind, value in (("requests", rpm), ("tokens", tpm)):
                if value:
                    self._explicit[kind] = value
                    self._apply_limit(kind, now)
        self._wake_head()

    def _apply_limit(self, kind: str, now: float) -> None:
        candidates = [v for v in (self._explicit.get(kind), self._learned.get(kind)) if v]
        if not candidates:
            return
        limit = min(candidates)
        bucket = self._buckets.get(kind)
        if bucket is None:
            self._buckets[kind] = Bucket.full(limit, self.window_s, now)
        elif bucket.limit != limit:
            bucket.set_limit(limit, now)

    def observe_headers(self, headers: Any) -> None:
        """Learn limits (and their window) from `x-ratelimit-*` headers and lower the buckets
        to what remains."""
        seen = parse_rate_limit_headers(headers)
        if not seen:
            return
        with self._lock:
            now = self._clock()
            self._learn_window(seen, now)
            for kind in ("requests", "tokens"):
                limit = seen.get(f"limit_{kind}")
                if limit:
                    self._learned[kind] = limit
                    self._apply_limit(kind, now)
                    if self._adaptive_until_limits:
                        self._aimd = None
                remaining = seen.get(f"remaining_{kind}")
                bucket = self._buckets.get(kind)
                if remaining is not None and bucket is not None:
                    bucket.cap(remaining, now)

    def _learn_window(self, seen: dict[str, float], now: float) -> None:
        """The window a server's limits refill over, from a reply that says how much is used and
        when it will be refilled: `reset = used x window / limit` (OpenAI: a minute). Only
        replies with at least 5% of the limit used count (the reset is given to the millisecond);
        the median of the last few is taken."""
        for kind in ("tokens", "requests"):
            limit, remaining, reset = (seen.get(f"{w}_{kind}") for w in ("limit", "remaining", "reset"))
            if not limit or remaining is None or reset is None or limit - remaining < 0.05 * limit:
                continue
            estimate = reset * limit / (limit - remaining)
            if not MIN_WINDOW_S <= estimate <= MAX_WINDOW_S:
                continue
            samples = self._window_samples
            samples.append(estimate)
            window = sorted(samples)[len(samples) // 2]
            if len(samples) >= 3 and abs(window - self.window_s) > 0.1 * self.window_s:
                self.window_s = window
                for bucket in self._buckets.values():
                    bucket.refill(now)
                    bucket.window_s = window
            return

    def learn_limits(self, rpm: float | None = None, tpm: float | None = None) -> None:
        """Limits known from earlier runs (headers seen then): applied as learned ones, until
        the server's own headers say otherwise."""
        self.observe_headers({k: str(v) for k, v in (("x-ratelimit-limit-requests", rpm),
                                                     ("x-ratelimit-limit-tokens", tpm)) if v})

    @property
    def counts_tokens(self) -> bool:
        """Whether a token limit is known (else counting prompt tokens buys nothing)."""
        return "tokens" in self._buckets

    def ensure_concurrency(self, n: int) -> None:
        """A caller that runs up to `n` requests at once: an adaptive window may grow that far."""
        with self._lock:
            if self._aimd is not None:
                self._aimd.raise_ceiling(float(n))
                self._max_concurrency = max(self._max_concurrency or 0, n)

    # -- admission ----------------------------------------------------------
    def _concurrency_limit(self) -> float:
        if self._aimd is not None:
            return max(1, math.floor(self._aimd.window))
        return self._max_concurrency or _INF

    def _check(self, cost: int, now: float) -> float:
        """Seconds until a request of `cost` tokens may go (0: now; inf: after a release)."""
        if now < self._pause_until:
            return self._pause_until - now
        if self._in_flight >= self._concurrency_limit():
            return _INF
        waits = [0.0]
        if (b := self._buckets.get("requests")) is not None:
            waits.append(b.wait_for(1, now))
        if (b := self._buckets.get("tokens")) is not None:
            waits.append(b.wait_for(cost, now))
        return max(waits)

    def _admit(self, prompt_tokens: int, max_output: int, cost: int, now: float, waited: float) -> Permit:
        for kind, amount in (("requests", 1), ("tokens", cost)):
            if (b := self._buckets.get(kind)) is not None:
                b.take(amount, now)
        self._in_flight += 1
        self._total_wait += waited
        return Permit(self, prompt_tokens, max_output, cost, now, waited)

    def try_acquire(self, prompt_tokens: int, max_output_tokens: int = 0) -> Permit | float:
        """A permit now, or the seconds to wait (inf: until a request finishes). Never queues;
        refuses while others are queued."""
        cost = max(0, int(prompt_tokens)) + max(0, int(max_output_tokens))
        with self._lock:
            now = self._clock()
            wait = self._check(cost, now) if not self._waiters else _INF
            if wait > 0:
                return wait
            return self._admit(int(prompt_tokens), int(max_output_tokens), cost, now, 0.0)

    def _step(self, waiter: _Waiter, prompt: int, max_out: int, t0: float) -> Permit | float:
        """Under the lock: admit the waiter if it is first in line and the budgets allow."""
        if not self._waiters or self._waiters[0] is not waiter:
            return _INF
        now = self._clock()
        wait = self._check(waiter.cost, now)
        if wait > 0:
            return wait
        self._waiters.popleft()
        permit = self._admit(prompt, max_out, waiter.cost, now, max(0.0, now - t0))
        if self._waiters:
            self._waiters[0].wake()
        return permit

    def _leave_queue(self, waiter: _Waiter) -> None:
        with self._lock:
            try:
                was_head = self._waiters[0] is waiter
                self._waiters.remove(waiter)
            except (IndexError, ValueError):
                return
            if was_head and self._waiters:
                self._waiters[0].wake()

    async def acquire(self, prompt_tokens: int, max_output_tokens: int = 0,
                      timeout: float | None = None) -> Permit:
        """Wait (asynchronously, first come first served) until both budgets and the
        concurrency limit allow a request of prompt + max_output tokens."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        cost = max(0, int(prompt_tokens)) + max(0, int(max_output_tokens))
        home = threading.get_ident()

        def wake() -> None:   # the self-pipe write of call_soon_threadsafe only for other threads
            if threading.get_ident() == home:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)
        waiter = _Waiter(cost, wake)
        t0 = self._clock()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiters.append(waiter)
        admitted = False
        try:
            while True:
                with self._lock:
                    got = self._step(waiter, int(prompt_tokens), int(max_output_tokens), t0)
                    if isinstance(got, Permit):
                        admitted = True
                        return got
                    event.clear()
                nap = _nap(got, deadline)
                try:
                    await asyncio.wait_for(event.wait(), timeout=nap)
                except TimeoutError:
                    pass
        finally:
            if not admitted:
                self._leave_queue(waiter)

    def acquire_sync(self, prompt_tokens: int, max_output_tokens: int = 0,
                     timeout: float | None = None) -> Permit:
        """`acquire` for threads."""
        event = threading.Event()
        cost = max(0, int(prompt_tokens)) + max(0, int(max_output_tokens))
        waiter = _Waiter(cost, event.set)
        t0 = self._clock()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiters.append(waiter)
        admitted = False
        try:
            while True:
                with self._lock:
                    got = self._step(waiter, int(prompt_tokens), int(max_output_tokens), t0)
                    if isinstance(got, Permit):
                        admitted = True
                        return got
                    event.clear()
                event.wait(_nap(got, deadline))
        finally:
            if not admitted:
                self._leave_queue(waiter)

    # -- outcome ------------------------------------------------------------
    def release(self, permit: Permit, *, status: int = 200, prompt_tokens: int | None = None,
                completion_tokens: int | None = None, headers: Any = None,
                message: str | None = None, retry_after_s: float | None = None,
                congested: bool | None = None, client_lag_s: float = 0.0) -> None:
        """Give a permit back with what happened.

        status 200 (or any 2xx): the reply's usage (prompt/completion tokens; what was
        reserved when not given) replaces the reservation. 429: nothing was used; the gate
        pauses every caller for the time the reply asks (`retry_after_s`, else its headers
        or message, else `default_pause_s`, doubling while 429s follow each other). Other
        statuses (and 0 for a transport failure): the prompt counts, the output is refunded;
        503/504/0 count as congestion for adaptive concurrency (`congested` overrides).
        `client_lag_s`: how late the caller's event loop ran lately (`client_lag()`); from
        CLIENT_LAG_S on, the reply's latency is not taken as the server's."""
        if permit.done:
            return
        permit.done = True
        with self._lock:
            now = self._clock()
            self._in_flight -= 1
            self._requests_total += 1
            if status == 429:
                self._on_429(permit, headers, message, retry_after_s, now)
            else:
                self._on_reply(permit, status, prompt_tokens, completion_tokens, now, congested, client_lag_s)
        if headers is not None:
            self.observe_headers(headers)
        self._wake_head()

    def _on_reply(self, permit: Permit, status: int, prompt_tokens: int | None,
                  completion_tokens: int | None, now: float, congested: bool | None, client_lag_s: float = 0.0) -> None:
        ok = 200 <= status < 300
        if ok:
            self._consecutive_429 = 0
        used_prompt = permit.prompt_tokens if prompt_tokens is None else int(prompt_tokens)
        if ok:
            used_out = permit.max_output_tokens if completion_tokens is None else int(completion_tokens)
        else:
            used_out = int(completion_tokens or 0)
        used = used_prompt + used_out
        if (b := self._buckets.get("tokens")) is not None:
            if used <= permit.reserved:
                b.give(permit.reserved - used, now)
            else:
                b.take(used - permit.reserved, now)
        self._record(now, used)
        if self._aimd is None:
            return
        if congested if congested is not None else status in (0, 503, 504, 529):
            self._aimd.on_congestion(permit.started, now)
        elif ok:
            self._aimd.on_good(now - permit.started, permit.started, now, max(1, used_out).bit_length(),
                               client_busy=client_lag_s >= CLIENT_LAG_S)

    def _on_429(self, permit: Permit, headers: Any, message: str | None,
                retry_after_s: float | None, now: float) -> None:
        self._rate_limited += 1
        self._consecutive_429 += 1
        if (b := self._buckets.get("tokens")) is not None:
            b.give(permit.reserved, now)           # a refused request is not charged
        if (b := self._buckets.get("requests")) is not None:
            b.give(1, now)
        delay = retry_after_s if retry_after_s is not None else retry_delay(headers, message)
        if delay is None:
            delay = self.default_pause_s * 2 ** (self._consecutive_429 - 1)
        delay = min(self.max_pause_s, delay)
        self._pause_until = max(self._pause_until, now + delay)
        reported = used_of_limit(message)
        if reported is not None and (b := self._buckets.get("tokens")) is not None:
            b.cap(reported[0] - reported[1], now)
        if self._aimd is not None:
            self._aimd.on_congestion(permit.started, now)

    def _record(self, now: float, tokens: int) -> None:
        self._tokens_total += tokens
        self._recent.append((now, tokens))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (on top of any pause already running)."""
        with self._lock:
            self._pause_until = max(self._pause_until, self._clock() + min(self.max_pause_s, seconds))

    def _wake_head(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters[0].wake()

    # -- snapshot -----------------------------------------------------------
    def stats(self) -> GateStats:
        with self._lock:
            now = self._clock()
            self._trim(now)
            limits = {k: (b.limit if (b := self._buckets.get(k)) else None) for k in ("requests", "tokens")}
            sources = [name for name, d in (("explicit", self._explicit), ("headers", self._learned))
                       if any(d.values())]
            conc = self._concurrency_limit()
            return GateStats(
                key=self.key, rpm_limit=limits["requests"], tpm_limit=limits["tokens"],
                limits_from="+".join(sources) or "none",
                concurrency_limit=None if conc == _INF else int(conc), in_flight=self._in_flight,
                waiting=len(self._waiters), requests_last_window=len(self._recent),
                tokens_last_window=sum(t for _, t in self._recent), window_s=self.window_s,
                total_wait_s=self._total_wait, rate_limited=self._rate_limited,
                paused_for_s=max(0.0, self._pause_until - now),
                requests_total=self._requests_total, tokens_total=self._tokens_total)


def _nap(wait: float, deadline: float | None) -> float:
    nap = min(MAX_NAP_S, max(0.001, wait))
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out waiting for the rate gate")
        nap = min(nap, left)
    return nap

