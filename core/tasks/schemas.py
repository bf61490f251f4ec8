"""What a model replies with: the task output schemas and the judge's schema.

They stay in code (not in the editable prompt content) because the pipeline validates every
reply against them.

The judge's schema is built per prompt version (`judgment_schema(rules)`): one property per rule,
in the rules' order, each `{reason, answer}`, then `analysis` and `overall`. Sent as a strict
json_schema (every property required, no additional properties) it fixes the count and the
order of the answers; read back, answers are matched to rules by key, so a judge that skips or
reorders a rule leaves that rule missing instead of shifting every later answer onto the wrong
rule. `Judgment` is the older list-shaped reply; the keyed schema still reads it, matching each
item by the rule number or text it names.
"""
from __future__ import annotations

import functools
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

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


def _lowered(v: Any) -> Any:
    """"Yes." / " NO" as the schema's "yes" / "no" (models vary the case and add a full stop)."""
    return v.strip().lower().rstrip(".") if isinstance(v, str) else v


YesNo = Annotated[Literal["yes", "no"], BeforeValidator(_lowered)]


class RuleVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    reason: str
    answer: YesNo


class Judgment(BaseModel):
    """The discriminator's reply: reason before answer for every rule (chain of thought), then overall."""
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleVerdict]
    analysis: str
    overall: YesNo


# --------------------------------------------------------------------------- judge, keyed by rule

class RuleAnswer(BaseModel):
    """One rule's answer in the keyed judgment: the reason first (chain of thought), then yes/no."""
    model_config = ConfigDict(extra="ignore")
    reason: str
    answer: YesNo


_SLUG = re.compile(r"[a-z0-9]+")
_KEY_WORDS = 6
_KEY_CHARS = 48
_RULE_NUMBER = re.compile(r"^\s*(?:rule[\s_#-]*)?(\d+)(?!\d)", re.I)


def rule_keys(rules: list[str] | tuple[str, ...]) -> list[str]:
    """The property name of each rule: `rule_<n>_<first words>`, unique by its number and readable,
    so a model writing the key under constrained decoding sees which rule it is answering."""
    keys = []
    for i, rule in enumerate(rules, 1):
        key = f"rule_{i}"
        for word in _SLUG.findall(rule.lower())[:_KEY_WORDS]:
            if len(key) + 1 + len(word) > _KEY_CHARS:
                break
            key += "_" + word
        keys.append(key)
    return keys


def rule_number(label: Any, rules: tuple[str, ...]) -> int | None:
    """The 0-based rule a label names: "3", "rule 3", "rule_3_...", or the rule's own text."""
    text = str(label or "").strip()
    if not text:
        return None
    m = _RULE_NUMBER.match(text)
    if m and 1 <= int(m.group(1)) <= len(rules):
        return int(m.group(1)) - 1
    folded = " ".join(text.lower().split()).rstrip(".")
    for i, rule in enumerate(rules):
        if " ".join(rule.lower().split()).rstrip(".") == folded:
            return i
    return None


def match_rule_items(rules: tuple[str, ...], items: list[Any]) -> list[Any | None]:
    """List-shaped answers (each naming its rule) placed on the rules they name.

    An item whose label names a rule goes there (the first one wins); items that name no rule fill
    the rules still unanswered, in order. A rule nothing answers stays None (missing)."""
    out: list[Any | None] = [None] * len(rules)
    unlabeled = []
    for item in items:
        label = item.get("rule") if isinstance(item, dict) else getattr(item, "rule", None)
        i = rule_number(label, rules)
        if i is None or out[i] is not None:
            unlabeled.append(item)
        else:
            out[i] = item
    free = iter(i for i in range(len(rules)) if out[i] is None)
    for item, i in zip(unlabeled, free):
        out[i] = item
    return out


class KeyedJudgment(BaseModel):
    """Base of the per-version judge schemas (see `judgment_schema`). Each rule's answer is a field
    named by `rule_keys`; a rule the reply does not answer is None (recorded as missing)."""
    model_config = ConfigDict(extra="ignore")
    RULES: ClassVar[tuple[str, ...]] = ()
    KEYS: ClassVar[tuple[str, ...]] = ()
    analysis: str
    overall: YesNo

    @model_validator(mode="before")
    @classmethod
    def _by_rule(cls, data: Any) -> Any:
        """Put answers under their rule's key: keys that name a rule by number ("rule_3", "3"), and
        the older list shape {"rules": [{"rule": "3", ...}]} matched by the rule each item names."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in [k for k in data if k not in cls.KEYS and k not in ("analysis", "overall", "rules")]:
            i = rule_number(key, cls.RULES)
            if i is not None and cls.KEYS[i] not in data:
                data[cls.KEYS[i]] = data.pop(key)
        items = data.pop("rules", None)
        if isinstance(items, list):
            for key, item in zip(cls.KEYS, match_rule_items(cls.RULES, items)):
                if item is not None and key not in data:
                    data[key] = item
        return data

    def answers(self) -> list[RuleAnswer | None]:
        """Each rule's answer in rule order; None where the judge gave none."""
        return [getattr(self, k) for k in self.KEYS]

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict:
        """What is sent: strict-mode compatible (every property required, additionalProperties false
        on every object), the rules in order, each described by its text."""
        answer = {"type": "string", "enum": ["yes", "no"]}
        props: dict[str, Any] = {
            key: {"type": "object", "description": rule,
                  "properties": {"reason": {"type": "string"}, "answer": dict(answer)},
                  "required": ["reason", "answer"], "additionalProperties": False}
            for key, rule in zip(cls.KEYS, cls.RULES)}
        props["analysis"] = {"type": "string"}
        props["overall"] = dict(answer)
        return {"title": "Judgment", "type": "object", "properties": props, "required": list(props),
                "additionalProperties": False}


@functools.lru_cache(maxsize=256)
def _keyed_schema(rules: tuple[str, ...]) -> type[KeyedJudgment]:
    keys = tuple(rule_keys(rules))
    # one optional answer per rule key; typed as Any, as pydantic's field definitions are
    fields: dict[str, Any] = {k: (RuleAnswer | None, None) for k in keys}
    model = create_model("Judgment", __base__=KeyedJudgment, **fields)
    model.RULES, model.KEYS = rules, keys
    return model


def judgment_schema(rules: list[str] | tuple[str, ...]) -> type[KeyedJudgment]:
    """The judge's reply schema for one prompt version's rules (one class per rule list, so the
    client's per-class schema cache and the LLM cache key stay stable)."""
    return _keyed_schema(tuple(rules))
