"""One rate gate per endpoint in this process, and the live snapshot the Generate page reads.

`gate_for(gate_key(base_url, model))` is the gate every job and role calling that endpoint
shares (core.llm.pacing.RateGate); `pacing_snapshot()` lists them all as plain values.
"""
from __future__ import annotations

import threading
from typing import Any

from core.llm.pacing import GateStats, RateGate

__all__ = ["gate_key", "gate_for", "all_gates", "stats_dict", "pacing_snapshot", "reset_gates"]

_GATES: dict[str, RateGate] = {}
_GATES_LOCK = threading.Lock()


def gate_key(base_url: str, model: str | None = None, account: str | None = None) -> str:
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
