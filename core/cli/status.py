"""`shoal status`: what Home shows — each stage's state, what is running or queued now (jobs,
ingest, embed + map, checks; core.pipeline.running_work, the one source of truth) and the next step."""
from __future__ import annotations

import typer

from core.cli.common import console, print_json, store_from
from core.store import Store

STATE = {"running": "running", "done": "done", "to do": "to do", "stale": "out of date"}


BUSY = ("and only the process holding the database can be running work on it: see the Home page of that app "
        "(or wait for that command), or stop it to read the status here.")


def status_report(store: Store) -> dict:
    """The stages, the work under way and the next step, as plain data."""
    from core.pipeline import next_step, pipeline_status, running_work
    steps = pipeline_status(store)
    nxt = next_step(steps)
    return {
        "stages": [{"title": s["title"], "count": s["count"], "state": s["state"]} for s in steps],
        "running": [{"kind": w.kind, "id": w.id, "stage": w.stage, "text": w.text, "done": w.done, "total": w.total,
                     "queued": w.queued, "queued_after": list(w.queued_after)} for w in running_work(store)],
        "next": nxt["next"] if nxt else None,
    }


def _print_report(r: dict) -> None:
    from rich.table import Table
    t = Table(title="Shoal pipeline")
    for s in r["stages"]:
        t.add_column(s["title"], justify="right")
    t.add_row(*[f"{s['count']:,}" for s in r["stages"]])
    t.add_row(*[STATE[s["state"]] for s in r["stages"]])
    console.print(t)
    if r["running"]:
        console.print("[bold]Running now:[/] " + " · ".join(w["text"] for w in r["running"]), highlight=False)
        if any(w["queued"] for w in r["running"]):
            console.print("Queued jobs start when their server is free: in the app, or here with "
                          "`shoal jobs --run-queued`.", highlight=False)
    else:
        console.print("Nothing is running.")
    console.print(f"[bold]Next step:[/] {r['next']}" if r["next"] else
                  "Every stage has data. Export the accepted set with `shoal export`.", highlight=False)


def status_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """What is running on this database now and where it is in the pipeline (what Home shows)."""
    report = status_report(store_from(ctx, when_busy=BUSY))
    if as_json:
        print_json(report)
    else:
        _print_report(report)


def add_commands(app: typer.Typer) -> None:
    app.command("status")(status_command)
