"""The embedded model's server as other processes find it: its record, its state file, its health.

A server is recorded in a small JSON state file per model (`write_state`), so that another
process (`shoal llm serve`, the app, a CLI job) reuses it instead of starting a second one;
`live_recorded_server` checks the record is still true (the process alive, the port serving the
model, or busy answering someone else) and removes stale ones. `start_lock` serialises
check-and-start across processes. Starting and stopping are core.llm.local_model's job.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

from core.paths import cache_dir

__all__ = ["LocalServer", "state_dir", "state_file", "port_in_use", "pid_alive", "served_models", "server_state",
           "server_alive", "write_state", "read_state", "clear_state", "live_recorded_server", "start_lock"]


@dataclass
class LocalServer:
    base_url: str        # "http://127.0.0.1:PORT/v1"
    model: str           # alias to send as `model`
    pid: int
    port: int
    model_path: str
    owner_pid: int       # the process that started it (the server exits with it)
    started_at: float
    log_path: str = ""

    @property
    def owned(self) -> bool:
        return self.owner_pid == os.getpid()


# ---------------------------------------------------------------- health


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def served_models(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """Model ids listed by GET {base_url}/models, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        return [m.get("id", "") for m in data.get("data", [])]
    except (OSError, ValueError, urllib.error.URLError):
        return None


def server_state(server: LocalServer, timeout: float = 2.0) -> str:
    """"live" (answers and serves its model), "busy" (its process holds the port but is too busy to
    answer: llama.cpp serves one request at a time) or "gone" (the record is stale)."""
    if not pid_alive(server.pid):
        return "gone"
    models = served_models(server.base_url, timeout)
    if models is not None:
        return "live" if server.model in models else "gone"
    port = urlparse(server.base_url).port
    return "busy" if port is not None and port_in_use(port) else "gone"


def server_alive(server: LocalServer, timeout: float = 2.0) -> bool:
    return server_state(server, timeout) != "gone"


# ---------------------------------------------------------------- state files


def state_dir() -> Path:
    return cache_dir() / "llm"


def state_file(model: str, directory: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return (directory or state_dir()) / f"server-{safe}.json"


def write_state(server: LocalServer, directory: Path | None = None) -> Path:
    path = state_file(server.model, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(server), indent=2))
    os.replace(tmp, path)
    return path


def read_state(model: str, directory: Path | None = None) -> LocalServer | None:
    """The server recorded for model, or None if there is no usable record (corrupt ones are removed)."""
    path = state_file(model, directory)
    try:
        data = json.loads(path.read_text())
        return LocalServer(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None


def clear_state(server: LocalServer, directory: Path | None = None) -> None:
    """Remove the state file if it still describes this server (not a newer one)."""
    current = read_state(server.model, directory)
    if current is not None and current.pid == server.pid:
        state_file(server.model, directory).unlink(missing_ok=True)


def live_recorded_server(model: str, directory: Path | None = None,
                         alive: Callable[[LocalServer], bool] = server_alive) -> LocalServer | None:
    """The recorded server if it is still there (answering, or busy answering someone else).

    Only a record whose process is gone, or whose port is free or serves another model, is deleted:
    a busy server must keep its record, or the next caller would start a second one beside it."""
    server = read_state(model, directory)
    if server is None:
        return None
    if alive(server):
        return server
    state_file(model, directory).unlink(missing_ok=True)
    return None


@contextlib.contextmanager
def start_lock(model: str) -> Iterator[None]:
    """Serialise check-and-start across processes so two of them never start two servers."""
    path = state_file(model).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
