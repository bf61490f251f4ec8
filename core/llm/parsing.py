"""Reading a model reply: the JSON object in it, validated against a pydantic schema.

Tolerant of what models do around the object (prose, ``` fences, trailing commas), strict
about what counts: a reply is usable only when one JSON object validates. Failures are short
reasons ("empty reply", "truncated json", "schema: <field> ...") that go into the call log and
into the correction the client sends back to the model.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pydantic
from pydantic import BaseModel

_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.S)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


class ReplyError(ValueError):
    """A reply that is not the JSON object we asked for; str() is the short reason."""


def balanced_objects(text: str) -> Iterator[str | None]:
    """Yield each top-level {...} block (string-aware brace matching), in order; a final None
    when an object never closes (the reply was cut off)."""
    start = text.find("{")
    while start != -1:
        end = _closing_brace(text, start)
        if end is None:
            yield None
            return
        yield text[start:end + 1]
        start = text.find("{", end + 1)


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the brace that closes the object opened at `start`, or None."""
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except ValueError:
        return json.loads(_TRAILING_COMMA_RE.sub(r"\1", candidate))


def extract_json(text: str | None, truncated: bool = False) -> Any:
    """The JSON object in a model reply, tolerantly: the whole text, else a ``` fenced
    block, else the first {...} block that parses (trailing commas forgiven)."""
    s = (text or "").strip()
    if not s:
        raise ReplyError("empty reply")
    candidates = [s] + [b.strip() for b in _FENCE_RE.findall(s)]
    for cand in candidates:
        try:
            return _loads(cand)
        except ValueError:
            pass
    unclosed = False
    for block in balanced_objects(s):
        if block is None:
            unclosed = True
            break
        try:
            return _loads(block)
        except ValueError:
            continue
    if truncated or unclosed:
        raise ReplyError("truncated json")
    if "{" not in s:
        raise ReplyError("no json object in reply")
    raise ReplyError("invalid json")


def schema_error(exc: pydantic.ValidationError) -> str:
    """The first validation error as one short line: "schema: <field.path> <message> (+n more)"."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "(root)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"schema: {loc} {first.get('msg', 'invalid')}{more}"[:300]


def parse_reply(text: str | None, schema: type[BaseModel],
                truncated: bool = False) -> tuple[BaseModel | None, str | None]:
    """(validated model, None) or (None, short reason)."""
    try:
        obj = extract_json(text, truncated)
    except ReplyError as exc:
        return None, str(exc)
    if not isinstance(obj, dict):
        return None, f"schema: expected a JSON object, got {type(obj).__name__}"
    try:
        return schema.model_validate(obj), None
    except pydantic.ValidationError as exc:
        return None, schema_error(exc)
