"""The `shoal` command line: `main` (the typer app) and one module per command group."""
