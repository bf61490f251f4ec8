"""What a server says about its rate limits, and the bucket a limit is paced with.

* `parse_rate_limit_headers`: the `x-ratelimit-limit/remaining/reset-*` values of a reply;
* `retry_delay`: how long a 429 asks to wait (`retry-after-ms`, "Please try again in 1.2s",
  `retry-after` in seconds or as an HTTP date);
* `used_of_limit`: the "Limit N, Used M" a 429's message reports;
* `Bucket`: `limit` units per window, refilled continuously -- the way OpenAI's limiter works: a
  429 for a request 322 tokens short of a 30k TPM limit says "try again in 644ms" =
  322 / (30000 / 60 s).
"""
from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Bucket", "parse_duration", "parse_rate_limit_headers", "retry_delay", "used_of_limit"]

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


def used_of_limit(message: str | None) -> tuple[float, float] | None:
    """(limit, used) from a token 429's message ("Limit 30000, Used 29678, Requested 644"); None
    when it says neither or is about requests."""
    m = _USED_RE.search(message or "")
    if not m or "token" not in (message or "").lower():
        return None
    limit, used = (float(g.replace(",", "")) for g in m.groups()[:2])
    return limit, used


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
