"""What a model replies with: the task output schemas and the judge's schema.

They stay in code (not in the editable prompt content) because the pipeline validates every
reply against them.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


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
