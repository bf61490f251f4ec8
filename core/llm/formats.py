"""How a schema is asked for in each structured-output mode.

`json_schema` sends the schema as OpenAI's response_format, with `"strict": true` where the
server takes it (the schema sent is then `strict_schema_of`: every object closed and every
property required, what OpenAI's strict mode demands); `json_object` sends
`{"type": "json_object", "schema": ...}` (what llama.cpp-style servers constrain with);
`text` sends no response_format and appends the schema to the last user message instead.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import BaseModel

MODES = ("json_schema", "json_object", "text")   # best first: the client falls back in this order


@functools.lru_cache(maxsize=256)
def schema_of(schema: type[BaseModel]) -> dict:
    """The model's JSON schema, built once per class (pydantic takes about a millisecond).
    Shared: callers must not modify it."""
    return schema.model_json_schema()


def strict_schema(schema: Any) -> Any:
    """A copy of a JSON schema fit for OpenAI's strict mode: on every object
    `additionalProperties: false` and every property in `required` (a field with a default is
    then always sent, which the pydantic model still accepts); `default` values dropped (strict
    mode does not take them)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {k: strict_schema(v) for k, v in schema.items() if k != "default"}
    for key in ("properties", "$defs", "definitions"):      # mappings of name -> schema
        if isinstance(schema.get(key), dict):
            out[key] = {k: strict_schema(v) for k, v in schema[key].items()}
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object:
        out["additionalProperties"] = False
        out["required"] = list((schema.get("properties") or {}).keys())
    return out


@functools.lru_cache(maxsize=256)
def strict_schema_of(schema: type[BaseModel]) -> dict:
    """`strict_schema` of the model's schema, built once per class. Shared: do not modify."""
    return strict_schema(schema_of(schema))


def schema_instruction(schema_json: dict) -> str:
    """Appended to the last user message when the server cannot constrain the output."""
    return ("Reply with only one JSON object, no other text, that matches this JSON schema:\n"
            "```json\n" + json.dumps(schema_json, ensure_ascii=False) + "\n```")


@functools.lru_cache(maxsize=256)
def instruction_of(schema: type[BaseModel]) -> str:
    return schema_instruction(schema_of(schema))


def with_instruction(messages: list[dict], instruction: str) -> list[dict]:
    """A copy of `messages` with `instruction` appended to the last plain-text user message."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            m["content"] = m["content"].rstrip() + "\n\n" + instruction
            return out
    return out + [{"role": "user", "content": instruction}]


def messages_for(mode: str, messages: list[dict], schema: type[BaseModel]) -> list[dict]:
    """What is sent in `mode`: the messages as given when the server enforces the schema
    itself, else with the schema spelled out in the prompt."""
    return messages if mode == "json_schema" else with_instruction(messages, instruction_of(schema))


def response_format_param(mode: str, schema: type[BaseModel], schema_json: dict,
                          strict: bool = True) -> dict | None:
    if mode == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "reply"
        if strict:
            return {"type": "json_schema", "json_schema": {"name": name, "schema": strict_schema_of(schema),
                                                           "strict": True}}
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema_json, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema_json}
    return None
