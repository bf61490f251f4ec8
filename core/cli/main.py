"""`shoal` command line: one command per pipeline stage, all sharing the global --db."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Iterable

import typer

from core.cli.common import print_json, store_from
from core.errors import ShoalError

app = typer.Typer(help="Shoal: build small, diverse, high-quality code instruction datasets.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

# Stage modules under core/cli/, each with `add_commands(app)`.
COMMAND_MODULES = ["ingest", "mapping", "generation", "reviewing", "checking", "exporting", "local_llm", "judging",
                   "status", "team", "evaluating", "training"]


@app.callback()
def main_options(ctx: typer.Context,
                 db: Path | None = typer.Option(None, "--db", envvar="SHOAL_DB",
                                                   help="DuckDB file (default ./shoal.duckdb).")):
    ctx.ensure_object(dict)["db"] = db


@app.command()
def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Counts of everything in the database."""
    from core.stats import corpus_stats
    data = corpus_stats(store_from(ctx))
    if as_json:
        print_json(data)
        return
    from core.cli.common import Console
    out = Console()
    out.print(_count_table(f"Shoal database {store_from(ctx).path}", ["what"], data["tables"].items()))
    if data["languages"]:
        out.print(_count_table("snippets per language", ["language"], data["languages"].items()))
    if data["rejections"]:
        out.print(_count_table("rejected records by reason", ["kind", "reason"],
                               [(r["kind"], r["reason"], r["n"]) for r in data["rejections"]]))


def _count_table(title: str, columns: list[str], rows: Iterable[tuple]):
    """A rich table: the named columns, then a right-aligned "count" (each row's last value)."""
    from rich.table import Table
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    t.add_column("count", justify="right")
    for *names, n in rows:
        t.add_row(*names, str(n))
    return t


@app.command("app")
def run_app(ctx: typer.Context,
            port: int = typer.Option(8501, help="Port for the web app."),
            demo: bool = typer.Option(False, help="Load the built-in demo corpus first if the database is empty."),
            headless: bool = typer.Option(True, help="Do not open a browser window."),
            host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but loopback "
                                     "needs sign-in configured ([auth] or [shoal.local_sign_in] in .streamlit/secrets.toml).")):
    """Start the Streamlit app on this database (private to this machine unless --host says otherwise)."""
    from core.appfiles import app_files, exec_streamlit
    from core.config import is_loopback_host
    from core.secrets_file import sign_in_configured
    files = app_files()   # the checkout's app.py and pages/, or the installed wheel's copy
    if not is_loopback_host(host) and not sign_in_configured(files.secrets()):
        raise ShoalError(
            f"Refusing to serve on {host}: anyone who can reach it could read the corpus, spend the API "
            "keys and change reviews. Configure sign-in first (an [auth] section with redirect_uri, "
            "cookie_secret and your OIDC provider in .streamlit/secrets.toml, or local accounts with "
            "[shoal.local_sign_in] enabled = true; see the README), or keep the default --host 127.0.0.1.")
    store = store_from(ctx)
    db_path = str(store.path.resolve())
    if sign_in_configured(files.secrets()):      # a team: no start until its owner is named (core.team.members)
        from core.team import members as team
        team.require_owner(store, config=team.config_roles(files.secrets()))
    from core.ingest.snippets import count_snippets
    if demo and count_snippets(store) == 0:
        from core.cli.common import progress_bar
        from core.ingest import ingest_sources
        with progress_bar("Loading the demo corpus (Python standard library)") as bar:
            result = ingest_sources(store, ["stdlib"], fmt="stdlib", progress=bar)
        typer.echo(f"Demo corpus: {result.ingested} functions ingested.", err=True)
    store.checkpoint()
    store.close()  # the app process opens the file itself
    ctx.obj.pop("store", None)
    # the app's own settings (.streamlit/config.toml, passed as flags: the folder it runs in may be any)
    # under what this command chose
    exec_streamlit(files, {"server.address": host, "server.port": port, "server.headless": headless},
                   dict(os.environ, SHOAL_DB=db_path))


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"core.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a stage not built yet must not break the others
        if _exc.name != f"core.cli.{_name}":
            raise
        continue
    _mod.add_commands(app)


def main() -> None:
    try:
        app()
    except ShoalError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
