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


def _other_address() -> str | None:
    """A non-loopback address of this machine, if it has one (the route to a public address; no traffic sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))   # TEST-NET-1: connect() on UDP only picks the source address
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def _answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _shoal(*args: str, db: Path, secrets_home: Path) -> subprocess.Popen:
    env = dict(os.environ, SHOAL_DB=str(db), HOME=str(secrets_home))
    return subprocess.Popen([sys.executable, "-m", "core.cli", *args], cwd=str(ROOT), env=env,
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
        other = _other_address()
        if other is not None:
            assert not _answers(other, port), f"reachable on {other}"
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
