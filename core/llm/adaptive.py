"""Adaptive concurrency (AIMD) for servers that never send 429s, and how late the client runs.

The number of requests in flight grows by one per round of good replies and shrinks by 30% when
the latency of replies of one output size climbs past `tolerance` x its baseline, or on
429/503/timeouts. A reply read while the client's own event loop runs late (`client_lag`: its
thread starved of CPU or of the GIL, e.g. by a page refreshing in the app's process) says nothing
about the server, and never shrinks the window: before this rule, a job started in the app fell to
one request in flight and ran at a third of the CLI's speed.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections import deque

__all__ = ["AdaptiveWindow", "LatencyTrack", "client_lag", "CLIENT_LAG_S"]

DECREASE = 0.7           # AIMD multiplicative decrease
_INF = math.inf
# the client's event loop is "running late" when its timers fire this much late on average (a loop
# with CPU to spare wakes within a millisecond); its replies' latencies are then not the server's
CLIENT_LAG_S = 0.005
LAG_PROBE_S = 0.025      # the probe's timer
LAG_WINDOW_S = 2.0       # the lag is the mean over this much of the recent past


# ---------------------------------------------------------------- the AIMD window


class LatencyTrack:
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


class AdaptiveWindow:
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
        self.last_decrease = -_INF
        self.decreases = 0
        self._tracks: dict[int, LatencyTrack] = {}

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
            track = self._tracks[size] = LatencyTrack(self.memory, self.recent)
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

