"""`shoal export`: write the accepted set in a trainer's format, with a dataset card."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.cli.common import console, fail, print_json, store_from
from core.errors import ShoalError


def add_commands(app: typer.Typer) -> None:
    from core.dataset.formats import EXPORT_FORMATS

    exp = typer.Typer(help="Export the accepted set; `shoal export versions` and `shoal export diff A B` compare "
                           "exports (each one is a dataset version).", no_args_is_help=False)
    app.add_typer(exp, name="export")

    @exp.callback(invoke_without_command=True)
    def export(ctx: typer.Context,
               fmt: str | None = typer.Option(None, "--format", "-f", help="One of: " + ", ".join(EXPORT_FORMATS)),
               out: Path | None = typer.Option(None, "--out", "-o",
                                               help="Folder to create (data file + README.md card)."),
               include_judged: bool = typer.Option(False, "--include-judged",
                                                   help="Also export unreviewed examples the judge passed."),
               ignore_checks: bool = typer.Option(False, "--ignore-checks",
                                                  help="Do not leave out examples that failed a check."),
               include_failed_execution: bool = typer.Option(
                   False, "--include-failed-execution",
                   help="Also export examples whose solution failed its tests in the sandbox."),
               overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
               name: str = typer.Option("Shoal dataset", "--name", help="Title of the dataset card."),
               push_to_hub: str | None = typer.Option(
                   None, "--push-to-hub", metavar="OWNER/NAME",
                   help="Then push the folder (data + README.md card) to this Hugging Face Hub dataset repo "
                        "(token from HF_TOKEN; endpoint HF_ENDPOINT, default huggingface.co)."),
               private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
               as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Export accepted examples (edits applied, failing checks left out unless overridden). Every export
        is a dataset version: `shoal export versions` lists them, `shoal export diff A B` compares two."""
        from core.dataset.export import export_dataset

        if ctx.invoked_subcommand is not None:
            return
        if fmt is None or out is None:
            fail("Give --format and --out (or a subcommand: versions, diff).")
        try:
            res = export_dataset(store_from(ctx), fmt.lower(), out, include_judged=include_judged,
                                 apply_checks=not ignore_checks, overwrite=overwrite, name=name,
                                 push_to_hub=push_to_hub, include_failed_execution=include_failed_execution,
                                 hub_private=private)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(res.as_dict())
            return
        console.print(f"Wrote {res.n_rows} examples as {EXPORT_FORMATS[res.format]} to {res.path}")
        for reason, n in sorted(res.excluded.items(), key=lambda kv: -kv[1]):
            console.print(f"  left out {n}: {reason}")
        if res.pushed_to:
            console.print(f"Pushed to {escape(res.pushed_to)}")

    _register_versions(exp)


def _register_versions(exp: typer.Typer) -> None:
    """`shoal export versions` and `shoal export diff A B` (core.dataset.versions)."""

    @exp.command("versions")
    def versions(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """Every export (dataset version), newest first."""
        from core.dataset.versions import list_versions
        rows = list_versions(store_from(ctx))
        if as_json:
            print_json(rows)
            return
        if not rows:
            console.print("No exports yet: `shoal export --format F --out DIR` makes the first version.")
            return
        table = Table(title="Dataset versions (exports)")
        for col in ("id", "created", "format", "examples", "name", "path", "comparable"):
            table.add_column(col, justify="right" if col in ("id", "examples") else "left")
        for r in rows:
            table.add_row(str(r["id"]), r["created_at"], r["format"], str(r["n_rows"]), escape(r["name"]),
                          escape(str(r["path"])), "yes" if r["recorded"] else "no (made before versions)")
        Console().print(table)

    @exp.command("diff")
    def diff(ctx: typer.Context, version_a: int = typer.Argument(..., help="The older export (its id)."),
             version_b: int = typer.Argument(..., help="The newer export (its id)."),
             as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Examples added, removed and edited from export A to export B."""
        from core.dataset.versions import diff_versions
        try:
            d = diff_versions(store_from(ctx), version_a, version_b)
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(d.as_dict())
            return
        c = d.counts
        out = Console()
        out.print(f"Export #{d.a['id']} ({d.a['n_rows']} examples) -> #{d.b['id']} ({d.b['n_rows']} examples): "
                  f"{c['added']} added, {c['removed']} removed, {c['edited']} edited, {c['unchanged']} unchanged.",
                  highlight=False)
        if not d.items:
            return
        table = Table()
        for col in ("example", "change", "task", "field", "before", "after"):
            table.add_column(col)
        for r in d.rows():
            table.add_row(str(r["example"]), r["change"], escape(r["task"]), r["field"], escape(r["before"]),
                          escape(r["after"]))
        out.print(table)
