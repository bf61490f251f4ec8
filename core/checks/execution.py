"""Execution check: compile and run each Python solution in the sandbox, store the outcome."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pandas as pd

from core.checks.examples import load_examples, solution_code
from core.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, network_isolation, run_python
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.tasks import TASKS

PYTHON_NAMES = {"python", "py", "python3"}


def with_tests(code: str, fields: dict) -> str:
    """Append the example's own tests (a `tests` / `test_list` field: text or list of asserts), if any."""
    tests = (fields or {}).get("tests") or (fields or {}).get("test_list")
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    if isinstance(tests, str) and tests.strip():
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


def python_examples(store, sample: int | None = None, seed: int = 0):
    ex = load_examples(store, "coalesce(r.verdict, '') <> 'rejected'")
    python = [_is_python(solution_language(t, src, tgt))
              for t, src, tgt in zip(ex["task"], ex["source_language"], ex["target_language"])]
    ex = ex[pd.Series(python, index=ex.index, dtype=bool)]
    ex = ex[ex["solution"].str.strip() != ""]
    if sample is not None and sample < len(ex):
        ex = ex.iloc[sorted(random.Random(seed).sample(range(len(ex)), sample))]
    return ex


def run_execution_checks(store, sample: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                         memory_mb: int = DEFAULT_MEMORY_MB, workers: int = 2, seed: int = 0,
                         progress: ProgressFn | None = None,
                         cancel: threading.Event | None = None) -> dict:
    """Run every (or a seeded sample of) Python solution; one `checks` row each."""
    from core.checks.results import record_run

    ex = python_examples(store, sample, seed)
    jobs = {int(g): with_tests(solution_code(s, "python"), f)
            for g, s, f in zip(ex["generation_id"], ex["solution"], ex["fields_eff"])}
    results: list[tuple[int, bool, dict]] = []
    statuses: dict[str, int] = {}
    t0 = time.perf_counter()
    total = len(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_python, code, timeout, memory_mb): g for g, code in jobs.items()}
        try:
            for n, fut in enumerate(as_completed(futures), 1):
                g = futures[fut]
                r = fut.result()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                results.append((g, r.ok, {"status": r.status, "returncode": r.returncode,
                                          "seconds": r.seconds, "stdout": r.stdout[-2000:],
                                          "stderr": r.stderr[-2000:]}))
                report(progress, n, total, f"executed #{g}: {r.status}")
                check_cancel(cancel)
        except Cancelled:
            for f in futures:
                f.cancel()
            raise
    seconds = time.perf_counter() - t0
    results.sort()
    summary = {"n_examples": total, "n_passed": sum(1 for _, ok, _ in results if ok),
               "n_flagged": sum(1 for _, ok, _ in results if not ok), "statuses": statuses,
               "seconds": round(seconds, 3), "network_isolation": network_isolation()[0]}
    params = {"timeout": timeout, "memory_mb": memory_mb, "sample": sample, "seed": seed, "workers": workers}
    summary["run_id"] = record_run(store, "execution", params, summary, results)
    return summary
