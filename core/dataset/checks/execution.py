"""Execution check: run each stored example's solution with its own tests in the sandbox
(core.sandbox.example.execute_example), store the outcome. Python solutions always run, other languages
when the example has tests (without tests there is nothing but a compile to check).

A run the sandbox stopped (core.sandbox.isolation.VIOLATIONS: a limit, an attempt to leave, processes
left behind) carries its reason as `violation`; the export never lets such an example through. Where
no OS sandbox can be set up, nothing runs: every example is skipped and counted with the reason and the fix.
"""
from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pandas as pd

from core.dataset.checks.examples import load_examples, solution_code
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.sandbox.example import PYTHON_NAMES, execute_example, execution_detail, tests_text
from core.sandbox.isolation import sandbox_backend, sandbox_problem
from core.sandbox.languages import runnable_language
from core.sandbox.step import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT
from core.tasks import TASKS


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
    keep = [lang is not None and (_is_python(lang) or (runnable_language(lang) is not None
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
