"""Rate gate: one per endpoint (base URL + model or account), shared by every job and role.

A call asks its endpoint's gate for a permit before it sends a request and gives the permit
back with the outcome:

    gate = gate_for(endpoint_key(base_url, model))
    permit = await gate.acquire(prompt_tokens, max_output_tokens)
    ...                                   # send the request
    permit.finish(status=200, prompt_tokens=..., completion_tokens=..., headers=headers)

The gate paces four things at once:

* requests per minute and tokens per minute, each as a bucket that refills `limit` units per
  window continuously -- the way OpenAI's limiter works: a 429 for a request 322 tokens
  short of a 30k TPM limit says "try again in 644ms" = 322 / (30000 / 60 s). A permit
  reserves prompt + requested output tokens up front (what the server charges); finishing
  it refunds what the reply did not use;
* limits set explicitly, or learned from `x-ratelimit-limit-*` headers, and the window they
  refill over from `x-ratelimit-reset-*` (reset = used x window / limit); the
  `x-ratelimit-remaining-tokens/-requests` of a reply lower the local buckets when the
  server knows of more use (another process on the same account);
* one common pause after a 429, honouring its `retry-after-ms` / `retry-after` header or
  its "Please try again in 1.2s" message, and syncing the token bucket to the "Used" the
  message reports;
* adaptive concurrency (AIMD) for servers that never send 429s: the number of requests in
  flight grows by one per round of good replies and shrinks by 30% when the latency of
  replies of one output size climbs past `latency_tolerance` x its baseline, or on
  429/503/timeouts. A reply read while the client's own event loop runs late (`client_lag`:
  its thread starved of CPU or of the GIL, e.g. by a page refreshing in the app's process)
  says nothing about the server, and never shrinks the window: before this rule, a job
  started in the app fell to one request in flight and ran at a third of the CLI's speed.

Waiters are served first come first served. The gate is thread-safe (one lock) and works
from any number of event loops and threads at once: `acquire` for async code,
`acquire_sync` for threads. `stats()` is a snapshot for the UI.
"""
from __future__ import annotations

import asyncio
import email.utils
import math
import re
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from core.config import DEFAULT_CONCURRENCY

__all__ = ["RateGate", "Permit", "GateStats", "Bucket", "gate_for", "endpoint_key", "reset_gates",
           "retry_delay", "parse_duration", "parse_rate_limit_headers", "pacing_snapshot", "all_gates",
           "client_lag"]

WINDOW_S = 60.0
MIN_WINDOW_S, MAX_WINDOW_S = 0.5, 3600.0   # what a window learned from reset headers may be
MAX_NAP_S = 0.5          # a waiter re-checks at least this often (limits may change meanwhile)
DECREASE = 0.7           # AIMD multiplicative decrease
INF = math.inf
# the client's event loop is "running late" when its timers fire this much late on average (a loop
# with CPU to spare wakes within a millisecond); its replies' latencies are then not the server's
CLIENT_LAG_S = 0.005
LAG_PROBE_S = 0.025      # the probe's timer
LAG_WINDOW_S = 2.0       # the lag is the mean over this much of the recent past


# ---------------------------------------------------------------- parsing what servers say

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in OpenAI's duration format ("12ms", "1.2s", "6m0s", "1h2m3.5s"); a bare number
    is seconds. None when it does not parse."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _get(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, dict):      # a plain dict is case-sensitive
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return None if value is None else str(value)


def _rate_limit_headers(headers: Any) -> dict[str, str]:
    """The `x-ratelimit-*` headers, lower-cased, in one pass (a case-insensitive lookup per
    name cost more than the rest of a reply's bookkeeping)."""
    if headers is None:
        return {}
    raw = getattr(headers, "raw", None)           # httpx.Headers: [(bytes, bytes)]
    if isinstance(raw, list):
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw
                if k[:11].lower() == b"x-ratelimit"}
    items = headers.items() if hasattr(headers, "items") else []
    return {str(k).lower(): str(v) for k, v in items if str(k)[:11].lower() == "x-ratelimit"}


_TRY_AGAIN_RE = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.I)
_USED_RE = re.compile(r"Limit\s+([\d,]+),\s*Used\s+([\d,]+),\s*Requested\s+([\d,]+)", re.I)


def retry_delay(headers: Any = None, message: str | None = None, now: float | None = None) -> float | None:
    """Seconds a 429 asks to wait: `retry-after-ms`, the message's "try again in 1.2s", or
    `retry-after` (seconds or an HTTP date), in that order of precision. None if none says."""
    ms = _get(headers, "retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if message:
        m = _TRY_AGAIN_RE.search(message)
        if m and (seconds := parse_duration(m.group(1))) is not None:
            return seconds
    value = _get(headers, "retry-after")
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
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_rate_limit_headers(headers: Any) -> dict[str, float]:
    """The `x-ratelimit-*` values a reply carries: limit/remaining as numbers, reset as seconds.
    Keys: limit_requests, limit_tokens, remaining_requests, remaining_tokens, reset_requests,
    reset_tokens (only those present)."""
    out: dict[str, float] = {}
    found = _rate_limit_headers(headers)
    if not found:
        return out
    for kind in ("requests", "tokens"):
        for what in ("limit", "remaining", "reset"):
            raw = found.get(f"x-ratelimit-{what}-{kind}")
            if raw is None:
                continue
            value = parse_duration(raw) if what == "reset" else _number(raw)
            if value is not None and value >= 0:
                out[f"{what}_{kind}"] = value
    return out


def _number(raw: str) -> float | None:
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        return None


# ---------------------------------------------------------------- the bucket


@dataclass
class Bucket:
    """`limit` units that refill continuously at `limit / window_s` per second. The level may
    go below zero (a reply that used more than was reserved); waiting is then longer."""
    limit: float
    window_s: float
    level: float
    stamp: float

    @classmethod
    def full(cls, limit: float, window_s: float, now: float) -> Bucket:
        return cls(float(limit), float(window_s), float(limit), now)

    @property
    def rate(self) -> float:
        return self.limit / self.window_s

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.limit, self.level + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (a request above the limit waits for a full bucket)."""
        self.refill(now)
        short = min(amount, self.limit) - self.level
        return 0.0 if short <= 0 else short / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def give(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.limit, self.level + amount)

    def cap(self, level: float, now: float) -> None:
        """Lower the level to what the server says is left (never raise it)."""
        self.refill(now)
        self.level = min(self.level, level)

    def set_limit(self, limit: float, now: float) -> None:
        self.refill(now)
        self.limit = float(limit)
        self.level = min(self.level, self.limit)


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


class _LatencyTrack:
    """Latencies of good replies of one output size: a sliding minimum over the last `memory`
    (the baseline) and the last few samples (their median is what is compared)."""

    def __init__(self, memory: int, recent: int):
        self.memory = memory
        self.seen = 0
        self.mins: deque[tuple[int, float]] = deque()     # increasing samples: a sliding min
        self.recent: deque[float] = deque(maxlen=recent)

    @property
    def baseline(self) -> float | None:
        return self.mins[0][1] if self.mins else None

    def add(self, sample: float) -> None:
        self.seen += 1
        while self.mins and self.mins[-1][1] >= sample:
            self.mins.pop()
        self.mins.append((self.seen, sample))
        while self.mins[0][0] <= self.seen - self.memory:
            self.mins.popleft()
        self.recent.append(sample)

    def median(self) -> float:
        ordered = sorted(self.recent)
        return ordered[len(ordered) // 2]


class _Adaptive:
    """AIMD window over the number of requests in flight.

    Latency is compared among replies of about the same output size (buckets of powers of
    two tokens), so that a mix of short and long replies (judge and generator on one server)
    is not taken for congestion. The baseline is the lowest latency among the last `memory`
    good replies of a bucket, so a server that became slower for good is relearned; the window
    shrinks when the median of the bucket's last few replies climbs past `tolerance` x that
    baseline (one slow reply is noise, several are load)."""

    MIN_SAMPLES = 3

    def __init__(self, ceiling: float, floor: float, window: float, tolerance: float,
                 memory: int = 256, recent: int = 8):
        self.ceiling, self.floor, self.tolerance = ceiling, floor, tolerance
        self.window = max(floor, min(ceiling, window))
        self.memory, self.recent = memory, recent
        self.last_decrease = -INF
        self.decreases = 0
        self._tracks: dict[int, _LatencyTrack] = {}

    @property
    def baseline(self) -> float | None:
        values = [t.baseline for t in self._tracks.values() if t.baseline is not None]
        return min(values) if values else None

    def raise_ceiling(self, ceiling: float) -> None:
        if ceiling > self.ceiling:
            if self.decreases == 0 and self.window >= self.ceiling:
                self.window = ceiling     # never congested: start where the new caller asks
            self.ceiling = ceiling

    def on_good(self, latency: float, started: float, now: float, size: int = 0, client_busy: bool = False) -> None:
        if client_busy:     # the reply waited on the client, not the server: no sample, no decrease
            self.window = min(self.ceiling, self.window + 1.0 / max(1.0, self.window))
            return
        track = self._tracks.get(size)
        if track is None:
            track = self._tracks[size] = _LatencyTrack(self.memory, self.recent)
        baseline = track.baseline
        track.add(latency)
        if baseline is not None and len(track.recent) >= self.MIN_SAMPLES \
                and track.median() > self.tolerance * baseline:
            self.on_congestion(started, now)
        else:
            self.window = min(self.ceiling, self.window + 1.0 / max(1.0, self.window))

    def on_congestion(self, started: float, now: float) -> None:
        # one decrease per round: replies to requests sent before the last decrease say
        # nothing new about the window we have now
        if started <= self.last_decrease:
            return
        self.window = max(self.floor, self.window * DECREASE)
        self.last_decrease = now
        self.decreases += 1


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
        self._aimd: _Adaptive | None = None
        if adaptive and max_concurrency:   # adaptive always has a ceiling (64 unless given, above)
            self._aimd = _Adaptive(ceiling=float(max_concurrency), floor=float(min_concurrency),
                                   window=float(initial_concurrency or min(DEFAULT_CONCURRENCY, max_concurrency)),
                                   tolerance=latency_tolerance)
        self._in_flight = 0
        self._pause_until = -INF
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
        return self._max_concurrency or INF

    def _check(self, cost: int, now: float) -> float:
        """Seconds until a request of `cost` tokens may go (0: now; inf: after a release)."""
        if now < self._pause_until:
            return self._pause_until - now
        if self._in_flight >= self._concurrency_limit():
            return INF
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
            wait = self._check(cost, now) if not self._waiters else INF
            if wait > 0:
                return wait
            return self._admit(int(prompt_tokens), int(max_output_tokens), cost, now, 0.0)

    def _step(self, waiter: _Waiter, prompt: int, max_out: int, t0: float) -> Permit | float:
        """Under the lock: admit the waiter if it is first in line and the budgets allow."""
        if not self._waiters or self._waiters[0] is not waiter:
            return INF
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
        m = _USED_RE.search(message or "")
        if m and "token" in (message or "").lower() and (b := self._buckets.get("tokens")) is not None:
            limit, used = (float(g.replace(",", "")) for g in m.groups()[:2])
            b.cap(limit - used, now)
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
                concurrency_limit=None if conc == INF else int(conc), in_flight=self._in_flight,
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


# ---------------------------------------------------------------- how late the client runs


class _LagProbe:
    """A timer in one event loop that notes how late it fires: the loop's recent scheduling lag."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.samples: deque[tuple[float, float]] = deque(maxlen=int(4 * LAG_WINDOW_S / LAG_PROBE_S))
        self.task = loop.create_task(self._run(), name="shoal-loop-lag")

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            now = time.monotonic()
            self.samples.append((now, max(0.0, now - t0 - LAG_PROBE_S)))

    def lag(self) -> float:
        since = time.monotonic() - LAG_WINDOW_S
        recent = [x for t, x in list(self.samples) if t >= since]
        return sum(recent) / len(recent) if recent else 0.0


_PROBES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LagProbe] = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()


def client_lag() -> float:
    """How late this thread's running event loop has fired its timers lately (mean seconds over the
    last LAG_WINDOW_S; 0 outside a loop). The first call in a loop starts measuring it."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0.0
    with _PROBES_LOCK:
        probe = _PROBES.get(loop)
        if probe is None or probe.task.done():
            probe = _PROBES[loop] = _LagProbe(loop)
    return probe.lag()


# ---------------------------------------------------------------- one gate per endpoint

_GATES: dict[str, RateGate] = {}
_GATES_LOCK = threading.Lock()


def endpoint_key(base_url: str, model: str | None = None, account: str | None = None) -> str:
    """The key gates are shared by: the base URL with the account when limits are per
    account (an organization or key), else with the model (OpenAI's limits are per model)."""
    url = (base_url or "").strip().rstrip("/").lower()
    return f"{url}|{account}" if account else f"{url}|{model or ''}"


def gate_for(key: str, *, rpm: float | None = None, tpm: float | None = None, **settings: Any) -> RateGate:
    """The process's gate for `key`, created with `settings` on first use; explicit `rpm` /
    `tpm` given later are applied to the existing gate."""
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = RateGate(key, rpm=rpm, tpm=tpm, **settings)
            return gate
    if rpm or tpm:
        gate.set_limits(rpm=rpm, tpm=tpm)
    return gate


def all_gates() -> list[RateGate]:
    with _GATES_LOCK:
        return list(_GATES.values())


def stats_dict(s: GateStats) -> dict[str, Any]:
    """A GateStats as plain values for display: per minute, and `tpm_used`, the share of the
    token limit the last window used (the limits are per `window_s`, a minute on OpenAI)."""
    per_minute = 60.0 / s.window_s
    return {"endpoint": s.key, "rpm_limit": s.rpm_limit, "tpm_limit": s.tpm_limit, "limits_from": s.limits_from,
            "window_s": s.window_s,
            "tpm_used": None if not s.tpm_limit else round(s.tokens_last_window / s.tpm_limit, 3),
            "concurrency_limit": s.concurrency_limit, "in_flight": s.in_flight, "waiting": s.waiting,
            "tokens_per_minute": round(s.tokens_last_window * per_minute, 1),
            "requests_per_minute": round(s.requests_last_window * per_minute, 1),
            "total_wait_s": round(s.total_wait_s, 3), "rate_limited": s.rate_limited,
            "paused_for_s": round(s.paused_for_s, 3), "requests_total": s.requests_total,
            "tokens_total": s.tokens_total}


def pacing_snapshot() -> list[dict[str, Any]]:
    """Every gate of this process as plain values: what the Generate page shows while jobs
    run (limits, tokens and requests per minute used, waiting, 429s)."""
    return [stats_dict(g.stats()) for g in all_gates()]


def reset_gates() -> None:
    """Forget every gate (tests; a process that changes endpoints keeps them)."""
    with _GATES_LOCK:
        _GATES.clear()
