"""The app's long work besides ingest (core/ingest/background.py), as background tasks:
embed + map (Map page) and the checks of the generated set (Dataset page).

Each starter runs the same core functions the CLI runs, in a worker thread of core.background,
so the page that started it can be left and the work goes on.
"""
from __future__ import annotations

from core.background import Task, TaskContext, TaskKind, start_task
from core.store import Store

EMBED_MAP = TaskKind("embed_map", "An embed + map run",
                     cancelled="Cancelled. Embeddings finished so far are kept; running again continues from there.")
CHECKS = TaskKind("checks", "A check run", cancelled="Cancelled: the checks finished before are kept.")
EMBEDDING, MAPPING = "embedding", "map"     # the stages of an embed + map run


def start_embed_and_map(store: Store, model: str | None, backend: str, batch_size: int, n_clusters: int,
                        method: str) -> Task:
    """Embed what is not cached yet, then build a map of every embedded snippet."""
    from core.embed import embed_corpus
    from core.maps import build_map

    def work(ctx: TaskContext) -> dict:
        ctx.stage(EMBEDDING)
        r = embed_corpus(store, model=model, backend=backend, batch_size=batch_size, progress=ctx.progress,
                         cancel=ctx.cancel)
        ctx.stage(MAPPING, "UMAP")
        m = build_map(store, model=r.model_key, n_clusters=n_clusters or None, method=method,
                      progress=ctx.progress, cancel=ctx.cancel)
        return {"map_id": m.map_id,
                "summary": f"Embedded {r.n_embedded} snippets ({r.n_cached} were cached) with {r.reason}; "
                           f"map {m.map_id}: {m.n_points} points in {m.n_clusters} clusters."}

    return start_task(store, EMBED_MAP, work, label=f"{model or 'default model'} · {method}",
                      describe=lambda result: result)


def benchmark_spec(chosen: list[str], paths: str) -> str:
    """`shoal check --benchmarks` text from picked names and "name=PATH, ..." pairs (HumanEval if none)."""
    files = dict(p.split("=", 1) for p in paths.replace(" ", "").split(",") if "=" in p)
    return ",".join(f"{b}={files[b]}" if b in files else b for b in chosen) or "humaneval"


def start_checks(store: Store, benchmarks: str, ngram: int | None, threshold: float, rouge: bool,
                 execute: bool, exec_sample: int) -> Task:
    """Decontamination, near-duplicates and (optionally) execution, one after the other."""
    from core.checks.decontam import run_decontamination
    from core.checks.execution import run_execution_checks
    from core.checks.neardup import run_near_duplicates

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
