"""The rule pre-filter: cheap deterministic checks run on a parsed reply before any judge call.

Each check works the way a datatrove filter does: it looks at one example and keeps it or drops
it with a reason. A reason is the check's name, or "name: detail"; jobs count failures by the
name (the part before the colon). A task lists the checks that apply to it (TaskSpec.checks).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from core.tasks.no_input import is_no_input

if TYPE_CHECKING:
    from core.tasks.base import TaskSpec


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None = None


KEEP = Verdict(True)


@dataclass(frozen=True)
class Check:
    """One named rule. `rule(spec, fields, source_code)` returns None to keep the example, or the
    detail of why it is dropped ("" when the name says it all)."""
    name: str
    rule: Callable[[TaskSpec, dict, str | None], str | None]

    def __call__(self, spec: TaskSpec, fields: dict, source_code: str | None = None) -> Verdict:
        detail = self.rule(spec, fields, source_code)
        if detail is None:
            return KEEP
        return Verdict(False, f"{self.name}: {detail}" if detail else self.name)


@dataclass
class PrefilterResult:
    ok: bool
    reasons: list[str]
    fields: dict


def run_checks(spec: TaskSpec, checks: tuple[Check, ...], fields: dict,
               source_code: str | None = None) -> PrefilterResult:
    """Every check on `fields` (string values); the example passes when none drops it."""
    reasons = [v.reason or "" for v in (check(spec, fields, source_code) for check in checks) if not v.keep]
    return PrefilterResult(not reasons, reasons, fields)


# --------------------------------------------------------------------------- helpers

_SENTENCE_END = re.compile(r"[.!?]+(?=\s+[A-Z0-9`\"'(]|\s*$)")


def count_sentences(text: str) -> int:
    """Sentences in prose, ignoring inline code and dots inside names/numbers (foo.py, 3.5, e.g.)."""
    prose = re.sub(r"`[^`]*`", "X", text.strip())
    if not prose:
        return 0
    parts = [p for p in _SENTENCE_END.split(prose) if p.strip()]
    return max(1, len(parts))


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
# words every language shares: they say nothing about where a piece of code came from
_COMMON_WORDS = {"def", "return", "self", "none", "true", "false", "null", "nil", "for", "while", "and", "not",
                 "else", "elif", "import", "from", "class", "function", "func", "var", "let", "const", "int",
                 "str", "string", "print", "len", "range", "public", "private", "static", "void", "new", "this",
                 "end", "the", "with", "pass", "raise", "try", "except", "finally", "yield", "lambda", "bool"}
FROM_SNIPPET_MIN_SHARE = 0.5
MAX_INSTRUCTION_SENTENCES = 2


def identifier_share(text: str, source: str) -> tuple[float, int]:
    """Share of the distinct identifiers of `text` that also occur in `source` (case-insensitive), and their count."""
    words = {w.lower() for w in _IDENT_RE.findall(text)} - _COMMON_WORDS
    if not words:
        return 1.0, 0
    known = {w.lower() for w in _IDENT_RE.findall(source)}
    return len(words & known) / len(words), len(words)


def _empty_keys(spec: TaskSpec, fields: dict) -> list[str]:
    return [k for k in spec.required_keys if k in fields and not fields[k].strip()]


# --------------------------------------------------------------------------- the checks

def _missing_fields(spec, fields, source_code):
    missing = [k for k in spec.required_keys if k not in fields]   # tests are asked for, not required
    return ", ".join(missing) if missing else None


def _empty_fields(spec, fields, source_code):
    empty = _empty_keys(spec, fields)   # one empty field is allowed
    return ", ".join(empty) if len(empty) > 1 else None


def _instruction_too_long(spec, fields, source_code):
    text = fields.get(spec.instruction_key, "")
    n = count_sentences(text) if text.strip() else 0
    return f"{n} sentences (at most {MAX_INSTRUCTION_SENTENCES})" if n > MAX_INSTRUCTION_SENTENCES else None


# a call, an assignment, braces or semicolons, a keyword that opens a line, or an indented line
_CODE_SIGNS = re.compile(r"\w\s*\(|[=;{}]|^\s*(def|class|function|func|fn|return|import|public|private|var|let|"
                         r"const|#include|package|module|end)\b|^\s{2,}\S", re.M)


def looks_like_code(text: str) -> bool:
    """Whether `text` holds any code at all: "sample information" or a sentence about code does not."""
    return bool(_CODE_SIGNS.search(text))


def _information_missing_code(spec, fields, source_code):
    if "information" not in fields:   # a missing one is missing_fields
        return None
    info = fields["information"]
    if is_no_input(info):
        return "this task needs the code in information"
    if info.strip() and not looks_like_code(info):
        return "information holds no code"
    return None


def _information_not_from_snippet(spec, fields, source_code):
    """A small model tends to copy a few-shot example instead of using the snippet."""
    info = fields.get("information", "")
    if not source_code or is_no_input(info):
        return None
    share, n = identifier_share(info, source_code)
    if n >= 3 and share < FROM_SNIPPET_MIN_SHARE:
        return f"{share:.0%} of its {n} identifiers are in the snippet"
    return None


def _empty_solution(spec, fields, source_code):
    # several empty fields are already one reason (empty_fields); do not count the solution twice
    if fields.get("solution", "").strip() or len(_empty_keys(spec, fields)) > 1:
        return None
    return ""


MISSING_FIELDS = Check("missing_fields", _missing_fields)
EMPTY_FIELDS = Check("empty_fields", _empty_fields)
INSTRUCTION_TOO_LONG = Check("instruction_too_long", _instruction_too_long)
INFORMATION_MISSING_CODE = Check("information_missing_code", _information_missing_code)
INFORMATION_NOT_FROM_SNIPPET = Check("information_not_from_snippet", _information_not_from_snippet)
EMPTY_SOLUTION = Check("empty_solution", _empty_solution)

# The usual sets, in the order their reasons are reported.
SOLUTION_CHECKS = (MISSING_FIELDS, EMPTY_FIELDS, EMPTY_SOLUTION)
INSTRUCTION_CHECKS = (MISSING_FIELDS, EMPTY_FIELDS, INSTRUCTION_TOO_LONG, EMPTY_SOLUTION)
# for tasks whose information is the snippet (summarization, translation) or a broken copy of it (repair)
SNIPPET_INFORMATION_CHECKS = (MISSING_FIELDS, EMPTY_FIELDS, INSTRUCTION_TOO_LONG, INFORMATION_MISSING_CODE,
                              INFORMATION_NOT_FROM_SNIPPET, EMPTY_SOLUTION)
