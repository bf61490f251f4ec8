"""What every task shares: output schemas, the judge schema, default prompt templates, the TaskSpec.

A task's editable content (definition, requirements, rules, templates, built-in examples) is
plain JSON so it can be stored as a `prompt_versions` row and edited on the Generate page; the
output schema stays in code because the pipeline validates against it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


# --------------------------------------------------------------------------- output schemas

class InstructionExample(BaseModel):
    """WaveCoder shape, shared by the four CodeOcean tasks."""
    model_config = ConfigDict(extra="forbid")
    task_name: str
    instruction: str
    information: str
    solution: str


class OssInstructExample(BaseModel):
    """Magicoder OSS-Instruct shape."""
    model_config = ConfigDict(extra="forbid")
    problem: str
    solution: str


class RuleVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    reason: str
    answer: Literal["yes", "no"]

    @field_validator("answer", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.strip().lower().rstrip(".") if isinstance(v, str) else v


class Judgment(BaseModel):
    """The discriminator's reply: reason before answer for every rule (chain of thought), then overall."""
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleVerdict]
    analysis: str
    overall: Literal["yes", "no"]

    @field_validator("overall", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.strip().lower().rstrip(".") if isinstance(v, str) else v


# --------------------------------------------------------------------------- templates (Jinja2, sandboxed)

GENERATOR_SYSTEM = ("You write training data for code language models. "
                    "Reply with exactly one JSON object and nothing else.")

JUDGE_SYSTEM = ("You are a strict reviewer of training data for code language models. "
                "Reply with exactly one JSON object and nothing else.")

GENERATOR_TEMPLATE = """\
Task: {{ task }}{% if target_language %} (target language: {{ target_language }}){% endif %}

## Task definition
{{ definition }}

## Requirements
{% for r in requirements %}{{ loop.index }}. {{ r }}
{% endfor %}
## Good examples
{% for ex in good_examples %}Good example {{ loop.index }}:
{{ ex.block }}
{% else %}(none yet)
{% endfor %}
## Bad examples (do not generate data like this)
{% for ex in bad_examples %}Bad example {{ loop.index }}:
{{ ex.block }}
Analysis: {{ ex.analysis }}
{% else %}(none yet)
{% endfor %}
## Input code ({{ language }})
{{ code_block }}
{% if target_language %}
Target language: {{ target_language }}
{% endif %}
Write one new example from the input code above. Reply with one JSON object with exactly \
these keys: {{ keys | join(", ") }}.
"""

JUDGE_TEMPLATE = """\
Task: {{ task }}{% if target_language %} (target language: {{ target_language }}){% endif %}

## Task definition
{{ definition }}

## Input code ({{ language }})
{{ code_block }}

## Example to judge
{{ example_block }}

## Rules
{% for r in rules %}{{ loop.index }}. {{ r }}
{% endfor %}
Check the example against every rule, one at a time and in order. For each rule first write \
a short reason, then answer "yes" if the rule holds or "no" if it does not. Then write a one or \
two sentence analysis of what is wrong with the example (or why it is good), and an overall \
answer that is "yes" only if every rule was answered "yes".
Reply with one JSON object: {"rules": [{"rule": "<rule number>", "reason": "...", \
"answer": "yes" or "no"}, ...], "analysis": "...", "overall": "yes" or "no"}.
"""


# --------------------------------------------------------------------------- task spec

@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    schema: type[BaseModel]
    definition: str
    requirements: list[str]
    rules: list[str]
    good_examples: list[dict] = field(default_factory=list)
    bad_examples: list[dict] = field(default_factory=list)   # each {"fields": {...}, "analysis": str}
    needs_target_language: bool = False
    input_kind: str = "function"     # function | seed (OSS-Instruct runs on any snippet, seeds preferred)
    instruction_field: str | None = "instruction"

    @property
    def keys(self) -> list[str]:
        return list(self.schema.model_fields)

    def default_content(self) -> dict:
        """The editable, versioned part of the task (stored in prompt_versions.content)."""
        return {
            "task": self.name,
            "definition": self.definition,
            "requirements": list(self.requirements),
            "rules": list(self.rules),
            "generator_system": GENERATOR_SYSTEM,
            "generator_template": GENERATOR_TEMPLATE,
            "judge_system": JUDGE_SYSTEM,
            "judge_template": JUDGE_TEMPLATE,
            "examples": {"good": list(self.good_examples), "bad": list(self.bad_examples)},
            "output_keys": self.keys,
        }


_SENTENCE_END = re.compile(r"[.!?]+(?=\s+[A-Z0-9`\"'(]|\s*$)")


def count_sentences(text: str) -> int:
    """Sentences in prose, ignoring inline code and dots inside names/numbers (foo.py, 3.5, e.g.)."""
    prose = re.sub(r"`[^`]*`", "X", text.strip())
    if not prose:
        return 0
    parts = [p for p in _SENTENCE_END.split(prose) if p.strip()]
    return max(1, len(parts))
