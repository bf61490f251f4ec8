"""Ingest for the app as a background task (core.background; no Streamlit here).

The page starts a run, then polls the task's row from a fragment; the worker writes its
counts to the `ingests` row as it goes (see run.py) and its progress to `background_tasks`.
One ingest at a time per database file; runs outlive page reruns, reloads and page changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.background import Task, TaskContext, TaskKind, latest_task, local_task, start_task
from core.ingest.filters import TEST_CODE
from core.ingest.roots import check_sources, data_roots
from core.ingest.run import IngestResult, ingest_sources
from core.store import Store
from core.team import members as team

INGEST = TaskKind("ingest", "An ingest", cancelled="Cancelled: what was read before is kept.",
                  failure_prefix="Ingest failed: ")
IngestRun = Task   # the handle start_ingest returns: .running, .wait(), .error, .result (IngestResult)


def ingest_summary(result: IngestResult) -> dict:
    """What the page shows when the run is over (kept in the task's row)."""
    summary = (f"Ingest #{result.ingest_id} of {', '.join(result.sources)}: {result.ingested:,} new snippets, "
               f"{result.duplicates:,} duplicates, {result.filtered:,} filtered, {len(result.errors):,} errors "
               f"in {result.seconds:.2f} s.")
    if n_tests := result.filtered_by_reason[TEST_CODE]:
        summary += f" {n_tests:,} test files left out as test code (the option 'Keep test code' keeps them)."
    return {"ingest_id": result.ingest_id, "ingested": result.ingested, "nothing_read": result.nothing_read,
            "summary": summary}


def start_ingest(store: Store, sources: list[str], *, actor: str | None = None, roots: list[Path] | None = None,
                 **kwargs: Any) -> IngestRun:
    """Start ingesting `sources` in the background; refuses while another ingest is running.
    The app's route: the actor's role is checked, and server paths must lie under the data roots
    (`roots`, default core.ingest.roots.data_roots)."""
    sources = list(sources)
    team.authorize(store, actor, "ingest", target=", ".join(sources), check=lambda: check_sources(
        sources, data_roots(store) if roots is None else roots))

    def work(ctx: TaskContext) -> IngestResult:
        return ingest_sources(store, sources, progress=ctx.progress, cancel=ctx.cancel, **kwargs)

    return start_task(store, INGEST, work, label=", ".join(sources), describe=ingest_summary)


def current_run(store: Store) -> IngestRun | None:
    """The latest ingest on this database, if this process started it (running or finished)."""
    rec = latest_task(store, INGEST.name)
    return None if rec is None else local_task(store, rec.id)
