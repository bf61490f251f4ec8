"""A client's link to its endpoint: the shared capabilities record and the shared rate gate.

Both are one per endpoint (base URL + model) in the process, so the generator and judge
clients of every job that use the same endpoint learn from each other's refusals and are paced
together. The link also keeps both in DuckDB, on the client's log-writer thread (the event
loop never waits): the capabilities whenever they change or are first confirmed, the gate's
snapshot every few seconds and at close (`endpoint_pacing`, what `shoal jobs --show` prints).
"""
from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from core.config import Profile, is_openai_url
from core.llm import gates, pacing, tokens
from core.llm.adaptive import client_lag
from core.llm.calllog import CallLog
from core.llm.capabilities import Capabilities, Endpoint, endpoint_for, load_capabilities, save_capabilities
from core.llm.formats import MODES
from core.llm.transport import Attempt
from core.store import Store

__all__ = ["EndpointLink", "load_pacing", "save_pacing", "hosted_api"]

PACING_SAVE_EVERY_S = 5.0
# a self-hosted server is taken for congested when replies of one size take 3x their best
# latency: a client short of CPU (2 shared cores) reads replies late by up to ~2x on its own
LATENCY_TOLERANCE = 3.0
HOSTED_HOSTS = ("api.openai.com", "api.anthropic.com")


def hosted_api(base_url: str) -> bool:
    """A provider's hosted API: it paces with 429s and headers, not with its latency."""
    from urllib.parse import urlparse
    return is_openai_url(base_url) or (urlparse(base_url).hostname or "").lower() in HOSTED_HOSTS


def save_pacing(store: Store, base_url: str, model: str, s: dict) -> None:
    cols = ("rpm_limit", "tpm_limit", "limits_from", "window_s", "tpm_used", "concurrency_limit",
            "tokens_per_minute", "requests_per_minute", "total_wait_s", "rate_limited", "requests_total",
            "tokens_total")
    store.write(lambda cur: cur.execute(
        f"INSERT INTO endpoint_pacing (base_url, model, {', '.join(cols)}) VALUES ({', '.join(['?'] * (len(cols) + 2))}) "
        f"ON CONFLICT (base_url, model) DO UPDATE SET "
        f"{', '.join(f'{c} = excluded.{c}' for c in cols)}, updated_at = now()",
        [base_url.rstrip("/"), model] + [s[c] for c in cols]))


def load_pacing(store: Store, base_url: str, model: str) -> dict | None:
    return store.one("SELECT * FROM endpoint_pacing WHERE base_url = ? AND model = ?",
                     [base_url.rstrip("/"), model or ""])


class EndpointLink:
    """See the module docstring. Made once the model name is known."""

    def __init__(self, store: Store, profile: Profile, model: str, log: CallLog, max_concurrency: int,
                 gate: pacing.RateGate | None = None):
        self.profile, self.model, self.log, self.store = profile, model, log, store
        self.endpoint: Endpoint = endpoint_for(str(store.path), profile.base_url, model, profile.source)
        adaptive = not hosted_api(profile.base_url)
        self.gate = gate or gates.gate_for(
            gates.gate_key(profile.base_url, model), rpm=profile.rpm, tpm=profile.tpm,
            adaptive=adaptive, max_concurrency=max_concurrency if adaptive else None,
            initial_concurrency=max_concurrency if adaptive else None, adaptive_until_limits=True,
            latency_tolerance=LATENCY_TOLERANCE)
        self.gate.ensure_concurrency(max_concurrency)
        self._pacing_saved = 0.0
        self._load_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = \
            weakref.WeakKeyDictionary()

    async def load(self) -> None:
        """Start from what DuckDB remembers of this endpoint (once per process and store).
        Concurrent first calls wait for the one load (else every call of the first wave would
        query, and go out with the defaults instead of what is remembered)."""
        ep = self.endpoint
        if ep.loaded:
            return
        loop = asyncio.get_running_loop()
        lock = self._load_locks.get(loop)
        if lock is None:
            lock = self._load_locks[loop] = asyncio.Lock()
        async with lock:
            if not ep.loaded:
                await self._load()

    async def _load(self) -> None:
        ep = self.endpoint
        stored = await self.log.run(load_capabilities, self.profile.base_url, self.model)
        known = await self.log.run(load_pacing, self.profile.base_url, self.model)
        if not ep.loaded:
            ep.loaded = True
            if stored is not None and ep.replace(stored, seen_version=0):
                ep.saved_version = ep.version
            if known and "headers" in str(known.get("limits_from") or ""):
                self.gate.learn_limits(rpm=known.get("rpm_limit"), tpm=known.get("tpm_limit"))

    def load_sync(self) -> None:
        ep = self.endpoint
        if not ep.loaded:
            ep.loaded = True
            stored = load_capabilities(self.store, self.profile.base_url, self.model)
            if stored is not None and ep.replace(stored, seen_version=0):
                ep.saved_version = ep.version

    # -- capabilities ---------------------------------------------------------
    def caps(self) -> tuple[Capabilities, int]:
        return self.endpoint.snapshot()

    def adapt(self, out: Attempt) -> bool:
        """Learn from a refusal naming a parameter; True when the request should go again
        (learned now, or already learned by another call since this one was built)."""
        caps, version = self.caps()
        if version != out.caps_version:
            return True
        param = out.error_param or ("response_format" if out.error_code == "invalid_json_schema" else None)
        new = caps.adapt(param, out.error_code, out.error_message or out.error or "")
        if new is None:
            return False          # refused again after adapting: not something to retry blindly
        return self.endpoint.replace(new, version) or self.caps()[1] != version

    def drop_mode(self, mode: str) -> None:
        """The server refused `mode`: later calls start with the next one."""
        while True:
            caps, version = self.caps()
            if mode not in caps.modes or self.endpoint.replace(caps.without_mode(mode), version):
                return

    def start_from(self, mode: str) -> None:
        """A connection test found `mode` to be the best this server enforces."""
        while True:
            caps, version = self.caps()
            modes = tuple(m for m in MODES if MODES.index(m) >= MODES.index(mode))
            if caps.modes == modes or self.endpoint.replace(
                    Capabilities(**{**caps.__dict__, "modes": modes, "source": "learned"}), version):
                break
        self.remember()

    def accepted(self, version: int) -> None:
        self.endpoint.confirm(version)
        self.remember()

    def remember(self) -> None:
        """Write the record to DuckDB when it changed since the last write (off the loop)."""
        ep = self.endpoint
        caps, version = ep.snapshot()
        if version > ep.saved_version:
            ep.saved_version = version
            self.log.submit(save_capabilities, self.profile.base_url, self.model, caps)

    # -- pacing ---------------------------------------------------------------
    async def acquire(self, request: dict) -> pacing.Permit:
        gate = self.gate
        client_lag()          # measures this loop's lag from the first call on (see release)
        prompt = tokens.count_messages(request["messages"], self.model).tokens if gate.counts_tokens else 0
        out = int(request.get("max_completion_tokens") or request.get("max_tokens") or 0)
        permit = gate.try_acquire(prompt, out)
        if isinstance(permit, pacing.Permit):
            return permit
        return await gate.acquire(prompt, out)

    def release(self, permit: pacing.Permit, out: Attempt, rate_limited: bool) -> None:
        """Give the permit back with the outcome: real usage, or the 429 that pauses everyone
        (a quota or too-large 429 is no reason to pause), or the failure."""
        if rate_limited:
            permit.finish(status=429, headers=out.headers, message=out.error_message or out.error)
        elif out.kind != "http":
            used = out.prompt_tokens or out.completion_tokens
            permit.finish(status=200, headers=out.headers, prompt_tokens=out.prompt_tokens if used else None,
                          completion_tokens=out.completion_tokens if used else None,
                          client_lag_s=client_lag())    # a late client is no sign of a busy server
        else:
            status = 502 if out.retryable else (out.status or 0)
            permit.finish(status=400 if status == 429 else status, headers=out.headers)
        self.save_pacing()

    def save_pacing(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._pacing_saved < PACING_SAVE_EVERY_S:
            return
        self._pacing_saved = now
        self.log.submit(save_pacing, self.profile.base_url, self.model, gates.stats_dict(self.gate.stats()))

    def stats(self) -> dict[str, Any]:
        return gates.stats_dict(self.gate.stats())


def pacing_report(store: Store, profiles: dict[str, Any]) -> list[dict[str, Any]]:
    """Per role of a job: its endpoint's pacing -- this process's live gate when there is one,
    else the last snapshot another process wrote -- and what the endpoint is known to accept."""
    from core.llm.capabilities import load_capabilities
    live = {g.key: g for g in gates.all_gates()}
    out = []
    for role, prof in profiles.items():
        prof = prof if isinstance(prof, dict) else prof.model_dump()
        base_url, model = prof.get("base_url") or "", prof.get("model") or ""
        gate = live.get(gates.gate_key(base_url, model))
        if gate is not None:
            snap, source = gates.stats_dict(gate.stats()), "live"
        else:
            row = load_pacing(store, base_url, model)
            snap, source = (dict(row), f"saved {str(row['updated_at'])[:19]}") if row else ({}, "none")
        caps = load_capabilities(store, base_url, model)
        out.append({"role": role, "base_url": base_url, "model": model, "source": source, **{
            k: snap.get(k) for k in ("rpm_limit", "tpm_limit", "limits_from", "window_s", "tpm_used",
                                     "concurrency_limit", "tokens_per_minute", "requests_per_minute",
                                     "total_wait_s", "rate_limited", "requests_total")},
            "capabilities": None if caps is None else {
                "family": caps.family, "token_param": caps.token_param, "sampling": caps.sampling,
                "reasoning_effort": caps.reasoning_effort, "mode": caps.current, "strict": caps.strict}})
    return out
