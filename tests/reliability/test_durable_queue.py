"""A queued job is a row, not a thread: queue a job behind a running one in a real process (as the
Generate page does), kill -9 that process, and the queued job runs after a restart — picked up by
the app's queue runner (the hook in ui.common's store) or by `shoal jobs --run-queued`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

ROOT = Path(__file__).resolve().parents[2]
N_FIRST, N_SECOND = 30, 4

# What the Generate page does on two Starts against the same server: run the first job, queue the
# second behind it (core.pipeline.start_after, the page's call); then wait to be killed.
APP = f"""
import json, os, sys, time
from core.generate import jobs as J
from core.llm.profiles import load_profiles
from core.pipeline import jobs_on_endpoint, start_after
from core.store import open_store
store = open_store(os.environ["SHOAL_DB"])
ids = [r["id"] for r in store.rows("SELECT id FROM snippets ORDER BY id")]
profiles = load_profiles()
first = J.create_job(store, ids[:{N_FIRST}], profiles=profiles, task="code_generation", concurrency=1)
J.start_worker(store, first)
busy = jobs_on_endpoint(store, profiles)
second = J.create_job(store, ids[{N_FIRST}:], profiles=profiles, task="code_generation", concurrency=1)
start_after(store, second, busy)
print(json.dumps({{"first": first, "second": second, "busy": busy}}), flush=True)
time.sleep(600)
"""

# A restarted app: the first page run opens the shared store (ui.common._store), which starts the
# queue runner. Nothing else is asked of it; the script only watches the job, as Home would, and
# reports once the queued job has finished.
RESTARTED_APP = """
import json, os, sys, time
from core.generate import jobs as J
from ui.common import _store
store = _store(os.environ["SHOAL_DB"])
second = int(sys.argv[1])
deadline = time.time() + 90
while J.get_job(store, second)["status"] != "done" and time.time() < deadline:
    time.sleep(0.2)
J.wait_for_worker(store, second, 30)
print(json.dumps(J.job_summary(store, second)), flush=True)
"""


def _env(db: Path, srv: FakeOpenAIServer) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SHOAL_"))}
    env.update(SHOAL_GENERATOR_BASE_URL=srv.base_url, SHOAL_GENERATOR_MODEL="fake-model", SHOAL_DB=str(db),
               HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                              if p))
    return env


def _python(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_app_while_the_first_job_runs(db: Path, srv: FakeOpenAIServer) -> tuple[int, int]:
    """Start the 'app', let the first job run a little with the second queued, then kill -9 it."""
    app = _python(APP, _env(db, srv))
    ids = json.loads(app.stdout.readline() or "null")
    assert ids is not None, app.communicate(timeout=10)[1][-3000:]
    assert ids["busy"] == [ids["first"]]
    deadline = time.time() + 60
    while len(srv.requests) < 6 and time.time() < deadline and app.poll() is None:
        time.sleep(0.02)
    assert app.poll() is None, app.communicate()[1][-3000:]
    os.kill(app.pid, signal.SIGKILL)
    app.wait(10)

    store = open_store(db)
    jobs = {r["id"]: r for r in store.rows("SELECT id, status, queued_after FROM jobs")}
    assert jobs[ids["first"]]["status"] == "running"                      # killed mid-run
    assert jobs[ids["second"]]["status"] == "queued"                      # the queue survived the kill
    assert jobs[ids["second"]]["queued_after"] == [ids["first"]]
    assert store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [ids["second"]]) == 0
    store.close()
    return ids["first"], ids["second"]


def _prepare(tmp_path: Path) -> Path:
    db = tmp_path / "queue.duckdb"
    store = open_store(db)
    add_snippets(store, N_FIRST + N_SECOND)
    store.checkpoint()
    store.close()
    return db


def _second_ran_alone(db: Path, first: int, second: int) -> None:
    store = open_store(db, read_only=True)
    assert store.scalar("SELECT status FROM jobs WHERE id = ?", [second]) == "done"
    assert store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [second]) == N_SECOND
    # the interrupted first job was not run again behind the user's back: it waits for a resume
    assert store.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'pending'", [first]) > 0
    store.close()


@pytest.mark.slow
def test_a_job_queued_in_a_killed_app_is_started_by_the_restarted_app(tmp_path):
    db = _prepare(tmp_path)
    with FakeOpenAIServer(shoal_responder, latency_s=0.3) as srv:
        first, second = _kill_app_while_the_first_job_runs(db, srv)
        # the killed job counts as running until its heartbeat is stale; then the runner starts the queued one
        app = subprocess.run([sys.executable, "-c", RESTARTED_APP, str(second)], cwd=str(ROOT), env=_env(db, srv),
                             capture_output=True, text=True, timeout=150)
        assert app.returncode == 0, app.stderr[-3000:]
        summary = json.loads(app.stdout.strip().splitlines()[-1])
        assert summary["status"] == "done" and summary["items"]["succeeded"] == N_SECOND
    _second_ran_alone(db, first, second)


@pytest.mark.slow
def test_a_job_queued_in_a_killed_app_is_run_by_shoal_jobs_run_queued(tmp_path):
    db = _prepare(tmp_path)
    with FakeOpenAIServer(shoal_responder, latency_s=0.3) as srv:
        first, second = _kill_app_while_the_first_job_runs(db, srv)
        cli = subprocess.run([sys.executable, "-m", "core.cli.main", "--db", str(db), "jobs", "--run-queued", "--json"],
                             cwd=str(ROOT), env=_env(db, srv), capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr[-3000:]
        ran = json.loads(cli.stdout)
        assert [s["job_id"] for s in ran] == [second] and ran[0]["status"] == "done"
    _second_ran_alone(db, first, second)
