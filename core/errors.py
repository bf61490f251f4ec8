"""Errors whose message tells the user what happened and how to fix it."""
from __future__ import annotations

from pathlib import Path


class ShoalError(Exception):
    """Base for errors shown to the user as a message, never as a traceback."""


class DatabaseBusy(ShoalError):
    def __init__(self, path: Path, holder: str):
        self.path, self.holder = Path(path), holder
        super().__init__(
            f"The database file {self.path.resolve()} is in use by {holder}. "
            "DuckDB lets only one process write to a file: close that process "
            "(for example the running Shoal app or another `shoal` command), "
            "or use another file with --db PATH / SHOAL_DB."
        )


class MissingDependency(ShoalError):
    def __init__(self, what: str, pip_name: str):
        super().__init__(f"{what} needs an optional package: pip install '{pip_name}'")


class NotAllowed(ShoalError):
    """The acting user's role does not allow the action (core.team.members.authorize: refused and audited)."""


class OutsideDataRoots(ShoalError):
    """A server path to ingest lies outside the configured data roots (core.ingest.roots)."""

    def __init__(self, path: str, roots: list[Path], verb: str = "read from"):
        self.path, self.roots = path, list(roots)
        shown = ", ".join(str(r) for r in self.roots) or "none"
        super().__init__(
            f"{path} is outside the folders this app may {verb} (data roots: {shown}). Put the data "
            "under one of them, or add its folder to SHOAL_DATA_ROOTS (folders separated by ':') or to "
            "`data_roots = [...]` under [shoal] in .streamlit/secrets.toml, then restart the app.")
