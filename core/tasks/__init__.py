"""The task registry: five task kinds, each a TaskSpec in its own module.

Everything that depends on which task an example belongs to is decided by its spec (see
core.tasks.base); no other module names a task.
"""
from __future__ import annotations

from core.errors import ShoalError
from core.tasks import code_generation, code_repair, code_summarization, code_translation, oss_instruct
from core.tasks.base import PROSE_FIELDS, TaskSpec
from core.tasks.no_input import NO_INPUT, PLACEHOLDERS, is_no_input
from core.tasks.prefilter import Check, PrefilterResult, Verdict, count_sentences, identifier_share
from core.tasks.prompts import fence
from core.tasks.schemas import (
    InstructionExample,
    Judgment,
    KeyedJudgment,
    OssInstructExample,
    RuleAnswer,
    RuleVerdict,
    judgment_schema,
    rule_keys,
)

TASKS: dict[str, TaskSpec] = {m.TASK.name: m.TASK for m in
                              (code_generation, code_summarization, code_translation, code_repair, oss_instruct)}

# CodeOcean's published task shares (WaveCoder): used by `--mix default`.
DEFAULT_MIX: dict[str, float] = {"code_generation": 0.57, "code_summarization": 0.16,
                                 "code_repair": 0.16, "code_translation": 0.11}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ShoalError(f"Unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


__all__ = ["TASKS", "DEFAULT_MIX", "get_task", "TaskSpec", "InstructionExample", "OssInstructExample",
           "Judgment", "RuleVerdict", "KeyedJudgment", "RuleAnswer", "judgment_schema", "rule_keys",
           "count_sentences", "identifier_share", "NO_INPUT", "PLACEHOLDERS",
           "is_no_input", "fence", "Check", "Verdict", "PrefilterResult", "PROSE_FIELDS"]
