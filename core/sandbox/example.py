"""One generated example run with its tests in the sandbox, and what is kept of the run.

`execute_example` is the one place that decides what is run for an example: the solution's code
(its fenced blocks, or the whole text) followed by the example's tests, in the solution's language
(core.sandbox.languages). The generation loop calls it for every new example that carries tests
(repair rounds); the dataset's execution check (core.dataset.checks.execution) runs it over the
stored examples.

What a run printed is redacted (core.redact) before it is kept or sent anywhere: the check's detail
and the failure report a repair round puts into the generator's prompt.
"""
from __future__ import annotations

import re

from core.redact import configured_secrets, redact
from core.sandbox.isolation import SandboxResult
from core.sandbox.languages import run_solution, runnable_language
from core.sandbox.step import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT

PYTHON_NAMES = {"python", "py", "python3"}
DETAIL_OUTPUT = 2000     # characters of stdout / stderr kept in a `checks` row
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.S)
_TAGS = {"python": {"python", "py", "python3"}, "javascript": {"javascript", "js", "node", "jsx"},
         "typescript": {"typescript", "ts"}, "java": {"java"}, "cpp": {"cpp", "c++", "cxx", "cc", "c"},
         "rust": {"rust", "rs"}}


def tests_text(fields: dict | None) -> str:
    """The example's own tests (a `tests` / `test_list` field: text or a list of asserts), or ''."""
    tests = (fields or {}).get("tests") or (fields or {}).get("test_list")
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    return tests if isinstance(tests, str) else ""


def code_of(text: str, language: str | None) -> str:
    """The code in `text`: its fenced blocks in `language` (or untagged; else all blocks), or the text."""
    lang = runnable_language(language) or (language or "").lower()
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text or "")]
    if not blocks:
        return text or ""
    tags = _TAGS.get(lang, {lang}) | {""}
    chosen = [b for t, b in blocks if t in tags] or [b for _, b in blocks]
    return "\n\n".join(chosen)



def execute_example(language: str | None, fields: dict, solution: str, timeout: float = DEFAULT_TIMEOUT,
                    memory_mb: int = DEFAULT_MEMORY_MB) -> SandboxResult:
    """Run one example's solution followed by its tests, in its solution's language."""
    tests = tests_text(fields)
    return run_solution(language, code_of(solution, language), code_of(tests, language), timeout, memory_mb)


def execution_detail(r: SandboxResult, **extra) -> dict:
    """What a `checks` row keeps of a run (the output's tail, redacted: the failure is at the end)."""
    secrets = configured_secrets()
    detail = {"status": r.status, "outcome": r.outcome, "language": r.language, "phase": r.phase,
              "returncode": r.returncode, "seconds": r.seconds, "stdout": redact(r.stdout, secrets)[-DETAIL_OUTPUT:],
              "stderr": redact(r.stderr, secrets)[-DETAIL_OUTPUT:], "fs_isolation": r.fs_isolation, **extra}
    if r.violation:
        detail["violation"] = r.violation
    return detail


_TIMINGS = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b")


def failure_report(r: SandboxResult, limit: int = 1500) -> str:
    """The failure as a person (or the generator in a repair round) reads it. Timings are masked:
    the report goes into a prompt, which must not change between identical runs (the LLM cache)."""
    where = "compiling" if r.phase == "compile" else "running"
    out = _TIMINGS.sub("<t>", (redact(r.stderr.strip()) or redact(r.stdout.strip()) or "(no output)")[-limit:])
    why = f" ({r.violation})" if r.violation else ""
    return f"{r.status}{why} while {where} the solution with its tests (exit code {r.returncode}):\n{out}"

