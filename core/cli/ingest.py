"""`shoal ingest SOURCE...`: corpus files, folders, git checkouts or the stdlib demo into snippets."""
from __future__ import annotations

import typer

from core.cli.common import console, fail, print_json, progress_bar, store_from
from core.errors import ShoalError


def _summary(result) -> None:
    from rich.table import Table

    from core.ingest.filters import TEST_CODE
    t = Table(title=f"Ingest #{result.ingest_id} ({result.seconds:.1f} s)")
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_row("read", f"{result.read:,}")
    t.add_row("ingested", f"{result.ingested:,}")
    t.add_row("duplicates", f"{result.duplicates:,}")
    t.add_row("filtered", f"{result.filtered:,}")
    t.add_row("errors", f"{len(result.errors):,}")
    console.print(t)
    if result.languages:
        console.print("ingested per language: " + ", ".join(f"{k} {v:,}" for k, v in result.languages.most_common()),
                      highlight=False)
    if result.filtered_by_reason:
        console.print("filtered by reason: " + ", ".join(f"{k} {v:,}" for k, v in result.filtered_by_reason.most_common()),
                      highlight=False)
    if n_tests := result.filtered_by_reason[TEST_CODE]:
        console.print(f"left out as test code: {n_tests:,} files (--keep-tests keeps them)", highlight=False)
    if result.errors:
        et = Table(title="errors (first 20; all are in `ingest_errors`)")
        for col in ("source", "location", "reason", "detail"):
            et.add_column(col, overflow="fold")
        for e in result.errors[:20]:
            et.add_row(e["source"], e["location"], e["reason"], e["detail"])
        console.print(et)


def add_commands(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        ctx: typer.Context,
        sources: list[str] = typer.Argument(..., help="Files, folders, git checkouts, or 'stdlib' "
                                                      "('stdlib:json,csv' for a few modules)."),
        fmt: str = typer.Option("auto", "--format", help="auto|codesearchnet|jsonl|parquet|dir|stdlib"),
        min_chars: int = typer.Option(50, "--min-chars", help="Drop code shorter than this."),
        max_chars: int = typer.Option(800, "--max-chars", help="Drop code longer than this."),
        blacklist: list[str] | None = typer.Option(
            None, "--blacklist", help="A word or phrase that drops a snippet; repeat it. Replaces the default list."),
        no_blacklist: bool = typer.Option(False, "--no-blacklist", help="Turn the word blacklist off."),
        seed: int = typer.Option(0, "--seed", help="Seed for drawing OSS-Instruct seeds from whole files."),
        keep_tests: bool = typer.Option(False, "--keep-tests",
                                        help="Folders: keep test code (test folders such as tests/ and files such "
                                             "as test_*.py, *.spec.ts); skipped and counted as test_code by default."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the counts and errors."),
    ):
        """Read code into the database: CodeSearchNet, whole-file corpora, folders, or the stdlib demo.

        Bad records and files are counted with a reason (see `shoal stats`); exits 0 unless
        nothing at all could be read.
        """
        from core.ingest import ingest_sources
        store = store_from(ctx)
        words = [] if no_blacklist else blacklist
        try:
            with progress_bar("Ingesting", enabled=not as_json) as bar:
                result = ingest_sources(store, sources, fmt=fmt, min_chars=min_chars, max_chars=max_chars,
                                        blacklist=words, seed=seed, progress=bar, keep_tests=keep_tests)
        except ShoalError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("Interrupted: what was read before is kept.", 130)
        if as_json:
            print_json(result.to_json())
        else:
            _summary(result)
        if result.nothing_read:
            if not as_json:
                console.print("[bold red]error:[/] nothing could be read from the sources given.", highlight=False)
            raise typer.Exit(1)
