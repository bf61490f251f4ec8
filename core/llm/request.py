"""The one place that decides what a chat-completions request body holds.

`chat_request` turns (profile, model, capabilities, mode, messages, schema) into the dict that
is POSTed -- the online client sends exactly this, and a Batch API line wraps exactly this as
its `body` (see `LLMClient.request_body`), so both paths always ask the same thing.
"""
from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel

from core.config import Profile
from core.llm.capabilities import Capabilities
from core.llm.formats import messages_for, response_format_param

__all__ = ["chat_request", "completion_limit", "REASONING_HEADROOM"]

# Reasoning models spend hidden reasoning tokens out of max_completion_tokens before any
# visible output; the profile's max_tokens is the visible budget, this the room on top.
REASONING_HEADROOM = {"minimal": 512, "low": 2048, "medium": 4096, "high": 16384}


def completion_limit(profile: Profile, caps: Capabilities) -> int:
    """Output tokens asked for (and reserved at the rate gate)."""
    if caps.reasoning_effort and caps.token_param == "max_completion_tokens":
        return profile.max_tokens + REASONING_HEADROOM.get(profile.reasoning_effort or "medium", 4096)
    return profile.max_tokens


def chat_request(profile: Profile, model: str, caps: Capabilities, mode: str, messages: list[dict],
                 schema: type[BaseModel] | None, schema_json: dict | None = None,
                 correction: Sequence[dict] = (), instruct: bool = True) -> dict[str, Any]:
    """The request body for one attempt in structured-output `mode` ("text": no response_format,
    the schema described in the last user message -- also in json_object mode; no schema, or
    `instruct` false: the messages as given)."""
    sent = (messages_for(mode, messages, schema) if schema is not None and instruct else list(messages)) \
        + list(correction)
    body: dict[str, Any] = {"model": model, "messages": sent}
    if caps.sampling:
        body["temperature"] = min(profile.temperature, caps.max_temperature)
    body[caps.token_param] = completion_limit(profile, caps)
    if caps.reasoning_effort and profile.reasoning_effort:
        body["reasoning_effort"] = profile.reasoning_effort
    if schema is not None and mode != "text":
        rf = response_format_param(mode, schema, schema_json if schema_json is not None else schema.model_json_schema(),
                                   strict=caps.strict)
        if rf is not None:
            body["response_format"] = rf
    return body
