"""The rate gate: buckets, learned limits, the common 429 pause, AIMD, waiting, and a TPM run
against the fake OpenAI platform with the real openai client."""
from __future__ import annotations

import asyncio
import threading
import time

import openai
import pytest

from core.llm import adaptive, gates, pacing, tokens
from core.llm.gates import gate_for, gate_key
from core.llm.pacing import RateGate
from core.llm.ratelimits import Bucket, parse_duration, retry_delay
from tests.support.openai_platform import OpenAIPlatform


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def test_bucket_refills_continuously_like_openai_says():
    # OpenAI: "Limit 30000, Used 29937, Requested 385. Please try again in 644ms."
    b = Bucket(limit=30000, window_s=60, level=30000 - 29937, stamp=0.0)
    assert b.wait_for(385, 0.0) == pytest.approx(0.644)
    # "Limit 10000, Used 8554, Requested 3082. Please try again in 9.816s."
    b = Bucket(limit=10000, window_s=60, level=10000 - 8554, stamp=0.0)
    assert b.wait_for(3082, 0.0) == pytest.approx(9.816)
    assert b.wait_for(3082, 9.816) == pytest.approx(0.0, abs=1e-9)
    b.refill(1e6)
    assert b.level == 10000                  # never above the limit


def test_tokens_are_reserved_then_refunded_with_real_usage():
    clock = Clock()
    gate = RateGate("k", tpm=6000, window_s=60, clock=clock)    # 100 tokens/s
    first = gate.try_acquire(1000, 2000)
    assert isinstance(first, pacing.Permit) and first.reserved == 3000
    second = gate.try_acquire(1000, 2000)
    assert isinstance(second, pacing.Permit)
    wait = gate.try_acquire(1000, 2000)
    assert wait == pytest.approx(30.0)       # 3000 short at 100/s
    first.finish(prompt_tokens=1000, completion_tokens=200)     # 1800 unused output back
    assert gate.try_acquire(1000, 2000) == pytest.approx(12.0)
    clock.advance(12.0)
    assert isinstance(gate.try_acquire(1000, 2000), pacing.Permit)
    s = gate.stats()
    assert (s.tpm_limit, s.in_flight, s.requests_total, s.tokens_total) == (6000, 2, 1, 1200)
    assert s.limits_from == "explicit"
    first.finish(prompt_tokens=1, completion_tokens=1)          # a second finish is ignored
    assert gate.stats().requests_total == 1


def test_requests_per_minute_and_concurrency_bound_too():
    clock = Clock()
    gate = RateGate("k", rpm=2, window_s=60, max_concurrency=5, clock=clock)
    a, b = gate.try_acquire(1), gate.try_acquire(1)
    assert isinstance(a, pacing.Permit) and isinstance(b, pacing.Permit)
    assert gate.try_acquire(1) == pytest.approx(30.0)           # 2 per minute: one every 30 s
    gate = RateGate("k", max_concurrency=1, clock=clock)
    p = gate.try_acquire(10)
    assert gate.try_acquire(10) == float("inf")                 # until a request finishes
    p.finish()
    assert isinstance(gate.try_acquire(10), pacing.Permit)


def test_limits_are_learned_from_headers_and_remaining_lowers_the_bucket():
    clock = Clock()
    gate = RateGate("k", clock=clock)
    assert isinstance(gate.try_acquire(10**9), pacing.Permit)   # no limits known: no pacing
    gate.observe_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "200000",
                          "x-ratelimit-remaining-requests": "499", "x-ratelimit-remaining-tokens": "20000",
                          "x-ratelimit-reset-requests": "120ms", "x-ratelimit-reset-tokens": "54s"})
    s = gate.stats()
    assert (s.rpm_limit, s.tpm_limit, s.limits_from) == (500, 200000, "headers")
    # 20000 remaining: a 30000-token request waits for 10000 more at 200000/60 per second
    assert gate.try_acquire(25000, 5000) == pytest.approx(3.0)
    # an explicit limit below the learned one wins, and the other way round
    gate.set_limits(tpm=100000)
    assert gate.stats().tpm_limit == 100000 and gate.stats().limits_from == "explicit+headers"
    gate.observe_headers({"x-ratelimit-limit-tokens": "50000"})
    assert gate.stats().tpm_limit == 50000


def test_a_429_pauses_every_caller_for_the_time_it_asks():
    clock = Clock()
    gate = RateGate("k", tpm=30000, window_s=60, clock=clock)
    p = gate.try_acquire(300, 85)
    message = ("Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
               "Used 29937, Requested 385. Please try again in 644ms. Visit https://platform.openai.com/"
               "account/rate-limits to learn more.")
    p.finish(status=429, message=message)
    s = gate.stats()
    assert s.rate_limited == 1 and s.paused_for_s == pytest.approx(0.644)
    # the bucket was synced to the server's "Used": after the pause the same request still
    # has to wait for the server's refill, not only for our own estimate
    clock.advance(0.3)
    assert gate.try_acquire(300, 85) == pytest.approx(0.344)    # the rest of the pause
    clock.advance(0.344)
    assert isinstance(gate.try_acquire(300, 85), pacing.Permit)
    assert gate.try_acquire(300, 85) == pytest.approx(0.77)     # 385 more at 500 tokens/s
    # retry-after-ms beats the message, retry-after (seconds) is the last resort
    gate2 = RateGate("k2", clock=clock)
    gate2.try_acquire(1).finish(status=429, headers={"retry-after-ms": "1500", "retry-after": "2"})
    assert gate2.stats().paused_for_s == pytest.approx(1.5)
    assert gate2.try_acquire(1) == pytest.approx(1.5)
    # no hint: default pause, doubling while 429s follow each other
    gate3 = RateGate("k3", default_pause_s=1.0, clock=clock)
    gate3.try_acquire(1).finish(status=429)
    assert gate3.stats().paused_for_s == pytest.approx(1.0)
    clock.advance(1.0)
    gate3.try_acquire(1).finish(status=429)
    assert gate3.stats().paused_for_s == pytest.approx(2.0)


def test_parsing_durations_and_retry_hints():
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("6m0s") == pytest.approx(360)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None
    assert retry_delay(message="... Please try again in 1.2s. Visit ...") == pytest.approx(1.2)
    assert retry_delay(message="Please try again in 1m3s.") == pytest.approx(63)
    assert retry_delay({"Retry-After": "7"}) == 7
    assert retry_delay({}, "no hint here") is None


def test_aimd_backs_off_when_latency_climbs_and_grows_while_it_is_flat():
    clock = Clock()
    gate = RateGate("k", adaptive=True, max_concurrency=32, initial_concurrency=8, clock=clock)

    def round_trip(latency: float, n: int) -> None:
        permits = []
        for _ in range(n):
            p = gate.try_acquire(100, 100)
            if isinstance(p, pacing.Permit):
                permits.append(p)
        clock.advance(latency)
        for p in permits:
            p.finish(prompt_tokens=100, completion_tokens=100)

    for _ in range(20):
        round_trip(1.0, 64)
    grown = gate.stats().concurrency_limit
    assert grown > 8
    for _ in range(3):
        round_trip(5.0, 64)                  # 5x the baseline latency per token
    shrunk = gate.stats().concurrency_limit
    assert shrunk < grown
    # one decrease per round: the requests of one slow round shrink the window once
    assert shrunk >= int(grown * 0.7 ** 3)
    p = gate.try_acquire(1, 1)
    p.finish(status=503)
    assert gate.stats().concurrency_limit <= shrunk


def test_replies_read_while_the_client_runs_late_never_shrink_the_window():
    """Issue 20: in the app, a page refreshing in the job's process starved its event loop; replies were
    read late, the window took that for a busy server and fell to one request in flight (the job ran at a
    third of the CLI's speed on the same server). A late client says nothing about the server."""
    def run(lag: float) -> int:
        clock = Clock()
        gate = RateGate("k", adaptive=True, max_concurrency=8, initial_concurrency=8, clock=clock)
        for latency in [0.2] * 16 + [0.8] * 48:           # 4x the best latency, from the client's side
            p = gate.try_acquire(100, 100)
            clock.advance(latency)
            p.finish(prompt_tokens=100, completion_tokens=100, client_lag_s=lag)
        return gate.stats().concurrency_limit
    assert run(lag=0.0) < 8                                # a server getting slower: back off (as before)
    assert run(lag=adaptive.CLIENT_LAG_S) == 8               # the client running late: keep what the job asked


def test_client_lag_measures_how_late_the_loop_runs():
    async def main() -> tuple[float, float]:
        adaptive.client_lag()                   # starts the probe in this loop
        await asyncio.sleep(0.3)
        idle = adaptive.client_lag()
        for _ in range(12):                   # a loop kept busy (as a starved thread would be)
            time.sleep(0.04)
            await asyncio.sleep(0)
        return idle, adaptive.client_lag()
    idle, busy = asyncio.run(main())
    assert busy >= adaptive.CLIENT_LAG_S and busy > idle
    assert adaptive.client_lag() == 0.0         # outside a loop


def test_aimd_compares_replies_of_one_size_and_stops_once_limits_are_stated():
    """A judge's short replies and a generator's long ones at the same fixed latency are no
    congestion; a server whose headers state its limits is paced by them instead."""
    clock = Clock()
    gate = RateGate("k", adaptive=True, max_concurrency=32, initial_concurrency=32,
                    adaptive_until_limits=True, clock=clock)
    for i in range(400):
        p = gate.try_acquire(100, 100)
        clock.advance(0.5 + 0.2 * (i % 3 == 0))          # jitter, well under 2x
        p.finish(prompt_tokens=100, completion_tokens=40 if i % 2 else 400)   # per token: 10x apart
    assert gate.stats().concurrency_limit == 32
    gate.observe_headers({"x-ratelimit-limit-tokens": "200000", "x-ratelimit-remaining-tokens": "199000"})
    p = gate.try_acquire(1, 1)
    p.finish(status=503)                                 # no longer adapted: the limits pace
    assert gate.stats().concurrency_limit == 32 and gate.stats().tpm_limit == 200000


def test_the_window_is_learned_from_reset_headers():
    clock = Clock()
    gate = RateGate("k", clock=clock)
    # a 200k-per-6s limit: 20k used refills in 0.6 s (reset = used x window / limit)
    for used in (20000, 50000, 30000):
        gate.observe_headers({"x-ratelimit-limit-tokens": "200000",
                              "x-ratelimit-remaining-tokens": str(200000 - used),
                              "x-ratelimit-reset-tokens": f"{used * 6 / 200000 * 1000:.0f}ms"})
    s = gate.stats()
    assert s.window_s == pytest.approx(6.0) and s.tpm_limit == 200000
    # the bucket refills at 200k per 6 s now: 33.3k tokens a second
    assert gate.try_acquire(200000 - 50000 + 33333) == pytest.approx(1.0, rel=0.01)
    # a reply with almost nothing used says nothing about the window (the reset is rounded)
    gate.observe_headers({"x-ratelimit-limit-tokens": "200000", "x-ratelimit-remaining-tokens": "199990",
                          "x-ratelimit-reset-tokens": "1ms"})
    assert gate.stats().window_s == pytest.approx(6.0)


def test_async_waiters_are_served_in_order_and_the_wait_is_counted():
    async def main():
        gate = RateGate("k", tpm=600, window_s=1.0)     # 600 tokens a second
        first = await gate.acquire(600)
        order = []

        async def call(i):
            permit = await gate.acquire(150)
            order.append(i)
            permit.finish()

        t0 = time.monotonic()
        await asyncio.gather(*(call(i) for i in range(4)))
        first.finish()
        return order, time.monotonic() - t0, gate.stats()

    order, elapsed, stats = asyncio.run(main())
    assert order == [0, 1, 2, 3]
    assert 0.8 < elapsed < 2.0                # 4 x 150 tokens refill in 1 s
    assert stats.total_wait_s > 1.5           # summed over the four waiters


def test_cancelled_waiter_leaves_the_queue():
    async def main():
        gate = RateGate("k", max_concurrency=1)
        held = await gate.acquire(1)
        task = asyncio.create_task(gate.acquire(1))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.stats().waiting == 0
        held.finish()
        nxt = await asyncio.wait_for(gate.acquire(1), 1.0)
        nxt.finish()
        with pytest.raises(TimeoutError):
            held2 = await gate.acquire(1)
            try:
                await gate.acquire(1, timeout=0.1)
            finally:
                held2.finish()

    asyncio.run(main())


def test_threads_share_one_gate_safely():
    gate = RateGate("k", max_concurrency=3)
    lock, peak, now_in = threading.Lock(), [0], [0]

    def work():
        for _ in range(20):
            permit = gate.acquire_sync(10, 10)
            with lock:
                now_in[0] += 1
                peak[0] = max(peak[0], now_in[0])
            time.sleep(0.001)
            with lock:
                now_in[0] -= 1
            permit.finish(prompt_tokens=10, completion_tokens=5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = gate.stats()
    assert peak[0] == 3 and s.requests_total == 160 and s.tokens_total == 160 * 15 and s.in_flight == 0


def test_one_gate_per_endpoint_key():
    gates.reset_gates()
    key = gate_key("https://API.openai.com/v1/", "gpt-5-mini")
    assert key == gate_key("https://api.openai.com/v1", "gpt-5-mini") != gate_key(
        "https://api.openai.com/v1", "o4-mini")
    assert gate_key("http://h/v1", "m", account="org-1") == "http://h/v1|org-1"
    a = gate_for(key, tpm=1000)
    b = gate_for(key, rpm=10)
    assert a is b and (b.stats().rpm_limit, b.stats().tpm_limit) == (10, 1000)
    gates.reset_gates()
    assert gate_for(key) is not a


# ---------------------------------------------------------------- against the platform


def _prompt(i: int) -> str:
    return f"Task {i}: " + "Write a Python function that parses a CSV line into fields. " * 250


async def _paced_run(server: OpenAIPlatform, gate: RateGate, seconds: float, concurrency: int,
                     max_out: int) -> dict:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    counts = {"ok": 0, "429": 0}
    end = time.monotonic() + seconds

    async def worker(w: int) -> None:
        i = 0
        while time.monotonic() < end:
            i += 1
            messages = [{"role": "user", "content": _prompt(w * 10_000 + i)}]
            permit = await gate.acquire(tokens.count_messages(messages, "gpt-4o-mini").tokens, max_out)
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=max_out)
            except openai.RateLimitError as exc:
                counts["429"] += 1
                permit.finish(status=429, headers=exc.response.headers, message=exc.message)
                continue
            usage = raw.parse().usage
            permit.finish(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                          headers=raw.headers)
            counts["ok"] += 1

    try:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    finally:
        await client.close()
    return counts


def test_gate_holds_a_200k_tpm_limit_with_the_real_client():
    """200k tokens per window (2 s here instead of a minute), 32 concurrent callers, limits
    learned from the headers: (almost) no 429s, and tokens per window near the limit."""
    tokens.available_encodings()            # load the tokenizers before the clock runs
    window, limit, seconds = 2.0, 200_000, 8.0
    with OpenAIPlatform(tpm=limit, rpm=100_000, window_s=window, latency_s=0.15,
                        responder=lambda body: "ok " * 120) as server:
        gate = RateGate("platform", window_s=window)
        t0 = time.monotonic()
        counts = asyncio.run(_paced_run(server, gate, seconds, concurrency=32, max_out=400))
        t1 = time.monotonic()
        log = list(server.usage_log)
    # steady state: after the bucket the server starts with (one window's worth) is spent
    steady = sum(n for t, n in log if t >= t0 + 2 * window)
    ratio = steady / (t1 - (t0 + 2 * window)) * window / limit
    stats = gate.stats()
    print(f"\nTPM run: {counts['ok']} calls, {counts['429']} x 429, {ratio:.3f} x limit in steady "
          f"state, last window {stats.tokens_last_window} tokens, waited {stats.total_wait_s:.1f} s "
          f"in all, limits from {stats.limits_from}")
    assert counts["429"] <= 3 and server.rate_limited == counts["429"]
    assert stats.tpm_limit == limit and stats.limits_from == "headers"
    assert ratio >= 0.9
    assert ratio <= 1.1                       # and never above what the server lets through
