"""`shoal app`: private to this machine by default, and a plain `kill` stops the whole server."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.errors import DatabaseBusy
from core.store import open_store
from tests.support.browser import wait_for_app
from tests.support.streamlit_server import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, read from /proc (no traffic sent anywhere)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:     # 0A = LISTEN
                continue
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found.add(socket.inet_ntop(family, words))
    return found


def _answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _shoal(*args: str, db: Path, secrets_home: Path) -> subprocess.Popen:
    env = dict(os.environ, SHOAL_DB=str(db), HOME=str(secrets_home))
    return subprocess.Popen([sys.executable, "-m", "core.cli.main", *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_serving_beyond_loopback_without_sign_in_is_refused(tmp_path):
    if (ROOT / ".streamlit" / "secrets.toml").exists():
        pytest.skip("this checkout has its own secrets.toml")
    proc = _shoal("app", "--host", "0.0.0.0", "--port", str(free_port()), db=tmp_path / "a.duckdb",
                  secrets_home=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Refusing to serve on 0.0.0.0" in out and "[auth]" in out


@pytest.mark.browser
def test_default_is_loopback_only_and_kill_frees_the_database(tmp_path, page):
    db, port = tmp_path / "served.duckdb", free_port()
    open_store(db).close()
    proc = _shoal("app", "--port", str(port), db=db, secrets_home=tmp_path)
    try:
        deadline = time.time() + 90
        while not _answers("127.0.0.1", port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "the app did not start"
            time.sleep(0.3)
        assert _listening_addresses(port) == {"127.0.0.1"}     # not 0.0.0.0, not the machine's other addresses
        page.goto(f"http://127.0.0.1:{port}/")     # a session makes the app open the database
        wait_for_app(page)
        with pytest.raises(DatabaseBusy):
            open_store(db)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        t0 = time.time()
        while True:
            try:
                open_store(db).close()
                break
            except DatabaseBusy:
                assert time.time() - t0 < 5, "the database stayed locked after kill"
                time.sleep(0.2)
        assert not _answers("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
