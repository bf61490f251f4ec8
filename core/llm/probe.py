"""The connection test: can we reach the server, and which structured-output mode does it enforce?

The probe asks for prose while requesting a schema: only a server that constrains decoding
returns a valid object. Modes the server refuses are skipped; when every structured mode is
refused (or the profile fixes "text"), a plain request shows the server is reachable at all.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from core.llm.failures import classify
from core.llm.formats import schema_of
from core.llm.transport import Attempt

if TYPE_CHECKING:
    from core.llm.client import LLMClient

PROBE_MESSAGES = [{"role": "user", "content": "Say hello in a few words of plain prose. Do not use JSON."}]


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

    async def send(self, mode: str) -> Attempt:
        t = time.perf_counter()
        with_schema = mode != "text"
        out = await self.client._attempt(self.state, self.key, "test", PROBE_MESSAGES,
                                         Probe if with_schema else None,
                                         self.schema_json if with_schema else None, mode, {"probe": mode},
                                         instruct=False)
        self.report["latency_ms"] = round((time.perf_counter() - t) * 1000, 1)
        return out

    def structured_modes(self) -> list[str]:
        fixed = self.client._fixed_mode
        if fixed is None:
            return ["json_schema", "json_object"]
        return [fixed] if fixed != "text" else []

    async def run(self) -> dict[str, Any]:
        error = await self.client._ensure_model(self.state)
        self.report["model"] = self.client.model or None
        if error:
            self.report["error"] = error
            return self.report
        await self.client._ensure_link()
        self.key = self.client._payload_key(PROBE_MESSAGES, self.schema_json)
        structured = self.structured_modes()
        accepted = enforced = None
        for mode in structured:
            out = await self.send(mode)
            if out.kind == "http":
                if classify(out, mode).kind == "format_rejected":
                    continue           # this server does not know the mode: try the next
                self.report["error"] = out.error
                return self.report
            accepted = accepted or mode
            if out.kind == "ok":       # prose was asked for, a valid object came back
                enforced = mode
                break
        if accepted is None:           # no structured mode asked, or every one refused
            out = await self.send("text")
            if out.kind == "http":
                self.report["error"] = out.error
                return self.report
            accepted = "text"
        self.report["ok"] = True
        self.report["schema_enforced"] = (enforced is not None) if structured else None
        self.report["mode"] = enforced or accepted
        return self.report


async def probe_connection(client: LLMClient) -> dict:
    """{ok, model, latency_ms, schema_enforced: bool|None, mode, error, base_url, total_ms};
    remembers the mode found on the client unless its profile fixes one."""
    t0 = time.perf_counter()
    report: dict[str, Any] = {"ok": False, "model": None, "latency_ms": None, "schema_enforced": None,
                              "mode": None, "error": None, "base_url": client.profile.base_url}
    await _Prober(client, report).run()
    if not report["ok"]:
        return report
    client.remember_mode(report["mode"])
    report["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return report
