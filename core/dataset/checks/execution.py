"""Execution check: run each solution with its own tests in the sandbox, store the outcome.

`execute_example` is the one place that decides what is run for an example: the solution's code
(its fenced blocks, or the whole text) followed by the example's tests, in the solution's language
(core.dataset.checks.languages). The generation loop calls it for every new example that carries tests;
`run_execution_checks` runs it over the stored examples (Python solutions always, other languages
when the example has tests: without tests there is nothing but a compile to check).

What a run printed is redacted (core.redact) before it is kept or sent anywhere: the check's detail
and the failure report a repair round puts into the generator's prompt. A run the sandbox stopped
(core.dataset.checks.sandbox.VIOLATIONS: a limit, an attempt to leave, processes left behind) carries its
reason as `violation`; the export never lets such an example through. Where no OS sandbox can be set
up, nothing runs: every example is skipped and counted with the reason and the fix.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pandas as pd

from core.dataset.checks.examples import load_examples, solution_code
from core.dataset.checks.languages import canonical_language, run_solution
from core.dataset.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, SandboxResult, sandbox_backend, sandbox_problem
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.redact import configured_secrets, redact
from core.tasks import TASKS

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
    lang = canonical_language(language) or (language or "").lower()
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text or "")]
    if not blocks:
        return text or ""
    tags = _TAGS.get(lang, {lang}) | {""}
    chosen = [b for t, b in blocks if t in tags] or [b for _, b in blocks]
    return "\n\n".join(chosen)


def with_tests(code: str, fields: dict) -> str:
    """Python: the solution with the example's own tests appended, if it has any."""
    tests = tests_text(fields)
    if tests.strip():
        return f"{code}\n\n# --- tests ---\n{solution_code(tests, 'python')}\n"
    return code


def _name(value) -> str | None:
    return value if isinstance(value, str) else None   # NULL columns come back as None or NaN


def solution_language(task: str, source_language, target_language) -> str | None:
    """The language of an example's solution as its task says (None: prose, or a task we do not know)."""
    spec = TASKS.get(task)
    return spec.code_fields(_name(source_language), _name(target_language)).get("solution") if spec else None


def _is_python(language: str | None) -> bool:
    return (language or "").lower() in PYTHON_NAMES


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


def execution_of(store, generation_id: int) -> dict | None:
    """One example's current execution verdict (detail fields + passed / overridden), or None."""
    row = store.one("SELECT passed, overridden, detail FROM checks WHERE generation_id = ? AND kind = 'execution' "
                    "ORDER BY id DESC LIMIT 1", [generation_id])
    if row is None:
        return None
    try:
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else {}
    except ValueError:
        detail = {}
    outcome = detail.get("outcome") or ("pass" if row["passed"] else "fail")
    return {**detail, "outcome": outcome, "passed": bool(row["passed"]), "overridden": bool(row["overridden"])}


def execution_stats(store) -> pd.DataFrame:
    """Per task and solution language: executed, passed, failed, error (did not compile), repaired,
    over each generation's current execution verdict."""
    from core.dataset.checks.results import current_checks
    cur = current_checks(store, "execution")
    cols = ["task", "language", "executed", "passed", "failed", "error", "repaired"]
    if cur.empty:
        return pd.DataFrame(columns=cols)
    tasks = {int(r["id"]): r["task"] for r in store.rows("SELECT id, task FROM generations")}
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for g, passed, detail in zip(cur["generation_id"], cur["passed"], cur["detail"]):
        if int(g) not in tasks:
            continue
        try:
            d = json.loads(detail) if isinstance(detail, str) else {}
        except ValueError:
            d = {}
        outcome = d.get("outcome") or ("pass" if bool(passed) else "fail")
        c = counts.setdefault((tasks[int(g)], d.get("language") or "python"),
                              {"executed": 0, "passed": 0, "failed": 0, "error": 0, "repaired": 0})
        c["executed"] += 1
        c["passed" if bool(passed) else ("error" if outcome == "error" else "failed")] += 1
        c["repaired"] += int(bool(d.get("repaired")))
    return pd.DataFrame([{"task": t, "language": lang, **c} for (t, lang), c in sorted(counts.items())], columns=cols)


def runnable_examples(store, sample: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Examples the execution check runs: Python solutions, and solutions in other languages with tests."""
    ex = load_examples(store, "coalesce(r.verdict, '') <> 'rejected'")
    langs = [solution_language(t, src, tgt)
             for t, src, tgt in zip(ex["task"], ex["source_language"], ex["target_language"])]
    keep = [lang is not None and (_is_python(lang) or (canonical_language(lang) is not None
                                                        and bool(tests_text(f).strip())))
            for lang, f in zip(langs, ex["fields_eff"])]
    ex = ex.assign(solution_language=langs)[pd.Series(keep, index=ex.index, dtype=bool)]
    ex = ex[ex["solution"].str.strip() != ""]
    if sample is not None and sample < len(ex):
        ex = ex.iloc[sorted(random.Random(seed).sample(range(len(ex)), sample))]
    return ex


def python_examples(store, sample: int | None = None, seed: int = 0) -> pd.DataFrame:
    ex = runnable_examples(store, None, seed)
    ex = ex[[_is_python(x) for x in ex["solution_language"]]]
    if sample is not None and sample < len(ex):
        ex = ex.iloc[sorted(random.Random(seed).sample(range(len(ex)), sample))]
    return ex


def run_execution_checks(store, sample: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                         memory_mb: int = DEFAULT_MEMORY_MB, workers: int = 2, seed: int = 0,
                         progress: ProgressFn | None = None,
                         cancel: threading.Event | None = None) -> dict:
    """Run every (or a seeded sample of) runnable solution with its tests; one `checks` row each
    (a language whose toolchain is missing here is skipped and counted, not recorded)."""
    from core.dataset.checks.results import record_run

    ex = runnable_examples(store, sample, seed)
    jobs = {int(g): (lang, f, s) for g, lang, f, s in
            zip(ex["generation_id"], ex["solution_language"], ex["fields_eff"], ex["solution"])}
    results: list[tuple[int, bool, dict]] = []
    statuses: dict[str, int] = {}
    skipped: dict[str, str] = {}
    reasons: dict[str, int] = {}     # why examples were not run (no toolchain, no sandbox) -> how many
    t0 = time.perf_counter()
    total = len(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(execute_example, lang, f, s, timeout, memory_mb): g for g, (lang, f, s) in jobs.items()}
        try:
            for n, fut in enumerate(as_completed(futures), 1):
                g = futures[fut]
                r = fut.result()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == "skipped":
                    skipped[r.language] = r.stderr
                    reasons[r.stderr] = reasons.get(r.stderr, 0) + 1
                else:
                    results.append((g, r.ok, execution_detail(r)))
                report(progress, n, total, f"executed #{g}: {r.status}")
                check_cancel(cancel)
        except Cancelled:
            for f in futures:
                f.cancel()
            raise
    seconds = time.perf_counter() - t0
    results.sort()
    summary = {"n_examples": len(results), "n_passed": sum(1 for _, ok, _ in results if ok),
               "n_flagged": sum(1 for _, ok, _ in results if not ok), "statuses": statuses,
               "skipped_languages": skipped, "n_skipped": sum(reasons.values()), "skipped_reasons": reasons,
               "seconds": round(seconds, 3), "sandbox": sandbox_backend().describe(), "sandbox_problem": sandbox_problem(),
               "network_isolation": "netns" if sandbox_backend().kind == "bwrap" else "none"}
    params = {"timeout": timeout, "memory_mb": memory_mb, "sample": sample, "seed": seed, "workers": workers}
    summary["run_id"] = record_run(store, "execution", params, summary, results)
    return summary
