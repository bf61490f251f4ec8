"""Prompt assembly shared by every task: the sandboxed Jinja2 rendering and the code fences.

Snippets and examples are data, never template code: they are fenced with a backtick run longer
than any inside them and passed to the template as values.
"""
from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from core.tasks.schemas import rule_keys

if TYPE_CHECKING:
    from core.tasks.base import TaskSpec

_JINJA = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


@functools.lru_cache(maxsize=128)
def template(source: str):
    """Compiled templates by source text (compiling costs far more than rendering)."""
    return _JINJA.from_string(source)


def fence(text: str, info: str = "") -> str:
    """Fence `text` with a backtick run longer than any inside it, so it cannot close the block."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"{ticks}{info}\n{body}{ticks}"


def example_block(fields: dict) -> str:
    """One example's fields as an indented, fenced JSON block."""
    # The same pool examples recur in every prompt; the indented dump is pure-Python and slow.
    return _example_block_of(json.dumps(fields, ensure_ascii=False))


@functools.lru_cache(maxsize=4096)
def _example_block_of(compact_json: str) -> str:
    return fence(json.dumps(json.loads(compact_json), indent=2, ensure_ascii=False), "json")


def generator_messages(spec: TaskSpec, content: dict, snippet: dict, target_language: str | None,
                       good: list[dict], bad: list[dict]) -> list[dict]:
    """Chat messages for the generator. `good`: field dicts; `bad`: {"fields", "analysis"} dicts."""
    language = snippet.get("language") or "code"
    user = template(content["generator_template"]).render(
        task=spec.name, target_language=target_language, definition=content["definition"],
        requirements=content["requirements"], keys=spec.keys, language=language,
        good_examples=[{"block": example_block(g)} for g in good],
        bad_examples=[{"block": example_block(b["fields"]), "analysis": b.get("analysis") or ""} for b in bad],
        code_block=fence(snippet["code"], language),
    )
    return [{"role": "system", "content": content.get("generator_system") or ""},
            {"role": "user", "content": user}]


def judge_messages(spec: TaskSpec, content: dict, snippet: dict, target_language: str | None,
                   fields: dict, execution: str | None = None) -> list[dict]:
    """Chat messages for the judge: the snippet, the example, its execution result (one line, when it
    was run) and the numbered rules. The template also gets `rule_keys`, the property name each rule's
    answer goes under (core.tasks.schemas). A judge template that predates the execution line gets it appended."""
    language = snippet.get("language") or "code"
    source = content["judge_template"]
    user = template(source).render(
        task=spec.name, target_language=target_language, definition=content["definition"],
        rules=content["rules"], rule_keys=rule_keys(content["rules"]), language=language,
        code_block=fence(snippet["code"], language), example_block=example_block(fields), execution=execution,
    )
    if execution and "execution" not in source:
        user = user.rstrip("\n") + f"\n\nExecution: {execution}\n"
    return [{"role": "system", "content": content.get("judge_system") or ""},
            {"role": "user", "content": user}]


def repair_messages(spec: TaskSpec, messages: list[dict], reply: str, failure: str) -> list[dict]:
    """The generator's conversation continued for one repair round: its reply, then the failure."""
    from core.tasks.templates import REPAIR_TEMPLATE
    user = template(REPAIR_TEMPLATE).render(failure=failure, keys=spec.keys)
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": user}]
