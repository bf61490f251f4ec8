"""TaskSpec: everything one task means, in one object.

A spec bundles (the way distilabel's Task does) the task's editable content and defaults, how its
prompts are formatted, its output schema, the pre-filter checks its replies must pass, which
fields are code and in which language, how an example becomes an instruction/input/output row
for export, and how the Review page shows each field. The per-task modules build one spec each
and override what differs.

A task's editable content (definition, requirements, rules, templates, built-in examples) is
plain JSON so it can be stored as a `prompt_versions` row and edited on the Generate page; the
output schema stays in code because the pipeline validates against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from jinja2.exceptions import TemplateError
from pydantic import BaseModel

from core.errors import ShoalError
from core.tasks import prompts
from core.tasks.no_input import NO_INPUT, is_no_input
from core.tasks.prefilter import INSTRUCTION_CHECKS, Check, PrefilterResult, count_sentences, run_checks
from core.tasks.schemas import (
    InstructionExample,
    Judgment,
    KeyedJudgment,
    OssInstructExample,
    RuleVerdict,
    TestedInstructionExample,
    judgment_schema,
)
from core.tasks.templates import GENERATOR_SYSTEM, GENERATOR_TEMPLATE, JUDGE_SYSTEM, JUDGE_TEMPLATE

# fields that are always prose, whatever the task
PROSE_FIELDS = frozenset({"instruction", "task_name"})
TESTS_FIELD = "tests"   # the generator's own tests, in the solution's language (run by core.dataset.checks.execution)

_PROBE_SNIPPET = {"language": "python", "code": "def f():\n    return 1\n", "id": "probe"}


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
    checks: tuple[Check, ...] = INSTRUCTION_CHECKS   # the pre-filter, in reporting order
    instruction_key: str = "instruction"             # the field exported as the instruction
    input_key: str | None = "information"            # the field exported as the input (None: no input)
    solution_is_code: bool = True                    # False when the solution is prose (summaries)

    # ----------------------------------------------------------------- content

    @property
    def keys(self) -> list[str]:
        return list(self.schema.model_fields)

    @property
    def required_keys(self) -> list[str]:
        """The keys a reply must have (the pre-filter drops it otherwise); `tests` is asked for, not required."""
        return [k for k, f in self.schema.model_fields.items() if f.is_required()]

    @property
    def tests_key(self) -> str | None:
        """The field holding the generator's tests, or None for a task without tests."""
        return TESTS_FIELD if TESTS_FIELD in self.schema.model_fields else None

    def tests_of(self, fields: dict) -> str:
        """The example's tests as code ('' when it has none)."""
        value = (fields or {}).get(self.tests_key) if self.tests_key else None
        return value if isinstance(value, str) else ""

    @property
    def prefers_seeds(self) -> bool:
        """Whether the task is meant for OSS-Instruct seeds rather than whole functions."""
        return self.input_kind == "seed"

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

    def validate_content(self, content: dict) -> None:
        """Refuse content that cannot render (missing parts, broken template) before it is saved."""
        for key in ("definition", "requirements", "rules", "generator_template", "judge_template"):
            if not content.get(key):
                raise ShoalError(f"The {self.name} prompt needs a non-empty '{key}'.")
        for key in ("requirements", "rules"):
            if not isinstance(content[key], list) or not all(isinstance(x, str) and x.strip() for x in content[key]):
                raise ShoalError(f"'{key}' must be a list of non-empty lines.")
        target = "go" if self.needs_target_language else None
        try:
            self.generator_messages(content, _PROBE_SNIPPET, target, [], [])
            self.judge_messages(content, _PROBE_SNIPPET, target, {k: "x" for k in self.keys})
        except TemplateError as exc:
            raise ShoalError(f"The {self.name} template does not render: {exc}") from None

    # ----------------------------------------------------------------- prompts

    def generator_messages(self, content: dict, snippet: dict, target_language: str | None,
                           good: list[dict], bad: list[dict]) -> list[dict]:
        """Chat messages for the generator. `good`: field dicts; `bad`: {"fields", "analysis"} dicts."""
        return prompts.generator_messages(self, content, snippet, target_language, good, bad)

    def judge_messages(self, content: dict, snippet: dict, target_language: str | None,
                       fields: dict, execution: str | None = None) -> list[dict]:
        """`execution`: one line saying how the solution fared against its tests (None: not run)."""
        return prompts.judge_messages(self, content, snippet, target_language, fields, execution)

    def repair_messages(self, messages: list[dict], reply: str, failure: str) -> list[dict]:
        """The generator's messages continued for the one repair round after a failed execution."""
        return prompts.repair_messages(self, messages, reply, failure)

    @staticmethod
    def judge_schema(content: dict) -> type[KeyedJudgment]:
        """The judge's reply schema for this content's rules: one property per rule, in order."""
        return judgment_schema(content["rules"])

    # ----------------------------------------------------------------- pre-filter

    def normalize(self, fields: dict) -> dict:
        """Fields as strings, with every "nothing here" input spelled NO_INPUT."""
        out = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        if self.input_key and self.input_key in out and is_no_input(out[self.input_key]):
            out[self.input_key] = NO_INPUT
        return out

    def prefilter(self, fields: dict, source_code: str | None = None) -> PrefilterResult:
        """Every check that drops the reply, and its normalized fields. The checks see the fields as
        written (a blank input is an empty field, not "no input"); `source_code` (the snippet) lets
        the checks that compare information with the snippet run."""
        as_written = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        result = run_checks(self, self.checks, as_written, source_code)
        result.fields = self.normalize(as_written)
        return result

    # ----------------------------------------------------------------- code fields

    def solution_language(self, source_language: str | None, target_language: str | None) -> str | None:
        """The language the solution is written in, or None when it is prose."""
        return source_language if self.solution_is_code else None

    def code_fields(self, source_language: str | None, target_language: str | None) -> dict[str, str | None]:
        """The fields that hold code, each with its language (None when unknown)."""
        out: dict[str, str | None] = {}
        if self.input_key:
            out[self.input_key] = source_language
        if self.solution_is_code:
            out["solution"] = self.solution_language(source_language, target_language)
        return out

    # ----------------------------------------------------------------- export

    def instruction_of(self, fields: dict) -> str:
        return str(fields.get(self.instruction_key) or "") if fields else ""

    def input_of(self, fields: dict) -> str:
        """The example's input, or '' when it says there is no input."""
        if not self.input_key or not fields:
            return ""
        value = str(fields.get(self.input_key) or "")
        return "" if is_no_input(value) else value

    @staticmethod
    def output_of(fields: dict) -> str:
        return str(fields.get("solution") or "") if fields else ""

    def export_row(self, fields: dict) -> dict[str, str]:
        """The example as the neutral instruction / input / output row export and the checks use
        (plus `tests` when the task has them and the example carries the field)."""
        row = {"instruction": self.instruction_of(fields), "input": self.input_of(fields),
               "output": self.output_of(fields)}
        if self.tests_key and fields and self.tests_key in fields:
            row["tests"] = self.tests_of(fields)
        return row

    # ----------------------------------------------------------------- display

    def display_language(self, name: str, value: object, source_language: str | None,
                         target_language: str | None) -> str | None:
        """How the Review page shows a field: the language to highlight it as, or None for plain text."""
        if name in PROSE_FIELDS:
            return None
        if name == self.tests_key:
            return self.solution_language(source_language, target_language)
        if name == self.input_key and is_no_input(value):
            return None
        return self.code_fields(source_language, target_language).get(name)


__all__ = ["TaskSpec", "PROSE_FIELDS", "TESTS_FIELD", "InstructionExample", "TestedInstructionExample", "OssInstructExample", "Judgment", "RuleVerdict",
           "count_sentences"]
