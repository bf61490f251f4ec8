"""Samples for an evaluation through Shoal's own LLM client: plain-text replies (code, no schema).

`SampleClient` is an `LLMClient` (same pacing gate, retries, adaptation to the endpoint and
`llm_calls` log) whose calls ask for free text. Its cache key is the usual payload hash plus the
sample index, so the n samples of one problem are n different cached calls, and a rerun of the
same evaluation is served from the log without a request (for the embedded model, whose port
changes with every start, the key names the model instead of the URL).
"""
from __future__ import annotations

import time

from core.config import Profile
from core.llm.call import CallResult
from core.llm.calllog import payload_hash, successful_replies
from core.llm.client import LLMClient


def endpoint_id(profile: Profile) -> str:
    """What identifies the endpoint in cache and run keys: its URL, except for the embedded model,
    whose server gets a new port every start (a resumed run must find its samples again)."""
    return f"local://{profile.model}" if profile.source == "local" else profile.base_url.rstrip("/")


class SampleClient(LLMClient):
    """An LLMClient for unstructured replies, cached per (payload, sample index)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fixed_mode = "text"   # no response_format, ever: a server error is never read as a refused format

    def sample_key(self, messages: list[dict], sample: int) -> str:
        extra: dict = {"eval_sample": int(sample)}
        if self.profile.reasoning_effort:
            extra["reasoning_effort"] = self.profile.reasoning_effort
        return payload_hash(endpoint_id(self.profile), self.model, messages, self.profile.temperature,
                            self.profile.max_tokens, None, extra)

    async def sample(self, messages: list[dict], sample: int, *, cache: bool = True) -> CallResult:
        """Sample number `sample` of the reply to `messages` (text in `raw_text`), or a failed result."""
        t0 = time.perf_counter()
        state = self._state()
        model_error = await self._ensure_model(state)
        if model_error:
            self.counters["failures"] += 1
            return CallResult(False, None, None, model_error, None, False,
                              latency_ms=(time.perf_counter() - t0) * 1000)
        await self._ensure_link()
        key = self.sample_key(messages, sample)
        if cache and await self._log_writer.may_hit(key):
            rows = await self._log_writer.run(successful_replies, key)
            if rows:
                self.counters["cache_hits"] += 1
                return CallResult(True, None, rows[0]["response_text"], None, int(rows[0]["id"]), True,
                                  latency_ms=(time.perf_counter() - t0) * 1000, response_format="text")
        # no schema: the request carries the messages as given and no response_format
        return await self._complete_uncached(state, key, messages, None, None,  # type: ignore[arg-type]
                                             self.profile.role, t0)
