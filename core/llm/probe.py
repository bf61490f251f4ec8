"""The connection test: can we reach the server, what does it accept, and what limits does it report?

The probe asks for prose while requesting a schema: only a server that constrains decoding
returns a valid object. Each structured-output mode is tried (json_schema, sent strict, then
json_object) and reported as enforced, accepted (answered, but not constrained) or refused;
when every structured mode is refused (or the profile fixes "text"), a plain request shows the
server is reachable at all. A refused parameter (max_tokens for a reasoning model, a
temperature it does not take, a schema too loose for strict mode) is learned once, through the
endpoint's capabilities record, and the probe goes on; so the report also says which token
parameter, sampling and reasoning parameters the endpoint takes, and the `x-ratelimit-*` limits
its replies carried. Any other error is reported with its hint (core.llm.failures).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from core.llm.failures import classify
from core.llm.formats import schema_of
from core.llm.ratelimits import parse_rate_limit_headers
from core.llm.transport import Attempt

if TYPE_CHECKING:
    from core.llm.client import LLMClient

PROBE_MESSAGES = [{"role": "user", "content": "Say hello in a few words of plain prose. Do not use JSON."}]
_MAX_ADAPTATIONS = 4      # token parameter, sampling, reasoning_effort, strict: each learned at most once


class Probe(BaseModel):
    greeting: str
    word_count: int


class _Prober:
    """Sends the probe in one mode after another and fills in the report."""

    def __init__(self, client: LLMClient, report: dict[str, Any]):
        self.client = client
        self.report = report
        self.state = client._state()
        self.schema_json = schema_of(Probe)
        self.key = ""   # the call-log key, set by run() once the model is known
        self.adaptations = 0

    async def _send_once(self, mode: str) -> Attempt:
        t = time.perf_counter()
        with_schema = mode != "text"
        out = await self.client._attempt(self.state, self.key, "test", PROBE_MESSAGES,
                                         Probe if with_schema else None,
                                         self.schema_json if with_schema else None, mode, {"probe": mode},
                                         instruct=False)
        self.report["latency_ms"] = round((time.perf_counter() - t) * 1000, 1)
        limits = parse_rate_limit_headers(out.headers)
        if limits:
            self.report["rate_limits"] = limits
        return out

    async def send(self, mode: str) -> Attempt:
        """One probe in `mode`; a refused parameter is learned and the probe sent again."""
        while True:
            out = await self._send_once(mode)
            link = self.client._link
            if out.kind != "http" and link is not None:
                link.accepted(out.caps_version)     # the record the request was built from works
            if out.kind != "http" or self.adaptations >= _MAX_ADAPTATIONS:
                return out
            if classify(out, mode).kind != "unsupported" or link is None or not link.adapt(out):
                return out
            self.adaptations += 1
            link.remember()

    def structured_modes(self) -> list[str]:
        fixed = self.client._fixed_mode
        if fixed is None:
            return ["json_schema", "json_object"]
        return [fixed] if fixed != "text" else []

    def fail(self, out: Attempt, mode: str) -> dict[str, Any]:
        failure = classify(out, mode, self.client.profile.role, self.client.model or "")
        self.report["error"] = out.error
        self.report["hint"] = failure.hint or None
        self.report["reason"] = failure.reason or None     # pages word their own hint from it
        return self.report

    async def run(self) -> dict[str, Any]:
        error = await self.client._ensure_model(self.state)
        self.report["model"] = self.client.model or None
        if error:
            self.report["error"] = error
            return self.report
        await self.client._ensure_link()
        self.key = self.client._payload_key(PROBE_MESSAGES, self.schema_json)
        structured = self.structured_modes()
        modes: dict[str, str] = {}
        for mode in structured:
            out = await self.send(mode)
            if out.kind == "http":
                if classify(out, mode).kind == "format_rejected":
                    modes[mode] = "refused"   # this server does not know the mode: try the next
                    continue
                return self.fail(out, mode)
            # prose was asked for: a valid object back means the server constrains decoding
            modes[mode] = "enforced" if out.kind == "ok" else "accepted"
        enforced = next((m for m in structured if modes.get(m) == "enforced"), None)
        accepted = next((m for m in structured if modes.get(m) in ("enforced", "accepted")), None)
        if accepted is None:           # no structured mode asked, or every one refused
            out = await self.send("text")
            if out.kind == "http":
                return self.fail(out, "text")
            accepted = "text"
        self.report["ok"] = True
        self.report["modes"] = modes
        self.report["schema_enforced"] = (enforced is not None) if structured else None
        # a json_schema request that is answered but not enforced carries no schema in the prompt:
        # later calls then start from a mode that describes it (json_object or text)
        self.report["mode"] = enforced or (accepted if accepted != "json_schema" else next(
            (m for m in structured if m != "json_schema" and modes.get(m) == "accepted"), "text"))
        return self.report


def _accepts(client: LLMClient) -> dict[str, Any]:
    """What the endpoint's capabilities record says after the probe."""
    caps = client.capabilities
    if caps is None:
        return {}
    return {"family": caps.family, "token_param": caps.token_param, "temperature": caps.sampling,
            "reasoning_effort": caps.reasoning_effort, "strict": caps.strict,
            "learned": [n for n in caps.learned if n.get("param")]}


async def probe_connection(client: LLMClient) -> dict:
    """{ok, model, latency_ms, schema_enforced: bool|None, mode, modes: {mode: enforced | accepted |
    refused}, accepts: {family, token_param, temperature, reasoning_effort, strict, learned},
    rate_limits: the last reply's x-ratelimit-* values, pacing: the endpoint's gate (limits and
    where they came from), error, hint, reason (core.llm.failures.Failure.reason), base_url,
    total_ms}; remembers the mode found on the
    client unless its profile fixes one."""
    t0 = time.perf_counter()
    report: dict[str, Any] = {"ok": False, "model": None, "latency_ms": None, "schema_enforced": None,
                              "mode": None, "modes": {}, "error": None, "hint": None, "reason": None,
                              "rate_limits": {},
                              "base_url": client.profile.base_url}
    await _Prober(client, report).run()
    report["accepts"] = _accepts(client)
    gate = client.pacing()
    if gate is not None:
        report["pacing"] = {k: gate.get(k) for k in ("rpm_limit", "tpm_limit", "limits_from", "window_s")}
    if not report["ok"]:
        return report
    client.remember_mode(report["mode"])
    report["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return report
