"""`shoal export`: write the accepted set in a trainer's format, with a dataset card."""
from __future__ import annotations

from pathlib import Path

import typer

from core.commands.common import console, fail, print_json, store_from
from core.errors import ShoalError


def register(app: typer.Typer) -> None:
    from core.export import FORMATS

    @app.command("export")
    def export(ctx: typer.Context,
               fmt: str = typer.Option(..., "--format", "-f", help="One of: " + ", ".join(FORMATS)),
               out: Path = typer.Option(..., "--out", "-o", help="Folder to create (data file + README.md card)."),
               include_judged: bool = typer.Option(False, "--include-judged",
                                                   help="Also export unreviewed examples the judge passed."),
               ignore_checks: bool = typer.Option(False, "--ignore-checks",
                                                  help="Do not leave out examples that failed a check."),
               include_failed_execution: bool = typer.Option(
                   False, "--include-failed-execution",
                   help="Also export examples whose solution failed its tests in the sandbox."),
               overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
               name: str = typer.Option("Shoal dataset", "--name", help="Title of the dataset card."),
               push_to_hub: str | None = typer.Option(None, "--push-to-hub",
                                                         help="hf format: also push to this hub repo (needs HF_TOKEN)."),
               as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Export accepted examples (edits applied, failing checks left out unless overridden)."""
        from core.export import export_dataset

        try:
            res = export_dataset(store_from(ctx), fmt.lower(), out, include_judged=include_judged,
                                 apply_checks=not ignore_checks, overwrite=overwrite, name=name,
                                 push_to_hub=push_to_hub, include_failed_execution=include_failed_execution)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(res.as_dict())
            return
        console.print(f"Wrote {res.n_rows} examples as {FORMATS[res.format]} to {res.path}")
        for reason, n in sorted(res.excluded.items(), key=lambda kv: -kv[1]):
            console.print(f"  left out {n}: {reason}")
