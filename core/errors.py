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
