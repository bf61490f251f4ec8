"""The checks of the generated set as a background task (the Dataset page's run): decontamination,
near-duplicates and (optionally) execution, in a worker thread of core.background."""
from __future__ import annotations

from core.background import Task, TaskContext, TaskKind, start_task
from core.store import Store
from core.team import members as team

CHECKS = TaskKind("checks", "A check run", cancelled="Cancelled: the checks finished before are kept.")


def benchmark_spec(chosen: list[str], paths: str) -> str:
    """`shoal check --benchmarks` text from picked names and "name=PATH, ..." pairs (HumanEval if none)."""
    files = dict(p.split("=", 1) for p in paths.replace(" ", "").split(",") if "=" in p)
    return ",".join(f"{b}={files[b]}" if b in files else b for b in chosen) or "humaneval"


def start_checks(store: Store, benchmarks: str, ngram: int | None, threshold: float, rouge: bool,
                 execute: bool, exec_sample: int, *, actor: str | None = None) -> Task:
    """Decontamination, near-duplicates and (optionally) execution, one after the other."""
    team.authorize(store, actor, "checks", target=benchmarks)
    from core.dataset.checks.decontam import run_decontamination
    from core.dataset.checks.execution import run_execution_checks
    from core.dataset.checks.neardup import run_near_duplicates

    def work(ctx: TaskContext) -> dict:
        ctx.stage("decontamination")
        d = run_decontamination(store, benchmarks, ngram, progress=ctx.progress, cancel=ctx.cancel)
        ctx.stage("near-duplicates")
        n = run_near_duplicates(store, threshold, rouge, progress=ctx.progress, cancel=ctx.cancel)
        summary = (f"Decontamination: {d['n_flagged']} of {d['n_examples']} flagged. "
                   f"Near-duplicates: {n['n_groups']} groups, {n['n_flagged']} flagged.")
        if execute:
            ctx.stage("execution")
            e = run_execution_checks(store, sample=exec_sample, progress=ctx.progress, cancel=ctx.cancel)
            summary += f" Execution: {e['n_passed']} of {e['n_examples']} ran cleanly."
        return {"summary": summary}

    return start_task(store, CHECKS, work, label=benchmarks, describe=lambda result: result)
