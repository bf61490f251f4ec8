"""Helpers shared by every CLI command: the store from the global --db, JSON output, progress bars."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.errors import DatabaseBusy, ShoalError
from core.progress import ProgressFn
from core.redact import redact
from core.store import Store, open_store

console = Console(stderr=True)


def store_from(ctx: typer.Context, when_busy: str | None = None) -> Store:
    """The store named by the global --db option (opened once per command). `when_busy`: what to say
    after "<holder> has <path> open" when another process holds the database."""
    obj = ctx.ensure_object(dict)
    if "store" not in obj:
        try:
            obj["store"] = open_store(obj.get("db"))
        except DatabaseBusy as exc:
            fail(f"{exc.holder} has {exc.path} open, {when_busy}" if when_busy else str(exc))
        except ShoalError as exc:
            fail(str(exc))
        ctx.call_on_close(obj["store"].close)
    return obj["store"]


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {redact(message)}", highlight=False)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(redact(json.dumps(obj, default=str, indent=2)) + "\n")


def _no_progress(done: int, total: int | None, note: str = "") -> None:
    """The ProgressFn of a silent run."""


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressFn]:
    """A rich progress bar on stderr, as a ProgressFn; silent when disabled."""
    if not enabled:
        yield _no_progress
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
                  console=console, transient=False) as bar:
        task = bar.add_task(description, total=None, note="")

        def update(done: int, total: int | None, note: str = "") -> None:
            bar.update(task, completed=done, total=total, note=note[:60])

        yield update
