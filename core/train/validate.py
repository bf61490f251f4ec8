"""Check a training file against a fine-tuning target's format rules before anything is uploaded or
trained, with every refused example counted by reason and located by line; write the file to upload
(the good examples, with only the keys the target reads).

Shoal's exports are read as they are written: `messages` rows as they are; `alpaca`, `sharegpt` and
`oss-instruct` rows as the user + assistant pair they stand for (core.dataset.formats). Keys the
target does not read (Shoal's `provenance`) are counted and left out of the upload file, not refused.

Targets: `openai` (OpenAI's fine-tuning API, supervised chat: the roles and message keys of its
per-line schema, at least 10 examples) and `trl` (a Hugging Face chat template: user / assistant /
system turns). Both want at least one assistant turn, the last turn from the assistant, no empty
turn and every example within the context (`max_tokens`; counted with the model's tokenizer where
Shoal has it, core.llm.tokens, else at 4 characters a token).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from core.errors import ShoalError
from core.llm.tokens import count_messages

SHOWN_LINES = 5          # line numbers kept per reason


@dataclass(frozen=True)
class Target:
    name: str
    roles: frozenset[str]
    message_keys: frozenset[str]
    example_keys: frozenset[str]
    min_examples: int
    max_tokens: int           # the default context an example must fit in


TARGETS = {
    "openai": Target("openai", frozenset({"system", "developer", "user", "assistant", "tool", "function"}),
                     frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call",
                                "refusal"}),
                     frozenset({"messages", "tools", "parallel_tool_calls", "functions"}), 10, 16_384),
    "trl": Target("trl", frozenset({"system", "user", "assistant"}), frozenset({"role", "content"}),
                  frozenset({"messages"}), 1, 2_048),
}


@dataclass
class Validation:
    target: str
    max_tokens: int
    lines: int = 0
    valid: list[int] = field(default_factory=list)             # line numbers of the good examples
    reasons: Counter = field(default_factory=Counter)           # refused examples by reason
    where: dict[str, list[int]] = field(default_factory=dict)   # reason -> first line numbers
    dropped_keys: Counter = field(default_factory=Counter)      # keys left out of the upload file
    tokens: list[int] = field(default_factory=list)             # per good example
    token_method: str = ""
    problems: list[str] = field(default_factory=list)           # file-level: too few examples

    @property
    def ok(self) -> bool:
        return bool(self.valid) and not self.problems

    def refuse(self, line: int, reason: str) -> None:
        self.reasons[reason] += 1
        self.where.setdefault(reason, [])
        if len(self.where[reason]) < SHOWN_LINES:
            self.where[reason].append(line)

    def summary(self) -> dict:
        toks = sorted(self.tokens)
        return {"target": self.target, "max_tokens": self.max_tokens, "lines": self.lines,
                "valid": len(self.valid), "refused": sum(self.reasons.values()), "reasons": dict(self.reasons),
                "lines_by_reason": self.where, "dropped_keys": dict(self.dropped_keys), "ok": self.ok,
                "problems": self.problems, "tokens": {"method": self.token_method, "total": sum(toks),
                                                      "max": toks[-1] if toks else 0,
                                                      "median": toks[len(toks) // 2] if toks else 0}}


def as_messages(row: dict) -> tuple[dict, list[str]]:
    """The example as the target reads it ({"messages": [...], ...}) and the keys it left out."""
    if "messages" in row:
        return row, []
    if "conversations" in row:                                   # sharegpt
        roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
        turns = [{"role": roles.get(str(t.get("from")), str(t.get("from"))), "content": t.get("value")}
                 if isinstance(t, dict) else t for t in row["conversations"] or []]
        return {"messages": turns}, [k for k in row if k != "conversations"]
    if "instruction" in row and "output" in row:                 # alpaca (and parquet rows)
        prompt = str(row.get("instruction") or "") + (f"\n\n{row['input']}" if row.get("input") else "")
        return ({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]},
                [k for k in row if k not in ("instruction", "input", "output")])
    if "problem" in row and "solution" in row:                   # oss-instruct
        return ({"messages": [{"role": "user", "content": row["problem"]},
                              {"role": "assistant", "content": row["solution"]}]},
                [k for k in row if k not in ("problem", "solution")])
    return row, []


def _turn_problem(message: Any, target: Target) -> str | None:
    if not isinstance(message, dict):
        return "message_not_an_object"
    if message.get("role") not in target.roles:
        return "unknown_role"
    if set(message) - target.message_keys:
        return "unknown_message_key"
    content = message.get("content")
    if message.get("role") == "assistant" and message.get("tool_calls") and content in (None, ""):
        return None
    if not isinstance(content, str):
        return "content_not_text"
    if not content.strip():
        return "empty_content"
    if "weight" in message and message["weight"] not in (0, 1):
        return "weight_not_0_or_1"
    return None


def example_problem(example: dict, target: Target) -> str | None:
    """Why the target refuses this example (a reason key), or None."""
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no_messages"
    for message in messages:
        if (why := _turn_problem(message, target)) is not None:
            return why
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        return "no_assistant_turn"
    if roles[-1] != "assistant":
        return "last_turn_not_assistant"
    return None


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError:
                yield n, ValueError("invalid_json")


def training_file(path: str | Path) -> Path:
    """The JSONL file of an export folder (train.jsonl), or the file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.is_file():
        raise ShoalError(f"No training file at {path}: give a JSONL file or an export folder with train.jsonl "
                         "(export with --format messages, alpaca, sharegpt or oss-instruct).")
    return p


def validate_file(path: str | Path, target: str = "openai", *, model: str | None = None,
                  max_tokens: int | None = None) -> Validation:
    """Every line of a JSONL training file checked against `target`'s rules (see the module doc)."""
    if target not in TARGETS:
        raise ShoalError(f"Unknown target {target!r}; use one of {', '.join(TARGETS)}.")
    rules = TARGETS[target]
    v = Validation(target, int(max_tokens or rules.max_tokens))
    for n, row in _rows(training_file(path)):
        v.lines += 1
        if isinstance(row, ValueError):
            v.refuse(n, str(row))
            continue
        if not isinstance(row, dict):
            v.refuse(n, "not_an_object")
            continue
        example, left_out = as_messages(row)
        why = example_problem(example, rules)
        if why is None:
            count = count_messages(example["messages"], model)
            v.token_method = count.method
            if count.tokens > v.max_tokens:
                why = "too_long"
        if why is not None:
            v.refuse(n, why)
            continue
        v.dropped_keys.update(left_out + [k for k in example if k not in rules.example_keys])
        v.valid.append(n)
        v.tokens.append(count.tokens)
    if len(v.valid) < rules.min_examples:
        v.problems.append(f"{len(v.valid)} valid examples; {rules.name} needs at least {rules.min_examples}.")
    return v


def write_training_file(path: str | Path, validation: Validation, out: str | Path) -> int:
    """The good examples of `path` in the target's shape, with only the keys it reads; returns how many."""
    rules, keep = TARGETS[validation.target], set(validation.valid)
    n = 0
    with Path(out).open("w", encoding="utf-8") as f:
        for line, row in _rows(training_file(path)):
            if line in keep:
                example = as_messages(row)[0]
                f.write(json.dumps({k: v for k, v in example.items() if k in rules.example_keys},
                                   ensure_ascii=False) + "\n")
                n += 1
    return n
