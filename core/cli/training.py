"""`shoal train`: fine-tuning from a Shoal export. `shoal train validate` checks a training file
against the target's format rules before anything is uploaded (core.train.validate)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from core.cli.common import console, fail, print_json
from core.errors import ShoalError


def add_commands(app: typer.Typer) -> None:
    train = typer.Typer(help="Fine-tune from a Shoal export.", no_args_is_help=True)
    app.add_typer(train, name="train")

    @train.command("validate")
    def validate(path: Path = typer.Argument(..., help="An export folder (its train.jsonl) or a JSONL file."),
                 target: str = typer.Option("openai", "--target", help="openai (the fine-tuning API) or trl."),
                 model: str | None = typer.Option(None, "--model", help="Count tokens with this model's tokenizer."),
                 max_tokens: int | None = typer.Option(None, "--max-tokens", min=1,
                                                       help="The context an example must fit in (default: the "
                                                            "target's, 16,384 for openai, 2,048 for trl)."),
                 write: Path | None = typer.Option(None, "--write", help="Write the good examples, with only "
                                                   "the keys the target reads, to this file."),
                 as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Check every example against the target's rules; refused ones are counted by reason, with lines."""
        from core.train.validate import validate_file, write_training_file
        try:
            v = validate_file(path, target, model=model, max_tokens=max_tokens)
            written = write_training_file(path, v, write) if write else None
        except ShoalError as exc:
            fail(str(exc))
        summary = v.summary() | ({"written": written, "written_to": str(write)} if write else {})
        if as_json:
            print_json(summary)
        else:
            _print(summary)
        if not v.ok:
            raise typer.Exit(1)


def _print(s: dict) -> None:
    console.print(f"{s['valid']:,} of {s['lines']:,} examples fit {s['target']} (at most {s['max_tokens']:,} "
                  f"tokens, {s['tokens']['method'] or 'no tokens counted'}; longest {s['tokens']['max']:,}).",
                  highlight=False)
    if s["reasons"]:
        t = Table(title="refused")
        t.add_column("reason"); t.add_column("examples", justify="right"); t.add_column("first lines")
        for reason, n in sorted(s["reasons"].items(), key=lambda kv: -kv[1]):
            t.add_row(reason, f"{n:,}", ", ".join(map(str, s["lines_by_reason"][reason])))
        console.print(t)
    if s["dropped_keys"]:
        console.print("Left out of the upload file (the target does not read them): " +
                      ", ".join(f"{escape(k)} ({n:,})" for k, n in s["dropped_keys"].items()), highlight=False)
    for problem in s["problems"]:
        console.print(f"[red]{problem}[/]", highlight=False)
    if "written" in s:
        console.print(f"Wrote {s['written']:,} examples to {escape(s['written_to'])}.", highlight=False)
