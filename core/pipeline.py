"""Where a database is in the pipeline, and what is running on it now.

`running_work(store)` is the one answer to "what is running": generation jobs (a live worker in
this process, or a job another process keeps alive with its heartbeat), jobs queued behind
another one on the same endpoint, and the background tasks of core.background (ingest, embed +
map, checks). Home, the pages and `pipeline_status` all read it, so none of them can say
"done" while something runs.

One job at a time per endpoint (core/generate/jobs/endpoint_queue.py): `jobs_on_endpoint` names the running
(or queued) jobs that use the same server as a job about to start, and `start_after` queues a job
behind them, durably (a 'queued' row that any Shoal process starts once the server is free).
"""
from __future__ import annotations

from dataclasses import dataclass

from core.background import running_tasks

# one job at a time per endpoint and the durable queue live with the jobs; re-exported for the pages
from core.generate.jobs.endpoint_queue import (
    QUEUE_POLL_S,
    endpoint_key,
    job_rows,
    jobs_on_endpoint,
    queued_jobs,
    running_job_ids,
    start_after,
)
from core.store import Store

__all__ = ["QUEUE_POLL_S", "Running", "STAGE_OF", "endpoint_key", "is_busy", "jobs_on_endpoint", "next_step",
           "pipeline_status", "queued_jobs", "running_job_ids", "running_work", "start_after"]

_STAGES = [
    ("Corpus", "SELECT count(*) FROM snippets", "snippets ingested",
     "Add a corpus (or the built-in demo) on the Corpus page.", "Corpus"),
    ("Map", "SELECT count(*) FROM maps", "maps built",
     "Embed the corpus and build its map on the Map page.", "Map"),
    ("Selection", "SELECT count(*) FROM selections", "selections saved",
     "Pick the most diverse snippets with k-center greedy on the Map page.", "Map"),
    ("Generate", "SELECT count(*) FROM generations", "examples generated",
     "Generate and judge instruction examples on the Generate page.", "Generate"),
    ("Review", "SELECT count(*) FROM reviews WHERE verdict IN ('accepted', 'rejected')", "examples reviewed",
     "Accept, edit or reject examples on the Review page.", "Review"),
    ("Export", "SELECT count(*) FROM exports", "exports written",
     "Check and export the accepted set on the Dataset page.", "Dataset"),
]
# which stage a kind of work belongs to (background task kinds, and "job")
STAGE_OF = {"ingest": "Corpus", "embed_map": "Map", "job": "Generate", "checks": "Export"}


@dataclass(frozen=True)
class Running:
    """One piece of work under way (or queued), as every page shows it."""
    kind: str                 # "job" or a core.background task kind
    id: int                   # job id or background task id
    label: str
    done: int
    total: int | None
    queued_after: tuple[int, ...] = ()   # jobs this one waits for (a queued job)
    queued: bool = False                 # a job waiting in the queue for its server

    @property
    def stage(self) -> str:
        return STAGE_OF.get(self.kind, self.kind)

    @property
    def text(self) -> str:
        what = f"Job #{self.id}" if self.kind == "job" else self.label
        if self.queued or self.queued_after:
            return f"{what} queued" + (" after " + ", ".join(f"#{j}" for j in self.queued_after)
                                       if self.queued_after else "")
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        return f"{what}: {count}" + (f" · {self.label}" if self.kind == "job" and self.label else "")


# --------------------------------------------------------------------------- what runs

def running_work(store: Store) -> list[Running]:
    """Everything running or queued on this database, jobs first (oldest first)."""
    queued = queued_jobs(store)        # first: a job leaves the queue only once its worker runs
    running = set(running_job_ids(store))
    out = []
    for r in job_rows(store):
        jid = int(r["id"])
        if jid in running or jid in queued:
            waits = jid in queued and jid not in running
            out.append(Running("job", jid, r["name"] or "", int(r["done"] or 0), int(r["n_items"] or 0),
                               tuple(queued[jid]) if waits else (), queued=waits))
    for t in running_tasks(store):
        out.append(Running(t.kind, t.id, t.label or t.kind, t.done, t.total))
    return out


def is_busy(store: Store, stage: str | None = None) -> bool:
    return any(stage is None or w.stage == stage for w in running_work(store))


# --------------------------------------------------------------------------- the stages

def pipeline_status(store: Store) -> list[dict]:
    """One entry per stage: its count, whether it has data (`done`), what runs in it now (`running`),
    and `state`: "running" while work of that stage runs, else "done" or "to do"."""
    from core.maps.build import map_coverage, stale_map_note
    work = running_work(store)
    out = []
    for title, sql, help_, next_, page in _STAGES:
        n = int(store.scalar(sql) or 0)
        running = [w for w in work if w.stage == title]
        state = "running" if running else ("done" if n > 0 else "to do")
        stale = stale_map_note(map_coverage(store)) if title == "Map" and state == "done" else None
        out.append({"title": title, "count": n, "help": help_, "done": n > 0 and not stale,
                    "next": "Snippets were added since the map was built: build it again on the Map page (a "
                            "selection draws only from mapped snippets)." if stale else next_,
                    "page": page,
                    "running": running, "state": "stale" if stale else state, "note": stale})
    return out


def next_step(steps: list[dict]) -> dict | None:
    """The first stage without data (or a map that misses snippets added since), or None."""
    return next((s for s in steps if not s["done"]), None)
