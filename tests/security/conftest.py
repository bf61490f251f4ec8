"""The arena every attack runs against: a directory outside the sandbox, a root-only secret, a
loopback listener, the canary key in the parent's environment, and the checks made from outside."""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.attack_traces import CANARY


@dataclass
class Arena:
    outside: Path          # the sandbox must write nothing here
    secret: Path           # 0600, holds the canary
    db: Path
    port: int
    connections: list = field(default_factory=list)

    def written_outside(self) -> list[str]:
        return sorted(os.listdir(self.outside))


@pytest.fixture
def arena(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)   # writable by anyone who can reach it: only the sandbox's walls keep it empty
    secret = tmp_path / "secret.txt"
    secret.write_text(f'"{CANARY}"\n')
    os.chmod(secret, 0o600)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    a = Arena(outside, secret, tmp_path / "shoal.duckdb", srv.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                a.connections.append(srv.accept()[0])
            except OSError:
                continue
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield a
    stop.set()
    t.join(timeout=5)
    srv.close()
