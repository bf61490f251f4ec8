"""The progress/cancel convention shared by long-running core functions.

Long work takes `progress: ProgressFn | None` and `cancel: threading.Event | None`.
It calls `progress(done, total, note)` as it goes and raises `Cancelled` when the
event is set; the CLI wires a rich bar to it, the app a worker thread writing to DuckDB.
"""
from __future__ import annotations

import threading
from typing import Callable

ProgressFn = Callable[[int, int | None, str], None]


class Cancelled(Exception):
    """Raised inside long work when its cancel event was set."""


def report(progress: ProgressFn | None, done: int, total: int | None, note: str = "") -> None:
    if progress is not None:
        progress(done, total, note)


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()
