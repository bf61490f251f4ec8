"""What a model replies with: the task output schemas and the judge's schema.

They stay in code (not in the editable prompt content) because the pipeline validates every
reply against them.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TESTS_DESCRIPTION = ("Tests for the solution, in the solution's language: assertions or a small test function "
                     "that fail when the solution is wrong. Plain code, no prose.")


def _ask_for_tests(schema: dict) -> None:
    """The model is asked for `tests` (listed as required in the JSON schema), but a reply without
    them still parses: it is then simply not executed."""
    required = schema.setdefault("required", [])
    if "tests" not in required:
        required.append("tests")


class InstructionExample(BaseModel):
    """WaveCoder shape, shared by the four CodeOcean tasks."""
    model_config = ConfigDict(extra="forbid")
    task_name: str
    instruction: str
    information: str
    solution: str


class TestedInstructionExample(InstructionExample):
    """WaveCoder shape plus the generator's own tests (code generation, code repair)."""
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ask_for_tests)
    tests: str = Field("", description=TESTS_DESCRIPTION)


class OssInstructExample(BaseModel):
    """Magicoder OSS-Instruct shape, plus tests (SelfCodeAlign: the teacher writes tests with its solution)."""
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ask_for_tests)
    problem: str
    solution: str
    tests: str = Field("", description=TESTS_DESCRIPTION)


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
